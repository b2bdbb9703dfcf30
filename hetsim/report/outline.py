"""What a report says, in order, independent of its format: the HTML and Markdown builders both
render this outline, so the two always carry the same content."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hetsim.report import tables
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


def report_sections(data: ReportData, figures: set[str]) -> list[Section]:
    """The report's sections in reading order; ``figures`` names the figures that exist."""
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
