"""CPU microbenchmarks with torch: LLM-shaped GEMMs, memory streams and decode attention.

The only module of this package that imports torch (lazily, inside functions: the ``bench``
extra is optional). Every op reads operands that are *not* in cache: weights, KV cache and
stream buffers rotate through a pool several times the last-level cache, as weight and KV
streaming does in inference (activations stay hot, as they are in a real forward pass).
``run_cpu_bench`` runs the sweep, fits a calibration and writes it with a host profile.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hetsim import __version__
from hetsim.bench.files import write_bench_outputs
from hetsim.bench.host import HostInfo, detect_host, host_profile
from hetsim.bench.timing import OpTiming, QuietWaiter, TimingPolicy, time_round
from hetsim.perf.fit import fit_calibration, stream_bandwidth
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import CalibrationProvenance
from hetsim.specs.hardware import AcceleratorSpec

# Llama-3-8B projections as (name, K, N, parallel style): column-parallel layers split N over
# tensor-parallel ranks, row-parallel ones split K (Megatron-LM convention).
LLAMA3_8B_PROJECTIONS = (("qkv", 4096, 6144, "column"), ("o", 4096, 4096, "row"),
                         ("gate_up", 4096, 28672, "column"), ("down", 14336, 4096, "row"))


@dataclass(frozen=True)
class SweepPlan:
    """What to measure. ``FULL_SWEEP`` ships; ``QUICK_SWEEP`` is for tests (tiny shapes)."""

    tokens: tuple[int, ...]
    projections: tuple[tuple[str, int, int, str], ...]
    tp_degrees: tuple[int, ...]
    dtypes: tuple[str, ...]
    memory_mib: tuple[int, ...]
    attention: tuple[tuple[int, int], ...]  # (batch, context) pairs
    heads: int = 8
    head_dim: int = 128
    timing: TimingPolicy = field(default_factory=TimingPolicy)


FULL_SWEEP = SweepPlan(
    tokens=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    projections=LLAMA3_8B_PROJECTIONS,
    tp_degrees=(1, 2, 4),
    dtypes=("fp32", "bf16"),
    memory_mib=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
    attention=tuple((1, c) for c in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768))
    + tuple((4, c) for c in (256, 512, 1024, 2048, 4096, 8192))
    + tuple((16, c) for c in (256, 512, 1024, 2048)),
)
QUICK_SWEEP = SweepPlan(
    tokens=(1, 4, 16, 64, 256),
    projections=(("a", 1024, 1024, "column"), ("b", 1024, 4096, "column"), ("c", 4096, 1024, "row")),
    tp_degrees=(1,),
    dtypes=("fp32", "bf16"),
    memory_mib=(4, 16, 64),
    attention=((1, 512), (1, 4096), (4, 1024)),
    timing=TimingPolicy(rounds=2, max_rounds=3, block_s=0.005, max_repeats=10, quiet_budget_s=5.0),
)
_READ_ROW = 4096
_PROBE_WIDTH = 16  # probes move ~1 KB: their ideal time is ~1% of their fixed cost
ROW_COLUMNS = ("kind", "dtype", "op", "label", "m", "n", "k", "batch", "heads", "context", "head_dim",
               "flops", "bytes", "seconds", "seconds_median", "spread", "rounds", "clean_rounds", "wait_share",
               "samples", "threads", "load1")


@dataclass
class BenchOp:
    """One measured operation: its identity, work, and a callable taking the call index."""

    row: dict[str, Any]
    call: Callable[[int], object]
    timing: OpTiming = field(default_factory=OpTiming)


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        from hetsim.errors import CalibrationError

        raise CalibrationError("hetsim bench needs torch: pip install 'hetsim[bench]'") from None
    return torch


def _dtype(name: str) -> Any:
    torch = _torch()
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _pool(numel: int, dtype: str, generator: Any) -> Any:
    """A flat tensor of random values in [-1, 1) (no denormals, no NaN)."""
    torch = _torch()
    return torch.empty(numel, dtype=torch.float32).uniform_(-1, 1, generator=generator).to(_dtype(dtype))


def rotating_views(pool: Any, shape: tuple[int, ...], cold_bytes: float) -> list[Any]:
    """Views of ``shape`` at page-aligned offsets of ``pool``, enough to span ``cold_bytes``.

    Calling an op on view ``i % len(views)`` makes consecutive calls read different memory,
    so an operand smaller than the cache is still read from DRAM, as in a real model.
    """
    numel = math.prod(shape)
    stride = -(-numel // 1024) * 1024
    wanted = math.ceil(cold_bytes / (numel * pool.element_size()))
    count = max(1, min(pool.numel() // stride, wanted, 256))
    return [pool[i * stride : i * stride + numel].view(shape) for i in range(count)]


def _pool_numel(largest: int, cold_bytes: float, dtype: str, copies: int = 1) -> int:
    return int(max(copies * largest, cold_bytes / _bytes_per(dtype)) + 1024 * copies)


def _bytes_per(dtype: str) -> int:
    return {"fp32": 4, "bf16": 2, "fp16": 2}[dtype]


def gemm_ops(plan: SweepPlan, cold_bytes: float, generator: Any) -> list[BenchOp]:
    """F.linear(x[M,K], W[N,K]) over tokens x sharded Llama projections, per dtype."""
    import torch.nn.functional as functional

    shapes = sorted({(*_shard(k, n, style, tp), f"{name}.tp{tp}") for name, k, n, style in plan.projections
                     for tp in plan.tp_degrees}, key=lambda s: s[2])
    ops: list[BenchOp] = []
    for dtype in plan.dtypes:
        weights = _pool(_pool_numel(max(k * n for k, n, _ in shapes), cold_bytes, dtype), dtype, generator)
        inputs = _pool(max(plan.tokens) * max(k for k, _, _ in shapes) + 1024, dtype, generator)
        for k, n, label in shapes:
            views = rotating_views(weights, (n, k), cold_bytes)
            for m in plan.tokens:
                x = inputs[: m * k].view(m, k)
                row = {"kind": "gemm", "dtype": dtype, "op": "linear", "label": label, "m": m, "n": n, "k": k,
                       "flops": 2.0 * m * n * k, "bytes": float(_bytes_per(dtype) * (m * k + n * k + m * n))}
                ops.append(BenchOp(row, lambda i, x=x, v=views: functional.linear(x, v[i % len(v)])))
    return ops


def _shard(k: int, n: int, style: str, tp: int) -> tuple[int, int]:
    return (k // tp, n) if style == "row" else (k, n // tp)


def memory_ops(plan: SweepPlan, cold_bytes: float) -> list[BenchOp]:
    """Copy (dst.copy_(src): read + write) and read-reduce over fp32 buffers.

    The read-reduce is a matrix-vector product over the buffer (rows of 4096): torch's
    ``sum`` is limited by its pairwise-summation arithmetic on a few cores (about 75% of
    the bandwidth here), the BLAS GEMV streams at the memory's speed.
    """
    torch = _torch()
    largest = max(plan.memory_mib) * 2**20 // 4
    src = torch.ones(_pool_numel(largest, cold_bytes, "fp32"), dtype=torch.float32)
    dst = torch.zeros_like(src)
    ones = torch.ones(_READ_ROW, dtype=torch.float32)
    ops: list[BenchOp] = []
    for mib in plan.memory_mib:
        numel = mib * 2**20 // 4
        sources = rotating_views(src, (numel // _READ_ROW, _READ_ROW), cold_bytes)
        targets = rotating_views(dst, (numel // _READ_ROW, _READ_ROW), cold_bytes)
        size = float(mib * 2**20)
        base = {"kind": "memory", "dtype": "fp32", "label": f"{mib}MiB"}
        ops.append(BenchOp({**base, "op": "copy", "flops": 0.0, "bytes": 2 * size},
                           lambda i, s=sources, t=targets: t[i % len(t)].copy_(s[i % len(s)])))
        ops.append(BenchOp({**base, "op": "read", "flops": size / 2, "bytes": size},
                           lambda i, s=sources, v=ones: torch.mv(s[i % len(s)], v)))
    return ops


def probe_ops(plan: SweepPlan) -> list[BenchOp]:
    """Tiny ops whose time is all fixed cost (dispatch, threading): they set the launch overhead."""
    import torch.nn.functional as functional

    torch = _torch()
    ops: list[BenchOp] = []
    size = _PROBE_WIDTH
    for dtype in plan.dtypes:
        x, w = torch.ones(1, size, dtype=_dtype(dtype)), torch.ones(size, size, dtype=_dtype(dtype))
        row = {"kind": "gemm", "dtype": dtype, "op": "linear", "label": "probe", "m": 1, "n": size, "k": size,
               "flops": 2.0 * size * size, "bytes": float(_bytes_per(dtype) * (size + size * size + size))}
        ops.append(BenchOp(row, lambda i, x=x, w=w: functional.linear(x, w)))
    src, dst = torch.ones(size), torch.zeros(size)
    row = {"kind": "memory", "dtype": "fp32", "op": "copy", "label": "probe", "flops": 0.0, "bytes": 8.0 * size}
    ops.append(BenchOp(row, lambda i: dst.copy_(src)))
    return ops


def attention_ops(plan: SweepPlan, cold_bytes: float, generator: Any) -> list[BenchOp]:
    """Decode attention as batched GEMVs: softmax(q K^T) V with q [b,h,1,d], K and V [b,h,L,d]."""
    torch = _torch()
    h, d = plan.heads, plan.head_dim
    largest = max(b * h * c * d for b, c in plan.attention)
    ops: list[BenchOp] = []
    for dtype in plan.dtypes:
        kv = _pool(_pool_numel(largest, cold_bytes, dtype, copies=2), dtype, generator)
        for b, c in plan.attention:
            q = torch.ones(b, h, 1, d, dtype=_dtype(dtype))
            views = rotating_views(kv, (b, h, c, d), cold_bytes)
            if len(views) == 1:  # K and V must be different memory: take both ends of the pool
                views.append(kv[-b * h * c * d :].view(b, h, c, d))
            e = _bytes_per(dtype)
            row = {"kind": "attention_decode", "dtype": dtype, "op": "sdpa_naive", "label": f"b{b}.L{c}",
                   "batch": b, "heads": h, "context": c, "head_dim": d,
                   "flops": float(4 * b * h * c * d + 5 * b * h * c),
                   # K and V read once, q/out, and the score row written and read twice (softmax).
                   "bytes": float(e * (2 * b * h * c * d + 2 * b * h * d + 4 * b * h * c))}
            ops.append(BenchOp(row, lambda i, q=q, v=views: _decode_attention(q, v[i % len(v)], v[(i + 1) % len(v)])))
    return ops


def _decode_attention(q: Any, k: Any, v: Any) -> Any:
    torch = _torch()
    scores = torch.matmul(q, k.transpose(-1, -2))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def run_sweep(plan: SweepPlan, host: HostInfo, seed: int) -> tuple[list[dict[str, Any]], float]:
    """Time every op of ``plan`` in interleaved rounds (see ``hetsim.bench.timing``).

    Returns one row per op, and the seconds spent pausing for a quiet machine.
    """
    torch = _torch()
    threads = host.usable_cpus
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    cold_bytes = 3 * host.l3_bytes
    ops = (probe_ops(plan) + memory_ops(plan, cold_bytes) + attention_ops(plan, cold_bytes, generator)
           + gemm_ops(plan, cold_bytes, generator))
    policy = plan.timing
    waiter = QuietWaiter(policy.quiet_budget_s)
    with torch.inference_mode():
        for round_index in range(policy.max_rounds):
            pending = [op for op in ops if round_index < policy.rounds or not op.timing.is_confirmed(policy)]
            # Alternate the direction so slow drift (thermal, neighbours) does not bias one end.
            for op in pending if round_index % 2 == 0 else reversed(pending):
                waiter.after_round(time_round(op.call, op.timing, policy))
                op.row["load1"] = round(os.getloadavg()[0], 2)
    return [_finish_row(op, threads) for op in ops], waiter.waited_s


def _finish_row(op: BenchOp, threads: int) -> dict[str, Any]:
    timing = op.timing
    measured = {"seconds": timing.seconds, "seconds_median": timing.seconds_median, "spread": round(timing.spread, 4),
                "rounds": len(timing.rounds), "clean_rounds": timing.clean_rounds,
                "wait_share": statistics.median(timing.wait_shares), "samples": timing.samples, "threads": threads}
    return {column: {**op.row, **measured}.get(column) for column in ROW_COLUMNS}


def run_cpu_bench(out_dir: Path, quick: bool = False, seed: int = 0) -> tuple[Path, Path]:
    """Measure the local CPU, fit its calibration and write the results under ``out_dir``.

    Writes ``accelerators/<host>.yaml`` (the host device profile), ``calibration/<host>.yaml``
    (fitted curves with provenance) and ``calibration/<host>.csv`` (raw rows), mirroring the
    layout of ``hardware_profiles/`` so ``--out hardware_profiles`` installs them.

    Returns:
        (calibration YAML path, device profile YAML path); the CSV sits beside the calibration.
    """
    torch = _torch()
    host = detect_host()
    plan = QUICK_SWEEP if quick else FULL_SWEEP
    load_before, started = os.getloadavg(), time.perf_counter()
    rows, paused_s = run_sweep(plan, host, seed)
    elapsed, load_after = time.perf_counter() - started, os.getloadavg()
    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bandwidth, how = stream_bandwidth(rows)
    device = AcceleratorSpec.model_validate(host_profile(host, bandwidth, how, date))
    provenance = CalibrationProvenance(
        kind="measured",
        device_description=device.display_name,
        host=host.hostname,
        date=date,
        tool=f"hetsim bench {__version__} (torch {torch.__version__}, {'quick' if quick else 'full'} sweep)",
        versions={"hetsim": __version__, "torch": torch.__version__, "python": platform.python_version(),
                  "numpy": _numpy_version(), "cpu_capability": str(torch.backends.cpu.get_cpu_capability())},
        threads=host.usable_cpus,
        notes=(f"{len(rows)} ops in {elapsed:.0f} s, seed {seed}, {plan.timing.rounds}-{plan.timing.max_rounds} "
               f"interleaved rounds (time = min of round medians; extra rounds until the best two agree within "
               f"{plan.timing.agreement:.0%}), operands rotated past {3 * host.l3_bytes / 2**20:.0f} MiB "
               f"(3x L3); load average before {_load(load_before)}, after {_load(load_after)}; "
               f"{sum(r['clean_rounds'] == 0 for r in rows)} ops without a clean round, {paused_s:.0f} s paused "
               f"waiting for a quiet machine; "
               f"bf16/fp32 GEMMs via torch.nn.functional.linear"),
    )
    calibration = fit_calibration(rows, DevicePerf(device), provenance)
    return write_bench_outputs(out_dir, device, calibration, rows, ROW_COLUMNS)


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in load)


def _numpy_version() -> str:
    import numpy

    return numpy.__version__
