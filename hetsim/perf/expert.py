"""Mixture-of-experts layers under expert parallelism: grouped GEMMs, all-to-all, imbalance.

A pipeline stage of ``S = tp x dp`` devices (``Shard``) runs an MoE layer either
tensor-parallel (``ep = 1``: every expert's width split over the S devices, which see every
token) or expert-parallel (``ep = S``: each device holds ``(E + R) / ep`` whole experts, R the
redundant copies an expert balancer adds). Per device of a stage whose step computes ``T``
tokens (all attention groups together), with top-``k`` routing over E experts:

* routed rows on the busiest device: ``T k / ep x imbalance`` (imbalance = max/mean rows per
  device; 1 when ``ep = 1``);
* experts it holds that some token hits: ``(E + R) / ep x (1 - (1 - k / (E + R))^T)`` (uniform
  routing; with ``ep = 1`` and R = 0 this is every rank's share of ``E (1 - (1 - k/E)^T)``);
* one grouped GEMM each for the up (gate+up) and down projections over those experts, every
  group ``rows / experts`` tall (DeepGEMM's contiguous and masked layouts: ``hetsim.perf.kernels``
  prices a group's tiles in the same waves), weights read once per hit expert;
* dispatch and combine (``all_to_all_s``): each device sends its ``T / S`` tokens to the experts'
  devices and gets the results back. A token leaves its device once per routed expert in the
  low-latency kernels (decode-sized batches) and, in the high-throughput ones, once per
  destination node over the scale-out link and once per destination device inside a node
  (``E[distinct] = n (1 - (1 - 1/n)^k)`` of n nodes or devices, as DeepEP's normal kernels
  forward it); dispatch carries fp8 (plus a 4-byte scale per 128 values) where the model runs
  fp8, combine carries bf16. The busiest device receives ``imbalance`` times the mean. Each is
  ``latency + max(scale-up bytes / (scale-up bandwidth x eff), scale-out bytes / (scale-out
  bandwidth x eff))`` with the kernel model's ``AllToAllKernels``.

Overlap (``CommOverlap.TWO_BATCH``, SGLang's and DeepSeek's two-batch overlap): a step runs as two
micro-batches of half the tokens; the token-dependent compute of both (``C``, priced at half the
tokens, so weights are read twice) and their all-to-alls (``M``) overlap as
``max(C + s M, M)``, ``s`` the share of compute units the high-throughput kernels hold while
they run (0 for the low-latency kernels, which free the SMs while data is in flight: DeepSeek
profile-data README). Attention is not counted as hiding communication (a step's time stays a
sum of a token part, a sequence part and attention, which the simulator's closed-form decode
runs need); DeepSeek's 5-stage decode pipeline does hide it behind attention, so where
attention is long this is conservative.

Imbalance defaults are measured: TensorRT-LLM tech blog 4 ("Scaling Expert Parallelism in
TensorRT-LLM, Part 1", Table 1: DeepSeek-R1, EP32, decode, machine-translation traffic): the
busiest rank gets 1 + 1.564 = 2.564x the mean routed tokens without a balancer and 1 + 0.109 =
1.109x with EPLB (288 expert slots: 32 redundant experts, 9 per rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetsim.errors import EstimateError
from hetsim.perf.roofline import OpCost
from hetsim.perf.transformer import Precision, Shard, dense_mlp_ops, gemm
from hetsim.specs.calibration import AllToAllKernels, CurveKind
from hetsim.specs.hardware import AcceleratorSpec, DType
from hetsim.specs.model import ArchitectureSpec
from hetsim.specs.parallel import CommOverlap

IMBALANCE_UNBALANCED = 2.564  # TRT-LLM tech blog 4 Table 1, no EPLB, EP32: 1 + 1.564
IMBALANCE_BALANCED = 1.109  # same table, EPLB with 9 slots per rank (32 redundant experts), EP32: 1 + 0.109
FP8_SCALE_BYTES_PER_VALUE = 4.0 / 128.0  # one fp32 scale per 128 values (DeepSeek-V3's fp8 blocks)


@dataclass(frozen=True, slots=True)
class MoeOptions:
    """How an expert-parallel replica runs its MoE layers beyond the split itself.

    Attributes:
        balancing: an expert-parallel load balancer (EPLB) places (and replicates) experts.
        imbalance: busiest/mean routed rows per device; None takes the measured default for
            ``balancing`` (module docstring).
        overlap: how the all-to-all overlaps compute.
    """

    balancing: bool = False
    imbalance: float | None = None
    overlap: CommOverlap = CommOverlap.NONE

    def __post_init__(self) -> None:
        if self.imbalance is not None and not (self.imbalance >= 1.0 and math.isfinite(self.imbalance)):
            raise EstimateError(
                f"expert imbalance: expected a finite factor >= 1 (busiest / mean), got {self.imbalance}"
            )

    def imbalance_factor(self, shard: Shard) -> float:
        """Busiest/mean routed rows per device; 1 without expert parallelism, never above ep."""
        if not shard.is_expert_parallel:
            return 1.0
        factor = (
            self.imbalance
            if self.imbalance is not None
            else (IMBALANCE_BALANCED if self.balancing else IMBALANCE_UNBALANCED)
        )
        return min(factor, float(shard.ep))

    @property
    def micro_batches(self) -> int:
        return 2 if self.overlap == CommOverlap.TWO_BATCH else 1


def check_expert_shard(arch: ArchitectureSpec, shard: Shard, options: MoeOptions, model: str) -> None:
    """One-line errors for a split or option the model cannot take."""
    moe = arch.moe
    if moe is None:
        if shard.ep > 1 or shard.dp > 1 or shard.redundant_experts:
            raise EstimateError(
                f"{model} is a dense model: ep, dp_attention and redundant experts apply to mixture-of-experts models "
                f"(serve more replicas instead), got ep={shard.ep}, dp_attention={shard.dp}"
            )
        return
    slots = moe.num_experts + shard.redundant_experts
    if shard.ep == 1 and (shard.redundant_experts or options.overlap != CommOverlap.NONE):
        raise EstimateError(
            "redundant experts and all-to-all overlap need expert parallelism: expected ep > 1, got ep=1"
        )
    if slots % shard.ep:
        raise EstimateError(
            f"ep: expected a divisor of {model}'s {moe.num_experts} experts"
            + (f" + {shard.redundant_experts} redundant = {slots}" if shard.redundant_experts else "")
            + f", got {shard.ep}"
        )
    if shard.ep == 1 and moe.expert_intermediate_size % shard.moe_tp:
        raise EstimateError(
            f"tp x dp_attention: expected a divisor of {model}'s expert width {moe.expert_intermediate_size} "
            f"(tensor-parallel experts), got {shard.moe_tp}; use ep={shard.moe_tp}"
        )


def _grouped_gemm(name: str, m: Any, k: float, n: float, groups: Any, precision: Precision, count: int) -> OpCost:
    """``groups`` GEMMs of (m x k) @ (k x n) in one launch: weights of every group, activations in and out."""
    wb = precision.weights.bytes_per_element
    ab = precision.activations.bytes_per_element
    return OpCost(
        name=name,
        kind=CurveKind.GEMM,
        flops=2.0 * groups * m * k * n,
        bytes=groups * (k * n * wb + m * k * ab + m * n * ab),
        dtype=precision.gemm_math,
        count=count,
        shape=(m, n, k),
        groups=groups,
    )


def routed_expert_ops(
    arch: ArchitectureSpec, stage_tokens: Any, precision: Precision, shard: Shard, imbalance: float, layers: int
) -> list[OpCost]:
    """The routed experts of ``layers`` MoE layers on the busiest device of a stage whose step
    computes ``stage_tokens`` tokens (an int or an array of counts)."""
    moe = arch.moe
    assert moe is not None
    slots = moe.num_experts + shard.redundant_experts
    width = moe.expert_intermediate_size / shard.moe_tp
    up_width = (2 if arch.gated_mlp else 1) * width
    tokens = np.asarray(stage_tokens, dtype=float)
    rows = tokens * moe.experts_per_token / shard.ep * imbalance
    hit = 1.0 - (1.0 - moe.experts_per_token / slots) ** tokens
    groups = np.maximum(slots / shard.ep * hit, np.minimum(rows, 1.0))  # a routed row needs its expert
    m = rows / np.maximum(groups, 1e-12)
    if np.ndim(stage_tokens) == 0:
        rows, groups, m = float(rows), float(groups), float(m)
    ab = precision.activations.bytes_per_element
    h = arch.hidden_size
    return [
        _grouped_gemm("experts_up", m, h, up_width, groups, precision, layers),
        OpCost(
            "experts_act", CurveKind.MEMORY, rows * width * 5.0, rows * width * 3.0 * ab, precision.activations, layers
        ),
        _grouped_gemm("experts_down", m, width, h, groups, precision, layers),
    ]


def dispatch_bytes_per_value(precision: Precision) -> float:
    """Bytes a dispatched hidden value takes: fp8 with its block scales where the GEMMs run fp8
    or narrower (DeepSeek's and SGLang's fp8 dispatch), else the activation format."""
    if precision.gemm_math.bytes_per_element <= 1:
        return DType.FP8.bytes_per_element + FP8_SCALE_BYTES_PER_VALUE
    return precision.activations.bytes_per_element


@dataclass(frozen=True, slots=True)
class ExpertLinks:
    """The links an EP group uses: its scale-up domain and per-direction bandwidths (bytes/s;
    ``scale_out`` None when the group fits one domain)."""

    domain: int
    scale_up: float | None
    scale_out: float | None

    @classmethod
    def of(cls, device: AcceleratorSpec, ep: int) -> ExpertLinks:
        up, out = device.scale_up, device.scale_out
        domain = up.domain_size if up is not None else 1
        if ep > domain and out is None:
            raise EstimateError(
                f"ep: {ep} ranks exceed {device.name}'s scale-up domain of {domain} and its profile has no scale-out link"
            )
        return cls(
            domain,
            up.bandwidth.si if up is not None else None,
            out.bandwidth.si if out is not None and ep > domain else None,
        )


def all_to_all_s(
    rank_tokens: Any,
    arch: ArchitectureSpec,
    precision: Precision,
    ep: int,
    imbalance: float,
    links: ExpertLinks,
    params: AllToAllKernels,
) -> Any:
    """Seconds of one dispatch plus one combine for ``rank_tokens`` tokens per device (floats
    or arrays; module docstring); 0 without expert parallelism or tokens."""
    moe = arch.moe
    tokens = np.asarray(rank_tokens, dtype=float)
    if moe is None or ep <= 1:
        return np.zeros_like(tokens) if np.ndim(rank_tokens) else 0.0
    domain, up, out = links.domain, links.scale_up, links.scale_out
    k = moe.experts_per_token
    low_latency = tokens <= params.low_latency_max_tokens
    ranks_hit = ep * (1.0 - (1.0 - 1.0 / ep) ** k)  # distinct ranks a token's k experts sit on
    if ep <= domain:
        off = np.zeros_like(tokens)
        on = np.where(low_latency, k * (ep - 1) / ep, ranks_hit * (ep - 1) / ep)
    else:
        nodes = math.ceil(ep / domain)
        remote_nodes = (nodes - 1) * (1.0 - (1.0 - 1.0 / nodes) ** k)  # expected other nodes a token visits
        off = np.where(low_latency, k * (ep - domain) / ep, remote_nodes)
        on = np.where(low_latency, k * (domain - 1) / ep, ranks_hit * (domain - 1) / domain)
    hidden = arch.hidden_size * imbalance * tokens
    total = np.zeros_like(tokens)
    for value_bytes in (dispatch_bytes_per_value(precision), precision.activations.bytes_per_element):
        up_s = on * hidden * value_bytes / (up * params.scale_up_efficiency) if up else 0.0 * on
        out_s = off * hidden * value_bytes / (out * params.scale_out_efficiency) if out else 0.0 * off
        total = total + params.latency_s + np.maximum(up_s, out_s)
    total = np.where(tokens > 0, total, 0.0)
    return float(total) if np.ndim(rank_tokens) == 0 else total


def overlapped_s(compute_s: Any, comm_s: Any, sm_share: Any, overlap: CommOverlap) -> Any:
    """Time of a stage's token compute and its all-to-all together (module docstring):
    ``C + M`` without overlap, ``max(C + s M, M)`` with two-batch overlap."""
    if overlap != CommOverlap.TWO_BATCH:
        return compute_s + comm_s
    return np.maximum(compute_s + sm_share * comm_s, comm_s)


def moe_mlp_ops(
    arch: ArchitectureSpec,
    tokens: tuple[Any, Any],
    precision: Precision,
    shard: Shard,
    imbalance: float,
    layers: tuple[int, int],
) -> list[OpCost]:
    """The MLPs of a stage on its busiest device: ``tokens`` = (this device's attention-group
    tokens, the stage's tokens), ``layers`` = (MoE layers, dense layers) times micro-batches.
    Dense MLPs and (under expert parallelism) shared experts are tensor-parallel over ``tp`` on
    the group's tokens; tensor-parallel MoE runs router, shared and routed experts on every
    token of the stage, split over its devices."""
    moe = arch.moe
    assert moe is not None
    group_tokens, stage_tokens = tokens
    moe_layers, dense_layers = layers
    h = arch.hidden_size
    ops: list[OpCost] = []
    if dense_layers:
        ops += dense_mlp_ops(
            "dense_mlp", group_tokens, h, arch.intermediate_size / shard.tp, arch.gated_mlp, precision, dense_layers
        )
    if not moe_layers:
        return ops
    expert_tokens = group_tokens if shard.is_expert_parallel else stage_tokens
    ops.append(gemm("router", expert_tokens, h, moe.num_experts, precision, moe_layers))
    ops += routed_expert_ops(arch, stage_tokens, precision, shard, imbalance, moe_layers)
    if moe.num_shared_experts:
        split = shard.tp if shard.is_expert_parallel else shard.stage_devices
        shared = moe.num_shared_experts * moe.expert_intermediate_size / split
        ops += dense_mlp_ops("shared_expert", expert_tokens, h, shared, arch.gated_mlp, precision, moe_layers)
    return ops


def mlp_params_per_device_per_layer(arch: ArchitectureSpec, shard: Shard) -> float:
    """MLP parameters one device of a stage holds, averaged over the model's layers: dense MLPs
    over ``tp``; routed experts ``(E + R) / ep`` whole ones each (or every expert's width over the
    stage's devices when ``ep = 1``); shared experts and router with the dense parts under expert
    parallelism, with the experts otherwise."""
    moe = arch.moe
    assert moe is not None
    h, per_matrix = arch.hidden_size, 3 if arch.gated_mlp else 2
    expert = per_matrix * h * moe.expert_intermediate_size
    split = shard.tp if shard.is_expert_parallel else shard.stage_devices
    routed = (moe.num_experts + shard.redundant_experts) / shard.ep * expert / shard.moe_tp
    per_moe_layer = routed + (moe.num_shared_experts * expert + h * moe.num_experts) / split
    dense = per_matrix * h * arch.intermediate_size / shard.tp
    moe_layers = arch.num_layers - moe.first_dense_layers
    return (moe.first_dense_layers * dense + moe_layers * per_moe_layer) / arch.num_layers
