"""The engine-overhead fit recovers known overheads and refuses grids it cannot fit."""

from __future__ import annotations

import pytest

from hetsim.errors import CalibrationError
from hetsim.perf.engine_fit import fit_engine_overheads


def kernels(kind: str, tokens: int, batch: int) -> float:
    return 1e-3 + 2e-6 * tokens * (batch if kind == "decode" else 1) + 5e-5 * batch


def pairs(tokens: int) -> float:
    return 4 * tokens * (tokens + 1) / 2  # four layers


def grid(step: float, per_sequence: float, request: float, pair: float = 0.0) -> list[tuple[str, int, int, float]]:
    points = [("decode", c, b, kernels("decode", c, b) + step + per_sequence * b) for c in (64, 1024) for b in (1, 2, 4, 8)]
    points += [("prefill", p, 1, kernels("prefill", p, 1) + step + per_sequence + request + pair * pairs(p)) for p in (16, 64, 256, 1024)]
    return points


def test_known_overheads_are_recovered() -> None:
    fit = fit_engine_overheads(grid(7e-4, 5e-5, 3e-3, 2e-11), kernels, pairs)
    assert fit.step_overhead_s == pytest.approx(7e-4, rel=1e-6)
    assert fit.sequence_overhead_s == pytest.approx(5e-5, rel=1e-6)
    assert fit.request_overhead_s == pytest.approx(3e-3, rel=1e-6)
    assert fit.prefill_pair_s == pytest.approx(2e-11, rel=1e-6)
    assert fit.quality["max_abs_error"] < 1e-9


def test_overheads_are_never_negative() -> None:
    points = [(k, t, b, s * 0.5) for k, t, b, s in grid(0.0, 0.0, 0.0)]  # faster than the kernels alone
    fit = fit_engine_overheads(points, kernels, pairs)
    assert min(fit.step_overhead_s, fit.sequence_overhead_s, fit.request_overhead_s, fit.prefill_pair_s) >= 0


def test_grids_that_cannot_be_fitted_are_refused() -> None:
    with pytest.raises(CalibrationError, match="two or more batch sizes"):
        fit_engine_overheads([("decode", 64, 1, 1e-3), ("prefill", 16, 1, 2e-3)], kernels, pairs)
    with pytest.raises(CalibrationError, match="expected a positive time, got nan"):
        fit_engine_overheads([*grid(1e-3, 0, 0), ("decode", 64, 16, float("nan"))], kernels, pairs)


def test_colocated_overheads_move_from_alone_to_beside_with_the_neighbours_load() -> None:
    from hetsim.perf.engine_fit import colocated
    from hetsim.specs.calibration import EngineOverheads

    alone = EngineOverheads(engine="e", model="m", step_overhead_s=1e-3, sequence_overhead_s=1e-4, request_overhead_s=5e-3, prefill_pair_s=1e-9)
    beside = alone.model_copy(update={"step_overhead_s": 2e-3, "request_overhead_s": 9e-3, "side_by_side": 2})
    assert colocated(alone, beside, 0.0).step_overhead_s == pytest.approx(1e-3)
    assert colocated(alone, beside, 1.0).step_overhead_s == pytest.approx(2e-3)
    half = colocated(alone, beside, 0.5)
    assert half.step_overhead_s == pytest.approx(1.5e-3) and half.request_overhead_s == pytest.approx(7e-3)
    assert half.sequence_overhead_s == pytest.approx(1e-4) and half.fit["neighbour_busy"] == 0.5
    assert colocated(alone, beside, 7.0).step_overhead_s == pytest.approx(2e-3)  # clamped to [0, 1]
