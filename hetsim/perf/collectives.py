"""Time of the collectives tensor and pipeline parallelism need, on the replica's links.

An all-reduce costs a fixed latency plus ``2 (p - 1) / p`` of the buffer over the link's
bandwidth at a calibrated bus-bandwidth efficiency (``hetsim.perf.kernels.all_reduce_seconds``;
nccl-tests' bus-bandwidth convention). Both terms come from the device's kernel model: fitted
to measured all-reduces where a calibration exists, else documented defaults. Small buffers,
as in decode, pay the latency: tens of microseconds with NCCL, a few with an engine's custom
all-reduce under CUDA graphs, which is why the stack a calibration names matters. Pipeline
stages exchange activations point to point over the link's own latency and bandwidth.

A group larger than a node's scale-up domain all-reduces hierarchically, as NCCL does on
rail-optimised clusters (one NIC per GPU): an all-reduce inside each node over the scale-up
link, then an all-reduce of each GPU's ``1 / domain`` share across the nodes over its own NIC,
so the nodes' NICs carry the inter-node traffic together rather than one NIC all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hetsim.errors import EstimateError
from hetsim.perf.kernels import all_reduce_seconds
from hetsim.specs.calibration import CollectiveKernels
from hetsim.specs.hardware import AcceleratorSpec, InterconnectSpec


@dataclass(frozen=True, slots=True)
class Fabric:
    """The link a group of ranks talks over: per-direction bandwidth and latency, and the
    collective terms of the device's kernel model."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    collective: CollectiveKernels
    inner: Fabric | None = None  # a scale-out fabric's scale-up fabric inside each node
    domain: int = 1  # devices per node on ``inner``

    @classmethod
    def of(cls, spec: InterconnectSpec, collective: CollectiveKernels) -> Fabric:
        return cls(spec.link, spec.bandwidth.si, spec.latency.si, collective)


def fabric_for_group(device: AcceleratorSpec, ranks: int, collective: CollectiveKernels) -> Fabric | None:
    """The fabric a group of ``ranks`` devices uses: scale-up if it fits the domain, else scale-out."""
    if ranks <= 1:
        return None
    up, out = device.scale_up, device.scale_out
    if up is not None and ranks <= up.domain_size:
        return Fabric.of(up, collective)
    if out is not None:
        outer = Fabric.of(out, collective)
        if up is not None and up.domain_size > 1 and ranks % up.domain_size == 0:
            return replace(outer, inner=Fabric.of(up, collective), domain=up.domain_size)
        return outer
    if up is not None:
        raise EstimateError(
            f"device {device.name!r}: {ranks} ranks exceed its scale-up domain of {up.domain_size} "
            "and it has no scale-out fabric in its profile"
        )
    raise EstimateError(
        f"device {device.name!r}: tensor/pipeline parallelism needs a scale-up or scale-out link; the profile has none"
    )


def all_reduce_s(buffer_bytes: float, ranks: int, fabric: Fabric | None) -> float:
    """Time of one all-reduce of ``buffer_bytes`` over ``ranks`` ranks."""
    return float(all_reduce_times(buffer_bytes, ranks, fabric))


def all_reduce_times(buffer_bytes: Any, ranks: int, fabric: Fabric | None) -> np.ndarray:
    """``all_reduce_s`` of each buffer size in an array (a step pricer meets thousands of token
    counts; one array pass prices them alike, to the bit)."""
    buffer_bytes = np.asarray(buffer_bytes, dtype=float)
    if ranks <= 1:
        return np.zeros_like(buffer_bytes)
    assert fabric is not None
    if fabric.inner is not None and ranks > fabric.domain:  # hierarchical: in the node, then across nodes
        nodes = ranks // fabric.domain
        flat = replace(fabric, inner=None, domain=1)
        return all_reduce_times(buffer_bytes, fabric.domain, fabric.inner) + all_reduce_times(
            buffer_bytes / fabric.domain, nodes, flat
        )
    if fabric.collective.per_step_latency:  # the flat roofline's ring-or-one-shot form
        rate = fabric.bandwidth_bytes_per_s * fabric.collective.efficiency
        steps = 2 * (ranks - 1)
        ring = steps * fabric.latency_s + steps / ranks * buffer_bytes / rate
        one_shot = 2 * fabric.latency_s + (ranks - 1) * buffer_bytes / rate
        return np.where(buffer_bytes > 0, np.minimum(ring, one_shot), 0.0)
    return np.asarray(all_reduce_seconds(fabric.collective, buffer_bytes, ranks, fabric.bandwidth_bytes_per_s))


def point_to_point_s(buffer_bytes: float, fabric: Fabric | None) -> float:
    """Time to send ``buffer_bytes`` from one rank to the next."""
    return float(point_to_point_times(buffer_bytes, fabric))


def point_to_point_times(buffer_bytes: Any, fabric: Fabric | None) -> np.ndarray:
    """``point_to_point_s`` of each buffer size in an array."""
    buffer_bytes = np.asarray(buffer_bytes, dtype=float)
    if fabric is None:
        return np.zeros_like(buffer_bytes)
    rate = fabric.bandwidth_bytes_per_s * fabric.collective.efficiency
    return np.where(buffer_bytes > 0, fabric.latency_s + buffer_bytes / rate, 0.0)
