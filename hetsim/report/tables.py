"""Summary tables of a report: DataFrame in, DataFrame out, no side effects.

The numeric tables keep machine units (they are what the CSV files hold);
:func:`for_display` turns any of them into strings with readable headers for HTML and Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd

from hetsim.report import format as fmt
from hetsim.report.frames import COST_COMPONENTS, SENSITIVITY_CASES


def pareto_front(frame: pd.DataFrame, cost_col: str, latency_col: str) -> pd.DataFrame:
    """Rows no other row beats on both cost and latency (lower is better for both).

    Rows with a missing cost or latency are left out. Identical points are all kept. The result
    keeps the input's index and columns and is sorted by latency, then cost.
    """
    candidates = frame.dropna(subset=[cost_col, latency_col]).sort_values([latency_col, cost_col], kind="stable")
    keep: list[object] = []
    best_cost, best_latency = math.inf, math.nan
    for index, row in candidates.iterrows():
        cost, latency = float(row[cost_col]), float(row[latency_col])
        # Sorted by latency: a row is on the front iff it is strictly cheaper than every faster
        # row, or it ties the last kept row exactly.
        if cost < best_cost or (cost == best_cost and latency == best_latency):
            keep.append(index)
            best_cost, best_latency = cost, latency
    return candidates.loc[keep]


def fleet_order(fleets: pd.DataFrame) -> list[str]:
    """Fleets in report order: SLA met (cheapest first), then SLA missed, then infeasible."""
    group = (fleets["status"] == "infeasible") * 2 + (~fleets["sla_met"].astype(bool)) * 1
    ordered = fleets.assign(_group=group).sort_values(["_group", "total_usd_per_h", "fleet"], na_position="last")
    return ordered["fleet"].tolist()


def ranked_fleets(fleets: pd.DataFrame) -> pd.DataFrame:
    """One row per fleet in report order with rank, unit costs, p99 latencies and SLA outcome."""
    order = fleet_order(fleets)
    table = fleets.set_index("fleet").loc[order].reset_index()
    table.insert(0, "rank", range(1, len(table) + 1))
    predicted = table["predicted_total_usd_per_h"]
    table["prediction_error"] = predicted / table["total_usd_per_h"] - 1.0
    columns = [
        "rank", "fleet", "status", "sla_met", "sla_attainment", "total_usd_per_h", "usd_per_million_tokens",
        "usd_per_session", "ttft_p99_s", "tbt_p99_s", "session_e2e_p99_s", "predicted_total_usd_per_h",
        "prediction_error", "note",
    ]  # fmt: skip
    return table[columns]


def tco_breakdown(fleets: pd.DataFrame) -> pd.DataFrame:
    """$/h of each cost component per fleet, in report order."""
    columns = ["fleet", *(f"{c}_usd_per_h" for c in COST_COMPONENTS), "total_usd_per_h"]
    return fleets.set_index("fleet").loc[fleet_order(fleets)].reset_index()[columns]


POOL_LABEL_COLUMNS = ["devices", "device", "tp", "pp", "serving"]
"""A placement's columns ``pool_label`` reads (``serving`` absent: from tp and pp)."""


def pool_label(devices: float, device: str, tp: float, pp: float, serving: object = None) -> str:
    """``8× h100-sxm TP2`` -- device count and type of a pool, with parallelism when above 1; a
    pool's ``serving`` text (``PoolSpec.serving_text``: expert parallelism, speculation) where
    the placement has one."""
    parts = [f"{fmt.count(devices)}× {device}"]
    if isinstance(serving, str) and serving:
        return " ".join([parts[0], *(token for token in serving.split(" ") if token != "tp1")])
    parts += [
        f"{name}{int(value)}" for name, value in (("TP", tp), ("PP", pp)) if not fmt.is_missing(value) and value > 1
    ]
    return " ".join(parts)


def stage_label(placement: pd.DataFrame) -> pd.Series:
    """The stage of each pool, prefixed by its workload when the report covers several."""
    if placement["workload"].nunique() > 1:
        return placement["workload"] + " / " + placement["stage"]
    return placement["stage"].copy()


def placement_pivot(placement: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Stages x fleets; each cell names the devices serving that stage (``''`` where none)."""
    frame = placement.assign(
        stage_label=stage_label(placement),
        label=[pool_label(*values) for values in placement.reindex(columns=POOL_LABEL_COLUMNS).itertuples(index=False)],
    )
    stages = list(dict.fromkeys(frame["stage_label"]))
    pivot = frame.groupby(["stage_label", "fleet"], sort=False)["label"].agg(" + ".join).unstack("fleet")
    fleets = [f for f in order if f in pivot.columns]
    pivot = pivot.reindex(index=stages, columns=fleets).fillna("")
    pivot.index.name, pivot.columns.name = "stage", None
    return pivot


def utilization_table(placement: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """One row per pool, grouped by fleet in report order."""
    rank = {fleet: i for i, fleet in enumerate(order)}
    columns = ["fleet", "pool", "stage", "device", "replicas", "devices", "utilization", "usd_per_h"]
    frame = placement.assign(_rank=placement["fleet"].map(rank))
    return frame.sort_values("_rank", kind="stable")[columns].reset_index(drop=True)


def case_order(cases: Sequence[str]) -> list[str]:
    """The standard sensitivity cases first, in their usual order, then any others as given."""
    present = list(dict.fromkeys(cases))
    return [c for c in SENSITIVITY_CASES if c in present] + [c for c in present if c not in SENSITIVITY_CASES]


def sensitivity_table(sensitivity: pd.DataFrame, order: Sequence[str], value_col: str) -> pd.DataFrame:
    """Fleets x cases of ``value_col``, as display strings; an infeasible case reads 'infeasible'."""
    cells = [
        fmt.usd(value) if feasible else "infeasible"
        for value, feasible in sensitivity[[value_col, "feasible"]].itertuples(index=False)
    ]
    pivot = sensitivity.assign(_cell=cells).pivot_table(index="fleet", columns="case", values="_cell", aggfunc="first")
    pivot = pivot.reindex(index=[f for f in order if f in pivot.index], columns=case_order(sensitivity["case"]))
    pivot = pivot.fillna(fmt.MISSING)
    pivot.columns.name = None
    return pivot.reset_index()


HEADERS = {
    "rank": "#",
    "fleet": "Fleet",
    "status": "Plan status",
    "sla_met": "SLA met",
    "sla_attainment": "SLA attainment",
    "total_usd_per_h": "Total $/h",
    "usd_per_million_tokens": "$ / 1M tokens",
    "usd_per_session": "$ / session",
    "ttft_p99_s": "TTFT p99",
    "tbt_p99_s": "TBT p99",
    "session_e2e_p99_s": "Session p99",
    "predicted_total_usd_per_h": "Predicted $/h",
    "prediction_error": "Predicted vs actual",
    "note": "Note",
    "capex_usd_per_h": "Capex $/h",
    "power_usd_per_h": "Power $/h",
    "hosting_usd_per_h": "Hosting $/h",
    "networking_usd_per_h": "Networking $/h",
    "rental_usd_per_h": "Rental $/h",
    "usd_per_h": "$/h",
    "utilization": "Utilization",
    "pool": "Pool",
    "stage": "Stage",
    "device": "Device",
    "replicas": "Replicas",
    "devices": "Devices",
}


def _formatter(column: str) -> Callable[[object], str] | None:
    if column.endswith("usd_per_h"):
        return fmt.usd_per_h
    if column in ("usd_per_million_tokens", "usd_per_session"):
        return fmt.usd
    if column.endswith("_s"):
        return fmt.seconds
    if column in ("sla_attainment", "utilization"):
        return fmt.percent
    if column == "prediction_error":
        return lambda value: fmt.MISSING if fmt.is_missing(value) else f"{100.0 * value:+.1f}%"
    if column in ("sla_met", "feasible"):
        return fmt.yes_no
    if column in ("replicas", "devices", "tp", "pp", "rank"):
        return fmt.count
    return None


def for_display(table: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a string (units in the text) and every header readable."""
    out = table.copy()
    for column in out.columns:
        formatter = _formatter(str(column))
        out[column] = out[column].map(formatter) if formatter else out[column].astype(str)
    return out.rename(columns=HEADERS).reset_index(drop=True)
