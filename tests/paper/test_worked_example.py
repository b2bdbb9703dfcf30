"""The paper's worked example (arXiv 2507.19635 §3.1, Table 3; paper.md E1/E2).

Prefill and decode of one request (1000 input, 500 output tokens) each go to a
high-performance (HP) or cost-optimised (CO) device; a KV transfer (10 ms, $0.000005 per
prefill token) applies when they differ; T_SLA = 120 ms, inclusive.
"""

import pytest

from hetsim.errors import InfeasiblePlanError
from hetsim.plan.problem import LatencyPath, NodeType, Option, PlacementProblem, Stage, Transfer
from hetsim.plan.solver import solve


def worked_example(sla_s: float = 0.120) -> PlacementProblem:
    prefill = Stage(
        "prefill",
        1000,
        (
            Option("HP", "HP", latency_s=0.080, usd_per_unit=0.00008),
            Option("CO", "CO", latency_s=0.130, usd_per_unit=0.00005),
        ),
    )
    decode = Stage(
        "decode",
        500,
        (
            Option("HP", "HP", latency_s=0.025, usd_per_unit=0.00006),
            Option("CO", "CO", latency_s=0.030, usd_per_unit=0.00002),
        ),
    )
    return PlacementProblem(
        stages=(prefill, decode),
        node_types=(NodeType("HP", {"HP": 1}, 0.0, owned=1), NodeType("CO", {"CO": 1}, 0.0, owned=1)),
        transfers=(Transfer("prefill", "decode", latency_s=0.010, usd_per_unit=0.000005),),
        paths=(LatencyPath("request", (("prefill", 1.0), ("decode", 1.0)), sla_s),),
        sizing=False,
    )


def _placement(solution):
    return solution.choice("prefill").option.key + "::" + solution.choice("decode").option.key


def test_e1_option_b_hp_prefill_co_decode_at_120ms_and_0_095():
    solution = solve(worked_example(), unit_cost_scale=1.0)
    assert _placement(solution) == "HP::CO"
    assert solution.objective == pytest.approx(0.095)
    assert solution.path_latency_s["request"] == pytest.approx(0.120)


def test_e2_sla_of_105ms_leaves_only_option_a():
    solution = solve(worked_example(0.105), unit_cost_scale=1.0)
    assert _placement(solution) == "HP::HP"
    assert solution.objective == pytest.approx(0.110)


def test_e2_sla_of_160ms_or_more_makes_option_c_optimal_at_0_06_not_the_printed_0_07():
    solution = solve(worked_example(0.160), unit_cost_scale=1.0)
    assert _placement(solution) == "CO::CO"
    assert solution.objective == pytest.approx(0.06)  # the paper prints $0.07, an arithmetic slip


def test_e2_sla_below_every_option_is_infeasible():
    with pytest.raises(InfeasiblePlanError):
        solve(worked_example(0.100), unit_cost_scale=1.0)
