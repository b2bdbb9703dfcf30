"""``hetsim hardware list|show``: devices, node SKUs and link types, with sources."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hetsim.api import hardware as api
from hetsim.cli.output import JsonOption, exact, print_json, print_table
from hetsim.units import format_duration, format_number, format_usd

app = typer.Typer(help="Hardware profiles: accelerators, CPUs, links and nodes.", no_args_is_help=True)

ProfileSetOption = Annotated[
    str, typer.Option("--set", help="Profile set: 'datasheet' (vendor numbers) or 'paper' (paper Table 5 as printed).")
]
ProfilesOption = Annotated[
    Path | None, typer.Option("--profiles", help="Folder of hardware profiles (default: the shipped ones).")
]


class Kind(StrEnum):
    ALL = "all"
    DEVICES = "devices"
    NODES = "nodes"
    LINKS = "links"


@app.command("list")
def list_profiles(
    profile_set: ProfileSetOption = "datasheet",
    profiles: ProfilesOption = None,
    kind: Annotated[
        Kind, typer.Option("--kind", help="What to list: devices, nodes (server SKUs), links, or all")
    ] = Kind.ALL,
    json: JsonOption = False,
) -> None:
    """List devices, node SKUs and link types with their headline numbers."""
    catalog = api.catalog(profile_set, profiles)
    wanted = api.PROFILE_KINDS if kind == Kind.ALL else (kind.value,)
    data: dict[str, Any] = {"profile_set": profile_set}
    if "devices" in wanted:
        data["devices"] = [api.describe_device(d) for d in catalog.accelerators.values()]
    if "nodes" in wanted:
        data["nodes"] = [api.node_summary(n, catalog) for n in catalog.nodes.values()]
    if "links" in wanted:
        data["links"] = [api.link_summary(link) for link in catalog.links.values()]
    if json:
        print_json(data)
        return
    if "devices" in wanted:
        _devices_table(data["devices"], profile_set)
    if "nodes" in wanted:
        _nodes_table(data["nodes"], profile_set)
    if "links" in wanted:
        _links_table(data["links"], profile_set)


def _plain(value: float | None, scale: float = 1.0) -> str:
    return "" if value is None or not value else format_number(value / scale)


def _devices_table(devices: list[dict[str, Any]], profile_set: str) -> None:
    rows = [
        (d["name"], d["vendor"], d["kind"], _plain(d["peak_flops"].get("bf16", d["peak_flops"].get("fp16", 0)), 1e12),
         _plain(d["peak_flops"].get("fp8"), 1e12), _plain(d["memory_bytes"], 1e9),
         _plain(d["memory_bandwidth_bytes_per_s"], 1e12), _plain(d["tdp_w"]),
         format_usd(d["purchase_usd"]) if d["purchase_usd"] is not None else "",
         f"{format_usd(d['rental_usd_per_h'])}/h" if d["rental_usd_per_h"] is not None else "")
        for d in devices
    ]  # fmt: skip
    columns = ("device", "vendor", "kind", "bf16/fp16 TFLOP/s", "fp8 TFLOP/s", "memory GB", "TB/s", "TDP W", "price",
               "rent")  # fmt: skip
    print_table(f"{len(rows)} devices ({profile_set})", columns, rows,
                caption="dense peaks from datasheets; `hetsim hardware show NAME` gives sources")  # fmt: skip


class _Notes:
    """Numbered footnotes for sources (one number per distinct text)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str | None) -> str:
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        return f" [{self.texts.index(text) + 1}]"

    def print(self) -> None:
        for index, text in enumerate(self.texts, start=1):
            typer.echo(f"[{index}] {text}")


def _parts(part: dict[str, Any] | None) -> str:
    return "" if part is None else f"{part['count']} x {part['device']}"


def _nodes_table(nodes: list[dict[str, Any]], profile_set: str) -> None:
    if not nodes:
        typer.echo(f"no node SKUs in the {profile_set} set")
        return
    notes = _Notes()
    rows = [
        (n["name"], _parts(n["accelerators"]), _parts(n["host_cpus"]),
         "" if n["purchase_usd"] is None else format_usd(n["purchase_usd"]) + notes.mark(n["purchase_source"]),
         "" if n["rental_usd_per_h"] is None else f"{format_usd(n['rental_usd_per_h'])}/h" + notes.mark(n["rental_source"]),
         "" if n["max_power_w"] is None else f"{n['max_power_w']:,.0f} W")
        for n in nodes
    ]  # fmt: skip
    print_table(f"{len(rows)} node SKUs ({profile_set})", ("node", "accelerators", "host CPUs", "price", "rent", "max power"),
                rows, caption="price: the profile's, else the sum of its parts'; max power: every part's TDP + the "
                "node's overhead; blank: not in the profiles; [n]: sources below")  # fmt: skip
    notes.print()


def _links_table(links: list[dict[str, Any]], profile_set: str) -> None:
    notes = _Notes()
    rows = [
        (link["name"], link["kind"],
         f"{exact(link['bandwidth']['value'])} {link['bandwidth']['unit']} per {link['bandwidth_per']}"
         + notes.mark(link["bandwidth_source"]),
         format_duration(link["latency_s"]) + notes.mark(link["latency_source"]))
        for link in links
    ]  # fmt: skip
    print_table(f"{len(rows)} link types ({profile_set})", ("link", "kind", "bandwidth (per direction)", "latency"), rows,
                caption="[n]: sources below")  # fmt: skip
    notes.print()


@app.command("show")
def show_profile(
    name: Annotated[
        str, typer.Argument(help="Device (or alias), node SKU or link name, e.g. h100-sxm, hgx-h100-8, nvlink4")
    ],
    profile_set: ProfileSetOption = "datasheet",
    profiles: ProfilesOption = None,
    json: JsonOption = False,
) -> None:
    """Show one device, node SKU or link: every number with its unit and source."""
    described = api.describe_profile(api.catalog(profile_set, profiles), name)
    if json:
        print_json(described)
        return
    rows = [(path, exact(q["value"]), q["unit"], q["citation"]) for path, q in described["numbers"].items()]
    if described["profile_kind"] == "node":
        rows += [
            ("accelerators", _parts(described["accelerators"]), "", "profile"),
            ("host_cpus", _parts(described["host_cpus"]), "", "profile"),
            ("max power (computed)", _plain(described["max_power_w"]), "W", described["power_source"]),
        ]
        if described["purchase_usd"] is not None and not any(
            path.startswith("price.purchase") for path in described["numbers"]
        ):
            rows.append(("price (computed)", exact(described["purchase_usd"]), "USD", described["purchase_source"]))
    print_table(f"{described['display_name']} ({described['name']}, {described['profile_kind']})",
                ("field", "value", "unit", "source"), rows, caption=described.get("notes", ""))  # fmt: skip
