"""Time of the collectives tensor and pipeline parallelism need, on the replica's links.

Ring all-reduce over p ranks moves 2(p-1)/p of the buffer per rank in 2(p-1) latency-bound
steps (Patarasuk & Yuan 2009; NCCL's ring algorithm). Small buffers, as in decode, use a
one-shot all-reduce instead (each rank reads every peer's buffer once, then reduces: vLLM's
custom all-reduce, NCCL's LL protocol): 2 latencies but (p-1) buffers moved. A server picks
the faster, so we do too. Pipeline stages exchange activations point to point.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetsim.errors import EstimateError
from hetsim.specs.calibration import DEFAULT_EFFICIENCY, CurveKind
from hetsim.specs.hardware import AcceleratorSpec, InterconnectSpec


@dataclass(frozen=True, slots=True)
class Fabric:
    """The link a group of ranks talks over: per-direction bandwidth, latency, efficiency."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    efficiency: float = DEFAULT_EFFICIENCY[CurveKind.COLLECTIVE]

    @classmethod
    def of(cls, spec: InterconnectSpec, efficiency: float | None = None) -> Fabric:
        return cls(
            spec.link, spec.bandwidth.si, spec.latency.si, efficiency or DEFAULT_EFFICIENCY[CurveKind.COLLECTIVE]
        )


def fabric_for_group(device: AcceleratorSpec, ranks: int) -> Fabric | None:
    """The fabric a group of ``ranks`` devices uses: scale-up if it fits the domain, else scale-out."""
    if ranks <= 1:
        return None
    up, out = device.scale_up, device.scale_out
    if up is not None and ranks <= up.domain_size:
        return Fabric.of(up)
    if out is not None:
        return Fabric.of(out)
    if up is not None:
        raise EstimateError(
            f"device {device.name!r}: {ranks} ranks exceed its scale-up domain of {up.domain_size} "
            "and it has no scale-out fabric in its profile"
        )
    raise EstimateError(
        f"device {device.name!r}: tensor/pipeline parallelism needs a scale-up or scale-out link; the profile has none"
    )


def ring_all_reduce_s(buffer_bytes: float, ranks: int, fabric: Fabric | None) -> float:
    """Time of one ring all-reduce of ``buffer_bytes`` over ``ranks`` ranks."""
    if ranks <= 1 or buffer_bytes <= 0:
        return 0.0
    assert fabric is not None
    rate = fabric.bandwidth_bytes_per_s * fabric.efficiency
    steps = 2 * (ranks - 1)
    ring = steps * fabric.latency_s + steps / ranks * buffer_bytes / rate
    one_shot = 2 * fabric.latency_s + (ranks - 1) * buffer_bytes / rate
    return min(ring, one_shot)


def point_to_point_s(buffer_bytes: float, fabric: Fabric | None) -> float:
    """Time to send ``buffer_bytes`` from one rank to the next."""
    if fabric is None or buffer_bytes <= 0:
        return 0.0
    return fabric.latency_s + buffer_bytes / (fabric.bandwidth_bytes_per_s * fabric.efficiency)
