"""RMSNorm in Triton: ``y = x / sqrt(mean(x^2) + eps) * weight``, one program per row.

``x`` is (rows, width) with contiguous rows; the statistics are computed in fp32 and ``y``
is written in ``x``'s dtype. One call does about ``4 * rows * width`` FLOPs and moves
``(2 * rows * width + width) * elem`` bytes (read x and the weight, write y): it is bound by
memory bandwidth, and feeds the ``memory`` efficiency curve.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._common import next_power_of_2


@triton.jit
def _rmsnorm_kernel(x_ptr, w_ptr, y_ptr, width, eps, stride_x, stride_y, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < width
    # fp32 statistics whatever the storage type; this also keeps bf16 correct in the interpreter.
    x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, 0) / width + eps)
    tl.store(y_ptr + row * stride_y + offs, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm of each row of a (rows, width) tensor; the whole row lives in one block."""
    if x.ndim != 2 or weight.shape != (x.shape[1],) or x.stride(1) != 1:
        raise ValueError(f"rmsnorm: expected (rows, width) with contiguous rows and (width,) weight, "
                         f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    rows, width = x.shape
    y = torch.empty_like(x)
    block = next_power_of_2(width)
    # Wide rows need more warps to keep the per-thread register tile small (8192 -> 16 warps).
    num_warps = min(max(block // 512, 1), 16)
    _rmsnorm_kernel[(rows,)](x, weight, y, width, eps, x.stride(0), y.stride(0), block, num_warps=num_warps)
    return y


def rmsnorm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The same normalization in fp32 torch."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()).to(x.dtype)
