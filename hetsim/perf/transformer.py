"""FLOPs and bytes of one forward step of a decoder-only transformer, per device.

A step processes a batch of sequences, each contributing ``new_tokens`` (a prefill chunk,
or 1 for decode) on top of ``context_tokens`` already in its KV cache. Quantities are for
one tensor-parallel shard of one pipeline stage; ``count`` on each op is the number of
layers of that kind on the stage.

Conventions (stated once, used everywhere):
* A GEMM of (M x K) by (K x N) costs 2*M*K*N FLOPs and moves K*N weight bytes plus M*K input
  and M*N output activation bytes.
* Attention costs 4 FLOPs per (query token, key token, head, head-dim element): QK^T and PV.
  Causal masking counts only the keys a query sees: context + position within the chunk.
* Attention reads the whole KV cache of each sequence once per step (flash/paged kernels
  tile queries so that KV is re-read at most once per tile; prefill tiles are counted once).
* Heads are split across TP ranks; KV heads too, replicated when there are fewer KV heads
  than ranks. MLA's compressed latent is replicated on every rank (as in vLLM). MLA decodes in
  its absorbed form and prefills in its multi-head form (``prefill_attention_constants``).
* MoE layers are priced by ``hetsim.perf.expert``: grouped GEMMs over the experts a rank
  holds (TP-sharded widths, or whole experts under expert parallelism), reading the weights
  of every expert at least one token routes to, in expectation under uniform routing:
  E * (1 - (1 - k/E)^T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hetsim.errors import EstimateError
from hetsim.perf.attention_pairs import chunk_pairs
from hetsim.perf.roofline import OpCost
from hetsim.specs.calibration import CurveKind, KernelClass
from hetsim.specs.hardware import DType
from hetsim.specs.model import ArchitectureSpec, AttentionKind


@dataclass(frozen=True, slots=True)
class SequenceWork:
    """One sequence's share of a step: tokens computed now, on top of cached context."""

    new_tokens: int
    context_tokens: int = 0

    def __post_init__(self) -> None:
        if self.new_tokens < 1 or self.context_tokens < 0:
            raise EstimateError(
                f"sequence: expected new_tokens >= 1 and context_tokens >= 0, "
                f"got {self.new_tokens} and {self.context_tokens}"
            )

    @property
    def is_decode(self) -> bool:
        return self.new_tokens == 1 and self.context_tokens > 0


@dataclass(frozen=True, slots=True)
class Precision:
    """Numeric formats of a deployment: weights, activations (math) and KV cache."""

    weights: DType = DType.BF16
    activations: DType = DType.BF16
    kv_cache: DType = DType.BF16

    @classmethod
    def uniform(cls, dtype: DType) -> Precision:
        """fp8/fp4 deployments keep bf16 activations for non-GEMM math but run GEMMs in ``dtype``."""
        dtype = DType(dtype)
        kv = DType.FP8 if dtype in (DType.FP8, DType.FP4, DType.INT8) else dtype
        return cls(weights=dtype, activations=DType.BF16 if dtype.bytes_per_element < 2 else dtype, kv_cache=kv)

    def with_kv_cache(self, kv_cache: DType | None) -> Precision:
        """These formats with the KV cache in ``kv_cache`` (None keeps it): an engine may keep
        the cache apart from the weights' rule (vLLM's ``--kv-cache-dtype auto``: 16 bits)."""
        return self if kv_cache is None else replace(self, kv_cache=kv_cache)

    @property
    def gemm_math(self) -> DType:
        """The format GEMMs run in: the weight format (fp8 weights run fp8 tensor cores)."""
        return self.weights


@dataclass(frozen=True, slots=True)
class Shard:
    """How the model is split over devices.

    A pipeline stage holds ``dp`` attention groups of ``tp`` devices: attention and the dense
    parts (dense MLP layers, shared experts, embedding, LM head) are tensor-parallel over
    ``tp`` inside a group, and each group serves its own requests (data-parallel attention:
    its KV cache holds only its requests, never duplicated across groups). Routed experts
    are split over ``ep`` ranks: 1 shards every expert's width over the stage's devices
    (tensor-parallel MoE), ``tp * dp`` gives each device ``(experts + redundant_experts) / ep``
    whole experts (expert parallelism; SGLang's and vLLM's EP spans the whole group, so no
    other value is offered). ``redundant_experts`` are replicas of hot experts an expert
    balancer (EPLB) places beside the model's own.
    """

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1
    redundant_experts: int = 0

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise EstimateError(f"parallelism: expected tp >= 1 and pp >= 1, got tp={self.tp}, pp={self.pp}")
        if self.ep < 1 or self.dp < 1 or self.redundant_experts < 0:
            raise EstimateError(
                f"parallelism: expected ep >= 1, dp_attention >= 1 and redundant_experts >= 0, "
                f"got ep={self.ep}, dp_attention={self.dp}, redundant_experts={self.redundant_experts}"
            )
        if self.ep not in (1, self.stage_devices):
            raise EstimateError(
                f"ep: expected 1 or the devices of a pipeline stage (tp x dp_attention = {self.tp} x {self.dp} = "
                f"{self.stage_devices}), got {self.ep}"
            )

    @property
    def stage_devices(self) -> int:
        """Devices of one pipeline stage: ``dp`` attention groups of ``tp``."""
        return self.tp * self.dp

    @property
    def devices(self) -> int:
        return self.tp * self.dp * self.pp

    @property
    def is_expert_parallel(self) -> bool:
        return self.ep > 1

    @property
    def moe_tp(self) -> int:
        """Ranks each routed expert's width is split over (1 under expert parallelism)."""
        return self.stage_devices // self.ep


def gemm(name: str, m: int, k: float, n: float, precision: Precision, count: int) -> OpCost:
    """One (m x k) @ (k x n) GEMM op (``m`` may be an array of token counts)."""
    wb = precision.weights.bytes_per_element
    ab = precision.activations.bytes_per_element
    return OpCost(
        name=name,
        kind=CurveKind.GEMM,
        flops=2.0 * m * k * n,
        bytes=k * n * wb + m * k * ab + m * n * ab,
        dtype=precision.gemm_math,
        count=count,
        shape=(m, n, k),
    )


def _elementwise(
    name: str, elements: float, reads: float, flops_per_element: float, precision: Precision, count: int
) -> OpCost:
    ab = precision.activations.bytes_per_element
    return OpCost(
        name, CurveKind.MEMORY, elements * flops_per_element, elements * reads * ab, precision.activations, count
    )


def kv_heads_per_rank(arch: ArchitectureSpec, tp: int) -> int:
    """KV heads each TP rank holds (replicated when there are fewer heads than ranks)."""
    return max(1, math.ceil(arch.num_kv_heads / tp))


def kv_elements_per_token_per_layer(arch: ArchitectureSpec, tp: int) -> int:
    """Cached elements per token per layer on one TP rank."""
    if arch.attention == AttentionKind.MLA:
        assert arch.mla is not None
        return arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim
    return 2 * kv_heads_per_rank(arch, tp) * arch.head_dim


def kv_bytes_per_token(arch: ArchitectureSpec, kv_dtype: DType, tp: int = 1) -> float:
    """KV-cache bytes per token for the whole model on one TP rank (all layers)."""
    return arch.num_layers * kv_elements_per_token_per_layer(arch, tp) * DType(kv_dtype).bytes_per_element


def _heads_per_rank(arch: ArchitectureSpec, tp: int) -> int:
    if arch.num_attention_heads % tp:
        raise EstimateError(
            f"tp: expected a divisor of the model's {arch.num_attention_heads} attention heads, got {tp}"
        )
    return arch.num_attention_heads // tp


def _attention_pairs(sequences: tuple[SequenceWork, ...], window: int | None) -> tuple[float, float]:
    """``chunk_pairs`` of a batch of sequences."""
    return chunk_pairs([(int(s.new_tokens), int(s.context_tokens)) for s in sequences], window)


def attention_constants(
    arch: ArchitectureSpec, precision: Precision, tp: int, dp: int = 1, kv_read_per_query_head: bool = False
) -> tuple[float, float, float]:
    """(FLOPs per query-key pair on this rank, KV bytes per token per layer, Q+O bytes per new token);
    with ``dp`` attention groups sharing a step's sequences evenly, each group's share of them.
    ``kv_read_per_query_head``: a decode kernel that reads each KV head once per query head of
    its group (vLLM's PagedAttention), so a grouped-query model's KV is read heads/KV-heads times."""
    heads = _heads_per_rank(arch, tp)
    if arch.attention == AttentionKind.MLA:
        assert arch.mla is not None
        # Absorbed MLA: scores over the latent + rope dims, values in the latent space.
        per_pair_head = 2.0 * (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) + 2.0 * arch.mla.kv_lora_rank
        q_width = heads * (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim)
    else:
        per_pair_head = 4.0 * arch.head_dim
        q_width = heads * arch.head_dim
    kv_bytes = kv_elements_per_token_per_layer(arch, tp) * precision.kv_cache.bytes_per_element
    if kv_read_per_query_head and arch.attention != AttentionKind.MLA:
        kv_bytes *= heads / kv_heads_per_rank(arch, tp)
    return per_pair_head * heads / dp, kv_bytes / dp, 2.0 * q_width * precision.activations.bytes_per_element / dp


PAGED_V1_WORK_ITEMS = 512
"""vLLM's PagedAttention decode runs its V1 kernel (one CTA per query head and sequence over
the whole context) instead of the partitioned V2 (512-token partitions, then a reduction) when
``num_seqs * num_heads > 512`` (``vllm/attention/ops/paged_attn.py``, v0.3-0.6: ``use_v1 =
max_seq_len <= 8192 and (max_num_partitions == 1 or num_seqs * num_heads > 512)``). Of the
other clauses: one partition (contexts up to 512) is one CTA per head and sequence in either
kernel, and contexts beyond 8192 tokens (V2 always) are not told apart here."""


def unpartitioned_decode(arch: ArchitectureSpec, tp: int, kernel: KernelClass, dp: int = 1) -> tuple[float, float]:
    """(a step's decode sequences above which vLLM's PagedAttention runs its V1 kernel, with
    ``dp`` attention groups sharing them evenly; the factor that prices its KV reads at
    ``kernel.unpartitioned_memory_efficiency`` instead of ``memory_efficiency``); (0, 1) when
    the decode kernel is not priced so."""
    if not (kernel.kv_read_per_query_head and kernel.unpartitioned_memory_efficiency) or arch.attention == AttentionKind.MLA:
        return 0.0, 1.0
    return unpartitioned_after(arch, tp, dp), kernel.memory_efficiency / kernel.unpartitioned_memory_efficiency


def unpartitioned_after(arch: ArchitectureSpec, tp: int, dp: int = 1) -> float:
    """A step's decode sequences above which vLLM's PagedAttention runs its V1 kernel
    (``PAGED_V1_WORK_ITEMS`` sequence-heads on a rank; ``dp`` attention groups share the step's
    sequences evenly)."""
    return dp * PAGED_V1_WORK_ITEMS / _heads_per_rank(arch, tp)


def decode_kv_scale(decodes: float, unpartitioned: tuple[float, float]) -> float:
    """The KV-read factor of a decode of ``decodes`` sequences (``unpartitioned_decode``)."""
    after, scale = unpartitioned
    return scale if after and decodes > after else 1.0


def prefill_attention_constants(
    arch: ArchitectureSpec, precision: Precision, tp: int, dp: int = 1
) -> tuple[float, float, float]:
    """``attention_constants`` of prefill. MLA prefills in its multi-head form, as vLLM's and
    SGLang's MLA backends and DeepSeek do (K and V up-projected from the latent, then
    flash attention over heads of qk_nope + qk_rope and v_head): 2 (qk + v) FLOPs per pair and
    head, K and V of every head per key, Q and O of every head per token (the absorbed form's
    latent-width products are decode's)."""
    if arch.attention != AttentionKind.MLA:
        return attention_constants(arch, precision, tp, dp)
    assert arch.mla is not None
    mla, heads = arch.mla, _heads_per_rank(arch, tp)
    width = mla.qk_nope_head_dim + mla.qk_rope_head_dim + mla.v_head_dim  # K and V (or Q and O) per head
    per_token = heads * width * precision.activations.bytes_per_element
    return 2.0 * width * heads / dp, per_token / dp, per_token / dp


def attention_layer_groups(arch: ArchitectureSpec, layers: int) -> tuple[tuple[int, int | None], ...]:
    """(layer count, sliding window or None) groups among ``layers`` layers."""
    windowed = min(arch.sliding_window_layers, layers) if arch.sliding_window_tokens else 0
    groups = ((layers - windowed, None), (windowed, arch.sliding_window_tokens))
    return tuple((count, window) for count, window in groups if count)


def attention_ops(
    arch: ArchitectureSpec,
    batch: tuple[SequenceWork, ...],
    precision: Precision,
    tp: int,
    layers: int,
    dp: int = 1,
    kv_read_per_query_head: bool = False,
    unpartitioned: tuple[float, float] = (0.0, 1.0),
) -> list[OpCost]:
    """Score/value math of attention (no projections), split into decode and prefill parts;
    with ``dp`` data-parallel attention groups, one group's even share of the batch
    (``kv_read_per_query_head``: decode's, see ``attention_constants``; ``unpartitioned``:
    its V1 kernel's pricing, ``unpartitioned_decode``)."""
    ops: list[OpCost] = []
    for part, kind in (("decode", CurveKind.ATTENTION_DECODE), ("prefill", CurveKind.ATTENTION_PREFILL)):
        sequences = tuple(s for s in batch if s.is_decode == (part == "decode"))
        if not sequences:
            continue
        if part == "decode":
            flops_per_pair, kv_bytes, qo_bytes = attention_constants(arch, precision, tp, dp, kv_read_per_query_head)
            kv_bytes *= decode_kv_scale(len(sequences), unpartitioned)
        else:
            flops_per_pair, kv_bytes, qo_bytes = prefill_attention_constants(arch, precision, tp, dp)
        new_tokens = sum(s.new_tokens for s in sequences)
        for count, window in attention_layer_groups(arch, layers):
            pairs, kv_read = _attention_pairs(sequences, window)
            nbytes = (kv_read + new_tokens) * kv_bytes + new_tokens * qo_bytes
            label = f"attention_{part}" + ("_window" if window else "")
            ops.append(OpCost(label, kind, pairs * flops_per_pair, nbytes, precision.activations, count))
    return ops


def projection_ops(
    arch: ArchitectureSpec, tokens: int, precision: Precision, tp: int, layers: int, fused: bool = False
) -> list[OpCost]:
    """Attention input/output projections, the two norms, two residual adds and the rotary
    embedding of ``layers`` layers, each its own kernel; ``fused`` counts the element-wise work
    as one norm kernel per layer, as the flat roofline of the paper reproduction did."""
    h = arch.hidden_size
    heads = _heads_per_rank(arch, tp)
    if fused:
        ops = [_elementwise("norms", 2.0 * tokens * h, 2.0, 4.0, precision, layers)]
    else:
        ops = [
            _elementwise("norm", tokens * h, 2.0, 4.0, precision, 2 * layers),
            _elementwise("residual_add", tokens * h, 3.0, 1.0, precision, 2 * layers),
        ]
    if arch.attention == AttentionKind.MLA:
        assert arch.mla is not None
        mla = arch.mla
        qk_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        if mla.q_lora_rank:
            ops.append(gemm("q_a_proj", tokens, h, mla.q_lora_rank, precision, layers))  # replicated
            ops.append(gemm("q_b_proj", tokens, mla.q_lora_rank, heads * qk_dim, precision, layers))
        else:
            ops.append(gemm("q_proj", tokens, h, heads * qk_dim, precision, layers))
        ops.append(gemm("kv_a_proj", tokens, h, mla.kv_lora_rank + mla.qk_rope_head_dim, precision, layers))
        # Absorbed up-projections: q_nope into the latent, latent output back to v heads.
        ops.append(
            gemm(
                "kv_b_absorbed",
                tokens,
                mla.kv_lora_rank,
                heads * (mla.qk_nope_head_dim + mla.v_head_dim),
                precision,
                layers,
            )
        )
        ops.append(gemm("o_proj", tokens, heads * mla.v_head_dim, h, precision, layers))
        return ops
    qkv_width = (heads + 2 * kv_heads_per_rank(arch, tp)) * arch.head_dim
    ops.append(gemm("qkv_proj", tokens, h, qkv_width, precision, layers))
    if not fused:
        rotated = (heads + kv_heads_per_rank(arch, tp)) * arch.head_dim  # rotary embedding of q and k
        ops.append(_elementwise("rope", tokens * rotated, 2.0, 6.0, precision, layers))
    ops.append(gemm("o_proj", tokens, heads * arch.head_dim, h, precision, layers))
    return ops


def dense_mlp_ops(
    name: str, tokens: int, h: int, width: float, gated: bool, precision: Precision, layers: int
) -> list[OpCost]:
    """Up (gate+up when gated), activation and down projection of ``layers`` dense MLPs."""
    up_width = 2 * width if gated else width
    return [
        gemm(f"{name}_up", tokens, h, up_width, precision, layers),
        _elementwise(f"{name}_act", tokens * width, 3.0 if gated else 2.0, 5.0, precision, layers),
        gemm(f"{name}_down", tokens, width, h, precision, layers),
    ]


def expected_active_experts(num_experts: int, top_k: int, tokens: int) -> float:
    """Experts hit by at least one of ``tokens`` tokens under uniform top-k routing."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def mlp_ops(
    arch: ArchitectureSpec, tokens: int, precision: Precision, tp: int, layers: int, dense_layers: int
) -> list[OpCost]:
    """MLP of ``layers`` layers, of which ``dense_layers`` are dense in an MoE model."""
    h = arch.hidden_size
    moe = arch.moe
    if moe is None:
        return dense_mlp_ops("mlp", tokens, h, arch.intermediate_size / tp, arch.gated_mlp, precision, layers)
    ops: list[OpCost] = []
    if dense_layers:
        ops += dense_mlp_ops(
            "dense_mlp", tokens, h, arch.intermediate_size / tp, arch.gated_mlp, precision, dense_layers
        )
    moe_layers = layers - dense_layers
    if moe_layers <= 0:
        return ops
    width = moe.expert_intermediate_size / tp
    up_width = (2 if arch.gated_mlp else 1) * width
    active = expected_active_experts(moe.num_experts, moe.experts_per_token, tokens)
    routed_tokens = tokens * moe.experts_per_token
    wb, ab = precision.weights.bytes_per_element, precision.activations.bytes_per_element
    expert_flops = 2.0 * routed_tokens * h * (up_width + width)
    expert_bytes = active * h * (up_width + width) * wb + routed_tokens * (2 * h + up_width + width) * ab
    ops.append(gemm("router", tokens, h, moe.num_experts, precision, moe_layers))
    ops.append(OpCost("experts", CurveKind.GEMM, expert_flops, expert_bytes, precision.gemm_math, moe_layers))
    ops.append(_elementwise("experts_act", routed_tokens * width, 3.0, 5.0, precision, moe_layers))
    if moe.num_shared_experts:
        shared = moe.num_shared_experts * width
        ops += dense_mlp_ops("shared_expert", tokens, h, shared, arch.gated_mlp, precision, moe_layers)
    return ops


def head_ops(
    arch: ArchitectureSpec, tokens: int, logits_rows: int, precision: Precision, tp: int, fused: bool = False
) -> list[OpCost]:
    """Embedding gather, final norm and the LM head (logits only for rows that sample)."""
    h = arch.hidden_size
    return [
        _elementwise("embedding", tokens * h, 1.0 if fused else 2.0, 0.0, precision, 1),  # gather a row, write it
        _elementwise("final_norm", logits_rows * h, 2.0, 4.0, precision, 1),
        gemm("lm_head", logits_rows, h, arch.vocab_size / tp, precision, 1),
    ]


def parameter_count(arch: ArchitectureSpec) -> dict[str, float]:
    """Parameters by part, from the architecture (norms and biases ignored: < 0.1%)."""
    h, layers = arch.hidden_size, arch.num_layers
    if arch.attention == AttentionKind.MLA:
        assert arch.mla is not None
        mla = arch.mla
        heads = arch.num_attention_heads
        qk_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        q = h * mla.q_lora_rank + mla.q_lora_rank * heads * qk_dim if mla.q_lora_rank else h * heads * qk_dim
        attention = q + h * (mla.kv_lora_rank + mla.qk_rope_head_dim)
        attention += mla.kv_lora_rank * heads * (mla.qk_nope_head_dim + mla.v_head_dim) + heads * mla.v_head_dim * h
    else:
        attention = h * (arch.num_attention_heads + 2 * arch.num_kv_heads) * arch.head_dim
        attention += arch.num_attention_heads * arch.head_dim * h
    per_matrix = 3 if arch.gated_mlp else 2
    dense_mlp = per_matrix * h * arch.intermediate_size
    moe = arch.moe
    if moe is None:
        mlp_total = layers * dense_mlp
    else:
        expert = per_matrix * h * moe.expert_intermediate_size
        moe_layers = layers - moe.first_dense_layers
        mlp_total = moe.first_dense_layers * dense_mlp
        mlp_total += moe_layers * ((moe.num_experts + moe.num_shared_experts) * expert + h * moe.num_experts)
    embedding = arch.vocab_size * h
    return {
        "attention": layers * attention,
        "mlp": float(mlp_total),
        "embedding": float(embedding),
        "lm_head": 0.0 if arch.tie_embeddings else float(embedding),
    }
