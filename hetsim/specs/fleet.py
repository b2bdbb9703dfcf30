"""Fleet specs: what hardware we own or could buy/rent, and the demand to place on it."""

from __future__ import annotations

from pydantic import Field, ValidationError, model_validator

from hetsim.specs.common import MAX_RATE_PER_S, FrozenModel, PositiveInts, SafeName, SchemaVersion
from hetsim.specs.plan import LoraModule, LoraServing, SpeculationSpec
from hetsim.specs.profile import DayProfile


class OwnedNodes(FrozenModel):
    node: str = Field(description="node SKU name (hardware_profiles/nodes)")
    count: int = Field(ge=0)


class PurchasableNodes(FrozenModel):
    node: str
    max_count: int | None = Field(default=None, ge=0, description="most we can add; omit for unlimited")


class DemandSla(FrozenModel):
    """Objectives for one workload; unset fields fall back to the workload's own SLA."""

    ttft_s: float | None = Field(default=None, gt=0)
    tbt_s: float | None = Field(default=None, gt=0)
    e2e_s: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, le=100)


class DemandSpec(FrozenModel):
    workload: str = Field(description="workload name or file")
    rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S, description="agent sessions per second")
    sla: DemandSla | None = None
    dtype: str = Field(default="bf16", description="weights/GEMM format of this workload's LLMs")
    profile: DayProfile | str | None = Field(
        default=None,
        description="the rate over a day (hetsim.specs.profile): inline, or a profile file relative to the fleet "
        "file; with one, rate_per_s is the peak hour's rate and `hetsim plan` plans own versus rent over the day",
    )


class SpeculationChoice(SpeculationSpec):
    """Speculative decoding the planner may choose for a model's aggregated and decode pools
    (it weighs each against no speculation: it pays at low batch and can cost at high batch)."""

    model: str = Field(description="the LLM (catalog name) this proposer serves")


class LoraChoice(FrozenModel):
    """How the planner serves the LoRA adapters a model's calls name (``hetsim.specs.plan.LoraServing``'s
    settings), and the adapter slots per replica (``max_loras``) it may choose between: more slots
    let a larger batch hold its calls' distinct adapters and load fewer, and take KV memory."""

    model: str = Field(description="the LLM (catalog name) whose adapters these are")
    max_loras: PositiveInts = Field(
        default=(), description="slot counts to weigh; () = for each batch, the slots its calls' adapters need"
    )
    max_lora_rank: int = Field(default=16, ge=1, description="rank of a slot; one of vLLM's (default 16)")
    adapter_rank: int | None = Field(default=None, ge=1, description="rank of the adapters (bytes loaded); default max_lora_rank")
    target_modules: tuple[LoraModule, ...] = Field(
        default=tuple(LoraModule), min_length=1, description="modules adapted (PEFT names); default all seven"
    )
    max_cpu_loras: int | None = Field(default=None, ge=1, description="adapters kept in host memory (default max_loras)")
    host_link: str | None = Field(default=None, description="link adapters are copied over (default: the nodes' host_link)")
    load_gbytes_per_s: float | None = Field(default=None, gt=0, description="measured host-to-device copy GB/s instead")
    storage_gbytes_per_s: float | None = Field(
        default=None, gt=0, description="read GB/s of an adapter missing from host memory; none: host-resident"
    )

    @model_validator(mode="after")
    def _servable(self) -> LoraChoice:
        """Each slot count makes a valid pool setting (rank vLLM accepts, host cache large enough)."""
        for max_loras in self.max_loras or (1,):
            try:
                self.serving(max_loras)
            except ValidationError as exc:
                message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ").removeprefix("lora.")
                raise ValueError(message) from None
        return self

    def serving(self, max_loras: int) -> LoraServing:
        """The pool setting with ``max_loras`` slots."""
        return LoraServing(max_loras=max_loras, **self.model_dump(exclude={"model", "max_loras"}))


class PlannerOptions(FrozenModel):
    headroom: float = Field(default=1.25, ge=1.0, le=100.0, description="capacity over demand (queueing slack)")
    tp_options: PositiveInts = Field(default=(1, 2, 4, 8), min_length=1)
    pp_options: PositiveInts = Field(
        default=(1, 2), min_length=1, description="pipeline stages a replica may span (across nodes: models too big for one node)"
    )
    batch_options: PositiveInts = Field(default=(1, 2, 4, 8, 16, 32, 64, 128, 256), min_length=1)
    ep_options: PositiveInts = Field(
        default=(8, 16, 32),
        description="expert-parallel degrees (DP attention over as many devices) a disaggregated MoE stage may take; "
        "() for none",
    )
    prefill_token_budgets: PositiveInts = Field(
        default=(2048, 8192, 16384), min_length=1, description="chunked-prefill token budgets a prefill pool may run with"
    )
    disaggregation: bool = True
    speculation: tuple[SpeculationChoice, ...] = Field(
        default=(), description="speculative decoding the planner may choose per model (its acceptance measured on your traffic)"
    )
    lora: tuple[LoraChoice, ...] = Field(
        default=(), description="how each model's LoRA adapters are served (default: vLLM's settings, slots per batch)"
    )
    max_pools_per_stage: int = Field(
        default=2, ge=1, le=4, description="pools on different devices one LLM or model stage may combine"
    )
    time_limit_s: float = Field(default=30.0, gt=0)
    relative_gap: float = Field(default=0.01, gt=0, lt=1)
    allow_spot: bool = Field(
        default=False,
        description="a day plan may rent interruptible (spot) nodes where a node profile prices them; off: an SLA-bound "
        "service takes that risk only when asked",
    )
    spot_replacement_s: float = Field(
        default=300.0, gt=0,
        description="seconds a reclaimed spot node is missing until a replacement serves (assumed: 5 min to provision "
        "it and start its engines; compare an autoscaled pool's cold start)",
    )  # fmt: skip
    verify_duration_s: float = Field(default=300.0, gt=0, description="synthetic traffic simulated to check the plan")
    verify_rounds: int = Field(default=3, ge=0, description="re-solves with more headroom when the SLA is missed")
    sample_sessions: int = Field(default=2000, ge=50, description="sessions synthesized to measure per-stage demand")
    seed: int = 0

    @model_validator(mode="after")
    def _one_lora_choice_per_model(self) -> PlannerOptions:
        models = [choice.model for choice in self.lora]
        for index, model in enumerate(models):
            if model in models[:index]:
                raise ValueError(f"lora.{index}.model: expected each model once, got {model!r} again")
        return self


class FleetSpec(FrozenModel):
    """Inventory, purchasable catalog, links, demand and planner options."""

    schema_version: SchemaVersion
    name: SafeName
    description: str = ""
    profile_set: str = "datasheet"
    tco: str = Field(default="enterprise", description="TCO preset: paper, paper-printed, enterprise")
    cost_basis: str | None = Field(default=None, description="owned or rented; default owned when priced")
    inventory: tuple[OwnedNodes, ...] = ()
    catalog: tuple[PurchasableNodes, ...] = ()
    kv_link: str = Field(default="roce-400", description="link carrying KV caches between prefill and decode nodes")
    site_power_kw: float | None = Field(
        default=None, gt=0, le=1e6,
        description="the site's power budget: owned and added nodes at full load x PUE must fit in it",
    )  # fmt: skip
    demand: tuple[DemandSpec, ...] = Field(default=(), description="may also come from a scenario or flags")
    options: PlannerOptions = PlannerOptions()

    @model_validator(mode="after")
    def _some_hardware(self) -> FleetSpec:
        if not self.inventory and not self.catalog:
            raise ValueError("inventory: expected owned nodes or a purchasable catalog, got neither")
        names = [o.node for o in self.inventory] + [c.node for c in self.catalog]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"catalog: each node SKU may appear once across inventory and catalog, got {repeated} more than once")
        return self


class CandidateFleet(FrozenModel):
    """One fleet to compare: its own inventory and catalog; the rest comes from the comparison."""

    name: SafeName
    description: str = ""
    inventory: tuple[OwnedNodes, ...] = ()
    catalog: tuple[PurchasableNodes, ...] = ()


class ComparisonSpec(FrozenModel):
    """Candidate fleets planned and simulated for the same demand (``hetsim compare``)."""

    schema_version: SchemaVersion
    name: SafeName
    description: str = ""
    profile_set: str = "datasheet"
    tco: str = "enterprise"
    cost_basis: str | None = None
    kv_link: str = "roce-400"
    demand: tuple[DemandSpec, ...] = Field(min_length=1)
    options: PlannerOptions = PlannerOptions()
    fleets: tuple[CandidateFleet, ...] = Field(min_length=1)
    baseline: str | None = Field(default=None, description="fleet the others are compared with")

    @model_validator(mode="after")
    def _fleets_valid(self) -> ComparisonSpec:
        """Each candidate is a valid fleet with the shared demand and options (checked here, not
        halfway through planning the candidates before it)."""
        names = [fleet.name for fleet in self.fleets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"fleets: expected each fleet name once, got {repeated} more than once")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline: expected the name of one of the fleets ({', '.join(names)}), got {self.baseline!r:.80}")
        for index, candidate in enumerate(self.fleets):
            try:
                self.fleet_spec(candidate)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                raise ValueError(f"fleets.{index}: {first['msg'].removeprefix('Value error, ')}") from None
        return self

    def fleet_spec(self, candidate: CandidateFleet) -> FleetSpec:
        return FleetSpec(
            schema_version=self.schema_version, name=candidate.name, description=candidate.description,
            profile_set=self.profile_set, tco=self.tco, cost_basis=self.cost_basis, inventory=candidate.inventory,
            catalog=candidate.catalog, kv_link=self.kv_link, demand=self.demand, options=self.options,
        )  # fmt: skip
