"""Trace questions for the CLI and notebooks: import public traces, save/load canonical ones, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.errors import WorkloadError
from hetsim.io import traces as trace_io
from hetsim.workload.frame import steps_to_frame
from hetsim.workload.stats import DEFAULT_DECODE_TOKENS_PER_S, trace_stats
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep
from hetsim.workload.validate import trace_problem


def formats() -> tuple[str, ...]:
    """Names of the public trace formats ``import_trace`` reads."""
    return trace_io.FORMATS


def import_trace(path: Path, fmt: str, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Read a public trace (file or folder) as canonical steps and meta."""
    return trace_io.import_trace(path, fmt, skip_bad)


def save_trace(path: Path, steps: list[TraceStep], meta: TraceMeta) -> None:
    """Write a canonical trace; ``.jsonl`` or ``.parquet`` by suffix."""
    trace_io.write_trace(path, steps, meta)


def load_trace(path: Path, fmt: str | None = None, skip_bad: bool = False) -> tuple[pd.DataFrame, TraceMeta]:
    """A step DataFrame and meta: a canonical trace, or with ``fmt`` a public one imported on the
    fly; either is checked as a canonical trace is (``hetsim.workload.validate``)."""
    if fmt is None:
        return trace_io.read_trace_frame(path)
    steps, meta = trace_io.import_trace(path, fmt, skip_bad)
    return checked(path, fmt, steps_to_frame(steps)), meta


def checked(path: Path, fmt: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (imported from ``path``) when it is a usable trace; else ``WorkloadError``
    naming the file and the first bad step (the step as imported)."""
    problem = trace_problem(frame)
    if problem:
        raise WorkloadError(f"{path}: imported as {fmt}: {problem}")
    return frame


def convert_trace(source: Path, fmt: str, out: Path, skip_bad: bool = False) -> dict[str, Any]:
    """Import ``source`` and write it to ``out``; returns a summary of what was written. A trace
    that would be refused when read back is refused here, before anything is written."""
    steps, meta = import_trace(source, fmt, skip_bad)
    checked(source, fmt, steps_to_frame(steps))
    save_trace(out, steps, meta)
    return {
        "source": str(source), "format": fmt, "out": str(out),
        "sessions": len({s.session_id for s in steps}), "steps": len(steps),
        "llm_steps": sum(1 for s in steps if s.node_type is NodeType.LLM),
        "other_steps": sum(1 for s in steps if s.node_type is not NodeType.LLM),
        "skipped_lines": meta.skipped_lines, "token_count_method": meta.token_count_method,
    }


def describe_trace(
    path: Path, fmt: str | None = None, skip_bad: bool = False, decode_tokens_per_s: float = DEFAULT_DECODE_TOKENS_PER_S
) -> dict[str, Any]:
    """Statistics of a trace (see ``hetsim.workload.stats``) plus where it came from."""
    frame, meta = load_trace(path, fmt, skip_bad)
    try:
        stats = trace_stats(frame, decode_tokens_per_s).to_dict()
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
    return {
        "file": str(path), "format": meta.format, "source": meta.source, "license": meta.license,
        "token_count_method": meta.token_count_method, "skipped_lines": meta.skipped_lines,
        "stats": stats,
    }
