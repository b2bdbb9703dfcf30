"""On random small instances the solver's cost equals exhaustive enumeration."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.errors import InfeasiblePlanError
from hetsim.plan.brute import brute_force
from hetsim.plan.problem import ExclusiveGroup, LatencyPath, NodeType, Option, PlacementProblem, Stage, Transfer
from hetsim.plan.solver import solve

DEVICES = ("gpu-a", "gpu-b", "cpu")


@st.composite
def options(draw, prefix):
    count = draw(st.integers(1, 3))
    return tuple(
        Option(
            key=f"{prefix}{i}",
            device=draw(st.sampled_from(DEVICES)),
            devices_per_replica=draw(st.sampled_from([1, 2])),
            capacity_per_replica=draw(st.floats(0.5, 20.0)),
            latency_s=draw(st.floats(0.01, 1.0)),
            usd_per_unit=draw(st.sampled_from([0.0, 0.0, 0.001])),
        )
        for i in range(count)
    )


@st.composite
def problems(draw):
    stages = [
        Stage(f"s{i}", draw(st.floats(0.1, 30.0)), draw(options(f"s{i}o"))) for i in range(draw(st.integers(1, 3)))
    ]
    groups = ()
    if draw(st.booleans()):  # an exclusive alternative: one stage, or a prefill/decode split
        stages += [
            Stage("alt-a", 5.0, draw(options("a"))),
            Stage("alt-p", 5.0, draw(options("p"))),
            Stage("alt-d", 5.0, draw(options("d"))),
        ]
        groups = (ExclusiveGroup("alt", (("alt-a",), ("alt-p", "alt-d"))),)
    nodes = (
        NodeType(
            "node-a",
            {"gpu-a": 4, "cpu": 2},
            draw(st.floats(1.0, 50.0)),
            owned=draw(st.integers(0, 1)),
            max_extra=draw(st.sampled_from([2, 4, None])),
        ),
        NodeType("node-b", {"gpu-b": 8}, draw(st.floats(1.0, 80.0)), max_extra=draw(st.sampled_from([1, 3, None]))),
        NodeType("node-cpu", {"cpu": 2}, draw(st.floats(0.5, 5.0)), max_extra=draw(st.sampled_from([2, 10, None]))),
    )
    names = [s.name for s in stages]
    path = LatencyPath("e2e", tuple((n, 1.0) for n in names), draw(st.floats(0.5, 4.0)))
    transfers = (Transfer("alt-p", "alt-d", 0.05, 0.0001, only_if_devices_differ=False),) if groups else ()
    return PlacementProblem(
        tuple(stages), nodes, transfers, (path,), groups, headroom=draw(st.sampled_from([1.0, 1.2]))
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(problem=problems())
def test_solver_cost_equals_brute_force(problem):
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            solve(problem, relative_gap=1e-9)
        return
    solution = solve(problem, relative_gap=1e-9)
    assert solution.objective == pytest.approx(expected, rel=1e-6, abs=1e-6)


@st.composite
def shared_stage_problems(draw):
    """Small instances where a stage may combine two pools (devices limited per type, so a
    split is often the only or the cheapest way)."""
    def option(prefix, i):
        return Option(
            key=f"{prefix}{i}",
            device=draw(st.sampled_from(DEVICES)),
            devices_per_replica=draw(st.sampled_from([1, 2])),
            capacity_per_replica=draw(st.floats(2.0, 20.0)),
            latency_s=draw(st.floats(0.01, 1.0)),
        )

    stages = tuple(
        Stage(f"s{i}", draw(st.floats(0.5, 20.0)), tuple(option(f"s{i}o", j) for j in range(draw(st.integers(1, 3)))))
        for i in range(draw(st.integers(1, 2)))
    )
    nodes = (
        NodeType("node-a", {"gpu-a": 2, "cpu": 1}, draw(st.floats(1.0, 50.0)), owned=draw(st.integers(0, 1)),
                 max_extra=draw(st.sampled_from([0, 1, 2]))),
        NodeType("node-b", {"gpu-b": 4}, draw(st.floats(1.0, 80.0)), max_extra=draw(st.sampled_from([1, 2]))),
        NodeType("node-cpu", {"cpu": 2}, draw(st.floats(0.5, 5.0)), max_extra=draw(st.sampled_from([1, 3]))),
    )  # fmt: skip
    path = LatencyPath("e2e", tuple((s.name, 1.0) for s in stages), draw(st.floats(0.5, 2.0)))
    return PlacementProblem(stages, nodes, (), (path,), (), headroom=draw(st.sampled_from([1.0, 1.2])),
                            max_pools_per_stage=2)  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True)
@given(problem=shared_stage_problems())
def test_solver_cost_equals_brute_force_when_stages_may_share_pools(problem):
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            solve(problem, relative_gap=1e-9)
        return
    solution = solve(problem, relative_gap=1e-9)
    assert solution.objective == pytest.approx(expected, rel=1e-6, abs=1e-3)


def test_a_stage_too_big_for_any_one_device_type_is_split_across_two():
    """Owned gpu-a covers part of the demand for free; the rest goes on bought gpu-b."""
    stage = Stage("decode", 10.0, (Option("a", "gpu-a", 1, 2.0, 0.02), Option("b", "gpu-b", 1, 3.0, 0.02)))
    nodes = (NodeType("node-a", {"gpu-a": 2}, 40.0, owned=1, max_extra=0), NodeType("node-b", {"gpu-b": 2}, 10.0))
    problem = PlacementProblem((stage,), nodes, max_pools_per_stage=2)
    solution = solve(problem, relative_gap=1e-9)
    picked = {c.option.device: c.replicas for c in solution.choices_of("decode")}
    assert picked == {"gpu-a": 2, "gpu-b": 2}  # 2 x 2 + 2 x 3 = 10 req/s
    assert solution.objective == pytest.approx(10.0, abs=1e-3) == brute_force(problem)
    assert solve(PlacementProblem((stage,), nodes, max_pools_per_stage=1)).objective == pytest.approx(20.0, abs=1e-3)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(problem=problems(), latency_matters=st.booleans())
def test_dropping_dominated_options_never_changes_the_optimum(problem, latency_matters):
    from dataclasses import replace

    from hetsim.plan.build import undominated

    if not latency_matters:
        problem = replace(problem, paths=())
    pruned = replace(problem, stages=tuple(replace(s, options=undominated(s.options, True)) for s in problem.stages))
    try:
        full = solve(problem, relative_gap=1e-9).objective
    except InfeasiblePlanError:
        with pytest.raises(InfeasiblePlanError):
            solve(pruned, relative_gap=1e-9)
        return
    assert solve(pruned, relative_gap=1e-9).objective == pytest.approx(full, rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(problem=problems(), budget=st.floats(5_000.0, 60_000.0))
def test_a_site_power_budget_is_honoured_as_brute_force_honours_it(problem, budget):
    from dataclasses import replace

    powered = replace(problem, node_types=tuple(replace(n, power_w=p) for n, p in
                                                zip(problem.node_types, (10_000.0, 12_000.0, 800.0), strict=True)),
                      site_power_w=budget)  # fmt: skip
    expected = brute_force(powered)
    if expected is None:
        with pytest.raises(InfeasiblePlanError):
            solve(powered, relative_gap=1e-9)
        return
    solution = solve(powered, relative_gap=1e-9)
    assert solution.objective == pytest.approx(expected, rel=1e-6, abs=1e-6)
    drawn = sum(n.power_w * (n.owned + solution.extra_nodes.get(n.name, 0)) for n in powered.node_types)
    assert drawn <= budget + 1e-6
