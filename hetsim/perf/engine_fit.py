"""Fit a serving engine's overheads to measurements of its steps (``hetsim bench --engine``).

The model of a step is the performance model's kernel time plus the engine's overheads:

* decode step of ``B`` sequences: ``kernels(B, L) + step_overhead + B x sequence_overhead``;
* time to first token of a lone prompt of ``P`` tokens (one step):
  ``request_overhead + kernels(P) + step_overhead + sequence_overhead + pairs(P) x prefill_pair``,
  where ``pairs(P)`` counts the causal query-key pairs of the prompt's attention times layers:
  what an engine's prefill attention costs beyond the kernel model grows with them.

The decode rows give the two step terms (least squares, non-negative); the prefill rows then
give the request overhead and the per-pair cost (least squares on their residuals, non-negative). Fit quality is reported as relative errors
of the fitted model on the same synthetic grid; the grid is independent of any workload, so a
run validated with these overheads was never fitted to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hetsim.errors import CalibrationError
from hetsim.specs.calibration import EngineOverheads


@dataclass(frozen=True)
class EngineFit:
    step_overhead_s: float
    sequence_overhead_s: float
    request_overhead_s: float
    prefill_pair_s: float
    rows: list[dict[str, float]]
    quality: dict[str, float]


def fit_engine_overheads(
    points: Sequence[tuple[str, int, int, float]],
    kernel_s: Callable[[str, int, int], float],
    prefill_pairs: Callable[[int], float],
) -> EngineFit:
    """``points``: (kind, tokens, batch, measured seconds) with kind 'prefill' or 'decode';
    ``kernel_s(kind, tokens, batch)``: the performance model's time without engine overheads;
    ``prefill_pairs(tokens)``: causal query-key pairs x layers of a prompt of ``tokens``.

    Raises:
        CalibrationError: too few decode or prefill points, or a measurement that is not a
            positive finite number.
    """
    for kind, tokens, batch, seconds in points:
        if not (np.isfinite(seconds) and seconds > 0):
            raise CalibrationError(f"engine grid: {kind} {tokens} tokens x {batch}: expected a positive time, got {seconds}")
    decode = [(b, s - kernel_s("decode", t, b)) for k, t, b, s in points if k == "decode"]
    prefill = [(t, s - kernel_s("prefill", t, b)) for k, t, b, s in points if k == "prefill"]
    if len({b for b, _ in decode}) < 2 or not prefill:
        raise CalibrationError("engine grid: expected decode points at two or more batch sizes and at least one prefill point")
    batches = np.array([b for b, _ in decode], dtype=float)
    residuals = np.array([r for _, r in decode])
    design = np.column_stack([np.ones_like(batches), batches])
    (step, per_sequence), *_ = np.linalg.lstsq(design, residuals, rcond=None)
    if per_sequence < 0:  # a fixed cost only
        step, per_sequence = float(max(residuals.mean(), 0.0)), 0.0
    elif step < 0:  # a per-sequence cost only
        step, per_sequence = 0.0, float(max((batches * residuals).sum() / (batches**2).sum(), 0.0))
    request, pair = _prefill_terms([(t, r - step - per_sequence) for t, r in prefill], prefill_pairs)
    rows, errors = [], []
    for kind, tokens, batch, seconds in points:
        kernel = kernel_s(kind, tokens, batch)
        fitted = kernel + step + per_sequence * batch + (request + pair * prefill_pairs(tokens) if kind == "prefill" else 0.0)
        error = (fitted - seconds) / seconds
        errors.append(abs(error))
        rows.append({"prefill": float(kind == "prefill"), "tokens": float(tokens), "batch": float(batch),
                     "measured_s": seconds, "kernels_s": kernel, "fitted_s": fitted, "error": error})  # fmt: skip
    quality = {"points": float(len(points)), "median_abs_error": float(np.median(errors)), "max_abs_error": float(np.max(errors))}
    return EngineFit(float(step), float(per_sequence), request, pair, rows, quality)


def _prefill_terms(residuals: list[tuple[int, float]], prefill_pairs: Callable[[int], float]) -> tuple[float, float]:
    """(request overhead, seconds per pair) of ``residual = request + pair x pairs``, both >= 0."""
    pairs = np.array([prefill_pairs(t) for t, _ in residuals])
    values = np.array([r for _, r in residuals])
    if len(residuals) >= 2 and np.ptp(pairs) > 0:
        (request, pair), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(pairs), pairs]), values, rcond=None)
        if pair >= 0 and request >= 0:
            return float(request), float(pair)
        if pair < 0:
            return float(max(values.mean(), 0.0)), 0.0
        return 0.0, float(max((pairs * values).sum() / (pairs**2).sum(), 0.0))
    return float(max(values.mean(), 0.0)), 0.0


def colocated(alone: EngineOverheads, beside: EngineOverheads, neighbour_busy: float) -> EngineOverheads:
    """Overheads of an engine whose co-located neighbour is busy ``neighbour_busy`` of the time
    (0-1): linear between the calibration taken alone and the one taken beside a saturated
    neighbour (each overhead term interpolated; never below the alone value)."""
    share = min(max(neighbour_busy, 0.0), 1.0)
    terms = ("step_overhead_s", "sequence_overhead_s", "request_overhead_s", "prefill_pair_s", "layer_overhead_s", "token_overhead_s")
    update: dict[str, float | dict[str, float]] = {
        name: max(getattr(alone, name), getattr(alone, name) + share * (getattr(beside, name) - getattr(alone, name)))
        for name in terms
    }
    update["fit"] = {**alone.fit, "neighbour_busy": share}
    return alone.model_copy(update=update)
