"""Procurement over time: the placement problems of several periods solved as one MIP.

Period ``t`` has its own PlacementProblem (that period's demand, built as a single plan's is),
with its own variables in one shared SCIP model (names led by ``p<t>/``) and every constraint
of a single plan. The periods are linked by what is bought: the extra nodes of each type never
decrease from one period to the next (hardware bought is kept; nothing is un-bought), and in
every period stay within the type's purchase limit (the variables' bound). Objective: the sum
over periods of the period's cost ($/h, as a single plan counts it: extra nodes, per-unit and
per-replica costs, transfers) x the period's hours, so a node bought earlier is paid for over
more periods.

The schedule that buys each period's own optimum, keeping what earlier periods bought (the
myopic schedule, see ``carried_forward``), is a feasible point of this model; it is given to
SCIP as a hint, and the joint answer is never dearer than it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ortools.linear_solver import pywraplp

from hetsim.errors import InfeasiblePlanError
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


@dataclass(frozen=True)
class HorizonSolution:
    """A solved schedule: per period, its placement with the extra nodes held then (bought in
    that period or earlier) and its cost in $/h (``Solution.objective``); the schedule's cost
    in $ (sum over periods of $/h x hours) and the solver's account of the joint model."""

    periods: tuple[Solution, ...]
    hours: tuple[float, ...]
    objective_usd: float
    status: str  # 'optimal' (within relative_gap) or 'feasible' (stopped at the time limit)
    gap: float
    wall_s: float
    time_limit_s: float

    def bought(self, period: int) -> dict[str, int]:
        """Nodes of each type bought in ``period`` (0-based): held then minus held before."""
        before = self.periods[period - 1].extra_nodes if period else {}
        held = self.periods[period].extra_nodes
        return {name: count - before.get(name, 0) for name, count in held.items()}


def _check(problems: Sequence[PlacementProblem], hours: Sequence[float]) -> None:
    if not problems:
        raise InfeasiblePlanError("horizon: expected at least one period, got none")
    if len(hours) != len(problems):
        raise InfeasiblePlanError(f"horizon: expected hours for each of {len(problems)} periods, got {len(hours)}")
    if any(h <= 0 for h in hours):
        raise InfeasiblePlanError(f"horizon: expected hours > 0 in every period, got {list(hours)}")
    first = [(n.name, n.owned, n.max_extra) for n in problems[0].node_types]
    for index, problem in enumerate(problems[1:], start=2):
        if [(n.name, n.owned, n.max_extra) for n in problem.node_types] != first:
            raise InfeasiblePlanError(f"horizon: period {index} has other node types than period 1 "
                                      "(the same fleet must supply every period)")  # fmt: skip


def solve_horizon(
    problems: Sequence[PlacementProblem],
    hours: Sequence[float],
    *,
    time_limit_s: float = 30.0,
    relative_gap: float = 0.01,
    hint: Sequence[Solution] | None = None,
    unit_cost_scale: float = SECONDS_PER_HOUR,
) -> HorizonSolution:
    """The cheapest purchase schedule over ``problems`` (one per period, ``hours`` long each).

    ``hint``: a feasible schedule (per period, a placement and the extra nodes held), e.g.
    ``carried_forward`` of each period's own optimum; SCIP starts from it.

    Raises:
        InfeasiblePlanError: a period cannot be served by any purchase within the limits.
    """
    _check(problems, hours)
    started = time.perf_counter()
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - SCIP ships with OR-Tools wheels
        raise InfeasiblePlanError("planner: the SCIP backend of OR-Tools is not available")
    models = [build_model(problem, solver, f"p{t}/") for t, problem in enumerate(problems)]
    for earlier, later in itertools.pairwise(models):
        for name, extra in later.extra.items():
            # Nothing bought is un-bought: each type's extra nodes never decrease.
            solver.Add(extra >= earlier.extra[name])
    costs = [objective(problem, model, unit_cost_scale) for problem, model in zip(problems, models, strict=True)]
    solver.Minimize(sum(h * cost for h, cost in zip(hours, costs, strict=True)))
    if hint is not None:
        _set_hint(solver, problems, models, hint)
    solver.SetTimeLimit(int(time_limit_s * 1000))
    parameters = pywraplp.MPSolverParameters()
    parameters.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, relative_gap)
    status = run_solver(solver, parameters)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise InfeasiblePlanError("horizon: no purchase schedule serves every period within the purchase limits")
    account = _Solved(status_name(status), time.perf_counter() - started, time_limit_s)
    return _schedule(problems, models, costs, hours, account)


@dataclass(frozen=True)
class _Solved:
    status: str
    wall_s: float
    time_limit_s: float


def _schedule(problems, models, costs, hours: Sequence[float], solved: _Solved) -> HorizonSolution:
    """Each period's placement and $/h (tie-breaks taken off), the schedule's $ and its gap."""
    choices = [chosen(problem, model) for problem, model in zip(problems, models, strict=True)]
    tie_breaks = [tie_break_usd_per_h(problem, picked) for problem, picked in zip(problems, choices, strict=True)]
    per_h = [_value(cost) - tie for cost, tie in zip(costs, tie_breaks, strict=True)]
    total = sum(h * c for h, c in zip(hours, per_h, strict=True))
    bound = models[0].solver.Objective().BestBound() - sum(h * t for h, t in zip(hours, tie_breaks, strict=True))
    gap = abs(total - bound) / max(abs(total), 1e-12)  # SCIP says OPTIMAL once within the gap asked
    periods = tuple(
        extract(problem, model, picked, SolveAccount(cost, solved.status, gap, solved.wall_s))
        for problem, model, picked, cost in zip(problems, models, choices, per_h, strict=True)
    )
    return HorizonSolution(periods, tuple(hours), total, solved.status, gap, solved.wall_s, solved.time_limit_s)


def _value(expression: object) -> float:
    """The solved value of a linear expression (a plain number when the expression is empty)."""
    return float(expression.solution_value()) if hasattr(expression, "solution_value") else float(expression)  # type: ignore[attr-defined]


def carried_forward(problems: Sequence[PlacementProblem], solutions: Sequence[Solution]) -> list[Solution]:
    """Each period's own placement, holding the most extra nodes of each type that any period up
    to it needed, its cost ($/h) recounted with the nodes held: what buying each period's
    independent optimum, and keeping it, comes to."""
    held: dict[str, int] = {}
    result = []
    for problem, solution in zip(problems, solutions, strict=True):
        held = {name: max(held.get(name, 0), count) for name, count in solution.extra_nodes.items()}
        prices = {n.name: n.usd_per_h for n in problem.node_types}
        more = sum(prices[name] * (count - solution.extra_nodes.get(name, 0)) for name, count in held.items())
        result.append(replace(solution, extra_nodes=dict(held), objective=solution.objective + more))
    return result


def schedule_usd(schedule: Sequence[Solution], hours: Sequence[float]) -> float:
    """$ over the horizon of a schedule: each period's cost ($/h) x its hours."""
    return sum(h * solution.objective for solution, h in zip(schedule, hours, strict=True))


def _set_hint(solver: pywraplp.Solver, problems, models, hint: Sequence[Solution]) -> None:
    """Give SCIP the hinted schedule: its node counts, picks and replica counts."""
    variables, values = [], []
    for problem, model, solution in zip(problems, models, hint, strict=True):
        for name, variable in model.extra.items():
            variables.append(variable)
            values.append(float(solution.extra_nodes.get(name, 0)))
        picked = {(c.stage, c.option.key): c.replicas for c in solution.choices}
        for stage in problem.stages:
            for index, option in enumerate(stage.options):
                replicas = picked.get((stage.name, option.key))
                variables += [model.pick[stage.name, index], model.replicas[stage.name, index]]
                values += [0.0 if replicas is None else 1.0, float(replicas or 0)]
    solver.SetHint(variables, values)
