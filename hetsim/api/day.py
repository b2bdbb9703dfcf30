"""``hetsim plan --fleet F`` when a demand entry has a day profile: the owned base and the rented burst.

The fleet's demand at its peak (``rate_per_s``: the peak hour's rate) is measured and priced as
``hetsim plan`` does (same candidates, SLA, headroom, TCO); each hour's demand is each entry's
rate x its profile's multiplier, and hours of equal demand form one window. Every window's
placement problem is built as ``hetsim plan`` builds one (``build_problem``) and all are solved
as one model (``hetsim.plan.ownrent``): nodes bought are held all day at their owned $/h (annuity,
power, hosting: ``node_hourly_cost`` with the owned basis, the fleet's TCO preset), nodes rented
are paid their profile's rental $/h only in the windows that hold them. The same windows are also
solved all-owned (buy for the peak) and all-rented (rent per window) for comparison. Nodes already
in the inventory serve every window at no added cost (paid for either way). With verification,
each window's plan of the mix is simulated at that window's rate (exit 4 when one misses its SLA;
5 when a solve stopped at its time limit, as ``hetsim plan``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hetsim.api.plan import EXIT_NOT_PROVEN, EXIT_SLA_MISSED, _verify, demand_of, plan_fleet_spec
from hetsim.cost.tco import CostBasis, node_hourly_cost, preset
from hetsim.errors import EstimateError, InfeasiblePlanError
from hetsim.io.calibration import load_calibration
from hetsim.io.fleets import load_fleet
from hetsim.io.json_text import json_text
from hetsim.io.profiles import resolve_profiles
from hetsim.io.schedules import write_schedule_folder
from hetsim.plan.build import build_problem
from hetsim.plan.export import to_plan
from hetsim.plan.ownrent import MODES, DaySolution, NodePrices, solve_day
from hetsim.plan.problem import PlacementProblem
from hetsim.specs.fleet import FleetSpec
from hetsim.specs.profile import HOURS_PER_DAY

Progress = Callable[[str], None]


def has_profile(fleet: FleetSpec) -> bool:
    """Whether any demand entry follows a day profile (``hetsim plan`` then plans own versus rent)."""
    return any(entry.profile is not None for entry in fleet.demand)


@dataclass
class DayResult:
    """The day: per-hour multipliers, windows (hours, demand scales, problems), the three answers
    (None where a pure answer is infeasible, with the reason), verification of the mix per window."""

    fleet: FleetSpec
    multipliers: list[tuple[float, ...]]  # per hour: each demand entry's share of its peak rate
    window_of_hour: list[int]
    windows: list[tuple[float, ...]]
    problems: list[PlacementProblem]
    answers: dict[str, DaySolution | None]
    reasons: dict[str, str]
    peak_rates: list[float]
    prices: dict[str, NodePrices]
    verification: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def mix(self) -> DaySolution:
        answer = self.answers["mix"]
        assert answer is not None  # solve_own_vs_rent raises when the mix is infeasible
        return answer

    @property
    def exit_code(self) -> int:
        if any(v and not v.get("met") for v in self.verification):
            return EXIT_SLA_MISSED
        return 0 if self.mix.status == "optimal" else EXIT_NOT_PROVEN


def _windows(fleet: FleetSpec) -> tuple[list[tuple[float, ...]], list[int], list[tuple[float, ...]]]:
    """Per hour each entry's multiplier; the distinct demand levels (windows); each hour's window."""
    shapes = [entry.profile.multipliers() if entry.profile is not None and not isinstance(entry.profile, str)
              else (1.0,) * HOURS_PER_DAY for entry in fleet.demand]  # fmt: skip
    per_hour = [tuple(shape[h] for shape in shapes) for h in range(HOURS_PER_DAY)]
    windows: list[tuple[float, ...]] = []
    window_of_hour = []
    for scales in per_hour:
        key = tuple(round(s, 9) for s in scales)
        if key not in windows:
            windows.append(key)
        window_of_hour.append(windows.index(key))
    return per_hour, window_of_hour, windows


def node_prices(fleet: FleetSpec, hardware) -> dict[str, NodePrices]:
    """Owned $/h (the TCO preset's annuity, power, hosting), rental $/h and, where the fleet
    allows spot and the node profile prices it, spot $/h with the share of the time a spot node
    is missing (reclaimed and being replaced) of every node type the fleet names."""
    assumptions = preset(fleet.tco)
    prices = {}
    for name in [o.node for o in fleet.inventory] + [c.node for c in fleet.catalog]:
        node = hardware.node(name)
        costs = []
        for basis in (CostBasis.OWNED, CostBasis.RENTED):
            try:
                costs.append(node_hourly_cost(node, hardware.accelerators, assumptions, basis).total_usd_per_h)
            except EstimateError:
                costs.append(None)
        spot = node.price.spot if fleet.options.allow_spot else None
        if spot is None:
            prices[name] = NodePrices(*costs)
            continue
        run_s, replace_s = spot.mean_time_to_interruption.si, fleet.options.spot_replacement_s
        prices[name] = NodePrices(*costs, spot.rental.si * 3600.0, replace_s / (run_s + replace_s), 3600.0 / run_s)
    return prices


def plan_day(fleet_path: Path, workload: str | None = None, rate: float | None = None, verify: bool = True,
             progress: Progress | None = None, size_for: str = "nominal", stack: str | None = None) -> DayResult:  # fmt: skip
    """Own versus rent over the fleet's day profile(s), verified per window when asked."""
    calibration_of = (lambda device: load_calibration(device, stack=stack)) if stack else load_calibration
    fleet = resolve_profiles(load_fleet(fleet_path), fleet_path)
    fleet = fleet.model_copy(update={"demand": demand_of(fleet, workload, rate)})
    return plan_day_spec(fleet, verify, progress, calibration_of, size_for)


def plan_day_spec(fleet: FleetSpec, verify: bool = True, progress: Progress | None = None,
                  calibration_of=load_calibration, size_for: str = "nominal") -> DayResult:  # fmt: skip
    """``plan_day`` for a fleet whose profiles are already read (``resolve_profiles``)."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    per_hour, window_of_hour, windows = _windows(fleet)
    # The peak planned as `hetsim plan` plans it (no simulation): measured demand and device models.
    base = plan_fleet_spec(fleet, verify=False, progress=say, calibration_of=calibration_of, size_for=size_for)
    ctx = base.context
    hardware, headroom = ctx["hardware"], float(ctx["headroom"])
    problems, fleets, workloads = [], [], []
    for w, scales in enumerate(windows):
        say(f"window {w + 1}/{len(windows)}: demand x{', x'.join(f'{s:.3g}' for s in scales)}")
        scaled = tuple(d.model_copy(update={"rate_per_s": d.rate_per_s * s}) for d, s in zip(fleet.demand, scales, strict=True))
        fleets.append(fleet.model_copy(update={"demand": scaled}))
        workloads.append([replace(wl, rate_per_s=wl.rate_per_s * s) for wl, s in zip(base.workloads, scales, strict=True)])
        problems.append(build_problem(fleets[w], workloads[w], hardware, ctx["models"], ctx["perfs"],
                                      preset(fleet.tco), headroom))  # fmt: skip
    hours = [float(window_of_hour.count(w)) for w in range(len(windows))]
    prices = node_prices(fleet, hardware)
    answers: dict[str, DaySolution | None] = {}
    reasons: dict[str, str] = {}
    for mode in MODES:
        say(f"solving the day as one model ({mode})")
        try:
            answers[mode] = solve_day(problems, hours, prices, mode=mode,
                                      time_limit_s=fleet.options.time_limit_s * len(windows),
                                      relative_gap=fleet.options.relative_gap)  # fmt: skip
        except InfeasiblePlanError as exc:
            if mode == "mix":
                raise
            answers[mode], reasons[mode] = None, str(exc)
    result = DayResult(fleet, per_hour, window_of_hour, windows, problems, answers, reasons,
                       [d.rate_per_s for d in fleet.demand], prices)  # fmt: skip
    if verify:
        calibrations = {d: p.calibration for d, p in ctx["perfs"].items() if p.calibration is not None}
        for w, (problem, solution) in enumerate(zip(problems, result.mix.windows, strict=True)):
            say(f"window {w + 1}: simulating the plan")
            plan = to_plan(problem, solution, f"{fleet.name}-window-{w + 1}", fleet.kv_link, {})
            verdict = _verify(plan, fleets[w], fleets[w].demand, workloads[w], hardware, ctx["models"], calibrations)
            verdict.pop("frames", None)
            result.verification.append(verdict)
    result.wall_s = time.perf_counter() - started
    return result


def _sustained(problem: PlacementProblem, solution, rate: float) -> float | None:
    """Sessions/s the window's placement sustains: its rate x the tightest stage's capacity over demand."""
    ratios = []
    for stage in problem.stages:
        capacity = sum(c.replicas * c.option.capacity_per_replica for c in solution.choices_of(stage.name))
        if stage.demand_per_s > 0 and capacity != float("inf") and solution.choices_of(stage.name):
            ratios.append(capacity / stage.demand_per_s)
    return rate * min(ratios) if ratios else None


def _nonzero(nodes: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in nodes.items() if count}


def hour_rows(result: DayResult) -> list[dict[str, Any]]:
    """One row per hour: demand (sessions/s), window, nodes owned/bought/rented and the sessions/s they sustain."""
    mix = result.mix
    owned = {o.node: o.count for o in result.fleet.inventory}
    rows = []
    for hour, (scales, w) in enumerate(zip(result.multipliers, result.window_of_hour, strict=True)):
        rate = sum(peak * s for peak, s in zip(result.peak_rates, scales, strict=True))
        verdict = result.verification[w].get("met") if result.verification else None
        rows.append({"hour": hour, "window": w + 1, "sessions_per_s": rate, "inventory": _nonzero(owned),
                     "bought": _nonzero(mix.buy), "rented": _nonzero(mix.rent[w]),
                     "spot": _nonzero(mix.spot[w]) if mix.spot else {}, "spot_spares": _nonzero(mix.spare[w]) if mix.spare else {},
                     "capacity_sessions_per_s": _sustained(result.problems[w], mix.windows[w], rate),
                     "window_usd_per_h": mix.windows[w].objective, "sla_met_in_simulation": verdict})  # fmt: skip
    return rows


def _answer(answer: DaySolution | None, reason: str | None, prices: dict[str, NodePrices]) -> dict[str, Any]:
    if answer is None:
        return {"feasible": False, "note": reason}
    spot_held = [{n: s.get(n, 0) + e.get(n, 0) for n in s} for s, e in zip(answer.spot, answer.spare, strict=True)]
    return {"feasible": True, "usd_per_day": answer.usd_per_day, "owned_usd_per_day": answer.owned_usd_per_day,
            "rented_usd_per_day": answer.rented_usd_per_day, "spot_usd_per_day": answer.spot_usd_per_day,
            "other_usd_per_day": answer.other_usd_per_day,
            "spot_node_hours": sum(h * sum(held.values()) for h, held in zip(answer.hours, spot_held, strict=True)),
            "peak_spot": _nonzero({n: max((s.get(n, 0) for s in answer.spot), default=0) for n in answer.buy}),
            "spot_interruptions_per_day": sum(h * c * prices[n].spot_interruptions_per_h
                                              for h, held in zip(answer.hours, spot_held, strict=True)
                                              for n, c in held.items()),
            "bought": _nonzero(answer.buy), "peak_rented": _nonzero({n: max(r.get(n, 0) for r in answer.rent)
                                                                     for n in answer.buy}),
            "rented_node_hours": sum(h * sum(r.values()) for h, r in zip(answer.hours, answer.rent, strict=True)),
            "status": answer.status, "gap": answer.gap, "wall_s": answer.wall_s}  # fmt: skip


def summary(result: DayResult) -> dict[str, Any]:
    """Everything the day plan says, JSON-ready."""
    answers = {mode: _answer(result.answers[mode], result.reasons.get(mode), result.prices) for mode in MODES}
    mix = answers["mix"]
    savings = {mode: answers[mode]["usd_per_day"] - mix["usd_per_day"] for mode in ("owned", "rented")
               if answers[mode]["feasible"]}  # fmt: skip
    met = None if not result.verification else all(v.get("met") for v in result.verification)
    prices = result.prices
    return {
        "fleet": result.fleet.name, "headline": headline(answers, met), "answers": answers, "mix_saves_usd_per_day": savings,
        "hours": hour_rows(result), "windows": len(result.windows), "sla_met_in_simulation": met,
        "prices_usd_per_h": {n: {"owned": p.owned_usd_per_h, "rented": p.rented_usd_per_h, "spot": p.spot_usd_per_h}
                             for n, p in prices.items()},
        "exit_code": result.exit_code, "wall_s": result.wall_s,
        "basis": "$ per day of the nodes added to the inventory: bought nodes at their owned $/h (annuity, power, "
                 f"hosting; TCO preset {result.fleet.tco}) x 24 h, rented nodes at their profile's rental $/h x the hours "
                 "of the windows that hold them, plus per-unit costs; inventory nodes serve every hour at no added cost; "
                 + (f"spot nodes at their profile's spot $/h with spares for the share of time a reclaimed one is being "
                    f"replaced ({result.fleet.options.spot_replacement_s:g} s a reclaim)" if result.fleet.options.allow_spot
                    else "spot capacity not considered (options.allow_spot)"),
    }  # fmt: skip


def _nodes_text(nodes: dict[str, int]) -> str:
    return ", ".join(f"{count} x {name}" for name, count in nodes.items()) or "nothing"


def headline(answers: dict[str, dict[str, Any]], met: bool | None) -> str:
    """What to own, what to rent at the peak, the day's cost against the pure answers."""
    mix = answers["mix"]
    versus = [f"{mode}-only ${answers[mode]['usd_per_day']:,.0f}/day" if answers[mode]["feasible"]
              else f"{mode}-only infeasible" for mode in ("owned", "rented")]  # fmt: skip
    verdict = {True: "meets the SLA in every window in simulation", False: "MISSES the SLA in simulation in some window",
               None: "not checked in simulation"}[met]  # fmt: skip
    rented = [text for text, nodes in ((f"{_nodes_text(mix['peak_rented'])} on demand", mix["peak_rented"]),
                                       (f"{_nodes_text(mix.get('peak_spot', {}))} spot", mix.get("peak_spot")))
              if nodes]  # fmt: skip
    rent = f"rent up to {' and '.join(rented)} at the peak" if rented else "rent nothing"
    return (f"Own {_nodes_text(mix['bought'])}, {rent}: "
            f"${mix['usd_per_day']:,.0f}/day against {' and '.join(versus)}; {verdict}.")


def fleet_has_profile(fleet_path: Path) -> bool:
    """Whether the fleet file's demand follows a day profile (``hetsim plan`` then plans own versus rent)."""
    return has_profile(load_fleet(fleet_path))


def write_day(result: DayResult, data: dict[str, Any], folder: Path | None) -> list[Path]:
    """``day.json``, ``day.md``, ``day.png`` (the demand over the day with the capacity under it, and
    the nodes held by kind) and ``window-<n>/plan.yaml`` (the mix's placement in each window) in
    ``folder`` (default ``reports/<fleet>/day``), written whole."""
    from hetsim.report._style import figure_png
    from hetsim.report.day_figures import day_figure

    target = folder or Path("reports") / result.fleet.name / "day"
    figure = figure_png(day_figure(data["hours"], result.fleet.name))
    texts = {"day.json": json_text(data), "day.md": day_markdown(data)}
    plans = {f"window-{w + 1}/plan.yaml": to_plan(problem, solution, f"{result.fleet.name}-window-{w + 1}",
                                                 result.fleet.kv_link, {})
             for w, (problem, solution) in enumerate(zip(result.problems, result.mix.windows, strict=True))}  # fmt: skip
    inputs = {"fleet": result.fleet.name, "windows": len(result.windows), "allow_spot": result.fleet.options.allow_spot}
    return write_schedule_folder(target, "--report" if folder else "report folder", texts, plans, inputs,
                                 {"day.png": figure})  # fmt: skip


def day_markdown(data: dict[str, Any]) -> str:
    """The day plan as Markdown: headline, the figure, the hour table, the three answers, the basis."""
    lines = [f"# Day plan: {data['fleet']}", "", data["headline"], "", "![demand and capacity over the day](day.png)", "",
             "| hour | sessions/s | owned + bought | rented | spot (+ spares) | sustains sessions/s | $/h |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["hours"]:
        owned = {**r["inventory"]}
        for name, count in r["bought"].items():
            owned[name] = owned.get(name, 0) + count
        spot = _nodes_text(r["spot"]) + (f" (+ {_nodes_text(r['spot_spares'])})" if r["spot_spares"] else "")
        capacity = "n/a" if r["capacity_sessions_per_s"] is None else f"{r['capacity_sessions_per_s']:.3g}"
        lines.append(f"| {r['hour']:02d}:00 | {r['sessions_per_s']:.3g} | {_nodes_text(owned)} | "
                     f"{_nodes_text(r['rented'])} | {spot if r['spot'] else '-'} | {capacity} | "
                     f"${r['window_usd_per_h']:,.2f}/h |")  # fmt: skip
    lines += ["", "| answer | $/day | owned $/day | rented $/day | spot $/day | spot reclaims/day |", "|---|---|---|---|---|---|"]
    for mode, a in data["answers"].items():
        lines.append(f"| {mode} | ${a['usd_per_day']:,.0f} | ${a['owned_usd_per_day']:,.0f} | ${a['rented_usd_per_day']:,.0f} | "
                     f"${a['spot_usd_per_day']:,.0f} | {a['spot_interruptions_per_day']:.2g} |" if a["feasible"]
                     else f"| {mode} | infeasible: {a['note']} | | | | |")  # fmt: skip
    return "\n".join([*lines, "", f"Basis: {data['basis']}.", ""])


