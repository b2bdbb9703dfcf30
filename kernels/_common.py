"""Small helpers shared by the kernel wrappers (host side only, never inside a kernel)."""

from __future__ import annotations

from typing import Any

import torch


def is_interpreted(kernel: Any) -> bool:
    """True when ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (runs on the CPU).

    Triton decides at decoration time, so this asks the kernel object rather than the
    environment, which may have changed since the module was imported.
    """
    return type(kernel).__name__ == "InterpretedFunction"


def needs_upcast(kernel: Any, dtype: torch.dtype) -> bool:
    """Whether ``kernel`` must up-cast loads to fp32.

    The interpreter computes bf16 (and fp8) math wrongly through numpy; up-casting right after
    ``tl.load`` gives correct results there. On a GPU the native type feeds the tensor cores.
    """
    return is_interpreted(kernel) and dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2)


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << max(n - 1, 0).bit_length()


def element_size(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype``."""
    return torch.empty((), dtype=dtype).element_size()
