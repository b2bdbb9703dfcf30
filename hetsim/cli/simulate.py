"""``hetsim simulate``: replay a trace on a plan; print latency, SLA attainment and cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli.output import JsonOption, fmt, print_json, print_table, sla_rows, usd_per_h


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)


def simulate_command(
    scenario: Annotated[Path | None, typer.Option("--scenario", "-s", help="Scenario file (plan + trace + SLA)", exists=True, dir_okay=False)] = None,
    plan: Annotated[Path | None, typer.Option("--plan", "-p", help="Plan file (overrides the scenario's)", exists=True, dir_okay=False)] = None,
    trace: Annotated[Path | None, typer.Option("--trace", "-t", help="Trace file (overrides the scenario's)", exists=True, dir_okay=False)] = None,
    trace_format: Annotated[str | None, typer.Option("--format", help="Importer for a raw public trace (default: canonical)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write records (Parquet) and summary.json here")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for LLM steps the trace leaves unnamed")] = None,
    engine_calibration: Annotated[
        list[Path] | None,
        typer.Option("--engine-calibration", help="Engine calibration(s) from hetsim bench --engine (alone, and side by side)", exists=True, dir_okay=False),
    ] = None,
    scale: Annotated[str | None, typer.Option("--scale", help="Simulate the plan's LLMs at this size (full, small, tiny)")] = None,
    stack: Annotated[str | None, typer.Option("--stack", help="Serving stack whose shipped calibrations price the devices (e.g. vllm-0.24.0)")] = None,
    json: JsonOption = False,
) -> None:
    """Replay an agent trace against a plan and report latency, SLA attainment, utilisation and cost."""
    from hetsim.api.simulate import SimulateRequest, simulate, simulate_exit_code  # loaded on use: start-up stays light
    summary = simulate(SimulateRequest(scenario, plan, trace, trace_format, out, model=model,
                                       engine_calibrations=tuple(engine_calibration or ()), scale=scale, stack=stack))  # fmt: skip
    code = simulate_exit_code(summary)  # 4: an SLA missed, 3: calls or steps dropped (the README's exit statuses)
    if json:
        print_json(summary)
    else:
        _print_table(summary, code)
    if code:
        raise typer.Exit(code)


_EXIT_WHY = {3: "calls or steps were dropped", 4: "an SLA is missed"}


def _print_table(summary: dict, code: int) -> None:
    """The summary as a table; its caption ends with the exit status when it is not 0."""
    calls, cost, sessions, load = summary["llm_calls"], summary["cost"], summary["sessions"], summary["load"]
    rows = [
        ("load", load["verdict"].split(":", 1)[0], load["verdict"].split(":", 1)[-1].strip()),
        ("sessions", f"{sessions['completed']} of {sessions['count']} completed",
         f"e2e p50 {fmt(sessions.get('e2e_s', {}).get('p50'))} s (completed sessions)"),
        ("LLM calls", f"{calls['completed']} of {calls['count']} completed",
         f"{calls['dropped']} dropped{_reasons(calls['dropped_reasons'])}, {calls['unfinished']} unfinished; "
         "latency percentiles below are over completed calls"),
        ("TTFT p50 / p99", f"{fmt(calls['ttft_s']['p50'] * 1e3)} / {fmt(calls['ttft_s']['p99'] * 1e3)} ms", ""),
        ("serving", ", ".join(f"{pool} {text}" for pool, text in summary.get("serving", {}).items()),
         _own_rates_note(summary.get("speculation", {}))),
        *_adapter_rows(summary.get("adapters")),
        ("TBT p50 / p90 / p99", _ms(calls["tbt_s"]), "token gaps, every gap of every call"
         + ("; a speculative burst is one gap (as vLLM's benchmark counts a streamed chunk)"
            if summary.get("speculation") else "")),
        ("worst gap per call p50 / p99", f"{fmt(calls['tbt_max_s']['p50'] * 1e3)} / {fmt(calls['tbt_max_s']['p99'] * 1e3)} ms",
         f"mean gap per call p99 {fmt(calls['tbt_mean_s']['p99'] * 1e3)} ms"),
        ("call e2e p50 / p99", f"{fmt(calls['e2e_s']['p50'])} / {fmt(calls['e2e_s']['p99'])} s", ""),
        ("output tokens/s", fmt(calls["output_tokens_per_s"], 4), f"preemptions {calls['preemptions']}"),
        ("goodput", f"{fmt(summary['goodput_calls_per_s'])} calls/s", "calls within the SLA"),
        ("utilisation", ", ".join(f"{k} {v:.0%}" for k, v in summary["utilization"].items()), ""),
        ("plan cost", usd_per_h(cost["fleet_usd_per_h"]), _plan_cost_note(cost)),
        ("traffic-weighted cost", usd_per_h(cost["traffic_weighted_usd_per_h"]),
         "each pool's $/h x its simulated busy share; pools: " + "; ".join(summary["provenance"]["cost"])),
        ("$ per 1M tokens", fmt(cost["usd_per_million_tokens"], 4), f"$ per session {fmt(cost['usd_per_session'])}"),
        ("energy", f"{fmt(cost['facility_energy_kwh'])} kWh ({fmt(cost['kwh_per_day'])} kWh/day)",
         f"{fmt(cost['joules_per_output_token'])} J per output token, {fmt(cost['joules_per_llm_call'])} J per LLM call, "
         f"{fmt(cost['joules_per_session'])} J per session; the pools' devices, idle to TDP with their busy "
         "share, x PUE (node overheads and unused devices not counted)"),
    ]
    rows += _autoscaling_rows(summary.get("autoscaling"))
    kv = summary["kv_transfers"]
    if kv:
        busiest = max(kv["link_utilization"].values(), default=0.0)
        wait = kv["wait_s"] or {"p50": float("nan"), "p99": float("nan")}
        rows.append(("KV transfers", f"{kv['count']}, link wait p50 / p99 {fmt(wait['p50'] * 1e3)} / {fmt(wait['p99'] * 1e3)} ms",
                     f"{kv['waited_share']:.0%} queued (FIFO per link); busiest link {busiest:.0%} busy"))  # fmt: skip
    rows += sla_rows(summary["sla"])
    run = summary["run"]
    caption = f"simulated {fmt(summary['duration_s'])} s of traffic in {fmt(run['wall_s'])} s wall, {run['events']} server events"
    caption += f"\nstep times: {summary['provenance']['latency']}"
    if code:
        caption += f"\nexit status {code}: {_EXIT_WHY[code]}"
    print_table(f"Simulation: {run['scenario'] or run['plan']}", ("figure", "value", "note"), rows, caption=caption)


def _plan_cost_note(cost: dict) -> str:
    """What the plan cost counts, and the planner's own figure when it differs."""
    nodes = ", ".join(f"{count} x {name}" for name, count in cost["nodes"].items())
    note = f"whole nodes the pools occupy ({nodes}), TCO preset '{cost['tco']}'" if nodes else "the pools' devices"
    planner = cost.get("planner_usd_per_h")
    burst = cost.get("burst_usd_per_h")
    if burst:
        note += (f"; autoscaled pools' minimum so, and {usd_per_h(sum(burst.values()))} for their replicas above it "
                 "(rented, per device-hour up)")  # fmt: skip
        return note
    if planner is not None and abs(planner - cost["fleet_usd_per_h"]) > 0.005 * max(planner, 1e-9):
        note += f"; the planner's figure {usd_per_h(planner)} also counts owned nodes the plan leaves idle"
    elif planner is not None:
        note += "; the planner's figure is the same"
    return note


def _autoscaling_rows(scaled: dict | None) -> list[tuple[str, str, str]]:
    """One row per autoscaled pool: replicas up over the run, cold starts, drains, waits."""
    rows = []
    for pool, figures in (scaled or {}).items():
        waited = figures["requests_waited_on_cold_start"]
        rows.append((f"autoscaled {pool}",
                     f"{fmt(figures['mean_replicas_up'])} replicas up on average ({figures['least_replicas_up']} to "
                     f"{figures['peak_replicas_up']}), {fmt(figures['replica_hours_up'])} replica-hours",
                     f"{figures['cold_starts']} cold starts ({fmt(figures['cold_start_s'])} s each on average), "
                     f"{figures['drained']} drained; " + ("requests queued during a cold start: n/a (not the first stage)"
                     if waited is None else f"{waited} requests queued while a replica was starting")))  # fmt: skip
    return rows


def _own_rates_note(speculation: dict) -> str:
    """Which speculating pools served calls naming their own acceptance rate."""
    notes = []
    for pool, entry in speculation.items():
        own = entry.get("calls_with_own_rate")
        if own:
            notes.append(f"{pool}: {own['count']} of {own['of']} calls name their own acceptance rate "
                         f"({own['min']:.2f}-{own['max']:.2f}): {own['tokens_per_iteration']:.2f} tokens per iteration "
                         f"expected (the pool's rate alone: {own['tokens_per_iteration_at_pool_rate']:.2f})")  # fmt: skip
    return "; ".join(notes)


def _reasons(reasons: dict[str, int]) -> str:
    return " (" + "; ".join(f"{count} {reason}" for reason, count in reasons.items()) + ")" if reasons else ""


def _ms(values: dict | None) -> str:
    if not values:
        return "n/a"
    return " / ".join(fmt(values[p] * 1e3) for p in ("p50", "p90", "p99")) + " ms"


def _adapter_rows(adapters: dict | None) -> list[tuple[str, str, str]]:
    """A LoRA pool's adapters: how many served, loaded and waited for (``summary["adapters"]``)."""
    if not adapters:
        return []
    return [(f"LoRA adapters ({pool})", f"{a['adapters_used']} used, {a['loads']} loads",
             f"{a['calls_that_loaded']} of {a['calls_with_adapter']} calls loaded theirs; adapter wait p50 / p99 "
             f"{fmt(a['adapter_wait_s']['p50'] * 1e3)} / {fmt(a['adapter_wait_s']['p99'] * 1e3)} ms; "
             f"{a['cpu_misses']} host-memory misses, {a['evictions']} evictions")
            for pool, a in adapters["pools"].items()]  # fmt: skip
