"""Sensitivity that can change the answer: re-solve the plan with one input moved at a time
and say whether the placement changes and at which value it flips.

Inputs moved: the purchase (or rental) price of each vendor's nodes, the energy price, the
demand, and the performance model's step times (the p10 and p90 of its measured error: the
same re-solves ``hetsim.api.plan.model_error_cases`` makes, passed in when already made).
Scaling every price together can never change a placement (the objective only scales), so
prices move per vendor. Each case is re-solved (no simulation); a *flip* is a change of the
purchase: the node SKUs bought and how many (for demand, which SKUs: counts grow with demand
by design). Between the last value with the base purchase and the first without it, the flip
point is found by bisection (to ``FLIP_TOLERANCE`` of the factor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from hetsim.cost.tco import CostBasis, node_hourly_cost, preset
from hetsim.errors import InfeasiblePlanError
from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.plan.solver import solve

PRICE_FACTORS = (0.5, 0.7, 0.85, 1.15, 1.3, 1.5, 2.0)
ENERGY_FACTORS = (0.5, 1.5, 2.0, 3.0)
DEMAND_FACTORS = (1.25, 1.5, 2.0, 3.0)
FLIP_TOLERANCE = 0.01  # bisect until the flip is bracketed within 1% of the factor
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """One re-solve: what it buys ((SKU, count) pairs; None: infeasible), new spend, fleet $/h
    and nodes."""

    mix: tuple | None
    new_spend_usd_per_h: float
    total_usd_per_h: float
    nodes: str
    note: str = ""


def mix_of(problem: PlacementProblem, solution: Solution) -> tuple:
    """What a flip changes: the node SKUs bought and how many."""
    return tuple(sorted((name, count) for name, count in solution.extra_nodes.items() if count > 0))


def _skus(outcome: Outcome) -> Outcome:
    """The outcome compared by the SKUs it buys only (demand: counts grow with it by design)."""
    return outcome if outcome.mix is None else replace(outcome, mix=tuple(name for name, _ in outcome.mix))


def _outcome(problem: PlacementProblem, solution: Solution) -> Outcome:
    counts = {n.name: n.owned + solution.extra_nodes.get(n.name, 0) for n in problem.node_types}
    total = sum(n.usd_per_h * counts[n.name] for n in problem.node_types)
    spend = sum(n.usd_per_h * solution.extra_nodes.get(n.name, 0) for n in problem.node_types)
    nodes = ", ".join(f"{c} x {name}" for name, c in counts.items() if c)
    return Outcome(mix_of(problem, solution), spend, total, nodes)


def _infeasible(exc: InfeasiblePlanError) -> Outcome:
    return Outcome(None, math.nan, math.nan, "", str(exc))


class _Resolver:
    """Re-solves the plan's problem with node prices or demand changed."""

    def __init__(self, result: Any) -> None:
        self.result = result
        fleet, hardware = result.fleet, result.context["hardware"]
        basis = CostBasis(fleet.cost_basis) if fleet.cost_basis else None
        self.hourly = {n.name: node_hourly_cost(hardware.node(n.name), hardware.accelerators, preset(fleet.tco), basis)
                       for n in result.problem.node_types}  # fmt: skip
        self.vendor = {}
        for n in result.problem.node_types:
            node = hardware.node(n.name)
            device = node.accelerators.device if node.accelerators else node.host_cpus.device
            self.vendor[n.name] = hardware.accelerator(device).vendor

    def _solve(self, problem: PlacementProblem) -> Outcome:
        options = self.result.fleet.options
        try:
            solution = solve(problem, time_limit_s=options.time_limit_s, relative_gap=options.relative_gap,
                             settle_ties=False)  # only what is bought matters here
        except InfeasiblePlanError as exc:
            return _infeasible(exc)
        return _outcome(problem, solution)

    def priced(self, capex: Callable[[str], float], power: float = 1.0) -> Outcome:
        """The plan's problem with each node's capex (or rental) scaled by ``capex(node)`` and
        every node's power cost by ``power``."""
        nodes = []
        for n in self.result.problem.node_types:
            cost = self.hourly[n.name]
            changed = (cost.capex_usd_per_h + cost.rental_usd_per_h) * (capex(n.name) - 1.0)
            changed += cost.power_usd_per_h * (power - 1.0)
            nodes.append(replace(n, usd_per_h=n.usd_per_h + changed))
        return self._solve(replace(self.result.problem, node_types=tuple(nodes)))

    def demand(self, factor: float) -> Outcome:
        """Every workload's rate scaled by ``factor``: the plan's problem with each stage's demand
        scaled (a candidate's capacity and latency depend on tokens and targets, not the rate)."""
        stages = tuple(replace(s, demand_per_s=s.demand_per_s * factor) for s in self.result.problem.stages)
        return self._solve(replace(self.result.problem, stages=stages))


def _bisect(evaluate: Callable[[float], Outcome], base_mix: tuple, same: float, other: float) -> tuple[float, Outcome]:
    """The first factor (from ``same`` towards ``other``) at which the mix is no longer the base
    one, within ``FLIP_TOLERANCE``; and the outcome there."""
    outcome = evaluate(other)
    while abs(other - same) > FLIP_TOLERANCE * abs(same):
        middle = (same + other) / 2.0
        at_middle = evaluate(middle)
        if at_middle.mix == base_mix:
            same = middle
        else:
            other, outcome = middle, at_middle
    return other, outcome


def _scan(dimension: str, label: Callable[[float], str], factors: tuple[float, ...],
          evaluate: Callable[[float], Outcome], base: Outcome) -> list[dict[str, Any]]:  # fmt: skip
    """Each factor's outcome; then, on each side of 1, the flip nearest 1 (bisected)."""
    rows = []
    outcomes = {f: evaluate(f) for f in factors}
    for factor, outcome in outcomes.items():
        rows.append(_row(dimension, factor, label(factor), outcome, base, "case"))
    for side in ([f for f in factors if f < 1.0][::-1], [f for f in factors if f > 1.0]):
        previous = 1.0
        for factor in side:
            if outcomes[factor].mix != base.mix:
                point, outcome = _bisect(evaluate, base.mix, previous, factor)
                rows.append(_row(dimension, point, label(point), outcome, base, "flip"))
                break
            previous = factor
    return rows


def _row(dimension: str, factor: float, label: str, outcome: Outcome, base: Outcome, kind: str) -> dict[str, Any]:
    return {
        "dimension": dimension, "kind": kind, "factor": factor, "case": label,
        "feasible": outcome.mix is not None, "placement_changed": outcome.mix != base.mix,
        "new_spend_usd_per_h": outcome.new_spend_usd_per_h, "total_usd_per_h": outcome.total_usd_per_h,
        "nodes": outcome.nodes, "note": outcome.note,
    }  # fmt: skip


def robustness(result: Any, progress: Progress | None = None, model_error: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per case (``kind`` 'case') and per flip found (``kind`` 'flip'), each with the
    moved input (``dimension``, ``factor``, readable ``case``), whether a plan exists, whether
    the placement's mix differs from the plan's, new spend and fleet $/h, and the nodes; plus
    the base row (``kind`` 'base')."""
    say = progress or (lambda _: None)
    resolver = _Resolver(result)
    base = resolver.priced(lambda _: 1.0)
    rows = [_row("base", 1.0, "as planned", base, base, "base")]
    vendors = sorted({resolver.vendor[c.node] for c in result.fleet.catalog
                      if result.context["hardware"].node(c.node).accelerators is not None})  # fmt: skip
    for vendor in vendors:
        say(f"sensitivity: {vendor} prices")
        rows += _scan(f"{vendor} node prices", lambda f, v=vendor: f"{v} node prices x{f:.2f}", PRICE_FACTORS,
                      lambda f, v=vendor: resolver.priced(lambda n: f if resolver.vendor[n] == v else 1.0), base)  # fmt: skip
    say("sensitivity: energy price")
    rows += _scan("energy price", lambda f: f"energy price x{f:.2f}", ENERGY_FACTORS,
                  lambda f: resolver.priced(lambda _: 1.0, power=f), base)  # fmt: skip
    say("sensitivity: demand")
    rows += _scan("demand", lambda f: f"demand x{f:.2f}", DEMAND_FACTORS, lambda f: _skus(resolver.demand(f)),
                  _skus(base))  # fmt: skip
    say("sensitivity: performance model error")
    from hetsim.api.plan import model_error_cases

    for case in model_error if model_error is not None else model_error_cases(result):
        bought = tuple(sorted(case["bought"].items())) if case["feasible"] else None
        nodes = ", ".join(f"{c} x {n}" for n, c in case["nodes"].items() if c)
        outcome = Outcome(bought, case["new_spend_usd_per_h"], case["total_usd_per_h"], nodes, case.get("note", ""))
        label = f"step times at {case['sizing']} of measured error" + case["case"][case["case"].rfind(" ("):]
        rows.append(_row("step times", case["time_scale"], label, outcome, base, "case"))
    return pd.DataFrame(rows)
