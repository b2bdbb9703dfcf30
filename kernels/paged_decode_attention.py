"""Decode attention over a paged KV cache with grouped-query attention (GQA), in Triton.

Layout (vLLM's flash layout):

* ``q``: (batch, q_heads, head_dim), one new token per sequence;
* ``k_cache``, ``v_cache``: (num_pages, page_size, kv_heads, head_dim);
* ``block_table``: (batch, max_pages) int32, page ids of each sequence in order;
* ``context_lens``: (batch,) int32, tokens of each sequence (the new token included).

One program handles one (sequence, kv head, split): the ``q_heads / kv_heads`` query heads
that share the kv head are a small matrix, so the KV page is read once for all of them and
the scores are a ``tl.dot``. ``num_splits > 1`` is flash-decoding: each split reduces a slice
of the context and a second kernel merges the partial results by their log-sum-exp, which
fills the GPU when batch x kv_heads is small and contexts are long.

One call does ``4 * sum(context_lens) * q_heads * head_dim`` FLOPs (QK^T and PV) and moves
``2 * sum(context_lens) * kv_heads * head_dim * elem`` bytes of K and V, plus q, the output
and the block table (``kernels.work.decode_attention_flops`` / ``decode_attention_bytes``);
the KV read dominates, so the kernel is bound by memory bandwidth.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._common import needs_upcast, next_power_of_2

_LOG2E = 1.4426950408889634


@triton.jit
def _decode_split_kernel(q_ptr, k_ptr, v_ptr, block_table_ptr, context_lens_ptr, out_ptr, part_out_ptr, part_lse_ptr,
                         qk_scale, stride_qb, stride_qh, stride_kp, stride_kt, stride_kh, stride_vp, stride_vt,
                         stride_vh, stride_bt, stride_ob, stride_oh, GROUP: tl.constexpr, GROUP_PAD: tl.constexpr,
                         HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr, PAGE_SIZE: tl.constexpr,
                         BLOCK_N: tl.constexpr, NUM_SPLITS: tl.constexpr, UPCAST: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    context = tl.load(context_lens_ptr + seq)
    # Splits own whole BLOCK_N chunks so every page gather stays aligned.
    per_split = tl.cdiv(tl.cdiv(context, NUM_SPLITS), BLOCK_N) * BLOCK_N
    start = split * per_split
    end = tl.minimum(context, start + per_split)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    g_mask = offs_g < GROUP
    d_mask = offs_d < HEAD_DIM
    heads = kv_head * GROUP + offs_g
    q = tl.load(q_ptr + seq * stride_qb + heads[:, None] * stride_qh + offs_d[None, :],
                mask=g_mask[:, None] & d_mask[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full((GROUP_PAD,), float("-inf"), tl.float32)
    l_i = tl.zeros((GROUP_PAD,), tl.float32)
    acc = tl.zeros((GROUP_PAD, HEAD_DIM_PAD), tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < end
        # int64: page * stride exceeds 2**31 elements once a K or V cache passes 4 GiB of bf16.
        page = tl.load(block_table_ptr + seq * stride_bt + offs_n // PAGE_SIZE, mask=n_mask, other=0).to(tl.int64)
        slot = offs_n % PAGE_SIZE
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k = tl.load(k_ptr + page[:, None] * stride_kp + slot[:, None] * stride_kt + kv_head * stride_kh
                    + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + page[:, None] * stride_vp + slot[:, None] * stride_vt + kv_head * stride_vh
                    + offs_d[None, :], mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k)) * qk_scale  # log2 domain: qk_scale includes log2(e)
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    _write_result(acc, m_i, l_i, out_ptr, part_out_ptr, part_lse_ptr, seq, heads, split, offs_d, g_mask, d_mask,
                  stride_ob, stride_oh, tl.num_programs(1) * GROUP, HEAD_DIM, NUM_SPLITS)


@triton.jit
def _write_result(acc, m_i, l_i, out_ptr, part_out_ptr, part_lse_ptr, seq, heads, split, offs_d, g_mask, d_mask,
                  stride_ob, stride_oh, q_heads, HEAD_DIM: tl.constexpr, NUM_SPLITS: tl.constexpr):
    """The final output (one split), or this split's partial output and log2-sum-exp."""
    out_mask = g_mask[:, None] & d_mask[None, :]
    out = acc / tl.maximum(l_i, 1e-30)[:, None]  # context 0 gives zeros, not NaN
    if NUM_SPLITS == 1:
        tl.store(out_ptr + seq * stride_ob + heads[:, None] * stride_oh + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=out_mask)
    else:
        # An empty split stores lse = -inf and is weighted zero by the merge.
        lse = tl.where(l_i > 0, m_i + tl.math.log2(tl.maximum(l_i, 1e-30)), float("-inf"))
        row = (seq * q_heads + heads) * NUM_SPLITS + split
        tl.store(part_lse_ptr + row, lse, mask=g_mask)
        tl.store(part_out_ptr + row[:, None] * HEAD_DIM + offs_d[None, :], out, mask=out_mask)


@triton.jit
def _merge_splits_kernel(part_out_ptr, part_lse_ptr, out_ptr, stride_ob, stride_oh, Q_HEADS: tl.constexpr,
                         HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr, NUM_SPLITS: tl.constexpr,
                         SPLITS_PAD: tl.constexpr):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    s_mask = offs_s < NUM_SPLITS
    d_mask = offs_d < HEAD_DIM
    row = (seq * Q_HEADS + head) * NUM_SPLITS + offs_s
    lse = tl.load(part_lse_ptr + row, mask=s_mask, other=float("-inf"))
    parts = tl.load(part_out_ptr + row[:, None] * HEAD_DIM + offs_d[None, :],
                    mask=s_mask[:, None] & d_mask[None, :], other=0.0)
    # Clamping the max keeps an all-empty row (context 0) at exp2(-inf) = 0 instead of NaN.
    top = tl.maximum(tl.max(lse, 0), -1e30)
    weight = tl.math.exp2(lse - top)
    out = tl.sum(parts * weight[:, None], 0) / tl.maximum(tl.sum(weight, 0), 1e-30)
    tl.store(out_ptr + seq * stride_ob + head * stride_oh + offs_d, out.to(out_ptr.dtype.element_ty), mask=d_mask)


def default_num_splits(batch: int, kv_heads: int, max_context: int, num_sms: int = 132, block_n: int = 64) -> int:
    """Splits so that about two programs run per SM, never below one chunk of BLOCK_N per split."""
    wanted = math.ceil(2 * num_sms / max(batch * kv_heads, 1))
    return max(1, min(wanted, math.ceil(max_context / (4 * block_n)), 64))


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                           context_lens: torch.Tensor, num_splits: int = 1, block_n: int = 64) -> torch.Tensor:
    """Attention of one new token per sequence over its paged K/V (softmax scale 1/sqrt(head_dim))."""
    batch, q_heads, head_dim = q.shape
    _, page_size, kv_heads, _ = k_cache.shape
    if q_heads % kv_heads or k_cache.shape != v_cache.shape or k_cache.shape[-1] != head_dim:
        raise ValueError(f"paged_decode_attention: inconsistent shapes q {tuple(q.shape)}, k/v {tuple(k_cache.shape)}")
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1 or q.stride(-1) != 1:
        raise ValueError("paged_decode_attention: expected head_dim to be the contiguous dimension")
    group = q_heads // kv_heads
    out = torch.empty_like(q)
    part_out = part_lse = out  # not read when num_splits == 1 (no split merge)
    if num_splits > 1:
        part_out = torch.empty((batch, q_heads, num_splits, head_dim), device=q.device, dtype=torch.float32)
        part_lse = torch.empty((batch, q_heads, num_splits), device=q.device, dtype=torch.float32)
    kernel = _decode_split_kernel
    kernel[(batch, kv_heads, num_splits)](
        q, k_cache, v_cache, block_table, context_lens, out, part_out, part_lse, _LOG2E / math.sqrt(head_dim),
        q.stride(0), q.stride(1), *k_cache.stride()[:3], *v_cache.stride()[:3], block_table.stride(0),
        out.stride(0), out.stride(1), group, max(16, next_power_of_2(group)), head_dim, next_power_of_2(head_dim),
        page_size, block_n, num_splits, needs_upcast(kernel, q.dtype), num_warps=4, num_stages=2,
    )
    if num_splits > 1:
        _merge_splits_kernel[(batch, q_heads)](
            part_out, part_lse, out, out.stride(0), out.stride(1), q_heads, head_dim, next_power_of_2(head_dim),
            num_splits, next_power_of_2(num_splits), num_warps=4,
        )
    return out


def gather_kv(cache: torch.Tensor, block_table: torch.Tensor, seq: int, context: int) -> torch.Tensor:
    """The (context, kv_heads, head_dim) K or V of one sequence, gathered from its pages."""
    page_size = cache.shape[1]
    pages = block_table[seq, : math.ceil(context / page_size)].long()
    return cache[pages].reshape(-1, *cache.shape[2:])[:context]


def paged_decode_attention_reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                                     block_table: torch.Tensor, context_lens: torch.Tensor) -> torch.Tensor:
    """The same attention in fp32 torch, one sequence at a time (exact, slow; for tests)."""
    _, q_heads, head_dim = q.shape
    group = q_heads // k_cache.shape[2]
    out = torch.zeros_like(q)
    for seq, context in enumerate(context_lens.tolist()):
        if context == 0:
            continue
        k = gather_kv(k_cache, block_table, seq, context).float().repeat_interleave(group, dim=1)
        v = gather_kv(v_cache, block_table, seq, context).float().repeat_interleave(group, dim=1)
        scores = torch.einsum("hd,thd->ht", q[seq].float(), k) / math.sqrt(head_dim)
        out[seq] = torch.einsum("ht,thd->hd", scores.softmax(-1), v).to(q.dtype)
    return out


def decode_attention_vendor(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Baseline: SDPA over contiguous (batch, kv_heads, context, head_dim) K/V, equal contexts.

    torch has no paged attention, so the vendor baseline reads an unpaged cache; it is an
    upper bound on what paging costs, not the same access pattern.
    """
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, enable_gqa=True)
    return out.squeeze(2)
