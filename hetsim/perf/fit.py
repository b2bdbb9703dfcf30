"""Fit a device's efficiency curves from measured op times (pure: numpy only, no I/O).

The model being fitted is the one ``hetsim.perf.roofline.DevicePerf.op_time`` evaluates::

    t = max(F / (P * c(x_c)), B / (W * m(x_m))) + o

with F, B the op's FLOPs and bytes, P and W the datasheet peaks, ``c`` and ``m`` the compute
and memory efficiency curves of the op's kind, and ``o`` the launch overhead. Each measured
row is *explained* by one side, and the curve of that side is fitted to the row's implied
efficiency (F / (P (t - o)) or B / (W (t - o))):

* ``gemm`` and ``attention_prefill`` rows by their compute curve. Its axis is chosen per
  curve: ``log10_intensity`` (FLOP per byte: on CPUs efficiency follows the token count) or
  ``log10_flops`` (on GPUs it follows the size), whichever fits the rows better. It is made
  non-decreasing in the axis (more reuse or more work never lowers the attainable rate).
* ``gemv``, ``attention_decode`` and ``memory`` rows by their memory curve (``log10_bytes``).

The other side of a row must not bind. For GEMM rows that is the ``gemv`` curve (a GEMM's
memory side in the roofline): it is raised to the upper envelope of the bandwidth that GEMMs
which are memory-bound by the datasheet actually reach (the bandwidth ceiling). The same
holds for prefill rows and the ``attention_decode`` curve. Knots are bin medians over the axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetsim.errors import CalibrationError, EstimateError
from hetsim.perf.roofline import DevicePerf, OpCost, log10_size
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec, CurveAxis, CurveKind, EfficiencyCurve
from hetsim.specs.common import SecondsQ
from hetsim.specs.hardware import DType

REQUIRED_COLUMNS = ("kind", "dtype", "flops", "bytes", "seconds")
SCHEMA_VERSION = 1
_COMPUTE_EXPLAINED = {CurveKind.GEMM: CurveKind.GEMM, CurveKind.ATTENTION_PREFILL: CurveKind.ATTENTION_PREFILL}
_MEMORY_EXPLAINED = {CurveKind.GEMV: CurveKind.GEMV, CurveKind.ATTENTION_DECODE: CurveKind.ATTENTION_DECODE,
                     CurveKind.MEMORY: CurveKind.MEMORY}
_MEMORY_CEILING = {CurveKind.GEMM: CurveKind.GEMV, CurveKind.ATTENTION_PREFILL: CurveKind.ATTENTION_DECODE}
_MIN_EFFICIENCY, _MAX_EFFICIENCY = 1e-4, 1.5  # the range EfficiencyCurve accepts


@dataclass(frozen=True)
class FitOptions:
    """Knobs of the fit.

    Attributes:
        bin_decades: width of the bins (in decades of the axis) whose medians become knots.
        overhead_share: a row whose work at full peak takes less than this share of its
            measured time is overhead-dominated: it sets the launch overhead, not a curve.
        ceiling_margin: headroom on a bandwidth ceiling, so that ops slightly faster than
            the fitted rows are not priced by it.
        explained_share: a GEMM row whose time the bandwidth ceiling predicts to within this
            share is memory-bound; the compute curve is fitted on the others.
    """

    bin_decades: float = 0.15
    overhead_share: float = 0.02
    ceiling_margin: float = 1.0
    explained_share: float = 0.97


@dataclass(frozen=True)
class Row:
    """One validated measurement."""

    kind: CurveKind
    dtype: DType
    flops: float
    nbytes: float
    seconds: float


def parse_rows(rows: Any) -> list[Row]:
    """Validate measurement rows (a DataFrame or an iterable of mappings) into ``Row``s.

    Raises:
        CalibrationError: a missing column, an unknown kind or dtype, or a bad number,
            naming the row index and the column.
    """
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    if not records:
        raise CalibrationError("measurements: expected at least one row, got none")
    return [_parse_row(index, record) for index, record in enumerate(records)]


def _parse_row(index: int, record: Mapping[str, Any]) -> Row:
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise CalibrationError(f"measurements row {index}: missing column(s) {', '.join(missing)}")
    try:
        kind, dtype = CurveKind(record["kind"]), DType(record["dtype"])
    except ValueError:
        raise CalibrationError(
            f"measurements row {index}: field 'kind'/'dtype': expected one of {[k.value for k in CurveKind]} and "
            f"{[d.value for d in DType]}, got {record['kind']!r}/{record['dtype']!r}"
        ) from None
    values = {}
    for column, low in (("flops", 0.0), ("bytes", 0.0), ("seconds", None)):
        value = _number(record[column])
        if value is None or (low is not None and value < low) or (low is None and value <= 0):
            expected = "a finite number > 0" if low is None else "a finite number >= 0"
            raise CalibrationError(
                f"measurements row {index}: field '{column}': expected {expected}, got {record[column]!r}"
            )
        values[column] = value
    if values["flops"] == 0 and values["bytes"] == 0:
        raise CalibrationError(f"measurements row {index}: fields 'flops'/'bytes': expected some work, got both 0")
    return Row(kind, dtype, values["flops"], values["bytes"], values["seconds"])


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def ideal_seconds(row: Row, perf: DevicePerf) -> float:
    """Time of the row's work at 100% of both datasheet peaks (no overhead)."""
    return max(row.flops / perf.peak_flops(row.dtype), row.nbytes / perf.device.memory_bandwidth_bytes_per_s)


def fit_overhead(rows: Sequence[Row], perf: DevicePerf, options: FitOptions = FitOptions()) -> float:
    """Launch overhead: the median time of the overhead-dominated rows (tiny ops).

    Only tiny rows within 10x of the fastest one count, so that a tiny op slowed down by a
    busy machine does not inflate it. Without tiny rows, the smallest gap between a measured
    time and its ideal time (never negative): the overhead cannot exceed what any op leaves.
    """
    ideal = np.array([ideal_seconds(row, perf) for row in rows])
    seconds = np.array([row.seconds for row in rows])
    tiny = seconds[ideal < options.overhead_share * seconds]
    if tiny.size:
        return float(np.median(tiny[tiny <= 10 * tiny.min()]))
    return float(max(0.0, np.min(seconds - ideal)))


def usable_rows(rows: Sequence[Row], overhead: float) -> list[Row]:
    """Rows a curve can be fitted from: a fitted kind, and at least half the time is work."""
    return [r for r in rows if _is_fitted(r.kind) and r.seconds - overhead >= 0.5 * r.seconds]


def fit_calibration(
    rows: Any, device_perf: DevicePerf, provenance: CalibrationProvenance, options: FitOptions = FitOptions()
) -> CalibrationSpec:
    """Fit launch overhead and efficiency curves of ``device_perf.device`` from ``rows``.

    ``device_perf`` supplies the peaks (its own calibration, if any, is ignored). Rows of
    kinds without a curve to fit (collectives) are left out and counted in ``fit_summary``.

    Raises:
        CalibrationError: invalid rows, or no row that any curve can be fitted from.
    """
    parsed = parse_rows(rows)
    perf = DevicePerf(device_perf.device)
    overhead = fit_overhead(parsed, perf, options)
    usable = usable_rows(parsed, overhead)
    if not usable:
        raise CalibrationError("measurements: no row long enough to fit a curve (all are overhead-dominated)")
    curves = _fit_curves(usable, perf, overhead, options)
    spec = CalibrationSpec(
        schema_version=SCHEMA_VERSION,
        device=perf.device.name,
        provenance=provenance,
        launch_overhead=SecondsQ(value=round(overhead * 1e6, 4), unit="us"),
        curves=tuple(curves),
    )
    summary = fit_summary(usable, DevicePerf(perf.device, spec))
    summary["rows_skipped"] = float(len(parsed) - len(usable))
    return spec.model_copy(update={"fit_summary": summary})


def _is_fitted(kind: CurveKind) -> bool:
    return kind in _COMPUTE_EXPLAINED or kind in _MEMORY_EXPLAINED


def _fit_curves(rows: Sequence[Row], perf: DevicePerf, overhead: float, options: FitOptions) -> list[EfficiencyCurve]:
    context = (perf, overhead, options)
    ceilings = _groups([r for r in rows if _is_memory_bound(r, perf)], _MEMORY_CEILING)
    explained = _groups(rows, _MEMORY_EXPLAINED)
    memory = {key: _memory_curve(key[0], key[1], explained.get(key, []), ceilings.get(key, []), context)
              for key in sorted(set(explained) | set(ceilings), key=str)}
    compute = []
    for (kind, dtype), group in _groups(rows, _COMPUTE_EXPLAINED).items():
        ceiling = memory.get((_MEMORY_CEILING[kind], dtype))
        # Rows the bandwidth ceiling already accounts for are memory-bound: compute must only
        # not bind them. If every row is, the compute curve is fitted on all (a lower bound).
        free = [r for r in group if ceiling is None or not _ceiling_explains(r, ceiling, context)]
        compute.append(_compute_curve(kind, dtype, free or group, perf, overhead, options))
    return [*compute, *memory.values()]


def _ceiling_explains(row: Row, ceiling: EfficiencyCurve, context: tuple[DevicePerf, float, FitOptions]) -> bool:
    """True when the memory side alone predicts the row's time (within ``explained_share``)."""
    perf, overhead, options = context
    efficiency = ceiling.at(float(log10_size(ceiling.axis, row.flops, row.nbytes)))
    memory_s = row.nbytes / (perf.device.memory_bandwidth_bytes_per_s * efficiency) + overhead
    return memory_s >= options.explained_share * row.seconds


CurveKey = tuple[CurveKind, str | None]


def _groups(rows: Iterable[Row], curve_of: Mapping[CurveKind, CurveKind]) -> dict[CurveKey, list[Row]]:
    groups: dict[CurveKey, list[Row]] = {}
    for row in rows:
        if row.kind in curve_of:
            curve_kind = curve_of[row.kind]
            dtype = None if curve_kind == CurveKind.MEMORY else row.dtype.value
            groups.setdefault((curve_kind, dtype), []).append(row)
    return groups


def _is_memory_bound(row: Row, perf: DevicePerf) -> bool:
    return row.flops / perf.peak_flops(row.dtype) < row.nbytes / perf.device.memory_bandwidth_bytes_per_s


def implied_efficiency(row: Row, perf: DevicePerf, overhead: float, side: str) -> float:
    """Fraction of the ``side`` ('compute' or 'memory') peak the row reached, net of overhead."""
    busy = max(row.seconds - overhead, 1e-12)
    if side == "compute":
        return row.flops / (perf.peak_flops(row.dtype) * busy)
    return row.nbytes / (perf.device.memory_bandwidth_bytes_per_s * busy)


def _compute_curve(kind: CurveKind, dtype: str | None, rows: Sequence[Row], perf: DevicePerf, overhead: float,
                   options: FitOptions) -> EfficiencyCurve:
    """The better of an intensity-axis and a FLOP-axis monotone curve for these rows."""
    effs = np.array([implied_efficiency(r, perf, overhead, "compute") for r in rows])
    best: tuple[float, EfficiencyCurve] | None = None
    for axis in (CurveAxis.LOG10_INTENSITY, CurveAxis.LOG10_FLOPS):
        xs = _axis_values(rows, axis)
        knots = _monotone(_bin_knots(xs, effs, options.bin_decades))
        curve = EfficiencyCurve(kind=kind, dtype=dtype, axis=axis, points=knots)
        error = float(np.median(np.abs(effs / np.interp(xs, *zip(*knots, strict=True)) - 1.0)))
        if best is None or error < best[0] - 1e-9:
            best = (error, curve)
    assert best is not None  # two candidates were tried
    return best[1]


def _memory_curve(kind: CurveKind, dtype: str | None, explained: Sequence[Row], ceiling: Sequence[Row],
                  context: tuple[DevicePerf, float, FitOptions]) -> EfficiencyCurve:
    """Bin medians of the rows this curve explains, raised to the ceiling rows' envelope."""
    perf, overhead, options = context
    rows = [*explained, *ceiling]
    xs = _axis_values(rows, CurveAxis.LOG10_BYTES)
    effs = np.array([implied_efficiency(r, perf, overhead, "memory") for r in rows])
    is_ceiling = np.arange(len(rows)) >= len(explained)
    knots = []
    for members in _bins(xs, options.bin_decades):
        explained_effs, ceiling_effs = effs[members & ~is_ceiling], effs[members & is_ceiling]
        level = max(np.median(explained_effs) if explained_effs.size else 0.0,
                    options.ceiling_margin * ceiling_effs.max() if ceiling_effs.size else 0.0)
        knots.append((float(np.median(xs[members])), float(level)))
    return EfficiencyCurve(kind=kind, dtype=dtype, axis=CurveAxis.LOG10_BYTES, points=_clean(knots))


def _axis_values(rows: Sequence[Row], axis: CurveAxis) -> np.ndarray:
    flops = np.array([r.flops for r in rows])
    nbytes = np.array([r.nbytes for r in rows])
    return np.asarray(log10_size(axis, flops, nbytes), dtype=float)


def _bins(xs: np.ndarray, width: float) -> list[np.ndarray]:
    """Boolean masks of consecutive bins: each opens at its smallest x and spans ``width``."""
    order = np.sort(xs)
    masks, start = [], None
    for x in order:
        if start is None or x >= start + width:
            start = x
            masks.append((xs >= start) & (xs < start + width))
    return masks


def _bin_knots(xs: np.ndarray, ys: np.ndarray, width: float) -> list[tuple[float, float, int]]:
    """(median x, median y, count) per bin."""
    return [(float(np.median(xs[m])), float(np.median(ys[m])), int(m.sum())) for m in _bins(xs, width)]


def _monotone(knots: list[tuple[float, float, int]]) -> tuple[tuple[float, float], ...]:
    """Non-decreasing fit of the knot values (pool-adjacent-violators, weighted by count)."""
    blocks: list[list[float]] = []  # [weighted sum, weight, first index, last index]
    for index, (_, y, count) in enumerate(knots):
        blocks.append([y * count, float(count), index, index])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, weight, _, last = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += weight
            blocks[-1][3] = last
    values = [0.0] * len(knots)
    for total, weight, first, last in blocks:
        for index in range(int(first), int(last) + 1):
            values[index] = total / weight
    return _clean([(x, v) for (x, _, _), v in zip(knots, values, strict=True)])


def _clean(knots: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Rounded, clamped into the accepted range, strictly increasing in x."""
    cleaned: list[tuple[float, float]] = []
    for x, y in knots:
        point = (round(float(x), 4), float(f"{min(max(y, _MIN_EFFICIENCY), _MAX_EFFICIENCY):.4g}"))
        if cleaned and point[0] <= cleaned[-1][0]:
            continue
        cleaned.append(point)
    return tuple(cleaned)


def predict_seconds(rows: Any, device_perf: DevicePerf) -> np.ndarray:
    """Predicted time of every row, by ``DevicePerf.op_time`` (the one evaluator)."""
    parsed = rows if isinstance(rows, list) and rows and isinstance(rows[0], Row) else parse_rows(rows)
    try:
        return np.array([device_perf.op_time(OpCost(r.kind.value, r.kind, r.flops, r.nbytes, r.dtype)).seconds
                         for r in parsed])
    except EstimateError as exc:
        raise CalibrationError(f"measurements: cannot price a row on {device_perf.device.name!r}: {exc}") from None


def error_summary(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Median, p90 and max of |predicted / measured - 1|, the median signed error, the count."""
    measured, predicted = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    if measured.size == 0:
        return {"count": 0.0, "median_abs_error": math.nan, "p90_abs_error": math.nan,
                "max_abs_error": math.nan, "median_error": math.nan}
    error = predicted / measured - 1.0
    return {"count": float(error.size), "median_abs_error": float(np.median(np.abs(error))),
            "p90_abs_error": float(np.percentile(np.abs(error), 90)), "max_abs_error": float(np.abs(error).max()),
            "median_error": float(np.median(error))}


def fit_summary(rows: Sequence[Row], calibrated: DevicePerf) -> dict[str, float]:
    """``<kind>.<dtype>.{count,median_abs_error,p90_abs_error}`` and ``all.*`` for the rows."""
    predicted = predict_seconds(list(rows), calibrated)
    measured = np.array([r.seconds for r in rows])
    summary: dict[str, float] = {}
    keys = np.array([f"{r.kind.value}.{r.dtype.value}" for r in rows])
    for key in [*sorted(set(keys)), "all"]:
        mask = np.ones(len(rows), dtype=bool) if key == "all" else keys == key
        stats = error_summary(measured[mask], predicted[mask])
        for stat in ("count", "median_abs_error", "p90_abs_error"):
            summary[f"{key}.{stat}"] = round(stats[stat], 4)
    return summary


def stream_bandwidth(rows: Any) -> tuple[float, str]:
    """Best sustained bandwidth of the ``memory`` rows, and how it was obtained.

    Used as the memory bandwidth of a host profile, where no datasheet number exists.
    """
    memory = [r for r in parse_rows(rows) if r.kind == CurveKind.MEMORY]
    if not memory:
        raise CalibrationError("measurements: no 'memory' rows, cannot measure the stream bandwidth")
    best = max(memory, key=lambda r: r.nbytes / r.seconds)
    return best.nbytes / best.seconds, (f"best of {len(memory)} memory-stream rows (copy and read over cold buffers), "
                                        f"{best.nbytes / 2**20:.0f} MiB moved")


def fit_report(rows: Any, calibrated: DevicePerf) -> list[dict[str, Any]]:
    """Per fitted curve (kind, dtype): rows, knots, axis, median implied efficiency, errors.

    The implied efficiency is that of the side that explains the rows (compute for GEMM and
    prefill, memory for the others), net of the launch overhead. Overhead-dominated rows
    (probes) are left out, as in the fit.
    """
    if calibrated.calibration is None:
        raise CalibrationError("fit report: expected a calibrated device, got one without calibration")
    overhead = calibrated.launch_overhead_s
    usable = usable_rows(parse_rows(rows), overhead)
    peaks = DevicePerf(calibrated.device)
    report = []
    for (kind, dtype), group in sorted({**_groups(usable, _COMPUTE_EXPLAINED), **_groups(usable, _MEMORY_EXPLAINED)}
                                       .items(), key=lambda item: str(item[0])):
        side = "compute" if kind in _COMPUTE_EXPLAINED.values() else "memory"
        curve = calibrated.calibration.curve(kind, dtype)
        stats = error_summary([r.seconds for r in group], predict_seconds(group, calibrated))
        report.append({
            "kind": kind.value, "dtype": dtype or "any", "rows": len(group), "side": side,
            "axis": curve.axis.value if curve else "", "knots": len(curve.points) if curve else 0,
            "median_efficiency": float(np.median([implied_efficiency(r, peaks, overhead, side) for r in group])),
            "median_abs_error": stats["median_abs_error"], "p90_abs_error": stats["p90_abs_error"],
        })
    return report
