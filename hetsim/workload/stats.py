"""Summary statistics of a trace: a pure function of the step DataFrame (``hetsim.workload.frame``).

Definitions (all times from the trace's own clock, seconds):

* ``duration_s``: last step arrival minus first step arrival.
* ``llm_request_rate_per_s``: LLM steps / ``duration_s``.
* ``session_interarrival_cv`` / ``llm_interarrival_cv``: coefficient of variation (population
  standard deviation / mean) of the gaps between consecutive session starts (a session starts at
  its first step's arrival) and between consecutive LLM step arrivals. 1 for a Poisson process,
  above 1 bursty, below 1 regular; None with fewer than two gaps or a zero mean gap.
* Token summaries are over LLM steps; percentiles use numpy's default (linear) interpolation.
* ``tool_time_share = tool_s / (tool_s + llm_busy_s)`` where ``tool_s`` sums ``duration_s`` of
  the non-LLM steps that give one, and ``llm_busy_s`` sums an LLM-busy proxy per LLM step: its
  measured ``duration_s`` when given; else, when the trace has real timestamps, the gap from its
  arrival to the earliest arrival of a step that waits for it (an upper bound: it includes agent
  overhead); else ``output_tokens / decode_tokens_per_s`` (a decode-only lower bound, default
  50 tokens/s, a typical single-stream decode speed). ``llm_busy_method`` counts the steps
  each proxy served. None when no non-LLM step gives a duration (tool time unknown, not zero).
* ``block_hit_ratio``: with an infinite prefix cache, the share of prefix-block references
  (``prefix_hash_ids`` over all steps) whose id appeared before: (references - distinct ids) /
  references. None without block ids.
* ``cached_prefix_ratio``: sum of ``cached_prefix_tokens`` / sum of ``input_tokens`` over the LLM
  steps that give ``cached_prefix_tokens``. None when no step gives it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hetsim.errors import WorkloadError
from hetsim.workload.trace import TRACE_COLUMNS, NodeType

DEFAULT_DECODE_TOKENS_PER_S = 50.0
"""Decode speed of the last-resort LLM-busy proxy (one request alone on a GPU: tens of tokens/s)."""


@dataclass(frozen=True)
class Summary:
    """Mean and percentiles of one quantity (None for an empty sample)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class TraceStats:
    """What a trace looks like; every field is defined in the module docstring."""

    sessions: int
    steps: int
    llm_calls: int
    tool_calls: int
    llm_calls_per_session: Summary
    duration_s: float
    llm_request_rate_per_s: float | None
    session_interarrival_cv: float | None
    llm_interarrival_cv: float | None
    input_tokens: Summary
    output_tokens: Summary
    reasoning_tokens_total: int
    tool_s: float
    llm_busy_s: float
    tool_time_share: float | None
    block_references: int
    distinct_blocks: int
    block_hit_ratio: float | None
    cached_prefix_ratio: float | None
    llm_busy_method: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trace_stats(frame: pd.DataFrame, decode_tokens_per_s: float = DEFAULT_DECODE_TOKENS_PER_S) -> TraceStats:
    """Compute :class:`TraceStats` of a step frame.

    Raises:
        WorkloadError: the frame lacks trace columns or has no steps.
    """
    missing = [c for c in TRACE_COLUMNS if c not in frame.columns]
    if missing:
        raise WorkloadError(f"trace frame: missing columns {missing} (expected the columns of hetsim.workload.trace)")
    if frame.empty:
        raise WorkloadError("trace has no steps: nothing to summarise")
    is_llm = (frame["node_type"] == NodeType.LLM.value).to_numpy()
    llm = frame[is_llm]
    arrivals = frame["arrival_s"].to_numpy(dtype=float)
    duration = float(arrivals.max() - arrivals.min())
    tool_s, tool_with_duration = _tool_seconds(frame[~is_llm])
    busy, methods = _llm_busy(frame, is_llm, decode_tokens_per_s)
    references, distinct = _block_counts(frame["prefix_hash_ids"])
    per_session = llm.groupby("session_id").size().reindex(frame["session_id"].unique(), fill_value=0)
    session_starts = frame.groupby("session_id")["arrival_s"].min().to_numpy(dtype=float)
    return TraceStats(
        sessions=int(frame["session_id"].nunique()),
        steps=len(frame),
        llm_calls=len(llm),
        tool_calls=int((~is_llm).sum()),
        llm_calls_per_session=summarize(per_session.to_numpy(dtype=float)),
        duration_s=duration,
        llm_request_rate_per_s=len(llm) / duration if duration > 0 else None,
        session_interarrival_cv=interarrival_cv(session_starts),
        llm_interarrival_cv=interarrival_cv(llm["arrival_s"].to_numpy(dtype=float)),
        input_tokens=summarize(llm["input_tokens"].to_numpy(dtype=float)),
        output_tokens=summarize(llm["output_tokens"].to_numpy(dtype=float)),
        reasoning_tokens_total=int(llm["reasoning_tokens"].sum()),
        tool_s=tool_s,
        llm_busy_s=busy,
        tool_time_share=tool_s / (tool_s + busy) if tool_with_duration and tool_s + busy > 0 else None,
        block_references=references,
        distinct_blocks=distinct,
        block_hit_ratio=(references - distinct) / references if references else None,
        cached_prefix_ratio=_cached_prefix_ratio(llm),
        llm_busy_method=methods,
    )


def summarize(values: np.ndarray) -> Summary:
    """Count, mean, p50, p90 and p99 of ``values``."""
    if values.size == 0:
        return Summary(0, None, None, None, None)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return Summary(int(values.size), float(values.mean()), float(p50), float(p90), float(p99))


def interarrival_cv(times: np.ndarray) -> float | None:
    """Coefficient of variation of the gaps between sorted ``times`` (None if undefined)."""
    gaps = np.diff(np.sort(times))
    if gaps.size < 2 or gaps.mean() <= 0:
        return None
    return float(gaps.std() / gaps.mean())


def _tool_seconds(non_llm: pd.DataFrame) -> tuple[float, int]:
    durations = non_llm["duration_s"].to_numpy(dtype=float)
    given = ~np.isnan(durations)
    return float(durations[given].sum()), int(given.sum())


def _llm_busy(frame: pd.DataFrame, is_llm: np.ndarray, decode_tokens_per_s: float) -> tuple[float, dict[str, int]]:
    """Sum of the LLM-busy proxy over LLM steps, and how many steps each proxy served."""
    llm = frame[is_llm]
    measured = llm["duration_s"].to_numpy(dtype=float)
    gap = _gap_to_first_child(frame, llm)
    decode = llm["output_tokens"].to_numpy(dtype=float) / decode_tokens_per_s
    use_measured = ~np.isnan(measured)
    use_gap = ~use_measured & (gap > 0)
    use_decode = ~use_measured & ~use_gap
    busy = np.where(use_measured, measured, np.where(use_gap, gap, decode))
    methods = {
        "measured": int(use_measured.sum()),
        "gap_to_next_step": int(use_gap.sum()),
        "decode_proxy": int(use_decode.sum()),
    }
    return float(busy.sum()), methods


def _gap_to_first_child(frame: pd.DataFrame, llm: pd.DataFrame) -> np.ndarray:
    """Per LLM step: earliest arrival of a step listing it as parent, minus its arrival (NaN if none)."""
    edges = frame[["session_id", "parents", "arrival_s"]].explode("parents").dropna(subset=["parents"])
    if edges.empty:
        return np.full(len(llm), np.nan)
    edges = edges.astype({"parents": np.int64})
    first_child = edges.groupby(["session_id", "parents"])["arrival_s"].min()
    keys = pd.MultiIndex.from_arrays([llm["session_id"], llm["step_id"].astype(np.int64)])
    child_arrival = first_child.reindex(keys).to_numpy(dtype=float)
    return child_arrival - llm["arrival_s"].to_numpy(dtype=float)


def _block_counts(hash_ids: pd.Series) -> tuple[int, int]:
    blocks = np.fromiter(itertools.chain.from_iterable(hash_ids), dtype=np.int64)
    return int(blocks.size), int(np.unique(blocks).size)


def _cached_prefix_ratio(llm: pd.DataFrame) -> float | None:
    given = llm["cached_prefix_tokens"].notna().to_numpy()
    if not given.any():
        return None
    total_input = float(llm["input_tokens"].to_numpy()[given].sum())
    cached = float(llm["cached_prefix_tokens"].to_numpy(dtype=float, na_value=math.nan)[given].sum())
    return cached / total_input if total_input > 0 else None
