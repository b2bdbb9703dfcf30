"""What a plan means to a buyer: the bill of materials, the sentence a buyer reads first, and
each workload's result against its own SLA.

Every figure is derived from the solved plan (node counts, pools), the hardware profiles
(prices, power) and the verification simulation; nothing here re-solves.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pandas as pd

from hetsim.cost.tco import HOURS_PER_YEAR, CostBasis, node_hourly_cost, node_power_w, node_purchase_usd, preset
from hetsim.plan.build import stage_key
from hetsim.report.procurement import buyer_sentence

__all__ = ["bill_of_materials", "buyer_sentence", "energy", "workload_results"]

HOURS_PER_MONTH = HOURS_PER_YEAR / 12.0
BOM_COLUMNS = (
    "node", "accelerator", "owned", "owned_used", "owned_idle", "buy", "rent", "nodes", "capex_usd",
    "capex_usd_per_h", "power_usd_per_h", "hosting_usd_per_h", "networking_usd_per_h", "rental_usd_per_h",
    "usd_per_h", "usd_per_month", "provisioned_kw",
)  # fmt: skip


def _devices_used(result: Any) -> dict[str, dict[str, int]]:
    """Devices each node type lends to the plan's pools: node -> device -> count."""
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pool in result.plan.pools:
        if pool.node:
            used[pool.node][pool.device] += pool.replicas * pool.tp * pool.pp
    return used


def _nodes_in_use(devices_per_node: dict[str, int], used: dict[str, int]) -> int:
    """Nodes of a type the pools occupy: the most any of its device kinds needs."""
    return max((math.ceil(used.get(d, 0) / n) for d, n in devices_per_node.items() if n), default=0)


def bill_of_materials(result: Any) -> pd.DataFrame:
    """Per node SKU: owned and used, owned and idle, to buy, to rent; the capex of what is
    bought and the $/h and $/month of every node kept, by cost component (the fleet's TCO
    preset; rented nodes at their rental price)."""
    fleet, hardware = result.fleet, result.context["hardware"]
    basis = CostBasis(fleet.cost_basis) if fleet.cost_basis else None
    used = _devices_used(result)
    rows = []
    for node_type in result.problem.node_types:
        node = hardware.node(node_type.name)
        extra = result.solution.extra_nodes.get(node_type.name, 0)
        in_use = min(node_type.owned, _nodes_in_use(node_type.devices, used.get(node_type.name, {})))
        hourly = node_hourly_cost(node, hardware.accelerators, preset(fleet.tco), basis)
        rented = hourly.rental_usd_per_h > 0
        kept = node_type.owned + extra
        price = node_purchase_usd(node, hardware.accelerators)
        accelerator = node.accelerators or node.host_cpus
        rows.append({
            "node": node_type.name, "accelerator": f"{accelerator.count}x {accelerator.device}",
            "owned": node_type.owned, "owned_used": in_use, "owned_idle": node_type.owned - in_use,
            "buy": 0 if rented else extra, "rent": extra if rented else 0, "nodes": kept,
            "capex_usd": (price or math.nan) * extra if not rented and extra else 0.0,
            "capex_usd_per_h": hourly.capex_usd_per_h * kept, "power_usd_per_h": hourly.power_usd_per_h * kept,
            "hosting_usd_per_h": hourly.hosting_usd_per_h * kept,
            "networking_usd_per_h": hourly.networking_usd_per_h * kept,
            "rental_usd_per_h": hourly.rental_usd_per_h * kept, "usd_per_h": hourly.total_usd_per_h * kept,
            "usd_per_month": hourly.total_usd_per_h * kept * HOURS_PER_MONTH,
            "provisioned_kw": node_type.power_w * kept / 1e3,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(BOM_COLUMNS))


def workload_results(result: Any) -> pd.DataFrame:
    """One row per workload and objective: the limit, the percentile it is met at, the value the
    simulation measured there, the share within the limit, the verdict, dropped calls; and the
    workload's traffic-weighted share of the fleet's cost (pools' $/h split by each workload's
    share of the stage's demand) with its $ per 1M tokens."""
    verification = result.verification.get("workloads", {})
    cost = _workload_cost_usd_per_h(result)
    rows = []
    for workload in result.workloads:
        tokens_per_s = sum(
            workload.rate_per_s * d.visits_per_session * (d.input_tokens + d.output_tokens)
            for d in workload.nodes if d.node_type == "llm"
        )  # fmt: skip
        share = cost.get(workload.name, math.nan)
        common = {
            "workload": workload.name, "rate_per_s": workload.rate_per_s, "cost_share_usd_per_h": share,
            "usd_per_million_tokens": share / (tokens_per_s * 3600) * 1e6 if tokens_per_s else math.nan,
            "dropped_calls": verification.get(workload.name, {}).get("dropped_calls", math.nan),
        }  # fmt: skip
        simulated = verification.get(workload.name, {}).get("sla", {})
        for objective in ("ttft", "tbt", "e2e"):
            limit = getattr(workload, f"{objective}_s")
            if limit is None:
                continue
            item = simulated.get(objective) if isinstance(simulated.get(objective), dict) else {}
            rows.append({
                **common, "objective": objective, "percentile": getattr(workload, f"{objective}_percentile"),
                "limit_s": limit, "value_at_percentile_s": item.get("value_at_percentile_s", math.nan),
                "attained": item.get("attained", math.nan), "met": item.get("met"),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _workload_cost_usd_per_h(result: Any) -> dict[str, float]:
    """Each pool's $/h (its devices' share of their nodes' cost) split between workloads by
    their shares of the stage's demand; nodes not used by any pool are split by tokens."""
    from hetsim.api.plan import _device_share_usd_per_h  # the same split the placement table uses

    share = _device_share_usd_per_h(result.problem)
    demand: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for workload in result.workloads:
        for node in workload.nodes:
            if node.node_type != "external":
                demand[stage_key(node, workload.dtype)][workload.name] += workload.rate_per_s * node.visits_per_session
    costs: dict[str, float] = defaultdict(float)
    pooled = 0.0
    for choice, pool in zip(result.solution.choices, result.plan.pools, strict=True):
        usd = pool.replicas * pool.tp * pool.pp * share.get((pool.node, pool.device), 0.0)
        pooled += usd
        key = next((k for k in demand if choice.stage == k or choice.stage.startswith(k + ":")), None)
        total = sum(demand[key].values()) if key else 0.0
        for name, rate in (demand[key].items() if key and total else ()):
            costs[name] += usd * rate / total
    rest = result.cost["total_usd_per_h"] - pooled  # idle owned nodes and unused parts of nodes
    tokens = {w.name: sum(w.rate_per_s * d.visits_per_session * (d.input_tokens + d.output_tokens)
                          for d in w.nodes if d.node_type == "llm") for w in result.workloads}  # fmt: skip
    total_tokens = sum(tokens.values())
    for name in tokens:
        costs[name] += rest * (tokens[name] / total_tokens if total_tokens else 1.0 / len(tokens))
    return dict(costs)


def energy(result: Any) -> dict[str, Any]:
    """The fleet's power and energy: kW provisioned (every node kept at full load x PUE, what a
    site budget limits), whether the site budget binds (no further node of any purchasable type
    would fit), and at the verification simulation's utilisation the average draw, kWh per day
    and joules per output token, LLM call and session (each device idle to TDP linearly in its pool's busy share, node
    overheads always on, x PUE; devices' idle and TDP from their profiles)."""
    fleet, hardware = result.fleet, result.context["hardware"]
    tco = preset(fleet.tco)
    kept = {n.name: n.owned + result.solution.extra_nodes.get(n.name, 0) for n in result.problem.node_types}
    provisioned_w = sum(n.power_w * kept[n.name] for n in result.problem.node_types)
    budget_w = result.problem.site_power_w
    budget_cost = _budget_cost_usd_per_h(result) if budget_w is not None else 0.0
    utilization = result.verification.get("utilization", {})
    draw_w = 0.0
    for name, count in kept.items():
        idle, _ = node_power_w(hardware.node(name), hardware.accelerators)
        draw_w += idle * count
    for pool in result.plan.pools:
        device = hardware.accelerator(pool.device)
        tdp = device.tdp_w or 0.0
        idle = device.power.idle.si if device.power.idle else tdp
        busy = min(float(utilization.get(pool.name, math.nan)), 1.0)
        if not math.isnan(busy):
            draw_w += pool.replicas * pool.tp * pool.pp * busy * (tdp - idle)
    draw_w *= tco.pue
    simulated = bool(utilization)
    output_per_s = sum(w.rate_per_s * d.visits_per_session * d.output_tokens for w in result.workloads
                       for d in w.nodes if d.node_type == "llm")  # fmt: skip
    calls_per_s = sum(w.rate_per_s * d.visits_per_session for w in result.workloads for d in w.nodes if d.node_type == "llm")
    sessions_per_s = sum(w.rate_per_s for w in result.workloads)
    return {
        "provisioned_kw": provisioned_w / 1e3, "site_power_kw": None if budget_w is None else budget_w / 1e3,
        "power_budget_binds": budget_cost > 1e-6, "power_budget_costs_usd_per_h": budget_cost, "pue": tco.pue,
        "average_kw": draw_w / 1e3 if simulated else math.nan,
        "kwh_per_day": draw_w * 24 / 1e3 if simulated else math.nan,
        "joules_per_output_token": draw_w / output_per_s if simulated and output_per_s else math.nan,
        "joules_per_llm_call": draw_w / calls_per_s if simulated and calls_per_s else math.nan,
        "joules_per_session": draw_w / sessions_per_s if simulated and sessions_per_s else math.nan,
    }  # fmt: skip


def _budget_cost_usd_per_h(result: Any) -> float:
    """What the site power budget costs: the plan's new spend less the cheapest without the
    budget (0 when it does not bind). Re-solved, not simulated."""
    from dataclasses import replace

    from hetsim.errors import InfeasiblePlanError
    from hetsim.plan.solver import solve

    options = result.fleet.options
    try:
        free = solve(replace(result.problem, site_power_w=None), time_limit_s=options.time_limit_s, relative_gap=1e-6)
    except InfeasiblePlanError:
        return 0.0
    return max(result.solution.objective - free.objective, 0.0)
