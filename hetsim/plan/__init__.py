"""The planner: the only package that imports OR-Tools."""
