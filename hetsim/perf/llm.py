"""An LLM replica (model x device x parallelism x precision): step time and memory fit.

``LlmReplica.step`` prices one iteration of a continuously batched server (vLLM/SGLang
style): a mix of prefill chunks and decode tokens. ``LlmReplica.kv_capacity_tokens`` is the
paged KV cache left after weights, activations and runtime reserve.

Pipeline parallelism: a step's latency is the sum of its stages plus the activation hand-offs
between them; ``interval_s`` (one stage) is the spacing of steps when ``pp`` micro-batches
are kept in flight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from hetsim.errors import EstimateError
from hetsim.perf.attention_pairs import chunk_pairs
from hetsim.perf.collectives import Fabric, all_reduce_times, fabric_for_group, point_to_point_times
from hetsim.perf.decode_run import AffineDecodeRun
from hetsim.perf.expert import (
    ExpertLinks,
    MoeOptions,
    all_to_all_s,
    check_expert_shard,
    mlp_params_per_device_per_layer,
    moe_mlp_ops,
    overlapped_s,
)
from hetsim.perf.kernels import all_to_all_kernels
from hetsim.perf.roofline import Bound, DevicePerf, OpCost, Provenance
from hetsim.perf.step_pricing import StepPricer
from hetsim.perf.transformer import (
    Precision,
    SequenceWork,
    Shard,
    attention_constants,
    attention_layer_groups,
    attention_ops,
    head_ops,
    kv_elements_per_token_per_layer,
    kv_heads_per_rank,
    mlp_ops,
    parameter_count,
    prefill_attention_constants,
    projection_ops,
    unpartitioned_decode,
)
from hetsim.specs.calibration import CurveKind, EngineOverheads
from hetsim.specs.model import ArchitectureSpec, AttentionKind, ModelSpec

GIB = 2.0**30


@dataclass(frozen=True)
class ServingLimits:
    """Server settings that bound a replica, with vLLM's defaults.

    Attributes:
        memory_utilization: share of device memory the server may use (vLLM
            ``gpu_memory_utilization`` default 0.9).
        max_batch_tokens: chunked-prefill token budget per step (vLLM V1 default 8192).
        max_num_seqs: most sequences in one batch (vLLM default 256).
        runtime_reserve_bytes: CUDA context, library workspaces and graphs (about 1 GiB
            observed in vLLM start-up logs on H100; an assumption for other devices).
        kv_block_tokens: paged-attention block size (vLLM default 16).
        adapter_bytes_per_device: LoRA adapter slots reserved on each device
            (``hetsim.perf.lora.slot_bytes_per_device``; 0 without LoRA).
        proposer_bytes_per_device, proposer_kv_bytes_per_token_per_device: a speculative
            proposer's weights beside the model's, and its KV cache per token cached
            (``hetsim.perf.speculative.with_proposer``; 0 without speculation).
    """

    memory_utilization: float = 0.90
    max_batch_tokens: int = 8192
    max_num_seqs: int = 256
    runtime_reserve_bytes: float = 1.0 * GIB
    kv_block_tokens: int = 16
    adapter_bytes_per_device: float = 0.0
    proposer_bytes_per_device: float = 0.0
    proposer_kv_bytes_per_token_per_device: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.memory_utilization <= 1:
            raise EstimateError(f"memory_utilization: expected a value in (0, 1], got {self.memory_utilization}")
        if self.max_batch_tokens < 1 or self.max_num_seqs < 1 or self.kv_block_tokens < 1:
            raise EstimateError("serving limits: expected max_batch_tokens, max_num_seqs and kv_block_tokens >= 1")


@dataclass(frozen=True, slots=True)
class StepEstimate:
    """Time of one server iteration, split by what bounds each part."""

    seconds: float
    interval_s: float
    bound: Bound
    provenance: Provenance
    by_bound_s: dict[Bound, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LlmReplica:
    """One model instance on ``shard.devices`` devices of one type (``Shard``: tensor, pipeline,
    expert and attention data parallelism). ``limits`` are the replica's (its scheduler's view,
    as SGLang's server arguments are); attention groups share them evenly."""

    model: ModelSpec
    perf: DevicePerf
    shard: Shard = Shard()
    precision: Precision = Precision()
    limits: ServingLimits = ServingLimits()
    moe: MoeOptions = MoeOptions()

    def __post_init__(self) -> None:
        if self.model.architecture is None:
            raise EstimateError(f"model {self.model.name!r} is a {self.model.kind} model, not an LLM")
        if self.shard.pp > self.arch.num_layers:
            raise EstimateError(f"pp: expected at most the model's {self.arch.num_layers} layers, got {self.shard.pp}")
        if self.arch.num_attention_heads % self.shard.tp:
            raise EstimateError(
                f"tp: expected a divisor of {self.model.name}'s {self.arch.num_attention_heads} attention heads, "
                f"got {self.shard.tp}"
            )
        check_expert_shard(self.arch, self.shard, self.moe, self.model.name)

    @property
    def arch(self) -> ArchitectureSpec:
        assert self.model.architecture is not None
        return self.model.architecture

    @property
    def devices(self) -> int:
        return self.shard.devices

    @property
    def layers_per_stage(self) -> int:
        return math.ceil(self.arch.num_layers / self.shard.pp)

    @property
    def group_max_num_seqs(self) -> int:
        """Sequences one attention group batches at most (an even share of the replica's)."""
        return -(-self.limits.max_num_seqs // self.shard.dp)

    @property
    def group_max_batch_tokens(self) -> int:
        """Tokens one attention group computes per step at most (an even share of the budget)."""
        return -(-self.limits.max_batch_tokens // self.shard.dp)

    @cached_property
    def imbalance(self) -> float:
        """Busiest/mean routed rows per device (1 without expert parallelism)."""
        return self.moe.imbalance_factor(self.shard)

    # ---- memory ---------------------------------------------------------------------------

    @cached_property
    def weight_bytes_per_device(self) -> float:
        """Weights on the fullest device: its stage's layers and embedding or head, TP-sharded
        (routed experts split as ``hetsim.perf.expert.mlp_params_per_device_per_layer`` says)."""
        counts = parameter_count(self.arch)
        ends = (
            counts["embedding"] + counts["lm_head"]
            if self.shard.pp == 1
            else max(counts["embedding"], counts["lm_head"])
        )
        if self.arch.moe is None:
            per_layer = (counts["attention"] + counts["mlp"]) / self.arch.num_layers / self.shard.tp
        else:
            per_layer = counts["attention"] / self.arch.num_layers / self.shard.tp
            per_layer += mlp_params_per_device_per_layer(self.arch, self.shard)
        params = per_layer * self.layers_per_stage + ends / self.shard.tp
        return params * self.precision.weights.bytes_per_element

    @cached_property
    def activation_bytes_per_device(self) -> float:
        """Peak activations of a full chunked-prefill step of one attention group (MLP intermediate
        dominates; under expert parallelism the busiest device's routed rows, and the dispatched
        and combined hidden states) plus logits."""
        arch, tp = self.arch, self.shard.tp
        width = (
            arch.intermediate_size
            if arch.moe is None
            else arch.moe.expert_intermediate_size * arch.moe.experts_per_token * self.imbalance
        )
        # dispatched rows in, combined rows out: k x imbalance hidden states per token, twice
        buffers = 2 * arch.hidden_size * arch.moe.experts_per_token * self.imbalance if arch.moe and self.shard.ep > 1 else 0.0
        per_token = (4 * arch.hidden_size + 2 * width / tp + buffers) * self.precision.activations.bytes_per_element
        logits = self.group_max_num_seqs * arch.vocab_size / tp * 4.0  # fp32 logits for sampling
        return self.group_max_batch_tokens * per_token + logits

    @cached_property
    def kv_bytes_per_token_per_device(self) -> float:
        elements = kv_elements_per_token_per_layer(self.arch, self.shard.tp)
        return self.layers_per_stage * elements * self.precision.kv_cache.bytes_per_element

    @cached_property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache the replica holds (whole paged blocks): each attention group's,
        together (a group caches only its own requests); raises if the model does not fit."""
        return self.group_kv_capacity_tokens * self.shard.dp

    @cached_property
    def group_kv_capacity_tokens(self) -> int:
        """Tokens of KV cache one attention group holds (its devices' free memory after weights,
        activations and runtime); raises if the model does not fit."""
        usable = self.perf.device.memory_bytes * self.limits.memory_utilization
        free = (
            usable - self.weight_bytes_per_device - self.activation_bytes_per_device - self.limits.runtime_reserve_bytes
            - self.limits.adapter_bytes_per_device - self.limits.proposer_bytes_per_device
        )
        per_token = self.kv_bytes_per_token_per_device + self.limits.proposer_kv_bytes_per_token_per_device
        blocks = math.floor(max(free, 0.0) / (per_token * self.limits.kv_block_tokens))
        if blocks < 1:
            raise EstimateError(self._does_not_fit_message(usable))
        return blocks * self.limits.kv_block_tokens

    def _does_not_fit_message(self, usable: float) -> str:
        need = self.weight_bytes_per_device + self.activation_bytes_per_device + self.limits.runtime_reserve_bytes
        need += self.limits.adapter_bytes_per_device + self.limits.proposer_bytes_per_device
        extras = [name for name, value in (("LoRA slots", self.limits.adapter_bytes_per_device),
                                           ("the speculative proposer", self.limits.proposer_bytes_per_device)) if value]  # fmt: skip
        needs = ["weights", "activations", "runtime", *extras]
        parts = ", ".join(needs[:-1]) + " and " + needs[-1]
        return (
            f"{self.model.name} ({self.precision.weights}) does not fit on {self.perf.device.name} at "
            f"tp={self.shard.tp} pp={self.shard.pp}{self._expert_label}: needs {need / 1e9:.1f} GB per device for "
            f"{parts}, {usable / 1e9:.1f} GB usable; raise tp/pp"
            f"{'/ep' if self.arch.moe else ''} or use a smaller dtype"
        )

    def max_batch(self, tokens_per_sequence: int) -> int:
        """Most sequences of ``tokens_per_sequence`` (prompt + output) whose KV fits at once."""
        if tokens_per_sequence < 1:
            raise EstimateError(f"tokens per sequence: expected >= 1, got {tokens_per_sequence}")
        blocks_each = math.ceil(tokens_per_sequence / self.limits.kv_block_tokens)
        fit = self.group_kv_capacity_tokens // (blocks_each * self.limits.kv_block_tokens)
        return int(min(fit * self.shard.dp, self.limits.max_num_seqs))

    @property
    def _expert_label(self) -> str:
        shard = self.shard
        return (f" dp_attention={shard.dp}" if shard.dp > 1 else "") + (f" ep={shard.ep}" if shard.ep > 1 else "")

    # ---- time -----------------------------------------------------------------------------

    def _stage_ops(self, batch: tuple[SequenceWork, ...]) -> list[OpCost]:
        tokens = sum(s.new_tokens for s in batch)
        return self._token_ops(tokens) + self._attention_ops(batch)

    def _attention_ops(self, batch: tuple[SequenceWork, ...]) -> list[OpCost]:
        return attention_ops(
            self.arch, batch, self.precision, self.shard.tp, self.layers_per_stage, self.shard.dp,
            self._kv_read_per_query_head, self._unpartitioned_decode,
        )  # fmt: skip

    @cached_property
    def _kv_read_per_query_head(self) -> bool:
        """Whether the device's decode kernel reads KV once per query head (``KernelClass``)."""
        return self.perf.kernels.attention_decode.kv_read_per_query_head

    @cached_property
    def _unpartitioned_decode(self) -> tuple[float, float]:
        """When the decode kernel switches to vLLM's unpartitioned PagedAttention, and its
        KV-read factor (``transformer.unpartitioned_decode``)."""
        return unpartitioned_decode(self.arch, self.shard.tp, self.perf.kernels.attention_decode, self.shard.dp)

    def group_tokens(self, tokens: Any) -> Any:
        """Tokens one attention group computes of a step's ``tokens`` (an even share: DeepSeek's
        DP load balancer equalises them; ints or arrays)."""
        dp = self.shard.dp
        return tokens if dp == 1 else -(-tokens // dp)

    def _token_ops(self, tokens: Any) -> list[OpCost]:
        """The ops of one stage's busiest device that depend only on the step's ``tokens`` (an int
        or an array of counts): projections, norms and MLPs of every layer. Under two-batch
        overlap, of both micro-batches (each half the tokens, so weights are read twice)."""
        arch, tp, layers = self.arch, self.shard.tp, self.layers_per_stage
        micro = self.moe.micro_batches
        group = self.group_tokens(tokens)
        if micro > 1:
            group = -(-group // micro)
        ops = projection_ops(arch, group, self.precision, tp, layers * micro, self._fused)
        if arch.moe is None:
            return ops + mlp_ops(arch, group, self.precision, tp, layers * micro, 0)
        dense_layers = min(arch.moe.first_dense_layers, layers)
        counts = ((layers - dense_layers) * micro, dense_layers * micro)
        return ops + moe_mlp_ops(arch, (group, group * self.shard.dp), self.precision, self.shard, self.imbalance, counts)

    def step_ops(self, batch: Sequence[SequenceWork]) -> list[OpCost]:
        """Every op one device of the first stage runs in a step (head ops included when pp = 1)."""
        batch = tuple(batch)
        tokens = sum(s.new_tokens for s in batch)
        ops = self._stage_ops(batch)
        if self.shard.pp == 1:
            rows = self.group_tokens(len(batch))
            ops += head_ops(self.arch, self.group_tokens(tokens), rows, self.precision, self.shard.tp, self._fused)
        return ops

    def step_work(self, batch: Sequence[SequenceWork]) -> tuple[float, float]:
        """(FLOPs, bytes) one device of the first stage executes in a step."""
        ops = self.step_ops(batch)
        return sum(op.flops * op.count for op in ops), sum(op.bytes * op.count for op in ops)

    def _network_s(self, tokens: int) -> tuple[float, float]:
        """(all-reduce seconds per stage, pipeline hand-off seconds per boundary)."""
        all_reduce, handoff = self._network_times(np.asarray(tokens))
        return float(all_reduce), float(handoff)

    def _network_times(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_network_s`` of each token count in an array."""
        shard, layers = self.shard, self.layers_per_stage
        value_bytes = self.arch.hidden_size * self.precision.activations.bytes_per_element
        activation_bytes = self.group_tokens(tokens) * value_bytes
        tp_fabric, pp_fabric = self._fabrics
        # Two all-reduces per layer: after attention and after the MLP (Megatron-style TP).
        all_reduce = 2 * layers * all_reduce_times(activation_bytes, shard.tp, tp_fabric)
        moe = self.arch.moe
        if moe is not None and shard.dp > 1:  # MoE layers leave the attention group
            moe_layers = layers - min(moe.first_dense_layers, layers)
            all_reduce = all_reduce - moe_layers * all_reduce_times(activation_bytes, shard.tp, tp_fabric)
            if not shard.is_expert_parallel:  # tensor-parallel experts: every token gathered and scattered back
                stage_bytes = self.group_tokens(tokens) * shard.dp * value_bytes
                all_reduce = all_reduce + moe_layers * all_reduce_times(
                    stage_bytes, shard.stage_devices, self._stage_fabric
                )
        scale = self.perf.time_scale
        return scale * all_reduce, scale * point_to_point_times(activation_bytes / shard.tp, pp_fabric)

    @cached_property
    def _stage_fabric(self) -> Fabric | None:
        """The fabric of a whole pipeline stage (tensor-parallel experts over its devices)."""
        return fabric_for_group(self.perf.device, self.shard.stage_devices, self.perf.kernels.collective)

    @cached_property
    def _expert_links(self) -> ExpertLinks:
        return ExpertLinks.of(self.perf.device, self.shard.ep)

    def _expert_exposed_s(self, tokens: Any, compute_s: Any) -> Any:
        """What the all-to-all adds to a stage whose token ops take ``compute_s`` (floats or
        arrays over token counts): its whole time, or what two-batch overlap leaves exposed."""
        shard, moe = self.shard, self.arch.moe
        if moe is None or not shard.is_expert_parallel:
            return 0.0 * compute_s
        params = all_to_all_kernels(self.perf.kernels)
        micro = self.moe.micro_batches
        rank_tokens = -(-self.group_tokens(tokens) // micro) * shard.dp / shard.ep  # one micro-batch's, per device
        moe_layers = self.layers_per_stage - min(moe.first_dense_layers, self.layers_per_stage)
        one = all_to_all_s(rank_tokens, self.arch, self.precision, shard.ep, self.imbalance, self._expert_links, params)
        comm = self.perf.time_scale * micro * moe_layers * np.asarray(one)
        share = np.where(np.asarray(rank_tokens) > params.low_latency_max_tokens, params.throughput_sm_share, 0.0)
        exposed = overlapped_s(compute_s, comm, share, self.moe.overlap) - compute_s
        return float(exposed) if np.ndim(exposed) == 0 else exposed

    @cached_property
    def _fused(self) -> bool:
        """Whether the kernel model counts element-wise work as fused (the paper's roofline)."""
        return self.perf.kernels.fused_elementwise

    @cached_property
    def _fabrics(self) -> tuple[Fabric | None, Fabric | None]:
        """(tensor-parallel fabric, pipeline fabric) of this replica's device group."""
        collective = self.perf.kernels.collective
        tp_fabric = fabric_for_group(self.perf.device, self.shard.tp, collective)
        pp_fabric = fabric_for_group(self.perf.device, self.shard.devices, collective) if self.shard.pp > 1 else None
        return tp_fabric, pp_fabric

    def step(self, batch: Sequence[SequenceWork]) -> StepEstimate:
        """Time of one iteration processing ``batch`` (prefill chunks and/or decode tokens).

        Its seconds are the step model's (``pricer``, the one model every path prices with);
        ``by_bound_s`` attributes them to what bounds each part: the step's ops (``step_ops``)
        by their roofline bound, collectives to the network, head and engine to overhead."""
        batch = tuple(batch)
        if not batch:
            raise EstimateError("step: expected at least one sequence in the batch, got none")
        seconds = self.pricer.step_seconds_of(0, [], [(s.new_tokens, s.context_tokens) for s in batch])
        tokens = sum(s.new_tokens for s in batch)
        pp, network = self.shard.pp, self._network_s(tokens)
        handoff_s = network[1]
        by_bound = self._by_bound_s(batch, tokens, network)
        bound = max(by_bound, key=lambda b: by_bound[b])
        interval_s = (seconds - (pp - 1) * handoff_s) / pp  # one stage: the spacing of pipelined steps
        return StepEstimate(seconds, interval_s, bound, self.perf.provenance, by_bound)

    def _by_bound_s(self, batch: tuple[SequenceWork, ...], tokens: int, network: tuple[float, float]) -> dict[Bound, float]:
        """What bounds each part of a step's time (``step``'s attribution; the parts are those
        the pricer adds up, so they sum to its seconds); ``network``: ``_network_s(tokens)``."""
        pp, by_bound = self.shard.pp, {}
        token_ops = self._token_ops(tokens)
        token_s = 0.0
        for index, op in enumerate(token_ops + self._attention_ops(batch)):
            estimate = self.perf.op_time(op)
            by_bound[estimate.bound] = by_bound.get(estimate.bound, 0.0) + pp * estimate.seconds
            token_s += estimate.seconds if index < len(token_ops) else 0.0
        decode_n = sum(1 for s in batch if s.is_decode)
        rows = self.group_tokens(len(batch))
        head = head_ops(self.arch, self.group_tokens(tokens), rows, self.precision, self.shard.tp, self._fused)
        overhead_s = pp * self._attention_sequences_s(decode_n, len(batch) - decode_n)
        overhead_s += sum(self.perf.op_time(op).seconds for op in head)
        overhead_s += self.engine_step_overhead_s(len(batch)) + self.engine_token_overhead_s(tokens)
        if self._prefill_pair_s:  # per stage, as attention is
            prefill = [(q.new_tokens, q.context_tokens) for q in batch if not q.is_decode]
            overhead_s += pp * self._prefill_pair_s * self.prefill_pairs_per_stage(prefill)
        by_bound[Bound.OVERHEAD] = by_bound.get(Bound.OVERHEAD, 0.0) + overhead_s
        all_reduce_s, handoff_s = network
        all_reduce_s += self._expert_exposed_s(tokens, token_s)
        by_bound[Bound.NETWORK] = pp * all_reduce_s + (pp - 1) * handoff_s
        return by_bound

    def decode_step_times(self, batch_size: int, contexts: Sequence[int]) -> list[float]:
        """Decode step time for ``batch_size`` sequences at each context length (the step
        model's, at each)."""
        pricer = self.pricer
        return [
            pricer.step_seconds_of(batch_size, [keys * batch_size for keys in self.decode_seen([max(c, 1)])], [])
            for c in contexts
        ]

    def _attention_sequences_s(self, decode_n: int, prefill_n: int) -> float:
        """What attention kernels add per sequence on one stage (all its layers)."""
        decode_s, prefill_s = self._sequence_costs
        return self.layers_per_stage * (decode_n * decode_s + prefill_n * prefill_s)

    @cached_property
    def _sequence_costs(self) -> tuple[float, float]:
        """(decode, prefill) attention seconds per sequence per layer: the kernel model's cost
        per (sequence x KV head) work item times the KV heads on a rank (one latent for MLA)."""
        items = (1 if self.is_mla else kv_heads_per_rank(self.arch, self.shard.tp)) / self.shard.dp  # a group's share
        return (
            items * self.perf.sequence_s(CurveKind.ATTENTION_DECODE),
            items * self.perf.sequence_s(CurveKind.ATTENTION_PREFILL),
        )

    def decode_run_times(self, contexts: Sequence[int], steps: int) -> np.ndarray:
        """Times of ``steps`` consecutive decode-only steps of sequences now at ``contexts``
        (``StepPricer.decode_run_times``): what lets the simulator skip identical iterations."""
        return self.pricer.decode_run_times(list(contexts), steps)

    def decode_seen(self, contexts: Sequence[int]) -> tuple[float, ...]:
        """Keys a batch of one-token decodes at ``contexts`` sees, per attention group."""
        return tuple(
            float(sum(c + 1 for c in contexts) if window is None else sum(min(c + 1, window) for c in contexts))
            for _, window in self._attention_params[3]
        )

    def affine_decode_run(self, n: int, seen: Sequence[tuple[float, int]]) -> AffineDecodeRun | None:
        """Closed-form times of consecutive decode steps of ``n`` sequences, or None when a
        calibration curve makes efficiency depend on the op size (use ``decode_run_times``);
        ``StepPricer.affine_decode_run``."""
        return self.pricer.affine_decode_run(n, list(seen))

    @cached_property
    def pricer(self) -> StepPricer:
        """The hot pricing arithmetic on values read once (what the simulator calls)."""
        flops_per_pair, kv_bytes, qo_bytes, groups = self._attention_params
        dtype = self.precision.activations

        def op_seconds(kind: CurveKind, flops: float, nbytes: float, count: int) -> float:
            return self.perf.seconds(kind, dtype, flops, nbytes, count)

        def op_times(kind: CurveKind, flops: np.ndarray, nbytes: np.ndarray, count: int) -> np.ndarray:
            return self.perf.op_times(kind, dtype, flops, nbytes, count)

        return StepPricer(
            pp=self.shard.pp,
            flops_per_pair=flops_per_pair,
            kv_bytes=kv_bytes,
            qo_bytes=qo_bytes,
            groups=groups,
            decode_rates=self.perf.flat_rates(CurveKind.ATTENTION_DECODE, dtype),
            prefill_rates=self.perf.flat_rates(CurveKind.ATTENTION_PREFILL, dtype),
            token_part_cache=self._token_part_cache,
            row_part_cache=self._row_part_cache,
            decode_base_cache=self._decode_base_cache,
            token_part_s=self._token_part_s,
            row_part_s=self._row_part_s,
            decode_base_s=self._decode_base_s,
            op_seconds=op_seconds,
            op_times=op_times,
            prefill_pair_s=self._prefill_pair_s,
            sequence_costs=self._sequence_costs,
            prefill_constants=prefill_attention_constants(self.arch, self.precision, self.shard.tp, self.shard.dp),
            unpartitioned_decode=self._unpartitioned_decode,
        )

    def step_seconds(self, batch: Sequence[SequenceWork]) -> float:
        """``step(batch).seconds`` without the breakdown, fast. The simulator's hot path."""
        return self.mixed_step_seconds(0, (), batch)

    def mixed_step_seconds(self, decodes: int, decode_seen: Sequence[float], chunks: Sequence[SequenceWork]) -> float:
        """``step_seconds`` of ``decodes`` one-token decodes plus ``chunks``, where the decodes
        are summarised by ``decode_seen`` (see ``decode_seen``): a server can keep those sums
        instead of listing its decoding sequences.

        A step's time splits into parts that depend only on the token count (projections, MLP,
        all-reduce, embedding), only on the sequence count (final norm, LM head), and attention;
        the first two are cached per count.
        """
        return self.step_seconds_of(decodes, decode_seen, [(s.new_tokens, s.context_tokens) for s in chunks])

    def step_seconds_of(self, decodes: int, decode_seen: Sequence[float], chunks: Sequence[tuple[int, int]]) -> float:
        """``mixed_step_seconds`` with chunks as (new tokens, context tokens) pairs: the
        simulator's hot path (``StepPricer.step_seconds_of``), which builds no objects."""
        return self.pricer.step_seconds_of(decodes, list(decode_seen), list(chunks))

    def verify_step_seconds(self, batch: int, context: int, queries: int) -> float:
        """A speculative verification step of ``batch`` sequences at ``context``, each computing
        ``queries`` tokens (``StepPricer.verify_seconds_of``); ``queries`` 1 is a decode step."""
        return self.pricer.verify_seconds_of(batch, list(self.decode_seen([context] * batch)), queries)

    def _token_part_s(self, tokens: int) -> float:
        """Step time that depends only on the tokens computed (everything but attention and the
        per-sequence head), as ``step`` adds it up; cached per token count, priced for a block
        of 256 counts at once (a run meets thousands of distinct counts)."""
        cache = self._token_part_cache
        value = cache.get(tokens)
        if value is None:
            first = max(tokens - tokens % 256, 1)
            counts = np.arange(first, first + 256)
            cache.update(zip(counts.tolist(), self._token_parts(counts).tolist(), strict=True))
            value = cache[tokens]
        return value

    def _token_parts(self, counts: np.ndarray) -> np.ndarray:
        """``_token_part_s`` of many token counts (the op formulas take arrays)."""
        arch, tp, pp = self.arch, self.shard.tp, self.shard.pp
        stage = np.zeros(len(counts))
        for op in self._token_ops(counts):
            stage += self.perf.cost_times(op)
        all_reduce, handoff = self._network_times(counts)
        all_reduce = all_reduce + self._expert_exposed_s(counts, stage)
        embedding = head_ops(arch, self.group_tokens(counts), 1, self.precision, tp, self._fused)[0]
        embedding_s = self.perf.cost_times(embedding)
        engine_s = self.engine_token_overhead_s(counts.astype(float))
        return pp * (stage + all_reduce) + (pp - 1) * handoff + embedding_s + engine_s

    def _row_part_s(self, rows: int) -> float:
        """Step time that depends only on the sequences in the batch (final norm and LM head
        of the rows that sample, and the engine's step and per-sequence overheads); cached per
        row count."""
        cache = self._row_part_cache
        value = cache.get(rows)
        if value is None:
            ops = head_ops(self.arch, 1, self.group_tokens(rows), self.precision, self.shard.tp, self._fused)[1:]
            head_s = sum(float(self.perf.cost_times(op)) for op in ops)
            value = cache[rows] = head_s + self.engine_step_overhead_s(rows)
        return value

    @property
    def _prefill_pair_s(self) -> float:
        """The engine's prefill attention cost per causal pair per layer (measured per replica:
        Splitwise's steps do not shrink it with tensor parallelism)."""
        engine = self._engine
        return 0.0 if engine is None else self.perf.time_scale * engine.prefill_pair_s / self.shard.dp

    @property
    def _engine(self) -> EngineOverheads | None:
        return self.perf.engine

    def engine_token_overhead_s(self, tokens: Any) -> Any:
        """What the serving engine adds per token computed in a step (floats or arrays); 0
        without engine overheads (``DevicePerf.engine``)."""
        engine = self._engine
        return 0.0 * tokens if engine is None else self.perf.time_scale * engine.token_overhead_s * tokens

    def engine_step_overhead_s(self, rows: int) -> float:
        """What the serving engine adds to a step of ``rows`` sequences (scheduling, sampling);
        0 without engine overheads (``DevicePerf.engine``: a calibration's, else the default's)."""
        engine = self._engine
        if engine is None:
            return 0.0
        overhead = engine.step_overhead_s + engine.sequence_overhead_s * rows + engine.layer_overhead_s * self.arch.num_layers
        return self.perf.time_scale * overhead

    @property
    def request_overhead_s(self) -> float:
        """Latency a request pays before it reaches the scheduler (the engine's API); 0
        without engine overheads."""
        engine = self._engine
        return 0.0 if engine is None else self.perf.time_scale * engine.request_overhead_s

    def prefill_pairs_per_stage(self, chunks: Sequence[tuple[int, int]]) -> float:
        """Causal query-key pairs times layers of one stage's prefill attention for ``chunks``
        (new tokens, cached tokens): what an engine's ``prefill_pair_s`` multiplies."""
        return sum(count * chunk_pairs(list(chunks), window)[0] for count, window in self._attention_params[3])

    @cached_property
    def _attention_params(self) -> tuple[float, float, float, tuple[tuple[int, int | None], ...]]:
        flops_per_pair, kv_bytes, qo_bytes = attention_constants(
            self.arch, self.precision, self.shard.tp, self.shard.dp, self._kv_read_per_query_head
        )
        return flops_per_pair, kv_bytes, qo_bytes, attention_layer_groups(self.arch, self.layers_per_stage)

    def _decode_base_s(self, n: int) -> float:
        """Decode step time of ``n`` sequences minus attention (depends on n only; cached)."""
        value = self._decode_base_cache.get(n)
        if value is None:
            value = self._decode_base_cache[n] = self._token_part_s(n) + self._row_part_s(n)
        return value

    @cached_property
    def _token_part_cache(self) -> dict[int, float]:
        return {}

    @cached_property
    def _row_part_cache(self) -> dict[int, float]:
        return {}

    @cached_property
    def _decode_base_cache(self) -> dict[int, float]:
        return {}

    @property
    def is_mla(self) -> bool:
        return self.arch.attention == AttentionKind.MLA
