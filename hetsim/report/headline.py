"""The executive summary: a few sentences computed from the flat tables.

Sentences are plain text with ``**bold**`` spans (Markdown's syntax); the HTML builder turns the
spans into ``<strong>`` after escaping.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hetsim.report import format as fmt
from hetsim.report.frames import ReportData
from hetsim.report.tables import case_order, fleet_order, pareto_front


@dataclass(frozen=True)
class Headline:
    """The names the summary is about; ``None`` where there is no such fleet."""

    best: str | None
    baseline: str | None
    pareto: tuple[str, ...]
    missed: tuple[str, ...]
    unverified: tuple[str, ...]
    infeasible: tuple[str, ...]


def find_headline(data: ReportData) -> Headline:
    """Pick the cheapest fleet meeting the SLA, the baseline it is compared with, the Pareto
    front, and the fleets that miss the SLA, were not simulated, or have no feasible plan."""
    fleets = data.fleets
    order = fleet_order(fleets)
    feasible = fleets[fleets["status"] != "infeasible"]
    meeting = feasible[feasible["sla_met"]]
    best = order[0] if len(meeting) else None
    baseline = data.meta.baseline_fleet
    if baseline is None:
        others = feasible[(feasible["fleet"] != best)].dropna(subset=["total_usd_per_h"])
        baseline = str(others.loc[others["total_usd_per_h"].idxmax(), "fleet"]) if len(others) else None
    front = pareto_front(feasible, "usd_per_million_tokens", "session_e2e_p99_s")
    not_met = feasible[~feasible["sla_met"]]
    simulated = not_met["sla_attainment"].notna()

    def in_order(names: pd.Series) -> tuple[str, ...]:
        return tuple(f for f in order if f in set(names))

    return Headline(
        best=best,
        baseline=baseline if baseline != best else None,
        pareto=tuple(front["fleet"]) if front["fleet"].size and len(feasible) > 1 else (),
        missed=in_order(not_met.loc[simulated, "fleet"]),
        unverified=in_order(not_met.loc[~simulated, "fleet"]),
        infeasible=in_order(fleets.loc[fleets["status"] == "infeasible", "fleet"]),
    )


def _row(fleets: pd.DataFrame, name: str) -> pd.Series:
    return fleets.set_index("fleet").loc[name]


def _no_best_sentences(data: ReportData) -> list[str]:
    feasible = data.fleets[data.fleets["status"] != "infeasible"]
    if feasible.empty:
        return ["**No candidate fleet has a feasible plan.**"]
    simulated = feasible.dropna(subset=["sla_attainment"])
    if len(simulated):
        row = simulated.sort_values(["sla_attainment", "total_usd_per_h"], ascending=[False, True]).iloc[0]
        return [
            f"**No candidate fleet meets the SLA.** The closest is **{row['fleet']}** with "
            f"{fmt.percent(row['sla_attainment'])} attainment at {fmt.usd_per_h(row['total_usd_per_h'])}."
        ]
    row = feasible.sort_values("total_usd_per_h", na_position="last").iloc[0]
    return [
        f"**The SLA was not checked in simulation.** Cheapest feasible plan: **{row['fleet']}** at "
        f"**{fmt.usd_per_h(row['total_usd_per_h'])}**, **{fmt.usd(row['usd_per_million_tokens'])} per 1M tokens** "
        f"and {fmt.usd(row['usd_per_session'])} per session."
    ]


def _best_sentences(data: ReportData, headline: Headline) -> list[str]:
    fleets = data.fleets
    if headline.best is None:
        return _no_best_sentences(data)
    best = _row(fleets, headline.best)
    sentences = [
        f"Cheapest fleet meeting the SLA: **{headline.best}** at **{fmt.usd_per_h(best['total_usd_per_h'])}**, "
        f"**{fmt.usd(best['usd_per_million_tokens'])} per 1M tokens** and {fmt.usd(best['usd_per_session'])} per "
        f"session (p99 session {fmt.seconds(best['session_e2e_p99_s'])}, "
        f"SLA attainment {fmt.percent(best['sla_attainment'])})."
    ]
    if not fmt.is_missing(best["predicted_total_usd_per_h"]):
        sentences.append(
            f"The planner predicted {fmt.usd_per_h(best['predicted_total_usd_per_h'])} for it "
            f"({fmt.change(best['predicted_total_usd_per_h'], best['total_usd_per_h'])} against the accounted cost)."
        )
    if headline.baseline is not None:
        base = _row(fleets, headline.baseline)
        sentences.append(
            f"Against **{headline.baseline}** ({fmt.usd_per_h(base['total_usd_per_h'])}, "
            f"{fmt.usd(base['usd_per_million_tokens'])} per 1M tokens) that is "
            f"{fmt.relative(best['total_usd_per_h'], base['total_usd_per_h'])} per hour and "
            f"{fmt.relative(best['usd_per_million_tokens'], base['usd_per_million_tokens'])} per token."
        )
    return sentences


def _sensitivity_sentence(data: ReportData, fleet: str) -> list[str]:
    rows = data.sensitivity[data.sensitivity["fleet"] == fleet].drop_duplicates("case").set_index("case")
    parts = []
    for case in case_order(rows.index):
        if case == "base":
            continue
        row = rows.loc[case]
        if row["feasible"]:
            parts.append(f"{case}: {fmt.usd(row['usd_per_million_tokens'])} per 1M tokens")
        else:
            note = row.get("note")  # optional column: why the case has no plan
            note = note.strip() if isinstance(note, str) else ""
            parts.append(f"{case}: infeasible" + (f" ({note})" if note else ""))
    if not parts:
        return []
    return [f"Sensitivity of **{fleet}**: " + "; ".join(parts) + "."]


def _miss_sentences(data: ReportData, headline: Headline) -> list[str]:
    fleets = data.fleets.set_index("fleet")
    sentences = []
    for name in headline.missed:
        row = fleets.loc[name]
        why = f": {row['note']}" if row["note"] else ""
        sentences.append(f"**{name}** misses the SLA (attainment {fmt.percent(row['sla_attainment'])}){why}.")
    feasible = len(data.fleets) - len(headline.infeasible)
    # When no feasible fleet was simulated, the first sentence already says so.
    for name in headline.unverified if len(headline.unverified) < feasible else ():
        sentences.append(f"**{name}**: SLA not checked in simulation (no attainment figure).")
    for name in headline.infeasible:
        note = fleets.loc[name, "note"]
        sentences.append(f"**{name}** has no feasible plan" + (f": {note}." if note else "."))
    return sentences


def summary_sentences(data: ReportData, headline: Headline | None = None) -> list[str]:
    """The executive summary, one sentence (or short paragraph) per item."""
    headline = headline or find_headline(data)
    sentences = _best_sentences(data, headline)
    if headline.pareto:
        sentences.append("Pareto front of cost per token vs p99 session latency: " + ", ".join(headline.pareto) + ".")
    feasible = [f for f in fleet_order(data.fleets) if f not in headline.infeasible]
    subject = headline.best or (feasible[0] if feasible else None)
    if subject is not None:
        sentences += _sensitivity_sentence(data, subject)
    return sentences + _miss_sentences(data, headline)
