"""Calibration files: measured efficiency curves of one device, with provenance.

A calibration file lives at ``hardware_profiles/calibration/<device>.yaml`` (and its raw
measurements beside it as ``<device>.csv``). It never changes a datasheet number; it says
what fraction of the datasheet peak an operation of a given shape reaches.

Curves are piecewise-linear in ``log10`` of a size variable and clamped at both ends:

* ``gemm`` (per dtype): compute efficiency vs ``log10_flops`` of the GEMM;
* ``memory``: bandwidth efficiency vs ``log10_bytes`` moved by a streaming op;
* ``gemv`` (per dtype): bandwidth efficiency vs ``log10_bytes`` of a memory-bound GEMM/GEMV
  (decode projections, batched decode attention);
* ``attention_decode`` / ``attention_prefill`` (optional): as ``gemv`` / ``gemm`` for attention.

A compute curve may instead use ``log10_intensity`` (FLOP per byte, the roofline's x axis):
``hetsim bench`` picks, per curve, the axis that fits its measurements better (on CPUs the
GEMM efficiency follows the token count, i.e. the intensity, not the FLOP count).

A device without a file uses ``DEFAULT_EFFICIENCY`` and every estimate says so.
"""

from __future__ import annotations

import itertools
from enum import StrEnum

from pydantic import Field, model_validator

from hetsim.specs.common import FrozenModel, SecondsQ


class CurveKind(StrEnum):
    GEMM = "gemm"
    GEMV = "gemv"
    MEMORY = "memory"
    ATTENTION_DECODE = "attention_decode"
    ATTENTION_PREFILL = "attention_prefill"
    COLLECTIVE = "collective"


class CurveAxis(StrEnum):
    LOG10_FLOPS = "log10_flops"
    LOG10_BYTES = "log10_bytes"
    # FLOP per byte moved (the roofline's x axis). On CPUs a GEMM's efficiency follows the
    # token count M far more than its size, and intensity ~ 2M / bytes-per-element says M.
    LOG10_INTENSITY = "log10_intensity"


class EfficiencyCurve(FrozenModel):
    """Efficiency (fraction of peak, 0-1] at points of a log10 size axis."""

    kind: CurveKind
    dtype: str | None = Field(default=None, description="numeric format; None applies to all")
    axis: CurveAxis
    points: tuple[tuple[float, float], ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_points(self) -> EfficiencyCurve:
        xs = [x for x, _ in self.points]
        if xs != sorted(xs) or len(set(xs)) != len(xs):
            raise ValueError(f"points: expected strictly increasing x values, got {xs}")
        for x, eff in self.points:
            if not 0 < eff <= 1.5:
                # >1 is allowed a little: a datasheet peak can be conservative (turbo clocks, caches).
                raise ValueError(f"points: expected efficiency in (0, 1.5], got {eff} at x={x}")
        return self

    def at(self, x: float) -> float:
        """Efficiency at ``x`` (log10 size), interpolated linearly and clamped at the ends."""
        points = self.points
        if x <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return points[-1][1]


class CalibrationProvenance(FrozenModel):
    """Where and how the measurements were taken."""

    kind: str = Field(description="'measured' for benchmark runs on real hardware")
    device_description: str
    host: str = ""
    date: str
    tool: str = Field(description="what produced the file, e.g. 'hetsim bench 0.1.0 (torch 2.13.0)'")
    versions: dict[str, str] = {}
    threads: int | None = None
    notes: str = ""


class CalibrationSpec(FrozenModel):
    """Measured efficiency curves and fixed overheads of one device."""

    schema_version: int
    device: str = Field(description="name of the accelerator profile this calibrates")
    provenance: CalibrationProvenance
    launch_overhead: SecondsQ = Field(description="fixed cost per operation (kernel launch, dispatch)")
    curves: tuple[EfficiencyCurve, ...]
    fit_summary: dict[str, float] = {}

    def curve(self, kind: CurveKind, dtype: str | None = None) -> EfficiencyCurve | None:
        """The curve for ``kind`` and ``dtype`` (falling back to a dtype-agnostic one)."""
        exact = [c for c in self.curves if c.kind == kind and c.dtype == dtype]
        generic = [c for c in self.curves if c.kind == kind and c.dtype is None]
        return (exact or generic or [None])[0]


DEFAULT_EFFICIENCY = {
    # Documented defaults for devices without a calibration file. Chosen from published
    # measurements of mature stacks: cuBLAS reaches about 70-80% of dense peak on large
    # bf16 GEMMs on H100 (stas00 ml-engineering "MAMF" tables: 792 of 989 TFLOP/s), and
    # decode kernels about 80% of HBM bandwidth (vLLM/FlashInfer reports). Small ops do worse;
    # the defaults are deliberately flat, and every estimate using them is labelled 'default'.
    CurveKind.GEMM: 0.75,
    CurveKind.GEMV: 0.80,
    CurveKind.MEMORY: 0.85,
    CurveKind.ATTENTION_DECODE: 0.75,
    CurveKind.ATTENTION_PREFILL: 0.60,
    CurveKind.COLLECTIVE: 0.80,
}
DEFAULT_LAUNCH_OVERHEAD_S = 5e-6
"""Per-op fixed overhead without calibration: typical CUDA kernel launch + framework dispatch."""
