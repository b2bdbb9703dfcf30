"""``hetsim hardware list|show``: devices, node SKUs and link types, in plain units, names whole."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.cli.output import print_table

runner = CliRunner()
SCIENTIFIC = re.compile(r"\d(?:\.\d+)?e[+-]\d\d\b")  # how Python prints 2.5e-06 or 1e+03


def _list(*args: str) -> str:
    result = runner.invoke(app, ["hardware", "list", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_shows_devices_node_skus_and_link_types_by_default():
    out = _list()
    assert "devices (datasheet)" in out and "23 node SKUs (datasheet)" in out and "23 link types (datasheet)" in out


def test_node_skus_show_parts_price_with_its_source_and_power_in_plain_units():
    out = _list("--kind", "nodes")
    row = next(line for line in out.splitlines() if line.startswith("│ hgx-h100-8 "))
    # 8 x 700 W H100 + 2 x 350 W Xeon 8480 + 1,800 W overhead (the profiles)
    assert "8 x h100-sxm" in row and "2 x xeon-8480" in row and "$262,000 [" in row and "8,100 W" in row
    note = row.split("$262,000 [")[1].split("]")[0]
    assert re.search(rf"^\[{note}\] derived: 8 x 25,000 USD h100-sxm", out, re.MULTILINE)
    assert "devices (datasheet)" not in out and not SCIENTIFIC.search(out)


def test_link_types_show_bandwidth_as_stated_and_latency_in_engineering_units():
    out = _list("--kind", "links")
    row = next(line for line in out.splitlines() if line.startswith("│ roce-400 "))
    assert "400 Gb/s per port" in row and "6 µs" in row
    assert "infinity-fabric-mi250x" in out  # the longest name, whole
    assert not SCIENTIFIC.search(out)


def test_device_prices_print_in_plain_dollars_not_scientific_notation():
    out = _list("--kind", "devices")
    row = next(line for line in out.splitlines() if line.startswith("│ h100-sxm "))
    assert "$25,000" in row and "$3.78/h" in row and "989" in row
    assert not SCIENTIFIC.search(out)


def test_list_json_carries_node_and_link_summaries_with_sources():
    data = json.loads(_list("--json"))
    node = next(n for n in data["nodes"] if n["name"] == "hgx-h100-8")
    assert node["purchase_usd"] == 262000 and node["max_power_w"] == pytest.approx(8100)
    assert node["purchase_source"].startswith("derived:") and node["accelerators"] == {"device": "h100-sxm", "count": 8}
    link = next(item for item in data["links"] if item["name"] == "roce-400")
    assert link["latency_s"] == pytest.approx(6e-6) and link["bandwidth_bytes_per_s"] == pytest.approx(50e9)
    assert {"devices", "nodes", "links"} <= data.keys()


def test_a_node_priced_by_its_parts_says_so():
    from hetsim.api.hardware import catalog, node_summary

    hardware = catalog()
    node = hardware.node("hgx-h100-8").model_copy(
        update={"price": hardware.node("hgx-h100-8").price.model_copy(update={"purchase": None})}
    )
    summary = node_summary(node, hardware)
    assert summary["purchase_usd"] == 8 * 25000 + 2 * 11000  # the device profiles' prices
    assert summary["purchase_source"] == "derived: sum of its parts' profile prices (2 x xeon-8480, 8 x h100-sxm)"


def test_the_paper_set_has_no_node_skus_and_says_so():
    assert "no node SKUs in the paper set" in _list("--set", "paper", "--kind", "nodes")


@pytest.mark.parametrize(("name", "kind", "expected"), [("h100-sxm", "device", "h100-sxm"),
                                                        ("hgx-h100-8", "node", "max power (computed)"),
                                                        ("roce-400", "link", "bandwidth")])  # fmt: skip
def test_show_finds_a_device_a_node_or_a_link(name, kind, expected):
    result = runner.invoke(app, ["hardware", "show", name])
    assert result.exit_code == 0, result.output
    assert f"({name}, {kind})" in result.stdout or f"{name}, {kind})" in result.stdout
    assert expected in result.stdout
    data = json.loads(runner.invoke(app, ["hardware", "show", name, "--json"]).stdout)
    assert data["profile_kind"] == kind


def test_show_of_an_unknown_name_lists_devices_nodes_and_links():
    from hetsim.api.hardware import catalog, describe_profile
    from hetsim.errors import ProfileError

    with pytest.raises(
        ProfileError,
        match=r"unknown device, node or link 'nope'; expected one of devices: .*; nodes: .*hgx-h100-8.*; links: .*roce-400",
    ):
        describe_profile(catalog(), "nope")


def test_tables_print_long_names_whole_and_cells_as_written(capsys):
    name = "a-very-long-node-sku-name-that-a-narrow-column-would-cut-" + "x" * 20
    print_table("t", ("name", "a", "b", "c"), [(name, "[1] [bold]", "word " * 30, "z")])
    out = capsys.readouterr().out
    assert name in out and "[1] [bold]" in out
