"""Trace questions for the CLI and notebooks: import public traces, save/load canonical ones, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.io import traces as trace_io
from hetsim.workload.frame import steps_to_frame
from hetsim.workload.stats import DEFAULT_DECODE_TOKENS_PER_S, trace_stats
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep


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
    """A step DataFrame and meta: a canonical trace, or with ``fmt`` a public one imported on the fly."""
    if fmt is None:
        return trace_io.read_trace_frame(path)
    steps, meta = trace_io.import_trace(path, fmt, skip_bad)
    return steps_to_frame(steps), meta


def convert_trace(source: Path, fmt: str, out: Path, skip_bad: bool = False) -> dict[str, Any]:
    """Import ``source`` and write it to ``out``; returns a summary of what was written."""
    steps, meta = import_trace(source, fmt, skip_bad)
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
    return {
        "file": str(path), "format": meta.format, "source": meta.source, "license": meta.license,
        "token_count_method": meta.token_count_method, "skipped_lines": meta.skipped_lines,
        "stats": trace_stats(frame, decode_tokens_per_s).to_dict(),
    }
