"""The procurement part of a plan's report: what to buy, against which alternatives, each
workload against its own SLA, and how robust the answer is. Plain pandas (no matplotlib):
the CLI prints the same sentences.

Frames (all optional; a report without ``bom`` is a comparison report):

``bom`` -- one row per node SKU: node, accelerator, owned, owned_used, owned_idle, buy, rent,
nodes, capex_usd (purchase price of what is bought), <component>_usd_per_h, usd_per_h,
usd_per_month.

``workloads`` -- one row per workload and objective: workload, objective ('ttft', 'tbt',
'e2e'), percentile, limit_s, value_at_percentile_s, attained, met (None: not simulated),
dropped_calls, rate_per_s, cost_share_usd_per_h, usd_per_million_tokens.

``robustness`` -- one row per re-solved case: dimension, kind ('base', 'case', 'flip'),
factor, case, feasible, placement_changed, new_spend_usd_per_h, total_usd_per_h, nodes, note.

``fleets`` rows with ``role`` 'baseline' carry new_spend_usd_per_h, savings_usd_per_h,
savings_share, nodes and description.
"""

from __future__ import annotations

import math

import pandas as pd

from hetsim.report import format as fmt

BOM_REQUIRED = ("node", "owned", "owned_used", "owned_idle", "buy", "rent", "capex_usd", "usd_per_h", "usd_per_month")
WORKLOAD_REQUIRED = ("workload", "objective", "percentile", "limit_s", "value_at_percentile_s", "attained", "met")
ROBUSTNESS_REQUIRED = ("dimension", "kind", "factor", "case", "feasible", "placement_changed", "new_spend_usd_per_h",
                       "total_usd_per_h", "nodes")  # fmt: skip


def _counted(rows: pd.DataFrame, column: str) -> str:
    items = [f"{int(r[column])} x {r['node']}" for _, r in rows.iterrows() if r[column] > 0]
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def buyer_sentence(bom: pd.DataFrame, sla_met: bool | None, status: str) -> str:
    """The sentence a buyer reads first, e.g. 'Buy 1 x gaudi3-8, keep the 1 x hgx-h100-8:
    $165,000 capex, $13,415/month, meets every SLA in simulation.'"""
    parts = []
    if bom["buy"].sum():
        parts.append("Buy " + _counted(bom, "buy"))
    if bom["rent"].sum():
        parts.append(("rent " if parts else "Rent ") + _counted(bom, "rent"))
    if bom["owned_used"].sum():
        parts.append(("keep the " if parts else "Keep the ") + _counted(bom, "owned_used"))
    if not parts:
        parts.append("Nothing to buy or keep")
    verdict = {True: "meets every SLA in simulation", False: "MISSES its SLA in simulation",
               None: "SLA not checked in simulation"}[sla_met]  # fmt: skip
    if status != "optimal":
        verdict += f" (solver status: {status}, not proven optimal)"
    money = f"${bom['capex_usd'].sum():,.0f} capex, ${bom['usd_per_month'].sum():,.0f}/month"
    idle = _counted(bom, "owned_idle")
    return ", ".join(parts) + f": {money}, {verdict}." + (f" Owned and idle: {idle}." if idle else "")


def savings_sentences(fleets: pd.DataFrame) -> list[str]:
    """One sentence per baseline: what the plan saves on new spend (or why it has no plan)."""
    if "role" not in fleets.columns:
        return []
    plan = fleets[fleets["role"] == "plan"].iloc[0]
    sentences = []
    for _, row in fleets[fleets["role"] == "baseline"].iterrows():
        if row["status"] == "infeasible":
            sentences.append(f"Baseline **{row['fleet']}** ({row.get('description', '')}): no feasible plan.")
            continue
        share = row["savings_share"]
        verb = "saves" if share >= 0 else "costs"
        verdict = "meets" if row["sla_met"] else "misses"
        sentences.append(
            f"Against **{row['fleet']}** ({row['nodes']}, {fmt.usd_per_h(row['new_spend_usd_per_h'])} new spend, "
            f"{verdict} its SLA) the plan {verb} **{fmt.usd_per_h(abs(row['savings_usd_per_h']))} "
            f"({fmt.percent(abs(share), 0)})**; fleet TCO {fmt.usd_per_h(plan['total_usd_per_h'])} vs "
            f"{fmt.usd_per_h(row['total_usd_per_h'])}."
        )
    return sentences


def workload_sentences(workloads: pd.DataFrame) -> list[str]:
    """One sentence per workload: each objective at its own percentile, the measured value, the verdict."""
    sentences = []
    for name, rows in workloads.groupby("workload", sort=False):
        parts = []
        for _, r in rows.iterrows():
            verdict = "not simulated" if r["met"] is None or _missing(r["met"]) else ("met" if r["met"] else "MISSED")
            parts.append(f"{r['objective'].upper()} p{r['percentile']:g} {fmt.seconds(r['value_at_percentile_s'])} "
                         f"<= {fmt.seconds(r['limit_s'])} {verdict}")  # fmt: skip
        dropped = rows["dropped_calls"].iloc[0] if "dropped_calls" in rows else 0
        tail = f"; {int(dropped)} calls dropped" if not _missing(dropped) and dropped else ""
        sentences.append(f"**{name}**: " + ", ".join(parts) + tail + ".")
    return sentences


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def flip_sentences(robustness: pd.DataFrame) -> list[str]:
    """Per input moved: where the purchase flips (and to what), or the range over which it holds."""
    sentences = []
    for dimension, rows in robustness[robustness["kind"] != "base"].groupby("dimension", sort=False):
        flips = rows[rows["kind"] == "flip"]
        if dimension == "step times":
            changed = rows[rows["placement_changed"]]
            sentences.append(f"{dimension}: " + ("; ".join(
                f"{r['case']} changes the purchase ({r['nodes'] or 'no feasible fleet'})" for _, r in changed.iterrows())
                or "the purchase holds at the p10 and p90 of the model's measured error"))  # fmt: skip
            continue
        if flips.empty:
            sentences.append(f"{dimension}: the purchase holds from x{rows['factor'].min():.2f} to x{rows['factor'].max():.2f}")
            continue
        sentences.append(f"{dimension}: " + "; ".join(
            f"flips at x{r['factor']:.2f} (to {r['nodes'] or 'no feasible fleet'})" for _, r in flips.iterrows()))  # fmt: skip
    return sentences


def bom_table(bom: pd.DataFrame) -> pd.DataFrame:
    """The bill of materials for display: nodes kept or bought, with money in plain units."""
    rows = bom[(bom["nodes"] > 0) | (bom["owned"] > 0)]
    return pd.DataFrame({
        "Node": rows["node"], "Accelerators": rows.get("accelerator", ""),
        "Owned, used": rows["owned_used"].map(fmt.count), "Owned, idle": rows["owned_idle"].map(fmt.count),
        "Buy": rows["buy"].map(fmt.count), "Rent": rows["rent"].map(fmt.count),
        "Capex": rows["capex_usd"].map(fmt.usd), "$/h": rows["usd_per_h"].map(fmt.usd_per_h),
        "$/month": rows["usd_per_month"].map(fmt.usd),
        "kW provisioned": rows.get("provisioned_kw", pd.Series(math.nan, index=rows.index)).map(_kw),
    }).reset_index(drop=True)  # fmt: skip


def _kw(value: float) -> str:
    return fmt.MISSING if _missing(value) else f"{value:,.1f} kW"


def energy_sentence(plan: pd.Series) -> str:
    """'Power: 21.3 kW provisioned (full load x PUE); 262 kWh/day at the simulated load, 1.9 J per
    output token.' The budget binds when planning without it would spend less."""
    text = f"Power: {_kw(plan.get('provisioned_kw', math.nan))} provisioned (full load x PUE)"
    site_power_kw, binds = plan.get("site_power_kw"), bool(plan.get("power_budget_binds", False))
    if site_power_kw is not None and not _missing(site_power_kw):
        costs = plan.get("power_budget_costs_usd_per_h", math.nan)
        text += f" of the site's {site_power_kw:,.1f} kW" + (
            f" (the budget binds: it costs {fmt.usd_per_h(costs)} of new spend)" if binds else " (the budget does not bind)")
    kwh, joules = plan.get("kwh_per_day", math.nan), plan.get("joules_per_output_token", math.nan)
    if not _missing(kwh):
        text += f"; {kwh:,.0f} kWh/day at the simulated load, {joules:,.2f} J per output token"
        per_session = plan.get("joules_per_session", math.nan)
        if not _missing(per_session):
            text += f", {plan.get('joules_per_llm_call', math.nan):,.0f} J per LLM call, {per_session:,.0f} J per session"
    return text + "."


def workload_table(workloads: pd.DataFrame) -> pd.DataFrame:
    verdict = workloads["met"].map(lambda m: "not simulated" if _missing(m) else ("met" if m else "MISSED"))
    return pd.DataFrame({
        "Workload": workloads["workload"], "Objective": workloads["objective"].str.upper(),
        "Percentile": workloads["percentile"].map(lambda p: f"p{p:g}"), "Limit": workloads["limit_s"].map(fmt.seconds),
        "Measured at percentile": workloads["value_at_percentile_s"].map(fmt.seconds),
        "Within limit": workloads["attained"].map(fmt.percent), "Verdict": verdict,
        "Dropped calls": workloads.get("dropped_calls", pd.Series(math.nan, index=workloads.index)).map(fmt.count),
        "Cost share": workloads.get("cost_share_usd_per_h", pd.Series(math.nan, index=workloads.index)).map(fmt.usd_per_h),
        "$ / 1M tokens": workloads.get("usd_per_million_tokens", pd.Series(math.nan, index=workloads.index)).map(fmt.usd),
    }).reset_index(drop=True)  # fmt: skip


def baselines_table(fleets: pd.DataFrame) -> pd.DataFrame:
    rows = fleets[fleets["role"].isin(["plan", "baseline"])] if "role" in fleets.columns else fleets.iloc[0:0]
    return pd.DataFrame({
        "Fleet": rows["fleet"], "What": rows.get("description", pd.Series("", index=rows.index)).fillna("the plan"),
        "Nodes": rows.get("nodes", ""), "New spend": rows["new_spend_usd_per_h"].map(fmt.usd_per_h),
        "Fleet TCO": rows["total_usd_per_h"].map(fmt.usd_per_h), "$ / 1M tokens": rows["usd_per_million_tokens"].map(fmt.usd),
        "SLA met": [("n/a" if s == "infeasible" else fmt.yes_no(m)) for s, m in zip(rows["status"], rows["sla_met"], strict=True)],
        "Plan saves": [fmt.MISSING if _missing(v) else f"{fmt.usd_per_h(v)} ({fmt.percent(s, 0)})"
                       for v, s in zip(rows.get("savings_usd_per_h", pd.Series(math.nan, index=rows.index)),
                                       rows.get("savings_share", pd.Series(math.nan, index=rows.index)), strict=True)],
        "Note": rows["note"],
    }).reset_index(drop=True)  # fmt: skip


def robustness_table(robustness: pd.DataFrame) -> pd.DataFrame:
    rows = robustness[robustness["kind"] != "base"]
    return pd.DataFrame({
        "Input moved": rows["dimension"], "Case": rows["case"],
        "Kind": rows["kind"].map({"case": "scanned", "flip": "flip point (bisected)"}),
        "Purchase changes": rows["placement_changed"].map(fmt.yes_no),
        "New spend": rows["new_spend_usd_per_h"].map(fmt.usd_per_h), "Fleet TCO": rows["total_usd_per_h"].map(fmt.usd_per_h),
        "Nodes": [n if f else "no feasible fleet" for n, f in zip(rows["nodes"], rows["feasible"], strict=True)],
    }).reset_index(drop=True)  # fmt: skip
