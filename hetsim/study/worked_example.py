"""The paper's worked example (arXiv 2507.19635 §3.1, Table 3; paper.md §1.5, E1), built once.

One request of 1000 input and 500 output tokens: prefill and decode each run on a
high-performance (HP) or a cost-optimised (CO) device; a KV transfer (10 ms, $0.000005 per
prefill token) applies when they differ; T_SLA = 120 ms, inclusive. :data:`TABLE_3` holds the
table's numbers, :func:`problem` turns them into the planner's placement problem, and
:func:`evaluate` solves it with the planner's solver: the choice at the SLA and each of the
paper's options (A, B, C) priced on its own. The claim row (E1) and the tests read these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hetsim.plan.problem import LatencyPath, NodeType, Option, PlacementProblem, Stage, Transfer
from hetsim.plan.solver import solve
from hetsim.study.printed import Printed


@dataclass(frozen=True)
class Device:
    """One device of a stage in Table 3: its latency and its $ per token of the stage."""

    latency_s: float
    usd_per_token: float


@dataclass(frozen=True)
class WorkedExample:
    """Table 3: per-stage devices, the KV transfer between different devices, and the SLA."""

    input_tokens: int
    output_tokens: int
    prefill: dict[str, Device]
    decode: dict[str, Device]
    transfer_latency_s: float
    transfer_usd_per_token: float
    sla_s: float


TABLE_3 = WorkedExample(
    input_tokens=1000,
    output_tokens=500,
    prefill={"HP": Device(0.080, 0.00008), "CO": Device(0.130, 0.00005)},
    decode={"HP": Device(0.025, 0.00006), "CO": Device(0.030, 0.00002)},
    transfer_latency_s=0.010,
    transfer_usd_per_token=0.000005,
    sla_s=0.120,
)


@dataclass(frozen=True)
class PaperOption:
    """One option of Table 3 as the paper states it: its devices, latency (ms) and $."""

    name: str
    prefill: str
    decode: str
    latency_ms: Printed
    usd: Printed
    meets_sla: bool


# The paper's printed results (paper.md §1.5): option B is chosen; it prints $0.07 for C.
PAPER_OPTIONS = (
    PaperOption("A", "HP", "HP", Printed("105"), Printed("0.110"), True),
    PaperOption("B", "HP", "CO", Printed("120"), Printed("0.095"), True),
    PaperOption("C", "CO", "CO", Printed("160"), Printed("0.07"), False),
)
PAPER_CHOICE = "B"


def problem(example: WorkedExample = TABLE_3, sla_s: float | None = None) -> PlacementProblem:
    """The placement problem of ``example`` at ``sla_s`` (default: the example's SLA)."""

    def stage(name: str, tokens: int, devices: dict[str, Device]) -> Stage:
        options = tuple(
            Option(key, key, latency_s=d.latency_s, usd_per_unit=d.usd_per_token) for key, d in devices.items()
        )
        return Stage(name, tokens, options)

    devices = sorted({*example.prefill, *example.decode})
    return PlacementProblem(
        stages=(stage("prefill", example.input_tokens, example.prefill), stage("decode", example.output_tokens, example.decode)),
        node_types=tuple(NodeType(key, {key: 1}, 0.0, owned=1) for key in devices),
        transfers=(Transfer("prefill", "decode", example.transfer_latency_s, example.transfer_usd_per_token),),
        paths=(LatencyPath("request", (("prefill", 1.0), ("decode", 1.0)), example.sla_s if sla_s is None else sla_s),),
        sizing=False,
    )  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """A solved assignment: prefill and decode device, end-to-end latency and $ per request."""

    prefill: str
    decode: str
    latency_s: float
    usd: float

    @property
    def label(self) -> str:
        return f"{self.prefill}::{self.decode}"


def solve_example(placement_problem: PlacementProblem) -> Placement:
    """The planner's cheapest placement of a worked-example problem (demand is per request)."""
    solution = solve(placement_problem, unit_cost_scale=1.0)
    prefill, decode = solution.choice("prefill"), solution.choice("decode")
    assert prefill is not None and decode is not None  # sizing=False: every stage is placed
    return Placement(prefill.option.key, decode.option.key, solution.path_latency_s["request"], solution.objective)


def price_option(example: WorkedExample, prefill: str, decode: str) -> Placement:
    """One assignment priced by the solver on its own (only those devices offered, no SLA)."""
    whole = problem(example, sla_s=math.inf)
    only = {"prefill": prefill, "decode": decode}
    stages = tuple(replace(s, options=tuple(o for o in s.options if o.key == only[s.name])) for s in whole.stages)
    return solve_example(replace(whole, stages=stages))


@dataclass(frozen=True)
class ExampleResult:
    """The worked example solved: the choice at the SLA and each of the paper's options."""

    example: WorkedExample
    chosen: Placement
    options: dict[str, Placement]  # by the paper's option name


def evaluate(example: WorkedExample = TABLE_3) -> ExampleResult:
    """Solve ``example`` at its SLA and price each of the paper's options (A, B, C)."""
    options = {o.name: price_option(example, o.prefill, o.decode) for o in PAPER_OPTIONS}
    return ExampleResult(example, solve_example(problem(example)), options)
