"""Triton kernels with torch references, and the LLM-shaped sweeps that calibrate hetsim.

This folder is measurement code: the hetsim core never imports it (``hetsim.bench.gpu`` loads
it lazily on a machine with torch and triton). Each kernel module exposes

* ``<op>(...)``: the Triton kernel's host wrapper (allocates the output, picks block sizes,
  launches the grid);
* ``<op>_reference(...)``: the same math in plain torch (fp32 math), used by the tests;
* where torch has a vendor kernel, ``<op>_vendor(...)``: the baseline the benchmark times
  (cuBLAS/cuBLASLt GEMM, SDPA).

``kernels.work`` gives the FLOPs and bytes of one call of each kernel and ``kernels.sweeps``
the LLM-shaped problems the benchmark runs; both are plain Python (no torch, no triton).

On a machine without a GPU the kernels run under the Triton interpreter: set
``TRITON_INTERPRET=1`` before anything imports triton and pass CPU tensors.
"""
