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
