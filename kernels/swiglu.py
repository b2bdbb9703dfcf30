"""Fused SwiGLU in Triton, and the gated MLP composed of it and the Triton GEMM.

``swiglu(gate, up) = silu(gate) * up`` elementwise over (rows, width) tensors, computed in
fp32 and written in the input dtype. ``gate`` and ``up`` may be strided column slices of one
(rows, 2 * width) gate-up projection output, so no copy is needed between the kernels.
One call does about ``5 * rows * width`` FLOPs and moves ``3 * rows * width * elem`` bytes.

``mlp(x, w_gate_up, w_down)`` is a Llama-style MLP: ``x @ w_gate_up`` -> SwiGLU ->
``@ w_down``, with ``w_gate_up`` of shape (hidden, 2 * intermediate) (gate columns first)
and ``w_down`` of shape (intermediate, hidden). Its work is ``kernels.work.mlp_flops`` /
``mlp_bytes``: the two GEMMs dominate.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.gemm import GemmConfig, matmul, matmul_reference


@triton.jit
def _swiglu_kernel(gate_ptr, up_ptr, out_ptr, width, stride_g, stride_u, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < width
    # fp32 math whatever the storage type; this also keeps bf16 correct in the interpreter.
    g = tl.load(gate_ptr + row * stride_g + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + row * stride_u + offs, mask=mask, other=0.0).to(tl.float32)
    out = g * tl.sigmoid(g) * u
    tl.store(out_ptr + row * stride_o + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


def swiglu(gate: torch.Tensor, up: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``silu(gate) * up`` of two (rows, width) tensors with contiguous columns."""
    if gate.shape != up.shape or gate.ndim != 2 or gate.stride(1) != 1 or up.stride(1) != 1:
        raise ValueError(f"swiglu: expected two (rows, width) tensors with unit column stride, "
                         f"got {tuple(gate.shape)} and {tuple(up.shape)}")
    rows, width = gate.shape
    out = torch.empty((rows, width), device=gate.device, dtype=gate.dtype)
    grid = (rows, triton.cdiv(width, block))
    _swiglu_kernel[grid](gate, up, out, width, gate.stride(0), up.stride(0), out.stride(0), block, num_warps=4)
    return out


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The same product in fp32 torch."""
    return (torch.nn.functional.silu(gate.float()) * up.float()).to(gate.dtype)


def mlp(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor, config: GemmConfig | None = None,
        block: int = 1024) -> torch.Tensor:
    """Gated MLP with the Triton GEMM and SwiGLU kernels: three launches, no copies."""
    intermediate = w_down.shape[0]
    if w_gate_up.shape != (x.shape[1], 2 * intermediate) or w_down.shape[1] != x.shape[1]:
        raise ValueError(f"mlp: expected w_gate_up (hidden, 2*intermediate) and w_down (intermediate, hidden), "
                         f"got {tuple(w_gate_up.shape)} and {tuple(w_down.shape)} for x {tuple(x.shape)}")
    gate_up = matmul(x, w_gate_up, config)
    hidden = swiglu(gate_up[:, :intermediate], gate_up[:, intermediate:], block)
    return matmul(hidden, w_down, config)


def mlp_reference(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The same MLP in torch, rounding the intermediates to the input dtype as the kernels do."""
    intermediate = w_down.shape[0]
    gate_up = matmul_reference(x, w_gate_up)
    hidden = swiglu_reference(gate_up[:, :intermediate], gate_up[:, intermediate:])
    return matmul_reference(hidden, w_down)
