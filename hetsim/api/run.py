"""``hetsim run``: execute a plan on real serving engines and measure it.

The pools of the plan are started (vLLM under Ray) or attached (OpenAI-compatible endpoints),
the trace's sessions are driven through them by the agent runtime (``hetsim.exec.runtime``),
and the measured records, in the simulator's schema, are summarised by ``hetsim.metrics``
exactly as a simulation is. Outputs are written whole (``hetsim.io.outputs``: staged, moved in at
the end with a manifest); an interrupted run writes what it measured to ``<out>.incomplete``,
marked incomplete.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.api.deploy import load_weights
from hetsim.api.simulate import assign_model, plan_cost, pool_costs, tco_for, trace_frame
from hetsim.api.workloads import load as load_workload
from hetsim.errors import ExecutorError, ScenarioError
from hetsim.exec.client import make_client
from hetsim.exec.cluster import EngineCluster
from hetsim.exec.engine import EngineOptions
from hetsim.exec.prompts import PromptBuilder
from hetsim.exec.runtime import AgentRuntime, Fault, Progress, RuntimeSettings
from hetsim.exec.setup import (
    ServedModel,
    engine_launches,
    engine_version,
    layout,
    llm_runs,
    model_amounts,
    served_models,
    stage_networks,
    work_runs,
)
from hetsim.exit_codes import EXIT_FAILED_CALLS, EXIT_INTERRUPTED
from hetsim.io import ctrl_c
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, incomplete_path, write_folder
from hetsim.io.plans import load_plan, load_scenario
from hetsim.io.results import write_results
from hetsim.io.yamlfile import load_spec
from hetsim.metrics.summary import Expected, Sla, summarize
from hetsim.perf.model_scale import ModelScale, scale_named
from hetsim.sim.records import REPLICA_COLUMNS
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.endpoints import EndpointsSpec
from hetsim.specs.plan import PlanSpec, PoolSpec
from hetsim.specs.scenario import TraceSource
from hetsim.specs.workload import ToolRun


@dataclass(frozen=True)
class RunRequest:
    plan: Path | None = None
    scenario: Path | None = None
    workload: str | None = None
    rate_per_s: float | None = None
    duration_s: float | None = None
    trace: Path | None = None
    trace_format: str | None = None
    model: str | None = None
    seed: int = 0
    ray_address: str = "local"
    backend: str = "vllm"
    endpoints: Path | None = None
    out: Path | None = None
    scale: str = "auto"
    weights: Path | None = None
    engine_python: str | None = None
    engine_device: str = "auto"
    kv_cache_gib: int = 1
    threads_per_replica: int = 1
    max_model_len: int | None = None
    max_retries: int = 3
    recovery_wait_s: float = 300.0
    faults: tuple[Fault, ...] = ()
    extra_engine_args: tuple[str, ...] = ()


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    frames: dict[str, pd.DataFrame]
    exit_code: int
    progress: Progress = field(default_factory=Progress)


# ---- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInputs:
    """What a run executes: the plan, the trace frame and what goes with them."""

    plan: PlanSpec
    trace: pd.DataFrame
    block_size_tokens: int | None
    sla: Sla | None
    tco: str
    described: dict[str, Any]
    tool_runs: dict[str, ToolRun] = field(default_factory=dict)
    """Workload nodes whose tool calls are executed for real (a command or an HTTP request)."""


def resolve_inputs(request: RunRequest) -> RunInputs:
    """Plan, trace frame, prefix block size, SLA, TCO preset, a description of the trace and the
    workload's executable tools: the scenario's, with what the request names instead."""
    scenario = load_scenario(request.scenario) if request.scenario else None
    base = request.scenario.parent if request.scenario else Path.cwd()
    plan_path = request.plan or (base / scenario.plan if scenario else None)
    if plan_path is None:
        raise ScenarioError("run: expected --plan or --scenario, got neither")
    plan = load_plan(plan_path)
    scaled = [pool.name for pool in plan.pools if pool.autoscale is not None]
    if scaled:
        raise ScenarioError(f"{plan_path}: pools {scaled}: expected fixed replicas (the executor starts 'replicas' "
                            "engines and keeps them), got an autoscale block; simulate it, or remove the block to run it")  # fmt: skip
    sla = Sla.of(scenario.sla) if scenario and scenario.sla else None
    source = _trace_source(request, scenario.trace if scenario else None)
    frame, block = trace_frame(source, base)
    frame = assign_model(frame, source.model)
    tool_runs: dict[str, ToolRun] = {}
    if source.file is not None:
        described: dict[str, Any] = {"trace": source.file, "format": source.format or "canonical"}
        if request.duration_s is not None:  # the sessions that arrive in the first duration_s seconds
            starts = frame.groupby("session_id")["arrival_s"].transform("min")
            frame = frame[starts - float(frame["arrival_s"].min()) < request.duration_s].reset_index(drop=True)
            described["duration_s"] = request.duration_s
        if frame.empty:
            raise ScenarioError(f"{source.file}: no session arrives in the first {request.duration_s} s")
    else:
        assert source.workload is not None
        spec = load_workload(str(base / source.workload) if (base / source.workload).is_file() else source.workload)
        if sla is None and (spec.sla.ttft_s or spec.sla.tbt_s or spec.sla.e2e_s):
            sla = Sla.of(spec.sla)
        described = {"workload": spec.name, "rate_per_s": source.rate_per_s or spec.arrival.mean_rate_per_s,
                     "duration_s": source.duration_s, "seed": source.seed}  # fmt: skip
        tool_runs = {name: node.run for name, node in spec.nodes.items() if getattr(node, "run", None) is not None}
    return RunInputs(plan, frame, block, sla, tco_for(scenario, plan), described, tool_runs)


def _trace_source(request: RunRequest, scenario: TraceSource | None) -> TraceSource:
    """The scenario's trace source with the request's choices over it (a ``--trace`` or a
    ``--workload`` replaces the scenario's source; rate, duration, seed and model override)."""
    if request.trace is not None:
        fields: dict[str, Any] = {"file": str(request.trace.resolve()), "format": request.trace_format}
    elif request.workload is not None:
        fields = {"workload": request.workload, "duration_s": request.duration_s or (scenario.duration_s if scenario else None)}
    elif scenario is not None:
        fields = scenario.model_dump(include={"file", "format", "workload", "duration_s", "rate_per_s"})
        if scenario.workload is not None and request.duration_s:
            fields["duration_s"] = request.duration_s
    else:
        raise ScenarioError("run: expected --workload (with --duration) or --trace, or a --scenario that names one")
    if fields.get("workload") is not None and fields.get("duration_s") is None:
        raise ScenarioError("run: --workload needs --duration (seconds of session arrivals)")
    fields["rate_per_s"] = request.rate_per_s or fields.get("rate_per_s") or (scenario.rate_per_s if scenario and "workload" in fields else None)
    fields["seed"] = request.seed or (scenario.seed if scenario else 0)
    fields["model"] = request.model or (scenario.model if scenario else None)
    return TraceSource.model_validate({k: v for k, v in fields.items() if v is not None})


def device_kind_for(requested: str) -> str:
    if requested in ("cpu", "cuda"):
        return requested
    if requested != "auto":
        raise ExecutorError(f"--engine-device: expected auto, cpu or cuda, got {requested!r}")
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False, timeout=30)
        if listed.returncode == 0 and "GPU" in listed.stdout:
            return "cuda"
    return "cpu"


def scale_for(requested: str, device_kind: str) -> ModelScale:
    if requested == "auto":
        return scale_named("tiny" if device_kind == "cpu" else "full")
    return scale_named(requested)


def host_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


# ---- the run -------------------------------------------------------------------------------


def run(
    request: RunRequest,
    progress: Progress | None = None,
    on_started: Callable[[Progress], None] | None = None,
    resolved: RunInputs | None = None,
    on_status: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Execute the plan; returns the summary, the records and the exit code.

    ``on_started`` is called once the engines are up and the runtime's progress counters exist
    (a progress display attaches to them). KeyboardInterrupt during the run writes the records
    so far (marked incomplete) and comes back as exit code 130. ``on_status`` hears what is
    being done before that (starting the engines). ``resolved``: the inputs as
    ``resolve_inputs`` gives them, when the caller resolved them already (the fidelity loop
    hands the simulator the same trace).
    """
    started = time.perf_counter()
    if request.backend not in ("vllm", "openai"):
        raise ExecutorError(f"--backend: expected vllm or openai, got {request.backend!r}")
    inputs = resolved or resolve_inputs(request)
    plan, trace, block, sla, tco, described = inputs.plan, inputs.trace, inputs.block_size_tokens, inputs.sla, inputs.tco, inputs.described
    hardware, models = load_catalog(plan.profile_set), load_models()
    pools = layout(plan, trace, models)
    amounts = model_amounts(trace, models)
    device_kind = device_kind_for(request.engine_device)
    scale = scale_for(request.scale, device_kind)
    options = EngineOptions(
        python=request.engine_python or os.environ.get("HETSIM_ENGINE_PYTHON") or sys.executable,
        device_kind=device_kind,
        kv_cache_gib=request.kv_cache_gib,
        threads_per_replica=request.threads_per_replica,
        max_model_len=request.max_model_len,
        seed=request.seed,
        extra_args=request.extra_engine_args,
    )
    workdir = Path(tempfile.mkdtemp(prefix="hetsim-run-"))
    cluster: EngineCluster | None = None
    try:
        if on_status is not None:
            replicas = sum(p.replicas for p in pools.llm_pools.values())
            on_status(f"starting {replicas} engine replica(s) ({request.backend}; 25-70 s each on a CPU)")
        cluster, engine, served = _engines(request, pools.llm_pools, models, scale, options, workdir)
        llm = llm_runs(pools.llm_pools, cluster, served, options)
        cluster.start_stages(stage_networks(pools.work_pools, models, scale), request.ray_address, request.seed)
        work, notes = work_runs(pools.work_pools, request.seed, cluster)
        vocab = min((s.vocab_size for s in served.values()), default=32000)
        runtime = AgentRuntime(
            trace, llm, work, pools.work_for, PromptBuilder(trace, vocab, request.seed, block),
            RuntimeSettings(request.seed, request.max_retries, request.recovery_wait_s, request.faults),
            kill=cluster.kill_engine if request.faults else None,
            amounts=amounts,
            tool_runs=inputs.tool_runs,
        )
        if progress is not None:
            progress.sessions_total = runtime.progress.sessions_total
            runtime.progress = progress
        if on_started:
            on_started(runtime.progress)
        interrupted = _drive(runtime)
        frames = _frames(runtime, cluster, plan)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(frames, pool_costs(plan, hardware, tco, None), sla, Expected.of(trace), plan_cost(plan, hardware, tco, None))
    context = {"engine": engine, "device_kind": device_kind, "plan": plan, "trace": described, "notes": notes}
    _measured(summary, frames, runtime, cluster, served, context, interrupted)
    summary["run"]["wall_s"] = time.perf_counter() - started
    if request.out is not None:
        summary["run"]["written"] = [str(p) for p in _write_whole(request, frames, summary)]
    return RunOutcome(summary, frames, _exit_code(summary, interrupted), runtime.progress)


def _engines(
    request: RunRequest, llm_pools: dict[str, PoolSpec], models: ModelCatalog, scale: ModelScale, options: EngineOptions, workdir: Path
) -> tuple[EngineCluster, str, dict[str, ServedModel]]:
    """The engines (started or attached), the engine's name and version, and what each serves."""
    if request.backend == "openai":
        spec = _endpoints(request.endpoints, llm_pools)
        served = {}
        for model_name, pool in llm_pools.items():
            arch = models.model(model_name).architecture
            assert arch is not None
            entry = spec.pools[pool.name]
            served[model_name] = ServedModel(model_name, entry.served_model or model_name, False, entry.vocab_size or arch.vocab_size,
                                             arch.max_context_tokens, "as served by the endpoints")  # fmt: skip
        urls = {pool.name: list(spec.pools[pool.name].urls) for pool in llm_pools.values()}
        names = {pool.name: served[model].path for model, pool in llm_pools.items()}
        return EngineCluster.attach(urls, names), "openai-compatible endpoints (engine not queried)", served
    version = engine_version(options.python)
    served = served_models(llm_pools, models, scale, load_weights(request.weights), workdir / "models")
    launches = engine_launches(llm_pools, served, options, _log_dir(request, workdir))
    devices = {pool.name: pool.devices_per_replica for pool in llm_pools.values()}
    cluster = EngineCluster.start(launches, request.ray_address, options.device_kind, devices, options.threads_per_replica)
    return cluster, version, served


def _endpoints(path: Path | None, llm_pools) -> EndpointsSpec:
    if path is None:
        raise ExecutorError("--backend openai needs --endpoints FILE (the URLs of each LLM pool's replicas)")
    spec = load_spec(path, EndpointsSpec, ExecutorError)
    for pool in llm_pools.values():
        if pool.name not in spec.pools:
            raise ExecutorError(f"{path}: pools: expected an entry for the plan's LLM pool {pool.name!r}, got {sorted(spec.pools)}")
    return spec


def _log_dir(request: RunRequest, workdir: Path) -> Path:
    """Engine logs: beside the outputs when there are any (kept), else in the run's scratch folder."""
    if request.out is not None:
        folder = request.out.parent / f".{request.out.name}.engine-logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()
    return workdir / "logs"


def _drive(runtime: AgentRuntime) -> bool:
    """Run the runtime to its end; True when it was interrupted (SIGINT)."""

    async def main() -> None:
        async with make_client() as client:
            await runtime.run(client)

    try:
        with ctrl_c.python_handler():  # asyncio's: Ctrl-C cancels the run, which stops its calls and keeps its records
            asyncio.run(main())
    except KeyboardInterrupt:
        return True
    return runtime.interrupted


def _frames(runtime: AgentRuntime, cluster: EngineCluster, plan: PlanSpec) -> dict[str, pd.DataFrame]:
    frames = runtime.recorder.frames()
    rows, blocks = [], {}
    for replica in cluster.all():
        pool = plan.pool(replica.pool)
        assert pool is not None
        row = runtime.metrics.replica_rows(replica.pool, replica.index, pool.device, pool.devices_per_replica)
        rows.append(row)
        blocks[replica.pool, replica.index] = row[8]
    for name, work in runtime.work_pools.items():
        pool = plan.pool(name)
        assert pool is not None
        steps = frames["steps"]
        for index in range(len(work.slots)):
            mine = steps[(steps.pool == name) & (steps.replica == index) & (steps.status == "completed")]
            busy = float((mine.end_s - mine.start_s).sum()) / pool.concurrency
            rows.append((name, index, pool.device, 1, busy, len(mine), 0, math.nan, 0, 0))
    frames["replicas"] = pd.DataFrame(rows, columns=list(REPLICA_COLUMNS))
    frames["kv"] = runtime.metrics.kv_frame(blocks)
    frames["engine_samples"] = runtime.metrics.sample_frame()
    frames["engine_metrics"] = runtime.metrics.metric_frame()
    return frames


def _measured(
    summary: dict[str, Any], frames: dict[str, pd.DataFrame], runtime: AgentRuntime, cluster: EngineCluster,
    served: dict[str, ServedModel], context: dict[str, Any], interrupted: bool,
) -> None:  # fmt: skip
    """What only an executed run knows, added to the summary ``hetsim.metrics`` computed."""
    calls, metrics = frames["llm_calls"], frames["engine_metrics"]
    ends = runtime.sessions()
    sessions = summary["sessions"]
    sessions["completed"] = sum(1 for end in ends.values() if end == "completed")
    sessions["failed"] = sum(1 for end in ends.values() if end.startswith("failed"))
    sessions["unfinished"] = sum(1 for end in ends.values() if end == "unfinished")
    preempted = metrics[metrics.name == "vllm:num_preemptions_total"]["value"].sum() if len(metrics) else 0
    summary["llm_calls"] |= {
        "failed": int((calls.status == "failed").sum()),
        "interrupted": int((calls.status == "interrupted").sum()),
        "retried_calls": int((calls.retries > 0).sum()),
        "retries": int(calls.retries.sum()),
        "preemptions": int(preempted),
        "token_counts_exact": int(
            ((calls.input_tokens_served == calls.input_tokens) & (calls.output_tokens_received == calls.output_tokens)).sum()
        ),
    }
    scales = sorted({s.scale for s in served.values()})
    summary["provenance"]["latency"] = (
        f"measured: {context['engine']} on this machine ({host_description()}, {context['device_kind']} engine); "
        f"models {'; '.join(scales)}"
    )
    plan: PlanSpec = context["plan"]
    summary["run"] = {
        "plan": plan.name,
        "backend": cluster.backend,
        "engine": context["engine"],
        "engine_device": context["device_kind"],
        "host": host_description(),
        "plan_devices": sorted({p.device for p in plan.pools}),
        "trace": context["trace"],
        "models": {m: {"path": s.path, "weights": "random" if s.random_weights else "real", "size": s.scale} for m, s in served.items()},
        "replicas": [
            {"pool": r.pool, "replica": r.index, "startup_s": r.startup_s, "lost": r.lost, "restarts": r.restarts,
             "reconnects": r.reconnects}
            for r in cluster.all()
        ],
        "incomplete": interrupted,
        "errors": runtime.progress.errors[-20:],
        "notes": context["notes"],
    }


def _write_whole(request: RunRequest, frames: dict[str, pd.DataFrame], summary: dict[str, Any]) -> list[Path]:
    """Write the records whole (``hetsim.io.outputs``): to ``--out``, or, for an interrupted run,
    to ``<out>.incomplete`` (``--out`` keeps a previous complete run)."""
    assert request.out is not None
    complete = not summary["run"]["incomplete"]
    folder = request.out if complete else incomplete_path(request.out)
    files = {"plan": request.plan, "scenario": request.scenario, "trace": request.trace, "endpoints": request.endpoints,
             "weights": request.weights}  # fmt: skip
    options = {"workload": request.workload, "rate_per_s": request.rate_per_s, "duration_s": request.duration_s,
               "trace_format": request.trace_format, "model": request.model, "seed": request.seed, "scale": request.scale,
               "backend": request.backend}  # fmt: skip
    inputs = {k: v for k, v in files.items() if v is not None} | options
    return write_folder(folder, "--out", lambda staged: write_results(staged, frames, summary), ExecutorError,
                        Provenance("run", inputs, complete))  # fmt: skip


def _exit_code(summary: dict[str, Any], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    calls, sessions = summary["llm_calls"], summary["sessions"]
    if calls["failed"] or calls["interrupted"] or sessions.get("failed") or sessions.get("unfinished") or summary["steps"]["dropped"]:
        return EXIT_FAILED_CALLS
    return 0
