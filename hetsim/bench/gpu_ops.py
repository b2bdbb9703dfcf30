"""Build the callables the GPU benchmark times: Triton kernels and torch baselines per problem.

``build_candidates(problem, kernels)`` allocates the problem's operands on the current CUDA
device and returns ``{"triton": {label: fn}, "torch": {label: fn}}``: each ``fn()`` runs the
op once and returns its output. Several Triton labels are tuning variants (block sizes,
persistent or not); the benchmark keeps the fastest. torch and triton are imported lazily.

Weights use ``nn.Linear``'s (N, K) layout, so B = W^T is K-major, which is also what fp8
GEMMs on Hopper need; the KV cache's pages are shuffled as a long-running server's would be.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hetsim.errors import CalibrationError

Candidates = dict[str, dict[str, Callable[[], Any]]]
KERNEL_MODULES = ("gemm", "paged_decode_attention", "flash_attention", "rmsnorm", "swiglu", "sweeps")
DEVICE = "cuda"
"""Where operands are allocated; tests set "cpu" to run the builders under the Triton interpreter."""


def load_kernels() -> SimpleNamespace:
    """Import the repository's ``kernels`` package (a source checkout's top-level folder)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "kernels" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        package = importlib.import_module("kernels")
        modules = {name: importlib.import_module(f"kernels.{name}") for name in KERNEL_MODULES}
    except ImportError as exc:
        raise CalibrationError(
            f"GPU benchmark: cannot import the kernels/ folder of a hetsim source checkout ({exc})"
        ) from None
    if Path(package.__file__).resolve().parent != root / "kernels":
        raise CalibrationError(f"GPU benchmark: 'kernels' resolves to {package.__file__}, not {root / 'kernels'} "
                               "(another package of that name shadows it)")
    return SimpleNamespace(**modules)


def torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}[name]


def _randn(*shape: int, dtype: str, scale: float = 1.0) -> Any:
    import torch

    return (torch.randn(*shape, device=DEVICE) * scale).to(torch_dtype(dtype))


def build_candidates(problem: Any, kernels: SimpleNamespace, quick: bool) -> Candidates:
    """The Triton variants and the torch baseline of ``problem`` (a ``kernels.sweeps.Problem``)."""
    builder = _BUILDERS.get(problem.op)
    if builder is None:
        raise CalibrationError(
            f"GPU benchmark: no builder for op {problem.op!r} (expected one of {', '.join(_BUILDERS)})"
        )
    return builder(problem.dims, problem.dtype, kernels, quick)


def _gemm(dims: dict[str, int], dtype: str, kernels: SimpleNamespace, quick: bool) -> Candidates:
    gemm = kernels.gemm
    m, n, k = dims["m"], dims["n"], dims["k"]
    a = _randn(m, k, dtype=dtype, scale=0.5)
    # (K, N) view of an (N, K) weight; fp8 keeps unit scale to stay clear of its subnormals.
    b = _randn(n, k, dtype=dtype, scale=1.0 if dtype == "fp8" else 1 / math.sqrt(k)).t()
    configs = gemm.candidate_configs(m, torch_dtype(dtype))[: 2 if quick else None]
    triton = {
        f"{'persistent' if p else 'grouped'}:{c.block_m}x{c.block_n}x{c.block_k}:w{c.num_warps}s{c.num_stages}":
            (lambda c=c, p=p: gemm.matmul(a, b, c, persistent=p))
        for c in configs for p in (False, True)
    }
    return {"triton": triton, "torch": {"cublas": lambda: gemm.matmul_vendor(a, b)}}


def _paged_cache(batch: int, context: int, kv_heads: int, head_dim: int, page: int, dtype: str) -> tuple[Any, ...]:
    import torch

    pages_per_seq = math.ceil(context / page)
    num_pages = batch * pages_per_seq
    k_cache = _randn(num_pages, page, kv_heads, head_dim, dtype=dtype)
    v_cache = _randn(num_pages, page, kv_heads, head_dim, dtype=dtype)
    order = torch.randperm(num_pages, device=DEVICE).to(torch.int32)
    block_table = order.view(batch, pages_per_seq)
    context_lens = torch.full((batch,), context, device=DEVICE, dtype=torch.int32)
    return k_cache, v_cache, block_table, context_lens


def _decode_attention(dims: dict[str, int], dtype: str, kernels: SimpleNamespace, quick: bool) -> Candidates:
    import torch

    module = kernels.paged_decode_attention
    batch, context, kv_heads, head_dim = dims["batch"], dims["context"], dims["kv_heads"], dims["head_dim"]
    q_heads = dims["q_heads"]
    q = _randn(batch, q_heads, head_dim, dtype=dtype)
    k_cache, v_cache, block_table, context_lens = _paged_cache(batch, context, kv_heads, head_dim, dims["page"], dtype)
    sms = torch.cuda.get_device_properties(0).multi_processor_count if DEVICE == "cuda" else 4
    triton = {}
    for block_n in (64,) if quick else (32, 64, 128):
        splits = module.default_num_splits(batch, kv_heads, context, sms, block_n)
        triton[f"paged:bn{block_n}:splits{splits}"] = lambda bn=block_n, s=splits: module.paged_decode_attention(
            q, k_cache, v_cache, block_table, context_lens, s, bn)
    # SDPA has no paged cache: it reads a contiguous (batch, kv_heads, context, head_dim) copy.
    k = k_cache[block_table.long()].reshape(batch, -1, kv_heads, head_dim)[:, :context].transpose(1, 2).contiguous()
    v = v_cache[block_table.long()].reshape(batch, -1, kv_heads, head_dim)[:, :context].transpose(1, 2).contiguous()
    return {"triton": triton, "torch": {"sdpa": lambda: module.decode_attention_vendor(q, k, v)}}


def _prefill_attention(dims: dict[str, int], dtype: str, kernels: SimpleNamespace, quick: bool) -> Candidates:
    module = kernels.flash_attention
    batch, seq, q_heads, kv_heads, head_dim = (dims[x] for x in ("batch", "seq", "q_heads", "kv_heads", "head_dim"))
    q = _randn(batch, q_heads, seq, head_dim, dtype=dtype)
    k = _randn(batch, kv_heads, seq, head_dim, dtype=dtype)
    v = _randn(batch, kv_heads, seq, head_dim, dtype=dtype)
    shapes = ((128, 64, 8, 3),) if quick else ((128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3))
    triton = {
        f"flash:{bm}x{bn}:w{w}s{s}": lambda bm=bm, bn=bn, w=w, s=s: module.flash_attention(q, k, v, True, bm, bn, w, s)
        for bm, bn, w, s in shapes
    }
    group = q_heads // kv_heads
    k_full, v_full = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return {"triton": triton, "torch": {"sdpa": lambda: module.prefill_attention_vendor(q, k_full, v_full)}}


def _rmsnorm(dims: dict[str, int], dtype: str, kernels: SimpleNamespace, quick: bool) -> Candidates:
    import torch.nn.functional as F

    x = _randn(dims["rows"], dims["width"], dtype=dtype)
    w = _randn(dims["width"], dtype=dtype)
    return {"triton": {"rowwise": lambda: kernels.rmsnorm.rmsnorm(x, w)},
            "torch": {"rms_norm": lambda: F.rms_norm(x, (dims["width"],), w, 1e-6)}}


def _swiglu(dims: dict[str, int], dtype: str, kernels: SimpleNamespace, quick: bool) -> Candidates:
    import torch.nn.functional as F

    width = dims["width"]
    gate_up = _randn(dims["rows"], 2 * width, dtype=dtype)
    gate, up = gate_up[:, :width], gate_up[:, width:]
    return {"triton": {"fused": lambda: kernels.swiglu.swiglu(gate, up)}, "torch": {"eager": lambda: F.silu(gate) * up}}


_BUILDERS: dict[str, Callable[[dict[str, int], str, SimpleNamespace, bool], Candidates]] = {
    "gemm": _gemm,
    "decode_attention": _decode_attention,
    "prefill_attention": _prefill_attention,
    "rmsnorm": _rmsnorm,
    "swiglu": _swiglu,
}
