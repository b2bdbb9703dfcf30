"""Prefill (flash) attention in Triton: causal, grouped-query, forward only.

Layout: ``q`` is (batch, q_heads, q_len, head_dim); ``k`` and ``v`` are
(batch, kv_heads, kv_len, head_dim) with ``kv_len >= q_len``. Causal masking is aligned at
the bottom right, so query ``i`` sees keys ``j <= i + kv_len - q_len``: a chunk of new tokens
after a cached prefix. With ``q_len == kv_len`` it is ordinary causal self-attention.

One program computes a BLOCK_M block of query rows of one (sequence, q head) with the
online softmax (FlashAttention-2): K/V blocks left of the diagonal run without masks, the
blocks on the diagonal (and the ragged end) with masks, and blocks right of it are skipped.

One call does ``4 * batch * q_heads * head_dim * pairs`` FLOPs, where ``pairs`` is the number
of visible (query, key) pairs (``kernels.work.causal_pairs``), and moves
``batch * head_dim * elem * (2 * q_heads * q_len + 2 * kv_heads * kv_len)`` bytes.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._common import needs_upcast, next_power_of_2

_LOG2E = 1.4426950408889634


@triton.jit
def _attend_blocks(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask, lo, hi,
                   kv_len, causal_offset, qk_scale, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                   BLOCK_N: tl.constexpr, UPCAST: tl.constexpr):
    """Online-softmax update over key blocks [lo, hi)."""
    for n0 in range(lo, hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        kv_mask = ((offs_n[:, None] < kv_len) & d_mask[None, :]) if MASKED else d_mask[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASKED:
            visible = offs_n[None, :] < kv_len
            if CAUSAL:
                visible = visible & (offs_n[None, :] <= offs_m[:, None] + causal_offset)
            s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _flash_forward_kernel(q_ptr, k_ptr, v_ptr, out_ptr, q_len, kv_len, qk_scale, stride_qb, stride_qh, stride_qm,
                          stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn, stride_ob, stride_oh,
                          stride_om, Q_HEADS: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,
                          HEAD_DIM_PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          CAUSAL: tl.constexpr, UPCAST: tl.constexpr):
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    seq = (batch_head // Q_HEADS).to(tl.int64)  # batch offsets can pass 2**31 elements
    head = batch_head % Q_HEADS
    kv_head = head // GROUP
    offs_m = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    d_mask = offs_d < HEAD_DIM
    m_mask = offs_m < q_len
    q_ptrs = q_ptr + seq * stride_qb + head * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :]
    q = tl.load(q_ptrs, mask=m_mask[:, None] & d_mask[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    k_base = k_ptr + seq * stride_kb + kv_head * stride_kh
    v_base = v_ptr + seq * stride_vb + kv_head * stride_vh
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM_PAD), tl.float32)

    causal_offset = kv_len - q_len
    if CAUSAL:
        # Keys below `full` are visible to every row of this block; `hi` is the last visible key + 1.
        full = tl.minimum(block_m * BLOCK_M + causal_offset + 1, kv_len)
        hi = tl.minimum((block_m + 1) * BLOCK_M + causal_offset, kv_len)
    else:
        full = kv_len
        hi = kv_len
    full = (full // BLOCK_N) * BLOCK_N
    acc, m_i, l_i = _attend_blocks(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                                   0, full, kv_len, causal_offset, qk_scale, False, CAUSAL, BLOCK_N, UPCAST)
    acc, m_i, l_i = _attend_blocks(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d, d_mask,
                                   full, hi, kv_len, causal_offset, qk_scale, True, CAUSAL, BLOCK_N, UPCAST)
    out = acc / tl.maximum(l_i, 1e-30)[:, None]
    o_ptrs = out_ptr + seq * stride_ob + head * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :]
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & d_mask[None, :])


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, block_m: int = 128,
                    block_n: int = 64, num_warps: int = 8, num_stages: int = 3) -> torch.Tensor:
    """Attention with softmax scale 1/sqrt(head_dim); see the module docstring for layouts.

    The defaults (128x64 blocks, 8 warps) suit head_dim 128 on Hopper; tests pass 16x16.
    """
    batch, q_heads, q_len, head_dim = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    if q_heads % kv_heads or k.shape != v.shape or k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(
            f"flash_attention: inconsistent shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if kv_len < q_len:
        raise ValueError(f"flash_attention: expected kv_len >= q_len, got {kv_len} < {q_len}")
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        raise ValueError("flash_attention: expected head_dim to be the contiguous dimension")
    out = torch.empty_like(q)
    kernel = _flash_forward_kernel
    grid = (triton.cdiv(q_len, block_m), batch * q_heads)
    kernel[grid](
        q, k, v, out, q_len, kv_len, _LOG2E / math.sqrt(head_dim), *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
        *out.stride()[:3], q_heads, q_heads // kv_heads, head_dim, next_power_of_2(head_dim), block_m, block_n,
        causal, needs_upcast(kernel, q.dtype), num_warps=num_warps, num_stages=num_stages,
    )
    return out


def flash_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """The same attention in fp32 torch with an explicit bottom-right causal mask."""
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    scores = q.float() @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        q_len, kv_len = q.shape[2], k.shape[2]
        rows = torch.arange(q_len, device=q.device)[:, None] + (kv_len - q_len)
        scores = scores.masked_fill(torch.arange(kv_len, device=q.device)[None, :] > rows, float("-inf"))
    return (scores.softmax(-1) @ v).to(q.dtype)


def prefill_attention_vendor(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Baseline: torch SDPA (FlashAttention-2 / cuDNN backends), causal, q_len == kv_len.

    K/V are expanded to the query heads by the caller (outside the timed region) so that the
    fastest backend is eligible whatever its GQA support.
    """
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
