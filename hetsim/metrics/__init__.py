"""Metrics derived from simulation records (pure: DataFrames in, numbers out)."""
