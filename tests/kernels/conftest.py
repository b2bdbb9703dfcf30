"""Kernel tests: choose the Triton backend before anything imports triton.

Triton decides between the interpreter and the compiler when a kernel is *decorated*, i.e.
when ``kernels/*`` is imported, so the choice is made here, at collection time. Without a
CUDA device the interpreter is switched on (CPU tensors, tiny shapes); with one, and no
explicit ``TRITON_INTERPRET`` in the environment, the same tests run compiled on the GPU.
"""

from __future__ import annotations

import os

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if "TRITON_INTERPRET" not in os.environ and not _cuda_available():
    os.environ["TRITON_INTERPRET"] = "1"

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.fixture
def device() -> str:
    """Where kernel operands live: the CPU under the interpreter, else the GPU."""
    if not INTERPRETING and not _cuda_available():
        pytest.skip("TRITON_INTERPRET is not 1 and there is no CUDA device: no Triton backend can run")
    return "cpu" if INTERPRETING else "cuda"
