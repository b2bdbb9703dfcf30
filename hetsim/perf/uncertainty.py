"""Planning for the performance model's measured error.

A calibration carries the signed error of its whole-step predictions on held-out public
measurements (``error_band``: p10, p50, p90 of predicted/measured - 1); a device without one
uses the datasheet defaults' own error on the newest public whole runs of its vendor's devices
under vLLM where a source measured that vendor's devices (``DEFAULT_ERROR_BANDS``), else the band over
every measured device (``DEFAULT_ERROR_BAND``). To size a plan for the q-th percentile of real
step times, every predicted time is multiplied by that percentile of measured/predicted =
1 / (1 + error), which is the (100 - q)-th percentile of the error.
"""

from __future__ import annotations

from collections.abc import Mapping

from hetsim.errors import EstimateError
from hetsim.specs.calibration import CalibrationSpec
from hetsim.specs.hardware import AcceleratorSpec, DeviceKind

# The datasheet defaults (with the default engine overhead, ``DEFAULT_ENGINE``) against the newest
# public whole batch generations of each vendor's devices under vLLM (``BAND_SOURCES`` in
# ``hetsim.api.calibrate_public``; benchmarks/fidelity_public.py, ``default_error_bands``), each
# device weighted equally; held out (the defaults are medians of op-level fits and an engine
# overhead from other sources). NVIDIA: LLM-Inference-Bench (vLLM 0.5.1-0.6.2, the engine era the
# defaults describe), A100-SXM4-40GB and H100 SXM, 384 generations. AMD: AMD's ROCm vLLM images of
# 2025 (vLLM 0.6.6, 0.8.5, 0.9.1), MI300X, 96 generations (LLM-Inference-Bench's 2024 ROCm runs,
# whose GEMMs ran at 5-6% of the peak, put the defaults at -58%: that software's, see README).
# Vendors no source measured get the band over all.
DEFAULT_ERROR_BANDS: dict[str, dict[str, float]] = {
    "nvidia": {"p10": -0.1681, "p50": 0.0561, "p90": 0.3107},
    "amd": {"p10": -0.261, "p50": 0.0371, "p90": 0.4304},
}
DEFAULT_ERROR_BAND = {"p10": -0.1987, "p50": 0.0486, "p90": 0.3424}
DEFAULT_ERROR_BAND_SOURCES = {
    "nvidia": "datasheet defaults vs LLM-Inference-Bench's vLLM 0.5-era whole generations (benchmarks/fidelity_public.py)",
    "amd": "datasheet defaults vs AMD's ROCm vLLM 0.6.6-0.9.1 whole generations (benchmarks/fidelity_public.py)",
}
DEFAULT_ERROR_BAND_SOURCE = (
    "datasheet defaults vs the newest public whole generations of each measured device, LLM-Inference-Bench's "
    "and AMD's ROCm vLLM tables (benchmarks/fidelity_public.py)"
)

SIZING = ("nominal", "p10", "p50", "p90")
"""What a plan can be sized for: the model as is, or a percentile of real step times."""
_ERROR_KEY = {"p10": "p90", "p50": "p50", "p90": "p10"}


def band_vendor(device: AcceleratorSpec) -> str | None:
    """The vendor whose measured band applies to ``device``: the bands measure vendors' GPU and
    accelerator serving stacks (CUDA, ROCm), which a CPU does not run, so a CPU (an AMD EPYC as
    an Intel Xeon) takes the band over every measured device."""
    return None if device.kind == DeviceKind.CPU else device.vendor


def error_band_of(calibration: CalibrationSpec | None, vendor: str | None = None) -> tuple[Mapping[str, float], str]:
    """The whole-step error band that applies to a device (of ``vendor``), and where it comes from."""
    if calibration is not None and calibration.error_band:
        return calibration.error_band, f"calibration ({calibration.stack})"
    if vendor in DEFAULT_ERROR_BANDS:
        return DEFAULT_ERROR_BANDS[vendor], f"{DEFAULT_ERROR_BAND_SOURCES[vendor]}, {vendor} devices"
    return DEFAULT_ERROR_BAND, f"{DEFAULT_ERROR_BAND_SOURCE}, every measured device"


def step_time_factor(calibration: CalibrationSpec | None, sizing: str, vendor: str | None = None) -> float:
    """What to multiply predicted step times by to size for ``sizing`` (1 for 'nominal')."""
    if sizing not in SIZING:
        raise EstimateError(f"step-time sizing: expected one of {', '.join(SIZING)}, got {sizing!r}")
    if sizing == "nominal":
        return 1.0
    band, _ = error_band_of(calibration, vendor)
    error = band.get(_ERROR_KEY[sizing])
    if error is None or not error > -1.0:
        raise EstimateError(f"error_band: expected {_ERROR_KEY[sizing]} above -1, got {error!r}")
    return 1.0 / (1.0 + error)
