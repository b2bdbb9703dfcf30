"""Trace steps as a pandas DataFrame (one row per step, columns ``TRACE_COLUMNS``) and back.

The frame is what statistics and trace replay read; Parquet files hold the same columns. Column
types: ``parents`` and ``prefix_hash_ids`` hold tuples of ints, ``cached_prefix_tokens`` is a
nullable ``Int64``, ``arrival_s``, ``duration_s``, ``units`` and ``acceptance_rate`` are floats (NaN for "not given"),
``model``, ``branch`` and ``adapter`` are objects with None, the rest strings and int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hetsim.workload.trace import TRACE_COLUMNS, NodeType, TraceStep

_INT_COLUMNS = ("step_id", "input_tokens", "output_tokens", "reasoning_tokens")
_FLOAT_COLUMNS = ("arrival_s", "duration_s", "units", "acceptance_rate")
_OBJECT_COLUMNS = ("parents", "prefix_hash_ids", "model", "branch", "adapter")


def steps_to_frame(steps: Sequence[TraceStep]) -> pd.DataFrame:
    """One row per step, in the given order, with the column types of the module docstring."""
    columns: dict[str, Any] = {}
    for name in TRACE_COLUMNS:
        values = [getattr(step, name) for step in steps]
        if name in _INT_COLUMNS:
            columns[name] = np.array(values, dtype=np.int64)
        elif name in _FLOAT_COLUMNS:
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        elif name == "cached_prefix_tokens":
            columns[name] = pd.array(values, dtype="Int64")
        elif name in _OBJECT_COLUMNS:
            columns[name] = pd.Series(values, dtype=object)
        else:  # session_id, node, node_type (StrEnum -> its value)
            columns[name] = pd.Series([str(v) for v in values], dtype=str)
    return pd.DataFrame(columns)


def frame_to_steps(frame: pd.DataFrame) -> list[TraceStep]:
    """The steps of a frame made by :func:`steps_to_frame` (or read from Parquet)."""
    return [_row_to_step(row) for row in frame[list(TRACE_COLUMNS)].itertuples(index=False, name=None)]


def _row_to_step(row: tuple[Any, ...]) -> TraceStep:
    record = dict(zip(TRACE_COLUMNS, row, strict=True))
    record["node_type"] = NodeType(record["node_type"])
    record["parents"] = tuple(int(p) for p in record["parents"])
    record["prefix_hash_ids"] = tuple(int(h) for h in record["prefix_hash_ids"])
    for name in _INT_COLUMNS:
        record[name] = int(record[name])
    record["arrival_s"] = float(record["arrival_s"])
    cached = record["cached_prefix_tokens"]
    record["cached_prefix_tokens"] = None if _missing(cached) else int(cached)
    for name in ("duration_s", "units", "acceptance_rate"):
        record[name] = None if _missing(record[name]) else float(record[name])
    for name in ("model", "branch", "adapter"):
        record[name] = None if _missing(record[name]) else str(record[name])
    record["session_id"], record["node"] = str(record["session_id"]), str(record["node"])
    return TraceStep(**record)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
