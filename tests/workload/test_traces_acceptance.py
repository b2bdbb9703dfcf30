"""Acceptance: importing each full public trace reproduces the figures its data README states.

The full traces live outside the repository, in ``../shared/data`` next to the repository root
(see ``/shared/data/README.md`` there); without them every test here is skipped with the reason.
Tolerances: half a unit of the last digit the README prints (it rounds), unless stated.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from hetsim.api.traces import load_trace
from hetsim.workload.stats import TraceStats, trace_stats

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"full public traces not present at {DATA}")


@cache
def stats_of(fmt: str, relative: str) -> TraceStats:
    frame, _ = load_trace(DATA / relative, fmt)
    return trace_stats(frame)


def test_azure_conversation_19366_requests_over_58_4_minutes() -> None:
    s = stats_of("azure-2023", "azure_llm_2023/AzureLLMInferenceTrace_conv.csv")
    assert (s.sessions, s.llm_calls) == (19_366, 19_366)
    assert s.duration_s / 60 == pytest.approx(58.4, abs=0.05)
    assert s.llm_request_rate_per_s == pytest.approx(5.53, abs=0.005)
    assert (s.input_tokens.mean, s.input_tokens.p50, s.input_tokens.p99) == pytest.approx((1155, 1020, 4142), abs=0.5)
    assert (s.output_tokens.mean, s.output_tokens.p50, s.output_tokens.p99) == pytest.approx((211, 129, 601), abs=0.5)


def test_azure_code_8819_requests_over_57_3_minutes() -> None:
    s = stats_of("azure-2023", "azure_llm_2023/AzureLLMInferenceTrace_code.csv")
    assert s.llm_calls == 8_819
    assert s.duration_s / 60 == pytest.approx(57.3, abs=0.05)
    assert s.llm_request_rate_per_s == pytest.approx(2.57, abs=0.005)
    assert (s.input_tokens.mean, s.input_tokens.p50, s.input_tokens.p99) == pytest.approx((2048, 1469, 7436), abs=0.5)
    # README p99 251: numpy's linear interpolation gives 251.46
    assert (s.output_tokens.mean, s.output_tokens.p50, s.output_tokens.p99) == pytest.approx((28, 13, 251), abs=0.5)


def test_mooncake_conversation_12031_requests_and_36_6_percent_infinite_cache_hits() -> None:
    s = stats_of("mooncake", "mooncake_fast25/conversation_trace.jsonl")
    assert s.llm_calls == 12_031
    assert s.duration_s / 60 == pytest.approx(58.9, abs=0.05)
    inputs = (s.input_tokens.mean, s.input_tokens.p50, s.input_tokens.p99)
    assert inputs == pytest.approx((12_035, 6_909, 85_400), abs=0.5)
    assert s.output_tokens.mean == pytest.approx(343, abs=0.5)
    assert (s.block_references, s.distinct_blocks) == (288_500, 182_790)
    assert s.block_hit_ratio == pytest.approx(0.366, abs=0.0005)


def test_mooncake_synthetic_3993_requests_and_64_0_percent_infinite_cache_hits() -> None:
    s = stats_of("mooncake", "mooncake_fast25/synthetic_trace.jsonl")
    assert s.llm_calls == 3_993
    assert s.duration_s / 60 == pytest.approx(17.0, abs=0.05)
    assert s.input_tokens.mean == pytest.approx(15_325, abs=0.5)
    assert s.output_tokens.mean == pytest.approx(149, abs=0.5)
    assert s.block_hit_ratio == pytest.approx(0.640, abs=0.0005)


@pytest.mark.parametrize(
    ("folder", "sessions", "calls", "max_calls"),
    [("miniswe", 20, 402, 30), ("magagent", 25, 746, 44), ("taubench", 24, 471, None)],  # taubench: 1 of 25 files empty
)
def test_lmcache_sessions_and_calls(folder: str, sessions: int, calls: int, max_calls: int | None) -> None:
    frame, meta = load_trace(DATA / "lmcache_agent_trace" / folder, "lmcache")
    assert (frame["session_id"].nunique(), len(frame)) == (sessions, calls)
    if max_calls is not None:
        assert frame.groupby("session_id").size().max() == max_calls
    assert "regex-bpe-v1" in meta.token_count_method


def test_lmcache_miniswe_session_length_and_call_gaps_match_the_readme() -> None:
    """README: session length p50 21 s; inter-call gap p50 1 s, max 4 s (rounded to whole seconds)."""
    frame, _ = load_trace(DATA / "lmcache_agent_trace" / "miniswe", "lmcache")
    by_session = frame.groupby("session_id")["arrival_s"]
    assert (by_session.max() - by_session.min()).median() == pytest.approx(21, abs=1)
    gaps = by_session.diff().dropna()
    assert gaps.median() == pytest.approx(1, abs=0.5) and gaps.max() == pytest.approx(4, abs=0.5)


def test_lmcache_miniswe_prompts_extend_so_most_prompt_tokens_are_a_reusable_prefix() -> None:
    assert stats_of("lmcache", "lmcache_agent_trace/miniswe").cached_prefix_ratio == pytest.approx(0.95, abs=0.02)


def test_trtllm_django_4_llm_calls_and_191_ms_of_tools() -> None:
    s = stats_of("trtllm", "trtllm_trace_replay_examples/django__django-16801.trace.json")
    assert (s.llm_calls, s.tool_calls) == (4, 4)
    assert s.tool_s == pytest.approx(0.191, abs=0.0005)


def test_trtllm_matplotlib_23_llm_calls_and_47_4_s_of_tools() -> None:
    frame, _ = load_trace(DATA / "trtllm_trace_replay_examples" / "matplotlib__matplotlib-23412.trace.json", "trtllm")
    s = trace_stats(frame)
    assert s.llm_calls == 23
    assert s.tool_s == pytest.approx(47.4, abs=0.05)
    prompts = frame.loc[frame["node_type"] == "llm", "input_tokens"]
    assert prompts.iloc[0] == pytest.approx(4_300, abs=50) and prompts.iloc[-1] == pytest.approx(11_900, abs=50)
    assert frame["duration_s"].max() == pytest.approx(39.1, abs=0.05)  # the one long shell call


def test_tracelab_19_rounds_and_19_tool_calls_in_2_sessions() -> None:
    s = stats_of("tracelab", "tracelab_example/round_trace.sanitized.jsonl")
    assert (s.sessions, s.llm_calls, s.tool_calls) == (2, 19, 19)
    assert s.llm_busy_method["measured"] == 19
