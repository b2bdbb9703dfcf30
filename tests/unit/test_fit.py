"""Fitting efficiency curves: the fit recovers curves that generated the data, and says why it cannot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hetsim.errors import CalibrationError
from hetsim.perf.fit import (
    error_summary,
    fit_calibration,
    fit_report,
    parse_rows,
    predict_seconds,
    stream_bandwidth,
)
from hetsim.perf.roofline import DevicePerf, OpCost
from hetsim.specs.calibration import (
    CalibrationProvenance,
    CalibrationSpec,
    CurveAxis,
    CurveKind,
    EfficiencyCurve,
)
from tests.conftest import make_device

PROVENANCE = CalibrationProvenance(kind="synthetic", device_description="test", date="2026-11-22", tool="test")
OVERHEAD_S = 8e-6
# A CPU-like device: 10 TFLOP/s bf16, 1 TFLOP/s fp32, 100 GB/s.
DEVICE = make_device(bf16_tflops=10.0, bandwidth_tbs=0.1)


def _truth(gemm_axis: CurveAxis = CurveAxis.LOG10_INTENSITY) -> CalibrationSpec:
    """The calibration that generates the synthetic measurements."""
    gemm_points = ((0.0, 0.02), (1.0, 0.15), (2.0, 0.5), (3.0, 0.7)) if gemm_axis == CurveAxis.LOG10_INTENSITY else (
        (7.0, 0.05), (9.0, 0.3), (11.0, 0.8))
    curves = (
        EfficiencyCurve(kind=CurveKind.GEMM, dtype="bf16", axis=gemm_axis, points=gemm_points),
        EfficiencyCurve(kind=CurveKind.GEMV, dtype="bf16", axis=CurveAxis.LOG10_BYTES, points=((6.0, 0.5), (8.0, 0.8))),
        EfficiencyCurve(kind=CurveKind.ATTENTION_DECODE, dtype="bf16", axis=CurveAxis.LOG10_BYTES,
                        points=((6.0, 0.3), (9.0, 0.6))),
        EfficiencyCurve(kind=CurveKind.MEMORY, axis=CurveAxis.LOG10_BYTES, points=((6.0, 0.7), (9.0, 0.9))),
    )
    return CalibrationSpec(schema_version=1, device=DEVICE.name, provenance=PROVENANCE,
                           launch_overhead={"value": OVERHEAD_S * 1e6, "unit": "us"}, curves=curves)


def _rows(truth: CalibrationSpec) -> list[dict]:
    """LLM-shaped GEMMs, decode attention, streams and tiny probes, timed by the roofline itself."""
    perf = DevicePerf(DEVICE, truth)
    shapes = [("gemm", 2.0 * m * k * n, 2.0 * (m * k + k * n + m * n))
              for m in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
              for k, n in ((4096, 4096), (4096, 1024), (1024, 4096), (4096, 14336))]
    shapes += [("attention_decode", 4.0 * 8 * ctx * 128 * b, 2.0 * 2 * 8 * ctx * 128 * b)
               for b in (1, 4, 16) for ctx in (256, 1024, 4096, 16384)]
    shapes += [("memory", 0.0, float(2**p)) for p in range(22, 31)]
    shapes += [("gemm", 512.0, 576.0), ("memory", 0.0, 128.0)]  # probes: all overhead
    rows = []
    for kind, flops, nbytes in shapes:
        seconds = perf.op_time(OpCost(kind, CurveKind(kind), flops, nbytes, "bf16")).seconds
        rows.append({"kind": kind, "dtype": "bf16", "flops": flops, "bytes": nbytes, "seconds": seconds})
    return rows


def test_fit_recovers_the_curves_that_generated_the_rows() -> None:
    truth = _truth()
    rows = _rows(truth)
    fitted = fit_calibration(rows, DevicePerf(DEVICE), PROVENANCE)
    assert fitted.launch_overhead.si == pytest.approx(OVERHEAD_S, rel=0.02)
    gemm = fitted.curve(CurveKind.GEMM, "bf16")
    assert gemm is not None and gemm.axis == CurveAxis.LOG10_INTENSITY
    # Where the truth is compute-bound (intensity above ~60 FLOP/B here) the curve is recovered;
    # below, the truth is memory-bound and the fit may give compute a lower efficiency instead
    # (the same time either way: the ceiling on the memory side then does not bind).
    for x in (2.0, 2.5, 3.0):
        assert gemm.at(x) == pytest.approx(truth.curve(CurveKind.GEMM, "bf16").at(x), rel=0.05)
    stats = error_summary([r["seconds"] for r in rows], predict_seconds(rows, DevicePerf(DEVICE, fitted)))
    assert stats["median_abs_error"] < 0.02 and stats["p90_abs_error"] < 0.06


def test_fit_picks_the_flop_axis_when_efficiency_follows_size() -> None:
    rows = _rows(_truth(CurveAxis.LOG10_FLOPS))
    fitted = fit_calibration(rows, DevicePerf(DEVICE), PROVENANCE)
    assert fitted.curve(CurveKind.GEMM, "bf16").axis == CurveAxis.LOG10_FLOPS
    stats = error_summary([r["seconds"] for r in rows], predict_seconds(rows, DevicePerf(DEVICE, fitted)))
    assert stats["median_abs_error"] < 0.03


def test_compute_curves_never_decrease_with_intensity() -> None:
    rows = _rows(_truth())
    noise = np.random.default_rng(20261122).uniform(0.85, 1.15, len(rows))
    noisy = [{**row, "seconds": row["seconds"] * factor} for row, factor in zip(rows, noise, strict=True)]
    fitted = fit_calibration(noisy, DevicePerf(DEVICE), PROVENANCE)
    values = [y for _, y in fitted.curve(CurveKind.GEMM, "bf16").points]
    assert values == sorted(values)


def test_the_bandwidth_ceiling_never_binds_a_compute_explained_gemm() -> None:
    rows = _rows(_truth())
    fitted = DevicePerf(DEVICE, fit_calibration(rows, DevicePerf(DEVICE), PROVENANCE))
    for row in rows:
        if row["kind"] == "gemm" and row["flops"] > 1e6:
            memory_s = row["bytes"] / (DEVICE.memory_bandwidth_bytes_per_s * fitted.efficiency(
                CurveKind.GEMV, "bf16", row["flops"], row["bytes"]))
            assert memory_s + fitted.launch_overhead_s <= row["seconds"] * 1.01


def test_fit_accepts_a_dataframe_and_summarizes_per_kind() -> None:
    rows = pd.DataFrame(_rows(_truth())).assign(label="x", m=np.nan)  # extra columns are ignored
    fitted = fit_calibration(rows, DevicePerf(DEVICE), PROVENANCE)
    assert fitted.fit_summary["gemm.bf16.count"] == 48
    assert fitted.fit_summary["all.median_abs_error"] < 0.02
    report = {(r["kind"], r["dtype"]): r for r in fit_report(rows, DevicePerf(DEVICE, fitted))}
    assert set(report) == {("gemm", "bf16"), ("attention_decode", "bf16"), ("memory", "any")}
    assert report[("gemm", "bf16")]["side"] == "compute" and report[("memory", "any")]["side"] == "memory"


def test_collectives_are_left_out_and_counted() -> None:
    rows = [*_rows(_truth()), {"kind": "collective", "dtype": "bf16", "flops": 0, "bytes": 1e6, "seconds": 1e-3}]
    fitted = fit_calibration(rows, DevicePerf(DEVICE), PROVENANCE)
    assert fitted.fit_summary["rows_skipped"] >= 1
    assert fitted.curve(CurveKind.COLLECTIVE) is None


def test_error_summary_is_relative_to_measured() -> None:
    stats = error_summary([1.0, 2.0, 4.0, 1.0], [1.1, 1.8, 4.0, 2.0])
    assert stats["count"] == 4
    assert stats["median_abs_error"] == pytest.approx(0.1)
    assert stats["max_abs_error"] == pytest.approx(1.0)
    assert stats["p90_abs_error"] == pytest.approx(float(np.percentile([0.1, 0.1, 0.0, 1.0], 90)))
    assert math.isnan(error_summary([], [])["median_abs_error"])


def test_stream_bandwidth_is_the_best_memory_row() -> None:
    rows = [{"kind": "memory", "dtype": "fp32", "flops": 0, "bytes": 1e9, "seconds": s} for s in (0.05, 0.04)]
    bandwidth, how = stream_bandwidth(rows)
    assert bandwidth == pytest.approx(25e9) and "2 memory-stream rows" in how
    with pytest.raises(CalibrationError, match="no 'memory' rows"):
        stream_bandwidth([{"kind": "gemm", "dtype": "fp32", "flops": 1, "bytes": 1, "seconds": 1}])


GOOD = {"kind": "gemm", "dtype": "bf16", "flops": 1e9, "bytes": 1e6, "seconds": 1e-3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seconds": -1.0}, r"row 0: field 'seconds': expected a finite number > 0, got -1.0"),
        ({"seconds": float("nan")}, r"row 0: field 'seconds': expected a finite number > 0, got nan"),
        ({"flops": "many"}, r"row 0: field 'flops': expected a finite number >= 0, got 'many'"),
        ({"kind": "conv"}, r"row 0: field 'kind'/'dtype': expected one of .* got 'conv'/'bf16'"),
        ({"dtype": "fp64"}, r"row 0: field 'kind'/'dtype': .* got 'gemm'/'fp64'"),
        ({"flops": 0.0, "bytes": 0.0}, r"row 0: fields 'flops'/'bytes': expected some work, got both 0"),
    ],
)
def test_bad_rows_are_rejected_naming_row_and_field(change: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit_calibration([{**GOOD, **change}], DevicePerf(DEVICE), PROVENANCE)


def test_missing_columns_and_empty_input_are_rejected() -> None:
    with pytest.raises(CalibrationError, match=r"row 1: missing column\(s\) seconds"):
        parse_rows([GOOD, {k: v for k, v in GOOD.items() if k != "seconds"}])
    with pytest.raises(CalibrationError, match="expected at least one row, got none"):
        parse_rows([])


def test_only_overhead_rows_cannot_be_fitted() -> None:
    probes = [{"kind": "gemm", "dtype": "bf16", "flops": 512.0, "bytes": 576.0, "seconds": 5e-6}] * 3
    with pytest.raises(CalibrationError, match="no row long enough to fit a curve"):
        fit_calibration(probes, DevicePerf(DEVICE), PROVENANCE)
