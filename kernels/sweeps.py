"""LLM-shaped benchmark problems, as plain data (no torch, no triton).

The shapes are those a serving stack runs for Llama-3-8B/70B, Qwen2.5-72B and Mixtral-8x7B
at tensor-parallel degrees 1/2/4/8 (Megatron split: QKV and gate-up column-parallel, O and
down row-parallel):

* ``gemm``: prefill projections, M (tokens) in 512..8192;
* ``gemv``: decode projections and the LM head, M (batch) in 1..256 (memory-bound);
* ``attention_decode``: paged decode attention, batch 1..256 x context 512..32k;
* ``attention_prefill``: causal flash attention, one sequence of 512..8192 tokens;
* ``memory``: RMSNorm and SwiGLU rows (streaming ops).

Each ``Problem`` carries its FLOPs and bytes (``kernels.work``) and the ``kind`` names the
hetsim efficiency curve it calibrates. ``is_held_out`` is a deterministic 20% split on a hash
of the problem id: the fit never sees those problems, the validation uses only them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kernels import work

# Published architectures (config.json on Hugging Face; Mixtral's MLP widths are per expert,
# and a routed expert GEMM has the dense model's shape with fewer rows).
MODELS: dict[str, dict[str, int]] = {
    "llama-3-8b": {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "intermediate": 14336,
                   "vocab": 128256},
    "llama-3-70b": {"hidden": 8192, "heads": 64, "kv_heads": 8, "head_dim": 128, "intermediate": 28672,
                    "vocab": 128256},
    "qwen2.5-72b": {"hidden": 8192, "heads": 64, "kv_heads": 8, "head_dim": 128, "intermediate": 29568,
                    "vocab": 152064},
    "mixtral-8x7b": {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "intermediate": 14336,
                     "vocab": 32000},
}
TP_DEGREES = (1, 2, 4, 8)
PREFILL_TOKENS = (512, 1024, 2048, 4096, 8192)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ATTENTION_BATCHES = (1, 4, 16, 64, 128, 256)
ATTENTION_CONTEXTS = (512, 2048, 8192, 32768)
MEMORY_ROWS = (1, 16, 256, 2048, 8192)
PAGE_SIZE = 16
MAX_KV_BYTES = 16 * 2**30
"""Decode-attention problems whose K/V exceed this are dropped (they would not fit beside the rest)."""
HELD_OUT_PERCENT = 20


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: what to run, its work, and which curve it calibrates."""

    kind: str  # the hetsim CurveKind value: gemm, gemv, attention_decode, attention_prefill, memory
    op: str  # the kernel: gemm, decode_attention, prefill_attention, rmsnorm, swiglu
    dtype: str  # hetsim DType value: bf16, fp16, fp8
    shape: tuple[tuple[str, int], ...]
    flops: float
    bytes: float
    source: str = ""  # which model layer(s) at which TP produce this shape

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.shape)

    @property
    def id(self) -> str:
        return f"{self.op}/{self.dtype}/" + "-".join(f"{name}{value}" for name, value in self.shape)

    @property
    def is_held_out(self) -> bool:
        return is_held_out(self.id)


def is_held_out(problem_id: str) -> bool:
    """Deterministic split (stable across runs, machines and Python versions)."""
    digest = hashlib.sha256(problem_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def _tp_gemms(model: dict[str, int], tp: int) -> Iterator[tuple[str, int, int]]:
    """(layer, K, N) of one layer's projections on one of ``tp`` GPUs."""
    q_heads = model["heads"] // tp
    kv_heads = max(model["kv_heads"] // tp, 1)  # fewer kv heads than GPUs: replicated
    d, h, inter = model["head_dim"], model["hidden"], model["intermediate"]
    yield "qkv_proj", h, (q_heads + 2 * kv_heads) * d
    yield "o_proj", q_heads * d, h
    yield "gate_up_proj", h, 2 * inter // tp
    yield "down_proj", inter // tp, h


def _gemm_problem(kind: str, dtype: str, m: int, k: int, n: int, source: str) -> Problem:
    elem = work.DTYPE_BYTES[dtype]
    out_elem = 2 if dtype == "fp8" else elem
    return Problem(kind, "gemm", dtype, (("m", m), ("n", n), ("k", k)), work.gemm_flops(m, n, k),
                   work.gemm_bytes(m, n, k, elem, out_elem), source)


def _merge(problems: Iterable[Problem]) -> list[Problem]:
    """One problem per id; the sources of duplicates are joined."""
    merged: dict[str, Problem] = {}
    for problem in problems:
        seen = merged.get(problem.id)
        if seen is None:
            merged[problem.id] = problem
        elif problem.source not in seen.source.split("; "):
            merged[problem.id] = Problem(**{**seen.__dict__, "source": f"{seen.source}; {problem.source}"})
    return list(merged.values())


def gemm_problems(kind: str, tokens: Iterable[int], dtypes: Iterable[str], models: Iterable[str],
                  tps: Iterable[int], lm_head: bool = False) -> list[Problem]:
    """Projection GEMMs (and optionally the LM head) of ``models`` at each TP degree."""
    out = []
    for dtype in dtypes:
        for name in models:
            for tp in tps:
                layers = list(_tp_gemms(MODELS[name], tp))
                if lm_head:
                    layers.append(("lm_head", MODELS[name]["hidden"], MODELS[name]["vocab"] // tp))
                for layer, k, n in layers:
                    out += [_gemm_problem(kind, dtype, m, k, n, f"{name} tp{tp} {layer}") for m in tokens]
    return _merge(out)


def _head_configs(models: Iterable[str], tps: Iterable[int]) -> Iterator[tuple[int, int, int, str]]:
    for name in models:
        model = MODELS[name]
        for tp in tps:
            yield model["heads"] // tp, max(model["kv_heads"] // tp, 1), model["head_dim"], f"{name} tp{tp}"


def decode_attention_problems(batches: Iterable[int], contexts: Iterable[int], dtypes: Iterable[str],
                              models: Iterable[str], tps: Iterable[int]) -> list[Problem]:
    """Paged decode attention with equal contexts per batch (ragged batches are in the tests)."""
    out = []
    for dtype in dtypes:
        elem = work.DTYPE_BYTES[dtype]
        for q_heads, kv_heads, head_dim, source in _head_configs(models, tps):
            for batch in batches:
                for context in contexts:
                    tokens = batch * context
                    if 2 * tokens * kv_heads * head_dim * elem > MAX_KV_BYTES:
                        continue
                    shape = (("batch", batch), ("context", context), ("q_heads", q_heads), ("kv_heads", kv_heads),
                             ("head_dim", head_dim), ("page", PAGE_SIZE))
                    out.append(Problem("attention_decode", "decode_attention", dtype, shape,
                                       work.decode_attention_flops(tokens, q_heads, head_dim),
                                       work.decode_attention_bytes(batch, tokens, q_heads, kv_heads, head_dim, elem,
                                                                   PAGE_SIZE), source))
    return _merge(out)


def prefill_attention_problems(lengths: Iterable[int], dtypes: Iterable[str], models: Iterable[str],
                               tps: Iterable[int]) -> list[Problem]:
    """Causal self-attention of one sequence of each length (q_len == kv_len)."""
    out = []
    for dtype in dtypes:
        elem = work.DTYPE_BYTES[dtype]
        for q_heads, kv_heads, head_dim, source in _head_configs(models, tps):
            for length in lengths:
                shape = (("batch", 1), ("seq", length), ("q_heads", q_heads), ("kv_heads", kv_heads),
                         ("head_dim", head_dim))
                out.append(Problem("attention_prefill", "prefill_attention", dtype, shape,
                                   work.prefill_attention_flops(1, length, length, q_heads, head_dim),
                                   work.prefill_attention_bytes(1, length, length, q_heads, kv_heads, head_dim, elem),
                                   source))
    return _merge(out)


def memory_problems(rows: Iterable[int], dtypes: Iterable[str], models: Iterable[str],
                    tps: Iterable[int]) -> list[Problem]:
    """RMSNorm over the hidden size and SwiGLU over the per-GPU intermediate size."""
    rows = tuple(rows)
    out = []
    for dtype in dtypes:
        elem = work.DTYPE_BYTES[dtype]
        for name in models:
            model = MODELS[name]
            for r in rows:
                out.append(Problem("memory", "rmsnorm", dtype, (("rows", r), ("width", model["hidden"])),
                                   work.rmsnorm_flops(r, model["hidden"]),
                                   work.rmsnorm_bytes(r, model["hidden"], elem), f"{name} norm"))
                for tp in tps:
                    width = model["intermediate"] // tp
                    out.append(Problem("memory", "swiglu", dtype, (("rows", r), ("width", width)),
                                       work.swiglu_flops(r, width), work.swiglu_bytes(r, width, elem),
                                       f"{name} tp{tp} swiglu"))
    return _merge(out)


def full_sweep(has_fp8: bool = True) -> list[Problem]:
    """Every problem: bf16 everywhere; fp16 and fp8 GEMMs at TP 1 and 8 (their own curves)."""
    models, low = tuple(MODELS), ("fp16", "fp8") if has_fp8 else ("fp16",)
    return [
        *gemm_problems("gemm", PREFILL_TOKENS, ("bf16",), models, TP_DEGREES),
        *gemm_problems("gemm", PREFILL_TOKENS, low, models, (1, 8)),
        *gemm_problems("gemv", DECODE_BATCHES, ("bf16",), models, TP_DEGREES, lm_head=True),
        *gemm_problems("gemv", DECODE_BATCHES, low, models, (1, 8)),
        *decode_attention_problems(ATTENTION_BATCHES, ATTENTION_CONTEXTS, ("bf16",), models, TP_DEGREES),
        *prefill_attention_problems(PREFILL_TOKENS, ("bf16",), models, TP_DEGREES),
        *memory_problems(MEMORY_ROWS, ("bf16",), models, TP_DEGREES),
    ]


def quick_sweep(has_fp8: bool = True) -> list[Problem]:
    """A few minutes on one GPU: Llama-3-8B and -70B at TP 1 and 8, coarse grids."""
    models, tps = ("llama-3-8b", "llama-3-70b"), (1, 8)
    low = ("fp8",) if has_fp8 else ()
    return [
        *gemm_problems("gemm", (512, 2048, 8192), ("bf16", *low), models, tps),
        *gemm_problems("gemv", (1, 16, 64, 256), ("bf16", *low), models, tps),
        *decode_attention_problems((1, 16, 128), (512, 4096, 16384), ("bf16",), models, tps),
        *prefill_attention_problems((512, 2048, 8192), ("bf16",), models, tps),
        *memory_problems((16, 2048), ("bf16",), models, tps),
    ]


def split(problems: Iterable[Problem]) -> tuple[list[Problem], list[Problem]]:
    """(fit set, held-out set)."""
    problems = list(problems)
    return [p for p in problems if not p.is_held_out], [p for p in problems if p.is_held_out]
