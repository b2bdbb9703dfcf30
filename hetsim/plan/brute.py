"""Exhaustive search over a small PlacementProblem: the reference the solver is tested against.

Enumerates every structure choice and option per stage; replica counts follow from demand;
extra nodes are enumerated up to what the demand could need. Exponential: tests only.
"""

from __future__ import annotations

import itertools
import math

from hetsim.plan.problem import Option, PlacementProblem

SECONDS_PER_HOUR = 3600.0


def _active_stage_sets(problem: PlacementProblem) -> list[set[str]]:
    free = {s.name for s in problem.stages} - problem.grouped_stages
    sets = [free]
    for group in problem.groups:
        sets = [current | set(structure) for current in sets for structure in group.structures]
    return sets


def _replicas(problem: PlacementProblem, demand: float, option: Option) -> int:
    if not problem.sizing or math.isinf(option.capacity_per_replica):
        return 0
    return max(1, math.ceil(problem.headroom * demand / option.capacity_per_replica - 1e-9))


def _node_cost(problem: PlacementProblem, need: dict[str, int]) -> float | None:
    """Cheapest extra nodes covering ``need`` devices, or None if the limits cannot."""
    nodes = problem.node_types
    bounds = []
    for node in nodes:
        most = max((math.ceil(need.get(d, 0) / n) for d, n in node.devices.items() if n), default=0)
        bounds.append(range(0, (most if node.max_extra is None else min(most, node.max_extra)) + 1))
    best = None
    for extra in itertools.product(*bounds):
        supply: dict[str, int] = {}
        for node, count in zip(nodes, extra, strict=True):
            for device, per_node in node.devices.items():
                supply[device] = supply.get(device, 0) + per_node * (node.owned + count)
        if all(supply.get(d, 0) >= n for d, n in need.items()):
            cost = sum(node.usd_per_h * count for node, count in zip(nodes, extra, strict=True))
            best = cost if best is None or cost < best else best
    return best


def _path_ok(problem: PlacementProblem, chosen: dict[str, Option]) -> bool:
    for path in problem.paths:
        visits = dict(path.stages)
        latency = path.fixed_s + sum(v * chosen[name].latency_s for name, v in path.stages if name in chosen)
        for t in problem.transfers:
            if t.source in visits and t.target in visits and _transfer_active(t, chosen):
                latency += visits[t.target] * t.latency_s
        if latency > path.limit_s + 1e-9:
            return False
    return True


def _transfer_active(transfer, chosen: dict[str, Option]) -> bool:
    if transfer.source not in chosen or transfer.target not in chosen:
        return False
    return not transfer.only_if_devices_differ or chosen[transfer.source].device != chosen[transfer.target].device


def brute_force(problem: PlacementProblem, unit_cost_scale: float = SECONDS_PER_HOUR) -> float | None:
    """The optimal objective, or None when infeasible."""
    best = None
    for active in _active_stage_sets(problem):
        stages = [s for s in problem.stages if s.name in active]
        for options in itertools.product(*(s.options for s in stages)):
            chosen = {s.name: o for s, o in zip(stages, options, strict=True)}
            if not _path_ok(problem, chosen):
                continue
            need: dict[str, int] = {}
            cost = 0.0
            for stage, option in zip(stages, options, strict=True):
                count = _replicas(problem, stage.demand_per_s, option)
                need[option.device] = need.get(option.device, 0) + count * option.devices_per_replica
                cost += (
                    option.usd_per_unit * stage.demand_per_s * unit_cost_scale + option.usd_per_h_per_replica * count
                )
            cost += sum(
                t.usd_per_unit * problem.stage(t.source).demand_per_s * unit_cost_scale
                for t in problem.transfers
                if _transfer_active(t, chosen)
            )
            nodes = _node_cost(problem, need)
            if nodes is None:
                continue
            total = cost + nodes
            best = total if best is None or total < best else best
    return best
