"""Describe the local CPU as a device profile: detected topology and derived peaks.

A laptop, a cloud VM and a server differ, so the host's profile is built on the spot from
``/proc/cpuinfo``, ``os.sched_getaffinity`` and sysfs instead of being looked up. Compute
peaks are *derived* (usable cores x clock x FLOP/cycle of the widest vector or matrix unit
the flags advertise); memory bandwidth has no datasheet for a VM slice, so the profile uses
the bandwidth measured by the benchmark and labels it ``measured:``.

``detect_host`` reads the machine; everything else is pure so it can be tested on any text.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetsim.specs.hardware import SCHEMA_VERSION

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
L3_SIZE = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")


@dataclass(frozen=True)
class HostInfo:
    """What the benchmark needs to know about the local CPU."""

    model_name: str
    vendor: str
    flags: frozenset[str]
    usable_cpus: int
    clock_ghz: float
    memory_bytes: float
    l3_bytes: float
    is_virtual: bool
    hostname: str = ""


@dataclass(frozen=True)
class IsaClass:
    """The widest math units a flag set implies, as dense FLOP per cycle per core.

    ``reference`` is a server part of the class (name, cores, TDP W, price USD) whose per-core
    share gives a VM slice an (assumed) power draw and purchase price for TCO: a slice has
    neither of its own.
    """

    tag: str
    year: int
    description: str
    flop_per_cycle: dict[str, int]
    reference: tuple[str, int, float, float] = ("generic server CPU", 32, 200.0, 4000.0)


IDLE_FRACTION = 0.25  # the idle rule of every server CPU profile in hardware_profiles/
_SPR = ("Xeon Platinum 8480+ (hardware_profiles/accelerators/xeon-8480.yaml)", 56, 350.0, 11000.0)
_GNR = ("Xeon 6980P (hardware_profiles/accelerators/xeon-6980p.yaml)", 128, 500.0, 12460.0)
VCPU_HOUR_USD = (0.0446, "AWS EC2 c7i.large on-demand, us-east-1 Linux: USD 0.08925/h for 2 vCPUs")


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of ``/proc/cpuinfo`` as a key -> value dict."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def isa_class(flags: frozenset[str], vendor: str) -> IsaClass:
    """Classify a CPU by its vector/matrix flags and give its FLOP/cycle/core per dtype.

    Intel server cores with AVX-512 have two 512-bit FMA ports: 2 x 16 lanes x 2 = 64 fp32
    FLOP/cycle. AMX (Sapphire Rapids and later) does 1024 bf16 and 2048 int8 ops/cycle/core
    (Intel: 8480+ = 56 cores x 2.0 GHz x 1024 = 114.7 TFLOP/s bf16). AMD's AVX-512 (Zen 4)
    runs on 256-bit datapaths, so it counts half.
    """
    if "amx_bf16" in flags:
        rates = {"fp32": 64, "bf16": 1024, "int8": 2048 if "amx_int8" in flags else 256}
        if "amx_fp16" in flags:
            return IsaClass("gnr", 2024, "AMX with fp16, Granite-Rapids class", {**rates, "fp16": 1024}, _GNR)
        if "avx512_fp16" in flags:
            rates["fp16"] = 128
        return IsaClass("spr", 2023, "AVX-512 + AMX bf16/int8, Sapphire-Rapids class", rates, _SPR)
    if "avx512f" in flags:
        scale = 1 if vendor == "amd" else 2
        rates = {"fp32": 32 * scale}
        if "avx512_bf16" in flags:
            rates["bf16"] = 64 * scale
        if "avx512_vnni" in flags:
            rates["int8"] = 128 * scale
        return IsaClass("avx512", 2017, "AVX-512", rates)
    if "avx2" in flags and "fma" in flags:
        return IsaClass("avx2", 2013, "AVX2 + FMA, 2 x 256-bit FMA", {"fp32": 32})
    return IsaClass("sse", 2008, "SSE only, no FMA", {"fp32": 8})


def model_slug(model_name: str) -> str:
    """'Intel(R) Xeon(R) Processor' -> 'xeon'; 'AMD EPYC 7B13 64-Core Processor' -> 'epyc-7b13'."""
    text = re.sub(r"\((R|TM|tm|r)\)", " ", model_name)
    text = re.sub(r"@.*$|\b\d+-core\b", " ", text, flags=re.IGNORECASE)
    words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    dropped = {"intel", "amd", "processor", "cpu", "genuineintel", "authenticamd"}
    words = [w for w in words if w not in dropped]
    return "-".join(words[:3]) or "cpu"


def host_profile_name(info: HostInfo) -> str:
    """Profile name of the host, e.g. ``host-xeon-spr-2vcpu``."""
    unit = "vcpu" if info.is_virtual else "c"
    return f"host-{model_slug(info.model_name)}-{isa_class(info.flags, info.vendor).tag}-{info.usable_cpus}{unit}"


def host_profile(info: HostInfo, bandwidth_bytes_per_s: float, bandwidth_note: str, date: str) -> dict[str, Any]:
    """A YAML-ready accelerator profile (validates as ``AcceleratorSpec``) for the host."""
    isa = isa_class(info.flags, info.vendor)
    cores, ghz = info.usable_cpus, info.clock_ghz
    compute = {
        dtype: {
            "value": round(cores * ghz * per_cycle, 3),
            "unit": "GFLOP/s",
            "source": f"derived: {cores} usable cores x {ghz:g} GHz x {per_cycle} FLOP/cycle/core ({isa.description})",
        }
        for dtype, per_cycle in isa.flop_per_cycle.items()
    }
    where = f"{'VM' if info.is_virtual else 'host'} {info.hostname or 'unknown'}"
    return {
        "schema_version": SCHEMA_VERSION,
        "name": host_profile_name(info),
        "display_name": f"{info.model_name} ({cores} {'vCPU VM' if info.is_virtual else 'cores'}, measured host)",
        "vendor": info.vendor,
        "kind": "cpu",
        "year": isa.year,
        "sources": {"host": f"measured: /proc/cpuinfo and sched_getaffinity on {where}, {date}"},
        "compute": compute,
        "memory": _memory(info, bandwidth_bytes_per_s, bandwidth_note),
        "cpu": {"cores": cores, "base_clock_ghz": ghz},
        "power": _power(cores, isa),
        "price": _price(info, isa),
        "notes": (
            f"MEASURED HOST PROFILE of a {'sandbox VM' if info.is_virtual else 'machine'}, written by `hetsim bench` "
            f"on {date}; it describes only the machine it was measured on. Peaks are derived "
            f"(cores x clock x FLOP/cycle, turbo and AVX-licence clocks not modelled); memory bandwidth is "
            f"measured, not a datasheet number. Last-level cache {info.l3_bytes / 2**20:.0f} MiB."
        ),
    }


def _memory(info: HostInfo, bandwidth_bytes_per_s: float, bandwidth_note: str) -> dict[str, Any]:
    return {
        "capacity": {"value": round(info.memory_bytes / 2**30, 2), "unit": "GiB",
                     "source": "measured: /proc/meminfo MemTotal"},
        "bandwidth": {"value": round(bandwidth_bytes_per_s / 1e9, 2), "unit": "GB/s",
                      "source": f"measured: {bandwidth_note} (no datasheet number exists for a VM slice)"},
    }


def _power(cores: int, isa: IsaClass) -> dict[str, Any]:
    part, part_cores, tdp_w, _ = isa.reference
    tdp = round(cores * tdp_w / part_cores, 2)
    return {
        "tdp": {"value": tdp, "unit": "W",
                "source": f"assumed: {cores}/{part_cores} of the {tdp_w:g} W TDP of a {part} (a VM slice has no TDP)"},
        "idle": {"value": round(IDLE_FRACTION * tdp, 3), "unit": "W",
                 "source": f"assumed: {IDLE_FRACTION:.0%} of TDP (rule for every server CPU profile)"},
    }


def _price(info: HostInfo, isa: IsaClass) -> dict[str, Any]:
    part, part_cores, _, usd = isa.reference
    price: dict[str, Any] = {"purchase": {
        "value": round(info.usable_cpus * usd / part_cores, 2), "unit": "USD",
        "source": f"assumed: {info.usable_cpus}/{part_cores} of the USD {usd:g} price of a {part}"}}
    if info.is_virtual:
        rate, where = VCPU_HOUR_USD
        price["rental"] = {"value": round(info.usable_cpus * rate, 4), "unit": "USD/h",
                           "source": f"assumed: {info.usable_cpus} vCPUs at a cloud list price ({where})"}
    return price


def detect_host() -> HostInfo:
    """Read the local CPU's model, flags, usable cores, clock, memory and cache sizes."""
    fields = parse_cpuinfo(_read(CPUINFO))
    flags = frozenset(fields.get("flags", "").split())
    vendor_id = fields.get("vendor_id", "")
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor_id, vendor_id.lower() or "unknown")
    return HostInfo(
        model_name=fields.get("model name", "unknown CPU"),
        vendor=vendor,
        flags=flags,
        usable_cpus=len(os.sched_getaffinity(0)),
        clock_ghz=round(float(fields.get("cpu MHz", "0") or 0) / 1000.0, 3) or 1.0,
        memory_bytes=_meminfo_total(_read(MEMINFO)),
        l3_bytes=_cache_bytes(_read(L3_SIZE)),
        is_virtual="hypervisor" in flags,
        hostname=socket.gethostname(),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _meminfo_total(text: str) -> float:
    match = re.search(r"MemTotal:\s+(\d+)\s*kB", text)
    return float(match.group(1)) * 1024 if match else 0.0


def _cache_bytes(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)\s*", text)
    if not match:
        return 32 * 2**20  # unknown: assume a 32 MiB last-level cache (rotation pools stay larger)
    return float(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)]
