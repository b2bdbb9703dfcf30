"""Power and energy of serving, from a device profile's power figures and a throughput.

The power model is the one the TCO and the simulator use: a device draws
``idle + utilisation x (TDP - idle)`` watts, and the facility draws that times the preset's PUE.
Energy per token is facility watts over tokens per second; energy per request is facility watts
times the seconds the devices spend on it, shared among the requests they serve at once.
A figure the profile cannot give (no TDP, or no idle power where the utilisation needs it) is NaN
with the missing field named, never a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetsim.errors import EstimateError
from hetsim.specs.hardware import AcceleratorSpec


@dataclass(frozen=True, slots=True)
class OperatingPower:
    """Watts of one device at ``utilization``: its own draw and the facility's (x ``pue``).

    Attributes:
        device_w: idle + utilization x (TDP - idle); NaN when ``missing`` names a field.
        facility_w: ``device_w`` x ``pue``, what the site draws for the device (cooling included).
        utilization: the busy share the draw is taken at (1 = full load, i.e. TDP).
        pue: the facility's power usage effectiveness.
        tdp_w: the profile's TDP, NaN when it has none.
        idle_w: the profile's idle power, NaN when it has none.
        missing: the profile field (``power.tdp`` or ``power.idle``) whose absence leaves the
            draw unknown, or None.
    """

    device_w: float
    facility_w: float
    utilization: float
    pue: float
    tdp_w: float
    idle_w: float
    missing: str | None


def operating_power(device: AcceleratorSpec, utilization: float, pue: float) -> OperatingPower:
    """``device``'s draw at ``utilization`` (idle + utilization x (TDP - idle), as the TCO bills
    it) and the facility's at ``pue``. At full utilisation the idle figure cancels, so only TDP is
    needed; below it both are, and either missing makes the draw NaN, the field named."""
    if not 0.0 <= utilization <= 1.0:
        raise EstimateError(f"utilization: expected 0..1, got {utilization}")
    if pue < 1.0:
        raise EstimateError(f"pue: expected >= 1, got {pue}")
    tdp = device.tdp_w
    idle = device.power.idle.si if device.power.idle is not None else None
    missing = "power.tdp" if tdp is None else ("power.idle" if idle is None and utilization < 1.0 else None)
    if missing is not None or tdp is None:
        watts = math.nan
    else:
        base = tdp if idle is None else idle  # idle unknown only at utilisation 1, where it cancels
        watts = base + utilization * max(tdp - base, 0.0)
    return OperatingPower(
        device_w=watts,
        facility_w=watts * pue,
        utilization=utilization,
        pue=pue,
        tdp_w=math.nan if tdp is None else tdp,
        idle_w=math.nan if idle is None else idle,
        missing=missing,
    )


def joules_per_token(watts: float, tokens_per_s: float) -> float:
    """Joules per token for hardware drawing ``watts`` while producing ``tokens_per_s``
    (NaN watts, an unknown draw, give NaN)."""
    if tokens_per_s <= 0:
        raise EstimateError(f"throughput: expected tokens/s > 0, got {tokens_per_s}")
    return watts / tokens_per_s


def joules_per_request(watts: float, seconds: float, batch: int) -> float:
    """Joules per request for hardware drawing ``watts`` for ``seconds`` while serving ``batch``
    requests together: the batch shares the energy equally."""
    if batch < 1:
        raise EstimateError(f"batch: expected >= 1, got {batch}")
    if seconds < 0:
        raise EstimateError(f"seconds: expected >= 0, got {seconds}")
    return watts * seconds / batch
