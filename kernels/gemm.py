"""Tiled GEMM ``C = A @ B`` in Triton: grouped-tile and persistent variants, fp16/bf16/fp8.

One call of an ``(M, K) @ (K, N)`` GEMM does ``2*M*N*K`` FLOPs and moves at least
``(M*K + K*N) * in_bytes + M*N * out_bytes`` bytes (each operand read once, C written once;
the compulsory traffic, which is what the roofline uses): ``kernels.work.gemm_flops`` and
``gemm_bytes``.

Both variants accumulate in fp32 and write C in the input dtype (fp8 inputs write bf16).
Tiles are visited in *grouped* order: ``GROUP_M`` row-tiles share each column-tile so that
B tiles stay in L2 while a group of A tiles streams. The persistent variant launches one
program per SM and loops over tiles, which hides launch and tail effects on large GEMMs.

fp8 (e4m3) needs compute capability 8.9+ (Ada, Hopper). Hopper's wgmma wants fp8 B in
K-major layout, so pass ``b`` as the transpose of an ``(N, K)`` contiguous tensor; the kernel
takes arbitrary strides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._common import needs_upcast


@dataclass(frozen=True)
class GemmConfig:
    """Block sizes and launch parameters of one GEMM launch."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    num_warps: int = 8
    num_stages: int = 3


# Hopper (H100/H200, 228 KB shared memory per SM) candidates. 128x256x64 bf16 tiles with
# 8 warps and 3-4 stages are the known-good large-GEMM shape (one warpgroup-pair per tile,
# 48 KB of smem per stage); the smaller tiles cover M <= 512 and skinny N, where big tiles
# would leave SMs idle. The benchmark tunes over these with CUDA events (no @autotune,
# which cannot run without a GPU).
PREFILL_CONFIGS: tuple[GemmConfig, ...] = (
    GemmConfig(128, 256, 64, 8, 8, 3),
    GemmConfig(128, 256, 64, 8, 8, 4),
    GemmConfig(256, 128, 64, 8, 8, 3),
    GemmConfig(128, 128, 64, 8, 4, 4),
    GemmConfig(128, 128, 128, 8, 8, 3),
    GemmConfig(64, 256, 64, 8, 4, 4),
)
# Decode-shaped GEMMs (M <= 256) are bound by streaming B: small M tiles, long K tiles.
DECODE_CONFIGS: tuple[GemmConfig, ...] = (
    GemmConfig(16, 64, 256, 1, 4, 4),
    GemmConfig(16, 128, 128, 1, 4, 4),
    GemmConfig(32, 64, 256, 1, 4, 3),
    GemmConfig(64, 64, 128, 4, 4, 4),
    GemmConfig(64, 128, 128, 8, 4, 4),
    GemmConfig(128, 128, 64, 8, 4, 4),
)
FP8_CONFIGS: tuple[GemmConfig, ...] = (
    GemmConfig(128, 256, 128, 8, 8, 3),
    GemmConfig(128, 128, 128, 8, 8, 4),
    GemmConfig(64, 128, 128, 8, 4, 4),
)


def candidate_configs(m: int, dtype: torch.dtype) -> tuple[GemmConfig, ...]:
    """The configs worth timing for an M-row GEMM of ``dtype``."""
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return FP8_CONFIGS
    return DECODE_CONFIGS if m <= 256 else PREFILL_CONFIGS


def default_config(m: int, n: int, dtype: torch.dtype) -> GemmConfig:
    """A reasonable untuned choice: the first candidate for the shape's regime."""
    del n  # kept in the signature: a tuned table keyed by (m, n) replaces this heuristic
    return candidate_configs(m, dtype)[0]


def has_fp8(device: torch.device | str = "cuda") -> bool:
    """Whether ``device`` has fp8 tensor cores (compute capability 8.9 or newer)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


@triton.jit
def _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """Grouped ordering: tile_id -> (pid_m, pid_n), GROUP_M row tiles per column sweep."""
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (tile_id % num_pid_in_group) % group_size_m
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def _tile_accumulate(a_ptr, b_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, UPCAST: tl.constexpr):
    """fp32 accumulator of one (BLOCK_M, BLOCK_N) output tile over the whole K loop."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # Clamp ragged rows/columns to a valid index instead of masking every load: the values
    # are computed but never stored, and unmasked loads vectorize better.
    offs_m = tl.max_contiguous(tl.multiple_of(tl.where(offs_m < M, offs_m, 0), BLOCK_M), BLOCK_M)
    offs_n = tl.max_contiguous(tl.multiple_of(tl.where(offs_n < N, offs_n, 0), BLOCK_N), BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    return acc


@triton.jit
def _store_tile(c_ptr, acc, M, N, stride_cm, stride_cn, pid_m, pid_n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = c_ptr + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask)


@triton.jit
def matmul_grouped_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                          stride_cm, stride_cn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, UPCAST: tl.constexpr):
    """One program per output tile, tiles in grouped order."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _tile_coords(tl.program_id(0), num_pid_m, num_pid_n, GROUP_M)
    acc = _tile_accumulate(a_ptr, b_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
                           BLOCK_M, BLOCK_N, BLOCK_K, UPCAST)
    _store_tile(c_ptr, acc, M, N, stride_cm, stride_cn, pid_m, pid_n, BLOCK_M, BLOCK_N)


@triton.jit
def matmul_persistent_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                             stride_cm, stride_cn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, UPCAST: tl.constexpr,
                             NUM_PROGRAMS: tl.constexpr):
    """NUM_PROGRAMS programs (one per SM) loop over the output tiles in grouped order."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, NUM_PROGRAMS):
        pid_m, pid_n = _tile_coords(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = _tile_accumulate(a_ptr, b_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
                               BLOCK_M, BLOCK_N, BLOCK_K, UPCAST)
        _store_tile(c_ptr, acc, M, N, stride_cm, stride_cn, pid_m, pid_n, BLOCK_M, BLOCK_N)


def _output_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.bfloat16 if dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else dtype


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # interpreter: a few programs are enough to exercise the tile loop


def matmul(a: torch.Tensor, b: torch.Tensor, config: GemmConfig | None = None,
           persistent: bool = False) -> torch.Tensor:
    """``a @ b`` with the Triton kernel; ``a`` is (M, K), ``b`` is (K, N), any strides.

    Returns an (M, N) tensor in the input dtype (bf16 for fp8 inputs).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: expected (M, K) @ (K, N), got {tuple(a.shape)} @ {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise ValueError(f"matmul: expected operands of one dtype, got {a.dtype} and {b.dtype}")
    (m, k), n = a.shape, b.shape[1]
    cfg = config or default_config(m, n, a.dtype)
    c = torch.empty((m, n), device=a.device, dtype=_output_dtype(a.dtype))
    kernel = matmul_persistent_kernel if persistent else matmul_grouped_kernel
    tiles = triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n)
    args = (a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
            cfg.block_m, cfg.block_n, cfg.block_k, cfg.group_m, needs_upcast(kernel, a.dtype))
    launch = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    if persistent:
        programs = min(tiles, _num_sms(a.device))
        kernel[(programs,)](*args, programs, **launch)
    else:
        kernel[(tiles,)](*args, **launch)
    return c


def matmul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same product in torch (cuBLAS on a GPU); fp8 goes through fp32 math, then bf16."""
    if a.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return (a.float() @ b.float()).to(torch.bfloat16)
    if a.device.type == "cpu" and a.dtype in (torch.float16, torch.bfloat16):
        return (a.float() @ b.float()).to(a.dtype)  # CPU half matmul is slow or missing
    return a @ b


def matmul_vendor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The vendor library's GEMM (cuBLAS/cuBLASLt), the baseline the Triton kernel is judged by.

    fp8 uses ``torch._scaled_mm`` with unit scales (cuBLASLt fp8); other dtypes ``torch.matmul``.
    """
    if a.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        one = torch.ones((), device=a.device, dtype=torch.float32)
        return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    return torch.matmul(a, b)
