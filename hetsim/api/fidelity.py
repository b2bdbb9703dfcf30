"""``hetsim fidelity``: the same arrivals executed and simulated, side by side.

The trace is drawn once (seeded); ``hetsim run`` executes it on the plan's real engines and
the simulator replays it on the same plan, with the model at the size the engines ran
(``--scale``) and, when given, the engine's calibration (``hetsim bench --engine``) added to
the device's kernel calibration. The report (HTML, CSV, both sides' records) compares them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.engine_sim import engine_calibrations, scaled_catalog, simulate_with_engine
from hetsim.api.run import RunRequest, device_kind_for, resolve_inputs, run, scale_for
from hetsim.api.simulate import plan_cost, pool_costs
from hetsim.errors import ExecutorError
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, write_folder
from hetsim.io.results import write_results
from hetsim.metrics.fidelity import Comparison, compare, summary_errors
from hetsim.metrics.summary import Expected, summarize
from hetsim.report.fidelity import batch_figure, cdf_figure, fidelity_html, scatter_figure


@dataclass(frozen=True)
class FidelityRequest:
    run: RunRequest
    report: Path
    engine_calibrations: tuple[Path, ...] = ()


def fidelity(request: FidelityRequest) -> dict[str, Any]:
    """Execute and simulate; write the report; returns the summary of the comparison."""
    resolved = resolve_inputs(request.run)
    plan, trace, block = resolved.plan, resolved.trace, resolved.block_size_tokens
    scale = scale_for(request.run.scale, device_kind_for(request.run.engine_device))
    engine_calibrations(plan, request.engine_calibrations)  # a bad file fails before any engine starts
    executed = run(replace(request.run, out=None), resolved=resolved)
    if executed.exit_code == 130:
        raise KeyboardInterrupt
    hardware = load_catalog(plan.profile_set)
    simulated, calibration_text = simulate_with_engine(plan, trace, block, scaled_catalog(load_models(), plan, scale),
                                                       request.engine_calibrations)  # fmt: skip
    sim_summary = summarize(simulated, pool_costs(plan, hardware, resolved.tco, None), resolved.sla, Expected.of(trace),
                            plan_cost(plan, hardware, resolved.tco, None))  # fmt: skip
    measured = executed.frames
    comparison = compare(measured["llm_calls"], simulated["llm_calls"], (executed.summary["duration_s"], sim_summary["duration_s"]))
    context = {
        "plan": plan.name,
        "trace": ", ".join(f"{k} {v}" for k, v in resolved.described.items()),
        "executed": executed.summary["provenance"]["latency"],
        "simulated": f"hetsim's simulator, the model {scale.describe()}; {calibration_text}",
        "calls": f"{len(measured['llm_calls'])} executed, {len(simulated['llm_calls'])} simulated; exit code of the run {executed.exit_code}",
    }
    mean_batch = simulated["replicas"].groupby("pool")["mean_batch_size"].mean().dropna().to_dict()
    figures = {
        "CDFs of TTFT, mean TBT and call E2E: measured (blue) and simulated (orange)": cdf_figure(measured["llm_calls"], simulated["llm_calls"]),
        "Each call: simulated against measured end-to-end time": scatter_figure(comparison.calls),
        "Running requests over time (engine metrics) and the simulated mean running batch": batch_figure(measured["engine_samples"], mean_batch),
    }
    html = fidelity_html(f"Fidelity: {plan.name}", comparison, context, figures)
    errors = summary_errors(comparison.table)
    summary = {"plan": plan.name, "verdict": comparison.verdict, "errors": errors, "context": context,
               "run_exit_code": executed.exit_code, "table": comparison.table.to_dict(orient="records")}  # fmt: skip
    _write_report(request.report, html, comparison, (measured, executed.summary), (simulated, sim_summary), summary)
    summary["written"] = str(request.report)
    return summary


Side = tuple[dict[str, pd.DataFrame], dict[str, Any]]


def _write_report(folder: Path, html: str, comparison: Comparison, measured: Side, simulated: Side, summary: dict[str, Any]) -> None:
    """Everything written whole (``hetsim.io.outputs``): staged, then moved in with a manifest."""

    def write(staging: Path) -> list[Path]:
        (staging / "index.html").write_text(html, encoding="utf-8")
        comparison.table.to_csv(staging / "fidelity.csv", index=False)
        comparison.calls.to_csv(staging / "calls.csv", index=False)
        return [staging / "index.html", staging / "fidelity.csv", staging / "calls.csv",
                *write_results(staging / "measured", *measured), *write_results(staging / "simulated", *simulated),
                *write_results(staging, {}, summary)]  # fmt: skip

    write_folder(folder, "--report", write, ExecutorError, Provenance("fidelity", {"plan": summary["plan"]}))
