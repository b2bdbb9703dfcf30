"""Write a plan and its procurement report, whole (:mod:`hetsim.io.outputs`)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim import __version__
from hetsim.errors import ScenarioError
from hetsim.io.outputs import Provenance, Target, write_outputs
from hetsim.io.plans import plan_text
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


def render_report_files(frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> tuple[dict[str, bytes | str], dict[str, pd.DataFrame]]:
    """The report's files (relative path -> content) and tables, rendered once, before anything is written."""
    from hetsim.report.build import render_report  # matplotlib loads only when a report is written

    extras = {name: frames[name] for name in ("bom", "workloads", "robustness") if name in frames}
    rendered = render_report(frames["fleets"], frames["placement"], frames["sensitivity"], meta, extras)
    return rendered.files(), rendered.tables


def write_plan_outputs(
    result: Any, frames: dict[str, pd.DataFrame], out: Path | None, report: Path | None,
    inputs: Mapping[str, Any] | None = None,
) -> list[Path]:  # fmt: skip
    """``plan.yaml`` (default ``reports/<fleet>/plan.yaml``) and the report beside it, written whole:
    a plan inside the report folder is part of that folder's output (one manifest, moved in
    together); a plan elsewhere is moved in with it. ``inputs`` (name -> file or option) is hashed
    into the manifest."""
    plan_path = out or Path("reports") / result.fleet.name / "plan.yaml"
    files, tables = render_report_files(frames, _plan_meta(result))
    folder = report or plan_path.parent
    text = plan_text(result.plan)
    provenance = Provenance("plan", inputs or {})
    if folder.resolve() in plan_path.resolve().parents:
        inside = plan_path.resolve().relative_to(folder.resolve()).as_posix()
        option = "--report" if report else "--out" if out else "report folder"

        def write_together(staged: list[Path]) -> list[Path]:
            return write_report(staged[0], {inside: text, **files}, tables)

        return write_outputs([Target(folder, option)], write_together, ScenarioError, provenance)

    def write_apart(staged: list[Path]) -> list[Path]:
        staged[0].write_text(text, encoding="utf-8")
        return [staged[0], *write_report(staged[1], files, tables)]

    targets = [Target(plan_path, "--out" if out else "plan file", is_folder=False), Target(folder, "--report")]
    return write_outputs(targets, write_apart, ScenarioError, provenance)


def _plan_meta(result: Any) -> dict[str, Any]:
    objectives = {w.name: Sla(w.ttft_s, w.tbt_s, w.e2e_s, w.ttft_percentile, w.tbt_percentile, w.e2e_percentile)
                  for w in result.workloads}  # fmt: skip
    slas = "; ".join(f"{name}: {sla.describe()}" for name, sla in objectives.items())
    points = [p for w in result.workloads for p, limit in
              ((w.ttft_percentile, w.ttft_s), (w.tbt_percentile, w.tbt_s), (w.e2e_percentile, w.e2e_s)) if limit]  # fmt: skip
    return report_meta(
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
