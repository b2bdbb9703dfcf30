"""``hetsim trace import|stats|profile``: canonical agent traces from public formats, and their statistics.

``hetsim trace synth`` (synthetic traces from a workload spec) is attached to this group by the
lead from ``hetsim.cli.workload``; keep ``app`` importable as ``hetsim.cli.trace.app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hetsim.api import traces as api
from hetsim.cli.output import JsonOption, fmt, print_json, print_table
from hetsim.cli.workload import synth_command

app = typer.Typer(help="Agent traces: import public formats, summarise, synthesise.", no_args_is_help=True)
# `hetsim trace synth` lives beside the workload commands it needs; it is attached here.
app.command("synth")(synth_command)

_FORMATS = ", ".join(api.formats())
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Skip malformed lines (counted in the trace meta) instead of failing.")
]


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Trace file, or a folder of session files (lmcache, trtllm, tracelab).")],
    trace_format: Annotated[str, typer.Option("--format", "-f", help=f"Input format: {_FORMATS}.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Canonical trace to write: .jsonl or .parquet.")],
    skip_bad: SkipBadOption = False,
    json: JsonOption = False,
) -> None:
    """Import a public trace and write it as a canonical hetsim trace."""
    summary = api.convert_trace(file, trace_format, out, skip_bad)
    if json:
        print_json(summary)
        return
    rows = [(key, value) for key, value in summary.items()]
    print_table(f"Imported {file.name} ({trace_format})", ("field", "value"), rows)


@app.command("stats")
def stats_command(
    file: Annotated[Path, typer.Argument(help="Canonical trace (.jsonl/.parquet), or a raw trace with --format.")],
    trace_format: Annotated[
        str | None, typer.Option("--format", "-f", help=f"Import FILE on the fly from: {_FORMATS}.")
    ] = None,
    skip_bad: SkipBadOption = False,
    json: JsonOption = False,
) -> None:
    """Summarise a trace: sessions, arrival rate and burstiness, token sizes, tool time, prefix reuse."""
    described = api.describe_trace(file, trace_format, skip_bad)
    if json:
        print_json(described)
        return
    print_table(
        f"{file.name} ({described['format']})", ("statistic", "value"), _stat_rows(described["stats"]),
        caption=f"source: {described['source']}; tokens: {described['token_count_method']}",
    )


def _stat_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in stats.items():
        if isinstance(value, dict) and "p50" in value:
            names = [name for name in ("mean", "p50", "p90", "p99") if value[name] is not None]
            parts = (f"{name} {fmt(value[name], 4)}" for name in names)
            rows.append((key, ", ".join(parts) or "n/a"))
        elif isinstance(value, dict):
            rows.append((key, ", ".join(f"{k} {v}" for k, v in value.items())))
        elif isinstance(value, float):
            rows.append((key, fmt(value, 4)))
        else:
            rows.append((key, "n/a" if value is None else str(value)))
    return rows


@app.command("profile")
def profile_command(
    file: Annotated[Path, typer.Argument(help="Canonical trace (.jsonl/.parquet), or a raw trace with --format.")],
    trace_format: Annotated[
        str | None, typer.Option("--format", "-f", help=f"Import FILE on the fly from: {_FORMATS}.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Save as a day profile (YAML) a fleet's demand may name")
    ] = None,
    start_hour: Annotated[float, typer.Option("--start-hour", help="Hour of day at the trace's time 0")] = 0.0,
    skip_bad: SkipBadOption = False,
    json: JsonOption = False,
) -> None:
    """Sessions/s per hour of the day measured from a trace; with --out, saved as a day profile."""
    described = api.trace_profile(file, trace_format, skip_bad, start_hour)
    if out is not None:
        described["written"] = str(api.save_profile(out, api.profile_of(described)))
    if json:
        print_json(described)
        return
    print_table(f"{file.name}: sessions/s by hour of day", ("hour", "sessions", "covered", "sessions/s"),
                [(f"{r['hour']:02d}:00", str(r["sessions"]), f"{r['covered_s']:.0f} s",
                  "n/a" if r["sessions_per_s"] is None else fmt(r["sessions_per_s"], 4)) for r in described["hours"]],
                caption=f"{described['sessions']} sessions over {described['span_s']:.0f} s"
                + (f"; wrote {described['written']}" if "written" in described else ""))  # fmt: skip
