"""Kernels at real LLM sizes on a CUDA GPU, and one tiny benchmark sweep.

Skipped (visibly, with the reason) without a CUDA device or under ``TRITON_INTERPRET=1``.
Run with ``python -m pytest tests/kernels -m gpu -rs``.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'hetsim[bench]')")
pytest.importorskip("triton", reason="triton is not installed (pip install 'hetsim[bench]')")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.bench,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="TRITON_INTERPRET=1: kernels are interpreted"),
]

TOLERANCE = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float8_e4m3fn: 2e-2}


def assert_matches(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    scale = ref.float().abs().max().item() or 1.0
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), ref.float(), atol=tol * scale, rtol=tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("persistent", [False, True], ids=["grouped", "persistent"])
@pytest.mark.parametrize("m,n,k", [(4096, 6144, 4096), (1000, 3000, 520), (16, 14336, 4096)])
def test_gemm_matches_cublas(dtype: torch.dtype, persistent: bool, m: int, n: int, k: int) -> None:
    from kernels.gemm import matmul

    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = (torch.randn(n, k, device="cuda", dtype=dtype) / k**0.5).t()
    assert_matches(matmul(a, b, persistent=persistent), a.float() @ b.float(), dtype)


def test_gemm_fp8_matches_fp32_math() -> None:
    from kernels.gemm import has_fp8, matmul

    if not has_fp8("cuda"):
        pytest.skip("no fp8 tensor cores (compute capability < 8.9)")
    a = torch.randn(2048, 4096, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(2048, 4096, device="cuda").to(torch.float8_e4m3fn).t()
    assert_matches(matmul(a, b), a.float() @ b.float(), torch.float8_e4m3fn)


@pytest.mark.parametrize("num_splits", [1, 8])
def test_paged_decode_attention_llama_heads(num_splits: int) -> None:
    from kernels.paged_decode_attention import paged_decode_attention, paged_decode_attention_reference

    contexts = torch.tensor([1, 17, 500, 4096, 3000, 64, 129, 2048], dtype=torch.int32, device="cuda")
    page, pages = 16, [-(-int(c) // 16) for c in contexts]
    order = torch.randperm(sum(pages), device="cuda").to(torch.int32)
    table = torch.zeros(len(pages), max(pages), dtype=torch.int32, device="cuda")
    for seq, start in enumerate([sum(pages[:i]) for i in range(len(pages))]):
        table[seq, : pages[seq]] = order[start : start + pages[seq]]
    q = torch.randn(len(pages), 32, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(sum(pages), page, 8, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    out = paged_decode_attention(q, k, v, table, contexts, num_splits=num_splits)
    assert_matches(out, paged_decode_attention_reference(q, k, v, table, contexts), torch.bfloat16)


@pytest.mark.parametrize("q_len,kv_len", [(1000, 1000), (512, 2048)])
def test_flash_attention_llama_heads(q_len: int, kv_len: int) -> None:
    from kernels.flash_attention import flash_attention, flash_attention_reference

    q = torch.randn(2, 32, q_len, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 8, kv_len, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    assert_matches(flash_attention(q, k, v), flash_attention_reference(q, k, v), torch.bfloat16)


def test_rmsnorm_swiglu_and_mlp_at_llama_widths() -> None:
    from kernels.rmsnorm import rmsnorm, rmsnorm_reference
    from kernels.swiglu import mlp, mlp_reference, swiglu, swiglu_reference

    x = torch.randn(256, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    assert_matches(rmsnorm(x, w), rmsnorm_reference(x, w), torch.bfloat16)
    gate_up = torch.randn(256, 2 * 14336, device="cuda", dtype=torch.bfloat16)
    gate, up = gate_up[:, :14336], gate_up[:, 14336:]
    assert_matches(swiglu(gate, up), swiglu_reference(gate, up), torch.bfloat16)
    w_gate_up = torch.randn(4096, 2 * 1792, device="cuda", dtype=torch.bfloat16) / 64
    w_down = torch.randn(1792, 4096, device="cuda", dtype=torch.bfloat16) / 42
    assert_matches(mlp(x, w_gate_up, w_down), mlp_reference(x, w_gate_up, w_down), torch.bfloat16)


def test_tiny_bench_sweep_times_triton_and_torch() -> None:
    """The smallest problem of each op of the quick sweep: both implementations time and agree."""
    from hetsim.bench.gpu import CudaTimer, best_rows, measure_problem
    from hetsim.bench.gpu_ops import load_kernels

    kernels = load_kernels()
    smallest = {}
    for problem in kernels.sweeps.quick_sweep(has_fp8=False):
        if problem.op not in smallest or problem.bytes < smallest[problem.op].bytes:
            smallest[problem.op] = problem
    timer = CudaTimer(warmup=2, reps=5, tune_reps=2)
    rows = [row for problem in smallest.values() for row in measure_problem(problem, kernels, timer, quick=True)]
    assert len(rows) == 2 * len(smallest) == 10
    assert all(row["error"] == "" and row["seconds"] > 0 for row in rows), [r for r in rows if r["error"]]
    assert all(row["max_rel_diff"] < 0.05 for row in rows)
    assert {row["problem_id"] for row in best_rows(rows)} == {p.id for p in smallest.values()}
