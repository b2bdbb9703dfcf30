"""Trace synthesis: arrivals and sessions match their spec; same seed, same trace; graphs are honoured."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from workload_builders import agent_loop

from hetsim.errors import WorkloadError
from hetsim.io.workloads import list_workload_files, load_workload
from hetsim.specs.workload import WorkloadSpec
from hetsim.workload.arrivals import MAX_SESSIONS, arrival_times, with_rate
from hetsim.workload.nodes import STEP_FIELD_ORDER
from hetsim.workload.synth import synthesize
from hetsim.workload.trace import TRACE_COLUMNS, NodeType, TraceStep

SESSIONS = 10_000
PROPERTY = settings(max_examples=6, derandomize=True, deadline=None, database=None)
SHIPPED = [path.stem for path in list_workload_files()]


def single_call(arrival: dict[str, Any], prompt: Any = 100, output: Any = 50) -> WorkloadSpec:
    """A one-LLM-call workload with the given arrival process and token distributions."""
    return WorkloadSpec.model_validate(
        {
            "schema_version": 1,
            "name": "single-call",
            "nodes": {"chat": {"type": "llm", "model": "llama-3-8b", "prompt_tokens": prompt, "output_tokens": output}},
            "arrival": arrival,
        }
    )


def session_starts(steps: list[TraceStep]) -> np.ndarray:
    return np.array([s.arrival_s for s in steps if s.step_id == 0])


def inter_arrival_cv(starts: np.ndarray) -> float:
    gaps = np.diff(starts)
    return float(gaps.std() / gaps.mean())


def by_session(steps: list[TraceStep]) -> dict[str, list[TraceStep]]:
    sessions: dict[str, list[TraceStep]] = defaultdict(list)
    for step in steps:
        sessions[step.session_id].append(step)
    return sessions


@PROPERTY
@given(rate=st.floats(0.5, 50.0), seed=st.integers(0, 2**32 - 1))
def test_poisson_arrivals_have_the_rate_and_cv_one(rate: float, seed: int) -> None:
    duration = SESSIONS / rate
    trace = synthesize(single_call({"process": "poisson", "rate_per_s": rate}), duration, seed)
    starts = session_starts(trace.steps)
    assert len(starts) / duration == pytest.approx(rate, rel=0.05)
    assert inter_arrival_cv(starts) == pytest.approx(1.0, rel=0.05)


@PROPERTY
@given(rate=st.floats(0.5, 50.0), cv=st.floats(0.3, 2.5), seed=st.integers(0, 2**32 - 1))
def test_gamma_arrivals_have_the_rate_and_cv(rate: float, cv: float, seed: int) -> None:
    duration = SESSIONS / rate
    trace = synthesize(single_call({"process": "gamma", "rate_per_s": rate, "cv": cv}), duration, seed)
    starts = session_starts(trace.steps)
    assert len(starts) / duration == pytest.approx(rate, rel=0.05)
    assert inter_arrival_cv(starts) == pytest.approx(cv, rel=0.1)


@PROPERTY
@given(
    prompt_mean=st.floats(50, 8000),
    output_mean=st.floats(20, 4000),
    cv=st.floats(0.05, 1.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_token_means_match_the_spec(prompt_mean: float, output_mean: float, cv: float, seed: int) -> None:
    spec = single_call(
        {"process": "poisson", "rate_per_s": 10.0},
        prompt={"dist": "lognormal", "mean": prompt_mean, "cv": cv},
        output={"dist": "gamma", "mean": output_mean, "cv": cv},
    )
    trace = synthesize(spec, SESSIONS / 10.0, seed)
    assert len(trace.steps) == pytest.approx(SESSIONS, rel=0.05)
    assert np.mean([s.input_tokens for s in trace.steps]) == pytest.approx(prompt_mean, rel=0.05)
    assert np.mean([s.output_tokens for s in trace.steps]) == pytest.approx(output_mean, rel=0.05)


@PROPERTY
@given(name=st.sampled_from(SHIPPED), seed=st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_trace(name: str, seed: int) -> None:
    spec = load_workload(name)
    first = synthesize(spec, 120.0, seed, rate_per_s=1.0)
    second = synthesize(spec, 120.0, seed, rate_per_s=1.0)
    assert first.steps == second.steps
    assert first.meta == second.meta
    assert first.meta.extra["seed"] == seed


def test_another_seed_gives_another_trace() -> None:
    spec = load_workload("react-tool-agent")
    assert synthesize(spec, 60.0, 1).steps != synthesize(spec, 60.0, 2).steps


@PROPERTY
@given(name=st.sampled_from(SHIPPED), seed=st.integers(0, 2**32 - 1))
def test_every_parent_precedes_its_step(name: str, seed: int) -> None:
    trace = synthesize(load_workload(name), 200.0, seed, rate_per_s=1.0)
    for steps in by_session(trace.steps).values():
        assert [s.step_id for s in steps] == list(range(len(steps)))
        assert steps[0].parents == ()
        for step in steps[1:]:
            assert step.parents, "every step after the first waits for something"
            assert all(0 <= parent < step.step_id for parent in step.parents)
            assert step.arrival_s == steps[0].arrival_s


@PROPERTY
@given(mean=st.floats(0.5, 40.0), max_iterations=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_loops_never_exceed_max_iterations(mean: float, max_iterations: int, seed: int) -> None:
    data = agent_loop()
    data["edges"][1]["loop"] = {
        "iterations": {"dist": "gamma", "mean": mean, "cv": 1.0},
        "max_iterations": max_iterations,
    }
    trace = synthesize(WorkloadSpec.model_validate(data), 500.0, seed)
    searches = [sum(s.node == "search" for s in steps) for steps in by_session(trace.steps).values()]
    assert max(searches) <= max_iterations
    if mean > 2 * max_iterations:
        assert max(searches) == max_iterations


def test_shipped_loops_stay_within_their_bounds() -> None:
    trace = synthesize(load_workload("react-tool-agent"), 3000.0, 7, rate_per_s=1.0)
    for steps in by_session(trace.steps).values():
        tools_in_turn, user_turns = 0, 0
        for step in steps:
            if step.node == "tool":
                tools_in_turn += 1
                assert tools_in_turn <= 10
            elif step.node == "user":
                tools_in_turn, user_turns = 0, user_turns + 1
        assert user_turns <= 21


@pytest.fixture(scope="module")
def swe_trace() -> list[TraceStep]:
    """3,000 sessions of the SWE agent (about 120k steps)."""
    return synthesize(load_workload("swe-coding-agent"), 3000.0, 3, rate_per_s=1.0).steps


def test_branch_probabilities_are_followed(swe_trace: list[TraceStep]) -> None:
    counts = Counter(s.node for s in swe_trace if s.node_type is not NodeType.LLM)
    assert counts["shell"] / (counts["shell"] + counts["file_tool"]) == pytest.approx(0.556, abs=0.01)


def test_loop_count_matches_its_distribution(swe_trace: list[TraceStep]) -> None:
    calls = [sum(s.node_type is NodeType.LLM for s in steps) for steps in by_session(swe_trace).values()]
    assert np.mean(calls) == pytest.approx(20.1, rel=0.05)  # miniswe: 20.1 calls per session


def test_growing_context_is_carried_as_cached_prefix(swe_trace: list[TraceStep]) -> None:
    for steps in by_session(swe_trace[:5000]).values():
        calls = [s for s in steps if s.node_type is NodeType.LLM]
        assert calls[0].cached_prefix_tokens == 2827  # the shared system prompt only
        for before, after in itertools.pairwise(calls):
            assert after.cached_prefix_tokens == before.input_tokens + before.output_tokens
            assert after.input_tokens > after.cached_prefix_tokens


def test_fan_out_siblings_share_a_parent_and_the_join_waits_for_all() -> None:
    trace = synthesize(load_workload("deep-research"), 2000.0, 11, rate_per_s=0.2)
    copies = Counter()
    for steps in by_session(trace.steps).values():
        planner, synthesis = steps[0], steps[-1]
        assert (planner.node, synthesis.node) == ("planner", "synthesis")
        firsts = [s for s in steps if s.parents == (planner.step_id,)]
        assert len(firsts) >= 2 and {s.node for s in firsts} == {"researcher"}
        assert len({s.branch for s in firsts}) == len(firsts)
        assert len(synthesis.parents) == len(firsts)
        for parent in synthesis.parents:
            assert steps[parent].branch is not None
        assert synthesis.branch is None
        assert synthesis.cached_prefix_tokens == planner.input_tokens + planner.output_tokens
        copies[len(firsts)] += 1
    assert set(copies) <= {2, 3, 4, 5}


def test_diurnal_arrivals_follow_the_daily_curve(rng: np.random.Generator) -> None:
    spec = single_call({"process": "diurnal", "mean_rate_per_s": 0.5, "peak_to_trough": 4.0, "period_s": 10000.0})
    starts = arrival_times(spec.arrival, 40000.0, rng)
    assert len(starts) / 40000.0 == pytest.approx(0.5, rel=0.05)
    phase = (starts % 10000.0) / 10000.0
    peak = np.sum((phase < 0.05) | (phase > 0.95))
    trough = np.sum(np.abs(phase - 0.5) < 0.05)
    assert peak / trough == pytest.approx(4.0, rel=0.2)


def test_closed_loop_users_start_sessions_a_think_time_apart(rng: np.random.Generator) -> None:
    think = {"dist": "lognormal", "mean": 20.0, "cv": 0.5}
    spec = single_call({"process": "closed_loop", "users": 50, "think_time_s": think})
    starts = arrival_times(spec.arrival, 10000.0, rng)
    assert len(starts) / 10000.0 == pytest.approx(50 / 20.0, rel=0.05)


def test_rate_override_changes_the_rate_only() -> None:
    spec = load_workload("rag-chatbot")
    faster = with_rate(spec.arrival, 20.0)
    assert (faster.rate_per_s, faster.cv) == (20.0, spec.arrival.cv)


def test_closed_loop_has_no_rate_to_override() -> None:
    spec = single_call({"process": "closed_loop", "users": 5, "think_time_s": 3.0})
    with pytest.raises(WorkloadError, match=r"^rate: a closed-loop arrival process has no rate"):
        synthesize(spec, 100.0, 0, rate_per_s=2.0)


def test_bad_seed_duration_and_rate_are_one_line_errors() -> None:
    spec = load_workload("voice-agent")
    with pytest.raises(WorkloadError, match=r"^seed: expected an integer >= 0, got -1$"):
        synthesize(spec, 10.0, -1)
    with pytest.raises(WorkloadError, match=r"^duration: expected a positive number of seconds, got 0\.0$"):
        synthesize(spec, 0.0, 1)
    with pytest.raises(WorkloadError, match=r"^rate: expected a positive number of sessions per second, got -2"):
        synthesize(spec, 10.0, 1, rate_per_s=-2.0)
    with pytest.raises(WorkloadError, match=r"^duration: about .* sessions at 1000/s; expected at most"):
        synthesize(spec, MAX_SESSIONS, 1, rate_per_s=1000.0)


def test_meta_records_how_the_trace_was_made() -> None:
    trace = synthesize(load_workload("voice-agent"), 30.0, 9, rate_per_s=2.0)
    extra = trace.meta.extra
    assert trace.meta.format == "synthetic"
    assert (extra["workload"], extra["rate_per_s"], extra["duration_s"], extra["seed"]) == ("voice-agent", 2.0, 30.0, 9)
    assert extra["sessions"] == len(session_starts(trace.steps))
    assert extra["node_units"]["stt"] == "audio_s"


def test_steps_are_built_in_trace_column_order() -> None:
    assert STEP_FIELD_ORDER == TRACE_COLUMNS


def test_non_llm_steps_carry_their_amounts() -> None:
    trace = synthesize(load_workload("rag-chatbot"), 20.0, 2)
    step = {s.node: s for s in trace.steps if s.session_id == trace.steps[0].session_id}
    assert step["rerank"].units == 50 and step["rerank"].input_tokens == 50 * 256
    assert step["retrieve"].node_type is NodeType.RETRIEVAL and step["retrieve"].units == 1
    assert step["guard_in"].input_tokens > 400 and step["guard_in"].cached_prefix_tokens == 400
    voice = synthesize(load_workload("voice-agent"), 20.0, 2)
    search = [s for s in voice.steps if s.node == "search"]
    assert search and all(s.node_type is NodeType.EXTERNAL and s.duration_s > 0 for s in search)


@pytest.mark.parametrize(
    "name", ["voice-agent", "rag-chatbot", pytest.param("swe-coding-agent", marks=pytest.mark.slow)]
)
def test_ten_thousand_sessions_are_synthesized(name: str) -> None:
    """10k sessions of each shipped workload (how fast: benchmarks/synth_sessions.py, target 10 s)."""
    trace = synthesize(load_workload(name), SESSIONS / 5.0, 0, rate_per_s=5.0)
    assert trace.meta.extra["sessions"] == pytest.approx(SESSIONS, rel=0.05)
