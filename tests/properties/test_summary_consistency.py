"""A run's summary cannot contradict itself: within every metric family min <= p50 <= p90 <= p99 <=
max and min <= mean <= max; a call's worst gap ranks at or above its mean gap at every
percentile; TTFT never exceeds call end-to-end; every call is counted (completed, dropped or
unfinished); an SLA is met exactly when its value at the percentile is within the objective, with
dropped and unfinished calls counted as misses. Checked on generated records and on simulations
of random loads, overloaded ones included."""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.metrics.calls import with_call_latencies
from hetsim.metrics.summary import Expected, Sla, summarize
from hetsim.sim.build import build_simulation
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, trace_frame

RELATIVE = 1e-9  # a mean of equal gaps may round one ulp past their maximum


def _families(summary: Any, path: str = "") -> list[tuple[str, dict[str, float]]]:
    """Every percentile family in the summary (a dict with p50), with its dotted path."""
    if isinstance(summary, dict):
        found = [(path, summary)] if "p50" in summary else []
        return found + [f for key, value in summary.items() for f in _families(value, f"{path}.{key}")]
    return []


def _le(a: float, b: float) -> bool:
    return a <= b + RELATIVE * max(abs(a), abs(b), 1e-12)


def assert_consistent(summary: dict[str, Any]) -> None:
    families = _families(summary)
    assert families, "no percentile family found"
    for path, family in families:
        if family.get("count", 1) == 0:
            assert all(math.isnan(family[k]) for k in ("p50", "p90", "p99", "mean", "min", "max")), path
            continue
        chain = [family["min"], family["p50"], family["p90"], family["p99"], family["max"]]
        assert all(_le(a, b) for a, b in itertools.pairwise(chain)), (path, family)
        assert _le(family["min"], family["mean"]) and _le(family["mean"], family["max"]), (path, family)
    calls = summary["llm_calls"]
    assert calls["completed"] + calls["dropped"] + calls["unfinished"] == calls["count"]
    worst, mean = calls["tbt_max_s"], calls["tbt_mean_s"]
    assert worst["count"] == mean["count"]  # the same calls: those with a gap between tokens
    if worst["count"]:
        for key in ("min", "p50", "p90", "p99", "mean", "max"):
            assert _le(mean[key], worst[key]), (key, mean, worst)
        assert _le(worst["max"], calls["tbt_s"]["max"]) and _le(calls["tbt_s"]["max"], worst["max"])
    if calls["ttft_s"]["count"]:
        for key in ("min", "p50", "p90", "p99", "mean", "max"):
            assert _le(calls["ttft_s"][key], calls["e2e_s"][key]), key
    for name, objective in (summary["sla"] or {}).items():
        if name == "all_met" or math.isnan(objective["value_at_percentile_s"]):
            continue
        assert objective["met"] == (objective["value_at_percentile_s"] <= objective["objective_s"]), (name, objective)
    assert summary["load"]["overloaded"] in (True, False, None)
    assert summary["load"]["verdict"].startswith(("overloaded: ", "not overloaded: ", "not assessed: "))


# ---- generated records ------------------------------------------------------------------------------

_call = st.fixed_dictionaries({
    "arrival_s": st.floats(0.0, 100.0),
    "ttft_s": st.floats(1e-4, 5.0),
    "gaps": st.lists(st.floats(1e-4, 2.0), max_size=12),
    "completed": st.sampled_from([True, True, True, False]),
})  # fmt: skip


def _records(calls: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    rows, gaps, steps = [], [], []
    for i, call in enumerate(calls):
        arrival, done_ok = call["arrival_s"], call["completed"]
        first = arrival + call["ttft_s"]
        times = np.concatenate([[first], first + np.cumsum(call["gaps"])]) if done_ok else np.array([math.nan])
        rows.append({
            "session_id": f"s{i}", "step_id": 0, "arrival_s": arrival, "admitted_s": arrival if done_ok else math.nan,
            "first_token_s": times[0], "done_s": times[-1], "input_tokens": 100, "cached_tokens": 0,
            "output_tokens": len(call["gaps"]) + 1, "preemptions": 0, "decode_pool": "",
            "tbt_max_s": (max(call["gaps"]) if call["gaps"] else 0.0) if done_ok else math.nan,
            "status": "completed" if done_ok else "dropped", "reason": "" if done_ok else "exceeds context of 8",
        })  # fmt: skip
        gaps += call["gaps"] if done_ok else []
        end = float(times[-1]) if done_ok else arrival
        steps.append({"session_id": f"s{i}", "ready_s": arrival, "end_s": end, "status": rows[-1]["status"]})
    return {
        "llm_calls": with_call_latencies(pd.DataFrame(rows)),
        "steps": pd.DataFrame(steps),
        "replicas": pd.DataFrame({"pool": ["llm"], "busy_s": [1.0]}),
        "token_gaps": pd.DataFrame({"gap_s": np.asarray(gaps, dtype=float), "count": np.ones(len(gaps), dtype=np.int32)}),
    }


_ONE = {"arrival_s": 0.0, "ttft_s": 1.0, "gaps": [], "completed": True}


@settings(max_examples=60, deadline=None)
@example(calls=[_ONE] * 5 + [{**_ONE, "ttft_s": 2.0}], unfinished=4, ttft=1.0, tbt=1.0, point=50.0)  # found by hypothesis:
# p50 of 10 calls is the 5th smallest; rescaled to the 6 completed ones (83.33...%) it rounded past rank 5
@given(
    calls=st.lists(_call, min_size=1, max_size=40),
    unfinished=st.integers(0, 5),
    ttft=st.floats(1e-3, 5.0),
    tbt=st.floats(1e-3, 2.0),
    point=st.sampled_from([50.0, 90.0, 99.0]),
)
def test_a_summary_of_any_records_is_consistent(calls, unfinished, ttft, tbt, point):
    frames = _records(calls)
    sla = Sla(ttft_s=ttft, tbt_s=tbt, e2e_s=ttft * 3, ttft_percentile=point, tbt_percentile=point, e2e_percentile=point)
    summary = summarize(frames, [], sla, Expected(llm_calls=len(calls) + unfinished, sessions=len(calls) + unfinished))
    assert_consistent(summary)
    assert summary["llm_calls"]["unfinished"] == unfinished


def test_dropped_calls_are_counted_and_push_the_sla_percentile_past_reach():
    """Nine calls in 10 ms and one dropped: the p90 TTFT is 10 ms, but the p99 is not reached
    (the drop is a miss), so the objective is missed and says why."""
    calls = [{"arrival_s": float(i), "ttft_s": 0.01, "gaps": [0.02], "completed": True} for i in range(9)]
    calls.append({"arrival_s": 9.0, "ttft_s": 0.01, "gaps": [], "completed": False})
    summary = summarize(_records(calls), [], Sla(ttft_s=0.5, ttft_percentile=99.0))
    assert summary["llm_calls"]["dropped"] == 1 and summary["llm_calls"]["ttft_s"]["count"] == 9
    objective = summary["sla"]["ttft"]
    assert objective["attained"] == pytest.approx(0.9) and not objective["met"]
    assert objective["value_at_percentile_s"] == math.inf and objective["misses"] == 1
    p90 = summarize(_records(calls), [], Sla(ttft_s=0.5, ttft_percentile=90.0))["sla"]["ttft"]
    assert p90["met"] and p90["value_at_percentile_s"] == pytest.approx(0.01)


def test_a_one_token_call_has_neither_a_mean_nor_a_worst_gap():
    """The worst gap of a call without gaps is not 0 (it would rank below every mean gap)."""
    calls = [{"arrival_s": 0.0, "ttft_s": 0.01, "gaps": [], "completed": True},
             {"arrival_s": 1.0, "ttft_s": 0.01, "gaps": [0.05, 0.05], "completed": True}]  # fmt: skip
    summary = summarize(_records(calls), [], None)["llm_calls"]
    assert summary["tbt_max_s"]["count"] == summary["tbt_mean_s"]["count"] == 1
    assert summary["tbt_max_s"]["p50"] == pytest.approx(summary["tbt_mean_s"]["p50"])


# ---- simulations -------------------------------------------------------------------------------------


@functools.cache
def _catalogs() -> tuple[Any, Any]:
    return load_catalog(), load_models()


def _trace(seed: int, calls: int, rate: float, one_token_share: float, long_share: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, calls))
    steps = []
    for i, arrival in enumerate(arrivals):
        output = 1 if rng.random() < one_token_share else int(rng.integers(2, 400))
        prompt = 200_000 if rng.random() < long_share else int(rng.integers(16, 4000))  # past the context: dropped
        steps.append(TraceStep(f"s{i}", 0, float(arrival), "chat", NodeType.LLM, model="llama-3-8b",
                               input_tokens=prompt, output_tokens=output))  # fmt: skip
    return trace_frame(steps)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    calls=st.integers(5, 250),
    rate=st.sampled_from([1.0, 20.0, 400.0]),  # light, busy, far past one replica
    one_token_share=st.sampled_from([0.0, 0.3, 1.0]),
    long_share=st.sampled_from([0.0, 0.1]),
    memory=st.sampled_from([0.9, 0.3]),  # a small KV cache preempts
)
def test_a_summary_of_any_simulated_load_is_consistent(seed, calls, rate, one_token_share, long_share, memory):
    hardware, models = _catalogs()
    trace = _trace(seed, calls, rate, one_token_share, long_share)
    sim = build_simulation(plan(llm_pool(replicas=1, memory_utilization=memory)), trace, hardware, models)
    sim.run()
    summary = summarize(sim.frames(), [], Sla(ttft_s=0.2, tbt_s=0.05, e2e_s=5.0), Expected.of(trace))
    assert_consistent(summary)
    assert summary["llm_calls"]["count"] == calls


def test_an_overloaded_simulation_says_so_and_a_light_one_does_not():
    hardware, models = _catalogs()
    for rate, overloaded in ((2.0, False), (2000.0, True)):
        trace = _trace(7, 2000, rate, 0.0, 0.0)
        sim = build_simulation(plan(llm_pool(replicas=1)), trace, hardware, models)
        sim.run()
        load = summarize(sim.frames(), [], None, Expected.of(trace))["load"]
        assert load["overloaded"] is overloaded, load["verdict"]
        assert load["verdict"].startswith("overloaded: " if overloaded else "not overloaded: ")
