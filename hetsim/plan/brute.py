"""Exhaustive search over a small PlacementProblem: the reference the solver is tested against.

Enumerates every structure choice and option per stage (every set of up to
``max_pools_per_stage`` options, with every split of replicas between them); replica counts
follow from demand; extra nodes are enumerated up to what the demand could need.
Exponential: tests only.
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
        power = sum(node.power_w * (node.owned + count) for node, count in zip(nodes, extra, strict=True))
        if problem.site_power_w is not None and power > problem.site_power_w:
            continue  # over the site's power budget
        if all(supply.get(d, 0) >= n for d, n in need.items()):
            cost = sum(node.usd_per_h * count for node, count in zip(nodes, extra, strict=True))
            best = cost if best is None or cost < best else best
    return best


def _pool_sets(problem: PlacementProblem, stage) -> list[tuple[tuple[Option, int], ...]]:
    """Every way to serve ``stage``: one option at the replicas its demand needs, or a set of
    options (distinct, up to the limit) with each split of replicas that covers the demand
    (the last option of the set takes what the others leave, at least one replica)."""
    ways: list[tuple[tuple[Option, int], ...]] = []
    for size in range(1, problem.most_pools(stage) + 1):
        for subset in itertools.combinations(stage.options, size):
            ways += _splits(problem, stage.demand_per_s, subset)
    return ways


def _splits(problem: PlacementProblem, demand: float, subset: tuple[Option, ...]):
    if len(subset) == 1:
        return [((subset[0], _replicas(problem, demand, subset[0])),)]
    head, rest = subset[0], subset[1:]
    if math.isinf(head.capacity_per_replica):
        return [((head, 0), *tail) for tail in _splits(problem, 0.0, rest)]
    result = []
    for count in range(1, _replicas(problem, demand, head) + 1):
        left = max(0.0, demand - count * head.capacity_per_replica / problem.headroom)
        result += [((head, count), *tail) for tail in _splits(problem, left, rest)]
    return result


def _path_ok(problem: PlacementProblem, chosen: dict[str, Option], devices: dict[str, set[str]]) -> bool:
    for path in problem.paths:
        visits = dict(path.stages)
        latency = path.fixed_s + sum(v * chosen[name].latency_s for name, v in path.stages if name in chosen)
        for t in problem.transfers:
            if t.source in visits and t.target in visits and _transfer_active(t, devices):
                latency += visits[t.target] * t.latency_s
        if latency > path.limit_s + 1e-9:
            return False
    return True


def _transfer_active(transfer, devices: dict[str, set[str]]) -> bool:
    """Whenever both stages are used; or, when only if devices differ, when the source runs on
    a device the target does not."""
    if transfer.source not in devices or transfer.target not in devices:
        return False
    return not transfer.only_if_devices_differ or bool(devices[transfer.source] - devices[transfer.target])


def _placements(problem: PlacementProblem, unit_cost_scale: float):
    """Every placement that meets the paths: (devices it needs, its cost beyond nodes, $/h)."""
    for active in _active_stage_sets(problem):
        stages = [s for s in problem.stages if s.name in active]
        for ways in itertools.product(*(_pool_sets(problem, s) for s in stages)):
            # a path meets a stage's slowest pool; a transfer sees the stage's first pool's device
            chosen = {
                s.name: max((o for o, _ in way), key=lambda o: o.latency_s) for s, way in zip(stages, ways, strict=True)
            }
            devices = {s.name: {o.device for o, _ in way} for s, way in zip(stages, ways, strict=True)}
            if not _path_ok(problem, chosen, devices):
                continue
            need: dict[str, int] = {}
            cost = 0.0
            for stage, way in zip(stages, ways, strict=True):
                for option, count in way:
                    need[option.device] = need.get(option.device, 0) + count * option.devices_per_replica
                    cost += (
                        option.usd_per_unit * stage.demand_per_s * unit_cost_scale
                        + option.usd_per_h_per_replica * count
                    )
            cost += sum(
                t.usd_per_unit * problem.stage(t.source).demand_per_s * unit_cost_scale
                for t in problem.transfers
                if _transfer_active(t, devices)
            )
            yield need, cost


def brute_force(problem: PlacementProblem, unit_cost_scale: float = SECONDS_PER_HOUR) -> float | None:
    """The optimal objective, or None when infeasible."""
    best = None
    for need, cost in _placements(problem, unit_cost_scale):
        nodes = _node_cost(problem, need)
        if nodes is None:
            continue
        total = cost + nodes
        best = total if best is None or total < best else best
    return best


def brute_force_horizon(
    problems: list[PlacementProblem], hours: list[float], unit_cost_scale: float = SECONDS_PER_HOUR
) -> float | None:
    """The cheapest purchase schedule's $ (sum over periods of $/h x hours), or None when
    infeasible: every vector of extra nodes (up to what any placement could need, within the
    limits) in every period, extra nodes never decreasing from one period to the next, each
    period served by its cheapest placement that the nodes held can supply."""
    nodes = problems[0].node_types
    placements = [list(_placements(problem, unit_cost_scale)) for problem in problems]
    most = [max((math.ceil(need.get(d, 0) / n) for ways in placements for need, _ in ways
                 for d, n in node.devices.items() if n), default=0) for node in nodes]  # fmt: skip
    vectors = list(itertools.product(*(range((m if n.max_extra is None else min(m, n.max_extra)) + 1)
                                       for m, n in zip(most, nodes, strict=True))))  # fmt: skip
    # cheapest schedule up to the current period, ending with each vector of extra nodes
    best: dict[tuple[int, ...], float] = {(0,) * len(nodes): 0.0}
    for ways, period_hours in zip(placements, hours, strict=True):
        step: dict[tuple[int, ...], float] = {}
        for vector in vectors:
            supply: dict[str, int] = {}
            for node, count in zip(nodes, vector, strict=True):
                for device, per_node in node.devices.items():
                    supply[device] = supply.get(device, 0) + per_node * (node.owned + count)
            served = [cost for need, cost in ways if all(supply.get(d, 0) >= n for d, n in need.items())]
            before = [
                total for earlier, total in best.items() if all(e <= v for e, v in zip(earlier, vector, strict=True))
            ]
            if served and before:
                node_usd_per_h = sum(n.usd_per_h * c for n, c in zip(nodes, vector, strict=True))
                step[vector] = min(before) + period_hours * (node_usd_per_h + min(served))
        best = step
    return min(best.values(), default=None)
