"""Trace questions for the CLI and notebooks: import public traces, save/load canonical ones, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.errors import WorkloadError
from hetsim.io import traces as trace_io
from hetsim.specs.profile import HOURS_PER_DAY, DayProfile
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


SECONDS_PER_HOUR = 3600.0


def trace_profile(path: Path, fmt: str | None = None, skip_bad: bool = False, start_hour: float = 0.0) -> dict[str, Any]:
    """Sessions/s per hour-of-day window of a trace: sessions starting (a session's first step) in
    each hour of the day, over the seconds the trace covers in that hour (across days; the trace's
    time 0 is ``start_hour`` o'clock). An hour the trace never covers has no rate (None)."""
    frame, meta = load_trace(path, fmt, skip_bad)
    starts = frame.groupby("session_id")["arrival_s"].min().to_numpy(dtype=float) + start_hour * SECONDS_PER_HOUR
    if len(starts) == 0:
        raise WorkloadError(f"{path}: expected sessions in the trace, got none")
    first, last = float(starts.min()), float(starts.max())
    counts = [0] * HOURS_PER_DAY
    for start in starts:
        counts[int(start // SECONDS_PER_HOUR) % HOURS_PER_DAY] += 1
    covered = [0.0] * HOURS_PER_DAY
    hour = int(first // SECONDS_PER_HOUR)
    while hour * SECONDS_PER_HOUR <= last:
        low, high = max(first, hour * SECONDS_PER_HOUR), min(last, (hour + 1) * SECONDS_PER_HOUR)
        covered[hour % HOURS_PER_DAY] += max(0.0, high - low)
        hour += 1
    rates = [c / s if s > 0 else None for c, s in zip(counts, covered, strict=True)]
    return {"file": str(path), "format": meta.format, "source": meta.source, "start_hour": start_hour,
            "sessions": len(starts), "span_s": last - first,
            "hours": [{"hour": h, "sessions": counts[h], "covered_s": covered[h], "sessions_per_s": rates[h]}
                      for h in range(HOURS_PER_DAY)]}  # fmt: skip


def profile_of(described: dict[str, Any]) -> DayProfile:
    """The day profile (sessions/s per hour) of ``trace_profile``'s answer; WorkloadError when an
    hour has no sessions (a profile needs a rate > 0 in every hour)."""
    empty = [row["hour"] for row in described["hours"] if not row["sessions_per_s"]]
    if empty:
        raise WorkloadError(f"{described['file']}: no sessions in hour(s) {empty} of the day; a profile needs a rate > 0 "
                            "in every hour (a longer trace, or --start-hour to align it)")  # fmt: skip
    return DayProfile(name=Path(described["file"]).stem, unit="sessions/s",
                      source=f"measured from {described['file']} ({described['format']}; {described['source']})",
                      hourly=tuple(row["sessions_per_s"] for row in described["hours"]))  # fmt: skip


def save_profile(path: Path, profile: DayProfile) -> Path:
    """Write a day profile file (a fleet's demand entry may name it as ``profile``)."""
    from hetsim.io.profiles import write_profile  # loaded on use: importing a trace needs none of it

    return write_profile(path, profile)
