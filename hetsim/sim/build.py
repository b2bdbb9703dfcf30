"""Build a Simulation from a plan, catalogs and a trace; every plan error surfaces here,
before any event runs."""

from __future__ import annotations

from array import array

import numpy as np
import pandas as pd

from hetsim.errors import HetsimError, ScenarioError
from hetsim.perf.expert import MoeOptions
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.lora import LoraKernels, adapter_bytes, slot_bytes_per_device
from hetsim.perf.nonllm import IndexKind, VectorIndex, model_amount, model_time, vector_search_time
from hetsim.perf.roofline import DevicePerf, serving_perf
from hetsim.perf.speculative import SpeculativeSteps, speculating
from hetsim.perf.transformer import Precision, Shard, kv_bytes_per_token
from hetsim.sim.autoscale import Autoscaler, ScaledPool
from hetsim.sim.engine import LlmRoute, ServiceTime, SimConfig, Simulation, WorkPool, WorkQueue
from hetsim.sim.environment import Environment
from hetsim.sim.extensions import scheduler_factory
from hetsim.sim.kv_link import KvLinks
from hetsim.sim.llm_server import LlmServer
from hetsim.sim.lora import AdapterSlots
from hetsim.sim.policies import RouterState, find_policy
from hetsim.sim.scheduler import Scheduler
from hetsim.sim.trace_tables import build_tables
from hetsim.specs.calibration import CalibrationSpec
from hetsim.specs.catalog import HardwareCatalog, ModelCatalog
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelKind
from hetsim.specs.plan import LlmStage, PlanSpec, PoolSpec, WeightSource
from hetsim.workload.trace import TRACE_COLUMNS

WORK_NODE_TYPES = {"tool", "code_exec", "retrieval"}


def _perf(hardware: HardwareCatalog, calibrations: dict[str, CalibrationSpec], pool: PoolSpec) -> DevicePerf:
    try:
        device = hardware.accelerator(pool.device)
    except HetsimError as exc:
        raise ScenarioError(f"plan pool {pool.name!r}: {exc}") from None
    return serving_perf(device, calibrations.get(device.name))


def llm_replica(pool: PoolSpec, hardware: HardwareCatalog, models: ModelCatalog, calibrations: dict) -> LlmReplica:
    """The replica model of an LLM pool; a model that does not fit is a ScenarioError."""
    assert pool.llm is not None
    try:
        model = models.model(pool.llm.model)
        llm = pool.llm
        limits = ServingLimits(
            memory_utilization=llm.memory_utilization,
            max_batch_tokens=llm.max_batch_tokens,
            max_num_seqs=llm.max_num_seqs,
            adapter_bytes_per_device=_slot_bytes(pool, model),
        )
        replica = LlmReplica(
            model,
            _perf(hardware, calibrations, pool),
            Shard(pool.tp, pool.pp, pool.ep, pool.dp_attention, llm.redundant_experts),
            Precision.uniform(DType(llm.dtype)),
            limits,
            MoeOptions(balancing=llm.expert_balancing, overlap=llm.overlap),
        )
        _ = replica.kv_capacity_tokens  # raises when the model does not fit
    except HetsimError as exc:
        raise ScenarioError(f"plan pool {pool.name!r}: {exc}") from None
    return replica


def speculative_replica(pool: PoolSpec, replica: LlmReplica, models: ModelCatalog) -> tuple[LlmReplica, SpeculativeSteps | None]:
    """The pool's replica with its speculative decoding (``hetsim.perf.speculative.speculating``),
    or ``replica`` and None without; a proposer that does not fit or an unknown draft model is a
    ScenarioError."""
    assert pool.llm is not None
    spec = pool.llm.speculation
    if spec is None:
        return replica, None
    try:
        return speculating(replica, spec, models.model(spec.draft_model) if spec.draft_model is not None else None)
    except HetsimError as exc:
        raise ScenarioError(f"plan pool {pool.name!r}: llm.speculation: {exc}") from None


def _slot_bytes(pool: PoolSpec, model) -> float:
    """Device memory a pool's LoRA slots take (0 without ``lora``)."""
    assert pool.llm is not None
    lora = pool.llm.lora
    if lora is None or model.architecture is None:
        return 0.0
    dtype = Precision.uniform(DType(pool.llm.dtype)).activations
    return slot_bytes_per_device(model.architecture, lora.max_loras, lora.max_lora_rank, lora.target_modules, dtype,
                                 pool.tp, pool.pp)  # fmt: skip


def _adapter_slots(server: LlmServer, pool: PoolSpec, replica: LlmReplica, kernels: LoraKernels, hardware,
                   router: RouterState) -> AdapterSlots:  # fmt: skip
    """The LoRA adapters of one replica of ``pool``: its slots, loads and host-memory cache."""
    assert pool.llm is not None and pool.llm.lora is not None
    lora = pool.llm.lora
    dtype = replica.precision.activations
    per_device = adapter_bytes(replica.arch, lora.rank, lora.target_modules, dtype, pool.tp, pool.pp)
    whole = adapter_bytes(replica.arch, lora.rank, lora.target_modules, dtype)
    storage_s = 0.0 if lora.storage_gbytes_per_s is None else whole / (lora.storage_gbytes_per_s * 1e9)
    return AdapterSlots(server, kernels, max_loras=lora.max_loras, cpu_loras=lora.cpu_loras,
                        load_s=per_device / _host_bandwidth(pool, hardware), storage_s=storage_s,
                        router=router)  # fmt: skip


def _host_bandwidth(pool: PoolSpec, hardware: HardwareCatalog) -> float:
    """Bytes/s one device copies an adapter from host memory at: the plan's measured figure, its
    ``lora.host_link``, or the node profile's ``host_link``.

    Raises:
        ScenarioError: none of them is given.
    """
    assert pool.llm is not None and pool.llm.lora is not None
    lora = pool.llm.lora
    if lora.load_gbytes_per_s is not None:
        return lora.load_gbytes_per_s * 1e9
    name = lora.host_link
    if name is None and pool.node is not None:
        try:
            name = hardware.node(pool.node).host_link
        except HetsimError as exc:
            raise ScenarioError(f"plan pool {pool.name!r}: lora: {exc}") from None
    if name is None:
        raise ScenarioError(f"plan pool {pool.name!r}: lora: expected host_link, load_gbytes_per_s or a node whose "
                            f"profile has host_link (the link adapters are copied over), got none")  # fmt: skip
    try:
        return hardware.link(name).bandwidth.si
    except HetsimError as exc:
        raise ScenarioError(f"plan pool {pool.name!r}: lora.host_link: {exc}") from None


def build_simulation(
    plan: PlanSpec,
    trace: pd.DataFrame | None,
    hardware: HardwareCatalog,
    models: ModelCatalog,
    calibrations: dict[str, CalibrationSpec] | None = None,
    *,
    block_size_tokens: int | None = None,
    config: SimConfig | None = None,
) -> Simulation:
    """A ready-to-run simulation of ``trace`` on ``plan`` (None: no trace, only the calls SimPy
    processes of yours issue, ``Simulation.llm_call``)."""
    calibrations = calibrations or {}
    if trace is None:
        trace = pd.DataFrame({column: pd.Series(dtype=object) for column in TRACE_COLUMNS})
    env = Environment()
    sim = Simulation(env, build_tables(trace, block_size_tokens), config or SimConfig())
    _build_llm_routes(sim, plan, hardware, models, calibrations)
    _build_work_pools(sim, plan, hardware, models, calibrations)
    _check_coverage(sim, trace)
    scaled = [_scaled_pool(sim, pool, hardware, models, calibrations) for pool in plan.pools if pool.autoscale]
    if scaled:
        sim.autoscaler = Autoscaler(sim.calendar, scaled, sim.work_left, sim.recent_ttft)
    return sim


def built_replicas(pool: PoolSpec) -> int:
    """Replicas the simulator builds for ``pool``: all it may scale to (those beyond the ones up
    at the start begin off)."""
    return pool.autoscale.max_replicas if pool.autoscale is not None else pool.replicas


def _scaled_pool(sim: Simulation, pool: PoolSpec, hardware, models, calibrations) -> ScaledPool:
    """The autoscaler's view of ``pool``: its replicas' routing slots and counters, its cold start."""
    spec = pool.autoscale
    assert spec is not None
    if pool.llm is not None:
        route = sim.llm_routes[models.model(pool.llm.model).name]
        front = pool.llm.stage != LlmStage.DECODE
        servers = route.servers if front else route.decode_servers
        router = route.state if front else route.decode_state
        mine = [server for server, name in zip(servers, route.server_pools if front else route.decode_server_pools,
                                               strict=True) if name == pool.name]  # fmt: skip
        weight_bytes = llm_replica(pool, hardware, models, calibrations).weight_bytes_per_device
        with _about(pool):
            seconds, parts = cold_start(pool, weight_bytes, hardware)
        occupancy = None if pool.llm.stage == LlmStage.PREFILL else (lambda i: _occupancy(mine[i]))
        return ScaledPool(pool.name, spec, router, [s._slot for s in mine], lambda i: mine[i].stats.busy_s,
                          lambda i: len(mine[i].waiting), seconds, parts, pool.replicas, occupancy,
                          first_stage=front)  # fmt: skip
    if spec.policy == "sla-headroom":
        raise ScenarioError(f"plan pool {pool.name!r}: autoscale.policy: expected target-utilization, queue-length or "
                            "your own for a pool without an LLM (sla-headroom reads TTFT), got 'sla-headroom'")  # fmt: skip
    work = sim.work_pools[pool.name]
    weight_bytes = sum(_model_weight_bytes(models.model(name)) for name in pool.models)
    with _about(pool):
        seconds, parts = cold_start(pool, weight_bytes, hardware)
    capacity = pool.concurrency
    return ScaledPool(pool.name, spec, work.state, [q._slot for q in work.queues],
                      lambda i: work.busy_s[i] / capacity, lambda i: len(work.queues[i].waiting), seconds, parts,
                      pool.replicas)  # fmt: skip


def _occupancy(server: LlmServer) -> float:
    """How full an LLM replica is: the larger of its KV blocks in use and its batch slots taken."""
    kv = 1.0 - server.free_blocks / server.total_blocks if server.total_blocks else 1.0
    return max(kv, len(server.running) / server.max_num_seqs)


def _model_weight_bytes(model) -> float:
    return float(model.parameters) * DType.BF16.bytes_per_element


def cold_start(pool: PoolSpec, weight_bytes_per_device: float, hardware: HardwareCatalog) -> tuple[float, dict[str, float]]:
    """Seconds from starting a replica of ``pool`` to its serving: provisioning, engine start, and
    its devices reading their weights at once, each at its share of the node's read bandwidth
    (local drives or NICs, by the profile), or at the plan's measured bandwidth for the replica.

    Raises:
        ScenarioError: weights to load and no bandwidth to load them with.
    """
    spec = pool.autoscale
    assert spec is not None
    parts = {"provision_s": spec.provision_s, "engine_start_s": spec.engine_start_s, "weights_s": 0.0}
    if weight_bytes_per_device > 0:
        if spec.weight_read_gbytes_per_s is not None:
            parts["weights_s"] = weight_bytes_per_device * pool.devices_per_replica / (spec.weight_read_gbytes_per_s * 1e9)
        else:
            parts["weights_s"] = weight_bytes_per_device / _read_bandwidth_per_device(pool, hardware)
    return sum(parts.values()), parts


def _read_bandwidth_per_device(pool: PoolSpec, hardware: HardwareCatalog) -> float:
    """One device's share of its node's bandwidth to where weights are kept (bytes/s)."""
    spec = pool.autoscale
    assert spec is not None
    where = "autoscale.weights_from"
    if pool.node is None:
        raise ScenarioError(f"{where}: expected the pool's 'node' (its {spec.weights_from.value} bandwidth times the "
                            "weight load) or autoscale.weight_read_gbytes_per_s, got neither")  # fmt: skip
    try:
        node = hardware.node(pool.node)
    except HetsimError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    devices = (node.accelerators or node.host_cpus).count
    if spec.weights_from == WeightSource.STORAGE:
        if node.storage is None:
            raise ScenarioError(f"{where}: expected node {node.name!r} to profile 'storage.read_bandwidth', got no "
                                "storage (use network, or autoscale.weight_read_gbytes_per_s)")  # fmt: skip
        return node.storage.read_bandwidth.si / devices
    if node.nics is None:
        raise ScenarioError(f"{where}: expected node {node.name!r} to profile 'nics', got none (use storage, or "
                            "autoscale.weight_read_gbytes_per_s)")  # fmt: skip
    try:
        link = hardware.link(node.nics.link)
    except HetsimError as exc:
        raise ScenarioError(f"{where}: node {node.name!r}: {exc}") from None
    return link.bandwidth.si * node.nics.count / devices


def _build_llm_routes(sim: Simulation, plan: PlanSpec, hardware, models, calibrations) -> None:
    """One route per LLM model: its aggregated pools, or its prefill pools, links and decode pools."""
    by_model: dict[str, dict[LlmStage, list[PoolSpec]]] = {}
    for pool in plan.pools:
        if pool.llm is None:
            continue
        try:
            model_name = models.model(pool.llm.model).name
        except HetsimError as exc:
            raise ScenarioError(f"plan pool {pool.name!r}: {exc}") from None
        by_model.setdefault(model_name, {}).setdefault(pool.llm.stage, []).append(pool)
    for model_name, stages in by_model.items():
        aggregated, prefill = stages.get(LlmStage.AGGREGATED, []), stages.get(LlmStage.PREFILL, [])
        decode = stages.get(LlmStage.DECODE, [])
        if aggregated and (prefill or decode):
            raise ScenarioError(f"plan pool {aggregated[0].name!r}: model {model_name!r} is served both aggregated "
                                f"and disaggregated; choose one")  # fmt: skip
        if decode and not prefill:
            raise ScenarioError(f"plan pool {decode[0].name!r}: decode pool has no matching prefill pool")
        if prefill and not decode:
            raise ScenarioError(f"plan pool {prefill[0].name!r}: a prefill pool needs a kv_transfers entry naming its decode pool")
        sim.llm_routes[model_name] = _llm_route(sim, plan, aggregated or prefill, decode, hardware, models, calibrations)


def _replicas_of(sim: Simulation, pools: list[PoolSpec], on_done, state: RouterState, hardware, models, calibrations):
    """The replicas of ``pools`` as one list, with each replica's pool, index there and weight."""
    servers, names, local, weights = [], [], [], []
    for pool in pools:
        replica = llm_replica(pool, hardware, models, calibrations)
        replica, speculation = speculative_replica(pool, replica, models)
        assert pool.llm is not None
        lora = pool.llm.lora
        kernels = None
        if lora is not None:
            with _about(pool):
                try:
                    kernels = LoraKernels(replica.perf, replica.arch, lora.max_lora_rank, lora.target_modules,
                                          replica.precision.activations, pool.tp, pool.pp)  # fmt: skip
                except HetsimError as exc:
                    raise ScenarioError(str(exc)) from None
        with _about(pool):
            make_scheduler = scheduler_factory(pool.llm.scheduler, pool.llm.token_budget)
        for index in range(built_replicas(pool)):
            with _about(pool):
                scheduler = make_scheduler()
            server = _server(sim.env, replica, pool, on_done, sim.config.max_skip, sim.tables.prefix_block_tokens,
                             state, scheduler, speculation)  # fmt: skip
            if kernels is not None:
                server.lora = _adapter_slots(server, pool, replica, kernels, hardware, state)
            servers.append(server)
            names.append(pool.name)
            local.append(index)
            weights.append((pool.weight or 1.0) / pool.replicas)
    if len(pools) > 1:
        state.weights = weights
    return servers, names, local


def _policy_name(pools: list[PoolSpec]) -> str:
    """A pool's own routing (checked here: a dotted path must import); a stage shared by pools
    on different devices is routed by weight."""
    if len(pools) > 1:
        return "weighted-least-outstanding"
    with _about(pools[0]):
        find_policy(pools[0].routing)
    return pools[0].routing


class _about:
    """Prefix a ScenarioError raised inside with the plan pool it is about."""

    def __init__(self, pool: PoolSpec) -> None:
        self.pool = pool

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> None:
        if isinstance(error, ScenarioError) and not str(error).startswith("plan "):
            raise ScenarioError(f"plan pool {self.pool.name!r}: {error}") from None


def _llm_route(sim: Simulation, plan: PlanSpec, front: list[PoolSpec], decode: list[PoolSpec], hardware, models,
               calibrations) -> LlmRoute:  # fmt: skip
    state = RouterState()
    servers, names, local = _replicas_of(sim, front, sim.on_llm_done, state, hardware, models, calibrations)
    first = llm_replica(front[0], hardware, models, calibrations)
    route = LlmRoute(
        " + ".join(p.name for p in front),
        servers,
        _policy_name(front),
        state=state,
        request_overhead_s=first.request_overhead_s,
        decode_policy_name=_policy_name(decode) if decode else None,  # the decode pools' own
        server_pools=names,
        server_local=local,
    )
    if not decode:
        return route
    transfers = {t.prefill_pool: t for t in plan.kv_transfers}
    for pool in front:
        if pool.name not in transfers:
            raise ScenarioError(f"plan pool {pool.name!r}: a prefill pool needs a kv_transfers entry naming its decode pool")
    named = {t.decode_pool for t in plan.kv_transfers}
    for pool in decode:
        if pool.name not in named:
            raise ScenarioError(f"plan pool {pool.name!r}: decode pool has no matching prefill pool")
    transfer = transfers[front[0].name]
    link = _link(hardware, transfer.link, front[0].name)
    decode_servers, decode_names, decode_local = _replicas_of(
        sim, decode, sim.on_decode_done, route.decode_state, hardware, models, calibrations
    )
    route.set_decode(" + ".join(p.name for p in decode), decode_servers, decode_names, decode_local)
    route.kv_links = KvLinks(
        len(servers),
        link.bandwidth.si * transfer.links_per_replica,
        link.latency.si,
        kv_bytes_per_token(first.arch, first.precision.kv_cache),
    )
    return route


def _link(hardware: HardwareCatalog, name: str, pool: str):
    try:
        return hardware.link(name)
    except HetsimError as exc:
        raise ScenarioError(f"plan kv_transfers of pool {pool!r}: {exc}") from None


def _server(
    env,
    replica: LlmReplica,
    pool: PoolSpec,
    on_done,
    max_skip: int,
    prefix_block_tokens: int,
    router: RouterState,
    scheduler: Scheduler,
    speculation: SpeculativeSteps | None = None,
) -> LlmServer:
    """A replica of ``pool``, joining its routing state ``router``, with its ``scheduler``."""
    assert pool.llm is not None
    return LlmServer(
        env,
        replica,
        pool.llm.stage,
        on_done,
        prefix_caching=pool.llm.prefix_caching,
        preemption=pool.llm.preemption,
        prefix_block_tokens=prefix_block_tokens,
        max_skip=max_skip,
        router=router,
        scheduler=scheduler,
        speculation=speculation,
    )


def _build_work_pools(sim: Simulation, plan: PlanSpec, hardware, models, calibrations) -> None:
    for pool in plan.pools:
        if pool.llm is not None:
            continue
        perf = _perf(hardware, calibrations, pool)
        for model_name in pool.models:
            try:
                model = models.model(model_name)
            except HetsimError as exc:
                raise ScenarioError(f"plan pool {pool.name!r}: {exc}") from None
            if model.kind == ModelKind.LLM:
                raise ScenarioError(f"plan pool {pool.name!r}: {model.name} is an LLM; serve it from an 'llm' pool")
            _claim(sim, model.name, pool.name)
        for node_type in pool.node_types:
            if node_type not in WORK_NODE_TYPES | {"stt", "tts", "embed", "rerank", "guardrail"}:
                raise ScenarioError(f"plan pool {pool.name!r}: node_types: unknown node type {node_type!r}")
            _claim(sim, node_type, pool.name)
        router = RouterState()
        with _about(pool):
            find_policy(pool.routing)
        sim.work_pools[pool.name] = WorkPool(
            pool.name,
            [WorkQueue(pool.concurrency, router) for _ in range(built_replicas(pool))],
            _service_model(sim, pool, perf, models),
            pool.routing,
            state=router,
            busy_s=[0.0] * built_replicas(pool),
        )


def _claim(sim: Simulation, key: str, pool_name: str) -> None:
    if key in sim.work_for:
        raise ScenarioError(f"plan pool {pool_name!r}: {key!r} is already served by pool {sim.work_for[key]!r}")
    sim.work_for[key] = pool_name


def _service_model(sim: Simulation, pool: PoolSpec, perf: DevicePerf, models: ModelCatalog) -> ServiceTime:
    """Seconds a step takes on one slot of this pool: a model's roofline time, an index
    search, or the duration the trace measured for a tool."""
    frame = sim.tables.frame
    model_names = sim._model
    units = frame["units"].to_numpy(dtype=float, na_value=np.nan)
    duration = array("d", frame["duration_s"].to_numpy(dtype=float, na_value=np.nan).tobytes())  # gives floats
    tokens = frame["input_tokens"].to_numpy()
    index = None
    if pool.vector_index is not None:
        spec = pool.vector_index
        index = VectorIndex(spec.vectors, spec.dimension, DType(spec.dtype), IndexKind(spec.kind))

    def modelled(n: int) -> float:
        model_name = model_names[n]
        if model_name:
            model = models.model(model_name)
            return model_time(perf, model, model_amount(model, units[n], int(tokens[n]))).seconds
        assert index is not None  # ServiceTime sends only model steps and indexed retrievals here
        return vector_search_time(perf, index).seconds

    names = sim.tables.node_type_names
    retrieval = names.index("retrieval") if index is not None and "retrieval" in names else -1
    return ServiceTime(model_names, sim._node_type_code, duration, modelled, retrieval)


def _check_coverage(sim: Simulation, trace: pd.DataFrame) -> None:
    """Every stage the trace needs has a pool, and every tool step has a duration."""
    kinds = pd.DataFrame({"node_type": trace["node_type"].astype(str), "model": trace["model"]}).drop_duplicates()
    pairs = list(zip(kinds["node_type"].tolist(), kinds["model"].tolist(), strict=True))
    for model in sorted({m for t, m in pairs if t == "llm"}):
        if model not in sim.llm_routes:
            raise ScenarioError(f"plan: no pool serves LLM model {model!r}, which the trace needs")
    for node_type, model in set(pairs):
        if node_type in ("llm", "external"):
            continue
        if (isinstance(model, str) and model in sim.work_for) or node_type in sim.work_for:
            continue
        of_model = f" of {model}" if isinstance(model, str) else ""
        raise ScenarioError(f"plan: no pool serves {node_type} steps{of_model}, which the trace needs")
