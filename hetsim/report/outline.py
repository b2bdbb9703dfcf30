"""What a report says, in order, independent of its format: the HTML and Markdown builders both
render this outline, so the two always carry the same content."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hetsim.report import procurement, tables
from hetsim.report.frames import ReportData
from hetsim.report.headline import summary_sentences


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, a few sentences, figures (by name) and display tables."""

    anchor: str
    title: str
    text: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    tables: tuple[tuple[str, pd.DataFrame], ...] = ()
    as_list: bool = False


def _assumption_table(data: ReportData) -> tuple[tuple[str, pd.DataFrame], ...]:
    meta = data.meta
    rows = [("Scenario", meta.scenario), ("SLA", meta.sla), ("SLA attainment target", f"{100 * meta.sla_target:g}%")]
    rows += [(str(k), str(v)) for k, v in meta.assumptions.items()]
    rows = [(k, v) for k, v in rows if v]
    return (("Assumptions", pd.DataFrame(rows, columns=["Assumption", "Value"])),)


def _sensitivity_tables(data: ReportData, order: list[str]) -> tuple[tuple[str, pd.DataFrame], ...]:
    by_case = [("$ per hour by case", "total_usd_per_h"), ("$ per 1M tokens by case", "usd_per_million_tokens")]
    return tuple(
        (caption, tables.sensitivity_table(data.sensitivity, order, column).rename(columns=tables.HEADERS))
        for caption, column in by_case
    )


def _placement_tables(data: ReportData, order: list[str]) -> tuple[tuple[str, pd.DataFrame], ...]:
    pivot = tables.placement_pivot(data.placement, order).reset_index().rename(columns=tables.HEADERS)
    return (("Placement", pivot),)


def _left_out(section: Section, figures: set[str]) -> tuple[str, ...]:
    if any(name not in figures for name in section.figures):
        return ("The chart is left out: there is no simulated data for it.",)
    return ()


def _procurement_sections(data: ReportData) -> list[Section]:
    """A plan's first screen: what to buy and what it costs, the savings against each
    homogeneous baseline and every workload's verdict; then the tables behind them."""
    extras, fleets = data.extras, data.fleets
    plan = fleets[fleets["role"] == "plan"].iloc[0] if "role" in fleets.columns else fleets.iloc[0]
    sentences = [f"**{procurement.buyer_sentence(extras['bom'], bool(plan['sla_met']) if not pd.isna(plan['sla_attainment']) else None, plan['status'])}**"]
    if "provisioned_kw" in fleets.columns:
        sentences.append(procurement.energy_sentence(plan))
    sentences += procurement.savings_sentences(fleets)
    if "workloads" in extras and len(extras["workloads"]):
        sentences += procurement.workload_sentences(extras["workloads"])
    if "robustness" in extras and len(extras["robustness"]):
        sentences.append("Robustness: " + "; ".join(procurement.flip_sentences(extras["robustness"])) + ".")
    sections = [
        Section("summary", "Executive summary", tuple(sentences), as_list=True),
        Section("buy", "What to buy", ("Per node SKU: owned nodes the plan uses or leaves idle, nodes to buy or rent, "
                                       "the capex of what is bought and the $/h and $/month of every node kept "
                                       "(TCO preset in the assumptions).",),
                tables=(("Bill of materials", procurement.bom_table(extras["bom"])),)),
    ]  # fmt: skip
    if "workloads" in extras and len(extras["workloads"]):
        sections.append(Section("workloads", "Every workload against its own SLA", (
            "Each objective at the percentile its SLA names, measured in the verification simulation; the "
            "workload's cost share splits each pool's $/h by the workloads' shares of its traffic.",),
            tables=(("Workloads", procurement.workload_table(extras["workloads"])),)))  # fmt: skip
    if "role" in fleets.columns and (fleets["role"] == "baseline").any():
        sections.append(Section("baselines", "Against the homogeneous fleets", (
            "The same demand planned and simulated on the owned nodes alone and on each purchasable accelerator "
            "alone (within its purchase limit). Savings are on new spend: owned nodes are paid for either way.",),
            ("tco_breakdown",), (("Baselines", procurement.baselines_table(fleets)),)))  # fmt: skip
    return sections


def report_sections(data: ReportData, figures: set[str]) -> list[Section]:
    """The report's sections in reading order; ``figures`` names the figures that exist."""
    if "bom" in data.extras:
        return _finish(_procurement_sections(data) + _plan_detail_sections(data), figures, data)
    order = tables.fleet_order(data.fleets)
    display = tables.for_display
    sla = f" SLA: {data.meta.sla}." if data.meta.sla else ""
    sections = [
        Section("summary", "Executive summary", tuple(summary_sentences(data)), as_list=True),
        Section("fleets", "Candidate fleets, ranked",
                ("Fleets meeting the SLA come first, cheapest first; then fleets missing it; then fleets without a "
                 "feasible plan. 'Predicted vs actual' compares the planner's $/h with the accounted cost.",),
                tables=(("Ranked fleets", display(tables.ranked_fleets(data.fleets))),)),
        Section("cost", "Total cost of ownership",
                ("Hourly cost by component: amortised capex, power, hosting, networking and rental.",),
                ("tco_breakdown", "unit_costs"), (("TCO per fleet", display(tables.tco_breakdown(data.fleets))),)),
        Section("pareto", "Cost vs latency",
                ("Each point is a fleet with a feasible plan. Fleets on the Pareto front (bold, joined by the "
                 "dashed staircase) are not beaten on both cost per token and p99 session latency by any other.",),
                ("cost_vs_latency",)),
        Section("sla", "SLA attainment", (f"Lowest attained share over the SLA objectives.{sla}",), ("sla_attainment",)),
        Section("placement", "Placement", ("Devices serving each stage of each workload, per fleet.",),
                ("placement",), _placement_tables(data, order)),
        Section("utilization", "Utilization", ("Simulated busy share of each pool.",), ("utilization",),
                (("Pools", display(tables.utilization_table(data.placement, order))),)),
        Section("sensitivity", "Sensitivity", ("Prices ±30% and doubled demand, re-planned per case.",),
                ("sensitivity",), _sensitivity_tables(data, order)),
        Section("assumptions", "Assumptions", tables=_assumption_table(data)),
        Section("provenance", "Provenance", tuple(data.meta.provenance) or ("Not stated.",), as_list=True),
    ]  # fmt: skip
    return _finish(sections, figures, data)


def _plan_detail_sections(data: ReportData) -> list[Section]:
    order = tables.fleet_order(data.fleets)
    display = tables.for_display
    sections = [
        Section("placement", "Placement", ("Devices serving each stage of the plan; a stage served by pools on "
                                           "two devices lists both (the plan's weights split its traffic).",), ("placement",),
                _placement_tables(data, order)),
        Section("utilization", "Utilization", ("Simulated busy share of each pool.",), ("utilization",),
                (("Pools", display(tables.utilization_table(data.placement, order))),)),
        Section("pareto", "Cost vs latency (pooled over workloads)",
                ("A secondary view: p99 session latency pooled over all workloads against cost per token; each "
                 "workload's own verdict is in 'Every workload against its own SLA'.",), ("cost_vs_latency",)),
    ]  # fmt: skip
    if "robustness" in data.extras and len(data.extras["robustness"]):
        sections.append(Section("robustness", "Robustness: what would change the purchase", (
            "Each input moved alone and the plan re-solved (no simulation): each vendor's node prices, the energy "
            "price, the demand (compared by the SKUs bought), and step times at the p10/p50/p90 of the performance "
            "model's measured error. A flip point is bisected to 1% between the last value keeping the plan's "
            "purchase and the first changing it.",), ("robustness",),
            (("Cases", procurement.robustness_table(data.extras["robustness"])),)))  # fmt: skip
    sections += [
        Section("assumptions", "Assumptions", tables=_assumption_table(data)),
        Section("provenance", "Provenance", tuple(data.meta.provenance) or ("Not stated.",), as_list=True),
    ]
    return sections


def _finish(sections: list[Section], figures: set[str], data: ReportData) -> list[Section]:
    return [
        Section(
            s.anchor,
            s.title,
            s.text + _left_out(s, figures),
            tuple(f for f in s.figures if f in figures),
            s.tables,
            s.as_list,
        )
        for s in sections
        if (s.anchor not in ("placement", "utilization") or len(data.placement))
        and (s.anchor != "sensitivity" or len(data.sensitivity))
    ]
