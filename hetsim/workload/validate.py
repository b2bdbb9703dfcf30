"""What makes a canonical trace unusable, found before anything is simulated.

A trace file can be well-formed JSON or Parquet and still be nonsense: negative or absurd
token counts (counts past int64 wrap to negative costs), arrivals or durations that are
negative, infinite or NaN, a cached prefix longer than the prompt, two steps with one id in a
session, or no steps at all. ``trace_problem`` names the first such step (vectorised: a
million-step trace is checked in well under a second), or returns None.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_TOKENS = 10**9
"""Tokens one step may carry: far past any model's context, far below int64 overflow."""


def trace_problem(frame: pd.DataFrame) -> str | None:
    """The first problem of a canonical step frame (``hetsim.workload.frame``), or None."""
    if frame.empty:
        return "no steps (expected at least one step after the trace_meta line)"
    for name in ("input_tokens", "output_tokens", "reasoning_tokens"):
        problem = _first(frame, _bad_count(frame[name]), name, f"an integer 0..{MAX_TOKENS}")
        if problem:
            return problem
    cached = pd.to_numeric(frame["cached_prefix_tokens"], errors="coerce").astype(float)
    inputs = pd.to_numeric(frame["input_tokens"], errors="coerce").astype(float)
    bad_cache = cached.notna() & ((cached < 0) | (cached > inputs))
    problem = _first(frame, bad_cache.to_numpy(), "cached_prefix_tokens", "0..input_tokens")
    if problem:
        return problem
    for name, optional in (("arrival_s", False), ("duration_s", True), ("units", True)):
        values = pd.to_numeric(frame[name], errors="coerce").astype(float).to_numpy()
        bad = ~np.isfinite(values) | (values < 0)
        if optional:
            bad &= frame[name].notna().to_numpy()
        problem = _first(frame, bad, name, "a finite number >= 0")
        if problem:
            return problem
    duplicated = frame.duplicated(["session_id", "step_id"]).to_numpy()
    return _first(frame, duplicated, "step_id", "ids unique within a session (this one repeats)")


def _bad_count(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return ~np.isfinite(values) | (values < 0) | (values > MAX_TOKENS) | (values != np.floor(values))


def _first(frame: pd.DataFrame, bad: np.ndarray, column: str, expected: str) -> str | None:
    """The first ``bad`` row as 'session S step N: field F: expected E, got V', or None."""
    rows = np.flatnonzero(bad)
    if not len(rows):
        return None
    row = frame.iloc[int(rows[0])]
    value = row[column]
    value = value.item() if hasattr(value, "item") else value  # a numpy scalar reads as the number it is
    more = f" ({len(rows) - 1} more such steps)" if len(rows) > 1 else ""
    return f"session {row['session_id']!r} step {row['step_id']}: field '{column}': expected {expected}, got {value!r}{more}"
