"""``hetsim compare``: plan and simulate several candidate fleets for the same demand."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.plan import PlanResult, plan_fleet_spec, result_frames
from hetsim.api.report import render_report_files, report_meta
from hetsim.errors import InfeasiblePlanError, ScenarioError
from hetsim.io.fleets import load_comparison
from hetsim.io.outputs import Provenance, write_folder
from hetsim.io.plans import plan_text
from hetsim.io.reports import write_report
from hetsim.specs.fleet import ComparisonSpec


@dataclass
class Comparison:
    spec: ComparisonSpec
    results: dict[str, PlanResult]
    infeasible: dict[str, str]
    frames: dict[str, pd.DataFrame]


def _infeasible_row(name: str, reason: str) -> dict[str, Any]:
    nan = math.nan
    return {
        "fleet": name, "status": "infeasible", "capex_usd_per_h": nan, "power_usd_per_h": nan, "hosting_usd_per_h": nan,
        "networking_usd_per_h": nan, "rental_usd_per_h": nan, "total_usd_per_h": nan, "usd_per_million_tokens": nan,
        "usd_per_session": nan, "ttft_p99_s": nan, "tbt_p99_s": nan, "session_e2e_p99_s": nan, "sla_attainment": nan,
        "sla_met": False, "predicted_total_usd_per_h": nan, "note": reason,
    }  # fmt: skip


def compare(path: Path, verify: bool = True, progress: Callable[[str, int, int], None] | None = None) -> Comparison:
    """Plan each candidate fleet; infeasible fleets are kept with the reason."""
    spec = load_comparison(path)
    results, infeasible = {}, {}
    fleets, placements, sensitivities = [], [], []
    for index, candidate in enumerate(spec.fleets):
        if progress:
            progress(candidate.name, index, len(spec.fleets))
        try:
            result = plan_fleet_spec(spec.fleet_spec(candidate), verify=verify)
        except InfeasiblePlanError as exc:
            infeasible[candidate.name] = str(exc)
            fleets.append(pd.DataFrame([_infeasible_row(candidate.name, str(exc))]))
            continue
        results[candidate.name] = result
        frames = result_frames(result)
        fleets.append(frames["fleets"])
        placements.append(frames["placement"])
        sensitivities.append(frames["sensitivity"])
    if progress:
        progress("done", len(spec.fleets), len(spec.fleets))
    frames = {
        "fleets": pd.concat(fleets, ignore_index=True),
        "placement": pd.concat(placements, ignore_index=True) if placements else pd.DataFrame(),
        "sensitivity": pd.concat(sensitivities, ignore_index=True) if sensitivities else pd.DataFrame(),
    }
    return Comparison(spec, results, infeasible, frames)


def write_comparison(comparison: Comparison, folder: Path, inputs: Mapping[str, Any] | None = None) -> list[Path]:
    """Each fleet's plan (``plans/<fleet>.yaml``) and one report over all fleets, written whole
    into ``folder``; ``inputs`` (name -> file or option) is hashed into its manifest."""
    spec = comparison.spec
    meta = report_meta(
        f"hetsim compare: {spec.name}",
        spec.name,
        {"TCO preset": spec.tco, "headroom": f"{spec.options.headroom:.2f}", "profile set": spec.profile_set},
        [
            "each fleet: cheapest placement from the planner (performance model + TCO), then simulated on synthetic traffic",
            "infeasible fleets are listed with the constraint that binds",
        ],
        "; ".join(f"{d.workload} at {d.rate_per_s}/s" for d in spec.demand),
    )
    if spec.baseline:
        meta["baseline_fleet"] = spec.baseline
    files, tables = render_report_files(comparison.frames, meta)
    plans = {f"plans/{name}.yaml": plan_text(result.plan) for name, result in comparison.results.items()}
    return write_folder(folder, "--report", lambda staged: write_report(staged, plans | files, tables), ScenarioError,
                        Provenance("compare", inputs or {}))  # fmt: skip
