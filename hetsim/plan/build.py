"""Turn a fleet, its demand and the performance model into a PlacementProblem (pure)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace

from hetsim.cost.tco import CostBasis, TcoAssumptions, node_hourly_cost, node_power_w
from hetsim.errors import HetsimError, InfeasiblePlanError
from hetsim.perf.nonllm import VectorIndex
from hetsim.perf.roofline import DevicePerf
from hetsim.plan import candidates as cand
from hetsim.plan.lora import lora_targets
from hetsim.plan.problem import ExclusiveGroup, LatencyPath, NodeType, Option, PlacementProblem, Stage, Transfer
from hetsim.specs.catalog import HardwareCatalog, ModelCatalog
from hetsim.specs.fleet import FleetSpec
from hetsim.specs.hardware import DType
from hetsim.workload.demand import NodeDemand

MODEL_STAGES = {"stt", "tts", "embed", "rerank", "guardrail"}
CPU_STAGES = {"tool", "code_exec"}


@dataclass(frozen=True)
class WorkloadDemand:
    """One workload's demand: session rate, SLA (each objective with the percentile it is met
    at), per-node demand, retrieval indexes."""

    name: str
    rate_per_s: float
    dtype: DType
    nodes: tuple[NodeDemand, ...]
    ttft_s: float | None = None
    tbt_s: float | None = None
    e2e_s: float | None = None
    indexes: dict[str, VectorIndex] = field(default_factory=dict)  # retrieval node -> index
    ttft_percentile: float = 99.0
    tbt_percentile: float = 99.0
    e2e_percentile: float = 99.0


@dataclass
class _Merged:
    """Demand of one stage key summed over workloads (token means weighted by call rate); a
    stage shared by workloads meets the strictest of their objectives at the highest of their
    percentiles."""

    node_type: str
    model: str | None
    dtype: DType
    rate: float = 0.0
    weighted: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    ttft_s: float | None = None
    tbt_s: float | None = None
    ttft_percentile: float = 0.0
    tbt_percentile: float = 0.0
    index: VectorIndex | None = None
    tail: dict[float, float] = field(default_factory=dict)  # prompt tokens at a percentile: the longest of the workloads'
    adapter_rates: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # LoRA adapter -> calls/s naming it
    # acceptance rate of speculative drafts -> output tokens/s of the calls naming it
    acceptance_tokens: dict[float, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, demand: NodeDemand, rate: float, workload: WorkloadDemand) -> None:
        self.rate += rate
        for percentile, tokens in demand.input_tokens_tail:
            self.tail[percentile] = max(self.tail.get(percentile, 0.0), tokens)
        for adapter, share in demand.adapters:
            self.adapter_rates[adapter] += share * rate
        for acceptance, share in demand.acceptance_rates:
            self.acceptance_tokens[acceptance] += share * demand.output_tokens * rate
        for name in ("input_tokens", "output_tokens", "units", "duration_s", "cached_prefix_tokens"):
            value = getattr(demand, name)
            self.weighted[name] += (0.0 if math.isnan(value) else value) * rate
        self.ttft_s = _min(self.ttft_s, workload.ttft_s)
        self.tbt_s = _min(self.tbt_s, workload.tbt_s)
        if workload.ttft_s is not None:
            self.ttft_percentile = max(self.ttft_percentile, workload.ttft_percentile)
        if workload.tbt_s is not None:
            self.tbt_percentile = max(self.tbt_percentile, workload.tbt_percentile)

    def targets(self, headroom: float, fleet: FleetSpec) -> cand.LlmTargets:
        """What this stage's LLM options must meet (percentiles default to 99 without an objective)."""
        opts = fleet.options
        return cand.LlmTargets(
            self.ttft_s, self.tbt_s, headroom, opts.tp_options, opts.batch_options, self.dtype,
            self.ttft_percentile or 99.0, self.tbt_percentile or 99.0, opts.pp_options, opts.prefill_token_budgets,
            opts.ep_options,
        )  # fmt: skip

    def mean_demand(self, key: str) -> NodeDemand:
        mean = {k: v / self.rate for k, v in self.weighted.items()}
        tail = tuple((p, max(t, mean["input_tokens"])) for p, t in sorted(self.tail.items()))
        adapters = tuple((name, rate / self.rate) for name, rate in sorted(self.adapter_rates.items(), key=lambda a: (-a[1], a[0])))
        output = self.weighted["output_tokens"]
        acceptance = tuple((rate, tokens / output) for rate, tokens in sorted(self.acceptance_tokens.items()) if output > 0)
        return NodeDemand(key, self.node_type, self.model, 1.0, 1.0, mean["input_tokens"], mean["output_tokens"],
                          mean["cached_prefix_tokens"], mean["units"], mean["duration_s"], tail, adapters, acceptance)  # fmt: skip


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def stage_key(demand: NodeDemand, dtype: DType) -> str:
    if demand.node_type == "llm":
        return f"llm:{demand.model}:{dtype.value}"
    if demand.node_type in MODEL_STAGES:
        return f"{demand.node_type}:{demand.model}"
    return demand.node_type  # tool, code_exec, retrieval: one pool each


def node_types(fleet: FleetSpec, hardware: HardwareCatalog, tco: TcoAssumptions) -> tuple[NodeType, ...]:
    """Nodes the fleet owns or may add, with the devices they carry and their $/h."""
    basis = CostBasis(fleet.cost_basis) if fleet.cost_basis else None
    entries = [(o.node, o.count, 0) for o in fleet.inventory] + [(c.node, 0, c.max_count) for c in fleet.catalog]
    result = []
    for name, owned, max_extra in entries:
        node = hardware.node(name)
        devices = {node.host_cpus.device: node.host_cpus.count}
        if node.accelerators is not None:
            devices[node.accelerators.device] = devices.get(node.accelerators.device, 0) + node.accelerators.count
        cost = node_hourly_cost(node, hardware.accelerators, tco, basis).total_usd_per_h
        power = node_power_w(node, hardware.accelerators)[1] * tco.pue
        result.append(NodeType(name, devices, cost, owned=owned, max_extra=max_extra, power_w=power))
    return tuple(result)


def build_problem(
    fleet: FleetSpec,
    workloads: list[WorkloadDemand],
    hardware: HardwareCatalog,
    models: ModelCatalog,
    perfs: dict[str, DevicePerf],
    tco: TcoAssumptions,
    headroom: float | None = None,
) -> PlacementProblem:
    """The placement problem of ``workloads`` on ``fleet``."""
    headroom = headroom or fleet.options.headroom
    nodes = node_types(fleet, hardware, tco)
    available = sorted({d for n in nodes for d in n.devices})
    device_perfs = [perfs[d] for d in available]
    merged = _merge(workloads)
    _check_choices(fleet, merged)
    stages, groups, transfers = [], [], []
    latency_matters = any(w.e2e_s is not None for w in workloads)
    for key, m in merged.items():
        made = _stages_for(key, m, fleet, hardware, models, device_perfs, headroom)
        stages += [replace(s, options=_ranked(undominated(s.options, latency_matters), hardware)) for s in made.stages]
        groups += made.groups
        transfers += made.transfers
    paths = tuple(_paths(workloads, {s.name for s in stages}, transfers))
    try:
        return PlacementProblem(tuple(stages), nodes, tuple(transfers), paths, tuple(groups), headroom,
                                max_pools_per_stage=fleet.options.max_pools_per_stage,
                                site_power_w=None if fleet.site_power_kw is None else fleet.site_power_kw * 1000.0)  # fmt: skip
    except InfeasiblePlanError as exc:
        raise InfeasiblePlanError(f"{exc}") from None


def _check_choices(fleet: FleetSpec, merged: dict[str, _Merged]) -> None:
    """The fleet's per-model options name models the demand calls (LoRA: whose calls name adapters)."""
    llms = {m.model for m in merged.values() if m.node_type == "llm"}
    for position, choice in enumerate(fleet.options.speculation):
        if choice.model not in llms:
            raise InfeasiblePlanError(f"fleet options.speculation[{position}].model: expected one of the LLMs the demand "
                                      f"calls ({', '.join(sorted(llms)) or 'none'}), got {choice.model!r}")  # fmt: skip
    adapted = {m.model for m in merged.values() if m.node_type == "llm" and m.adapter_rates}
    for position, lora in enumerate(fleet.options.lora):
        if lora.model not in adapted:
            raise InfeasiblePlanError(f"fleet options.lora[{position}].model: expected one of the LLMs whose calls name "
                                      f"LoRA adapters ({', '.join(sorted(adapted)) or 'none'}), got {lora.model!r}")  # fmt: skip


def undominated(options: tuple[Option, ...], latency_matters: bool) -> tuple[Option, ...]:
    """The options no other option beats: one on the same device with as many devices per
    replica, at least the capacity and (when an end-to-end path reads latencies) at most the
    latency, at no extra cost. Dropping the others changes no optimum (costs depend on devices
    and replicas only) and keeps the model small; ties keep the first."""
    kept: list[Option] = []
    for option in options:
        def beats(other: Option, option: Option = option) -> bool:
            return (other.device == option.device and other.devices_per_replica == option.devices_per_replica
                    and other.usd_per_unit <= option.usd_per_unit
                    and other.usd_per_h_per_replica <= option.usd_per_h_per_replica
                    and other.capacity_per_replica >= option.capacity_per_replica
                    and (not latency_matters or other.latency_s <= option.latency_s))  # fmt: skip

        if any(beats(other) for other in kept) or any(
            beats(other) and not beats(option, other) for other in options if other is not option
        ):
            continue
        kept.append(option)
    return tuple(kept)


# $/h of tie-break per $ of device purchase price a replica occupies: ~1e-6 $/h for a $1,000
# CPU socket, ~3e-5 $/h for an H100; far below any price difference the objective sees.
TIE_BREAK_PER_PURCHASE_USD = 1e-9


def _ranked(options: tuple[Option, ...], hardware: HardwareCatalog) -> tuple[Option, ...]:
    """Options carrying the capital their replicas occupy, to rank placements of equal cost."""
    def price(device: str) -> float:
        quantity = hardware.accelerator(device).price.purchase
        return 0.0 if quantity is None else quantity.si

    return tuple(replace(o, tie_break_per_replica=TIE_BREAK_PER_PURCHASE_USD * o.devices_per_replica * price(o.device))
                 for o in options)  # fmt: skip


def _merge(workloads: list[WorkloadDemand]) -> dict[str, _Merged]:
    merged: dict[str, _Merged] = {}
    for workload in workloads:
        for demand in workload.nodes:
            if demand.node_type == "external":
                continue
            key = stage_key(demand, workload.dtype)
            entry = merged.setdefault(key, _Merged(demand.node_type, demand.model, workload.dtype))
            entry.add(demand, workload.rate_per_s * demand.visits_per_session, workload)
            if demand.node_type == "retrieval":
                index = workload.indexes.get(demand.node)
                if index is not None and (entry.index is None or index.bytes > entry.index.bytes):
                    entry.index = index
    return merged


@dataclass
class _Made:
    stages: list[Stage] = field(default_factory=list)
    groups: list[ExclusiveGroup] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


def _stages_for(key: str, m: _Merged, fleet: FleetSpec, hardware, models, perfs, headroom: float) -> _Made:
    demand = m.mean_demand(key)
    made = _Made()
    if m.node_type == "llm":
        return _llm_stages(key, m, demand, fleet, hardware, models, perfs, headroom)
    if m.node_type in MODEL_STAGES:
        options = cand.model_stage_options(models.model(m.model), perfs, demand, headroom)
    elif m.node_type in CPU_STAGES:
        options = cand.cpu_work_options(perfs, demand, headroom)
    elif m.node_type == "retrieval":
        if m.index is None:  # a search is priced by its index: no default size stands in for it
            raise InfeasiblePlanError(f"stage {key!r}: no vector index described; expected the workload's retrieval "
                                      f"node to give index_vectors and dimension, got none")  # fmt: skip
        options = cand.retrieval_options(perfs, m.index, headroom)
    else:
        raise InfeasiblePlanError(f"stage {key!r}: the planner does not place {m.node_type} steps")
    # one pool per non-LLM stage: the simulator and executor route such work to one pool
    made.stages.append(Stage(key, m.rate, tuple(options), shareable=False,
                             detail={"node_type": m.node_type, "model": m.model}))  # fmt: skip
    return made


def _speculation_choices(model: str, fleet: FleetSpec, models: ModelCatalog) -> tuple:
    """The fleet's speculation choices for ``model``, each with its draft model's spec."""
    choices = []
    for position, choice in enumerate(fleet.options.speculation):
        if choice.model != model:
            continue
        try:
            draft = models.model(choice.draft_model) if choice.draft_model is not None else None
        except HetsimError as exc:
            raise InfeasiblePlanError(f"fleet options.speculation[{position}].draft_model: {exc}") from None
        choices.append((choice, draft))
    return tuple(choices)


def _llm_stages(
    key, m: _Merged, demand: NodeDemand, fleet: FleetSpec, hardware, models, perfs, headroom: float
) -> _Made:
    model = models.model(m.model)
    opts = fleet.options
    targets = replace(m.targets(headroom, fleet), speculation=_speculation_choices(model.name, fleet, models),
                      lora=lora_targets(model, demand, fleet, hardware))  # fmt: skip
    detail = {"node_type": "llm", "model": model.name, "dtype": m.dtype.value, "ttft_s": m.ttft_s, "tbt_s": m.tbt_s,
              "ttft_percentile": targets.ttft_percentile, "tbt_percentile": targets.tbt_percentile}  # fmt: skip
    made = _Made()
    aggregated = Stage(
        f"{key}:aggregated", m.rate, tuple(cand.aggregated_options(model, perfs, demand, targets)), f"{key}", detail
    )
    if not opts.disaggregation:
        made.stages.append(replace(aggregated, group=None))
        return made
    try:
        link = hardware.link(fleet.kv_link)
    except HetsimError as exc:
        raise InfeasiblePlanError(f"fleet kv_link: {exc}") from None
    bandwidth, latency = link.bandwidth.si, link.latency.si
    prefill = Stage(
        f"{key}:prefill", m.rate, tuple(cand.prefill_options(model, perfs, demand, targets, bandwidth)), key, detail
    )
    decode = Stage(f"{key}:decode", m.rate, tuple(cand.decode_options(model, perfs, demand, targets)), key, detail)
    structures = []
    if aggregated.options:
        made.stages.append(aggregated)
        structures.append((aggregated.name,))
    if prefill.options and decode.options:
        made.stages += [prefill, decode]
        structures.append((prefill.name, decode.name))
        transfer_s = cand.kv_transfer_s(model, demand, m.dtype, bandwidth, latency)
        made.transfers.append(Transfer(prefill.name, decode.name, transfer_s, only_if_devices_differ=False))
    if not structures:
        made.stages.append(aggregated)  # no options: the problem reports it
        return made
    made.groups.append(ExclusiveGroup(key, tuple(structures)))
    return made


def _paths(workloads: list[WorkloadDemand], stage_names: set[str], transfers: list[Transfer]) -> list[LatencyPath]:
    paths = []
    for workload in workloads:
        if workload.e2e_s is None:
            continue
        visits: dict[str, float] = defaultdict(float)
        fixed = 0.0
        for demand in workload.nodes:
            if demand.node_type == "external":
                fixed += demand.critical_visits_per_session * (
                    0.0 if math.isnan(demand.duration_s) else demand.duration_s
                )
                continue
            key = stage_key(demand, workload.dtype)
            for name in (key, f"{key}:aggregated", f"{key}:prefill", f"{key}:decode"):
                if name in stage_names:
                    visits[name] += demand.critical_visits_per_session
        paths.append(LatencyPath(f"e2e:{workload.name}", tuple(sorted(visits.items())), workload.e2e_s, fixed))
    return paths
