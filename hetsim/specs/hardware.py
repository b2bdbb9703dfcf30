"""Hardware specs: accelerators (GPUs, NPUs, TPUs, CPUs), links and node SKUs.

Numbers are datasheet values with a source each; calibration lives apart
(see ``hetsim.specs.calibration``). All derived values are SI properties.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hetsim.specs.common import (
    FrozenModel,
    SourcedBandwidth,
    SourcedBytes,
    SourcedDocument,
    SourcedFlops,
    SourcedSeconds,
    SourcedUsd,
    SourcedUsdPerHour,
    SourcedWatts,
)

SCHEMA_VERSION = 1


class DType(StrEnum):
    """Numeric formats with their own peak rate; values are the YAML spellings."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    FP4 = "fp4"

    @property
    def bytes_per_element(self) -> float:
        """Storage size of one element (tf32 is stored as fp32)."""
        return {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}[self.value]


class DeviceKind(StrEnum):
    GPU = "gpu"
    ACCELERATOR = "accelerator"
    TPU = "tpu"
    CPU = "cpu"


class LinkKind(StrEnum):
    NVLINK = "nvlink"
    INFINITY_FABRIC = "infinity_fabric"
    PCIE = "pcie"
    INFINIBAND = "infiniband"
    ROCE = "roce"
    ETHERNET = "ethernet"
    ICI = "ici"


class BandwidthScope(StrEnum):
    """What a link profile's bandwidth counts: a device's aggregate over the fabric (NVLink,
    Infinity Fabric, PCIe x16, ICI) or one port (a NIC: InfiniBand, RoCE, Ethernet)."""

    DEVICE = "device"
    PORT = "port"


class ComputeSpec(FrozenModel):
    """Dense peak throughput per numeric format; a missing format is not supported natively."""

    fp32: SourcedFlops | None = None
    tf32: SourcedFlops | None = None
    bf16: SourcedFlops | None = None
    fp16: SourcedFlops | None = None
    fp8: SourcedFlops | None = None
    int8: SourcedFlops | None = None
    fp4: SourcedFlops | None = None

    @model_validator(mode="after")
    def _some_rate(self) -> ComputeSpec:
        if all(getattr(self, d.value) is None for d in DType):
            raise ValueError("expected at least one dtype peak (fp32, tf32, bf16, fp16, fp8, int8, fp4), got none")
        return self


class MemorySpec(FrozenModel):
    capacity: SourcedBytes
    bandwidth: SourcedBandwidth
    l2_cache: SourcedBytes | None = Field(
        default=None, description="on-chip last-level cache: what a benchmark repeating one call keeps warm"
    )


class InterconnectSpec(FrozenModel):
    """One fabric a device attaches to: per-direction bandwidth per device, and latency."""

    link: str = Field(description="name of a link profile under hardware_profiles/links/")
    bandwidth: SourcedBandwidth
    latency: SourcedSeconds
    domain_size: int = Field(default=1, ge=1, description="devices reachable over this fabric (scale-up)")


class PowerSpec(FrozenModel):
    tdp: SourcedWatts | None = None
    idle: SourcedWatts | None = None


_AS_OF = re.compile(r"\d{4}-\d{2}(-\d{2})?")


class SpotPriceSpec(FrozenModel):
    """Interruptible (spot, preemptible) rental: its $/h, how long a node runs on average before
    the provider reclaims it, and when the price was read (spot prices move by the week)."""

    rental: SourcedUsdPerHour
    mean_time_to_interruption: SourcedSeconds = Field(description="mean run time before the provider reclaims a node")
    as_of: str = Field(description="when the price was read: YYYY-MM or YYYY-MM-DD")

    @field_validator("as_of", mode="before")
    @classmethod
    def _date(cls, value: object) -> str:
        value = value.isoformat() if hasattr(value, "isoformat") else value  # YAML reads 2026-03-01 as a date
        if not isinstance(value, str) or not _AS_OF.fullmatch(value):
            raise ValueError(f"expected a date YYYY-MM or YYYY-MM-DD, got {value!r}")
        return value


class PriceSpec(FrozenModel):
    """What a device costs: purchase, rental, or the operating $/h a source printed."""

    purchase: SourcedUsd | None = None
    rental: SourcedUsdPerHour | None = None
    operating: SourcedUsdPerHour | None = Field(
        default=None, description="a printed operating cost per hour (the paper's Table 5 column)"
    )
    spot: SpotPriceSpec | None = Field(default=None, description="interruptible rental, where a provider offers it")


class ComputeUnitsSpec(FrozenModel):
    """How many parallel compute units (NVIDIA SMs, AMD CUs) a device schedules GEMM tiles on:
    what tile and wave quantisation divide work by."""

    count: int = Field(ge=1)
    kind: str = Field(description="what one unit is: SM, CU")
    source: str
    compute_capability: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+$",
        description="CUDA compute capability (NVIDIA, developer.nvidia.com/cuda-gpus), e.g. '9.0': which kernels libraries dispatch",
    )


class CpuTopology(FrozenModel):
    cores: int = Field(ge=1)
    base_clock_ghz: float = Field(gt=0)


class AcceleratorSpec(SourcedDocument):
    """One device: a GPU, accelerator, TPU or server CPU (one socket)."""

    display_name: str
    vendor: str
    kind: DeviceKind
    year: int = Field(ge=1990, le=2100)
    compute: ComputeSpec
    memory: MemorySpec
    scale_up: InterconnectSpec | None = None
    scale_out: InterconnectSpec | None = None
    power: PowerSpec = PowerSpec()
    price: PriceSpec = PriceSpec()
    cpu: CpuTopology | None = None
    compute_units: ComputeUnitsSpec | None = Field(
        default=None, description="SMs or CUs (GPUs); without it GEMMs are priced without tile quantisation"
    )
    aliases: tuple[str, ...] = ()
    notes: str = ""

    def peak_flops(self, dtype: DType) -> float | None:
        """Dense peak FLOP/s in ``dtype``, or None when the device has no native rate for it."""
        quantity = getattr(self.compute, DType(dtype).value)
        return None if quantity is None else quantity.si

    @property
    def memory_bytes(self) -> float:
        return self.memory.capacity.si

    @property
    def memory_bandwidth_bytes_per_s(self) -> float:
        return self.memory.bandwidth.si

    @property
    def tdp_w(self) -> float | None:
        return None if self.power.tdp is None else self.power.tdp.si


class LinkSpec(SourcedDocument):
    """A link type: NVLink generation, PCIe generation, InfiniBand, RoCE, Ethernet."""

    display_name: str
    kind: LinkKind
    bandwidth: SourcedBandwidth = Field(description="per direction, per device or per port (bandwidth_per)")
    bandwidth_per: BandwidthScope = Field(description="device: a device's aggregate over the fabric; port: one NIC")
    latency: SourcedSeconds
    notes: str = ""


class DeviceCount(FrozenModel):
    device: str
    count: int = Field(ge=1)


class NicSpec(FrozenModel):
    link: str
    count: int = Field(ge=1)


class StorageSpec(FrozenModel):
    """A node's local storage, as far as loading model weights needs it."""

    read_bandwidth: SourcedBandwidth = Field(description="sequential read, all drives together")


class NodePowerSpec(FrozenModel):
    overhead: SourcedWatts = Field(description="host power beyond accelerators and CPUs (fans, NICs, drives)")


class NodeSpec(SourcedDocument):
    """A server SKU: accelerators and host CPUs by name and count, links, price and power."""

    display_name: str
    accelerators: DeviceCount | None = None
    host_cpus: DeviceCount
    host_memory: SourcedBytes
    scale_up_link: str | None = None
    nics: NicSpec | None = None
    storage: StorageSpec | None = Field(default=None, description="local drives (weights loaded from them when asked)")
    host_link: str | None = Field(
        default=None, description="link profile between host memory and one accelerator (PCIe); LoRA adapters cross it"
    )
    power: NodePowerSpec
    price: PriceSpec = PriceSpec()
    notes: str = ""


ProfileSet = Literal["datasheet", "paper"]
