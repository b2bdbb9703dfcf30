"""Planning for the performance model's measured error.

A calibration carries the signed error of its whole-step predictions on held-out public
measurements (``error_band``: p10, p50, p90 of predicted/measured - 1); a device without one
uses ``DEFAULT_ERROR_BAND``, the datasheet defaults' own error on every measured serving step
(``benchmarks/fidelity_public.py``). To size a plan for the q-th percentile of real step times,
every predicted time is multiplied by that percentile of measured/predicted = 1 / (1 + error),
which is the (100 - q)-th percentile of the error.
"""

from __future__ import annotations

from collections.abc import Mapping

from hetsim.errors import EstimateError
from hetsim.specs.calibration import CalibrationSpec

# The datasheet defaults (with the default engine overhead, ``DEFAULT_ENGINE``) against the
# Splitwise paper's measured prefill and decode steps of Llama-2-70B and BLOOM-176B on DGX-A100
# and DGX-H100 (vLLM, 2023): 268 steps, held out (the defaults are medians of op-level fits and an
# engine overhead from other sources). The defaults predict steps 27% faster at the median.
DEFAULT_ERROR_BAND = {"p10": -0.4936, "p50": -0.2722, "p90": -0.1256}
DEFAULT_ERROR_BAND_SOURCE = "datasheet defaults vs Splitwise's measured steps (benchmarks/fidelity_public.py)"

SIZING = ("nominal", "p10", "p50", "p90")
"""What a plan can be sized for: the model as is, or a percentile of real step times."""
_ERROR_KEY = {"p10": "p90", "p50": "p50", "p90": "p10"}


def error_band_of(calibration: CalibrationSpec | None) -> tuple[Mapping[str, float], str]:
    """The whole-step error band that applies to a device, and where it comes from."""
    if calibration is not None and calibration.error_band:
        return calibration.error_band, f"calibration ({calibration.stack})"
    return DEFAULT_ERROR_BAND, DEFAULT_ERROR_BAND_SOURCE


def step_time_factor(calibration: CalibrationSpec | None, sizing: str) -> float:
    """What to multiply predicted step times by to size for ``sizing`` (1 for 'nominal')."""
    if sizing not in SIZING:
        raise EstimateError(f"step-time sizing: expected one of {', '.join(SIZING)}, got {sizing!r}")
    if sizing == "nominal":
        return 1.0
    band, _ = error_band_of(calibration)
    error = band.get(_ERROR_KEY[sizing])
    if error is None or not error > -1.0:
        raise EstimateError(f"error_band: expected {_ERROR_KEY[sizing]} above -1, got {error!r}")
    return 1.0 / (1.0 + error)
