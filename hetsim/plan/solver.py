"""Solve a PlacementProblem as a mixed-integer program (OR-Tools, SCIP backend).

Why SCIP through pywraplp: measured on this project's machine (environment.md), linear fleet
sizing with integer counts solves fastest there (200 x 16: SCIP 94 ms, CBC 0.67 s, HiGHS 2.2 s,
CP-SAT 16.5 s). The model is built in named steps over dicts keyed by (stage, option).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ortools.linear_solver import pywraplp

from hetsim.errors import InfeasiblePlanError
from hetsim.plan.problem import Choice, PlacementProblem, Solution

SECONDS_PER_HOUR = 3600.0
# $/h charged per option picked beyond nothing: a tie-break, so that a stage is split across
# pools only when the split saves money (far below any real price difference).
POOL_TIE_BREAK_USD_PER_H = 1e-4
SOLVER_NAME = "SCIP (OR-Tools pywraplp)"


@dataclass
class _Model:
    solver: pywraplp.Solver
    use: dict[str, object]  # stage -> 0/1 (constant 1 or structure variable)
    pick: dict[tuple[str, int], pywraplp.Variable]  # (stage, option index) -> binary
    replicas: dict[tuple[str, int], pywraplp.Variable]  # (stage, option index) -> integer
    extra: dict[str, pywraplp.Variable]  # node type -> integer
    transfer: list[pywraplp.Variable]
    latency: dict[str, pywraplp.Variable]  # stage -> the slowest picked option's latency (paths)


def _upper_replicas(problem: PlacementProblem, stage_index: int, option_index: int) -> int:
    stage = problem.stages[stage_index]
    option = stage.options[option_index]
    if not problem.sizing or math.isinf(option.capacity_per_replica):
        return 0
    return max(1, math.ceil(problem.headroom * stage.demand_per_s / option.capacity_per_replica))


def build_model(problem: PlacementProblem, solver: pywraplp.Solver, prefix: str = "") -> _Model:
    """Variables and constraints of ``problem`` in ``solver``, every name led by ``prefix``
    (several problems, e.g. the periods of a horizon, share one solver); no objective."""
    model = _build_variables(problem, solver, prefix)
    _add_constraints(problem, model, prefix)
    return model


def _build_variables(problem: PlacementProblem, solver: pywraplp.Solver, prefix: str = "") -> _Model:
    use: dict[str, object] = {s.name: 1 for s in problem.stages}
    for group in problem.groups:
        structure_vars = [solver.BoolVar(f"{prefix}structure[{group.name}#{i}]") for i in range(len(group.structures))]
        solver.Add(sum(structure_vars) == 1)  # exactly one structure per group
        for variable, structure in zip(structure_vars, group.structures, strict=True):
            for stage in structure:
                use[stage] = variable
    pick, replicas = {}, {}
    for si, stage in enumerate(problem.stages):
        for ci, option in enumerate(stage.options):
            pick[stage.name, ci] = solver.BoolVar(f"{prefix}pick[{stage.name}|{option.key}]")
            upper = _upper_replicas(problem, si, ci)
            replicas[stage.name, ci] = solver.IntVar(0, upper, f"{prefix}replicas[{stage.name}|{option.key}]")
    extra = {
        node.name: solver.IntVar(
            0, node.max_extra if node.max_extra is not None else solver.infinity(), f"{prefix}extra[{node.name}]"
        )
        for node in problem.node_types
    }
    latency = {
        stage.name: solver.NumVar(0, solver.infinity(), f"{prefix}latency[{stage.name}]") for stage in problem.stages
    }
    return _Model(solver, use, pick, replicas, extra, [], latency)


def _add_constraints(problem: PlacementProblem, m: _Model, prefix: str = "") -> None:
    solver = m.solver
    for si, stage in enumerate(problem.stages):
        picks = [m.pick[stage.name, ci] for ci in range(len(stage.options))]
        # Each used stage picks one option, or up to max_pools_per_stage whose capacities add up.
        most = problem.most_pools(stage)
        solver.Add(sum(picks) >= m.use[stage.name])
        solver.Add(sum(picks) <= most * m.use[stage.name])
        for ci, option in enumerate(stage.options):
            # A visit may meet any picked pool: the path sees the slowest.
            solver.Add(m.latency[stage.name] >= option.latency_s * m.pick[stage.name, ci])
            # Replicas only of the picked option, and at least one of it.
            solver.Add(m.replicas[stage.name, ci] <= _upper_replicas(problem, si, ci) * m.pick[stage.name, ci])
            if problem.sizing and not math.isinf(option.capacity_per_replica):
                solver.Add(m.replicas[stage.name, ci] >= m.pick[stage.name, ci])
        if problem.sizing:
            # Throughput covers demand x headroom.
            capacity = sum(
                o.capacity_per_replica * m.replicas[stage.name, ci]
                for ci, o in enumerate(stage.options)
                if not math.isinf(o.capacity_per_replica)
            )
            unlimited = sum(
                m.pick[stage.name, ci] for ci, o in enumerate(stage.options) if math.isinf(o.capacity_per_replica)
            )
            need = problem.headroom * stage.demand_per_s
            solver.Add(capacity + need * unlimited >= need * m.use[stage.name])
    _add_device_supply(problem, m)
    _add_transfers(problem, m, prefix)
    _add_paths(problem, m)


def _add_device_supply(problem: PlacementProblem, m: _Model) -> None:
    devices = {o.device for s in problem.stages for o in s.options}
    for device in sorted(devices):
        used = sum(
            o.devices_per_replica * m.replicas[s.name, ci]
            for s in problem.stages
            for ci, o in enumerate(s.options)
            if o.device == device
        )
        supply = sum(n.devices.get(device, 0) * (n.owned + m.extra[n.name]) for n in problem.node_types)
        # Devices used fit in owned + bought nodes of every type that carries them.
        m.solver.Add(used <= supply)
    if problem.site_power_w is not None:
        # Every node kept (owned or added) is provisioned at full load within the site's budget.
        m.solver.Add(sum(n.power_w * (n.owned + m.extra[n.name]) for n in problem.node_types) <= problem.site_power_w)


def _device_pick(problem: PlacementProblem, m: _Model, stage_name: str, device: str):
    stage = problem.stage(stage_name)
    return sum(m.pick[stage_name, ci] for ci, o in enumerate(stage.options) if o.device == device)


def _add_transfers(problem: PlacementProblem, m: _Model, prefix: str = "") -> None:
    for index, transfer in enumerate(problem.transfers):
        w = m.solver.NumVar(0, 1, f"{prefix}transfer[{index}:{transfer.source}->{transfer.target}]")
        if transfer.only_if_devices_differ:
            devices = {o.device for o in problem.stage(transfer.source).options}
            for device in devices:
                # Active when the source runs on a device the target does not.
                m.solver.Add(
                    w
                    >= _device_pick(problem, m, transfer.source, device)
                    - _device_pick(problem, m, transfer.target, device)
                )
        else:
            m.solver.Add(w >= m.use[transfer.source] + m.use[transfer.target] - 1)
        m.transfer.append(w)


def _path_latency(problem: PlacementProblem, m: _Model, path) -> object:
    on_path = {name for name, _ in path.stages}
    latency = path.fixed_s + sum(visits * m.latency[name] for name, visits in path.stages)
    visits = dict(path.stages)
    for transfer, w in zip(problem.transfers, m.transfer, strict=True):
        if transfer.source in on_path and transfer.target in on_path:
            latency += visits[transfer.target] * transfer.latency_s * w
    return latency


def _add_paths(problem: PlacementProblem, m: _Model) -> None:
    for path in problem.paths:
        # End-to-end latency along the path within its limit (inclusive, as the paper's example).
        m.solver.Add(_path_latency(problem, m, path) <= path.limit_s + 1e-9)


def objective(problem: PlacementProblem, m: _Model, unit_cost_scale: float = SECONDS_PER_HOUR):
    """The problem's cost as a linear expression ($/h by default): extra nodes, per-unit and
    per-replica costs, transfers, and the pool tie-break (see ``tie_break_usd_per_h``)."""
    nodes = sum(n.usd_per_h * m.extra[n.name] for n in problem.node_types)
    per_unit = sum(
        o.usd_per_unit * s.demand_per_s * unit_cost_scale * m.pick[s.name, ci]
        for s in problem.stages
        for ci, o in enumerate(s.options)
    )
    per_replica = sum(
        o.usd_per_h_per_replica * m.replicas[s.name, ci] for s in problem.stages for ci, o in enumerate(s.options)
    )
    transfers = sum(
        t.usd_per_unit * problem.stage(t.source).demand_per_s * unit_cost_scale * w
        for t, w in zip(problem.transfers, m.transfer, strict=True)
    )
    return nodes + per_unit + per_replica + transfers + tie_break(problem, m)


def tie_break(problem: PlacementProblem, m: _Model):
    """Terms that rank placements of equal cost, far below any price difference: fewer pools
    per stage, and less capital occupied (a CPU job stays off an owned GPU that costs nothing
    extra either way; ``Option.tie_break_per_replica``)."""
    pools = POOL_TIE_BREAK_USD_PER_H * sum(m.pick.values()) if problem.max_pools_per_stage > 1 else 0
    occupied = sum(
        o.tie_break_per_replica * m.replicas[s.name, ci]
        for s in problem.stages for ci, o in enumerate(s.options) if o.tie_break_per_replica
    )  # fmt: skip
    return pools + occupied


def tie_break_usd_per_h(problem: PlacementProblem, choices: tuple[Choice, ...] | list[Choice]) -> float:
    """The tie-break the objective charged for ``choices`` (taken off the reported cost)."""
    pools = POOL_TIE_BREAK_USD_PER_H * len(choices) if problem.max_pools_per_stage > 1 else 0.0
    return pools + sum(c.option.tie_break_per_replica * c.replicas for c in choices)


def solve(
    problem: PlacementProblem,
    *,
    time_limit_s: float = 30.0,
    relative_gap: float = 0.01,
    unit_cost_scale: float = SECONDS_PER_HOUR,
    settle_ties: bool = True,
) -> Solution:
    """Cheapest placement meeting every constraint; raises InfeasiblePlanError when none does.
    ``settle_ties``: a second solve ranks placements of the cost found (see ``_settle_ties``);
    off where only the cost and the nodes bought matter.

    ``unit_cost_scale`` turns per-unit costs x demand per second into the objective's unit
    ($/h by default; 1.0 when demand is given per request, as in the paper's worked example).
    """
    started = time.perf_counter()
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:  # pragma: no cover - SCIP ships with OR-Tools wheels
        raise InfeasiblePlanError("planner: the SCIP backend of OR-Tools is not available")
    model = build_model(problem, solver)
    solver.Minimize(objective(problem, model, unit_cost_scale))
    solver.SetTimeLimit(int(time_limit_s * 1000))
    parameters = pywraplp.MPSolverParameters()
    parameters.SetDoubleParam(pywraplp.MPSolverParameters.RELATIVE_MIP_GAP, relative_gap)
    status = run_solver(solver, parameters)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise InfeasiblePlanError("no placement meets every constraint")
    choices = chosen(problem, model)
    tie = tie_break_usd_per_h(problem, choices)
    cost, bound = solver.Objective().Value() - tie, solver.Objective().BestBound() - tie
    # SCIP reports OPTIMAL once within the requested gap, so the gap is always computed.
    gap = abs(cost - bound) / max(abs(cost), 1e-12)
    left_s = time_limit_s - (time.perf_counter() - started)
    value = _snapshot(solver)
    if settle_ties and tie > 0 and left_s > 0:
        settled = _settle_ties(problem, model, cost, unit_cost_scale, left_s)
        if settled is not None:
            choices, value = settled, _snapshot(solver)
    account = SolveAccount(cost, status_name(status), gap, time.perf_counter() - started)
    return extract(problem, model, choices, account, value)


def _snapshot(solver: pywraplp.Solver) -> Callable[[pywraplp.Variable], float]:
    """The solved values of every variable, kept (a later solve overwrites the solver's)."""
    values = {v.index(): v.solution_value() for v in solver.variables()}
    return lambda variable: values[variable.index()]


def _settle_ties(problem: PlacementProblem, m: _Model, cost: float, unit_cost_scale: float, left_s: float):
    """Among placements no dearer than the one found, the one the tie-breaks prefer: the first
    solve stops within its relative gap, far coarser than the tie-breaks, so they are settled
    in a second solve with the cost held (its choices; None when that solve finds nothing)."""
    solver = m.solver
    ties = tie_break(problem, m)
    solver.Add(objective(problem, m, unit_cost_scale) - ties <= cost + 1e-9 * max(1.0, abs(cost)))
    solver.Minimize(ties)
    solver.SetTimeLimit(max(1, int(left_s * 1000)))
    status = run_solver(solver)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    return chosen(problem, m)


def run_solver(solver: pywraplp.Solver, parameters: pywraplp.MPSolverParameters | None = None) -> int:
    """``solver.Solve``, with Ctrl-C honoured: SCIP catches SIGINT itself (stopping promptly, as
    wanted) and returns its best solution as if a limit had stopped it; it says so only on
    stdout. Its output is captured, and an interrupted solve raises KeyboardInterrupt."""
    with _captured_stdout() as output:
        status = solver.Solve(parameters) if parameters is not None else solver.Solve()
    if "pressed CTRL-C" in output():
        raise KeyboardInterrupt
    return status


@contextmanager
def _captured_stdout() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 1 (where SCIP writes) to a temporary file for the block."""
    sys.stdout.flush()
    captured: list[str] = []
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield lambda: "".join(captured)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _extract(problem: PlacementProblem, m: _Model, status: int, wall_s: float) -> Solution:
    choices = chosen(problem, m)
    tie_break = tie_break_usd_per_h(problem, choices)
    objective = m.solver.Objective().Value() - tie_break
    bound = m.solver.Objective().BestBound() - tie_break
    # SCIP reports OPTIMAL once within the requested gap, so the gap is always computed.
    gap = abs(objective - bound) / max(abs(objective), 1e-12)
    return extract(problem, m, choices, SolveAccount(objective, status_name(status), gap, wall_s))


def status_name(status: int) -> str:
    """'optimal' (proved, within the requested gap) or 'feasible' (stopped at a limit)."""
    return "optimal" if status == pywraplp.Solver.OPTIMAL else "feasible"


@dataclass(frozen=True)
class SolveAccount:
    """What a solve says of one problem's solution: its cost ($/h), status, gap, wall time."""

    objective: float
    status: str
    gap: float
    wall_s: float


def chosen(problem: PlacementProblem, m: _Model) -> list[Choice]:
    """The picked options with their replicas; a shared stage's pools largest capacity first."""
    choices = []
    for stage in problem.stages:
        picked = [
            Choice(stage.name, option, round(m.replicas[stage.name, ci].solution_value()))
            for ci, option in enumerate(stage.options)
            if m.pick[stage.name, ci].solution_value() > 0.5
        ]
        # A shared stage's pools, largest capacity first (its first pool names the stage).
        choices += sorted(picked, key=lambda c: -c.replicas * min(c.option.capacity_per_replica, 1e300))
    return choices


def extract(
    problem: PlacementProblem, m: _Model, choices: list[Choice], account: SolveAccount,
    value: Callable[[pywraplp.Variable], float] = lambda v: v.solution_value(),
) -> Solution:  # fmt: skip
    """The Solution of a solved model: ``choices`` (see ``chosen``), its nodes and path latencies;
    ``value`` reads a variable's solved value (default: the solver's last solve)."""
    slowest: dict[str, float] = {}
    for c in choices:
        slowest[c.stage] = max(slowest.get(c.stage, 0.0), c.option.latency_s)
    paths = {}
    for path in problem.paths:
        latency = path.fixed_s + sum(v * slowest[name] for name, v in path.stages if name in slowest)
        paths[path.name] = latency + sum(
            dict(path.stages)[t.target] * t.latency_s * value(w)
            for t, w in zip(problem.transfers, m.transfer, strict=True)
            if t.source in dict(path.stages) and t.target in dict(path.stages)
        )
    return Solution(
        choices=tuple(choices),
        extra_nodes={name: round(value(v)) for name, v in m.extra.items()},
        objective=account.objective,
        status=account.status,
        gap=account.gap,
        solver=SOLVER_NAME,
        wall_s=account.wall_s,
        path_latency_s=paths,
    )
