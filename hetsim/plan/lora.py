"""LoRA adapters in the planner: the slots a batch needs, the loads a replica makes, and what
both cost a candidate.

A replica serving a model's adapters (``hetsim.specs.plan.LoraServing``, simulated by
``hetsim.sim.lora``) reserves ``max_loras`` slots of ``max_lora_rank`` out of its KV memory
(``hetsim.perf.lora.slot_bytes_per_device``), runs its LoRA tokens through shrink and expand
kernels grouped by distinct adapter (``hetsim.perf.lora.LoraKernels``), and copies an adapter in
over the host link when a call names one in no slot.

Slots a batch needs: calls name adapters independently with their measured shares s_i, so a
batch of B calls names adapter i with probability q_i = 1 - (1 - s_i)^B; it names sum q_i
distinct adapters on average, with the variance of a multinomial draw's occupied cells
(``distinct_adapters``). A batch is given mean + 2 sd slots (its
distinct adapters rarely exceed them, so its calls rarely wait for a slot), and a replica with
fewer slots is not planned at that batch: it would run fewer calls at once. Independent draws
overstate the distinct adapters of calls that share a session's adapter: an upper estimate.

Loads: under least-outstanding routing every replica sees every adapter at its share, and its
slots are an LRU cache of ``max_loras`` adapters under independent references. Che's
approximation (Che, Tung and Wang, IEEE JSAC 20(7), 2002; Fricker, Robert and Roberts, ITC 24,
2012) gives its miss ratio: the characteristic time t (in calls) solves
sum_i (1 - exp(-s_i t)) = max_loras, and a call misses with probability sum_i s_i exp(-s_i t).
A miss delays its call by a copy (the adapter's bytes per device over the host link), a
storage read when it misses host memory too (``max_cpu_loras`` adapters, the same
approximation), and the copy stream's M/D/1 wait. The planner's pools route by adapter
affinity, which misses less than this: an upper estimate again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hetsim.errors import HetsimError, InfeasiblePlanError
from hetsim.perf.llm import LlmReplica
from hetsim.perf.lora import LoraKernels, adapter_bytes, module_shape, slot_bytes_per_device
from hetsim.perf.transformer import Shard
from hetsim.plan.queueing import md1_wait_s
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.fleet import FleetSpec, LoraChoice
from hetsim.specs.hardware import DType
from hetsim.specs.model import ArchitectureSpec, ModelSpec
from hetsim.specs.plan import LoraServing
from hetsim.workload.demand import NodeDemand

SLOT_DEVIATIONS = 2.0
"""Standard deviations of a batch's distinct adapters its slots hold beyond the mean."""


@dataclass(frozen=True)
class LoraTargets:
    """How a stage's LoRA adapters are served: the fleet's choice (or its defaults), each
    adapter's share of the stage's calls (the most called first; their sum is the share of
    calls naming an adapter), and the bytes/s a device copies an adapter at (devices absent:
    no LoRA replica is planned on them)."""

    choice: LoraChoice
    shares: tuple[float, ...]
    host_bytes_per_s: dict[str, float]
    _misses: dict[int, float] = field(default_factory=dict, compare=False, repr=False)
    _distinct: dict[int, tuple[float, float]] = field(default_factory=dict, compare=False, repr=False)

    def distinct(self, calls: int) -> tuple[float, float]:
        """Mean and standard deviation of the distinct adapters ``calls`` calls name (module docstring)."""
        if calls not in self._distinct:
            self._distinct[calls] = distinct_adapters(np.asarray(self.shares, dtype=float), calls)
        return self._distinct[calls]

    def slots_needed(self, calls: int) -> int:
        """Slots that hold the adapters of ``calls`` calls (mean + 2 sd), at most one per call and per adapter."""
        mean, deviation = self.distinct(calls)
        return max(1, min(calls, len(self.shares), math.ceil(mean + SLOT_DEVIATIONS * deviation - 1e-9)))

    def slot_counts(self, calls: tuple[int, ...]) -> tuple[int, ...]:
        """Every slot count a replica may take for some of ``calls`` (its batch options)."""
        return tuple(sorted({slots for count in calls for slots in self.slot_choices(count)}))

    def slot_choices(self, calls: int) -> tuple[int, ...]:
        """Slot counts a replica holding ``calls`` calls may take: the fleet's counts that hold
        their adapters, or (no counts given) the slots they need; host memory bounds both."""
        needed = self.slots_needed(calls)
        host = self.choice.max_cpu_loras or math.inf
        given = self.choice.max_loras or (needed,)
        return tuple(slots for slots in sorted(given) if needed <= slots <= host)

    def serving(self, slots: int) -> LoraServing:
        return self.choice.serving(slots)

    def miss_ratio(self, slots: int) -> float:
        """Share of calls whose adapter is in none of ``slots`` LRU slots (Che's approximation)."""
        if slots not in self._misses:
            self._misses[slots] = self._che_miss_ratio(slots)
        return self._misses[slots]

    def _che_miss_ratio(self, slots: int) -> float:
        shares = np.asarray([share for share in self.shares if share > 0.0], dtype=float)
        if slots >= len(shares):
            return 0.0  # every adapter stays once loaded: only the first call of each loads it
        low, high = 0.0, 1.0
        while np.sum(-np.expm1(-shares * high)) < slots:
            high *= 2.0
        for _ in range(60):  # bisection on the characteristic time, to double precision
            middle = (low + high) / 2.0
            low, high = (middle, high) if np.sum(-np.expm1(-shares * middle)) < slots else (low, middle)
        return float(np.sum(shares * np.exp(-shares * high)))


def distinct_adapters(shares: np.ndarray, calls: int) -> tuple[float, float]:
    """Mean and standard deviation of the distinct adapters among ``calls`` independent calls,
    each naming adapter i with probability ``shares[i]`` (the rest of the probability: none).
    With a_i = (1 - s_i)^B the chance adapter i is missing, D = sum_i (1 - I_missing_i), so
    E[D] = sum_i (1 - a_i) and Var[D] = sum_i a_i (1 - a_i) + sum_{i != j} ((1 - s_i - s_j)^B - a_i a_j)
    (both missing), the pairs summed in blocks to bound memory. Past ``EXACT_PAIRS`` adapters the
    pairs are left out: the indicators of a multinomial draw covary negatively, so the variance
    is then an upper one."""
    missing = (1.0 - shares) ** calls
    variance = float(np.sum(missing * (1.0 - missing)))
    if len(shares) > EXACT_PAIRS:
        return float(np.sum(1.0 - missing)), math.sqrt(variance)
    for start in range(0, len(shares), DISTINCT_BLOCK):
        block = slice(start, start + DISTINCT_BLOCK)
        both = np.clip(1.0 - shares[block, None] - shares[None, :], 0.0, 1.0) ** calls - missing[block, None] * missing[None, :]
        rows = np.arange(start, min(start + DISTINCT_BLOCK, len(shares)))
        both[rows - start, rows] = 0.0  # i != j
        variance += float(np.sum(both))
    return float(np.sum(1.0 - missing)), math.sqrt(max(variance, 0.0))


DISTINCT_BLOCK = 512
"""Adapters per block of the pairwise sum in ``distinct_adapters`` (512 x N floats at a time)."""
EXACT_PAIRS = 4096
"""Adapters up to which ``distinct_adapters`` sums every pair (16 M terms per batch size)."""


@dataclass(frozen=True)
class ReplicaLora:
    """One replica's adapters: its pool setting, its kernels, its calls' miss ratio, and a
    miss's seconds on the copy stream (the copy, and a storage read at its share of misses)."""

    targets: LoraTargets
    serving: LoraServing
    kernels: LoraKernels
    miss_ratio: float
    miss_s: float

    def step_s(self, calls: int, tokens: int) -> float:
        """Seconds the adapter kernels add to a step of ``calls`` calls computing ``tokens``
        tokens (their LoRA share, over the calls' mean distinct adapters)."""
        lora_tokens = round(tokens * sum(self.targets.shares))
        if lora_tokens <= 0:
            return 0.0
        adapters = math.ceil(self.targets.distinct(calls)[0] - 1e-9)
        return self.kernels.step_s(lora_tokens, max(1, adapters))

    def delay_s(self, calls_per_s: float) -> tuple[float, float]:
        """(mean delay a call waits for its adapter, the delay of a call that misses) at
        ``calls_per_s`` arrivals to the replica: a copy and its M/D/1 wait (inf past the copy
        stream's capacity)."""
        if self.miss_ratio <= 0.0:
            return 0.0, 0.0
        missing = self.miss_s + md1_wait_s(self.miss_s, calls_per_s * self.miss_ratio * self.miss_s)
        return self.miss_ratio * missing, missing

    def ttft_s(self, ttft: float, calls_per_s: float, percentile: float) -> float:
        """A TTFT at ``percentile`` with adapter loads: the miss's delay added when more calls
        than 1 - percentile miss."""
        _, missing = self.delay_s(calls_per_s)
        return ttft + missing if self.miss_ratio > 1.0 - percentile / 100.0 else ttft

    @property
    def detail(self) -> dict[str, object]:
        """The option's LoRA as the plan names it (``hetsim.plan.export``)."""
        return {"lora": self.serving.model_dump(mode="json", exclude_none=True), "adapter_miss_ratio": self.miss_ratio}

    @property
    def key(self) -> str:
        return f" lora{self.serving.max_loras}"


def slot_bytes(lora: LoraServing, arch: ArchitectureSpec, dtype: DType, shard: Shard) -> float:
    """Device memory ``lora``'s slots take on each device of a replica split as ``shard``, its
    activations in ``dtype`` (0 where the modules cannot be adapted: ``replica_lora`` refuses it)."""
    try:
        return slot_bytes_per_device(arch, lora.max_loras, lora.max_lora_rank, lora.target_modules, dtype, shard.tp, shard.pp)
    except HetsimError:
        return 0.0


def replica_lora(targets: LoraTargets, replica: LlmReplica, slots: int) -> ReplicaLora | None:
    """``replica`` (built with ``slots`` slots) serving the adapters; None where its device has no
    known host link or its model's modules cannot be adapted."""
    bandwidth = targets.host_bytes_per_s.get(replica.perf.device.name)
    if bandwidth is None:
        return None
    lora = targets.serving(slots)
    dtype, shard = replica.precision.activations, replica.shard
    try:
        kernels = LoraKernels(replica.perf, replica.arch, lora.max_lora_rank, lora.target_modules, dtype, shard.tp, shard.pp)
        copy_s = adapter_bytes(replica.arch, lora.rank, lora.target_modules, dtype, shard.tp, shard.pp) / bandwidth
        whole = adapter_bytes(replica.arch, lora.rank, lora.target_modules, dtype)
    except HetsimError:
        return None
    misses = targets.miss_ratio(slots)
    miss_s = copy_s
    if lora.storage_gbytes_per_s is not None and misses > 0.0:  # a storage read at the share of misses that miss host memory
        miss_s += targets.miss_ratio(lora.cpu_loras) / misses * whole / (lora.storage_gbytes_per_s * 1e9)
    return ReplicaLora(targets, lora, kernels, misses, miss_s)


def lora_targets(model: ModelSpec, demand: NodeDemand, fleet: FleetSpec, hardware: HardwareCatalog) -> LoraTargets | None:
    """How the stage of ``model`` serves the adapters its calls name (None: they name none): the
    fleet's ``options.lora`` entry for the model, else vLLM's defaults with slots per batch.

    Raises:
        InfeasiblePlanError: the model's modules cannot be adapted as asked, or no device of the
            fleet has a link to copy adapters over.
    """
    if not demand.adapters:
        return None
    position = next((i for i, choice in enumerate(fleet.options.lora) if choice.model == model.name), None)
    choice = LoraChoice(model=model.name) if position is None else fleet.options.lora[position]
    where = f"fleet options.lora[{position}]" if position is not None else "fleet options.lora"
    if model.architecture is not None:
        for module in choice.target_modules:
            try:
                module_shape(model.architecture, module)
            except HetsimError as exc:
                default = "" if position is not None else f" (no entry for {model.name}, whose calls name adapters: all seven)"
                problem = str(exc).removeprefix("lora.target_modules: ")
                raise InfeasiblePlanError(f"{where}.target_modules{default}: {problem}") from None
    shares = tuple(share for _, share in demand.adapters)
    return LoraTargets(choice, shares, _host_bytes_per_s(choice, fleet, hardware, where))


def _host_bytes_per_s(choice: LoraChoice, fleet: FleetSpec, hardware: HardwareCatalog, where: str) -> dict[str, float]:
    """Per accelerator, the bytes/s a device copies an adapter at: the choice's measured figure
    or link, else the slowest host link of the fleet's nodes carrying it (a device some of whose
    nodes name none is left out: a pool placed there could not load adapters)."""
    fixed = None if choice.load_gbytes_per_s is None else choice.load_gbytes_per_s * 1e9
    try:
        if choice.host_link is not None:
            fixed = hardware.link(choice.host_link).bandwidth.si
        per_device: dict[str, list[float | None]] = {}
        for name in [owned.node for owned in fleet.inventory] + [bought.node for bought in fleet.catalog]:
            node = hardware.node(name)
            if node.accelerators is not None:
                link = fixed if fixed is not None else (
                    None if node.host_link is None else hardware.link(node.host_link).bandwidth.si)  # fmt: skip
                per_device.setdefault(node.accelerators.device, []).append(link)
    except HetsimError as exc:
        raise InfeasiblePlanError(f"{where}.host_link: {exc}") from None
    known = {device: min(links) for device, links in per_device.items() if None not in links}  # type: ignore[type-var]
    if not known:
        raise InfeasiblePlanError(f"{where}: expected host_link or load_gbytes_per_s (the link adapters are copied "
                                  "over), as no accelerator node of the fleet names a host_link in its profile; got neither")  # fmt: skip
    return known
