"""``hetsim plan --fleet F --horizon N --growth R``: what to buy in which period as demand grows.

Period 1 carries the fleet's demand; each later period multiplies it by (1 + R). Every period's
placement problem is built as ``hetsim plan`` builds one (same candidates, SLA, headroom, TCO),
and all of them are solved as one model (``hetsim.plan.horizon``): owned hardware and what earlier
periods bought are carried forward, nothing is un-bought, purchase limits hold in every period,
and the schedule's cost is the sum over periods of the period's $/h x its hours. Each period's
plan is then verified in simulation as ``hetsim plan`` verifies one; a period that misses its SLA
gets more headroom and the whole schedule is solved again (up to the fleet's ``verify_rounds``).

For comparison the schedule that buys each period's own optimum and keeps it (myopic) is costed
too; it is a feasible schedule of the joint model, so the joint answer is never dearer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hetsim.api.plan import (
    PlanResult,
    _solve,
    _verify,
    demand_of,
    fleet_cost,
    missed_objectives,
    plan_fleet_spec,
    with_demand_scale,
)
from hetsim.cost.tco import node_purchase_usd
from hetsim.errors import InfeasiblePlanError, ScenarioError
from hetsim.exit_codes import EXIT_NOT_PROVEN, EXIT_SLA_MISSED
from hetsim.io.calibration import load_calibration
from hetsim.io.fleets import load_fleet
from hetsim.io.json_text import json_text
from hetsim.io.schedules import write_schedule_folder
from hetsim.plan.export import to_plan
from hetsim.plan.horizon import HorizonSolution, carried_forward, schedule_usd, solve_horizon
from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.specs.fleet import FleetSpec
from hetsim.units import HOURS_PER_MONTH, format_duration, format_usd

Progress = Callable[[str], None]

DEFAULT_PERIOD_MONTHS = 6.0
"""A half-year purchasing cycle: the default period length."""
MAX_PERIODS = 40
HEADROOM_STEP = 1.3
"""Headroom of a period that missed its SLA in simulation is multiplied by this (as ``hetsim plan`` does)."""


@dataclass(frozen=True)
class HorizonRequest:
    """What ``hetsim plan --horizon`` was asked: the fleet file, periods, growth per period."""

    fleet: Path
    periods: int
    growth: float
    period_months: float = DEFAULT_PERIOD_MONTHS
    workload: str | None = None
    rate: float | None = None
    verify: bool = True
    size_for: str = "nominal"
    stack: str | None = None

    def check(self) -> None:
        """Raise ScenarioError naming the option that is out of range."""
        if not 1 <= self.periods <= MAX_PERIODS:
            raise ScenarioError(f"plan --horizon: expected 1 to {MAX_PERIODS} periods, got {self.periods}")
        if not (self.growth > -1.0 and math.isfinite(self.growth)):
            raise ScenarioError(
                f"plan --growth: expected a growth rate per period above -1 (0.5 = +50%), got {self.growth}"
            )
        if not (self.period_months > 0 and math.isfinite(self.period_months)):
            raise ScenarioError(f"plan --period-months: expected months > 0, got {self.period_months}")

    @property
    def hours_per_period(self) -> float:
        return self.period_months * HOURS_PER_MONTH

    def scale(self, period: int) -> float:
        """Demand of ``period`` (0-based) relative to period 1."""
        return (1.0 + self.growth) ** period


@dataclass
class HorizonResult:
    """The schedule: per period a PlanResult (its plan, problem, the joint solution's share,
    verification, $/h), the joint solve, each period's own optimum and the rounds."""

    request: HorizonRequest
    fleet: FleetSpec
    periods: list[PlanResult]
    solution: HorizonSolution
    independent: list[Solution]
    myopic_usd: float  # $ (objective basis) of buying each period's own optimum and keeping it
    rounds: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def is_met(self) -> bool | None:
        """Every period met its SLA in simulation (None when not verified)."""
        if not self.request.verify:
            return None
        return all(p.verification.get("met") for p in self.periods)

    @property
    def is_proven(self) -> bool:
        return self.solution.status == "optimal"

    @property
    def exit_code(self) -> int:
        """As ``hetsim plan``'s: 4 when a period misses its SLA in simulation after every round,
        else 5 when the solver stopped at its time limit without proof, else 0."""
        if self.is_met is False:
            return EXIT_SLA_MISSED
        return 0 if self.is_proven else EXIT_NOT_PROVEN


def plan_horizon(request: HorizonRequest, progress: Progress | None = None) -> HorizonResult:
    """Solve the purchase schedule of ``request`` as one model and verify each period's plan."""
    request.check()
    say = progress or (lambda _: None)
    started = time.perf_counter()
    calibration_of = (
        (lambda device: load_calibration(device, stack=request.stack)) if request.stack else load_calibration
    )
    fleet = load_fleet(request.fleet)
    fleet = fleet.model_copy(update={"demand": demand_of(fleet, request.workload, request.rate)})
    # Period 1 planned as `hetsim plan` plans (no simulation): its measured demand, device models, own optimum.
    base = plan_fleet_spec(fleet, verify=False, progress=say, calibration_of=calibration_of, size_for=request.size_for)
    periods = _Periods(request, base)
    rounds: list[dict[str, Any]] = []
    stale = list(range(1, request.periods))
    for round_index in range(fleet.options.verify_rounds + 1):
        periods.solve_own(stale, say)
        myopic = carried_forward(periods.problems, periods.own)
        say(f"solving the {request.periods}-period schedule as one model")
        joint = solve_horizon(periods.problems, [request.hours_per_period] * request.periods,
                              time_limit_s=fleet.options.time_limit_s * request.periods,
                              relative_gap=fleet.options.relative_gap, hint=myopic)  # fmt: skip
        results = [periods.result(t, joint, say) for t in range(request.periods)]
        missed = [t for t, r in enumerate(results) if request.verify and not r.verification["met"]]
        rounds.append({"round": round_index, "headroom": list(periods.headroom), "status": joint.status,
                       "objective_usd": joint.objective_usd,
                       "missed": {t + 1: missed_objectives(results[t]) for t in missed}})  # fmt: skip
        if not missed or round_index == fleet.options.verify_rounds:
            break
        say(f"period(s) {', '.join(str(t + 1) for t in missed)} missed the SLA in simulation; more headroom")
        for t in missed:
            periods.headroom[t] *= HEADROOM_STEP
        stale = missed
    myopic_usd = schedule_usd(myopic, joint.hours)
    return HorizonResult(request, fleet, results, joint, list(periods.own), myopic_usd, rounds,
                         time.perf_counter() - started)  # fmt: skip


class _Periods:
    """The periods' fleets, demand, problems and own optima, built from period 1's plan."""

    def __init__(self, request: HorizonRequest, base: PlanResult) -> None:
        self.request, self.base = request, base
        self.context = base.context
        n = request.periods
        self.fleets = [with_demand_scale(base.fleet, request.scale(t)) for t in range(n)]
        self.workloads = [[replace(w, rate_per_s=w.rate_per_s * request.scale(t)) for w in base.workloads]
                          for t in range(n)]  # fmt: skip
        self.headroom = [float(base.context["headroom"])] * n
        self.problems: list[PlacementProblem] = [base.problem] * n
        self.own: list[Solution] = [base.solution] * n
        perfs = self.context["perfs"]
        self.calibrations = {d: p.calibration for d, p in perfs.items() if p.calibration is not None}

    def solve_own(self, periods: list[int], say: Progress) -> None:
        """Build each period's problem and solve it alone (its own optimum: the hint, the myopic cost)."""
        ctx = self.context
        for t in periods:
            say(f"period {t + 1}: demand x{self.request.scale(t):.3g} (headroom {self.headroom[t]:.2f})")
            try:
                self.problems[t], self.own[t] = _solve(self.fleets[t], self.workloads[t], ctx["hardware"],
                                                       ctx["models"], ctx["perfs"], self.headroom[t])  # fmt: skip
            except InfeasiblePlanError as exc:
                raise InfeasiblePlanError(f"period {t + 1} (demand x{self.request.scale(t):.3g}): {exc}") from None

    def result(self, t: int, joint: HorizonSolution, say: Progress) -> PlanResult:
        """Period ``t``'s plan from the joint solution, verified in simulation when asked."""
        fleet, workloads, ctx = self.fleets[t], self.workloads[t], self.context
        problem, solution = self.problems[t], joint.periods[t]
        plan = to_plan(problem, solution, f"{fleet.name}-period-{t + 1}", fleet.kv_link, {})
        verification: dict[str, Any] = {}
        if self.request.verify:
            say(f"period {t + 1}: simulating the plan")
            verification = _verify(
                plan, fleet, fleet.demand, workloads, ctx["hardware"], ctx["models"], self.calibrations
            )
            verification.pop("frames", None)  # records of the run: not kept for every period
        cost = fleet_cost(problem, solution, fleet, ctx["hardware"])
        provenance = {
            "solver": solution.solver, "status": solution.status, "gap": solution.gap, "solve_wall_s": solution.wall_s,
            "horizon": {"period": t + 1, "periods": self.request.periods, "growth_per_period": self.request.growth,
                        "period_months": self.request.period_months, "demand_scale": self.request.scale(t),
                        "schedule_objective_usd": joint.objective_usd},
            "objective_added_usd_per_h": solution.objective, "fleet_usd_per_h": cost["total_usd_per_h"],
            "headroom": self.headroom[t], "tco": fleet.tco, "sized_for": self.request.size_for,
            "verified_in_simulation": verification.get("met") if self.request.verify else None,
        }  # fmt: skip
        plan = plan.model_copy(update={"provenance": provenance})
        context = {**ctx, "headroom": self.headroom[t]}
        return PlanResult(fleet, plan, problem, solution, [], verification, cost, workloads, context)


def _nonzero(nodes: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in nodes.items() if count}


def schedule_rows(result: HorizonResult) -> list[dict[str, Any]]:
    """One row per period: demand, nodes bought then and held, capex, $/h and $ in the period,
    the verdict of the simulation."""
    hardware = result.periods[0].context["hardware"]
    hours = result.request.hours_per_period
    owned = {o.node: o.count for o in result.fleet.inventory}
    rows = []
    for t, period in enumerate(result.periods):
        bought = _nonzero(result.solution.bought(t))
        prices = {name: node_purchase_usd(hardware.node(name), hardware.accelerators) for name in bought}
        capex = None if any(p is None for p in prices.values()) else sum(p * bought[n] for n, p in prices.items())  # type: ignore[operator]
        held = {name: owned.get(name, 0) + period.solution.extra_nodes.get(name, 0) for name in period.cost["nodes"]}
        rows.append({
            "period": t + 1, "months": [t * result.request.period_months, (t + 1) * result.request.period_months],
            "demand_scale": result.request.scale(t), "sessions_per_s": sum(w.rate_per_s for w in period.workloads),
            "buy": bought, "capex_usd": capex, "bought_so_far": _nonzero(period.solution.extra_nodes),
            "nodes": _nonzero(held), "fleet_usd_per_h": period.cost["total_usd_per_h"],
            "fleet_usd": period.cost["total_usd_per_h"] * hours, "new_spend_usd_per_h": period.solution.objective,
            "headroom": period.context["headroom"], "sla_met_in_simulation": period.verification.get("met"),
            "note": missed_objectives(period),
        })  # fmt: skip
    return rows


def _nodes_text(nodes: dict[str, int]) -> str:
    return ", ".join(f"{count} x {name}" for name, count in nodes.items()) or "nothing"


def headline(result: HorizonResult, rows: list[dict[str, Any]]) -> str:
    """The sentence a buyer reads first: what to buy when, what it costs, whether every period meets its SLA."""
    buys = [f"{_nodes_text(r['buy'])} in period {r['period']}" for r in rows if r["buy"]]
    owned = ", ".join(f"{o.count} x {o.node}" for o in result.fleet.inventory)
    total = sum(r["fleet_usd"] for r in rows)
    capex = _capex_total(rows)
    months = result.request.periods * result.request.period_months
    verdict = {True: "meets every period's SLA in simulation", False: "MISSES the SLA in simulation in period(s) "
               + ", ".join(str(r["period"]) for r in rows if r["sla_met_in_simulation"] is False),
               None: "not checked in simulation"}[result.is_met]  # fmt: skip
    return (f"Buy {'; '.join(buys) if buys else 'nothing'}" + (f", keep the {owned}" if owned else "")
            + f": {capex_text(capex)} capex, "
            f"{format_usd(total)} fleet TCO over {months:g} months, {verdict}.")  # fmt: skip


def _capex_total(rows: list[dict[str, Any]]) -> float | None:
    """What the bought nodes cost to buy, over the horizon (None when one is unpriced)."""
    return None if any(r["capex_usd"] is None for r in rows) else sum(r["capex_usd"] for r in rows)


def capex_text(capex_usd: float | None) -> str:
    """A period's capex: plain dollars, '$0' when nothing is bought, 'n/a (unpriced)'."""
    return "n/a (unpriced)" if capex_usd is None else format_usd(capex_usd) if capex_usd else "$0"


def solver_text(solution: HorizonSolution) -> str:
    """The joint solve's account: proof, or a time limit with the incumbent and its gap."""
    if solution.status == "optimal":
        return f"optimal (gap {solution.gap:.2%}) in {format_duration(solution.wall_s)}"
    return f"time limit ({solution.time_limit_s:g} s), incumbent, gap {solution.gap:.2%}"


def summary(result: HorizonResult) -> dict[str, Any]:
    """Everything the schedule says, JSON-ready."""
    rows = schedule_rows(result)
    joint, myopic = result.solution.objective_usd, result.myopic_usd
    return {
        "fleet": result.fleet.name, "headline": headline(result, rows), "periods": result.request.periods,
        "growth_per_period": result.request.growth, "period_months": result.request.period_months,
        "hours_per_period": result.request.hours_per_period, "schedule": rows,
        "fleet_usd": sum(r["fleet_usd"] for r in rows), "capex_usd": _capex_total(rows),
        "new_spend_usd": joint, "myopic_new_spend_usd": myopic, "joint_saves_usd": myopic - joint,
        "solver": {"name": result.periods[0].solution.solver, "status": result.solution.status,
                   "gap": result.solution.gap, "wall_s": result.solution.wall_s,
                   "time_limit_s": result.solution.time_limit_s, "text": solver_text(result.solution)},
        "sla_met_in_simulation": result.is_met, "rounds": result.rounds, "wall_s": result.wall_s,
        "exit_code": result.exit_code,
        "basis": "fleet $: owned and bought nodes at the fleet's TCO preset ($/h x hours); new spend: what the "
                 "model minimises, bought nodes and per-unit costs (owned nodes cost the same in every schedule); "
                 "myopic: each period's own optimum bought and kept",
    }  # fmt: skip


def markdown(data: dict[str, Any]) -> str:
    """``schedule.md``: the headline, the schedule table, the comparison and the solver's account."""
    lines = [f"# Purchase schedule: fleet {data['fleet']}", "", data["headline"], "",
             f"{data['periods']} periods of {data['period_months']:g} months ({data['hours_per_period']:,.0f} h), "
             f"demand x{1 + data['growth_per_period']:g} per period.", "",
             "| period | demand | buy | capex | nodes held | fleet $/h | fleet $ in period | SLA in simulation |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["schedule"]:
        sla = {True: "met", False: f"MISSED: {r['note']}", None: "not checked"}[r["sla_met_in_simulation"]]
        capex = capex_text(r["capex_usd"])
        lines.append(f"| {r['period']} | x{r['demand_scale']:.3g} | {_nodes_text(r['buy'])} | {capex} | "
                     f"{_nodes_text(r['nodes'])} | {format_usd(r['fleet_usd_per_h'])} | {format_usd(r['fleet_usd'])} | {sla} |")  # fmt: skip
    lines += ["", f"New spend over the horizon (bought nodes and per-unit costs): {format_usd(data['new_spend_usd'])}, "
              f"against {format_usd(data['myopic_new_spend_usd'])} buying each period's own optimum and keeping it "
              f"(joint planning saves {format_usd(data['joint_saves_usd'])}).", "",
              f"Solver: {data['solver']['name']}, one model over all periods: {data['solver']['text']}.", "",
              f"Basis: {data['basis']}.", ""]  # fmt: skip
    return "\n".join(lines)


def write_schedule(result: HorizonResult, data: dict[str, Any], folder: Path | None) -> list[Path]:
    """``schedule.json``, ``schedule.md`` and ``period-<n>/plan.yaml`` in ``folder`` (default
    ``reports/<fleet>/horizon``), written whole."""
    target = folder or Path("reports") / result.fleet.name / "horizon"
    request = result.request
    inputs = {"fleet": request.fleet, "periods": request.periods, "growth": request.growth,
              "period_months": request.period_months, "workload": request.workload, "rate": request.rate,
              "verify": request.verify, "size_for": request.size_for, "stack": request.stack}  # fmt: skip
    texts = {"schedule.json": json_text(data), "schedule.md": markdown(data)}
    plans = {f"period-{t + 1}/plan.yaml": p.plan for t, p in enumerate(result.periods)}
    return write_schedule_folder(target, "--report" if folder else "report folder", texts, plans, inputs)


