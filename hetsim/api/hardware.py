"""Hardware catalog questions: list devices, node SKUs and link types, show one, with every number's source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hetsim.cost.tco import node_purchase_usd
from hetsim.errors import ProfileError
from hetsim.io.catalog import load_catalog
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.common import SourcedDocument, iter_sourced
from hetsim.specs.hardware import AcceleratorSpec, DeviceCount, DType, LinkSpec, NodeSpec


def catalog(profile_set: str = "datasheet", profiles: Path | None = None) -> HardwareCatalog:
    """Load the hardware catalog of ``profile_set``."""
    return load_catalog(profile_set, profiles)


def sourced_numbers(document: SourcedDocument) -> dict[str, dict[str, Any]]:
    """Every sourced number of a profile: path -> value, unit, SI value and resolved source."""
    return {
        path: {
            "value": quantity.value,
            "unit": quantity.unit,
            "si": quantity.si,
            "source": quantity.source,
            "citation": document.cite(quantity.source),
            **({"note": quantity.note} if quantity.note else {}),
        }
        for path, quantity in iter_sourced(document)
    }


def device_summary(device: AcceleratorSpec) -> dict[str, Any]:
    """The headline numbers of a device (SI units), for tables and JSON."""
    return {
        "name": device.name,
        "display_name": device.display_name,
        "vendor": device.vendor,
        "kind": device.kind.value,
        "year": device.year,
        "peak_flops": {d.value: device.peak_flops(d) for d in DType if device.peak_flops(d) is not None},
        "memory_bytes": device.memory_bytes,
        "memory_bandwidth_bytes_per_s": device.memory_bandwidth_bytes_per_s,
        "tdp_w": device.tdp_w,
        "purchase_usd": device.price.purchase.si if device.price.purchase else None,
        "rental_usd_per_h": device.price.rental.value if device.price.rental else None,
    }


def describe_device(device: AcceleratorSpec) -> dict[str, Any]:
    """Summary plus every sourced number and the source map."""
    return {**device_summary(device), "numbers": sourced_numbers(device), "sources": device.sources}


def _part(part: DeviceCount | None) -> dict[str, Any] | None:
    return None if part is None else {"device": part.device, "count": part.count}


def node_max_power_w(node: NodeSpec, hardware: HardwareCatalog) -> float | None:
    """The node at full load: every accelerator's and host CPU's TDP x count plus the node's
    overhead (fans, NICs, drives); None when a part's profile has no TDP."""
    parts = [node.host_cpus] + ([node.accelerators] if node.accelerators else [])
    tdps = [hardware.accelerators[p.device].tdp_w for p in parts]
    if any(tdp is None for tdp in tdps):
        return None
    return node.power.overhead.si + sum(tdp * p.count for tdp, p in zip(tdps, parts, strict=True))  # type: ignore[operator]


def _purchase_source(node: NodeSpec, hardware: HardwareCatalog) -> str | None:
    """Where a node's price comes from: its profile's source, or the sum of its parts' profile prices."""
    if node.price.purchase is not None:
        return node.cite(node.price.purchase.source)
    if node_purchase_usd(node, hardware.accelerators) is None:
        return None
    parts = [node.host_cpus] + ([node.accelerators] if node.accelerators else [])
    return "derived: sum of its parts' profile prices (" + ", ".join(f"{p.count} x {p.device}" for p in parts) + ")"


def node_summary(node: NodeSpec, hardware: HardwareCatalog) -> dict[str, Any]:
    """A node SKU's parts, price (with its source), rental and power, in SI units."""
    return {
        "name": node.name, "display_name": node.display_name, "accelerators": _part(node.accelerators),
        "host_cpus": _part(node.host_cpus), "host_memory_bytes": node.host_memory.si,
        "scale_up_link": node.scale_up_link, "nics": {"link": node.nics.link, "count": node.nics.count} if node.nics else None,
        "purchase_usd": node_purchase_usd(node, hardware.accelerators), "purchase_source": _purchase_source(node, hardware),
        "rental_usd_per_h": node.price.rental.value if node.price.rental else None,
        "rental_source": node.cite(node.price.rental.source) if node.price.rental else None,
        "max_power_w": node_max_power_w(node, hardware),
        "power_source": "accelerators' and host CPUs' TDP (device profiles) + overhead: " + node.cite(node.power.overhead.source),
    }  # fmt: skip


def link_summary(link: LinkSpec) -> dict[str, Any]:
    """A link type's bandwidth (as its profile states it, and in bytes/s) and latency, with sources."""
    return {
        "name": link.name, "display_name": link.display_name, "kind": link.kind.value,
        "bandwidth": {"value": link.bandwidth.value, "unit": link.bandwidth.unit},
        "bandwidth_bytes_per_s": link.bandwidth.si, "bandwidth_per": link.bandwidth_per.value,
        "bandwidth_source": link.cite(link.bandwidth.source), "latency_s": link.latency.si,
        "latency_source": link.cite(link.latency.source),
    }  # fmt: skip


PROFILE_KINDS = ("devices", "nodes", "links")


def describe_profile(hardware: HardwareCatalog, name: str) -> dict[str, Any]:
    """A device, node SKU or link type by name (tried in that order): its summary, every sourced
    number and the source map; ``profile_kind`` says which it is. An unknown name lists all three kinds."""
    key = name.lower()
    aliases = {alias.lower() for spec in hardware.accelerators.values() for alias in spec.aliases}
    if key in hardware.accelerators or key in aliases:
        device = hardware.accelerator(name)
        return {**describe_device(device), "profile_kind": "device", "notes": device.notes}
    if key in hardware.nodes:
        node = hardware.nodes[key]
        return {**node_summary(node, hardware), "profile_kind": "node", "numbers": sourced_numbers(node), "sources": node.sources,
                "notes": node.notes}  # fmt: skip
    if key in hardware.links:
        link = hardware.links[key]
        return {**link_summary(link), "profile_kind": "link", "numbers": sourced_numbers(link), "sources": link.sources,
                "notes": link.notes}  # fmt: skip
    known = "; ".join(f"{kind}: {', '.join(sorted(table))}" for kind, table in
                      (("devices", hardware.accelerators), ("nodes", hardware.nodes), ("links", hardware.links)) if table)  # fmt: skip
    raise ProfileError(f"unknown device, node or link {name!r}; expected one of {known}")
