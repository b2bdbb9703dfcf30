"""Write a plan and its procurement report."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim import __version__
from hetsim.io.plans import write_plan
from hetsim.io.reports import write_report
from hetsim.metrics.summary import Sla


def report_date() -> str:
    """Today, or SOURCE_DATE_EPOCH's day when set (reproducible builds of the same report)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch else datetime.datetime.now(datetime.UTC)
    return moment.date().isoformat()


def report_meta(
    title: str, scenario: str, assumptions: dict[str, str], provenance: list[str], sla: str = "",
    sla_target: float = 0.99,
) -> dict[str, Any]:
    """``sla_target``: the attainment share drawn as the target (the strictest percentile asked)."""
    return {
        "title": title, "scenario": scenario, "date": report_date(), "version": __version__, "sla": sla,
        "sla_target": sla_target, "assumptions": assumptions, "provenance": provenance,
    }  # fmt: skip


def write_report_folder(folder: Path, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> list[Path]:
    from hetsim.report.build import render_report  # matplotlib loads only when a report is written

    rendered = render_report(frames["fleets"], frames["placement"], frames["sensitivity"], meta)
    return write_report(folder, rendered.files(), rendered.tables)


def write_plan_outputs(
    result: Any, frames: dict[str, pd.DataFrame], out: Path | None, report: Path | None
) -> list[Path]:
    """``plan.yaml`` (default ``reports/<fleet>/plan.yaml``) and the report beside it."""
    plan_path = out or Path("reports") / result.fleet.name / "plan.yaml"
    write_plan(plan_path, result.plan)
    objectives = {w.name: Sla(w.ttft_s, w.tbt_s, w.e2e_s, w.ttft_percentile, w.tbt_percentile, w.e2e_percentile)
                  for w in result.workloads}  # fmt: skip
    slas = "; ".join(f"{name}: {sla.describe()}" for name, sla in objectives.items())
    points = [p for w in result.workloads for p, limit in
              ((w.ttft_percentile, w.ttft_s), (w.tbt_percentile, w.tbt_s), (w.e2e_percentile, w.e2e_s)) if limit]  # fmt: skip
    meta = report_meta(
        f"hetsim plan: fleet {result.fleet.name}",
        result.fleet.name,
        {
            "TCO preset": result.fleet.tco,
            "headroom": f"{result.context['headroom']:.2f}",
            "profile set": result.fleet.profile_set,
        },
        [
            "latency and throughput: kernel performance model per device: " + ", ".join(
                f"{d} {s}" for d, s in result.plan.provenance.get("performance_model", {}).items()
            ) + (f"; sized for step times at the {result.plan.provenance.get('sized_for')} of the model's measured error"
                 if result.plan.provenance.get("sized_for", "nominal") != "nominal" else ""),
            "SLA attainment and utilisation: discrete-event simulation of synthetic traffic on the plan",
            f"cost: TCO preset '{result.fleet.tco}' applied to node prices and power from hardware_profiles",
            f"solver: {result.solution.solver}, status {result.solution.status}, gap {result.solution.gap:.2%}",
        ],
        slas,
        max(points, default=99.0) / 100.0,
    )
    return [plan_path, *write_report_folder(report or plan_path.parent, frames, meta)]
