"""Hardware catalog questions: list devices, show one, with every number's source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hetsim.io.catalog import load_catalog
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.common import SourcedDocument, iter_sourced
from hetsim.specs.hardware import AcceleratorSpec, DType


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
