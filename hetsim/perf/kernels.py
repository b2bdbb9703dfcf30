"""The analytical kernel model: how long one kernel takes on a device, knowing the device's shape.

Each kind of kernel has its own parameters (``hetsim.specs.calibration.KernelModel``), fitted
per device and serving stack from public measurements (``hetsim calibrate public``), or the
documented defaults below when a device has no fit:

* GEMM ``(m x k) @ (k x n)``: the work is divided into CTA tiles of ``tm x tn`` output
  elements run in waves of ``compute_units`` tiles (split-K multiplies tiles when they are
  too few to fill the device); a wave costs as much as a full one, so a 65-row GEMM on a
  64-row tile pays for 128 rows and 133 tiles on 132 SMs pay for two waves. The library's
  heuristic is assumed to pick the fastest candidate tile and split. Compute efficiency
  saturates with arithmetic intensity; the memory side streams inputs, weights and outputs.
* Attention prefill and decode: roofline of their FLOPs and bytes with their own compute
  and bandwidth efficiencies (prefill's saturating with intensity, i.e. with the keys each
  query sees) and their own floors; where an op's shape is known (``attention_seconds``),
  the terms of how FlashAttention runs it: the longest query tile of a prefill, FA2's unsplit
  and regrouped decodes, few sequences' KV streams, work items overlapping the roofline, and a
  benchmark's warm L2.
* Element-wise kernels (norms, activations, embedding gathers): bytes over their own
  bandwidth efficiency, plus a floor.
* All-reduce: a fixed latency plus ``2 (p - 1) / p`` of the buffer over the link's bandwidth
  at a calibrated efficiency (ring bus bandwidth, as nccl-tests reports it).

Every function takes arrays or floats (numpy broadcasting) and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from hetsim.specs.calibration import AllToAllKernels, CollectiveKernels, GemmKernels, KernelClass, KernelModel

# Candidate CTA tiles per device family: the shapes CUTLASS's and cuBLAS's kernels for the
# family instantiate (CUTLASS profiler defaults: SM80 128x256, 128x128, 64x128, 64x64; SM90
# warp-specialised 128x256, 128x128, 64x256, 64x128; CDNA3 hipBLASLt macro tiles 256x256 down
# to 64x64). Tile quantisation is only as exact as this list; a calibration may override it.
TILE_FAMILIES: dict[str, tuple[tuple[int, int], ...]] = {
    "nvidia": ((128, 256), (128, 128), (64, 128), (64, 64)),
    "amd": ((256, 256), (256, 128), (128, 128), (64, 64)),
    "other": ((128, 128),),
}

# vLLM's fp8 GEMMs on Ada (sm89): CUTLASS 2.x kernels whose tile is dispatched on m and n
# (csrc/quantization/w8a8/cutlass/scaled_mm_c2x_sm89_fp8_dispatch.cuh: 16 x 64 and 16 x 128 for
# m <= 16, 32 x 64 and 32 x 128 up to 32, 64 x 64 and 64 x 128 up to 64, 64 x 128, 128 x 128 and
# 128 x 64 up to 128, 128 x 128 and 256 x 128 beyond), launched in
# GemmUniversalMode::kGemmSplitKParallel with one partition (scaled_mm_c2x.cuh), in which CUTLASS's
# ThreadblockSwizzleStreamK neither splits K nor load balances ("Only kGemm mode allows for SK load
# balancing"): one CTA per tile over all of K. On Hopper vLLM's CUTLASS 3.x fp8 kernels
# (c3x/scaled_mm.cuh) use cutlass::gemm::PersistentScheduler, data-parallel tiles without split-K
# too. The fitter weighs this family against the generic one (hetsim.perf.kernel_fit.FAMILIES).
VLLM_SM89_FP8_TILES: tuple[tuple[int, int], ...] = (
    (256, 128), (128, 128), (128, 64), (64, 128), (64, 64), (32, 128), (32, 64), (16, 128), (16, 64),
)  # fmt: skip
# Its dispatch, (m_max, n_max, rows, columns) on m and n rounded up to powers of two (m at least
# 16: ``mp2 = max(16, next_pow_2(m))`` in cutlass_gemm_sm89_fp8_dispatch since vLLM PR #16751,
# April 2025, which made its M16 config reachable; vLLM 0.14.0 ships it): sm89_fp8_config_M16,
# _M32, _M64, _M128, _M256 and _default in that order (M16's "np2 <= 24576" admits powers of two
# up to 16384).
_ANY = 2**40
VLLM_SM89_FP8_DISPATCH: tuple[tuple[int, int, int, int], ...] = (
    (16, 8192, 16, 64), (16, 16384, 16, 128), (16, _ANY, 32, 64),
    (32, 8192, 32, 64), (32, 16384, 32, 128), (32, _ANY, 32, 64),
    (64, 8192, 64, 64), (64, 16384, 64, 128), (64, _ANY, 64, 64),
    (128, 8192, 64, 128), (128, 16384, 128, 128), (128, _ANY, 128, 64),
    (256, 4096, 64, 128), (256, _ANY, 128, 128),
    (_ANY, 4096, 128, 128), (_ANY, 8192, 256, 128), (_ANY, _ANY, 128, 128),
)  # fmt: skip
# Its tiles whose kernels stack their warps along the rows, one warp column (the dispatch's WarpShape:
# 32 x 64 x 128 tiles on 16 x 64 x 64 warps, 64 x 64 x 128 on 32 x 64 x 64, 128 x 64 x 128 on
# 64 x 64 x 64), so that every warp reads the whole B (weight) tile from shared memory. Measured on
# L40S (AIConfigurator's vLLM 0.14.0 rows) they alone ran 16-17% slower than the model at the median,
# 15-45% wherever the weights sat warm in L2 and on a par once cold, while the one-warp and
# side-by-side-warp tiles (16 x 64, 16 x 128, 32 x 128, 64 x 128) held within 4-6%: an extra fixed
# cost and their own warm-L2 speed-up, both fitted (GemmKernels.stacked_warp_*).
VLLM_SM89_FP8_STACKED_WARPS: tuple[tuple[int, int], ...] = ((32, 64), (64, 64), (128, 64))
# Hopper's (sm90, CUTLASS 3.x persistent kernels): m up to 64 on 64 x 64 tiles, up to 128 on
# 64 x 128, beyond on 128 x 128 (c3x/scaled_mm_sm90_fp8_dispatch.cuh).
VLLM_SM90_FP8_TILES: tuple[tuple[int, int], ...] = ((128, 128), (64, 128), (64, 64))
VLLM_SM90_FP8_DISPATCH: tuple[tuple[int, int, int, int], ...] = ((64, _ANY, 64, 64), (128, _ANY, 64, 128), (_ANY, _ANY, 128, 128))

DEFAULT_SOURCES = {
    "gemm": (
        "medians (rounded) of the fits to AIConfigurator's vLLM 0.14.0 GEMM measurements on A100 SXM, H100 SXM, "
        "H200 SXM and L40S (hardware_profiles/measurements/public/aiconfigurator, Apache-2.0); "
        "cf. stas00 ml-engineering MAMF: 792 of 989 TFLOP/s on H100 bf16"
    ),
    "attention_prefill": "medians of the fits to AIConfigurator's vLLM 0.14.0 context-attention (flash) measurements",
    "attention_decode": "medians of the fits to AIConfigurator's vLLM 0.14.0 generation-attention measurements",
    "elementwise": (
        "medians of the fits to Vidur's norm/activation/rope/add measurements on A100, H100, A40 (MIT): "
        "about half of HBM bandwidth, not 85%"
    ),
    "input_quant": (
        "medians of the fits to AIConfigurator's vLLM 0.14.0 fp8 GEMM measurements on H100 SXM, H200 SXM and L40S "
        "(the linear layer timed on bf16 input, so each includes quantising it): 7-15% of HBM bandwidth at "
        "3 bytes per element, far below the other element-wise kernels"
    ),
    "collective": (
        "means of the fits to AIConfigurator's NCCL all-reduce measurements on A100 and H100 (nccl-tests bus "
        "bandwidth): small messages take 10-20 us, growing ~1.4 us per rank, not the link's few"
    ),
    "all_to_all": (
        "fitted to DeepEP's low-latency dispatch/combine table on H800 (deepseek-ai/DeepEP docs/legacy.md): "
        "36 us + bytes at 82% of NVLink / 92.5% of the NIC; high-throughput kernels hold 20 of 132 SMs"
    ),
}

# Expert-parallel dispatch/combine without a fit of its own: latency and both efficiencies fitted
# (mean |log error| 2%) to DeepEP's published low-latency kernel times on H800 (docs/legacy.md,
# deepseek-ai/DeepEP @b306af0: 128 tokens per rank, hidden 7168, top-8, FP8 dispatch, BF16
# combine, EP 8-256, NVLink 200 GB/s and CX7 400 Gb/s ~50 GB/s per GPU); its high-throughput
# table (4096 tokens: NVLink 153 GB/s intranode, RDMA 43-58 GB/s at EP 16-64) is reproduced
# within ~20% (tests/validation/test_moe_published.py). Decode batches up to 256 tokens per rank
# run the low-latency kernels (DeepEP's README @9fe9021 sizes their buffer for "the actual batch
# size in the decoding engine", recommended below 256; SGLang decoded 256 per GPU on them without
# two-batch overlap, LMSYS 2025-05-05); the high-throughput kernels hold 20 of 132 SMs (DeepEP
# Buffer.num_sms default, deep_ep/buffer.py @9fe9021).
DEFAULT_ALL_TO_ALL = AllToAllKernels(
    latency_s=36e-6,
    scale_up_efficiency=0.82,
    scale_out_efficiency=0.925,
    low_latency_max_tokens=256,
    throughput_sm_share=20 / 132,
)


def all_to_all_kernels(kernels: KernelModel) -> AllToAllKernels:
    """The all-to-all parameters: the calibration's, else ``DEFAULT_ALL_TO_ALL``."""
    return kernels.all_to_all if kernels.all_to_all is not None else DEFAULT_ALL_TO_ALL


# The documented defaults of a device without a fit (see ``DEFAULT_SOURCES``): the median of
# each parameter over the devices ``benchmarks/fidelity_public.py`` fits.
DEFAULT_KERNELS = KernelModel(
    stack="datasheet default",
    gemm=GemmKernels(
        efficiency=0.81,
        k_half=175.0,
        memory_efficiency=0.83,
        floor_s=2.3e-6,
        split_k_s=1.8e-6,
        tiles=TILE_FAMILIES["nvidia"],
    ),
    attention_prefill=KernelClass(
        efficiency=0.60, intensity_half=333.0, memory_efficiency=0.35, floor_s=11.7e-6, sequence_s=21e-9
    ),
    attention_decode=KernelClass(efficiency=0.10, memory_efficiency=0.90, floor_s=11.1e-6, sequence_s=23e-9),
    elementwise=KernelClass(efficiency=0.30, memory_efficiency=0.48, floor_s=2.55e-6),
    input_quant=KernelClass(efficiency=0.30, memory_efficiency=0.076, floor_s=3.2e-6),
    collective=CollectiveKernels(latency_s=9.8e-6, rank_latency_s=1.4e-6, efficiency=0.79),
    sources=DEFAULT_SOURCES,
)


def input_quant_kernels(kernels: KernelModel) -> KernelClass:
    """The input-quantisation parameters: the calibration's, else ``DEFAULT_KERNELS``'."""
    fitted = kernels.input_quant if kernels.input_quant is not None else DEFAULT_KERNELS.input_quant
    assert fitted is not None  # the defaults always carry one
    return fitted


# The flat roofline hetsim used before its kernel model: the arXiv 2507.19635 reproduction keeps
# it, since the paper's own analysis is a roofline with constant efficiencies (its claims are
# about that model's inputs, not about a calibrated stack).
PAPER_KERNELS = KernelModel(
    stack="paper roofline (flat efficiencies)",
    gemm=GemmKernels(efficiency=0.75, memory_efficiency=0.80, floor_s=5e-6, tiles=((128, 128),), quantise=False),
    attention_prefill=KernelClass(efficiency=0.60, memory_efficiency=0.75, floor_s=5e-6),
    attention_decode=KernelClass(efficiency=0.60, memory_efficiency=0.75, floor_s=5e-6),
    elementwise=KernelClass(efficiency=0.75, memory_efficiency=0.85, floor_s=5e-6),
    collective=CollectiveKernels(latency_s=6e-6, efficiency=0.80, per_step_latency=True),
    fused_elementwise=True,
    sources={
        "all": "GEMM 75% of peak and 80% of bandwidth, attention 60% / 75%, element-wise 85% of bandwidth, "
        "5 us per kernel, all-reduce two link latencies at 80% of the link: hetsim's pre-calibration roofline"
    },
)


def default_kernels(vendor: str) -> KernelModel:
    """The documented defaults with the device family's tile shapes."""
    tiles = TILE_FAMILIES.get(vendor, TILE_FAMILIES["other"])
    if tiles == DEFAULT_KERNELS.gemm.tiles:
        return DEFAULT_KERNELS
    return DEFAULT_KERNELS.model_copy(update={"gemm": DEFAULT_KERNELS.gemm.model_copy(update={"tiles": tiles})})


def saturating_efficiency(params: KernelClass, flops: Any, nbytes: Any) -> Any:
    """``efficiency * I / (I + intensity_half)`` with I = FLOP per byte (flat when half is 0)."""
    if not params.intensity_half:
        return params.efficiency if np.ndim(flops) == 0 else np.full(np.shape(flops), params.efficiency)
    intensity = np.asarray(flops, dtype=float) / np.maximum(np.asarray(nbytes, dtype=float), 1.0)
    return params.efficiency * intensity / (intensity + params.intensity_half)


def kernel_seconds_scalar(params: KernelClass, flops: float, nbytes: float, peak_flops: float, bandwidth: float) -> float:
    """``kernel_seconds`` of one op in plain floats: the simulator prices millions of steps, and
    numpy on scalars costs more than the arithmetic (the two are tested equal)."""
    compute_s = 0.0
    if flops:
        efficiency = params.efficiency
        if params.intensity_half:
            intensity = flops / (nbytes if nbytes > 1.0 else 1.0)
            efficiency *= intensity / (intensity + params.intensity_half)
        compute_s = flops / (peak_flops * efficiency)
    memory_s = nbytes / (bandwidth * params.memory_efficiency)
    return (compute_s if compute_s >= memory_s else memory_s) + params.floor_s


def kernel_seconds(params: KernelClass, flops: Any, nbytes: Any, peak_flops: float, bandwidth: float) -> Any:
    """Roofline time of one kernel of a kind: max(compute, memory) plus the kind's floor."""
    flops = np.asarray(flops, dtype=float)
    nbytes = np.asarray(nbytes, dtype=float)
    efficiency = saturating_efficiency(params, flops, nbytes)
    compute = np.where(flops > 0, flops / (peak_flops * np.maximum(efficiency, 1e-12)), 0.0)
    memory = nbytes / (bandwidth * params.memory_efficiency)
    return np.maximum(compute, memory) + params.floor_s


# Query rows one attention CTA computes: FlashAttention-2's sm80 head-dim-128 forward kernel
# (Flash_fwd_kernel_traits<128, 128, 64, 4> in csrc/flash_attn/src/flash_fwd_launch_template.h,
# run_mha_fwd_hdim128) and FlashAttention-3's sm90 one (tile_size_fwd_sm90: 128 x 128 causal,
# 128 x 176 otherwise, hopper/tile_size.h) both tile queries by 128.
ATTENTION_TILE_ROWS = 128.0


# The CTA grid and tiles of the prefill kernels vLLM runs (``KernelClass.tiling``; vllm-project/
# flash-attention, the FA2 and FA3 sources of vLLM 0.14):
# * "fa2-paged": vLLM always passes the paged KV cache (block_table), and FA2's ``mha_varlen_fwd``
#   then runs the split-KV kernel whatever the split count (``run_mha_fwd(params, stream,
#   paged_KV)`` -> ``run_mha_fwd_splitkv_dispatch``, csrc/flash_attn/flash_api.cpp), whose tiles
#   are 64 query rows by 256 / 128 / 64 keys for head dimensions <= 64 / <= 128 / larger
#   (csrc/flash_attn/src/flash_fwd_launch_template.h), not the 128 x 64 of the unpaged kernel; one
#   CTA per query tile, sequence and query head (grid (m blocks, batch, heads)), no packing of
#   grouped heads. A one-token prefill with grouped heads takes the decode path's swap
#   (``seqlenq_ngroups_swapped``): one CTA per (sequence, KV head) over its query heads as rows,
#   with the query and output regrouping copies (``regroup_s``).
# * "fa3": FA3 on sm90 packs grouped query heads into the rows of one KV head's tiles whenever the
#   query lengths vary (``get_pack_gqa`` -> ``should_pack_gqa(varlen_q)``, hopper/heuristics.h),
#   tiles of ``tile_size_fwd_sm90`` (hopper/tile_size.h, 16-bit, causal): 192 x 128 for head
#   dimensions <= 64, 192 x 144 for <= 96, 128 x 128 for <= 128 (64 rows when the packed rows are
#   at most 64: ``use_one_mma_wg``), 128 x 128 for <= 192, 128 x 80 above.
FLASH_TILINGS = ("fa2-paged", "fa3")


def flash_tiles(tiling: str, shape: AttentionShape) -> tuple[Any, Any, Any, Any]:
    """Per op of ``shape``: (CTAs, query rows per tile, keys per tile, swapped) of the prefill kernel
    ``tiling`` names (``FLASH_TILINGS``); ``swapped`` marks FA2's one-token grouped prefills."""
    q = np.asarray(shape.q_tokens, dtype=float)
    batch = np.asarray(shape.batch, dtype=float)
    heads = np.asarray(shape.heads, dtype=float)
    kv_heads = np.asarray(shape.kv_heads, dtype=float)
    head_dim = np.asarray(shape.head_dim, dtype=float)
    groups = heads / np.maximum(kv_heads, 1.0)
    if tiling == "fa2-paged":
        rows = np.full(np.shape(q), 64.0)
        keys = np.where(head_dim <= 64, 256.0, np.where(head_dim <= 128, 128.0, 64.0))
        swapped = (q == 1) & (heads > kv_heads)
        ctas = batch * np.where(swapped, kv_heads * np.ceil(groups / rows), heads * np.ceil(q / rows))
        return ctas, rows, keys, swapped
    if tiling == "fa3":
        packed_rows = q * np.where(heads > kv_heads, groups, 1.0)
        rows = np.where(head_dim <= 96, 192.0, 128.0)
        rows = np.where((packed_rows <= 64) & ((head_dim == 64) | (head_dim == 128)), 64.0, rows)
        keys = np.where(head_dim <= 64, 128.0, np.where(head_dim <= 96, 144.0, np.where(head_dim <= 192, 128.0, 80.0)))
        keys = np.where(rows == 64.0, np.where(head_dim <= 64, 192.0, 128.0), keys)
        ctas = batch * np.where(heads > kv_heads, kv_heads, heads) * np.ceil(packed_rows / rows)
        return ctas, rows, keys, np.zeros(np.shape(q), dtype=bool)
    raise ValueError(f"tiling: expected one of {FLASH_TILINGS}, got {tiling!r}")


@dataclass(frozen=True)
class AttentionShape:
    """The shape of attention ops (arrays, one entry per op): sequences, new tokens per sequence,
    KV tokens each sequence reads, its sliding window (NaN: full attention), query and KV heads,
    head dimension, and the L2 bytes a benchmark repeating the call keeps warm (None or NaN: a
    serving call, nothing stays warm)."""

    batch: Any
    q_tokens: Any
    kv_read: Any
    window: Any
    heads: Any
    kv_heads: Any
    head_dim: Any
    warm_cache_bytes: Any = None


def attention_seconds(
    params: KernelClass,
    flops: Any,
    nbytes: Any,
    peak_flops: Any,
    bandwidth: float,
    compute_units: int | None,
    shape: AttentionShape,
    decode: bool,
) -> Any:
    """Time of attention ops of a known shape: the class's roofline and floor, its cost per
    (sequence x KV head) work item (``sequence_s`` added; ``item_s`` overlapped: the kernel is
    never faster than its items' setup, which runs while other CTAs stream), and the shape terms
    its parameters enable:

    * prefill (``cta_efficiency``): a causal kernel is never faster than its longest CTA, the last
      query tile of ``ATTENTION_TILE_ROWS`` rows over every key it sees, run by one compute unit
      at its share of the peak (FlashAttention grids one CTA per query tile, head and sequence;
      with fewer tiles than units the units left idle cannot help: small-head, short-batch
      prefill).
    * decode (``unsplit_cta_share``): FlashAttention-2 (vllm-project/flash-attention
      csrc/flash_attn/flash_api.cpp ``mha_varlen_fwd``) splits the KV ("Only apply split-k for
      decoding") only when queries are grouped (``num_heads > num_heads_k``, the GQA swap); a
      decode with as many KV as query heads runs one CTA per (sequence, head) over its whole KV,
      so few of them stream a small share of the bandwidth each.
    * decode (``regroup_s``): that swap reshapes the queries from (batch, 1, kv_heads x groups)
      to (batch x groups, kv_heads) with a transpose, copied unless the batch or the KV heads
      are 1, and copies the output back (``out_.value().view(...).copy_(out)``): two more
      kernels, priced as a fixed time.
    * decode (``stream_token_s``, ``stream_sequences``): a floor of ``min(batch, stream_sequences)
      x KV tokens x stream_token_s``: with few sequences the kernel streams each one's KV at a
      bounded rate however many KV heads it has (an empirical term, fitted to the measurements:
      see the README's fidelity section).
    * ``warm_cache_speedup``: where ``shape.warm_cache_bytes`` is given and the op's bytes fit in
      it (a benchmark repeating the same call keeps them in L2), memory runs that much faster.
    """
    flops = np.asarray(flops, dtype=float)
    nbytes = np.asarray(nbytes, dtype=float)
    batch = np.asarray(shape.batch, dtype=float)
    kv_heads = np.asarray(shape.kv_heads, dtype=float)
    efficiency = np.maximum(saturating_efficiency(params, flops, nbytes), 1e-12)
    compute = np.where(flops > 0, flops / (peak_flops * efficiency), 0.0)
    memory = nbytes / (bandwidth * params.memory_efficiency)
    kv_read = np.asarray(shape.kv_read, dtype=float)
    items = batch * kv_heads
    seconds_extra = 0.0
    if not decode and params.tiling:
        return _tiled_prefill_seconds(params, compute, memory, nbytes, peak_flops, compute_units, shape)
    if not decode and params.cta_efficiency and compute_units:
        rows = np.minimum(ATTENTION_TILE_ROWS, np.asarray(shape.q_tokens, dtype=float))
        window = np.asarray(shape.window, dtype=float)
        keys = np.where(np.isfinite(window), np.minimum(kv_read, np.nan_to_num(window) + rows - 1.0), kv_read)
        longest = 4.0 * np.asarray(shape.head_dim, dtype=float) * rows * keys
        compute = np.maximum(compute, longest / (np.asarray(peak_flops) / compute_units * params.cta_efficiency))
    if decode and params.unsplit_cta_share:
        unsplit = np.asarray(shape.heads, dtype=float) == kv_heads
        share = np.minimum(1.0, batch * kv_heads * params.unsplit_cta_share)
        memory = np.where(unsplit, memory / share, memory)
    if shape.warm_cache_bytes is not None and params.warm_cache_speedup != 1.0:
        warm = nbytes <= np.asarray(shape.warm_cache_bytes, dtype=float)  # NaN: never
        memory = np.where(warm, memory / params.warm_cache_speedup, memory)
    if decode and params.regroup_s:
        heads = np.asarray(shape.heads, dtype=float)
        regrouped = (heads > kv_heads) & (batch > 1) & (kv_heads > 1)
        seconds_extra = np.where(regrouped, params.regroup_s, 0.0)
    if decode and params.stream_token_s:
        memory = np.maximum(memory, np.minimum(batch, params.stream_sequences) * kv_read * params.stream_token_s)
    busy = np.maximum(compute, memory)
    if params.item_s:
        busy = np.maximum(busy, items * params.item_s)
    return busy + params.floor_s + items * params.sequence_s + seconds_extra


def _tiled_prefill_seconds(
    params: KernelClass, compute: Any, memory: Any, nbytes: Any, peak_flops: Any, compute_units: int | None,
    shape: AttentionShape,
) -> Any:
    """A prefill on the CTA grid of ``params.tiling`` (``flash_tiles``), given the class's roofline
    sides ``compute`` and ``memory``:

    * its CTAs, not its (sequence x KV head) items, bound the kernel from below at ``item_s`` each:
      a query tile loads its Q, stores its O and runs the softmax epilogue however few of its rows
      are real (16 tokens of one head cost a whole 64-row tile on FA2); ``sequence_s`` stays per
      (sequence x KV head), as the step pricer adds it (a cost per CTA added as well fitted to 0);
    * its longest CTA, the last query tile over every key it sees in whole key tiles (one compute
      unit at ``cta_efficiency`` of its share of the peak), is added to the balanced time, not
      only a floor under it: FA2 grids (m block, batch, head) with the m block fastest, so each
      (sequence, head)'s last and longest tile is dispatched last and the grid ends with one
      running alone; on few tiles it is the whole kernel (FA3's persistent scheduler was fitted
      better so too: H100 p90 26% with the floor, 23% added);
    * FA2's one-token prefills with grouped heads pay the swap's regrouping copies (``regroup_s``).
    """
    ctas, rows, keys, swapped = flash_tiles(params.tiling, shape)
    batch = np.asarray(shape.batch, dtype=float)
    kv_heads = np.asarray(shape.kv_heads, dtype=float)
    if params.cta_efficiency and compute_units:
        kv_read = np.asarray(shape.kv_read, dtype=float)
        window = np.asarray(shape.window, dtype=float)
        seen = np.where(np.isfinite(window), np.minimum(kv_read, np.nan_to_num(window) + rows - 1.0), kv_read)
        seen = np.where(swapped, kv_read, seen)
        longest = 4.0 * np.asarray(shape.head_dim, dtype=float) * rows * keys * np.ceil(seen / keys)
        compute = compute + longest / (np.asarray(peak_flops) / compute_units * params.cta_efficiency)
    if shape.warm_cache_bytes is not None and params.warm_cache_speedup != 1.0:
        warm = nbytes <= np.asarray(shape.warm_cache_bytes, dtype=float)  # NaN: never
        memory = np.where(warm, memory / params.warm_cache_speedup, memory)
    busy = np.maximum(compute, memory)
    if params.item_s:
        busy = np.maximum(busy, ctas * params.item_s)
    regroup = np.where(swapped & (batch > 1) & (kv_heads > 1), params.regroup_s, 0.0)
    return busy + params.floor_s + batch * kv_heads * params.sequence_s + regroup


OUTPUT_BYTES = 2.0  # a GEMM's output elements are 16-bit (fp8 GEMMs too)


def gemm_seconds(
    params: GemmKernels,
    m: Any,
    n: Any,
    k: Any,
    nbytes: Any,
    peak_flops: float,
    bandwidth: float,
    compute_units: int | None,
    groups: Any = 1,
    warm: Any = False,
) -> Any:
    """Time of one ``(m x k) @ (k x n)`` GEMM moving ``nbytes`` (see the module docstring); with
    ``groups``, one grouped GEMM of that many such problems in one launch (an MoE layer's experts,
    as DeepGEMM's and CUTLASS's grouped kernels run them: every group's tiles share the waves).
    ``warm`` marks GEMMs a benchmark repeats with their bytes still in L2 (their memory side runs
    ``warm_cache_speedup`` times faster; a serving call is never warm).

    Terms of how the measured libraries run a GEMM (0 or None leaves each out; the defaults do):
    ``unit_bandwidth_share``, what one compute unit's blocks can stream (fewer blocks than units
    otherwise stream only their even share); ``serial_k_work`` / ``serial_k_depth``, problems the
    library keeps unsplit, one CTA per tile over the whole K loop (cuBLAS on L40S: m n k < 2^21 and
    k <= 8192, 4 ns per k for m = 2-16, where the split kernel takes 5 us); one row is a
    matrix-vector product, run by another kernel (never serial, ``vector_split_k_s`` its split's
    cost); ``output_efficiency``, the epilogue's output writes priced after the K loop instead of
    overlapped with the inputs' streaming; ``stacked_warp_*``, the extra fixed cost and own warm-L2
    speed-up of tiles whose kernel stacks its warps along the rows (``VLLM_SM89_FP8_STACKED_WARPS``)."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    nbytes = np.asarray(nbytes, dtype=float)
    groups = np.asarray(groups, dtype=float)
    flops = 2.0 * m * n * k * groups
    efficiency = np.maximum(saturating_efficiency(params, flops, nbytes), 1e-12)
    if params.k_half:
        efficiency = efficiency * k / (k + params.k_half)
    epilogue = 0.0
    if params.output_efficiency:
        outputs = groups * m * n * OUTPUT_BYTES
        nbytes = np.maximum(nbytes - outputs, 0.0)
        epilogue = outputs / (bandwidth * params.output_efficiency)
    cold_memory = nbytes / (bandwidth * params.memory_efficiency)
    memory = cold_memory
    if params.warm_cache_speedup != 1.0:
        memory = np.where(warm, memory / params.warm_cache_speedup, memory)
        epilogue = np.where(warm, epilogue / params.warm_cache_speedup, epilogue)
    if compute_units is None:
        compute = np.where(flops > 0, flops / (peak_flops * efficiency), 0.0)
        return np.maximum(compute, memory) + epilogue + params.floor_s
    per_unit = peak_flops / compute_units
    share = params.unit_bandwidth_share or 1.0 / compute_units
    vector = m == 1  # one row: a matrix-vector kernel, its own reduction of split K and no serial regime
    vector_split_k_s = params.split_k_s if params.vector_split_k_s is None else params.vector_split_k_s
    serial = (m * n * k < params.serial_k_work) & ~vector
    if params.serial_k_depth:
        serial = serial & (k <= params.serial_k_depth)
    ndim = np.broadcast(m, n, k, nbytes, groups).ndim
    # Every (tile, split) candidate at once along a leading axis (the planner prices shapes one by
    # one: a loop over 24 candidates cost it more than the arithmetic); the same operations, in
    # the same order, per element as one candidate at a time.
    rows, cols, split, stacked = _candidates(params, ndim)
    tiles = groups * np.ceil(m / rows) * np.ceil(n / cols)
    blocks = tiles * split
    waves = np.ceil(blocks / compute_units)
    depth = np.ceil(k / split)
    compute = waves * 2.0 * rows * cols * depth / (per_unit * efficiency)
    # A unit streams only its share of the bandwidth: fewer blocks than units leave
    # bandwidth idle, which is what split-K (and GEMV kernels) exist to avoid.
    tile_memory = memory
    if params.stacked_warp_tiles:
        tile_memory = np.where(stacked, _stacked_warp_memory(params, cold_memory, warm), memory)
    streamed = tile_memory / np.minimum(1.0, blocks * share)
    candidate = np.maximum(np.where(flops > 0, compute, 0.0), streamed)
    splits = split > 1
    # the partial sums' reduction
    candidate = candidate + np.where(splits, np.where(vector, vector_split_k_s, params.split_k_s), 0.0)
    candidate = np.where(splits & serial, np.inf, candidate)
    candidate = candidate + np.where(stacked, params.stacked_warp_floor_s, 0.0)
    if params.tile_dispatch:
        dispatched = _dispatched_tile(params.tile_dispatch, m, n)
        candidate = np.where((dispatched[0] == rows) & (dispatched[1] == cols), candidate, np.inf)
    return candidate.min(axis=0) + epilogue + params.floor_s


def _candidates(params: GemmKernels, ndim: int) -> tuple[Any, Any, Any, Any]:
    """(rows, columns, split, stacked warps) of every (tile, split) candidate, tiles outer, as
    arrays along a leading axis that broadcasts against ``ndim``-dimensional shapes."""
    return _candidate_table(params.tiles, params.split_k, params.stacked_warp_tiles, ndim)


@lru_cache(maxsize=256)
def _candidate_table(
    tiles: tuple[tuple[int, int], ...], splits: tuple[int, ...], stacked_tiles: tuple[tuple[int, int], ...], ndim: int
) -> tuple[Any, Any, Any, Any]:
    pairs = [(rows, cols, split) for rows, cols in tiles for split in splits]
    table = np.array(pairs, dtype=float).reshape(len(pairs), 3, *([1] * ndim))
    stacked = np.array([(rows, cols) in stacked_tiles for rows, cols, _ in pairs]).reshape(-1, *([1] * ndim))
    for array in (table, stacked):
        array.setflags(write=False)  # shared between calls
    return table[:, 0], table[:, 1], table[:, 2], stacked


def _stacked_warp_memory(params: GemmKernels, cold_memory: Any, warm: Any) -> Any:
    """A stacked-warp tile's memory time: the class's cold time, divided in warm rows by its
    own warm-L2 speed-up (``GemmKernels.stacked_warp_warm_speedup``; None: the class's)."""
    speedup = params.warm_cache_speedup if params.stacked_warp_warm_speedup is None else params.stacked_warp_warm_speedup
    return np.where(warm, cold_memory / speedup, cold_memory) if speedup != 1.0 else cold_memory


def _dispatched_tile(rules: tuple[tuple[int, int, int, int], ...], m: Any, n: Any) -> tuple[Any, Any]:
    """(rows, columns) of the tile ``rules`` dispatch each shape to (see ``GemmKernels.tile_dispatch``)."""
    m_pow2 = np.maximum(16.0, 2.0 ** np.ceil(np.log2(np.maximum(m, 1.0))))
    n_pow2 = 2.0 ** np.ceil(np.log2(np.maximum(n, 1.0)))
    rows = np.zeros(np.broadcast(m, n).shape)
    cols = np.zeros_like(rows)
    for m_max, n_max, tile_rows, tile_cols in reversed(rules):  # the first matching rule wins
        match = (m_pow2 <= m_max) & (n_pow2 <= n_max)
        rows = np.where(match, tile_rows, rows)
        cols = np.where(match, tile_cols, cols)
    return rows, cols


# vLLM's fp8 linear layer with 16-bit activations quantises its input before every fp8 GEMM:
# ``Fp8LinearMethod.apply`` runs its fp8 linear op, whose ``QuantFP8`` (vllm/model_executor/layers/
# quantization/input_quant_fp8.py) calls ``ops.scaled_fp8_quant``: ``static_scaled_fp8_quant`` with a
# checkpoint's input scale, or ``dynamic_scaled_fp8_quant`` (an abs-max reduction pass, then the
# same quantising pass) without one (csrc/quantization/w8a8/fp8/common.cu); with vLLM's custom ops
# off, its PyTorch form (cast to fp32, scale, clamp, cast to fp8). Priced as an element-wise
# kernel: 16 bits read and 8 written per element at the class's own bandwidth efficiency, plus
# its floor. (Letting fewer rows than compute units stream only their share, as one block per
# row would, fitted AIConfigurator's H100 rows worse: p90 31% against 17%.)
QUANTISED_BYTES_PER_ELEMENT = 2.0 + 1.0


def input_quant_seconds(params: KernelClass, m: Any, k: Any, bandwidth: float, warm: Any = False) -> Any:
    """Time of quantising an ``m x k`` 16-bit GEMM input to fp8 (see above); ``warm`` marks a
    benchmark repeating the call with the input still in L2 (its bytes move ``warm_cache_speedup``
    times faster; a serving call is never warm)."""
    nbytes = np.asarray(m, dtype=float) * np.asarray(k, dtype=float) * QUANTISED_BYTES_PER_ELEMENT
    memory = nbytes / (bandwidth * params.memory_efficiency)
    if params.warm_cache_speedup != 1.0:
        memory = np.where(warm, memory / params.warm_cache_speedup, memory)
    return memory + params.floor_s


def all_reduce_seconds(params: CollectiveKernels, buffer_bytes: Any, ranks: int, link_bandwidth: float) -> Any:
    """Time of one all-reduce of ``buffer_bytes`` over ``ranks`` ranks on a link of
    ``link_bandwidth`` bytes/s per direction; 0 for one rank or an empty buffer."""
    buffer_bytes = np.asarray(buffer_bytes, dtype=float)
    if ranks <= 1:
        return np.zeros_like(buffer_bytes)
    moved = 2.0 * (ranks - 1) / ranks * buffer_bytes
    latency = params.latency_s + (ranks - 1) * params.rank_latency_s
    return np.where(buffer_bytes > 0, latency + moved / (link_bandwidth * params.efficiency), 0.0)
