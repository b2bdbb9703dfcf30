"""``hetsim compare``: candidate fleets planned and simulated for the same demand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from hetsim.cli.output import JsonOption, fmt, print_json, print_table


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)


def compare_command(
    scenario: Annotated[Path, typer.Argument(help="Comparison file: demand and candidate fleets", exists=True, dir_okay=False)],
    report: Annotated[Path | None, typer.Option("--report", help="Report folder (default: reports/<name>)")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Simulate each plan")] = True,
    json: JsonOption = False,
) -> None:
    """Plan every candidate fleet for the same demand; rank them by TCO and SLA in one report."""
    with Progress(transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=f"planning {name}")

        from hetsim.api.compare import compare, write_comparison  # loaded on use: starting the CLI stays light
        comparison = compare(scenario, verify, progress)
    folder = report or Path("reports") / comparison.spec.name
    written = write_comparison(comparison, folder, {"comparison": scenario, "verify": verify})
    fleets = comparison.frames["fleets"].sort_values("total_usd_per_h", na_position="last")
    if json:
        print_json({"fleets": fleets.to_dict(orient="records"), "written": [str(p) for p in written]})
        return
    rows = [
        (r.fleet, r.status, fmt(r.total_usd_per_h, 4), fmt(r.usd_per_million_tokens, 3), fmt(r.ttft_p99_s, 3),
         fmt(r.tbt_p99_s, 3), "yes" if r.sla_met else "no", r.note[:60])
        for r in fleets.itertuples()
    ]  # fmt: skip
    print_table(f"Comparison: {comparison.spec.name}", ("fleet", "status", "$/h", "$/1M tok", "TTFT p99 s", "TBT p99 s", "SLA", "note"), rows)
    typer.echo(f"report: {folder / 'report.html'}")
