"""Own versus rent over a day: the owned base and the rented burst as one MIP.

A day is cut into windows (hours of equal demand share one window; ``hours`` says how many).
Window ``w`` has its own PlacementProblem (its demand, built as a single plan's is) with its own
variables in one shared SCIP model (names led by ``w<w>/``) and every constraint of a single
plan, so the SLA holds in every window. The nodes a window adds to the inventory are split,
per node type, into nodes *bought* (one count for the whole day: hardware is not bought by the
hour) and nodes *rented* in that window:

    extra[w, n] = buy[n] + rent[w, n],     buy[n], rent[w, n] integers >= 0

and ``extra[w, n]`` keeps the type's purchase limit (nodes held at once). Objective, $ per day:

    sum_n owned_usd_per_h[n] x 24 x buy[n]                    (annuity + power + hosting, all day)
  + sum_w hours[w] x sum_n rental_usd_per_h[n] x rent[w, n]   (rented only in the windows needing it)
  + sum_w hours[w] x other[w]                                  (per-unit, per-replica, transfer costs)

A type with no rental price cannot be rented (rent = 0), one with no purchase price cannot be
bought. ``mode`` also solves the two pure answers on the same windows: ``owned`` (rent = 0: buy
for the peak) and ``rented`` (buy = 0: rent per window); the mix is never dearer than either,
since each is a feasible point of the mixed model.

Spot (interruptible) nodes, where a type's prices have them, serve like rented ones; a reclaimed
one is missing until its replacement serves, a share ``d`` = replacement / (mean time to
interruption + replacement) of the time. So that the window keeps its serving nodes on average,
each window holds spares beside them, paid at the spot price and counted in no placement:

    extra[w, n] = buy[n] + rent[w, n] + spot[w, n],   spare[w, n] >= d[n] x spot[w, n]
    + sum_w hours[w] x sum_n spot_usd_per_h[n] x (spot[w, n] + spare[w, n])

This covers the expected loss, not a burst of reclaims at once (providers reclaim together when
capacity tightens); the plan reports the expected interruptions per day.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ortools.linear_solver import pywraplp

from hetsim.errors import InfeasiblePlanError
from hetsim.plan.horizon import _check
from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.plan.solver import (
    SECONDS_PER_HOUR,
    SolveAccount,
    build_model,
    chosen,
    extract,
    objective,
    run_solver,
    status_name,
    tie_break_usd_per_h,
)

HOURS_PER_DAY = 24.0
MODES = ("mix", "owned", "rented")


@dataclass(frozen=True)
class NodePrices:
    """$/h of one node type bought (its annuity, power and hosting; None: not purchasable) and
    rented (its rental price; None: no rental price in its profile)."""

    owned_usd_per_h: float | None
    rented_usd_per_h: float | None
    spot_usd_per_h: float | None = None  # None: no spot price, or spot not allowed
    spot_down_share: float = 0.0  # share of the time a spot node is missing (reclaimed, being replaced)
    spot_interruptions_per_h: float = 0.0


@dataclass(frozen=True)
class DaySolution:
    """A solved day: nodes bought (all day), per window its placement (``extra_nodes``: bought +
    rented then), nodes rented and $/h of its other costs; the day's $ and the solver's account."""

    mode: str
    buy: dict[str, int]
    rent: tuple[dict[str, int], ...]
    windows: tuple[Solution, ...]
    hours: tuple[float, ...]
    owned_usd_per_day: float
    rented_usd_per_day: float
    other_usd_per_day: float
    status: str
    gap: float
    wall_s: float
    spot: tuple[dict[str, int], ...] = ()  # per window: spot nodes serving
    spare: tuple[dict[str, int], ...] = ()  # per window: spot nodes held for those reclaimed
    spot_usd_per_day: float = 0.0

    @property
    def usd_per_day(self) -> float:
        return self.owned_usd_per_day + self.rented_usd_per_day + self.spot_usd_per_day + self.other_usd_per_day


def solve_day(
    problems: Sequence[PlacementProblem],
    hours: Sequence[float],
    prices: dict[str, NodePrices],
    *,
    mode: str = "mix",
    time_limit_s: float = 30.0,
    relative_gap: float = 0.01,
) -> DaySolution:
    """The cheapest owned base and rented burst serving every window (see the module docstring).

    Raises:
        InfeasiblePlanError: some window cannot be served within the limits (or by ``mode``'s nodes).
    """
    if mode not in MODES:
        raise InfeasiblePlanError(f"own-vs-rent: expected a mode in {MODES}, got {mode!r}")
    _check(problems, hours)
    if abs(sum(hours) - HOURS_PER_DAY) > 1e-6:
        raise InfeasiblePlanError(f"own-vs-rent: expected windows covering {HOURS_PER_DAY:g} h, got {sum(hours):g} h")
    started = time.perf_counter()
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - SCIP ships with OR-Tools wheels
        raise InfeasiblePlanError("planner: the SCIP backend of OR-Tools is not available")
    models = [build_model(problem, solver, f"w{w}/") for w, problem in enumerate(problems)]
    names = [n.name for n in problems[0].node_types]
    missing = [name for name in names if name not in prices]
    if missing:
        raise InfeasiblePlanError(f"own-vs-rent: no prices for node type(s) {missing}")
    can_buy = {n: mode != "rented" and prices[n].owned_usd_per_h is not None for n in names}
    can_rent = {n: mode != "owned" and prices[n].rented_usd_per_h is not None for n in names}
    can_spot = {n: mode != "owned" and prices[n].spot_usd_per_h is not None for n in names}
    buy = {n: solver.IntVar(0, solver.infinity() if can_buy[n] else 0, f"buy[{n}]") for n in names}
    rent = [{n: solver.IntVar(0, solver.infinity() if can_rent[n] else 0, f"w{w}/rent[{n}]") for n in names}
            for w in range(len(problems))]  # fmt: skip
    spot = [{n: solver.IntVar(0, solver.infinity() if can_spot[n] else 0, f"w{w}/spot[{n}]") for n in names}
            for w in range(len(problems))]  # fmt: skip
    spare = [{n: solver.IntVar(0, solver.infinity() if can_spot[n] else 0, f"w{w}/spare[{n}]") for n in names}
             for w in range(len(problems))]  # fmt: skip
    for model, rented, serving, held in zip(models, rent, spot, spare, strict=True):
        for n in names:
            solver.Add(model.extra[n] == buy[n] + rented[n] + serving[n])
            solver.Add(held[n] >= prices[n].spot_down_share * serving[n])
    owned = HOURS_PER_DAY * sum((prices[n].owned_usd_per_h or 0.0) * buy[n] for n in names)
    rented_cost = [sum((prices[n].rented_usd_per_h or 0.0) * r[n] + (prices[n].spot_usd_per_h or 0.0) * (s[n] + h[n])
                       for n in names) for r, s, h in zip(rent, spot, spare, strict=True)]  # fmt: skip
    # Each window's other costs: the single plan's objective with the nodes priced at nothing.
    unpriced = [replace(p, node_types=tuple(replace(t, usd_per_h=0.0) for t in p.node_types)) for p in problems]
    others = [objective(p, m, SECONDS_PER_HOUR) for p, m in zip(unpriced, models, strict=True)]
    solver.Minimize(owned + sum(h * (r + o) for h, r, o in zip(hours, rented_cost, others, strict=True)))
    solver.SetTimeLimit(int(time_limit_s * 1000))
    parameters = pywraplp.MPSolverParameters()
    parameters.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, relative_gap)
    status = run_solver(solver, parameters)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        what = {"mix": "bought and rented", "owned": "bought", "rented": "rented"}[mode]
        raise InfeasiblePlanError(f"own-vs-rent ({mode}): no nodes {what} within the limits serve every window")
    wall_s = time.perf_counter() - started
    choices = [chosen(p, m) for p, m in zip(problems, models, strict=True)]
    ties = [tie_break_usd_per_h(p, c) for p, c in zip(problems, choices, strict=True)]
    other_per_h = [_value(o) - t for o, t in zip(others, ties, strict=True)]
    bought = {n: round(v.solution_value()) for n, v in buy.items()}
    rents = tuple({n: round(v.solution_value()) for n, v in r.items()} for r in rent)
    spots = tuple({n: round(v.solution_value()) for n, v in r.items()} for r in spot)
    spares = tuple({n: round(v.solution_value()) for n, v in r.items()} for r in spare)
    owned_usd = HOURS_PER_DAY * sum((prices[n].owned_usd_per_h or 0.0) * c for n, c in bought.items())
    rented_usd = sum(h * sum((prices[n].rented_usd_per_h or 0.0) * c for n, c in r.items())
                     for h, r in zip(hours, rents, strict=True))  # fmt: skip
    spot_per_h = [sum((prices[n].spot_usd_per_h or 0.0) * (s[n] + e[n]) for n in names) for s, e in zip(spots, spares, strict=True)]
    spot_usd = sum(h * c for h, c in zip(hours, spot_per_h, strict=True))
    other_usd = sum(h * c for h, c in zip(hours, other_per_h, strict=True))
    total = owned_usd + rented_usd + spot_usd + other_usd
    bound = solver.Objective().BestBound() - sum(h * t for h, t in zip(hours, ties, strict=True))
    gap = abs(total - bound) / max(abs(total), 1e-12)
    state = status_name(status)
    windows = []
    for w, (problem, model, picked) in enumerate(zip(problems, models, choices, strict=True)):
        window_usd_per_h = (owned_usd / HOURS_PER_DAY
                            + sum((prices[n].rented_usd_per_h or 0.0) * c for n, c in rents[w].items())
                            + spot_per_h[w] + other_per_h[w])  # fmt: skip
        windows.append(extract(problem, model, picked, SolveAccount(window_usd_per_h, state, gap, wall_s)))
    return DaySolution(mode, bought, rents, tuple(windows), tuple(hours), owned_usd, rented_usd, other_usd,
                       state, gap, wall_s, spots, spares, spot_usd)  # fmt: skip


def _value(expression: object) -> float:
    """The solved value of a linear expression (a plain number when the expression is empty)."""
    return float(expression.solution_value()) if hasattr(expression, "solution_value") else float(expression)  # type: ignore[attr-defined]
