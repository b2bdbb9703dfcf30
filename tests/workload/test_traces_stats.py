"""Trace statistics on small hand-made traces whose answers are known."""

from __future__ import annotations

import pandas as pd
import pytest

from hetsim.errors import WorkloadError
from hetsim.workload.frame import frame_to_steps, steps_to_frame
from hetsim.workload.stats import interarrival_cv, summarize, trace_stats
from hetsim.workload.trace import NodeType, TraceStep

LLM, TOOL = NodeType.LLM, NodeType.TOOL


def step(session: str, step_id: int, arrival: float, kind: NodeType = LLM, **fields: object) -> TraceStep:
    return TraceStep(session_id=session, step_id=step_id, arrival_s=arrival, node=kind.value, node_type=kind, **fields)


def agent_trace() -> list[TraceStep]:
    """Two sessions: LLM (2 s) -> tool (3 s) -> LLM (1 s, no duration given -> gap or decode proxy)."""
    return [
        step("a", 0, 0.0, input_tokens=100, output_tokens=10, duration_s=2.0),
        step("a", 1, 2.0, TOOL, parents=(0,), duration_s=3.0),
        step("a", 2, 5.0, parents=(1,), input_tokens=300, output_tokens=50, cached_prefix_tokens=110),
        step("b", 0, 10.0, input_tokens=200, output_tokens=20, duration_s=1.0),
    ]


def test_counts_sessions_steps_llm_and_tool_calls() -> None:
    stats = trace_stats(steps_to_frame(agent_trace()))
    assert (stats.sessions, stats.steps, stats.llm_calls, stats.tool_calls) == (2, 4, 3, 1)
    assert stats.llm_calls_per_session.mean == 1.5


def test_duration_is_first_to_last_arrival_and_rate_counts_llm_steps() -> None:
    stats = trace_stats(steps_to_frame(agent_trace()))
    assert stats.duration_s == 10.0
    assert stats.llm_request_rate_per_s == pytest.approx(0.3)


def test_tool_share_uses_measured_llm_time_then_decode_proxy_when_nothing_waits() -> None:
    stats = trace_stats(steps_to_frame(agent_trace()), decode_tokens_per_s=50.0)
    # LLM busy: 2 s + 1 s measured, step a/2 has no child -> 50 tokens / 50 tok/s = 1 s
    assert stats.llm_busy_method == {"measured": 2, "gap_to_next_step": 0, "decode_proxy": 1}
    assert stats.llm_busy_s == pytest.approx(4.0)
    assert stats.tool_time_share == pytest.approx(3.0 / 7.0)


def test_llm_busy_falls_back_to_the_gap_before_the_next_step() -> None:
    steps = [step("a", 0, 0.0, output_tokens=1000), step("a", 1, 4.0, TOOL, parents=(0,), duration_s=1.0)]
    stats = trace_stats(steps_to_frame(steps))
    assert stats.llm_busy_method["gap_to_next_step"] == 1
    assert stats.tool_time_share == pytest.approx(1.0 / 5.0)


def test_tool_share_is_unknown_not_zero_without_tool_durations() -> None:
    steps = [step("a", 0, 0.0), step("a", 1, 1.0, parents=(0,))]
    assert trace_stats(steps_to_frame(steps)).tool_time_share is None


def test_block_hit_ratio_counts_references_seen_before() -> None:
    steps = [
        step("r0", 0, 0.0, prefix_hash_ids=(1, 2, 3)),
        step("r1", 0, 1.0, prefix_hash_ids=(1, 2, 4)),
        step("r2", 0, 2.0, prefix_hash_ids=(1, 5)),
    ]
    stats = trace_stats(steps_to_frame(steps))
    assert (stats.block_references, stats.distinct_blocks) == (8, 5)
    assert stats.block_hit_ratio == pytest.approx(3 / 8)


def test_cached_prefix_ratio_only_over_steps_that_give_it() -> None:
    stats = trace_stats(steps_to_frame(agent_trace()))
    assert stats.cached_prefix_ratio == pytest.approx(110 / 300)
    assert trace_stats(steps_to_frame([step("a", 0, 0.0, input_tokens=5)])).cached_prefix_ratio is None


def test_token_summaries_are_over_llm_steps() -> None:
    stats = trace_stats(steps_to_frame(agent_trace()))
    assert stats.input_tokens.count == 3
    assert stats.input_tokens.mean == pytest.approx(200.0)
    assert stats.input_tokens.p50 == 200.0


def test_interarrival_cv_is_zero_for_a_regular_process_and_undefined_for_too_few_gaps() -> None:
    assert interarrival_cv(pd.Series([0.0, 1.0, 2.0, 3.0]).to_numpy()) == 0.0
    assert interarrival_cv(pd.Series([0.0, 1.0]).to_numpy()) is None


def test_interarrival_cv_of_a_poisson_process_is_near_one() -> None:
    import numpy as np

    times = np.cumsum(np.random.default_rng(7).exponential(1.0, 20_000))
    assert interarrival_cv(times) == pytest.approx(1.0, abs=0.03)


def test_summarize_empty_sample_is_all_none() -> None:
    assert summarize(pd.Series([], dtype=float).to_numpy()).mean is None


def test_empty_trace_and_wrong_frame_are_rejected() -> None:
    with pytest.raises(WorkloadError, match="no steps"):
        trace_stats(steps_to_frame([]))
    with pytest.raises(WorkloadError, match="missing columns"):
        trace_stats(pd.DataFrame({"session_id": ["a"]}))


def test_frame_round_trip_keeps_every_field() -> None:
    steps = [*agent_trace(), step("c", 0, 1.5, model="llama-3-70b", branch="0/1", units=2.5, prefix_hash_ids=(9,))]
    assert frame_to_steps(steps_to_frame(steps)) == steps
