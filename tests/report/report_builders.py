"""Synthetic planner output for report tests: flat tables in the documented schema.

Numbers are made up but plausible; ``sample_frames`` builds 3-8 fleets, one of them infeasible
(NaN costs and latencies), one missing the SLA, and one pool not simulated (NaN utilisation).
"""

from __future__ import annotations

import math

import pandas as pd

NAN = math.nan

# name, status, capex, power, hosting, networking, rental, $/1M tok, $/session, ttft, tbt, e2e, attain, met, predicted, note
FLEETS = [
    ("h100-prefill+l40s-decode", "optimal", 52.0, 9.1, 6.2, 5.2, 0.0, 1.84, 0.092, 0.61, 0.048, 41.0, 0.995, True, 70.1, ""),
    ("8x-h100-sxm", "feasible", 78.0, 12.5, 8.4, 7.8, 0.0, 2.88, 0.144, 0.42, 0.031, 33.0, 0.999, True, 105.0, ""),
    ("mi300x-owned", "feasible", 61.0, 11.0, 7.9, 6.1, 0.0, 2.29, 0.115, 0.55, 0.040, 37.5, 0.993, True, 88.0, ""),
    ("a100-rented", "feasible", 0.0, 0.0, 0.0, 0.0, 96.0, 2.66, 0.133, 0.95, 0.071, 52.0, 0.991, True, NAN, ""),
    ("l40s-only", "feasible", 30.0, 6.5, 4.9, 3.0, 0.0, 1.21, 0.061, 2.90, 0.120, 96.0, 0.912, False, 41.0,
     "TBT p99 120 ms exceeds the 100 ms objective at peak load"),
    ("b200-2node", "feasible", 120.0, 16.0, 10.0, 12.0, 0.0, 4.10, 0.205, 0.30, 0.022, 29.0, 0.9995, True, 160.0, ""),
    ("gaudi3-pod", "feasible", 44.0, 9.8, 7.0, 4.4, 0.0, 2.05, 0.103, 0.80, 0.060, 47.0, 0.994, True, 66.0, ""),
    ("l4-edge", "infeasible", NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, False, NAN,
     "llama-3-70b does not fit: 140 GB of weights > 4 x 24 GB"),
]  # fmt: skip

COLUMNS = [
    "fleet", "status", "capex_usd_per_h", "power_usd_per_h", "hosting_usd_per_h", "networking_usd_per_h",
    "rental_usd_per_h", "usd_per_million_tokens", "usd_per_session", "ttft_p99_s", "tbt_p99_s", "session_e2e_p99_s",
    "sla_attainment", "sla_met", "predicted_total_usd_per_h", "note",
]  # fmt: skip

STAGES = [
    ("coding-agent", "llm:llama-3-70b:prefill", 2),
    ("coding-agent", "llm:llama-3-70b:decode", 4),
    ("coding-agent", "tool", 0),
    ("voice-agent", "stt", 1),
]
DEVICES = {
    "h100-prefill+l40s-decode": ("h100-sxm", "l40s"),
    "8x-h100-sxm": ("h100-sxm", "h100-sxm"),
    "mi300x-owned": ("mi300x", "mi300x"),
    "a100-rented": ("a100-sxm", "a100-sxm"),
    "l40s-only": ("l40s", "l40s"),
    "b200-2node": ("b200", "b200"),
    "gaudi3-pod": ("gaudi3", "gaudi3"),
}


def fleets_frame(n_fleets: int = 8) -> pd.DataFrame:
    """The first ``n_fleets - 1`` fleets plus the infeasible one."""
    rows = [*FLEETS[: n_fleets - 1], FLEETS[-1]]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    components = frame[[c for c in COLUMNS if c.endswith("_usd_per_h") and c != "predicted_total_usd_per_h"]]
    frame.insert(7, "total_usd_per_h", components.sum(axis=1, min_count=1))
    return frame


def placement_frame(fleets: pd.DataFrame) -> pd.DataFrame:
    """Four pools per feasible fleet; the voice STT pool of the first fleet is not simulated."""
    rows = []
    for fleet in fleets.loc[fleets["status"] != "infeasible", "fleet"]:
        prefill_device, decode_device = DEVICES[fleet]
        for i, (workload, stage, tp) in enumerate(STAGES):
            device = {0: prefill_device, 1: decode_device}.get(i, "epyc-9654")
            replicas = 2 + i
            devices = replicas * max(tp, 1)
            not_simulated = stage == "stt" and fleet == fleets["fleet"].iloc[0]
            utilization = NAN if not_simulated else min(0.97, 0.3 + 0.15 * i + 0.02 * len(fleet))
            rows.append((fleet, workload, stage, f"{stage.split(':')[-1]}-{i}", device, f"{device}-node",
                         replicas, max(tp, 1), 1, devices, utilization, 2.1 * devices))  # fmt: skip
    columns = ["fleet", "workload", "stage", "pool", "device", "node", "replicas", "tp", "pp", "devices",
               "utilization", "usd_per_h"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def sensitivity_frame(fleets: pd.DataFrame) -> pd.DataFrame:
    """Four cases per fleet; the cheapest SLA-missing fleet becomes infeasible at doubled demand."""
    rows = []
    for fleet, status, total, per_token in fleets[
        ["fleet", "status", "total_usd_per_h", "usd_per_million_tokens"]
    ].itertuples(index=False):
        feasible = status != "infeasible"
        cases = {"base": (1.0, 1.0), "prices -30%": (0.7, 0.7), "prices +30%": (1.3, 1.3), "demand x2": (1.85, 0.93)}
        for case, (cost_factor, token_factor) in cases.items():
            ok = feasible and not (case == "demand x2" and fleet == "l40s-only")
            rows.append((fleet, case, total * cost_factor if ok else NAN, per_token * token_factor if ok else NAN, ok))
    return pd.DataFrame(rows, columns=["fleet", "case", "total_usd_per_h", "usd_per_million_tokens", "feasible"])


def sample_frames(n_fleets: int = 8) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(fleets, placement, sensitivity)`` with ``n_fleets`` fleets (3-8)."""
    fleets = fleets_frame(n_fleets)
    return fleets, placement_frame(fleets), sensitivity_frame(fleets)


SAMPLE_META = {
    "title": "Fleet plan: coding + voice agents",
    "scenario": "two-agents-peak",
    "date": "2025-06-01",
    "sla": "TTFT p99 <= 2 s, TBT p99 <= 100 ms, session p99 <= 90 s",
    "sla_target": 0.99,
    "e2e_objective_s": 90.0,
    "assumptions": {
        "TCO preset": "enterprise",
        "Energy price": "$0.09/kWh",
        "PUE": "1.3",
        "Amortisation": "5 years at 7%",
    },
    "provenance": [
        "Latencies and utilisation: simulated, 1 h of synthetic traffic, seed 7.",
        "Device prices: hardware_profiles/ (list prices, 2025).",
    ],
}
