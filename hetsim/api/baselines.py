"""The fleets a buyer would otherwise choose, planned for the same demand: what the chosen
(mixed) plan saves against each.

Baselines: **owned only** (the inventory, nothing bought) and, for every accelerator node SKU
the fleet may buy, **all <SKU>** (that SKU alone, within its purchase limit, plus any of it
already owned). Each is planned and verified exactly as the plan itself (same demand, SLA,
options, performance model and TCO preset), so the savings are the paper's central claim
measured on this user's own demand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hetsim.errors import InfeasiblePlanError
from hetsim.specs.fleet import FleetSpec

Progress = Callable[[str], None]


def baseline_fleets(fleet: FleetSpec, hardware: Any) -> list[tuple[FleetSpec, str]]:
    """(fleet, description) of each baseline, without duplicates of the fleet itself."""
    out: list[tuple[FleetSpec, str]] = []
    if fleet.inventory and fleet.catalog:
        out.append((fleet.model_copy(update={"name": "owned-only", "catalog": ()}),
                    "the owned nodes only, nothing bought"))  # fmt: skip
    for entry in fleet.catalog:
        if hardware.node(entry.node).accelerators is None:
            continue  # a CPU server alone is not a fleet anyone would serve LLMs on
        owned = tuple(o for o in fleet.inventory if o.node == entry.node)
        if len(fleet.catalog) == 1 and owned == fleet.inventory:
            continue  # the fleet itself
        limit = "no purchase limit" if entry.max_count is None else f"at most {entry.max_count} bought"
        out.append((fleet.model_copy(update={"name": f"all-{entry.node}", "inventory": owned, "catalog": (entry,)}),
                    f"only {entry.node} ({limit})"))  # fmt: skip
    return out


def plan_baselines(result: Any, progress: Progress | None = None) -> list[dict[str, Any]]:
    """``fleets`` rows of every baseline (role 'baseline'), each with the chosen plan's savings
    against it, on new spend (the $/h of nodes bought or rented: owned nodes are paid for
    whichever way is chosen): $/h and share of the baseline's (positive: the plan is cheaper);
    and the difference in whole-fleet TCO."""
    from hetsim.api.plan import fleet_row, new_spend_usd_per_h, plan_fleet_spec

    say = progress or (lambda _: None)
    context = result.context
    plan_usd_per_h = new_spend_usd_per_h(result)
    rows = []
    for fleet, description in baseline_fleets(result.fleet, context["hardware"]):
        say(f"planning baseline {fleet.name}")
        verify = bool(result.verification)
        try:
            planned = plan_fleet_spec(fleet, verify=verify, calibration_of=context["calibration_of"],
                                      size_for=context["size_for"], workloads=result.workloads)  # fmt: skip
            row = fleet_row(planned, role="baseline")
        except InfeasiblePlanError as exc:
            row = infeasible_row(fleet.name, str(exc))
        row["description"] = description
        base = row["new_spend_usd_per_h"]
        row["savings_usd_per_h"] = base - plan_usd_per_h if not math.isnan(base) else math.nan
        row["savings_share"] = (base - plan_usd_per_h) / base if base and not math.isnan(base) else math.nan
        row["tco_difference_usd_per_h"] = row["total_usd_per_h"] - result.cost["total_usd_per_h"]
        rows.append(row)
    return rows


def infeasible_row(name: str, reason: str) -> dict[str, Any]:
    nan = math.nan
    return {
        "fleet": name, "role": "baseline", "status": "infeasible", "capex_usd_per_h": nan, "power_usd_per_h": nan,
        "hosting_usd_per_h": nan, "networking_usd_per_h": nan, "rental_usd_per_h": nan, "total_usd_per_h": nan,
        "usd_per_million_tokens": nan, "usd_per_session": nan, "ttft_p99_s": nan, "tbt_p99_s": nan,
        "session_e2e_p99_s": nan, "sla_attainment": nan, "sla_met": False, "predicted_total_usd_per_h": nan,
        "note": reason, "nodes": "", "new_spend_usd_per_h": nan, "provisioned_kw": nan, "kwh_per_day": nan,
        "joules_per_output_token": nan,
    }  # fmt: skip
