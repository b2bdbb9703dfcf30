"""FLOPs and bytes of one call of each kernel, in plain Python (no torch, no triton).

Bytes are the compulsory traffic to device memory (each operand read once, each output
written once): what the roofline divides by bandwidth. ``elem`` is bytes per element of the
inputs; ``out_elem`` of the output where it differs (fp8 GEMMs write bf16).
"""

from __future__ import annotations

import math

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
"""Bytes per element of the dtypes the sweeps use (names as in hetsim's ``DType``)."""


def gemm_flops(m: int, n: int, k: int) -> float:
    """(M, K) @ (K, N): one multiply and one add per multiply-accumulate."""
    return 2.0 * m * n * k


def gemm_bytes(m: int, n: int, k: int, elem: int, out_elem: int | None = None) -> float:
    """Read A and B once, write C once."""
    return float((m * k + k * n) * elem + m * n * (out_elem or elem))


def decode_attention_flops(context_tokens: int, q_heads: int, head_dim: int) -> float:
    """QK^T and PV over ``context_tokens`` (the sum of all sequences' contexts)."""
    return 4.0 * context_tokens * q_heads * head_dim


def decode_attention_bytes(batch: int, context_tokens: int, q_heads: int, kv_heads: int, head_dim: int, elem: int,
                           page_size: int = 16) -> float:
    """K and V of every context token, q and the output, and the int32 block table."""
    kv = 2 * context_tokens * kv_heads * head_dim * elem
    return float(kv + 2 * batch * q_heads * head_dim * elem + 4 * math.ceil(context_tokens / page_size))


def causal_pairs(q_len: int, kv_len: int) -> int:
    """Visible (query, key) pairs of bottom-right-aligned causal attention (kv_len >= q_len)."""
    offset = kv_len - q_len
    return q_len * (offset + 1) + q_len * (q_len - 1) // 2


def prefill_attention_flops(batch: int, q_len: int, kv_len: int, q_heads: int, head_dim: int,
                            causal: bool = True) -> float:
    """QK^T and PV over the visible pairs only (a causal kernel skips the masked half)."""
    pairs = causal_pairs(q_len, kv_len) if causal else q_len * kv_len
    return 4.0 * batch * q_heads * head_dim * pairs


def prefill_attention_bytes(batch: int, q_len: int, kv_len: int, q_heads: int, kv_heads: int, head_dim: int,
                            elem: int) -> float:
    """Read q, K and V once, write the output once."""
    return float(batch * head_dim * elem * (2 * q_heads * q_len + 2 * kv_heads * kv_len))


def rmsnorm_flops(rows: int, width: int) -> float:
    """Square, sum, scale by 1/rms and by the weight: about 4 FLOPs per element."""
    return 4.0 * rows * width


def rmsnorm_bytes(rows: int, width: int, elem: int) -> float:
    """Read x and the weight, write y."""
    return float((2 * rows * width + width) * elem)


def swiglu_flops(rows: int, width: int) -> float:
    """silu(g) * u: sigmoid (exp, add, divide), two multiplies, about 5 FLOPs per element."""
    return 5.0 * rows * width


def swiglu_bytes(rows: int, width: int, elem: int) -> float:
    """Read gate and up, write the product."""
    return float(3 * rows * width * elem)


def mlp_flops(rows: int, hidden: int, intermediate: int) -> float:
    """Gate-up GEMM (H -> 2I), SwiGLU, down GEMM (I -> H)."""
    return gemm_flops(rows, 2 * intermediate, hidden) + swiglu_flops(rows, intermediate) + gemm_flops(
        rows, hidden, intermediate
    )


def mlp_bytes(rows: int, hidden: int, intermediate: int, elem: int) -> float:
    """The three kernels' traffic, including the (rows, 2I) and (rows, I) intermediates."""
    return (gemm_bytes(rows, 2 * intermediate, hidden, elem) + swiglu_bytes(rows, intermediate, elem)
            + gemm_bytes(rows, hidden, intermediate, elem))
