"""``hetsim fidelity``: execute and simulate the same arrivals; report the simulator's error."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hetsim.cli.output import JsonOption, print_json, print_table
from hetsim.cli.run import (
    DurationOption,
    EngineDeviceOption,
    EnginePythonOption,
    FormatOption,
    ModelOption,
    PlanOption,
    RateOption,
    RayAddressOption,
    ScaleOption,
    ScenarioOption,
    SeedOption,
    TraceOption,
    WorkloadOption,
    import_exec,
)
from hetsim.exit_codes import EXIT_INTERRUPTED


def register(app: typer.Typer) -> None:
    app.command("fidelity")(fidelity_command)


def fidelity_command(
    report: Annotated[Path, typer.Option("--report", help="Report folder (index.html, fidelity.csv, both sides' records)")],
    plan: PlanOption = None,
    scenario: ScenarioOption = None,
    workload: WorkloadOption = None,
    rate: RateOption = None,
    duration: DurationOption = None,
    trace: TraceOption = None,
    trace_format: FormatOption = None,
    model: ModelOption = None,
    seed: SeedOption = 0,
    engine_calibration: Annotated[
        list[Path] | None,
        typer.Option("--engine-calibration", help="Engine calibration(s) for the simulator (hetsim bench --engine): one, or one taken "
                     "alone and one side by side (--replicas 2), interpolated by how busy the co-located replicas are", exists=True, dir_okay=False),
    ] = None,
    scale: ScaleOption = "auto",
    engine_python: EnginePythonOption = None,
    engine_device: EngineDeviceOption = "auto",
    ray_address: RayAddressOption = "local",
    json: JsonOption = False,
) -> None:
    """Draw the arrivals once; execute them on the plan's real engines and simulate them on the
    same plan; write an HTML + CSV report of the simulator's errors with a computed verdict."""
    api = import_exec("hetsim fidelity")
    from hetsim.api.fidelity import FidelityRequest, fidelity

    request = FidelityRequest(
        api.RunRequest(plan=plan, scenario=scenario, workload=workload, rate_per_s=rate, duration_s=duration, trace=trace,
                   trace_format=trace_format, model=model, seed=seed, scale=scale, engine_python=engine_python,
                   engine_device=engine_device, ray_address=ray_address),
        report, tuple(engine_calibration or ()),
    )  # fmt: skip
    console = Console(stderr=True)
    try:
        with console.status("executing on real engines, then simulating"), contextlib.redirect_stdout(sys.stderr):
            summary = fidelity(request)
    except KeyboardInterrupt:
        console.print("hetsim: interrupted; no report was written")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if json:
        print_json(summary)
        return
    rows = [(r["pool"], r["metric"], r["percentile"], _value(r["measured"], r["metric"]), _value(r["simulated"], r["metric"]),
             "n/a" if r["rel_error"] != r["rel_error"] else f"{r['rel_error']:+.1%}") for r in summary["table"]]  # fmt: skip
    errors = summary["errors"]
    caption = (f"{summary['verdict']}\nmedian |error| of TTFT, TBT, E2E: {errors['median_abs_error_p50']:.1%} at p50, "
               f"{errors['median_abs_error_p99']:.1%} at p99; report: {summary['written']}/index.html")  # fmt: skip
    print_table(f"Fidelity: {summary['plan']}", ("pool", "metric", "pct", "measured", "simulated", "error"), rows, caption=caption)
    if summary["run_exit_code"]:
        raise typer.Exit(summary["run_exit_code"])


def _value(value: float, metric: str) -> str:
    if value != value:
        return "n/a"
    return f"{value:.1f}" if metric == "output_tokens_per_s" else f"{value * 1e3:.2f} ms"
