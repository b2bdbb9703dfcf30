"""Roofline time of one operation on one device: max(compute, memory) plus a fixed overhead.

Peaks come from the datasheet (``AcceleratorSpec``); the achievable fraction of each peak
comes from a calibration file when the device has one, else from documented defaults.
Every estimate carries its bound and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from hetsim.errors import EstimateError
from hetsim.perf.kernels import (
    default_kernels,
    gemm_seconds,
    kernel_seconds,
    kernel_seconds_scalar,
    saturating_efficiency,
)
from hetsim.specs.calibration import (
    DEFAULT_EFFICIENCY,
    DEFAULT_ENGINE,
    DEFAULT_ENGINE_SOURCE,
    DEFAULT_LAUNCH_OVERHEAD_S,
    CalibrationSpec,
    CurveAxis,
    CurveKind,
    EngineOverheads,
    KernelClass,
    KernelModel,
    gemm_kernels,
)
from hetsim.specs.hardware import AcceleratorSpec, DType


class Bound(StrEnum):
    COMPUTE = "compute"
    MEMORY = "memory"
    NETWORK = "network"
    OVERHEAD = "overhead"


class Provenance(StrEnum):
    """Where the efficiency behind an estimate came from."""

    DATASHEET = "datasheet"  # peak x documented default efficiency (no calibration file)
    CALIBRATED = "calibrated"  # peak x efficiency measured on this device
    MEASURED = "measured"  # the time itself was measured


@dataclass(frozen=True, slots=True)
class OpCost:
    """Work of one operation on one device.

    Attributes:
        name: what the op is (for breakdowns), e.g. 'qkv_proj'.
        kind: which efficiency curves apply (gemm, gemv, memory, attention_*).
        flops: floating-point (or integer) operations executed on this device.
        bytes: bytes moved to and from device memory.
        dtype: numeric format of the math (selects the peak).
        count: how many identical ops (e.g. layers); time scales by it.
        shape: a GEMM's (m, n, k), which tile and wave quantisation need; None otherwise.
        groups: problems of that shape one grouped GEMM runs at once (an MoE layer's experts).
    """

    name: str
    kind: CurveKind
    flops: float
    bytes: float
    dtype: DType
    count: int = 1
    shape: tuple[Any, Any, Any] | None = None
    groups: Any = 1


@dataclass(frozen=True, slots=True)
class Estimate:
    """Predicted time with its dominant bound and provenance."""

    seconds: float
    bound: Bound
    provenance: Provenance


# Which curve prices each side of the roofline for an op kind. A matmul (GEMM or GEMV) takes
# its compute efficiency from the 'gemm' curve and its memory efficiency from the 'gemv'
# curve, so one op kind covers prefill (compute-bound) and decode (memory-bound) shapes.
_COMPUTE_CURVE = {
    CurveKind.GEMM: CurveKind.GEMM,
    CurveKind.GEMV: CurveKind.GEMM,
    CurveKind.MEMORY: CurveKind.GEMM,
    CurveKind.ATTENTION_PREFILL: CurveKind.ATTENTION_PREFILL,
    CurveKind.ATTENTION_DECODE: CurveKind.ATTENTION_PREFILL,
    CurveKind.COLLECTIVE: CurveKind.GEMM,
}
_MEMORY_CURVE = {
    CurveKind.GEMM: CurveKind.GEMV,
    CurveKind.GEMV: CurveKind.GEMV,
    CurveKind.MEMORY: CurveKind.MEMORY,
    CurveKind.ATTENTION_PREFILL: CurveKind.ATTENTION_DECODE,
    CurveKind.ATTENTION_DECODE: CurveKind.ATTENTION_DECODE,
    CurveKind.COLLECTIVE: CurveKind.MEMORY,
}
# With a calibration file that lacks a curve, fall back to the nearest measured one.
_CALIBRATED_FALLBACK = {
    CurveKind.GEMM: CurveKind.GEMM,
    CurveKind.GEMV: CurveKind.MEMORY,
    CurveKind.MEMORY: CurveKind.MEMORY,
    CurveKind.ATTENTION_DECODE: CurveKind.GEMV,
    CurveKind.ATTENTION_PREFILL: CurveKind.GEMM,
    CurveKind.COLLECTIVE: CurveKind.COLLECTIVE,
}
# A format without a native rate runs at the next wider format's rate (e.g. fp8 weights on an
# A100 are up-cast to fp16): the order is what frameworks do in practice.
_FALLBACK: dict[DType, tuple[DType, ...]] = {
    DType.FP4: (DType.FP4, DType.FP8, DType.BF16, DType.FP16, DType.FP32),
    DType.FP8: (DType.FP8, DType.BF16, DType.FP16, DType.FP32),
    DType.INT8: (DType.INT8, DType.FP8, DType.BF16, DType.FP16, DType.FP32),
    DType.BF16: (DType.BF16, DType.FP16, DType.FP32),
    DType.FP16: (DType.FP16, DType.BF16, DType.FP32),
    DType.TF32: (DType.TF32, DType.FP32),
    DType.FP32: (DType.FP32, DType.TF32),
}


def log10_size(axis: CurveAxis, flops: Any, nbytes: Any) -> Any:
    """The x value of a curve for ops of ``flops`` and ``nbytes`` (floats or numpy arrays).

    Sizes are floored at 1 (a curve is clamped below its first point anyway). An op that
    moves no bytes has unbounded intensity: it reads the curve's last point.
    """
    if axis == CurveAxis.LOG10_FLOPS:
        return np.log10(np.maximum(flops, 1.0))
    if axis == CurveAxis.LOG10_BYTES:
        return np.log10(np.maximum(nbytes, 1.0))
    return np.log10(np.maximum(flops, 1e-300)) - np.log10(np.maximum(nbytes, 1e-300))


# Which kernel class of the analytical model prices an op kind without calibration curves.
_KERNEL_CLASS = {
    CurveKind.GEMM: "gemm",
    CurveKind.GEMV: "gemm",
    CurveKind.MEMORY: "elementwise",
    CurveKind.ATTENTION_PREFILL: "attention_prefill",
    CurveKind.ATTENTION_DECODE: "attention_decode",
    CurveKind.COLLECTIVE: "elementwise",
}


# Curve kinds that describe bandwidth efficiency (the others describe compute efficiency).
_BANDWIDTH_KINDS = frozenset({CurveKind.GEMV, CurveKind.MEMORY, CurveKind.ATTENTION_DECODE})


def model_label(
    calibration: CalibrationSpec | None,
    default_engine: EngineOverheads | None = DEFAULT_ENGINE,
    kernels_only_engine: EngineOverheads | None = None,
) -> str:
    """'calibrated (<stack>)', or 'datasheet default', each with the default engine overhead it
    adds where it adds one."""
    if calibration is not None:
        label = f"calibrated ({calibration.stack})"
        added = kernels_only_engine if calibration.engine is None else None
    else:
        label, added = "datasheet default", default_engine
    if added is None:
        return label
    return f"{label} (+ default engine overhead {added.step_overhead_s * 1e3:g} ms/step from {DEFAULT_ENGINE_SOURCE})"


@dataclass(frozen=True)
class DevicePerf:
    """A device together with its calibration (if any): answers 'how long does this op take'.

    Two calibrations exist: measured efficiency curves (``hetsim bench`` on this machine; they
    take precedence, op kind by op kind) and a kernel model (``hetsim.perf.kernels``) fitted
    to public measurements. A device with neither uses the kernel model's documented defaults.
    """

    device: AcceleratorSpec
    calibration: CalibrationSpec | None = None
    time_scale: float = 1.0  # every time this device prices is multiplied by it (planning for model error)
    # the serving engine's overheads where the device has no calibration (None: kernels only)
    default_engine: EngineOverheads | None = DEFAULT_ENGINE
    # the serving engine's overheads where the calibration measured kernels but no engine (None:
    # its kernels only, as fits that put an engine on top need; ``serving_perf`` sets the default)
    kernels_only_engine: EngineOverheads | None = None

    def __post_init__(self) -> None:
        if not (self.time_scale > 0 and np.isfinite(self.time_scale)):
            raise EstimateError(f"time_scale: expected a positive finite factor, got {self.time_scale}")

    @property
    def provenance(self) -> Provenance:
        return Provenance.DATASHEET if self.calibration is None else Provenance.CALIBRATED

    @property
    def stack(self) -> str:
        """What the numbers describe: the calibration's serving stack, or 'datasheet default'."""
        return "datasheet default" if self.calibration is None else self.calibration.stack

    @property
    def engine(self) -> EngineOverheads | None:
        """The serving engine's overheads: the calibration's, ``kernels_only_engine`` where it
        measured none, and ``default_engine`` without a calibration."""
        if self.calibration is None:
            return self.default_engine
        return self.kernels_only_engine if self.calibration.engine is None else self.calibration.engine

    @property
    def model_label(self) -> str:
        """What a device's step times describe, for every output that names it."""
        return model_label(self.calibration, self.default_engine, self.kernels_only_engine)

    @property
    def kernels(self) -> KernelModel:
        """The kernel model's parameters: the calibration's, else the documented defaults."""
        cache = self.__dict__
        if "_kernels" not in cache:
            fitted = None if self.calibration is None else self.calibration.kernels
            cache["_kernels"] = fitted or default_kernels(self.device.vendor)
        return cache["_kernels"]

    @property
    def compute_units(self) -> int | None:
        units = self.device.compute_units
        return None if units is None else units.count

    @property
    def launch_overhead_s(self) -> float:
        return DEFAULT_LAUNCH_OVERHEAD_S if self.calibration is None else self.calibration.launch_overhead.si

    def _curves(self) -> bool:
        """Whether measured efficiency curves (not the kernel model) price this device's ops."""
        return self.calibration is not None and bool(self.calibration.curves)

    def _kernel_class(self, kind: CurveKind) -> KernelClass:
        return getattr(self.kernels, _KERNEL_CLASS[kind])

    def peak_flops(self, dtype: DType) -> float:
        """Peak in ``dtype``; a format without native support runs at the next wider one."""
        cache = self.__dict__.setdefault("_peak_cache", {})
        if dtype not in cache:
            cache[dtype] = self._peak_flops(DType(dtype))
        return cache[dtype]

    def _peak_flops(self, dtype: DType) -> float:
        for candidate in _FALLBACK[dtype]:
            peak = self.device.peak_flops(candidate)
            if peak:
                return peak
        raise EstimateError(f"device {self.device.name!r} has no compute peak for {dtype} or any wider format")

    def efficiency(self, kind: CurveKind, dtype: DType, flops: float, nbytes: float) -> float:
        """Fraction of peak an op of this size reaches (calibrated curve, else the kernel model:
        ``kind`` as a compute curve for GEMM and attention, a bandwidth one for GEMV and memory)."""
        if self._curves():
            assert self.calibration is not None
            dtype_name = DType(dtype).value
            curve = self.calibration.curve(kind, dtype_name) or self.calibration.curve(
                _CALIBRATED_FALLBACK[kind], dtype_name
            )
            if curve is not None:
                return curve.at(float(log10_size(curve.axis, flops, nbytes)))
            return DEFAULT_EFFICIENCY[kind]
        params = self._kernel_class(kind)
        if kind in _BANDWIDTH_KINDS:
            return params.memory_efficiency
        return float(saturating_efficiency(params, flops, nbytes))

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """The device's memory bandwidth (cached: the spec converts units on every access)."""
        cache = self.__dict__
        if "_bandwidth" not in cache:
            cache["_bandwidth"] = self.device.memory_bandwidth_bytes_per_s
        return cache["_bandwidth"]

    def flat_rates(self, kind: CurveKind, dtype: DType) -> tuple[float, float, float] | None:
        """(achieved FLOP/s, achieved bytes/s, floor s) of ``kind`` ops when their efficiencies
        do not depend on the op's size, so their time is affine in flops and bytes; None with
        calibration curves or a saturating kernel class.

        ``seconds`` divides by exactly these products; ``hetsim.perf.decode_run`` prices runs
        of decode steps in closed form from them.
        """
        if self._curves():
            return None
        cache = self.__dict__.setdefault("_flat_cache", {})
        key = (kind, dtype)
        if key not in cache:
            params = self._kernel_class(kind)
            scale = self.time_scale
            cache[key] = (
                None
                if params.intensity_half
                else (
                    self.peak_flops(dtype) * params.efficiency / scale,
                    self.bandwidth_bytes_per_s * params.memory_efficiency / scale,
                    params.floor_s * scale,
                )
            )
        return cache[key]

    def seconds(self, kind: CurveKind, dtype: DType, flops: float, nbytes: float, count: int = 1) -> float:
        """Time of ``count`` ops of this size: the roofline every estimate uses (scalar, fast)."""
        compute_s = memory_s = 0.0
        rates = self.flat_rates(kind, dtype)
        if rates is not None:  # the hot path: constant efficiencies, cached products
            compute_rate, memory_rate, overhead_s = rates
            if flops:
                compute_s = flops / compute_rate
            if nbytes:
                memory_s = nbytes / memory_rate
            return count * ((compute_s if compute_s >= memory_s else memory_s) + overhead_s)
        if not self._curves():  # a saturating kernel class (the simulator's scalar path)
            params = self._kernel_class(kind)
            seconds = kernel_seconds_scalar(params, flops, nbytes, self.peak_flops(dtype), self.bandwidth_bytes_per_s)
            return self.time_scale * count * seconds
        if flops:
            compute_s = flops / (self.peak_flops(dtype) * self.efficiency(_COMPUTE_CURVE[kind], dtype, flops, nbytes))
        if nbytes:
            memory_s = nbytes / (
                self.bandwidth_bytes_per_s * self.efficiency(_MEMORY_CURVE[kind], dtype, flops, nbytes)
            )
        return self.time_scale * count * ((compute_s if compute_s >= memory_s else memory_s) + self.launch_overhead_s)

    def sequence_s(self, kind: CurveKind) -> float:
        """Seconds per sequence an attention kernel of ``kind`` adds (0 under calibration curves)."""
        return 0.0 if self._curves() else self.time_scale * self._kernel_class(kind).sequence_s

    def _floor_s(self, kind: CurveKind) -> float:
        return self.launch_overhead_s if self._curves() else self._kernel_class(kind).floor_s

    def op_time(self, op: OpCost) -> Estimate:
        """Time of ``op`` (times its count) on this device, with its bound and provenance."""
        if op.flops < 0 or op.bytes < 0:
            raise EstimateError(f"op {op.name!r}: expected non-negative flops and bytes, got {op.flops}, {op.bytes}")
        seconds = float(self.cost_times(op)) / op.count
        floor_s = self._floor_s(op.kind)
        memory_efficiency = (
            self.efficiency(_MEMORY_CURVE[op.kind], op.dtype, op.flops, op.bytes)
            if self._curves()
            else self._kernel_class(op.kind).memory_efficiency
        )
        memory_s = op.bytes / (self.bandwidth_bytes_per_s * memory_efficiency) if op.bytes else 0.0
        busy_s = seconds - floor_s
        bound = Bound.MEMORY if memory_s >= busy_s * (1 - 1e-9) and op.bytes else Bound.COMPUTE
        if floor_s > busy_s:
            bound = Bound.OVERHEAD
        return Estimate(op.count * seconds, bound, self.provenance)

    def efficiencies(self, kind: CurveKind, dtype: DType, flops: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """Vectorised ``efficiency`` over arrays of op sizes."""
        if self._curves():
            assert self.calibration is not None
            dtype_name = DType(dtype).value
            curve = self.calibration.curve(kind, dtype_name) or self.calibration.curve(
                _CALIBRATED_FALLBACK[kind], dtype_name
            )
            if curve is not None:
                xs, ys = zip(*curve.points, strict=True)
                return np.interp(log10_size(curve.axis, flops, nbytes), xs, ys)
            return np.full(np.shape(flops), DEFAULT_EFFICIENCY[kind])
        params = self._kernel_class(kind)
        if kind in _BANDWIDTH_KINDS:
            return np.full(np.shape(flops), params.memory_efficiency)
        return np.asarray(saturating_efficiency(params, np.asarray(flops, float), np.asarray(nbytes, float)))

    def op_times(
        self, kind: CurveKind, dtype: DType, flops: np.ndarray | float, nbytes: np.ndarray | float, count: int = 1
    ) -> np.ndarray:
        """Vectorised ``seconds`` for many ops of one kind (same formula)."""
        flops = np.asarray(flops, dtype=float)
        nbytes = np.asarray(nbytes, dtype=float)
        peak = self.peak_flops(dtype)
        bandwidth = self.bandwidth_bytes_per_s
        if not self._curves():
            seconds = kernel_seconds(self._kernel_class(kind), flops, nbytes, peak, bandwidth)
            return self.time_scale * count * np.asarray(seconds)
        compute = np.where(
            flops > 0, flops / (peak * self.efficiencies(_COMPUTE_CURVE[kind], dtype, flops, nbytes)), 0.0
        )
        memory = np.where(
            nbytes > 0, nbytes / (bandwidth * self.efficiencies(_MEMORY_CURVE[kind], dtype, flops, nbytes)), 0.0
        )
        return self.time_scale * count * (np.maximum(compute, memory) + self.launch_overhead_s)

    def gemm_times(
        self, m: Any, n: Any, k: Any, dtype: DType, nbytes: Any, count: int = 1, groups: Any = 1
    ) -> np.ndarray:
        """Vectorised time of ``count`` ``(m x k) @ (k x n)`` GEMMs (each a grouped GEMM of
        ``groups`` such problems) moving ``nbytes``: tile and wave quantisation under the kernel
        model, the GEMM curve under calibration curves."""
        if self._curves():
            flops = 2.0 * np.asarray(m, float) * np.asarray(n, float) * np.asarray(k, float) * np.asarray(groups, float)
            return self.op_times(CurveKind.GEMM, dtype, flops, nbytes, count)
        params = gemm_kernels(self.kernels, DType(dtype).value)
        units = self.compute_units if params.quantise else None
        seconds = gemm_seconds(
            params, m, n, k, nbytes, self.peak_flops(dtype), self.bandwidth_bytes_per_s, units, groups
        )
        return self.time_scale * count * np.asarray(seconds)

    def cost_times(self, op: OpCost) -> np.ndarray:
        """Vectorised time of ``op`` (its flops, bytes or shape may be arrays), times its count."""
        if op.shape is not None and op.kind == CurveKind.GEMM:
            m, n, k = op.shape
            return self.gemm_times(m, n, k, op.dtype, op.bytes, op.count, op.groups)
        return self.op_times(op.kind, op.dtype, op.flops, op.bytes, op.count)


def serving_perf(device: AcceleratorSpec, calibration: CalibrationSpec | None, time_scale: float = 1.0) -> DevicePerf:
    """``device`` as plans, simulations and estimates price a served model: a calibration that
    measured kernels but no serving engine (AIConfigurator's kernel rows: ``vllm==0.14.0``,
    ``vllm==0.24.0``) gets the default engine's overheads like a device without one, since its
    kernels alone were 39% faster than whole served runs at the median (H100, LLM-Inference-Bench's
    vLLM 0.5-era generations; with the default engine: -1%, benchmarks/fidelity_public.py)."""
    return DevicePerf(device, calibration, time_scale, kernels_only_engine=DEFAULT_ENGINE)


def serving_label(calibration: CalibrationSpec | None) -> str:
    """``serving_perf``'s ``model_label`` for a calibration (or none)."""
    return model_label(calibration, DEFAULT_ENGINE, DEFAULT_ENGINE)
