"""Plan specs: which pools of which hardware serve which stages of the workload.

A plan is what the planner emits and what the simulator and executor read. A *pool* is a
set of identical replicas; a replica is a device group (device type x tp x dp_attention x pp,
routed experts split over ep of them) on one node type. Trace steps are matched to pools by
model (model steps) or by node type (tools, retrieval, code execution). An LLM is served either by aggregated pools, or by prefill pools and
decode pools joined by a KV-transfer link (disaggregated). A stage is usually one pool; when
several pools on different devices share a stage, each carries its ``weight`` (its share of
the stage's traffic, as the planner sized it) and the router weighs their replicas by it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from hetsim.specs.common import FrozenModel, SchemaVersion
from hetsim.specs.parallel import CommOverlap


class LlmStage(StrEnum):
    AGGREGATED = "aggregated"
    PREFILL = "prefill"
    DECODE = "decode"


class RoutingPolicy(StrEnum):
    """The routing policies hetsim ships (``hetsim.sim.policies``); a pool may also name its own
    by dotted path."""

    ROUND_ROBIN = "round-robin"
    LEAST_OUTSTANDING = "least-outstanding"
    PREFIX_AWARE = "prefix-aware"
    WEIGHTED_LEAST_OUTSTANDING = "weighted-least-outstanding"
    LEAST_OUTSTANDING_TOKENS = "least-outstanding-tokens"
    ADAPTER_AFFINITY = "adapter-affinity"


SCHEDULERS = ("chunked-prefill", "prefill-first", "decode-priority")
"""The iteration schedulers hetsim ships (``hetsim.sim.scheduler``); the first is the default."""

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def is_dotted_path(text: str) -> bool:
    """Whether ``text`` names an object by dotted path, ``package.module:name``."""
    return _DOTTED.fullmatch(text) is not None


def _named_or_dotted(choices: tuple[str, ...]):
    def check(value: str) -> str:
        if value not in choices and not is_dotted_path(value):
            raise ValueError(
                f"expected one of {', '.join(choices)} or a dotted path 'package.module:name', got {value!r}"
            )
        return value

    return check


Routing = Annotated[str, AfterValidator(_named_or_dotted(tuple(RoutingPolicy)))]
"""A routing policy: a shipped one's name, or yours by dotted path."""
SchedulerName = Annotated[str, AfterValidator(_named_or_dotted(SCHEDULERS))]
"""An iteration scheduler: a shipped one's name, or yours by dotted path."""


class Preemption(StrEnum):
    RECOMPUTE = "recompute"
    SWAP = "swap"


SPEC_METHODS = ("draft", "eagle", "mtp", "ngram")
"""Speculative decoding methods (``hetsim.perf.speculative.SpecMethod``)."""


class SpeculationSpec(FrozenModel):
    """Speculative decoding on a pool (``hetsim.perf.speculative``): a proposer drafts ``tokens``
    per step, the model verifies them in one wider step, and each is accepted with
    ``acceptance_rate``. MTP defaults to DeepSeek-V3's measured figures (1 token, 0.85); the
    others depend on the proposer and the workload and must be given (measure them: vLLM's
    ``spec_decode`` acceptance metrics, SGLang's accept length)."""

    method: str = Field(description="draft (a smaller model), eagle (an EAGLE-style head), mtp or ngram (prompt lookup)")
    tokens: int | None = Field(default=None, ge=1, le=16, description="tokens proposed per step (mtp: 1)")
    acceptance_rate: float | None = Field(
        default=None, ge=0, le=1, description="per-token acceptance of the proposals (mtp: 0.85, DeepSeek-V3 report 5.4.3)"
    )
    draft_model: str | None = Field(default=None, description="the draft model's catalog name (method draft only)")

    @model_validator(mode="after")
    def _complete(self) -> SpeculationSpec:
        if self.method not in SPEC_METHODS:
            raise ValueError(f"speculation.method: expected one of {', '.join(SPEC_METHODS)}, got {self.method!r}")
        if (self.method == "draft") != (self.draft_model is not None):
            raise ValueError(f"speculation.draft_model: expected it with method 'draft' and only then, got "
                             f"{self.draft_model!r} with method {self.method!r}")  # fmt: skip
        if self.method != "mtp":
            missing = [name for name in ("tokens", "acceptance_rate") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"speculation.{missing[0]}: expected a value for method {self.method!r} (it depends on "
                                 "the proposer and the workload; only mtp has a published default), got none")  # fmt: skip
        return self

    @property
    def proposed(self) -> int:
        return self.tokens if self.tokens is not None else 1

    @property
    def rate(self) -> float:
        """The acceptance rate, MTP's published default when none is given."""
        return self.acceptance_rate if self.acceptance_rate is not None else MTP_ACCEPTANCE_RATE_DEFAULT


MTP_ACCEPTANCE_RATE_DEFAULT = 0.85
"""DeepSeek-V3's measured acceptance of its MTP module's second token, "between 85% and 90%"
(arXiv 2412.19437 section 5.4.3): the lower end (``hetsim.perf.speculative.MTP_ACCEPTANCE_RATE``)."""


class LoraModule(StrEnum):
    """A linear module a LoRA adapter may target, in PEFT's ``target_modules`` spelling."""

    Q_PROJ = "q_proj"
    K_PROJ = "k_proj"
    V_PROJ = "v_proj"
    O_PROJ = "o_proj"
    GATE_PROJ = "gate_proj"
    UP_PROJ = "up_proj"
    DOWN_PROJ = "down_proj"


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``--max-lora-rank`` values vLLM accepts (vllm-project/vllm ``vllm/config/lora.py``,
``MaxLoRARanks``)."""


class LoraServing(FrozenModel):
    """Multi-LoRA serving of many fine-tunes of the pool's base model (vLLM's semantics,
    ``vllm/config/lora.py``): a batch holds at most ``max_loras`` distinct adapters, each in a
    GPU slot of ``max_lora_rank`` (reserved at start, so it comes out of the KV cache); an
    absent adapter is copied into a free or least recently used idle slot over the host link
    before its call runs; ``max_cpu_loras`` adapters stay in host memory."""

    max_loras: int = Field(default=1, ge=1, description="adapters in GPU slots at once, a batch's distinct ones (vLLM default 1)")
    max_lora_rank: int = Field(default=16, ge=1, description="rank of a GPU slot; smaller adapters are padded (vLLM default 16)")
    adapter_rank: int | None = Field(
        default=None, ge=1, description="rank of the adapters served (bytes loaded); default max_lora_rank"
    )
    target_modules: tuple[LoraModule, ...] = Field(
        default=tuple(LoraModule), min_length=1,
        description="modules the adapters adapt (PEFT names); vLLM wraps every supported one: all seven",
    )  # fmt: skip
    max_cpu_loras: int | None = Field(
        default=None, ge=1, description="adapters cached in host memory (vLLM default: max_loras)"
    )
    host_link: str | None = Field(
        default=None, description="link profile an adapter is copied over (default: the node's host_link)"
    )
    load_gbytes_per_s: float | None = Field(
        default=None, gt=0, description="a device's measured host-to-device copy bandwidth (GB/s), instead of a link"
    )
    storage_gbytes_per_s: float | None = Field(
        default=None, gt=0,
        description="read bandwidth (GB/s) of an adapter missing from host memory; none: host-resident adapters",
    )  # fmt: skip

    @model_validator(mode="after")
    def _consistent(self) -> LoraServing:
        if self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"lora.max_lora_rank: expected one of {list(VLLM_LORA_RANKS)} (vLLM's), got {self.max_lora_rank}")
        if self.adapter_rank is not None and self.adapter_rank > self.max_lora_rank:
            raise ValueError(f"lora.adapter_rank: expected at most max_lora_rank ({self.max_lora_rank}), got {self.adapter_rank}")
        if len(set(self.target_modules)) != len(self.target_modules):
            raise ValueError(f"lora.target_modules: expected each module once, got {[m.value for m in self.target_modules]}")
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(f"lora.max_cpu_loras: expected at least max_loras ({self.max_loras}), got {self.max_cpu_loras}")
        if self.host_link is not None and self.load_gbytes_per_s is not None:
            raise ValueError("lora: expected host_link or load_gbytes_per_s, got both")
        return self

    @property
    def rank(self) -> int:
        """Rank of the adapters served (their bytes)."""
        return self.max_lora_rank if self.adapter_rank is None else self.adapter_rank

    @property
    def cpu_loras(self) -> int:
        """Adapters kept in host memory (vLLM: ``max_cpu_loras``, default ``max_loras``)."""
        return self.max_loras if self.max_cpu_loras is None else self.max_cpu_loras


class LlmServing(FrozenModel):
    """How an LLM pool serves: which model and stage, batching limits (a replica's, shared by
    its attention data-parallel groups), caching, preemption, and how its expert layers run."""

    model: str
    stage: LlmStage = LlmStage.AGGREGATED
    dtype: str = "bf16"
    max_num_seqs: int = Field(default=256, ge=1)
    max_batch_tokens: int = Field(default=8192, ge=1)
    memory_utilization: float = Field(default=0.9, gt=0, le=1)
    prefix_caching: bool = True
    preemption: Preemption = Preemption.RECOMPUTE
    scheduler: SchedulerName = Field(
        default="chunked-prefill",
        description="iteration scheduler: chunked-prefill, prefill-first, decode-priority or a dotted path",
    )
    token_budget: int | None = Field(
        default=None,
        ge=1,
        description="decode-priority: tokens an iteration computes at most, decodes first (default 512)",
    )
    expert_balancing: bool = Field(default=False, description="an expert-parallel load balancer (EPLB) places experts")
    redundant_experts: int = Field(default=0, ge=0, description="replicas of hot experts beside the model's own (EPLB)")
    overlap: CommOverlap = Field(default=CommOverlap.NONE, description="all-to-all overlap with compute")
    speculation: SpeculationSpec | None = Field(default=None, description="speculative decoding (aggregated and decode pools)")

    @model_validator(mode="after")
    def _speculation_decodes(self) -> LlmServing:
        if self.speculation is not None and self.stage == LlmStage.PREFILL:
            raise ValueError("speculation: expected on an aggregated or decode pool (speculation drafts output tokens), "
                             "got it on a prefill pool")  # fmt: skip
        return self
    lora: LoraServing | None = Field(default=None, description="multi-LoRA serving of fine-tunes of the model")

    @model_validator(mode="after")
    def _budget_of_decode_priority(self) -> LlmServing:
        if self.token_budget is not None and self.scheduler != "decode-priority":
            raise ValueError(f"token_budget: expected only with scheduler 'decode-priority' (the others fill "
                             f"max_batch_tokens), got it with {self.scheduler!r}")  # fmt: skip
        return self


AUTOSCALE_POLICIES = ("target-utilization", "queue-length", "sla-headroom")
"""The autoscaling policies hetsim ships (``hetsim.sim.autoscale``); the first is the default."""
AutoscalePolicyName = Annotated[str, AfterValidator(_named_or_dotted(AUTOSCALE_POLICIES))]


class WeightSource(StrEnum):
    """Where a starting replica reads its weights from: the node's local storage (its profile's
    ``storage.read_bandwidth``) or the network (its NICs: ``nics.count`` x the link's bandwidth)."""

    STORAGE = "storage"
    NETWORK = "network"


class AutoscaleSpec(FrozenModel):
    """Replicas that start and stop during a run (``hetsim.sim.autoscale``): every ``interval_s``
    the policy says how many the pool needs; more start at once, fewer only after the
    ``scale_down_window_s`` has wanted fewer throughout (Kubernetes' HPA stabilisation). A
    starting replica costs money and serves nothing for ``provision_s`` + ``engine_start_s`` +
    its weight bytes over the node's bandwidth (``weights_from``); a stopping one takes no new
    calls and stops when its last call has left."""

    min_replicas: int = Field(ge=1, description="replicas always up (a pool never scales to zero)")
    max_replicas: int = Field(ge=1)
    policy: AutoscalePolicyName = Field(
        default="target-utilization",
        description="target-utilization, queue-length, sla-headroom, or a dotted path to your own",
    )
    target: float | None = Field(
        default=None, gt=0,
        description="the policy's set point: busy share (target-utilization, default 0.7), outstanding calls per "
                    "replica (queue-length, default 8), TTFT objective in s (sla-headroom, required)",
    )  # fmt: skip
    headroom: float = Field(default=0.25, ge=0, lt=1, description="sla-headroom: the share of the TTFT objective kept free")
    interval_s: float = Field(default=15.0, gt=0, description="how often the policy looks (Kubernetes HPA default: 15 s)")
    scale_down_window_s: float = Field(
        default=300.0, ge=0, description="fewer replicas only when wanted this long (Kubernetes HPA default: 300 s)"
    )
    provision_s: float = Field(ge=0, description="seconds to get the replica's devices (a node booted, a VM rented)")
    engine_start_s: float = Field(ge=0, description="seconds the serving engine takes to start, weights aside")
    weights_from: WeightSource = Field(default=WeightSource.NETWORK, description="storage or network (the node's NICs)")
    weight_read_gbytes_per_s: float | None = Field(
        default=None, gt=0,
        description="a replica's measured weight-read bandwidth (GB/s), instead of its share of the node's profile",
    )  # fmt: skip

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"autoscale.max_replicas: expected >= min_replicas ({self.min_replicas}), got {self.max_replicas}")
        if self.policy == "sla-headroom" and self.target is None:
            raise ValueError("autoscale.target: expected the TTFT objective in s for policy 'sla-headroom', got none")
        if self.policy == "target-utilization" and self.target is not None and self.target > 1:
            raise ValueError(f"autoscale.target: expected a busy share in (0, 1] for 'target-utilization', got {self.target}")
        return self


class VectorIndexSpec(FrozenModel):
    """The index a retrieval pool searches."""

    vectors: int = Field(ge=1)
    dimension: int = Field(ge=1)
    dtype: str = "fp32"
    kind: str = Field(default="flat", description="flat, ivf or hnsw")


class PoolSpec(FrozenModel):
    """Identical replicas serving one LLM stage, or non-LLM work of some models/node types."""

    name: str
    device: str = Field(description="accelerator or CPU profile name")
    node: str | None = Field(default=None, description="node SKU the replicas are placed on (for cost and links)")
    replicas: int = Field(ge=1)
    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)
    ep: int = Field(default=1, ge=1, description="expert-parallel degree: 1, or tp x dp_attention (experts split over them)")
    dp_attention: int = Field(default=1, ge=1, description="attention data-parallel groups of tp devices per pipeline stage")
    llm: LlmServing | None = None
    models: tuple[str, ...] = Field(default=(), description="non-LLM models this pool serves (stt, embed, ...)")
    node_types: tuple[str, ...] = Field(default=(), description="node types it serves: tool, code_exec, retrieval")
    concurrency: int = Field(default=1, ge=1, description="requests a non-LLM replica serves at once (cores, batch)")
    routing: Routing = Field(
        default="least-outstanding", description="routing policy by name, or a dotted path to your own"
    )
    vector_index: VectorIndexSpec | None = Field(default=None, description="for pools serving retrieval")
    weight: float | None = Field(
        default=None, gt=0, le=1,
        description="share of its LLM stage's traffic when several pools serve the stage (they must sum to 1)",
    )  # fmt: skip
    autoscale: AutoscaleSpec | None = Field(
        default=None, description="replicas start and stop during a run; 'replicas' is how many are up at its start"
    )

    @model_validator(mode="after")
    def _serves_something(self) -> PoolSpec:
        if self.llm is None and not self.models and not self.node_types:
            raise ValueError(f"pool {self.name!r}: expected an 'llm' block, 'models' or 'node_types', got none")
        if self.llm is not None and (self.models or self.node_types):
            raise ValueError(f"pool {self.name!r}: an LLM pool serves only its 'llm' block; put other work in its own pool")
        self._check_expert_parallel()
        scaling = self.autoscale
        if scaling is not None and not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise ValueError(f"pool {self.name!r}: replicas: expected the replicas up at the start, within autoscale's "
                             f"[{scaling.min_replicas}, {scaling.max_replicas}], got {self.replicas}")  # fmt: skip
        return self

    def _check_expert_parallel(self) -> None:
        """EP spans a whole pipeline stage (tp x dp_attention), as SGLang's and vLLM's EP does;
        balancing, redundant experts and overlap are expert-parallel options."""
        stage_devices = self.tp * self.dp_attention
        if self.ep not in (1, stage_devices):
            raise ValueError(f"pool {self.name!r}: ep: expected 1 or tp x dp_attention = {stage_devices}, got {self.ep}")
        if (self.ep > 1 or self.dp_attention > 1) and self.llm is None:
            raise ValueError(f"pool {self.name!r}: ep and dp_attention apply to an LLM pool; this pool has no 'llm' block")
        llm = self.llm
        if llm is not None and self.ep == 1 and (llm.redundant_experts or llm.overlap != CommOverlap.NONE):
            raise ValueError(f"pool {self.name!r}: redundant_experts and overlap need expert parallelism (ep > 1), got ep=1")

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.dp_attention * self.pp

    @property
    def serving_text(self) -> str:
        """How a replica serves, as outputs name it: its split ('tp4 pp2', 'ep8 dp-attention8
        two-batch'), its speculative decoding ('eagle k3 a0.80') and its LoRA slots ('lora x16 r16')."""
        parts = [f"ep{self.ep}" if self.ep > 1 else f"tp{self.tp}"]
        parts += [f"dp-attention{self.dp_attention}"] if self.dp_attention > 1 else []
        parts += [f"pp{self.pp}"] if self.pp > 1 else []
        llm = self.llm
        if llm is not None and llm.overlap != CommOverlap.NONE:
            parts.append(llm.overlap.value)
        spec = llm.speculation if llm is not None else None
        if spec is not None:
            parts.append(f"{spec.method} k{spec.proposed} a{spec.rate:.2f}" + (f" ({spec.draft_model})" if spec.draft_model else ""))
        lora = llm.lora if llm is not None else None
        if lora is not None:
            parts.append(f"lora x{lora.max_loras} r{lora.max_lora_rank}")
        return " ".join(parts)


class KvTransferSpec(FrozenModel):
    """The link KV caches cross from a prefill pool to a decode pool."""

    model: str
    prefill_pool: str
    decode_pool: str
    link: str = Field(description="link profile name, e.g. roce-400")
    links_per_replica: int = Field(
        default=1, ge=1, description="links a prefill replica sends over in parallel (NIC ports, or its devices' fabric links)"
    )


class PlanSpec(FrozenModel):
    """A placement: pools, KV-transfer links, and what produced it."""

    schema_version: SchemaVersion
    name: str
    profile_set: str = "datasheet"
    pools: tuple[PoolSpec, ...] = Field(min_length=1)
    kv_transfers: tuple[KvTransferSpec, ...] = ()
    notes: str = ""
    provenance: dict[str, object] = Field(default_factory=dict, description="solver status, gap, input hash")

    @model_validator(mode="after")
    def _consistent(self) -> PlanSpec:
        names = [p.name for p in self.pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pools: expected unique pool names, got duplicates {duplicates}")
        for transfer in self.kv_transfers:
            for role, pool_name, stage in (
                ("prefill_pool", transfer.prefill_pool, LlmStage.PREFILL),
                ("decode_pool", transfer.decode_pool, LlmStage.DECODE),
            ):
                pool = self.pool(pool_name)
                if pool is None:
                    raise ValueError(f"kv_transfers.{role}: expected one of the pools {names}, got {pool_name!r}")
                if pool.llm is None or pool.llm.stage != stage or pool.llm.model != transfer.model:
                    raise ValueError(
                        f"kv_transfers.{role}: pool {pool_name!r} must serve the {stage.value} stage of {transfer.model!r}"
                    )
        self._check_shared_stages()
        return self

    def _check_shared_stages(self) -> None:
        """An LLM is served aggregated or disaggregated, not both; pools sharing a stage all
        carry weights summing to 1; a model's KV transfers use one link."""
        stages: dict[tuple[str, LlmStage], list[PoolSpec]] = {}
        for pool in self.pools:
            if pool.llm is not None:
                stages.setdefault((pool.llm.model, pool.llm.stage), []).append(pool)
        for (model, stage), pools in stages.items():
            if stage == LlmStage.AGGREGATED and ((model, LlmStage.PREFILL) in stages or (model, LlmStage.DECODE) in stages):
                raise ValueError(f"pools: model {model!r} is served both aggregated and disaggregated; choose one")
            if len(pools) < 2:
                continue
            names = [p.name for p in pools]
            scaled = [p.name for p in pools if p.autoscale is not None]
            if scaled:
                raise ValueError(f"pools {names} share the {stage.value} stage of {model!r}: autoscale applies to a pool "
                                 f"that serves its stage alone, got it on {scaled}")  # fmt: skip
            missing = [p.name for p in pools if p.weight is None]
            if missing:
                raise ValueError(f"pools {names} share the {stage.value} stage of {model!r}: expected a 'weight' on each, "
                                 f"got none on {missing}")  # fmt: skip
            total = sum(p.weight or 0.0 for p in pools)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"pools {names} share the {stage.value} stage of {model!r}: expected weights summing "
                                 f"to 1, got {total:.6g}")  # fmt: skip
        for model in {t.model for t in self.kv_transfers}:
            links = {(t.link, t.links_per_replica) for t in self.kv_transfers if t.model == model}
            if len(links) > 1:
                raise ValueError(f"kv_transfers of {model!r}: expected one link and links_per_replica for the model, "
                                 f"got {sorted(links)}")  # fmt: skip

    def pool(self, name: str) -> PoolSpec | None:
        return next((p for p in self.pools if p.name == name), None)
