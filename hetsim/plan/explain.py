"""Why a placement is infeasible, and the smallest change that fixes it."""

from __future__ import annotations

import math
from dataclasses import replace

from hetsim.errors import InfeasiblePlanError
from hetsim.plan.problem import PlacementProblem
from hetsim.plan.solver import solve


def explain(problem: PlacementProblem, unlimited: PlacementProblem | None = None) -> str:
    """One sentence: the binding constraint and the fix (inventory, latency, or SLA)."""
    if problem.site_power_w is not None:
        need = least_power_w(problem)
        if need is not None and need > problem.site_power_w:
            return (f"the site power budget binds: the least power any fleet meeting the demand is provisioned for is "
                    f"{need / 1e3:,.1f} kW (full load x PUE), the budget is {problem.site_power_w / 1e3:,.1f} kW: raise "
                    f"it by {(need - problem.site_power_w) / 1e3:,.1f} kW")  # fmt: skip
    # 1. More hardware would do: compare what an unlimited fleet uses with what we may have.
    relaxed = unlimited or replace(problem, node_types=tuple(replace(n, max_extra=None) for n in problem.node_types))
    try:
        solution = solve(relaxed, time_limit_s=20.0)
    except InfeasiblePlanError:
        return _latency_explanation(problem)
    short = []
    for node in problem.node_types:
        needed = node.owned + solution.extra_nodes.get(node.name, 0)
        allowed = node.owned + (node.max_extra if node.max_extra is not None else math.inf)
        if needed > allowed:
            # Name the stages on the node's main device (its accelerators, not its host CPUs).
            primary = max(node.devices, key=lambda d: node.devices[d])
            users = sorted({c.stage for c in solution.choices if c.option.device == primary})
            short.append(
                f"{', '.join(users)} need {needed} x {node.name}, the fleet allows {allowed:g}: add {needed - allowed:g}"
            )
    if short:
        return "; ".join(short)
    return "the inventory limits bind in combination; an unlimited fleet is feasible (see the relaxed plan)"


def least_power_w(problem: PlacementProblem) -> float | None:
    """The lowest provisioned power (owned + added nodes at full load x PUE) of any fleet that
    meets the demand, ignoring the site budget and prices; None when none does."""
    by_power = replace(problem, site_power_w=None,
                       node_types=tuple(replace(n, usd_per_h=n.power_w) for n in problem.node_types))  # fmt: skip
    try:
        solution = solve(by_power, time_limit_s=20.0, relative_gap=1e-6)
    except InfeasiblePlanError:
        return None
    return sum(n.power_w * (n.owned + solution.extra_nodes.get(n.name, 0)) for n in problem.node_types)


def _latency_explanation(problem: PlacementProblem) -> str:
    for path in problem.paths:
        best = path.fixed_s + sum(v * min(o.latency_s for o in problem.stage(n).options) for n, v in path.stages)
        if best > path.limit_s:
            return f"{path.name}: the fastest placement takes {best:.3g} s, over the {path.limit_s:g} s SLA: relax it to {best:.3g} s"
    return "no placement meets every constraint even with unlimited hardware"


def explain_missing_options(stage: str, fastest: dict[str, float], limits: dict[str, float | None]) -> str:
    """For a stage with no option: which limit no device meets, and the best achievable value."""
    parts = []
    for metric, best in fastest.items():
        limit = limits.get(metric)
        if limit is not None and best > limit:
            parts.append(
                f"no device meets {metric.upper()} {limit * 1e3:g} ms (fastest {best * 1e3:.3g} ms): relax {metric.upper()} to {best * 1e3:.3g} ms"
            )
    return f"{stage}: " + ("; ".join(parts) if parts else "no device in the fleet can serve it (memory or support)")
