"""``hetsim fidelity``: execute and simulate the same arrivals; report the simulator's error."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hetsim.cli.output import JsonOption, print_json, print_table
from hetsim.cli.run import import_exec


def register(app: typer.Typer) -> None:
    app.command("fidelity")(fidelity_command)


def fidelity_command(
    report: Annotated[Path, typer.Option("--report", help="Report folder (index.html, fidelity.csv, both sides' records)")],
    plan: Annotated[Path | None, typer.Option("--plan", "-p", help="Plan to execute and simulate", exists=True, dir_okay=False)] = None,
    scenario: Annotated[Path | None, typer.Option("--scenario", "-s", help="Scenario (plan + trace + SLA)", exists=True, dir_okay=False)] = None,
    workload: Annotated[str | None, typer.Option("--workload", "-w", help="Workload name or file to synthesize sessions from")] = None,
    rate: Annotated[float | None, typer.Option("--rate", "-r", help="Session arrivals per second")] = None,
    duration: Annotated[float | None, typer.Option("--duration", "-d", help="Seconds of session arrivals")] = None,
    trace: Annotated[Path | None, typer.Option("--trace", "-t", help="Trace file instead", exists=True, dir_okay=False)] = None,
    trace_format: Annotated[str | None, typer.Option("--format", help="Importer for a raw public trace")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for LLM steps the trace leaves unnamed")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthesized trace (0: the scenario's)")] = 0,
    engine_calibration: Annotated[
        list[Path] | None,
        typer.Option("--engine-calibration", help="Engine calibration(s) for the simulator (hetsim bench --engine): one, or one taken "
                     "alone and one side by side (--replicas 2), interpolated by how busy the co-located replicas are", exists=True, dir_okay=False),
    ] = None,
    scale: Annotated[str, typer.Option("--scale", help="Model size on both sides: auto (tiny on a CPU engine), full, small, tiny")] = "auto",
    engine_python: Annotated[str | None, typer.Option("--engine-python", help="Python with vLLM (default: $HETSIM_ENGINE_PYTHON)")] = None,
    engine_device: Annotated[str, typer.Option("--engine-device", help="auto, cpu or cuda")] = "auto",
    ray_address: Annotated[str, typer.Option("--ray-address", help="local, auto, or a cluster address")] = "local",
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
        raise typer.Exit(130) from None
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
