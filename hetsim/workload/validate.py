"""What makes a canonical trace unusable, found before anything is simulated.

A trace file can be well-formed JSON or Parquet and still be nonsense: negative or absurd
token counts (counts past int64 wrap to negative costs), arrivals or durations that are
negative, infinite, NaN or past any run, a cached prefix longer than the prompt, two steps with
one id in a session, a parent that is not an earlier step of its session (a cycle would never
run: its session would silently vanish), or no steps at all. ``trace_problem`` names the first
such step (vectorised: a million-step trace is checked in well under a second), or returns None.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

MAX_TOKENS = 10**9
"""Tokens one step may carry: far past any model's context, far below int64 overflow."""
MAX_STEP_ID = 10**9
"""Step ids within a session: far past any agent's steps, far below int64 overflow."""
MAX_TIME_S = 1e9
"""Seconds an arrival, a duration or a unit count may reach: 31 years, far past any run."""


def trace_problem(frame: pd.DataFrame) -> str | None:
    """The first problem of a canonical step frame (``hetsim.workload.frame``), or None."""
    if frame.empty:
        return "no steps (expected at least one step after the trace_meta line)"
    for name, top in (("input_tokens", MAX_TOKENS), ("output_tokens", MAX_TOKENS), ("reasoning_tokens", MAX_TOKENS),
                      ("step_id", MAX_STEP_ID)):  # fmt: skip
        problem = _first(frame, _bad_count(frame[name], top), name, f"an integer 0..{top}")
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
        bad = ~np.isfinite(values) | (values < 0) | (values > MAX_TIME_S)
        if optional:
            bad &= frame[name].notna().to_numpy()
        problem = _first(frame, bad, name, f"a finite number 0..{MAX_TIME_S:g}")
        if problem:
            return problem
    duplicated = frame.duplicated(["session_id", "step_id"]).to_numpy()
    return _first(frame, duplicated, "step_id", "ids unique within a session (this one repeats)") or _parent_problem(frame)


def _bad_count(column: pd.Series, top: int) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    return ~np.isfinite(values) | (values < 0) | (values > top) | (values != np.floor(values))


def _parent_problem(frame: pd.DataFrame) -> str | None:
    """The first step listing a parent that is not an earlier step of its session (in file
    order: parents come first, so a cycle cannot hide), or None. Step ids are within
    ``MAX_STEP_ID`` here (checked before), so the keys below cannot overflow."""
    parents = frame["parents"].tolist()
    counts = np.fromiter(map(len, parents), dtype=np.int64, count=len(parents))
    if not counts.any():
        return None
    flat = np.fromiter(itertools.chain.from_iterable(parents), dtype=np.float64, count=int(counts.sum()))
    child = np.repeat(np.arange(len(frame), dtype=np.int64), counts)
    sessions = pd.factorize(frame["session_id"])[0].astype(np.int64)
    step_ids = frame["step_id"].to_numpy(dtype=np.int64)
    width = int(step_ids.max()) + 1
    in_range = (flat >= 0) & (flat < width) & (flat == np.floor(flat))
    keys = sessions * width + step_ids
    wanted = sessions[child] * width + np.where(in_range, flat, 0).astype(np.int64)
    row_of = pd.Series(np.arange(len(frame)), index=keys)
    row_of = row_of[~row_of.index.duplicated(keep="first")]
    parent_rows = row_of.reindex(wanted).to_numpy(dtype=float)
    unknown = ~in_range | np.isnan(parent_rows)
    late = ~unknown & (parent_rows >= child)
    for bad, why in ((unknown, "no step of its session has that id"),
                     (late, "that step is not earlier in the file: parents come before their children, and a cycle never runs")):  # fmt: skip
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            row = frame.iloc[int(child[first])]
            value = flat[first]
            shown = int(value) if np.isfinite(value) and value == np.floor(value) else value
            return (f"session {row['session_id']!r} step {row['step_id']}: field 'parents': expected ids of earlier "
                    f"steps of the session, got {shown!r} ({why})")  # fmt: skip
    return None


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
