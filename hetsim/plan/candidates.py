"""Candidate replica configurations per stage, priced by the performance model.

Latency objectives are met at the percentile the SLA names (TTFT over calls, TBT over every
token gap), so candidates are priced at that percentile, not at the mean.

LLM, aggregated (prefill and decode on one replica, chunked prefill): at batch B with mean
prompt I and output O, a replica spends B x P1 on prefills and O x t_d(B) on decodes per B
requests, so it sustains mu = B / (B P1 + O t_d(B)) requests/s. A prompt is prefilled in
n = ceil(I / (budget - B)) chunks, each riding on a decode step: a share f = min(1, B n / O) of
the gaps carry a chunk, the rest are t_d(B) (mean t_d + (B/O) P1), so the p-th percentile gap is
t_d(B) + the prefill of a chunk of the prompt at the TBT percentile (at most the budget left beside
the decodes) when f > 1 - p. The budget is chosen per replica: the largest of the fleet's prefill
budgets and 512 / 2,048 that meets both objectives. A replica prefills one prompt's chunks at a
time (vLLM's chunked prefill: FCFS, the budget beside the decodes), so prompts also queue for that
lane: an M/M/1 queue of service L = P1 + n t_d(B) at the replica's arrival rate. TTFT = L + the
p-th percentile of the lane's wait + the mean M/M/B wait for a batch slot at the planned
utilisation (1/headroom), or L + the mean lane wait + the slot wait's p-th percentile, or the
prompt at that percentile of the workload's prompt lengths chunked plus the mean waits,
whichever is longest (a TTFT tail is set by long prompts as well as by queueing).
LLM, disaggregated: a prefill replica sustains tokens/s of full chunks (TTFT = P1 + the p-th
percentile of M/M/1 queueing, an upper estimate of M/D/1's), capped by its KV egress link; a
decode replica sustains B / (O t_d(B)) with every gap t_d(B).
End-to-end paths add mean latencies (a sum of percentiles would overstate a session's); the
verification simulation checks the named e2e percentile.
Non-LLM model stages: one request at a time per device (roofline time), M/M/1 wait.
CPU tools: one core per call (measured duration), cores per socket in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from hetsim.errors import HetsimError
from hetsim.perf.expert import MoeOptions
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.nonllm import IndexKind, VectorIndex, model_amount, model_time, vector_search_time
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.serving import prefill_time
from hetsim.perf.speculative import mixed_yield, speculating
from hetsim.perf.transformer import Precision, SequenceWork, Shard, kv_bytes_per_token
from hetsim.plan.lora import LoraTargets, ReplicaLora, replica_lora, slot_bytes
from hetsim.plan.problem import Option
from hetsim.plan.queueing import md1_wait_s, mmc_wait_quantile_s, mmc_wait_s
from hetsim.specs.hardware import DeviceKind, DType
from hetsim.specs.model import ModelSpec
from hetsim.specs.parallel import CommOverlap
from hetsim.specs.plan import LoraServing, SpeculationSpec
from hetsim.workload.demand import NodeDemand

# DeepSeek's and SGLang's expert balancer (EPLB) adds 32 redundant experts (DeepSeek open-infra-index
# day 6; LMSYS 2025-05-05), the setting whose imbalance hetsim.perf.expert takes as measured.
EPLB_REDUNDANT_EXPERTS = 32


@dataclass(frozen=True)
class LlmTargets:
    """What an LLM stage must meet, and how it is sized."""

    ttft_s: float | None
    tbt_s: float | None
    headroom: float
    tp_options: tuple[int, ...]
    batch_options: tuple[int, ...]
    dtype: DType
    ttft_percentile: float = 99.0  # the share of calls whose TTFT must be within ttft_s
    tbt_percentile: float = 99.0  # the share of token gaps that must be within tbt_s
    pp_options: tuple[int, ...] = (1,)  # pipeline stages (may span nodes: a model too big for one node's TP group)
    prefill_budgets: tuple[int, ...] = (8192,)  # a prefill replica's token budget per step (vLLM's default alone)

    ep_options: tuple[int, ...] = ()  # expert-parallel degrees an MoE model's replicas may take (expert_splits)
    # speculative decoding a decoding replica may run (beside none), each with its draft model's spec (method draft)
    speculation: tuple[tuple[SpeculationSpec, ModelSpec | None], ...] = ()
    lora: LoraTargets | None = None  # the LoRA adapters the stage's calls name (hetsim.plan.lora); None: none

    def shapes(self) -> Iterator[tuple[int, int]]:
        """Every (tp, pp) a replica may take."""
        for pp in self.pp_options:
            for tp in self.tp_options:
                yield tp, pp

    def expert_splits(self, model: ModelSpec) -> Iterator[tuple[Shard, MoeOptions]]:
        """The expert-parallel splits an MoE model's replica may take beside ``shapes``: EP over
        ``ep`` devices with data-parallel attention, as SGLang and DeepSeek deploy it (EPLB with
        32 redundant experts where they divide evenly, else none), with and without two-batch
        overlap (it pays where the all-to-all dominates, and costs a second weight read where not)."""
        moe = None if model.architecture is None else model.architecture.moe
        if moe is None:
            return
        for ep in self.ep_options:
            redundant = next((r for r in (EPLB_REDUNDANT_EXPERTS, 0) if (moe.num_experts + r) % ep == 0), None)
            if ep < 2 or redundant is None:
                continue
            for overlap in (CommOverlap.NONE, CommOverlap.TWO_BATCH):
                yield Shard(ep=ep, dp=ep, redundant_experts=redundant), MoeOptions(redundant > 0, None, overlap)


def _replica(
    model: ModelSpec, perf: DevicePerf, tp: int, dtype: DType, max_seqs: int, pp: int = 1, budget: int | None = None,
    expert: tuple[Shard, MoeOptions] | None = None, lora: LoraServing | None = None,
) -> LlmReplica | None:
    """A replica if this shape is valid and fits; None otherwise (skipped, not an error).
    ``budget``: its chunked-prefill token budget (vLLM's default where None); ``expert``: an
    expert-parallel split instead of (tp, pp), each of whose attention groups takes ``max_seqs``
    and ``budget`` (the replica's limits are their sums); ``lora``: adapter slots reserved out of
    its KV memory, as the simulator reserves them."""
    device = perf.device
    if device.kind == DeviceKind.CPU or (tp > 1 and (device.scale_up is None or tp > device.scale_up.domain_size)):
        return None
    shard, moe = expert if expert is not None else (Shard(tp=tp, pp=pp), MoeOptions())
    groups = shard.dp
    slots = 0.0
    if lora is not None and model.architecture is not None:
        slots = slot_bytes(lora, model.architecture, Precision.uniform(dtype).activations, shard)
    limits = ServingLimits(max_num_seqs=max_seqs * groups, adapter_bytes_per_device=slots)
    if budget is not None:
        limits = replace(limits, max_batch_tokens=budget * groups)
    try:
        replica = LlmReplica(model, perf, shard, Precision.uniform(dtype), limits, moe)
        _ = replica.kv_capacity_tokens
        if shard.pp > 1 or (shard.devices > 1 and expert is not None):  # a fabric must join the replica's devices
            replica.step_seconds([SequenceWork(1, 1)])
    except HetsimError:
        return None
    return replica


def _long_prompt(demand: NodeDemand, percentile: float) -> int:
    """The prompt length at the TTFT percentile: its prefill alone can set that percentile."""
    return max(1, round(demand.input_tokens_at(percentile)))


def _tokens(demand: NodeDemand) -> tuple[int, int, int]:
    prompt = max(1, round(demand.input_tokens))
    output = max(1, round(demand.output_tokens))
    return prompt, output, prompt + output // 2


@dataclass(frozen=True)
class Decoding:
    """How a replica decodes at one batch: an iteration of ``step_s`` yields ``tokens_per_step``
    tokens per sequence (1 without speculation; its token gaps are the iterations)."""

    batch: int
    step_s: float
    tokens_per_step: float = 1.0

    @property
    def per_token_s(self) -> float:
        """Seconds per output token of a sequence (its mean token gap)."""
        return self.step_s / self.tokens_per_step


def _decode_batches(
    model: ModelSpec, perfs: list[DevicePerf], demand: NodeDemand, targets: LlmTargets, expert_parallel: bool = False
) -> Iterator[tuple[DevicePerf, tuple[int, int], LlmReplica, SpeculationSpec | None, ReplicaLora | None, list[Decoding]]]:
    """Every device x (TP, PP) replica that fits (and, with ``expert_parallel``, every expert-
    parallel one), without and with each speculation the targets allow, with how it decodes at
    each batch option whose KV fits at the mean context (an expert-parallel replica's batch
    options are per attention group). Where the stage's calls name LoRA adapters, a replica per
    slot count (``hetsim.plan.lora``): its batches those whose adapters its slots hold, each
    step with the adapter kernels of its tokens."""
    prompt, output, mid = _tokens(demand)
    for perf in perfs:
        for tp, pp, expert in _splits(model, targets, expert_parallel):
            groups = expert[0].dp if expert is not None else 1
            for slots in _slot_counts(targets, groups):
                replica, adapters = _lora_replica(model, perf, (tp, pp, expert), targets, slots)
                if replica is None:
                    continue
                fits = replica.max_batch(prompt + output)
                batches = [b * groups for b in targets.batch_options if b * groups <= fits and _holds(adapters, b * groups)]
                yield perf, (tp, pp), replica, None, adapters, [
                    Decoding(b, replica.step_seconds([SequenceWork(1, mid)] * b) + _kernels_s(adapters, b, b)) for b in batches
                ]  # fmt: skip
                for spec, draft in targets.speculation:
                    try:
                        speculative, steps = speculating(replica, spec, draft)
                    except HetsimError:  # the proposer does not fit beside the model: no such option
                        continue
                    fits = speculative.max_batch(prompt + output)
                    seen = replica.decode_seen([mid])
                    per_step = mixed_yield(spec.proposed, spec.rate, demand.acceptance_rates)  # calls' own rates
                    yield perf, (tp, pp), speculative, spec, adapters, [
                        Decoding(b, steps.iteration_s(b, [keys * b for keys in seen], [])
                                 + _kernels_s(adapters, b, b * (spec.proposed + 1)), per_step)
                        for b in batches if b <= fits
                    ]  # fmt: skip


def _slot_counts(targets: LlmTargets, groups: int) -> tuple[int | None, ...]:
    """The LoRA slot counts a replica may take (None: the stage serves no adapters)."""
    if targets.lora is None:
        return (None,)
    return targets.lora.slot_counts(tuple(b * groups for b in targets.batch_options))


def _lora_replica(
    model: ModelSpec, perf: DevicePerf, split: tuple[int, int, tuple[Shard, MoeOptions] | None], targets: LlmTargets,
    slots: int | None, limits: tuple[int, int | None] | None = None,
) -> tuple[LlmReplica | None, ReplicaLora | None]:
    """A replica of ``split`` (tp, pp, expert split) with ``slots`` LoRA slots (None: without
    LoRA) and its adapters; (None, None) where it does not fit or cannot serve them.
    ``limits``: (max_num_seqs, chunked-prefill budget); default a decoding replica's."""
    tp, pp, expert = split
    max_seqs, budget = limits or (max(targets.batch_options), None)
    if slots is None or targets.lora is None:
        return _replica(model, perf, tp, targets.dtype, max_seqs, pp, budget, expert), None
    replica = _replica(model, perf, tp, targets.dtype, max_seqs, pp, budget, expert, targets.lora.serving(slots))
    adapters = None if replica is None else replica_lora(targets.lora, replica, slots)
    return (replica, adapters) if adapters is not None else (None, None)


def _holds(adapters: ReplicaLora | None, calls: int) -> bool:
    """Whether a replica's LoRA slots are planned for ``calls`` calls at once (True without LoRA)."""
    return adapters is None or adapters.serving.max_loras in adapters.targets.slot_choices(calls)


def _kernels_s(adapters: ReplicaLora | None, calls: int, tokens: int) -> float:
    """Seconds the adapter kernels add to a step of ``calls`` calls' ``tokens`` tokens (0 without LoRA)."""
    return 0.0 if adapters is None else adapters.step_s(calls, tokens)


def _lora_detail(adapters: ReplicaLora | None) -> dict[str, object]:
    return {} if adapters is None else adapters.detail


def _lora_key(adapters: ReplicaLora | None) -> str:
    return "" if adapters is None else adapters.key


def _speculation_detail(spec: SpeculationSpec | None, decoding: Decoding) -> dict[str, object]:
    """An option's speculation as the plan names it (``hetsim.plan.export``), and the tokens an
    iteration yields per sequence over the stage's calls (their own acceptance rates included)."""
    if spec is None:
        return {}
    named = spec.model_dump(include={"method", "tokens", "acceptance_rate", "draft_model"}, exclude_none=True)
    return {"speculation": named, "tokens_per_iteration": decoding.tokens_per_step}


def _speculation_key(spec: SpeculationSpec | None) -> str:
    return "" if spec is None else f" {spec.method}{spec.proposed}"


def _splits(
    model: ModelSpec, targets: LlmTargets, expert_parallel: bool = True
) -> Iterator[tuple[int, int, tuple[Shard, MoeOptions] | None]]:
    """(tp, pp, None) for every shape, then (1, 1, expert split) for every expert-parallel one.
    Expert parallelism with data-parallel attention is offered to disaggregated stages only:
    DeepEP's prefill and decode kernels cannot serve one group of devices together under DP
    attention (LMSYS 2025-05-05, "DeepEP" table), which is why SGLang and DeepSeek disaggregate."""
    for tp, pp in targets.shapes():
        yield tp, pp, None
    if expert_parallel:
        for expert in targets.expert_splits(model):
            yield 1, 1, expert


def _shape(tp: int, pp: int, replica: LlmReplica | None = None) -> str:
    """An option key's split: 'tp8 pp2', or 'ep32 dp-attention32 tbo' for an expert-parallel replica."""
    if replica is not None and replica.shard.ep > 1:
        return f"ep{replica.shard.ep} dp-attention{replica.shard.dp}" + (" tbo" if replica.moe.micro_batches > 1 else "")
    return f"tp{tp}" + (f" pp{pp}" if pp > 1 else "")


def _split_detail(tp: int, pp: int, replica: LlmReplica) -> dict[str, object]:
    """An option's split as the plan names it (``hetsim.plan.export``)."""
    shard = replica.shard
    if shard.ep == 1:
        return {"tp": tp, "pp": pp}
    return {"tp": shard.tp, "pp": shard.pp, "ep": shard.ep, "dp_attention": shard.dp,
            "redundant_experts": shard.redundant_experts, "expert_balancing": replica.moe.balancing,
            "overlap": replica.moe.overlap.value, "expert_imbalance": replica.imbalance}  # fmt: skip


# Loads a replica may be planned at, below the headroom's: a latency tail from queueing shrinks
# as a replica is loaded less, so a tight TTFT percentile can be met by more, less-loaded
# replicas (priced: capacity per replica falls with the load).
LOWER_UTILIZATIONS = (0.6, 0.4, 0.25, 0.15, 0.1)


def _utilizations(headroom: float) -> list[float]:
    planned = 1.0 / headroom
    return [planned] + [u for u in LOWER_UTILIZATIONS if u < planned - 1e-9]


def _at_load(key: str, utilization: float, headroom: float) -> tuple[str, float]:
    """An option key naming a load below the headroom's, and the factor on its capacity."""
    if abs(utilization * headroom - 1.0) < 1e-9:
        return key, 1.0
    return f"{key} u{utilization:.2f}", utilization * headroom


AGGREGATED_BUDGETS = (512, 2048)
"""Chunked-prefill token budgets an aggregated replica may take besides the fleet's prefill budgets
(a small chunk keeps a slow device's token gaps short: vLLM's V1 default is 2,048 for online
serving on small-memory GPUs and 8,192 otherwise)."""


def aggregated_options(
    model: ModelSpec, perfs: list[DevicePerf], demand: NodeDemand, targets: LlmTargets
) -> list[Option]:
    """Per device, (TP, PP) shape, batch and planned load, the replica with the largest chunked-
    prefill budget meeting the TBT and TTFT objectives (module docstring): the budget changes the
    latency tail only, not the throughput, so the largest that meets both is the one to run."""
    prompt, output, _ = _tokens(demand)
    long_prompt = _long_prompt(demand, targets.ttft_percentile)
    gap_prompt = _long_prompt(demand, targets.tbt_percentile)
    budgets = sorted(set(targets.prefill_budgets) | set(AGGREGATED_BUDGETS), reverse=True)
    options = []
    for perf, (tp, pp), replica, spec, adapters, batches in _decode_batches(model, perfs, demand, targets):
        p1 = prefill_time(replica, [prompt])[0] + _kernels_s(adapters, 1, prompt)
        p1_long = prefill_time(replica, [long_prompt])[0] + _kernels_s(adapters, 1, long_prompt) if long_prompt > prompt else p1
        # A budget's chunk is priced once, whole (the prompt at the TBT percentile, at most the
        # budget), and scaled to the tokens a batch leaves beside its decodes: linear in a chunk's
        # tokens, its attention over itself being small at these sizes.
        chunk = {b: min(gap_prompt, b) for b in budgets}
        priced = {tokens: prefill_time(replica, [tokens])[0] + _kernels_s(adapters, 1, tokens) for tokens in set(chunk.values())}
        per_token = {b: priced[tokens] / tokens for b, tokens in chunk.items()}
        for decoding in batches:
            batch, step = decoding.batch, decoding.step_s
            service = batch * p1 + output * decoding.per_token_s
            queries = batch * (spec.proposed + 1 if spec is not None else 1)  # what the decoders take of a budget
            iterations = output / decoding.tokens_per_step  # a call's decode iterations
            gaps = {b: _aggregated_gap_s(step, per_token[b], (batch, queries), prompt, gap_prompt, iterations, b,
                                         targets.tbt_percentile)
                    for b in budgets if b > queries}  # fmt: skip
            fitting = [b for b, gap in gaps.items() if not (targets.tbt_s and gap > targets.tbt_s)]
            for utilization in _utilizations(targets.headroom):
                option = _aggregated_option(perf, tp, pp, replica, (spec, adapters), decoding, service, utilization,
                                            fitting, gaps, (prompt, long_prompt, output, p1, p1_long), targets)  # fmt: skip
                if option is not None:
                    options.append(option)
    return options


def _aggregated_option(perf: DevicePerf, tp: int, pp: int, replica: LlmReplica,
                       serving: tuple[SpeculationSpec | None, ReplicaLora | None], decoding: Decoding, service: float,
                       utilization: float, budgets: list[int], gaps: dict[int, float],
                       sizes: tuple[int, int, int, float, float], targets: LlmTargets) -> Option | None:  # fmt: skip
    """The option of the largest of ``budgets`` (those meeting the TBT objective, largest first)
    whose TTFT also meets its objective at this load; None when none does. ``serving``: the
    replica's speculation and LoRA adapters (a call that misses its adapter waits for its copy)."""
    spec, adapters = serving
    prompt, long_prompt, output, p1, p1_long = sizes
    batch, step = decoding.batch, decoding.step_s
    queries = batch * (spec.proposed + 1 if spec is not None else 1)
    wait = mmc_wait_s(batch, service, utilization)
    arrivals = utilization * batch / service  # calls/s a replica takes at this load
    adapter_wait = adapters.delay_s(arrivals)[0] if adapters is not None else 0.0
    if math.isinf(adapter_wait):  # its adapter copies cannot keep up
        return None
    for budget in budgets:
        chunks = math.ceil(prompt / (budget - queries))
        lane = p1 + chunks * step  # the prefill lane: one prompt's chunks at a time, each on a decode step
        lane_load = arrivals * lane
        if lane_load >= 1.0:
            continue
        lane_wait = mmc_wait_s(1, lane, lane_load)
        ttft = max(lane + mmc_wait_quantile_s(1, lane, lane_load, targets.ttft_percentile) + wait,
                   lane + lane_wait + mmc_wait_quantile_s(batch, service, utilization, targets.ttft_percentile),
                   p1_long + math.ceil(long_prompt / (budget - queries)) * step + lane_wait + wait)  # fmt: skip
        if adapters is not None:
            ttft = adapters.ttft_s(ttft, arrivals, targets.ttft_percentile)
        if targets.ttft_s and ttft > targets.ttft_s:
            continue
        tbt_mean = decoding.per_token_s + batch / output * p1
        key, factor = _at_load(f"{perf.device.name} {_shape(tp, pp, replica)}{_speculation_key(spec)}{_lora_key(adapters)} "
                               f"b{batch}", utilization, targets.headroom)  # fmt: skip
        return Option(
            key=key, device=perf.device.name, devices_per_replica=replica.devices, capacity_per_replica=factor * batch / service,
            latency_s=adapter_wait + lane + lane_wait + wait + (output - 1) * tbt_mean,
            detail={**_split_detail(tp, pp, replica), **_speculation_detail(spec, decoding), **_lora_detail(adapters), "batch": batch,
                    "dtype": targets.dtype.value, "ttft_s": ttft,
                    "tbt_s": gaps[budget], "utilization": utilization, "max_batch_tokens": budget,
                    "ttft_percentile": targets.ttft_percentile, "tbt_percentile": targets.tbt_percentile,
                    "stage": "aggregated", "provenance": perf.provenance.value},
        )  # fmt: skip
    return None


def _aggregated_gap_s(step: float, prefill_s_per_token: float, batch: tuple[int, int], prompt: int, gap_prompt: int,
                      iterations: float, budget: int, percentile: float) -> float:  # fmt: skip
    """The ``percentile``-th percentile token gap of an aggregated replica (module docstring):
    a decode step, or, when more than 1 - p of the steps carry a prefill chunk, one carrying the
    chunk of a prompt at that percentile of the prompt lengths (up to the budget left beside the
    batch's decodes: under load, waiting prompts fill it), at ``prefill_s_per_token`` seconds a chunk token.
    ``batch``: (sequences, the budget tokens their decodes take: more than one each when they
    verify drafts); ``iterations``: a call's decode iterations (its output tokens over the yield)."""
    sequences, queries = batch
    chunks = math.ceil(prompt / max(budget - queries, 1))
    carrying = min(1.0, sequences * chunks / iterations)
    if carrying <= 1.0 - percentile / 100.0:
        return step
    return step + prefill_s_per_token * min(gap_prompt, budget - queries)


def prefill_options(
    model: ModelSpec, perfs: list[DevicePerf], demand: NodeDemand, targets: LlmTargets, link_bytes_per_s: float
) -> list[Option]:
    """A prefill replica per device, (TP, PP) shape, token budget and planned load that meets
    the TTFT objective; a larger budget prefills more prompts per step (throughput) in longer
    steps (latency), so the budget is chosen with the rest, not fixed. With LoRA, a replica per
    slot count holding the adapters of a step's prompts and of those queued behind it."""
    prompt, _, _ = _tokens(demand)
    options = []
    splits = list(_splits(model, targets))
    for perf, split, budget in ((f, s, b) for f in perfs for s in splits for b in targets.prefill_budgets):
        groups = split[2][0].dp if split[2] is not None else 1
        held = _prefill_calls(max(1, budget * groups // prompt), targets.headroom)
        for slots in (None,) if targets.lora is None else targets.lora.slot_choices(held):
            replica, adapters = _lora_replica(model, perf, split, targets, slots, (256, budget))
            if replica is not None:
                options += _prefill_replica_options(perf, split[:2], replica, adapters, demand, targets, link_bytes_per_s)
    return options


def _prefill_calls(together: int, headroom: float) -> int:
    """Calls a prefill replica holds at once: a step's prompts and the mean M/D/1 queue of
    steps behind it at the planned load (capped at 95 %), each of ``together`` prompts."""
    load = min(1.0 / headroom, 0.95)
    return math.ceil(together * (1.0 + load * load / (2.0 * (1.0 - load))))


def _prefill_replica_options(perf: DevicePerf, shape: tuple[int, int], replica: LlmReplica, adapters: ReplicaLora | None,
                             demand: NodeDemand, targets: LlmTargets, link_bytes_per_s: float) -> list[Option]:  # fmt: skip
    """The options of one prefill replica, one per planned load that meets the TTFT objective."""
    (tp, pp), prompt = shape, _tokens(demand)[0]
    long_prompt = _long_prompt(demand, targets.ttft_percentile)
    budget = replica.limits.max_batch_tokens  # an expert-parallel replica's groups each take the budget
    groups = replica.shard.dp  # a prompt is one group's: its latency is a step of one prompt per group
    p1 = prefill_time(replica, [prompt] * groups)[0] + _kernels_s(adapters, groups, prompt * groups)
    p1_long = (prefill_time(replica, [long_prompt] * groups)[0] + _kernels_s(adapters, groups, long_prompt * groups)
               if long_prompt > prompt else p1)  # fmt: skip
    together = max(1, budget // prompt)
    step = replica.step_seconds([SequenceWork(prompt, 0)] * together) + _kernels_s(adapters, together, prompt * together)
    rate = together / step if prompt <= budget else groups / p1
    kv_bytes = prompt * kv_bytes_per_token(replica.arch, replica.precision.kv_cache)
    rate = min(rate, link_bytes_per_s / kv_bytes)  # KV egress must keep up
    options = []
    for utilization in _utilizations(targets.headroom):
        adapter_wait = adapters.delay_s(utilization * rate)[0] if adapters is not None else 0.0
        ttft_mean = p1 + md1_wait_s(1 / rate, utilization) + adapter_wait
        ttft = max(p1 + mmc_wait_quantile_s(1, 1 / rate, utilization, targets.ttft_percentile),
                   p1_long + md1_wait_s(1 / rate, utilization))  # fmt: skip
        if adapters is not None:
            ttft = adapters.ttft_s(ttft, utilization * rate, targets.ttft_percentile)
        if math.isinf(ttft_mean) or (targets.ttft_s and ttft > targets.ttft_s):
            continue
        key, factor = _at_load(f"{perf.device.name} {_shape(tp, pp, replica)}{_lora_key(adapters)} prefill t{budget}",
                               utilization, targets.headroom)  # fmt: skip
        options.append(Option(
            key=key, device=perf.device.name, devices_per_replica=replica.devices,
            capacity_per_replica=factor * rate, latency_s=ttft_mean,
            detail={**_split_detail(tp, pp, replica), **_lora_detail(adapters), "batch": max(together, 1),
                    "max_batch_tokens": budget, "dtype": targets.dtype.value, "ttft_s": ttft, "stage": "prefill",
                    "utilization": utilization, "ttft_percentile": targets.ttft_percentile,
                    "provenance": perf.provenance.value},
        ))  # fmt: skip
    return options


def decode_options(model: ModelSpec, perfs: list[DevicePerf], demand: NodeDemand, targets: LlmTargets) -> list[Option]:
    _, output, _ = _tokens(demand)
    options = []
    for perf, (tp, pp), replica, spec, adapters, batches in _decode_batches(model, perfs, demand, targets, expert_parallel=True):
        for decoding in batches:
            batch, step, per_token = decoding.batch, decoding.step_s, decoding.per_token_s
            if targets.tbt_s and step > targets.tbt_s:
                continue
            capacity = batch / (output * per_token)
            # a call whose adapter is in no slot waits for its copy before its first decode
            adapter_wait = adapters.delay_s(capacity / targets.headroom)[0] if adapters is not None else 0.0
            if math.isinf(adapter_wait):
                continue
            options.append(Option(
                key=f"{perf.device.name} {_shape(tp, pp, replica)}{_speculation_key(spec)}{_lora_key(adapters)} b{batch} decode",
                device=perf.device.name, devices_per_replica=replica.devices,
                capacity_per_replica=capacity, latency_s=max(output - 1, 0) * per_token + adapter_wait,
                detail={**_split_detail(tp, pp, replica), **_speculation_detail(spec, decoding), **_lora_detail(adapters),
                        "batch": batch, "dtype": targets.dtype.value, "tbt_s": step, "stage": "decode",
                        "tbt_percentile": targets.tbt_percentile, "provenance": perf.provenance.value},
            ))  # fmt: skip
    return options


def kv_transfer_s(
    model: ModelSpec, demand: NodeDemand, dtype: DType, link_bytes_per_s: float, link_latency_s: float
) -> float:
    """paper.md Eq. (1)-(3): the prompt's KV cache over the prefill->decode link."""
    assert model.architecture is not None
    prompt, _, _ = _tokens(demand)
    kv = kv_bytes_per_token(model.architecture, Precision.uniform(dtype).kv_cache) * prompt
    return link_latency_s + kv / link_bytes_per_s


def model_stage_options(model: ModelSpec, perfs: list[DevicePerf], demand: NodeDemand, headroom: float) -> list[Option]:
    """A non-LLM model (STT, TTS, embed, rerank, guardrail) on any device that can run it."""
    amount = model_amount(model, demand.units, round(demand.input_tokens))
    options = []
    for perf in perfs:
        try:
            service = model_time(perf, model, amount).seconds
        except HetsimError:
            continue
        latency = service + md1_wait_s(service, 1 / headroom) * 2  # M/M/1 wait = 2x M/D/1
        options.append(Option(
            key=f"{perf.device.name}", device=perf.device.name, capacity_per_replica=1 / service, latency_s=latency,
            detail={"service_s": service, "concurrency": 1, "provenance": perf.provenance.value},
        ))  # fmt: skip
    return options


def cpu_work_options(perfs: list[DevicePerf], demand: NodeDemand, headroom: float) -> list[Option]:
    """Tools and code execution: measured seconds per call, one core each, on CPU sockets."""
    service = demand.duration_s if not math.isnan(demand.duration_s) else 0.0
    options = []
    for perf in perfs:
        if perf.device.cpu is None:
            continue
        cores = perf.device.cpu.cores
        latency = service + mmc_wait_s(cores, service, 1 / headroom)
        capacity = cores / service if service > 0 else math.inf
        options.append(Option(
            key=f"{perf.device.name} x{cores} cores", device=perf.device.name, capacity_per_replica=capacity,
            latency_s=latency, detail={"service_s": service, "concurrency": cores, "provenance": "measured (trace durations)"},
        ))  # fmt: skip
    return options


def retrieval_options(perfs: list[DevicePerf], index: VectorIndex, headroom: float) -> list[Option]:
    options = []
    for perf in perfs:
        try:
            service = vector_search_time(perf, index).seconds
        except HetsimError:
            continue
        options.append(Option(
            key=f"{perf.device.name} {index.kind.value}", device=perf.device.name, capacity_per_replica=1 / service,
            latency_s=service + 2 * md1_wait_s(service, 1 / headroom),
            detail={"service_s": service, "concurrency": 1, "provenance": perf.provenance.value,
                    "vector_index": {"vectors": index.vectors, "dimension": index.dimension, "dtype": index.dtype.value,
                                     "kind": IndexKind(index.kind).value}},
        ))  # fmt: skip
    return options
