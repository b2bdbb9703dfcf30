"""``hetsim workload list|show|validate`` and ``hetsim trace synth``: agent workload specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.api import workloads as api
from hetsim.cli.output import JsonOption, fmt, print_json, print_table

app = typer.Typer(help="Agent workloads: session graphs, arrival processes and SLAs.", no_args_is_help=True)

WorkloadArgument = Annotated[
    str, typer.Argument(help="A shipped workload name (see `hetsim workload list`) or a YAML file.")
]


@app.command("list")
def list_command(json: JsonOption = False) -> None:
    """List the shipped workloads."""
    rows = api.list_workloads()
    if json:
        print_json({"workloads": rows})
        return
    table = [
        (
            r["name"],
            r["nodes"],
            ", ".join(r["models"]),
            f"{r['arrival']} {fmt(r['mean_rate_per_s'])}/s",
            r["description"],
        )
        for r in rows
    ]
    print_table(f"{len(rows)} workloads", ("workload", "nodes", "models", "arrivals", "description"), table)


@app.command("show")
def show_command(workload: WorkloadArgument, json: JsonOption = False) -> None:
    """Show a workload: nodes with their distributions, edges, SLA, arrivals and sources."""
    described = api.describe(api.load(workload))
    if json:
        print_json(described)
        return
    rows = [
        (name, node["type"], node["model"] or "", field, q["distribution"], fmt(q["mean"], 4), q["source"] or "")
        for name, node in described["nodes"].items()
        for field, q in (node["quantities"].items() or [("", {"distribution": "", "mean": None, "source": ""})])
    ]
    print_table(
        f"{described['name']}: {described['description']}",
        ("node", "type", "model", "quantity", "distribution", "mean", "source"),
        rows,
        caption=f"entry: {described['entry']}",
    )
    print_table("edges", ("from", "to", "kind"), [_edge_row(e) for e in described["edges"]])
    sla = ", ".join(f"{k}={v}" for k, v in described["sla"].items()) or "none"
    arrival = ", ".join(f"{k}={v}" for k, v in described["arrival"].items())
    print_table(
        "SLA, arrivals and sources",
        ("what", "value"),
        [("sla", sla), ("arrival", arrival), *described["sources"].items()],
    )


def _edge_row(edge: dict) -> tuple[str, str, str]:
    if edge.get("parallel"):
        copies = edge.get("copies", {}).get("dist", "1")
        kind = f"parallel (copies: {copies}, max {edge.get('max_copies')})"
    elif edge.get("loop"):
        kind = f"loop (max {edge['loop']['max_iterations']} iterations, p={edge.get('probability', 1)})"
    else:
        kind = f"branch p={edge.get('probability', 1)}"
    return edge["from"], edge["to"], kind


@app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="Workload YAML to check.", exists=True, dir_okay=False)],
    json: JsonOption = False,
) -> None:
    """Check a workload YAML (schema, graph, probabilities, loops, model names); errors are one line."""
    result = api.validate(file)
    if json:
        print_json(result)
        return
    typer.echo(f"ok: {file} is workload {result['name']!r} ({result['nodes']} nodes, {result['edges']} edges)")


def synth_command(
    workload: Annotated[str, typer.Option("--workload", "-w", help="Workload name or YAML file.")],
    duration: Annotated[str, typer.Option("--duration", "-d", help="Trace length: seconds, or e.g. 10min, 1h.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trace to write: .jsonl or .parquet.")],
    rate: Annotated[
        float | None, typer.Option("--rate", "-r", help="Mean sessions per second (default: the workload's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed; the same seed gives the same trace.")] = 0,
    json: JsonOption = False,
) -> None:
    """Synthesize a canonical trace from a workload spec (deterministic in the seed)."""
    summary = api.synthesize_to_file(workload, duration, out, seed, rate)
    if json:
        print_json(summary)
        return
    rows = [(key, fmt(value) if isinstance(value, float) else value) for key, value in summary.items()]
    print_table(f"Synthesized {summary['workload']}", ("field", "value"), rows)
