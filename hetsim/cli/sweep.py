"""``hetsim sweep``: simulate scenarios x seeds in parallel (or on Ray); table per point and per scenario."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hetsim.api.sweep import SweepInterrupted, SweepRequest, SweepResult, parse_seeds, sweep
from hetsim.cli.output import JsonOption, fmt, print_json, print_table

# (metric, heading, scale) shown per point and as mean ± 95% CI per scenario
_SHOWN = (
    ("ttft_p99_s", "TTFT p99 ms", 1e3),
    ("tbt_p99_s", "TBT p99 ms", 1e3),
    ("e2e_p99_s", "call e2e p99 s", 1.0),
    ("goodput_calls_per_s", "goodput calls/s", 1.0),
    ("usd_per_million_tokens", "$ per 1M tok", 1.0),
    ("usd_per_session", "$ per session", 1.0),
    ("sla_met", "SLA met", 1.0),
)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)


def sweep_command(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files", exists=True, dir_okay=False)],
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Seeds: 0,1,2 or 0..9 (inclusive); default: each scenario's own")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", min=1, help="Worker processes (default: one per CPU; 1: in-process)")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Run on Ray: 'local' (start one here), 'auto', or a cluster address"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write points and per-scenario spreads (CSV, Parquet, JSON)")] = None,
    json: JsonOption = False,
) -> None:
    """Simulate every scenario with every seed in parallel; report each point and mean ± 95% CI per scenario.

    Exits 1 when any point failed, after writing and printing all of them. Ctrl-C prints the points
    that finished, writes them to OUT.incomplete (OUT keeps a previous complete sweep) and exits 130.
    """
    request = SweepRequest(tuple(scenarios), parse_seeds(seeds) if seeds else None, workers, ray_address, out)
    console = Console(stderr=True)
    with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("sweep", total=None, note="")
        failed = 0

        def progress(done: int, total: int, row: dict[str, Any] | None) -> None:
            nonlocal failed
            failed += bool(row and row["status"] != "ok")
            note = f"{row['scenario']} seed {row['seed']}" if row else "starting"
            bar.update(task, completed=done, total=total, note=note + (f" ({failed} failed)" if failed else ""))

        try:
            result = sweep(request, progress)
        except SweepInterrupted as stop:  # show the points that finished; the CLI says "interrupted" and exits 130
            bar.stop()
            _show(stop.result, json)
            raise
    _show(result, json)
    if result.failed:
        for row in result.report()["points"]:
            if row["status"] != "ok":
                console.print(f"hetsim: point failed: {row['scenario']} seed {row['seed']}: {row['error']}",
                              markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _show(result: SweepResult, json: bool) -> None:
    if json:
        print_json(result.report())
    else:
        _print_tables(result)


def _print_tables(result: SweepResult) -> None:
    report = result.report()
    rows = [
        (p["scenario"], p["seed"], p["status"], *(_cell(p[m], scale, m) for m, _, scale in _SHOWN), fmt(p["wall_s"]))
        for p in report["points"]
    ]
    run = report["run"]
    where = f"on Ray ({run['ray_address']})" if run["executor"] == "ray" else f"{run['executor']}, {run['workers']} worker(s)"
    caption = f"{run['points']} points, {run['failed']} failed, {fmt(run['wall_s'])} s wall {where}"
    if run["incomplete"]:
        caption = f"INCOMPLETE (interrupted): {run['finished']} of " + caption
    print_table("Sweep: points", ("scenario", "seed", "status", *(h for _, h, _ in _SHOWN), "wall s"), rows, caption)
    summary_rows = [
        (s["scenario"], f"{s['points'] - s['failed']} of {s['points']}",
         *(_spread(s["metrics"][m], scale, m) for m, _, scale in _SHOWN))
        for s in report["by_scenario"]
    ]
    print_table("Sweep: mean ± 95% CI across seeds", ("scenario", "seeds ok", *(h for _, h, _ in _SHOWN)),
                summary_rows)


def _cell(value: float | None, scale: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric == "sla_met":
        return "met" if value else "MISSED"
    return fmt(value * scale)


def _spread(stats: dict[str, Any], scale: float, metric: str) -> str:
    mean, half = stats["mean"], stats["ci95_half_width"]
    if mean is None or math.isnan(mean):
        return ""
    if metric == "sla_met":
        return f"{mean:.0%} of seeds"
    if half is None or math.isnan(half):
        return fmt(mean * scale)
    return f"{fmt(mean * scale)} ± {fmt(half * scale, 2)}"
