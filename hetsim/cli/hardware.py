"""``hetsim hardware list|show``: the device catalog with sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.api import hardware as api
from hetsim.cli.output import JsonOption, fmt, print_json, print_table

app = typer.Typer(help="Hardware profiles: accelerators, CPUs, links and nodes.", no_args_is_help=True)

ProfileSetOption = Annotated[
    str, typer.Option("--set", help="Profile set: 'datasheet' (vendor numbers) or 'paper' (paper Table 5 as printed).")
]
ProfilesOption = Annotated[
    Path | None, typer.Option("--profiles", help="Folder of hardware profiles (default: the shipped ones).")
]


@app.command("list")
def list_devices(
    profile_set: ProfileSetOption = "datasheet", profiles: ProfilesOption = None, json: JsonOption = False
) -> None:
    """List every device with its headline numbers."""
    catalog = api.catalog(profile_set, profiles)
    devices = [api.describe_device(d) for d in catalog.accelerators.values()]
    if json:
        print_json(
            {
                "profile_set": profile_set,
                "devices": devices,
                "nodes": sorted(catalog.nodes),
                "links": sorted(catalog.links),
            }
        )
        return
    rows = [
        (
            d["name"],
            d["vendor"],
            d["kind"],
            fmt(d["peak_flops"].get("bf16", d["peak_flops"].get("fp16", 0)) / 1e12),
            fmt(d["peak_flops"].get("fp8", 0) / 1e12 or None),
            fmt(d["memory_bytes"] / 1e9),
            fmt(d["memory_bandwidth_bytes_per_s"] / 1e12),
            fmt(d["tdp_w"]),
            fmt(d["purchase_usd"]),
            fmt(d["rental_usd_per_h"]),
        )
        for d in devices
    ]
    columns = (
        "device",
        "vendor",
        "kind",
        "bf16/fp16 TFLOP/s",
        "fp8 TFLOP/s",
        "memory GB",
        "TB/s",
        "TDP W",
        "price USD",
        "rent USD/h",
    )
    print_table(
        f"{len(rows)} devices ({profile_set})",
        columns,
        rows,
        caption="dense peaks from datasheets; `hetsim hardware show NAME` gives sources",
    )


@app.command("show")
def show_device(
    name: Annotated[str, typer.Argument(help="Device name or alias, e.g. h100-sxm")],
    profile_set: ProfileSetOption = "datasheet",
    profiles: ProfilesOption = None,
    json: JsonOption = False,
) -> None:
    """Show one device: every number with its unit and source."""
    device = api.catalog(profile_set, profiles).accelerator(name)
    described = api.describe_device(device)
    if json:
        print_json(described)
        return
    rows = [(path, q["value"], q["unit"], q["citation"]) for path, q in described["numbers"].items()]
    print_table(
        f"{device.display_name} ({device.name})", ("field", "value", "unit", "source"), rows, caption=device.notes
    )
