"""Canonical traces as Parquet: one row per step, the trace meta as JSON in the file's key-value metadata."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hetsim.errors import WorkloadError
from hetsim.io.trace_records import meta_from_dict
from hetsim.io.yamlfile import one_line
from hetsim.workload.trace import TRACE_COLUMNS, TraceMeta, TraceStep

META_KEY = b"hetsim.trace_meta"

SCHEMA = pa.schema(
    [
        ("session_id", pa.string()), ("step_id", pa.int64()), ("arrival_s", pa.float64()), ("node", pa.string()),
        ("node_type", pa.string()), ("parents", pa.list_(pa.int64())), ("model", pa.string()),
        ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("reasoning_tokens", pa.int64()),
        ("cached_prefix_tokens", pa.int64()), ("prefix_hash_ids", pa.list_(pa.int64())), ("duration_s", pa.float64()),
        ("units", pa.float64()), ("branch", pa.string()), ("adapter", pa.string()),
        ("acceptance_rate", pa.float64()),
    ]
)
"""Column types on disk; the names and order are ``TRACE_COLUMNS`` (checked by a test)."""
OPTIONAL_COLUMNS = ("adapter", "acceptance_rate")
"""Columns a trace may lack (they came after the others): read as all nulls."""


def write_parquet(path: Path, steps: list[TraceStep], meta: TraceMeta) -> None:
    """Write steps and meta to ``path`` (OSError propagates to the caller)."""
    columns = {name: [getattr(step, name) for step in steps] for name in TRACE_COLUMNS}
    columns["node_type"] = [step.node_type.value for step in steps]
    columns["parents"] = [list(step.parents) for step in steps]
    columns["prefix_hash_ids"] = [list(step.prefix_hash_ids) for step in steps]
    table = pa.Table.from_pydict(columns, schema=SCHEMA.with_metadata({META_KEY: json.dumps(asdict(meta)).encode()}))
    pq.write_table(table, path)


def read_parquet(path: Path) -> tuple[pd.DataFrame, TraceMeta]:
    """Read a canonical Parquet trace as a step frame (column types of ``hetsim.workload.frame``).

    Each column must have its type in ``SCHEMA`` (an integer column may stand for a float one),
    and a float column holds no NaN: a missing value is a null, and NaN is no time or count."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise WorkloadError(f"{path}: cannot read Parquet trace ({one_line(str(exc).splitlines()[0] if str(exc) else exc)})") from None
    for name in OPTIONAL_COLUMNS:  # a trace written before the column was
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    missing = [name for name in TRACE_COLUMNS if name not in table.column_names]
    raw_meta = (table.schema.metadata or {}).get(META_KEY)
    if missing or raw_meta is None:
        what = f"columns {missing}" if missing else f"the metadata key {META_KEY.decode()}"
        raise WorkloadError(f"{path}: not a hetsim trace (missing {what})")
    try:
        data = json.loads(raw_meta)
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        meta = meta_from_dict(data)
    except (ValueError, TypeError) as exc:
        raise WorkloadError(f"{path}: trace meta in the Parquet metadata is invalid ({one_line(str(exc))})") from None
    table = table.select(list(TRACE_COLUMNS))
    problem = _column_problem(table)
    if problem:
        raise WorkloadError(f"{path}: {problem}")
    try:
        return _normalise(table.to_pandas()), meta
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. a null inside a list of parents
        raise WorkloadError(f"{path}: a column holds a value of the wrong kind ({one_line(str(exc))})") from None


def _column_problem(table: pa.Table) -> str | None:
    """The first column whose type is not the schema's, or whose floats hold NaN; or None."""
    for name in TRACE_COLUMNS:
        want, got = SCHEMA.field(name).type, table.schema.field(name).type
        fits = got == want or pa.types.is_null(got) or (pa.types.is_floating(want) and pa.types.is_integer(got))
        if pa.types.is_list(want):
            fits = pa.types.is_null(got) or (pa.types.is_list(got) and (pa.types.is_integer(got.value_type) or pa.types.is_null(got.value_type)))
        elif pa.types.is_integer(want):
            fits = fits or pa.types.is_integer(got)
        elif pa.types.is_string(want):
            fits = fits or pa.types.is_large_string(got)
        if not fits:
            return f"column '{name}': expected Parquet type {want}, got {got}"
        if pa.types.is_floating(got) and pc.any(pc.is_nan(table.column(name))).as_py():
            return f"column '{name}': expected finite numbers or nulls, got NaN"
    return None


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a frame read from Parquet the column types of :func:`steps_to_frame`."""
    for name in ("parents", "prefix_hash_ids"):
        tuples = [tuple(int(v) for v in values) for values in frame[name]]
        frame[name] = pd.Series(tuples, dtype=object, index=frame.index)
    for name in ("model", "branch", "adapter"):
        frame[name] = pd.Series([None if pd.isna(v) else str(v) for v in frame[name]], dtype=object, index=frame.index)
    frame["cached_prefix_tokens"] = frame["cached_prefix_tokens"].astype("Int64")
    for name in ("duration_s", "units", "arrival_s", "acceptance_rate"):
        frame[name] = frame[name].astype(float)
    for name in ("session_id", "node", "node_type"):
        frame[name] = frame[name].astype(str)
    return frame
