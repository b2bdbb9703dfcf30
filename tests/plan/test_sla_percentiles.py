"""The planner prices every objective at the percentile its SLA names, and says which."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetsim.api.plan import plan_fleet, sla_summary
from hetsim.plan.build import _merge
from hetsim.plan.candidates import _aggregated_gap_s, aggregated_options
from hetsim.plan.queueing import erlang_c, mmc_wait_quantile_s
from tests.conftest import write_fleet


def _fleet(tmp_path: Path, sla: dict) -> Path:
    return write_fleet(tmp_path, "t", [{"node": "hgx-h100-8", "max_count": 2}, {"node": "cpu-2x-xeon-8480", "max_count": 4}],
                       [{"workload": "voice-agent", "rate_per_s": 0.5, "sla": sla}],
                       {"sample_sessions": 200, "verify_duration_s": 30, "verify_rounds": 0}, tco="paper")  # fmt: skip


@given(
    servers=st.integers(1, 64),
    utilization=st.floats(0.05, 0.95),
    low=st.floats(1.0, 99.0),
    high=st.floats(1.0, 99.99),
)
def test_an_mmc_wait_percentile_grows_with_the_percentile_and_meets_its_tail(servers, utilization, low, high):
    low, high = sorted((low, high))
    service = 0.2
    at_low = mmc_wait_quantile_s(servers, service, utilization, low)
    at_high = mmc_wait_quantile_s(servers, service, utilization, high)
    assert 0.0 <= at_low <= at_high
    waits = erlang_c(servers, utilization * servers)
    tail = waits * math.exp(-servers * (1 - utilization) / service * at_high)  # P(W > t)
    assert tail == pytest.approx(min(waits, 1 - high / 100), rel=1e-9)


def test_a_token_gap_percentile_includes_prefill_chunks_only_when_enough_steps_carry_one():
    per_token, step = 5e-5, 0.01  # a chunk's prefill: 50 us a token
    # batch 8, 200 output tokens, a 1000-token prompt in one chunk: 8 of every 200 steps carry one
    assert _aggregated_gap_s(step, per_token, (8, 8), 1000, 2500, 200, 8192, 95.0) == step  # 4% of gaps <= 5%
    # p99: a step carrying the prompt at the TBT percentile (2,500 tokens), whole within the budget
    assert _aggregated_gap_s(step, per_token, (8, 8), 1000, 2500, 200, 8192, 99.0) == pytest.approx(step + 5e-5 * 2500)
    assert _aggregated_gap_s(step, per_token, (8, 8), 3000, 2500, 200, 1008, 50.0) == step  # 3 chunks: 12% of gaps
    # p90 with a 1,008-token budget: the chunk is what the budget leaves beside 8 decodes
    assert _aggregated_gap_s(step, per_token, (8, 8), 3000, 2500, 200, 1008, 90.0) == pytest.approx(step + 5e-5 * 1000)


def test_an_aggregated_replica_takes_the_largest_budget_meeting_its_objectives(tmp_path):
    # chat (Azure conversation prompts, up to ~4k tokens) on L4s: a 150 ms TBT needs small chunks
    fleet = write_fleet(tmp_path, "t", [{"node": "l4-8-pcie", "max_count": 4}], [{"workload": "chat", "rate_per_s": 2.0}],
                        {"sample_sessions": 300, "verify_duration_s": 30, "verify_rounds": 0}, tco="paper")  # fmt: skip
    result = plan_fleet(fleet, verify=False)
    key = next(s.name for s in result.problem.stages if s.name.endswith(":aggregated")).rsplit(":", 1)[0]
    merged = _merge(result.workloads)[key]
    perfs = list(result.context["perfs"].values())
    model = result.context["models"].model(merged.model)
    tight = merged.targets(result.context["headroom"], result.fleet)
    loose = replace(tight, tbt_s=tight.tbt_s * 4)
    budgets = {name: {o.key: o.detail["max_batch_tokens"] for o in aggregated_options(model, perfs, merged.mean_demand(key), t)}
               for name, t in (("loose", loose), ("tight", tight))}  # fmt: skip
    assert budgets["tight"] and set(budgets["tight"]) <= set(budgets["loose"])
    assert all(budgets["tight"][k] <= budgets["loose"][k] for k in budgets["tight"])  # a tighter TBT, smaller chunks
    assert set(budgets["tight"].values()) == {512} and max(budgets["loose"].values()) > 2048
    assert all(o.detail["tbt_s"] <= tight.tbt_s for o in aggregated_options(model, perfs, merged.mean_demand(key), tight))
    # the plan runs its pool with the chosen budget
    pool = next(p for p in result.plan.pools if p.llm is not None)
    assert pool.llm.max_batch_tokens == 512


def test_the_planner_prices_tbt_at_the_percentile_the_demand_names(tmp_path):
    options = {}
    for percentile in (50, 99):
        result = plan_fleet(_fleet(tmp_path, {"tbt_s": 0.012, "percentile": percentile}), verify=False)
        llm = [s for s in result.problem.stages if s.name.startswith("llm:")]
        assert llm and all(s.detail["tbt_percentile"] == percentile for s in llm)
        assert all(o.detail["tbt_percentile"] == percentile for s in llm for o in s.options if "tbt_s" in o.detail)
        # every candidate the performance model offers (the problem keeps only undominated ones)
        key = next(s.name for s in llm if s.name.endswith(":aggregated")).rsplit(":", 1)[0]
        merged = _merge(result.workloads)[key]
        perfs = list(result.context["perfs"].values())
        model = result.context["models"].model(merged.model)
        targets = merged.targets(result.context["headroom"], result.fleet)
        options[percentile] = {o.key for o in aggregated_options(model, perfs, merged.mean_demand(key), targets)}
    assert options[99] < options[50]  # chunked prefill lengthens 1% of gaps, not half of them


def test_verification_checks_each_objective_at_its_percentile_and_outputs_say_so(tmp_path):
    result = plan_fleet(_fleet(tmp_path, {"tbt_s": 0.03, "percentile": 90}))
    sla = result.verification["workloads"]["voice-agent"]["sla"]
    assert sla["tbt"]["percentile"] == 90 and "token gaps" in sla["tbt"]["measure"]
    assert sla["ttft"]["percentile"] == 99  # not set by the demand: the workload's own objective
    summary = sla_summary(result)["voice-agent"]
    assert "TBT p90 <= 0.03 s (token gaps)" in summary["objectives"]
    assert summary["simulated"] is sla
