"""The purchase schedule as one model: never un-buys, limits hold every period, never dearer
than buying each period's own optimum, and equal to exhaustive enumeration on tiny instances."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.linear_solver import pywraplp

from hetsim.errors import InfeasiblePlanError
from hetsim.plan import horizon as horizon_module
from hetsim.plan.brute import brute_force_horizon
from hetsim.plan.horizon import carried_forward, schedule_usd, solve_horizon
from hetsim.plan.problem import LatencyPath, NodeType, Option, PlacementProblem, Stage
from hetsim.plan.solver import solve

HOURS = 1000.0


def _periods(problem: PlacementProblem, growth: float, count: int) -> list[PlacementProblem]:
    """``problem`` with every stage's demand x (1 + growth)^t in period t."""
    return [
        replace(
            problem, stages=tuple(replace(s, demand_per_s=s.demand_per_s * (1 + growth) ** t) for s in problem.stages)
        )
        for t in range(count)
    ]


def _switching_fleet() -> PlacementProblem:
    """Alone, small demand is cheapest on a node-a (4 replicas of 1 req/s for $10/h) and large
    demand on a node-b (8 replicas for $15/h); once a node-a is bought, a second one ($10/h
    more) beats switching to a node-b ($15/h more)."""
    stage = Stage("llm", 3.0, (Option("a", "gpu-a", 1, 1.0, 0.02), Option("b", "gpu-b", 1, 1.0, 0.02)))
    nodes = (NodeType("node-a", {"gpu-a": 4}, 10.0, max_extra=3), NodeType("node-b", {"gpu-b": 8}, 15.0, max_extra=2))
    return PlacementProblem((stage,), nodes)


def test_the_joint_schedule_keeps_what_it_bought_where_each_periods_own_optimum_would_switch():
    problems = _periods(_switching_fleet(), growth=1.0, count=2)  # 3 then 6 req/s
    own = [solve(p, relative_gap=1e-9) for p in problems]
    assert [s.extra_nodes for s in own] == [{"node-a": 1, "node-b": 0}, {"node-a": 0, "node-b": 1}]
    joint = solve_horizon(problems, [HOURS, HOURS], relative_gap=1e-9)
    assert [p.extra_nodes for p in joint.periods] == [{"node-a": 1, "node-b": 0}, {"node-a": 2, "node-b": 0}]
    assert joint.bought(0) == {"node-a": 1, "node-b": 0} and joint.bought(1) == {"node-a": 1, "node-b": 0}
    # $10/h in period 1, $20/h in period 2; the myopic schedule holds a node-a and a node-b in period 2
    assert joint.objective_usd == pytest.approx(HOURS * 10 + HOURS * 20)
    assert schedule_usd(carried_forward(problems, own), [HOURS, HOURS]) == pytest.approx(HOURS * 10 + HOURS * 25)
    assert joint.status == "optimal"


def test_a_node_bought_earlier_is_paid_for_in_every_later_period():
    """Demand needs a node-a only in period 1: it is still held, and paid for, in period 2."""
    problems = [
        _switching_fleet(),
        replace(_switching_fleet(), stages=(replace(_switching_fleet().stages[0], demand_per_s=0.5),)),
    ]
    joint = solve_horizon(problems, [HOURS, 2 * HOURS], relative_gap=1e-9)
    assert [p.extra_nodes["node-a"] for p in joint.periods] == [1, 1]
    assert [p.objective for p in joint.periods] == pytest.approx([10.0, 10.0])
    assert joint.objective_usd == pytest.approx(HOURS * 10 + 2 * HOURS * 10)


def test_purchase_limits_hold_in_every_period_and_a_period_beyond_them_is_infeasible():
    problems = _periods(_switching_fleet(), growth=1.0, count=4)  # 3, 6, 12, 24 req/s
    joint = solve_horizon(problems[:3], [HOURS] * 3, relative_gap=1e-9)
    assert all(p.extra_nodes["node-a"] <= 3 and p.extra_nodes["node-b"] <= 2 for p in joint.periods)
    with pytest.raises(InfeasiblePlanError, match="no purchase schedule serves every period"):
        solve_horizon(problems, [HOURS] * 4)  # 24 req/s needs more than 3 x 4 + 2 x 8 devices


def test_periods_must_share_the_fleet_and_have_positive_hours():
    problem = _switching_fleet()
    other = replace(problem, node_types=problem.node_types[:1])
    with pytest.raises(InfeasiblePlanError, match="period 2 has other node types than period 1"):
        solve_horizon([problem, other], [HOURS, HOURS])
    with pytest.raises(InfeasiblePlanError, match="expected hours > 0 in every period"):
        solve_horizon([problem], [0.0])
    with pytest.raises(InfeasiblePlanError, match="expected hours for each of 1 periods, got 2"):
        solve_horizon([problem], [HOURS, HOURS])


def test_a_solve_stopped_by_its_time_limit_reports_feasible_not_optimal(monkeypatch):
    real = horizon_module.run_solver

    def stopped(solver, parameters=None):
        real(solver, parameters)
        return pywraplp.Solver.FEASIBLE  # what SCIP answers when the limit stops it with an incumbent

    monkeypatch.setattr(horizon_module, "run_solver", stopped)
    joint = solve_horizon(_periods(_switching_fleet(), 1.0, 2), [HOURS, HOURS])
    assert joint.status == "feasible"
    assert all(p.status == "feasible" for p in joint.periods)


@st.composite
def horizons(draw):
    """Tiny fleets (two GPU node types, a CPU node) with one or two stages, over 2-3 periods of growing demand."""

    def option(prefix, i):
        return Option(f"{prefix}{i}", draw(st.sampled_from(("gpu-a", "gpu-b", "cpu"))), draw(st.sampled_from([1, 2])),
                      draw(st.floats(2.0, 12.0)), draw(st.floats(0.01, 0.5)), usd_per_unit=draw(st.sampled_from([0.0, 0.001])))  # fmt: skip

    stages = tuple(
        Stage(f"s{i}", draw(st.floats(0.5, 6.0)), tuple(option(f"s{i}o", j) for j in range(draw(st.integers(1, 2)))))
        for i in range(draw(st.integers(1, 2)))
    )
    nodes = (
        NodeType("node-a", {"gpu-a": 2, "cpu": 1}, draw(st.floats(1.0, 30.0)), owned=draw(st.integers(0, 1)),
                 max_extra=draw(st.sampled_from([1, 2, 3]))),
        NodeType("node-b", {"gpu-b": 4}, draw(st.floats(1.0, 50.0)), max_extra=draw(st.sampled_from([1, 2]))),
        NodeType("node-cpu", {"cpu": 2}, draw(st.floats(0.5, 5.0)), max_extra=draw(st.sampled_from([1, 2]))),
    )  # fmt: skip
    path = LatencyPath("e2e", tuple((s.name, 1.0) for s in stages), draw(st.floats(0.3, 1.5)))
    problem = PlacementProblem(stages, nodes, (), (path,), headroom=draw(st.sampled_from([1.0, 1.2])))
    count = draw(st.integers(2, 3))
    hours = [draw(st.sampled_from([500.0, 1000.0])) for _ in range(count)]
    return _periods(problem, draw(st.floats(0.1, 1.0)), count), hours


@settings(max_examples=40, deadline=None, derandomize=True)
@given(case=horizons())
def test_the_joint_schedule_equals_brute_force_and_is_never_dearer_than_each_periods_own_optimum(case):
    problems, hours = case
    expected = brute_force_horizon(problems, hours)
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            solve_horizon(problems, hours, relative_gap=1e-9)
        return
    joint = solve_horizon(problems, hours, relative_gap=1e-9)
    assert joint.objective_usd == pytest.approx(expected, rel=1e-6, abs=1e-3)
    for earlier, later in zip(joint.periods, joint.periods[1:], strict=False):
        assert all(later.extra_nodes[n] >= earlier.extra_nodes[n] for n in earlier.extra_nodes)
    own = [solve(p, relative_gap=1e-9) for p in problems]
    assert joint.objective_usd <= schedule_usd(carried_forward(problems, own), hours) + 1e-6


@settings(max_examples=15, deadline=None, derandomize=True)
@given(case=horizons())
def test_with_the_default_gap_and_the_myopic_hint_the_schedule_is_still_never_dearer(case):
    """The product's own setting (1% gap): the hint makes the myopic schedule an incumbent."""
    problems, hours = case
    try:
        own = [solve(p, relative_gap=1e-9) for p in problems]
    except InfeasiblePlanError:
        return
    myopic = carried_forward(problems, own)
    joint = solve_horizon(problems, hours, hint=myopic)
    assert joint.objective_usd <= schedule_usd(myopic, hours) + 1e-6


def test_the_hint_makes_the_myopic_schedule_an_incumbent_even_when_the_solver_stops_early():
    """With a 99% gap SCIP stops at its first incumbent; with the hint that is never dearer
    than buying each period's own optimum and keeping it."""
    problems = _periods(_switching_fleet(), growth=0.5, count=4)
    myopic = carried_forward(problems, [solve(p, relative_gap=1e-9) for p in problems])
    joint = solve_horizon(problems, [HOURS] * 4, relative_gap=0.99, hint=myopic)
    assert joint.objective_usd <= schedule_usd(myopic, [HOURS] * 4) + 1e-6
