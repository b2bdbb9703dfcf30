"""Read and write canonical traces (JSONL or Parquet) and import public trace formats.

JSONL: the first line is ``{"trace_meta": {...}}`` (the fields of ``TraceMeta``), every other line
one step (the fields of ``TraceStep``; optional fields may be left out). Parquet: one row per step
with the columns of ``hetsim.workload.frame``; the meta is JSON under the key-value metadata key
``hetsim.trace_meta``. The suffix (``.jsonl`` / ``.parquet``) picks the encoding.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.errors import WorkloadError
from hetsim.io.importers import IMPORTERS, importer
from hetsim.io.importers._records import RecordError, loads
from hetsim.io.outputs import write_file
from hetsim.io.trace_parquet import read_parquet, write_parquet
from hetsim.io.trace_records import parse_meta, parse_step
from hetsim.workload.frame import frame_to_steps, steps_to_frame
from hetsim.workload.trace import TRACE_COLUMNS, TraceMeta, TraceStep
from hetsim.workload.validate import trace_problem

SUFFIXES = (".jsonl", ".parquet")
FORMATS: tuple[str, ...] = tuple(IMPORTERS)
"""Names of the importable public formats."""



def import_trace(path: Path, fmt: str, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Import ``path`` (a file or, for formats that allow it, a folder) written in public format ``fmt``."""
    return importer(fmt)(path, skip_bad)


def write_trace(path: Path, steps: list[TraceStep], meta: TraceMeta) -> None:
    """Write a canonical trace, whole (staged beside it, then moved in); the suffix of ``path``
    picks JSONL or Parquet."""
    suffix = _suffix(path)

    def write(staged: Path) -> None:
        if suffix == ".parquet":
            write_parquet(staged, steps, meta)
            return
        with staged.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps({"trace_meta": asdict(meta)}) + "\n")
            handle.writelines(json.dumps(_step_record(step)) + "\n" for step in steps)

    write_file(path, "trace file", write, WorkloadError)


def _step_record(step: TraceStep) -> dict[str, Any]:
    """``step.to_dict()`` without ``dataclasses.asdict``'s deep copies (5x faster on big traces)."""
    record = {name: getattr(step, name) for name in TRACE_COLUMNS}
    record["node_type"] = step.node_type.value
    record["parents"] = list(step.parents)
    record["prefix_hash_ids"] = list(step.prefix_hash_ids)
    return record


def read_trace(path: Path) -> tuple[list[TraceStep], TraceMeta]:
    """Read a canonical trace (JSONL or Parquet), checked (``hetsim.workload.validate``)."""
    frame, meta = read_trace_frame(path)
    return frame_to_steps(frame), meta


def read_trace_frame(path: Path) -> tuple[pd.DataFrame, TraceMeta]:
    """Read a canonical trace as a step DataFrame (see ``hetsim.workload.frame``), checked: a
    trace with an unusable step is refused in one line naming the file and the step."""
    if _suffix(path) == ".parquet":
        frame, meta = read_parquet(path)
    else:
        steps, meta = _read_jsonl(path)
        frame = steps_to_frame(steps)
    problem = trace_problem(frame)
    if problem:
        raise WorkloadError(f"{path}: {problem}")
    return frame, meta


def _suffix(path: Path) -> str:
    if path.suffix not in SUFFIXES:
        got = path.suffix or "no suffix"
        raise WorkloadError(f"{path}: a canonical trace file must end in .jsonl or .parquet, got {got!r}")
    return path.suffix


def _read_jsonl(path: Path) -> tuple[list[TraceStep], TraceMeta]:
    try:
        with path.open("rb") as handle:
            lines = [(number, raw) for number, raw in enumerate(handle, start=1) if raw.strip()]
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read file ({exc.strerror})") from None
    if not lines:
        raise WorkloadError(f'{path}: empty file (expected a first line {{"trace_meta": {{...}}}})')
    meta = _parse_line(path, *lines[0], parse_meta, 'a first line {"trace_meta": {...}} (a raw trace? pass --format)')
    steps = [_parse_line(path, number, raw, parse_step, "a trace step object") for number, raw in lines[1:]]
    return steps, meta


def _parse_line(path: Path, number: int, raw: bytes, parse: Any, expected: str) -> Any:
    try:
        return parse(loads(raw))
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{path}: line {number}: not valid JSON ({exc.msg}); expected {expected}") from None
    except (RecordError, ValueError, TypeError) as exc:
        raise WorkloadError(f"{path}: line {number}: expected {expected}; {exc}") from None
