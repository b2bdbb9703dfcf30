"""Fit a device's kernel model (``hetsim.perf.kernels``) to measured op-level rows.

Each kernel class is fitted on its own rows: its parameters minimise the mean absolute log
error ``|log(predicted / measured)|`` (robust to the few outliers a sweep has; a relative
error, so microsecond and second kernels weigh alike) by cyclic coordinate descent, each
coordinate a golden-section search in log space within physical bounds. Deterministic: no
random starts; a class's rows are subsampled with a fixed seed when there are many.

Scoring never uses fitted rows: ``cross_validated`` splits a class's rows into two folds by
a group key (the GEMM's (n, k), the attention's head layout, the all-reduce's rank count,
the model of an element-wise row), fits on one fold and predicts the other, both ways.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from hetsim.perf.kernels import (
    VLLM_SM89_FP8_DISPATCH,
    VLLM_SM89_FP8_STACKED_WARPS,
    VLLM_SM89_FP8_TILES,
    VLLM_SM90_FP8_DISPATCH,
    VLLM_SM90_FP8_TILES,
    input_quant_kernels,
)
from hetsim.perf.public_rows import predict_ops
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import KernelModel
from hetsim.specs.hardware import AcceleratorSpec


def _gemm_parameters(part: str, lowest_efficiency: float) -> tuple[tuple[str, float, float], ...]:
    bounds = (
        ("efficiency", lowest_efficiency, 1.2),
        ("k_half", 1.0, 4096.0),
        ("output_efficiency", 0.02, 50.0),
        ("memory_efficiency", lowest_efficiency, 1.2),
        ("floor_s", 1e-7, 1e-4),
        ("split_k_s", 1e-9, 3e-5),
        ("vector_split_k_s", 1e-9, 3e-5),
        ("unit_bandwidth_share", 1e-3, 1.0),
        ("serial_k_work", 0.0, 0.0),
        ("serial_k_depth", 0.0, 0.0),
        ("warm_cache_speedup", 1.0, 8.0),
        # only where the family names stacked-warp tiles (STACKED_WARP_FIELDS)
        ("stacked_warp_floor_s", 1e-8, 3e-5),
        ("stacked_warp_warm_speedup", 1.0, 8.0),
    )
    return tuple((f"{part}.{field}", low, high) for field, low, high in bounds)


# Each class's fitted parameters: (field path, lower bound, upper bound). fp8 GEMMs may sit far
# below their peak (per-tensor scaling kernels), so their efficiency may go lower.
PARAMETERS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "gemm": _gemm_parameters("gemm", 0.2),
    # fp8 GEMMs measured on 16-bit inputs include the input's quantisation (its own class).
    "gemm_fp8": (
        *_gemm_parameters("gemm_fp8", 0.05),
        ("input_quant.memory_efficiency", 0.005, 1.2),
        ("input_quant.floor_s", 1e-7, 1e-4),
        ("input_quant.warm_cache_speedup", 1.0, 16.0),
    ),
    # Attention's shape terms (hetsim.perf.kernels.attention_seconds) after the roofline's: a
    # CTA's efficiency, one (sequence, head)'s share of the bandwidth, a warm L2's speed-up, a KV
    # stream's seconds per token and the sequences whose streams add up.
    "attention_prefill": (
        ("attention_prefill.efficiency", 0.05, 1.2),
        ("attention_prefill.intensity_half", 1.0, 1e4),
        ("attention_prefill.memory_efficiency", 0.05, 1.2),
        ("attention_prefill.floor_s", 1e-7, 1e-3),
        ("attention_prefill.item_s", 1e-12, 1e-5),
        ("attention_prefill.sequence_s", 1e-12, 1e-5),
        ("attention_prefill.cta_efficiency", 0.05, 1.5),
        ("attention_prefill.warm_cache_speedup", 1.0, 8.0),
        # with a tiling (FAMILIES): FA2's one-token regrouping copies
        ("attention_prefill.regroup_s", 1e-9, 1e-4),
    ),
    "attention_decode": (
        ("attention_decode.efficiency", 0.01, 1.2),
        ("attention_decode.memory_efficiency", 0.05, 1.2),
        ("attention_decode.floor_s", 1e-7, 1e-3),
        ("attention_decode.item_s", 1e-12, 1e-5),
        ("attention_decode.sequence_s", 1e-12, 1e-5),
        ("attention_decode.unsplit_cta_share", 1e-4, 1.0),
        ("attention_decode.regroup_s", 1e-9, 1e-4),
        # the regrouped rows pay floor + regroup: one coordinate lowers the floor while raising
        # regroup_s (one at a time, each move hurts one set of rows: the descent stays put)
        ("attention_decode.floor_s~regroup_s", 1e-7, 1e-3),
        ("attention_decode.warm_cache_speedup", 1.0, 8.0),
        ("attention_decode.stream_token_s", 1e-11, 1e-8),
        ("attention_decode.stream_sequences", 1.0, 4096.0),
    ),
    "elementwise": (("elementwise.memory_efficiency", 0.05, 1.2), ("elementwise.floor_s", 1e-7, 1e-4)),
    "all_reduce": (
        ("collective.latency_s", 1e-7, 1e-3),
        ("collective.rank_latency_s", 1e-9, 1e-4),
        ("collective.efficiency", 0.05, 1.2),
    ),
}
# Thresholds of a library's heuristic: the loss is a staircase in them (flat between measured
# shapes), which a golden-section search cannot descend, so they are picked from these values
# (0: the term off; powers of two, as the heuristics' cut-offs are).
GRIDS: dict[str, tuple[float, ...]] = {
    "serial_k_work": (0.0, *(2.0**e for e in range(14, 29))),
    "serial_k_depth": (0.0, *(2.0**e for e in range(8, 18))),
}
# Terms 0 leaves out (a GEMM's epilogue priced apart, a unit's own bandwidth share): the search
# within the bounds never reaches 0, so leaving the term out competes with the value found.
SWITCHABLE = frozenset({"output_efficiency", "stacked_warp_floor_s"})
# Terms of a family's stacked-warp tiles: inert (and not searched) where the family has none.
STACKED_WARP_FIELDS = frozenset({"stacked_warp_floor_s", "stacked_warp_warm_speedup"})
# The kernel families a class's rows may have run, each a structure (tiles, splits, the library's
# own tile choice, FlashAttention's CTA grid) the descent cannot move one coordinate at a time:
# each is fitted in full and the lowest loss kept ({}: the structure the class starts from, the
# fastest tile and split). Each is tagged with the compute capabilities whose kernels it is (None:
# the generic structure): vLLM dispatches by capability, so a device whose profile names its
# capability is fitted on its own family only (or the generic one where none is its own), and a
# device that does not on every family (the fits chose the device's own family on every device and
# fold where all were tried).
# - fp8 GEMMs: vLLM's fp8 linear layer runs CUTLASS kernels without split-K (VLLM_SM89_FP8_TILES:
#   one CTA per tile over all of K), c2x on Ada with the tile its dispatch picks
#   (VLLM_SM89_FP8_DISPATCH), c3x on Hopper.
# - prefill: FA2's paged split-KV grid below sm90, FA3's packed grouped heads on sm90
#   (hetsim.perf.kernels.FLASH_TILINGS); the rows do not record which ran, and held out the other
#   grid was worse on every device (A100 p90 29% against 18%, L40S 31% against 21%, H100 26%
#   against 23%). The untiled form is not a candidate (its terms are a grid's on a wrong grid).
Family = tuple[tuple[str, ...] | None, dict[str, Any]]
FAMILIES: dict[str, tuple[Family, ...]] = {
    "gemm_fp8": (
        (None, {}),
        (
            ("8.9",),
            {
                "tiles": VLLM_SM89_FP8_TILES,
                "split_k": (1,),
                "tile_dispatch": VLLM_SM89_FP8_DISPATCH,
                "stacked_warp_tiles": VLLM_SM89_FP8_STACKED_WARPS,
            },
        ),
        (("9.0",), {"tiles": VLLM_SM90_FP8_TILES, "split_k": (1,), "tile_dispatch": VLLM_SM90_FP8_DISPATCH}),
    ),
    "attention_prefill": (
        (("8.0", "8.6", "8.9"), {"tiling": "fa2-paged", "regroup_s": 0.0}),
        (("9.0",), {"tiling": "fa3", "regroup_s": 0.0}),
    ),
}

MAX_FIT_ROWS = 4000
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def device_families(op_class: str, device: AcceleratorSpec) -> list[dict[str, Any]]:
    """The kernel families ``op_class`` is fitted on for ``device`` (see ``FAMILIES``): its
    capability's, else the generic ones, else every family."""
    families = FAMILIES.get(op_class, ((None, {}),))
    capability = device.compute_units.compute_capability if device.compute_units else None
    every = [family for _, family in families]
    if capability is None:
        return every
    own = [family for tags, family in families if tags is not None and capability in tags]
    return own or [family for tags, family in families if tags is None] or every


def device_prefill_tilings(device: AcceleratorSpec) -> tuple[str, ...]:
    """The FlashAttention grids prefill is fitted on for ``device`` (``device_families``)."""
    return tuple(family["tiling"] for family in device_families("attention_prefill", device))


def with_parameter(kernels: KernelModel, path: str, value: float) -> KernelModel:
    """``kernels`` with one parameter (``class.field``) replaced (an absent fp8 GEMM class
    starts from the shared GEMM's parameters, an absent input quantisation from the defaults).
    ``class.field~other`` moves ``field`` to ``value`` and ``other`` by the opposite amount (their
    sum held, ``other`` kept >= 0): a coordinate along the valley two terms that add up make."""
    part, field = path.split(".")
    field, _, other = field.partition("~")
    current = class_of(kernels, part)
    update = {field: value}
    if other:
        update[other] = max(0.0, getattr(current, field) + getattr(current, other) - value)
    return kernels.model_copy(update={part: current.model_copy(update=update)})


def class_of(kernels: KernelModel, part: str) -> Any:
    """A kernel class's parameters (an absent fp8 GEMM class is the shared GEMM's, an absent
    input quantisation the defaults')."""
    current = getattr(kernels, part)
    if current is None:
        current = input_quant_kernels(kernels) if part == "input_quant" else kernels.gemm
    return current


def fit_class_of(rows: pd.DataFrame) -> pd.Series:
    """The parameter class each row is fitted in: its op class, fp8 GEMMs apart."""
    fp8_gemm = (rows["op_class"] == "gemm") & (rows["dtype"] == "fp8")
    return rows["op_class"].where(~fp8_gemm, "gemm_fp8")


def log_error(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log(predicted / measured))))


def fit_class(
    rows: pd.DataFrame, perf: DevicePerf, kernels: KernelModel, op_class: str, sweeps: int = 4, seed: int = 0
) -> KernelModel:
    """``kernels`` with ``op_class``'s parameters fitted to ``rows`` (that class's rows)."""
    if len(rows) > MAX_FIT_ROWS:
        rows = rows.sample(MAX_FIT_ROWS, random_state=seed)
    measured = rows["measured_s"].to_numpy(dtype=float)
    if op_class.startswith("attention"):
        # the work items' cost starts overlapped with the roofline (item_s, fitted first), none added:
        # from the defaults' additive cost the descent never moves it (a local optimum)
        kernels = with_parameter(kernels, f"{op_class}.sequence_s", 0.0)

    def loss(candidate: KernelModel) -> float:
        return log_error(predict_ops(rows, perf, candidate), measured)

    def descend(kernels: KernelModel) -> KernelModel:
        for _ in range(sweeps):
            for path, low, high in PARAMETERS[op_class]:
                part, field = path.split(".")
                if field in STACKED_WARP_FIELDS and not class_of(kernels, part).stacked_warp_tiles:
                    continue
                candidate = lambda v, path=path, base=kernels: loss(with_parameter(base, path, v))  # noqa: E731
                grid = GRIDS.get(field)
                best = min(grid, key=candidate) if grid else golden_log(candidate, low, high)
                if field in SWITCHABLE:
                    best = min((best, 0.0), key=candidate)  # the term left out competes
                kernels = with_parameter(kernels, path, best)
        return kernels

    fits = [descend(_with_family(kernels, op_class, family)) for family in device_families(op_class, perf.device)]
    return min(fits, key=loss)


# Kernel parameters fitted through whole runs where no kernel-level rows cover a device's
# kernels (AMD's ROCm vLLM generations on MI300X: hipBLASLt fp8 GEMMs and ROCm's paged
# attention, whose default parameters come from NVIDIA's kernels): the fp8 GEMMs' compute
# efficiency and decode attention's cost per work item (a sequence's KV head on a rank, per layer),
# what a batch's growth prices.
# The runs grow with the batch far more than with the context (Llama-3.1-70B at batch 128:
# 2048-token prompts take 13% longer than 128-token ones), so a per-sequence cost, not the KV
# bandwidth (held out, 0.9.1: 7%/27% with the bandwidth, 7%/15% with the per-sequence cost).
RUN_PARAMETERS: tuple[tuple[str, float, float], ...] = (
    ("gemm_fp8.efficiency", 0.05, 1.0),
    ("attention_decode.sequence_s", 1e-9, 1e-5),
)


def fit_through_runs(
    predict: Callable[[KernelModel], np.ndarray],
    measured: np.ndarray,
    kernels: KernelModel,
    parameters: tuple[tuple[str, float, float], ...] = RUN_PARAMETERS,
    tolerance: float = 0.01,
) -> KernelModel:
    """``kernels`` with ``parameters`` fitted so that ``predict`` (whole runs' seconds under a
    candidate kernel model) matches ``measured``: the mean squared log error, by a pattern
    search in log space over every parameter at once (each round tries every combination of
    one step down, none or up per parameter and moves to the best; the step halves when none
    is better, down to ``tolerance``). Joint moves follow the valley that parameters which
    trade off make (a faster GEMM for a slower attention), where cyclic coordinate descent
    crawls."""
    bounds = np.log([[low, high] for _, low, high in parameters])

    def model(point: tuple[float, ...]) -> KernelModel:
        out = kernels
        for (path, _, _), value in zip(parameters, point, strict=True):
            out = with_parameter(out, path, math.exp(value))
        return out

    seen: dict[tuple[float, ...], float] = {}

    def loss(point: tuple[float, ...]) -> float:
        if point not in seen:
            seen[point] = float(np.mean(np.log(predict(model(point)) / measured) ** 2))
        return seen[point]

    start = [getattr(class_of(kernels, path.split(".")[0]), path.split(".")[1]) for path, _, _ in parameters]
    point = tuple(float(np.clip(math.log(v), lo, hi)) for v, (lo, hi) in zip(start, bounds, strict=True))
    moves = [m for m in itertools.product((-1, 0, 1), repeat=len(parameters)) if any(m)]
    step = 0.5
    while step >= tolerance:
        candidates = [
            tuple(round(float(np.clip(x + d * step, lo, hi)), 9) for x, d, (lo, hi) in zip(point, move, bounds, strict=True))
            for move in moves
        ]
        best = min(candidates, key=loss)
        if loss(best) < loss(point):
            point = best
        else:
            step /= 2.0
    return model(point)


def _with_family(kernels: KernelModel, op_class: str, family: dict[str, Any]) -> KernelModel:
    for field, value in family.items():
        kernels = with_parameter(kernels, f"{op_class}.{field}", value)  # type: ignore[arg-type]
    return kernels


def golden_log(loss: Callable[[float], float], low: float, high: float, steps: int = 22) -> float:
    """The minimiser of ``loss`` on [low, high] by golden-section search in log space (the
    losses here are unimodal per coordinate, or flat where a bound does not bind)."""
    a, b = math.log(low), math.log(high)
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = loss(math.exp(c)), loss(math.exp(d))
    for _ in range(steps):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = loss(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = loss(math.exp(d))
    return math.exp((a + b) / 2.0)


def group_key(rows: pd.DataFrame) -> pd.Series:
    """What a fold holds out together (see the module docstring)."""
    op_class = rows["op_class"].iloc[0]
    if op_class == "gemm":
        return rows["n"].astype(str) + "x" + rows["k"].astype(str)
    if op_class.startswith("attention"):
        return rows["heads"].astype(str) + "/" + rows["kv_heads"].astype(str)
    if op_class == "all_reduce":
        return rows["ranks"].astype(str)
    return rows["model"].astype(str) + "/" + rows["op"].astype(str)


def folds(rows: pd.DataFrame) -> np.ndarray:
    """Fold (0 or 1) of each row: groups alternate in sorted order, so both folds span the range."""
    keys = group_key(rows)
    order = {key: i % 2 for i, key in enumerate(sorted(keys.unique()))}
    return keys.map(order).to_numpy(dtype=int)


def cross_validated(rows: pd.DataFrame, perf: DevicePerf, kernels: KernelModel, op_class: str) -> np.ndarray:
    """Held-out predictions of ``rows``: each fold predicted by the parameters fitted on the other
    (a class with a single group is predicted by a fit on itself: the caller must say so)."""
    fold = folds(rows)
    out = np.empty(len(rows))
    if len(set(fold.tolist())) < 2:
        return predict_ops(rows, perf, fit_class(rows, perf, kernels, op_class))
    for held in (0, 1):
        fitted = fit_class(rows[fold != held], perf, kernels, op_class)
        out[fold == held] = predict_ops(rows[fold == held], perf, fitted)
    return out


TIE_TOLERANCE = 1e-9  # of the loss without terms: losses closer than this are one fit (rounding decides nothing)
STEP_TERMS = ("step_overhead_s", "layer_overhead_s", "sequence_overhead_s", "prefill_pair_s", "token_overhead_s")


def fit_step_overheads(kernel_s: np.ndarray, features: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Non-negative engine overheads (``STEP_TERMS``) that best explain whole steps beyond their
    kernel time: ``measured ~ kernel_s + features @ terms``, least squares on relative error.

    ``features`` has one column per term: 1, layers, sequences in the step, causal prefill
    pairs x layers, tokens computed. Non-negativity by trying every subset of terms (32 solves) and
    keeping the best solution whose terms are all non-negative. A larger subset replaces a smaller
    (or an earlier) one only if it fits better by more than rounding: terms the rows cannot tell
    apart (the layer count is one constant on one model's steps, so a cost per step and one per
    layer fit them equally) keep the earlier term, not whichever rounding favours (a 0.05%
    change in the kernel times flipped the H100 held-out fit between them).
    """
    weights = 1.0 / measured
    residual = (measured - kernel_s) * weights
    scaled = features * weights[:, None]
    best, best_loss = np.zeros(features.shape[1]), float(np.sum(residual**2))
    no_terms_loss = best_loss
    columns = range(features.shape[1])
    for size in range(1, features.shape[1] + 1):
        for subset in _subsets(list(columns), size):
            solution, *_ = np.linalg.lstsq(scaled[:, subset], residual, rcond=None)
            if (solution < 0).any():
                continue
            terms = np.zeros(features.shape[1])
            terms[subset] = solution
            loss = float(np.sum((residual - scaled @ terms) ** 2))
            if loss < best_loss - TIE_TOLERANCE * no_terms_loss:
                best, best_loss = terms, loss
    return {name: float(value) for name, value in zip(STEP_TERMS, best, strict=True)}


def _subsets(items: list[int], size: int) -> list[list[int]]:
    if size == 0:
        return [[]]
    if len(items) < size:
        return []
    head, rest = items[0], items[1:]
    return [[head, *tail] for tail in _subsets(rest, size - 1)] + _subsets(rest, size)
