"""``hetsim run``: execute a plan on real serving engines; print what was measured."""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hetsim.cli.output import JsonOption, fmt, print_json, print_table, sla_rows
from hetsim.errors import ExecutorError
from hetsim.exit_codes import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from hetsim.exec.runtime import Fault, Progress

INSTALL_HINT = "needs the exec extra (Ray, httpx, prometheus_client): pip install 'hetsim[exec]'"


def import_exec(command: str) -> ModuleType:
    """``hetsim.api.run``, imported when a command needs it: the default install has no exec
    extra, and every command's module is imported when the CLI starts."""
    try:
        return importlib.import_module("hetsim.api.run")
    except ImportError as exc:
        raise ExecutorError(f"{command} {INSTALL_HINT} ({exc})") from None

_FAULT = re.compile(r"^(?P<pool>[A-Za-z0-9_.-]+):(?P<replica>\d+)@(?P<at>\d+(\.\d+)?)$")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def parse_fault(text: str) -> Fault:
    from hetsim.exec.runtime import Fault

    match = _FAULT.match(text)
    if match is None:
        raise ExecutorError(f"--kill: expected POOL:REPLICA@SECONDS (e.g. llm:0@20), got {text!r}")
    return Fault(float(match["at"]), match["pool"], int(match["replica"]))


# Options hetsim run shares with hetsim fidelity (one definition, one help text).
PlanOption = Annotated[Path | None, typer.Option("--plan", "-p", help="Plan to execute", exists=True, dir_okay=False)]
ScenarioOption = Annotated[Path | None, typer.Option("--scenario", "-s", help="Scenario (plan + trace + SLA)", exists=True, dir_okay=False)]
WorkloadOption = Annotated[str | None, typer.Option("--workload", "-w", help="Workload name or file to synthesize sessions from")]
RateOption = Annotated[float | None, typer.Option("--rate", "-r", help="Session arrivals per second (overrides the workload's)")]
DurationOption = Annotated[float | None, typer.Option("--duration", "-d", help="Seconds of session arrivals (--trace: those of its first D s)")]
TraceOption = Annotated[Path | None, typer.Option("--trace", "-t", help="Trace file to replay instead", exists=True, dir_okay=False)]
FormatOption = Annotated[str | None, typer.Option("--format", help="Importer for a raw public trace (default: canonical)")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model for LLM steps the trace leaves unnamed")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the synthesized trace and the prompts (0: the scenario's)")]
RayAddressOption = Annotated[str, typer.Option("--ray-address", help="local (start Ray here), auto, or a cluster address")]
ScaleOption = Annotated[str, typer.Option("--scale", help="Model size: auto (tiny on a CPU engine), full, small, tiny")]
EnginePythonOption = Annotated[str | None, typer.Option("--engine-python", help="Python with vLLM (default: $HETSIM_ENGINE_PYTHON, else this one)")]
EngineDeviceOption = Annotated[str, typer.Option("--engine-device", help="auto, cpu (vLLM's CPU build) or cuda")]


def run_command(
    plan: PlanOption = None,
    scenario: ScenarioOption = None,
    workload: WorkloadOption = None,
    rate: RateOption = None,
    duration: DurationOption = None,
    trace: TraceOption = None,
    trace_format: FormatOption = None,
    model: ModelOption = None,
    seed: SeedOption = 0,
    ray_address: RayAddressOption = "local",
    backend: Annotated[str, typer.Option("--backend", help="vllm (start engines) or openai (attach to --endpoints)")] = "vllm",
    endpoints: Annotated[Path | None, typer.Option("--endpoints", help="YAML of each LLM pool's OpenAI-compatible URLs", exists=True, dir_okay=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write records (Parquet) and summary.json here")] = None,
    scale: ScaleOption = "auto",
    weights: Annotated[Path | None, typer.Option("--weights", help="YAML: model name -> real weights (path or hub id)", exists=True, dir_okay=False)] = None,
    engine_python: EnginePythonOption = None,
    engine_device: EngineDeviceOption = "auto",
    kv_cache_gib: Annotated[int, typer.Option("--kv-cache-gib", help="KV cache of a CPU replica, GiB", min=1)] = 1,
    threads: Annotated[int, typer.Option("--threads-per-replica", help="Cores bound to each CPU replica", min=1)] = 1,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", help="Context cap of a replica (tokens)", min=16)] = None,
    kill: Annotated[list[str] | None, typer.Option("--kill", help="Fault injection: kill POOL:REPLICA's engine at SECONDS (repeatable)")] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Attempts a call may lose to a failed replica", min=0)] = 3,
    json: JsonOption = False,
) -> None:
    """Execute a plan on real engines (vLLM under Ray, or running endpoints), drive the agents
    through them, and report measured latency, SLA attainment and cost.

    Exit status: 0 when every session completed, 3 when calls or sessions failed, 130 when
    interrupted (the records so far are written to OUT.incomplete, marked incomplete)."""
    api = import_exec("hetsim run")
    from hetsim.exec.runtime import Progress

    request = api.RunRequest(
        plan=plan, scenario=scenario, workload=workload, rate_per_s=rate, duration_s=duration, trace=trace,
        trace_format=trace_format, model=model, seed=seed, ray_address=ray_address, backend=backend, endpoints=endpoints,
        out=out, scale=scale, weights=weights, engine_python=engine_python, engine_device=engine_device,
        kv_cache_gib=kv_cache_gib, threads_per_replica=threads, max_model_len=max_model_len,
        faults=tuple(parse_fault(k) for k in kill or ()), max_retries=max_retries,
    )  # fmt: skip
    console = Console(stderr=True)
    progress = Progress()
    live = Live(_progress_table(progress), console=console, refresh_per_second=4, transient=True,
                get_renderable=lambda: _progress_table(progress))  # fmt: skip

    def started(progress: Progress) -> None:
        console.print(f"engines ready; running {progress.sessions_total} sessions (Ctrl-C stops and keeps the records so far)")
        if not json:
            live.start()

    try:
        # Ray's driver threads print worker deaths (the fault injection's, say) to stdout, which
        # belongs to the JSON document and the table: send them to stderr with the progress.
        with contextlib.redirect_stdout(sys.stderr):
            outcome = api.run(request, progress, on_started=started, on_status=lambda text: console.print(f"[dim]{text}...[/dim]"))
    except KeyboardInterrupt:  # before the sessions started (engine start-up): nothing was measured
        live.stop()
        console.print("hetsim: interrupted before the run started; the engines were stopped, nothing was measured")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        live.stop()
    if json:
        print_json(outcome.summary)
    else:
        _print_summary(outcome.summary)
    if outcome.exit_code:
        if outcome.exit_code == 130:
            written = outcome.summary["run"].get("written")
            where = f"written to {Path(written[0]).parent}, marked incomplete" if written else "not written (no --out)"
            console.print(f"hetsim: interrupted; the records so far are {where}")
        raise typer.Exit(outcome.exit_code)


def _progress_table(progress: Progress) -> Table:
    table = Table.grid(padding=(0, 2))
    done = progress.sessions_completed + progress.sessions_failed
    table.add_row(
        f"sessions {done}/{progress.sessions_total} ({progress.sessions_failed} failed)",
        f"calls in flight {progress.calls_in_flight}",
        f"completed {progress.calls_completed}",
        f"failed {progress.calls_failed}",
        f"retries {progress.retries}",
        f"tokens out {progress.output_tokens}",
    )
    if progress.errors:
        table.add_row(f"[yellow]last event: {progress.errors[-1][:150]}[/yellow]")
    return table


def _print_summary(summary: dict) -> None:
    calls, run_info, sessions = summary["llm_calls"], summary["run"], summary["sessions"]
    sessions_note = f"{sessions.get('failed', 0)} failed; e2e p50 {fmt(sessions.get('e2e_s', {}).get('p50'))} s"
    calls_note = f"{calls['failed']} failed, {calls['retried_calls']} retried ({calls['retries']} retries)"
    tbt = f"{fmt(calls['tbt_mean_s']['p50'] * 1e3)} / {fmt(calls['tbt_mean_s']['p99'] * 1e3)} ms"
    starts = ", ".join(f"{r['pool']}[{r['replica']}] {fmt(r['startup_s'])} s" for r in run_info["replicas"])
    restarts = (f"lost {sum(r['lost'] for r in run_info['replicas'])}, restarted {sum(r['restarts'] for r in run_info['replicas'])}, "
                f"reconnected {sum(r.get('reconnects', 0) for r in run_info['replicas'])}")
    verdict = summary["load"]["verdict"]
    rows = [
        ("load", verdict.split(":", 1)[0], verdict.split(":", 1)[-1].strip()),
        ("sessions", f"{sessions.get('completed', 0)} of {sessions['count']} completed", sessions_note),
        ("LLM calls", f"{calls['completed']} of {calls['count']} completed", calls_note),
        ("token counts as asked", f"{calls['token_counts_exact']} of {calls['count']} calls", "prompt and output tokens the engine counted"),
        ("TTFT p50 / p90 / p99", " / ".join(f"{fmt(calls['ttft_s'][p] * 1e3)}" for p in ("p50", "p90", "p99")) + " ms", "measured at the client"),
        ("TBT mean p50 / p99", tbt, f"worst gap p99 {fmt(calls['tbt_max_s']['p99'] * 1e3)} ms"),
        ("TBT p50 / p90 / p99", " / ".join(fmt((calls["tbt_s"] or {}).get(p, float("nan")) * 1e3) for p in ("p50", "p90", "p99")) + " ms",
         "token gaps, every gap of every call"),
        ("call e2e p50 / p99", f"{fmt(calls['e2e_s']['p50'])} / {fmt(calls['e2e_s']['p99'])} s", ""),
        ("output tokens/s", fmt(calls["output_tokens_per_s"], 4), f"preemptions {calls['preemptions']} (engine counters)"),
        ("utilisation", ", ".join(f"{k} {v:.0%}" for k, v in summary["utilization"].items()), "busy share (engine metrics, sampled)"),
        ("engine start", starts, restarts),
        ("plan cost $/h", fmt(summary["cost"]["fleet_usd_per_h"], 4), "whole nodes the pools occupy; pools: "
         + "; ".join(summary["provenance"]["cost"])),
        ("traffic-weighted $/h", fmt(summary["cost"]["traffic_weighted_usd_per_h"], 4),
         "each pool's $/h x its busy share"),
    ]
    rows += sla_rows(summary["sla"])
    models = "; ".join(f"{name}: {info['size']}, {info['weights']} weights" for name, info in run_info["models"].items())
    caption = f"{summary['provenance']['latency']}\n{models}"
    if run_info["incomplete"]:
        caption += "\nINCOMPLETE: the run was interrupted"
    print_table(f"Executed: {run_info['plan']} ({run_info['engine']})", ("figure", "value", "note"), rows, caption=caption)
