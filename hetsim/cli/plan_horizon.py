"""``hetsim plan --fleet F --horizon N --growth R``: the purchase schedule, rendered."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from hetsim.api.horizon import HEADROOM_STEP, HorizonRequest, capex_text, plan_horizon, summary, write_schedule
from hetsim.cli.output import print_json, print_table
from hetsim.units import format_usd


def _nodes(nodes: dict[str, int]) -> str:
    return ", ".join(f"{count} x {name}" for name, count in nodes.items()) or "-"


def run_horizon(request: HorizonRequest, report: Path | None, json: bool) -> None:
    """Solve, write ``reports/<fleet>/horizon/`` (or ``report``), print; exit as ``hetsim plan``
    does: 4 when a period missed its SLA in simulation, 5 when the solver stopped without proof."""
    console = Console(stderr=True)
    with console.status("planning the horizon") as status:
        result = plan_horizon(request, progress=lambda text: status.update(text))
        status.update("writing the schedule")
        data = summary(result)
        written = write_schedule(result, data, report)
    data["written"] = [str(p) for p in written]
    if json:
        print_json(data)
    else:
        _show(data)
    if result.exit_code:
        reasons = []
        if result.is_met is False:
            reasons += [f"period {r['period']} missed its SLA in simulation ({r['note']})"
                        for r in data["schedule"] if r["sla_met_in_simulation"] is False]  # fmt: skip
        if not result.is_proven:
            reasons.append(f"the schedule is not proven optimal: {data['solver']['text']}")
        print(f"hetsim: {'; '.join(reasons)}", file=sys.stderr)
        raise typer.Exit(result.exit_code)


def _show(data: dict) -> None:
    rows = [
        (r["period"], f"{r['months'][0]:g}-{r['months'][1]:g}", f"x{r['demand_scale']:.3g}", _nodes(r["buy"]),
         capex_text(r["capex_usd"]), _nodes(r["nodes"]), format_usd(r["fleet_usd_per_h"]), format_usd(r["fleet_usd"]),
         {True: "met", False: "MISSED", None: "not checked"}[r["sla_met_in_simulation"]])
        for r in data["schedule"]
    ]  # fmt: skip
    print_table(
        f"Purchase schedule for fleet {data['fleet']}: {data['periods']} periods of {data['period_months']:g} months, "
        f"demand x{1 + data['growth_per_period']:g} per period",
        ("period", "months", "demand", "buy", "capex", "nodes held", "fleet $/h", "fleet $ in period", "SLA in sim."),
        rows,
        caption="fleet $/h: owned and bought nodes at the fleet's TCO preset; capex: purchase price of the nodes bought",
    )
    lines = [
        data["headline"],
        f"new spend (bought nodes, per-unit costs) {format_usd(data['new_spend_usd'])}; buying each period's own "
        f"optimum and keeping it: {format_usd(data['myopic_new_spend_usd'])} (joint saves {format_usd(data['joint_saves_usd'])})",
        f"solver {data['solver']['name']}, one model over all periods: {data['solver']['text']}; total {data['wall_s']:.1f} s",
    ]  # fmt: skip
    for past in data["rounds"][:-1]:  # re-solves: which period missed what, before it got more headroom
        for period, note in past["missed"].items():
            lines.append(f"round {past['round'] + 1}: period {period}: {note}; solved again with its headroom "
                         f"x{HEADROOM_STEP:g}")  # fmt: skip
    lines.append("wrote " + ", ".join(data["written"][:2]) + f" and {len(data['written']) - 2} more")
    for line in lines:
        typer.echo(line)


def check_horizon_options(horizon: int | None, growth: float | None, out: Path | None) -> None:
    """``--horizon`` and ``--growth`` come together; the schedule is a folder (``--report``), not one plan file (``--out``)."""
    if horizon is None:
        raise typer.BadParameter("--growth plans a horizon: give --horizon N too", param_hint="--horizon")
    if growth is None:
        raise typer.BadParameter(
            "--horizon needs --growth (demand growth per period, e.g. 0.5 = +50%)", param_hint="--growth"
        )
    if out is not None:
        raise typer.BadParameter("with --horizon the schedule and each period's plan go to --report DIR, not --out",
                                 param_hint="--out")  # fmt: skip
