"""``hetsim plan --fleet F`` on a fleet whose demand has a day profile: own versus rent over the day."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from hetsim.api.day import plan_day, summary, write_day
from hetsim.cli.output import print_json, print_table, usd, usd_per_h


def run_day(fleet: Path, workload: str | None, rate: float | None, verify: bool, size_for: str, stack: str | None,
            json: bool, report: Path | None = None) -> None:  # fmt: skip
    """Plan the owned base and the rented burst, write ``reports/<fleet>/day/`` (or ``report``),
    print it (or JSON), exit as ``hetsim plan``."""
    with Console(stderr=True).status("planning the day") as status:
        result = plan_day(fleet, workload, rate, verify, progress=status.update, size_for=size_for, stack=stack)
        status.update("writing the day's report")
        data = summary(result)
        data["written"] = [str(p) for p in write_day(result, data, report)]
    if json:
        print_json(data)
    else:
        _print(data)
    if data["exit_code"]:
        raise typer.Exit(data["exit_code"])


def _nodes(nodes: dict[str, int]) -> str:
    return ", ".join(f"{count} x {name}" for name, count in nodes.items()) or "-"


def _spot(spot: dict[str, int], spares: dict[str, int]) -> str:
    if not spot:
        return "-"
    return _nodes(spot) + (f" (+ {_nodes(spares)})" if spares else "")


def _print(data: dict) -> None:
    typer.echo(data["headline"])
    sla = {True: "met", False: "MISSED", None: "not checked"}
    print_table(f"Demand over the day and the capacity under it (fleet {data['fleet']})",
                ("hour", "sessions/s", "owned + bought", "rented", "spot (+ spares)", "sustains sessions/s", "$/h",
                 "SLA in simulation"),
                [(f"{r['hour']:02d}:00", f"{r['sessions_per_s']:.3g}", _nodes({**r["inventory"], **r["bought"]}),
                  _nodes(r["rented"]), _spot(r["spot"], r["spot_spares"]),
                  "n/a" if r["capacity_sessions_per_s"] is None else f"{r['capacity_sessions_per_s']:.3g}",
                  usd_per_h(r["window_usd_per_h"]), sla[r["sla_met_in_simulation"]]) for r in data["hours"]])  # fmt: skip
    print_table("Cost per day: the mix against all-owned and all-rented",
                ("answer", "buy", "rent at the peak", "rented node-hours", "spot node-hours (reclaims/day)", "owned $/day",
                 "rented $/day", "spot $/day", "$/day"),
                [(mode, _nodes(a["bought"]), _nodes(a["peak_rented"]), f"{a['rented_node_hours']:g}",
                  f"{a['spot_node_hours']:g} ({a['spot_interruptions_per_day']:.2g})", usd(a["owned_usd_per_day"]),
                  usd(a["rented_usd_per_day"]), usd(a["spot_usd_per_day"]), usd(a["usd_per_day"]))
                 if a["feasible"] else (mode, a["note"], "", "", "", "", "", "", "infeasible")
                 for mode, a in data["answers"].items()])  # fmt: skip
    typer.echo(f"Basis: {data['basis']}.")
    typer.echo(f"Written: {', '.join(p for p in data['written'] if not p.endswith('plan.yaml'))} and "
               f"{sum(p.endswith('plan.yaml') for p in data['written'])} window plans.")
