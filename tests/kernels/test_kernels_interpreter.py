"""Correctness of every Triton kernel against its torch reference, at tiny shapes.

On a CPU-only machine these run under the Triton interpreter (``conftest.py`` sets
``TRITON_INTERPRET=1``); on a GPU machine they run compiled. Tolerances are relative to the
largest reference value: fp32 1e-5 (summation order only), fp16 2e-3 (about two output ulps),
bf16 1.6e-2 (two output ulps of bf16's 8-bit mantissa; the interpreter up-casts bf16 loads).
"""

from __future__ import annotations

import math
import time

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'hetsim[bench]')")
pytest.importorskip("triton", reason="triton is not installed (pip install 'hetsim[bench]')")

from kernels.flash_attention import flash_attention, flash_attention_reference  # noqa: E402
from kernels.gemm import GemmConfig, matmul, matmul_reference  # noqa: E402
from kernels.paged_decode_attention import paged_decode_attention, paged_decode_attention_reference  # noqa: E402
from kernels.rmsnorm import rmsnorm, rmsnorm_reference  # noqa: E402
from kernels.swiglu import mlp, mlp_reference, swiglu, swiglu_reference  # noqa: E402

pytestmark = pytest.mark.bench

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1.6e-2, "fp8": 1.6e-2}
TINY_GEMM = GemmConfig(block_m=16, block_n=16, block_k=16, group_m=2, num_warps=4, num_stages=2)


def assert_matches(out: torch.Tensor, ref: torch.Tensor, dtype: str) -> None:
    scale = ref.float().abs().max().item() or 1.0
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), ref.float(), atol=tol * scale, rtol=tol)


def randn(*shape: int, dtype: str, device: str, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator) * scale).to(DTYPES.get(dtype, torch.float32)).to(device)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("persistent", [False, True], ids=["grouped", "persistent"])
@pytest.mark.parametrize("m,n,k", [(32, 32, 32), (37, 29, 45)], ids=["aligned", "ragged"])
def test_gemm_matches_torch(dtype: str, persistent: bool, m: int, n: int, k: int, device: str) -> None:
    a = randn(m, k, dtype=dtype, device=device, seed=1)
    b = randn(n, k, dtype=dtype, device=device, seed=2).t()  # nn.Linear weight layout: B is K-major
    out = matmul(a, b, TINY_GEMM, persistent=persistent)
    assert out.shape == (m, n) and out.dtype == a.dtype
    assert_matches(out, matmul_reference(a, b), dtype)


def test_gemm_fp8_inputs_write_bf16(device: str) -> None:
    a = randn(32, 48, dtype="fp32", device=device, seed=3).to(torch.float8_e4m3fn)
    b = randn(40, 48, dtype="fp32", device=device, seed=4).to(torch.float8_e4m3fn).t()
    out = matmul(a, b, TINY_GEMM)
    assert out.dtype == torch.bfloat16
    assert_matches(out, matmul_reference(a, b), "fp8")


def test_gemm_rejects_mismatched_shapes(device: str) -> None:
    a = torch.zeros(4, 8, device=device)
    with pytest.raises(ValueError, match=r"expected \(M, K\) @ \(K, N\), got \(4, 8\) @ \(6, 2\)"):
        matmul(a, torch.zeros(6, 2, device=device))


def _paged_problem(contexts: list[int], kv_heads: int, q_heads: int, head_dim: int, page: int, dtype: str,
                   device: str) -> tuple[torch.Tensor, ...]:
    """q, K/V caches with pages shuffled across sequences, block table, context lengths."""
    pages = [math.ceil(c / page) for c in contexts]
    total = sum(pages) + 2  # two spare pages nobody owns
    order = torch.randperm(total, generator=torch.Generator().manual_seed(5))
    table = torch.zeros(len(contexts), max(max(pages), 1), dtype=torch.int32)
    start = 0
    for seq, count in enumerate(pages):
        table[seq, :count] = order[start : start + count]
        start += count
    q = randn(len(contexts), q_heads, head_dim, dtype=dtype, device=device, seed=6)
    k = randn(total, page, kv_heads, head_dim, dtype=dtype, device=device, seed=7)
    v = randn(total, page, kv_heads, head_dim, dtype=dtype, device=device, seed=8)
    return q, k, v, table.to(device), torch.tensor(contexts, dtype=torch.int32, device=device)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("num_splits", [1, 3], ids=["one-pass", "split-k"])
def test_paged_decode_attention_gqa_matches_torch(dtype: str, num_splits: int, device: str) -> None:
    """2 sequences (contexts 5 and 37, pages of 8), 2 kv heads shared by 4 q heads, head_dim 16."""
    q, k, v, table, contexts = _paged_problem([5, 37], kv_heads=2, q_heads=4, head_dim=16, page=8, dtype=dtype,
                                              device=device)
    out = paged_decode_attention(q, k, v, table, contexts, num_splits=num_splits, block_n=16)
    assert_matches(out, paged_decode_attention_reference(q, k, v, table, contexts), dtype)


def test_paged_decode_attention_empty_context_gives_zeros(device: str) -> None:
    q, k, v, table, contexts = _paged_problem([0, 9], kv_heads=1, q_heads=2, head_dim=16, page=8, dtype="fp32",
                                              device=device)
    out = paged_decode_attention(q, k, v, table, contexts, num_splits=2, block_n=16)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert_matches(out, paged_decode_attention_reference(q, k, v, table, contexts), "fp32")


@pytest.mark.parametrize(
    "dtype,q_len,kv_len,causal",
    [("fp32", 37, 37, True), ("fp32", 20, 45, True), ("fp32", 33, 33, False), ("fp16", 37, 37, True),
     ("bf16", 37, 37, True)],
    ids=["fp32-causal", "fp32-causal-after-prefix", "fp32-full", "fp16-causal", "bf16-causal"],
)
def test_flash_attention_gqa_matches_torch(dtype: str, q_len: int, kv_len: int, causal: bool, device: str) -> None:
    q = randn(2, 4, q_len, 16, dtype=dtype, device=device, seed=9)
    k = randn(2, 2, kv_len, 16, dtype=dtype, device=device, seed=10)
    v = randn(2, 2, kv_len, 16, dtype=dtype, device=device, seed=11)
    out = flash_attention(q, k, v, causal, block_m=16, block_n=16, num_warps=4, num_stages=2)
    assert_matches(out, flash_attention_reference(q, k, v, causal), dtype)


def test_flash_attention_rejects_more_queries_than_keys(device: str) -> None:
    q, k = torch.zeros(1, 2, 8, 16, device=device), torch.zeros(1, 2, 4, 16, device=device)
    with pytest.raises(ValueError, match="expected kv_len >= q_len, got 4 < 8"):
        flash_attention(q, k, k)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_rmsnorm_matches_torch_on_ragged_width(dtype: str, device: str) -> None:
    x = randn(5, 48, dtype=dtype, device=device, seed=12)
    w = randn(48, dtype=dtype, device=device, seed=13)
    assert_matches(rmsnorm(x, w), rmsnorm_reference(x, w), dtype)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_swiglu_matches_torch_on_strided_halves(dtype: str, device: str) -> None:
    gate_up = randn(5, 80, dtype=dtype, device=device, seed=14)
    gate, up = gate_up[:, :40], gate_up[:, 40:]  # views into one gate-up projection output
    assert_matches(swiglu(gate, up, block=16), swiglu_reference(gate, up), dtype)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_mlp_composed_of_gemm_and_swiglu_matches_torch(dtype: str, device: str) -> None:
    x = randn(9, 32, dtype=dtype, device=device, seed=15)
    w_gate_up = randn(32, 48, dtype=dtype, device=device, seed=16, scale=0.2)
    w_down = randn(24, 32, dtype=dtype, device=device, seed=17, scale=0.2)
    out = mlp(x, w_gate_up, w_down, TINY_GEMM, block=16)
    assert_matches(out, mlp_reference(x, w_gate_up, w_down), dtype)


class WallTimer:
    """Stands in for ``CudaTimer`` where CUDA events do not exist (seconds are wall time)."""

    tune_reps = 1

    def time(self, fn, reps: int | None = None) -> list[float]:
        samples = []
        for _ in range(reps or 2):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return samples


def test_bench_measures_every_op_with_triton_and_torch(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU benchmark's per-problem path (builders, tuning, rows, cross-check) at tiny shapes."""
    from hetsim.bench import gpu, gpu_ops
    from kernels.sweeps import Problem

    monkeypatch.setattr(gpu_ops, "DEVICE", device)
    timer = gpu.CudaTimer(warmup=1, reps=2, tune_reps=1) if device == "cuda" else WallTimer()
    kernels = gpu_ops.load_kernels()
    decode = (("batch", 2), ("context", 20), ("q_heads", 4), ("kv_heads", 2), ("head_dim", 16), ("page", 8))
    prefill = (("batch", 1), ("seq", 24), ("q_heads", 4), ("kv_heads", 2), ("head_dim", 16))
    problems = [
        Problem("gemm", "gemm", "bf16", (("m", 16), ("n", 48), ("k", 32)), 1.0, 1.0),
        Problem("gemv", "gemm", "fp8", (("m", 16), ("n", 32), ("k", 32)), 1.0, 1.0),
        Problem("attention_decode", "decode_attention", "fp16", decode, 1.0, 1.0),
        Problem("attention_prefill", "prefill_attention", "fp16", prefill, 1.0, 1.0),
        Problem("memory", "rmsnorm", "bf16", (("rows", 3), ("width", 48)), 1.0, 1.0),
        Problem("memory", "swiglu", "fp16", (("rows", 3), ("width", 40)), 1.0, 1.0),
    ]
    rows = [row for problem in problems for row in gpu.measure_problem(problem, kernels, timer, quick=True)]
    assert [(r["op"], r["impl"]) for r in rows] == [(p.op, impl) for p in problems for impl in ("triton", "torch")]
    assert all(r["error"] == "" and r["seconds"] > 0 and r["reps"] == 2 for r in rows), [r["error"] for r in rows]
    assert all(r["max_rel_diff"] < 2e-2 for r in rows)
    assert rows[0]["variant"].startswith(("grouped:16x", "persistent:16x"))  # a decode-regime config won
