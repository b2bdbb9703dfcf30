"""The shipped hardware profiles: they load, every number has a source, and key values match the references.

Datasheet values are checked against ``shared/reference/hardware.csv`` (copied here as literals so the
tests do not depend on files outside the repository); the paper set against arXiv 2507.19635 Table 5.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from hetsim.errors import ProfileError
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.common import SOURCE_PREFIXES, SourcedDocument, iter_sourced
from hetsim.specs.hardware import AcceleratorSpec, BandwidthScope, DeviceKind, DType, LinkKind

REFERENCE_ROWS = (
    "a40", "a100-40gb-sxm", "a100-40gb-pcie", "a100-80gb-sxm", "a100-80gb-pcie", "l4", "l40s", "rtx-6000-ada",
    "h100-sxm", "h100-pcie", "h100-nvl", "h200-sxm", "b200", "gb200", "b300", "gb300", "mi250x", "mi300x", "mi325x",
    "mi355x", "gaudi2", "gaudi3", "tpu-v5e", "tpu-v6e", "xeon-8480", "xeon-6980p", "epyc-9654", "epyc-9755",
    "epyc-9965",
)  # fmt: skip
"""One profile per row of hardware.csv (29 rows)."""

REQUIRED_LINKS = (
    "nvlink3", "nvlink4", "nvlink5", "nvlink-bridge-a40", "infinity-fabric-mi250x", "infinity-fabric-mi300",
    "infinity-fabric-mi355", "pcie4-x16", "pcie5-x16", "ib-hdr-200", "ib-ndr-400", "ib-xdr-800", "roce-100",
    "roce-200", "roce-400", "ethernet-25", "ethernet-100", "gaudi2-roce-100", "gaudi3-roce-200", "tpu-ici-v5e",
    "tpu-ici-v6e",
)  # fmt: skip

REQUIRED_NODES = (
    "hgx-h100-8", "hgx-h200-8", "hgx-b200-8", "hgx-b300-8", "gb200-nvl72-tray", "hgx-a100-8", "mi300x-8",
    "mi325x-8", "mi355x-8", "gaudi2-8", "gaudi3-8", "l40s-8-pcie", "l4-8-pcie", "a40-8-pcie", "tpu-v5e-8-host",
    "tpu-v6e-8-host", "cpu-2x-xeon-8480", "cpu-2x-xeon-6980p", "cpu-2x-epyc-9654", "cpu-2x-epyc-9755",
)  # fmt: skip

GPU_IDLE_FRACTION = 0.10  # the idle rule stated in every GPU/accelerator profile
CPU_IDLE_FRACTION = 0.25  # the idle rule stated in every CPU profile


@pytest.fixture(scope="module")
def catalogs() -> dict[str, HardwareCatalog]:
    """Both shipped profile sets, loaded once for the module (loading is the slow part)."""
    return {profile_set: load_catalog(profile_set) for profile_set in ("datasheet", "paper")}


@pytest.fixture(scope="module")
def datasheet(catalogs: dict[str, HardwareCatalog]) -> HardwareCatalog:
    return catalogs["datasheet"]


@pytest.fixture(scope="module")
def paper(catalogs: dict[str, HardwareCatalog]) -> HardwareCatalog:
    return catalogs["paper"]


def _documents(catalog: HardwareCatalog) -> list[SourcedDocument]:
    return [*catalog.accelerators.values(), *catalog.links.values(), *catalog.nodes.values()]


# --- the shipped profiles load and are complete -------------------------------------------------


@pytest.mark.parametrize("profile_set", ["datasheet", "paper"])
def test_every_shipped_profile_loads(catalogs: dict[str, HardwareCatalog], profile_set: str) -> None:
    catalog = catalogs[profile_set]
    folder = profiles_root() / ("accelerators" if profile_set == "datasheet" else "paper")
    assert len(catalog.accelerators) == len(list(folder.glob("*.yaml")))
    assert len(catalog.links) == len(list((profiles_root() / "links").glob("*.yaml")))
    if profile_set == "datasheet":
        assert len(catalog.nodes) == len(list((profiles_root() / "nodes").glob("*.yaml")))


def test_datasheet_set_has_every_reference_row(datasheet: HardwareCatalog) -> None:
    assert len(REFERENCE_ROWS) == 29
    assert len(datasheet.accelerators) >= 29
    missing = set(REFERENCE_ROWS) - set(datasheet.accelerators)
    assert not missing, f"no profile for hardware.csv rows {sorted(missing)}"


def test_required_links_and_nodes_exist(datasheet: HardwareCatalog) -> None:
    assert set(REQUIRED_LINKS) <= set(datasheet.links), set(REQUIRED_LINKS) - set(datasheet.links)
    assert set(REQUIRED_NODES) <= set(datasheet.nodes), set(REQUIRED_NODES) - set(datasheet.nodes)


def test_file_names_match_profile_names() -> None:
    for path in profiles_root().glob("*/*.yaml"):
        if path.parent.name == "calibration":  # calibration files name their device, not themselves
            continue
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["name"] == path.stem, path


@pytest.mark.parametrize("profile_set", ["datasheet", "paper"])
def test_every_device_has_a_headline_peak_and_memory(catalogs: dict[str, HardwareCatalog], profile_set: str) -> None:
    for device in catalogs[profile_set].accelerators.values():
        peaks = [device.peak_flops(d) for d in (DType.BF16, DType.FP16, DType.FP32)]
        assert any(p for p in peaks), f"{device.name}: no bf16, fp16 or fp32 peak"
        assert device.memory_bytes > 0, device.name
        assert device.memory_bandwidth_bytes_per_s > 0, device.name


@pytest.mark.parametrize("profile_set", ["datasheet", "paper"])
def test_every_number_has_a_source_that_resolves(catalogs: dict[str, HardwareCatalog], profile_set: str) -> None:
    for document in _documents(catalogs[profile_set]):
        numbers = list(iter_sourced(document))
        assert numbers, f"{document.name}: no sourced numbers"
        for path, quantity in numbers:
            where = f"{document.name}.{path}"
            if quantity.source in document.sources:
                assert document.sources[quantity.source].strip(), f"{where}: empty citation"
            else:
                prefix = next((p for p in SOURCE_PREFIXES if quantity.source.startswith(p)), None)
                assert prefix, f"{where}: source {quantity.source!r} does not resolve"
                if prefix in ("derived:", "assumed:"):
                    reason = quantity.source.removeprefix(prefix).strip()
                    assert len(reason) >= 10, f"{where}: {prefix} needs its reason or arithmetic, got {reason!r}"


def test_cpus_have_topology_and_fp32(datasheet: HardwareCatalog) -> None:
    for device in datasheet.accelerators.values():
        is_cpu = device.kind is DeviceKind.CPU
        assert (device.cpu is not None) == is_cpu, device.name
        if is_cpu:
            assert device.peak_flops(DType.FP32), f"{device.name}: CPUs need at least an fp32 peak"
            assert device.scale_up is None, device.name


def test_power_follows_the_stated_idle_rule(datasheet: HardwareCatalog) -> None:
    for device in datasheet.accelerators.values():
        if device.kind is DeviceKind.TPU:
            assert device.power.tdp is None, f"{device.name}: Google does not publish TPU power"
            continue
        assert device.power.tdp is not None and device.power.idle is not None, device.name
        fraction = CPU_IDLE_FRACTION if device.kind is DeviceKind.CPU else GPU_IDLE_FRACTION
        assert device.power.idle.si == pytest.approx(fraction * device.power.tdp.si), device.name
        assert device.power.idle.source.startswith("assumed:"), device.name


def test_scale_up_bandwidth_is_its_links_device_figure_or_whole_ports(datasheet: HardwareCatalog) -> None:
    """A device's scale-up bandwidth equals a per-device link's figure, or is a whole number of
    a per-port link's ports (Gaudi's integrated RoCE)."""
    for device in datasheet.accelerators.values():
        if device.scale_up is None:
            continue
        link = datasheet.link(device.scale_up.link)
        if link.bandwidth_per is BandwidthScope.DEVICE:
            assert device.scale_up.bandwidth.si == pytest.approx(link.bandwidth.si), device.name
        else:
            ports = device.scale_up.bandwidth.si / link.bandwidth.si
            assert ports == pytest.approx(round(ports)), f"{device.name}: not a whole number of ports"


def test_fabric_links_count_per_device_and_nics_per_port(datasheet: HardwareCatalog) -> None:
    nic_kinds = {LinkKind.INFINIBAND, LinkKind.ROCE, LinkKind.ETHERNET}
    for link in datasheet.links.values():
        expected = BandwidthScope.PORT if link.kind in nic_kinds else BandwidthScope.DEVICE
        assert link.bandwidth_per is expected, link.name


@pytest.mark.parametrize("profile_set", ["datasheet", "paper"])
def test_aliases_are_unambiguous(catalogs: dict[str, HardwareCatalog], profile_set: str) -> None:
    catalog = catalogs[profile_set]
    owners: dict[str, str] = {}
    for device in catalog.accelerators.values():
        for alias in device.aliases:
            key = alias.lower()
            assert key not in catalog.accelerators, f"alias {alias!r} of {device.name} shadows a device name"
            assert key not in owners, f"alias {alias!r} used by {owners.get(key)} and {device.name}"
            owners[key] = device.name


@pytest.mark.parametrize(
    ("alias", "datasheet_name"),
    [("a40", "a40"), ("a100", "a100-80gb-sxm"), ("gaudi3", "gaudi3"), ("mi300x", "mi300x"), ("h100", "h100-sxm"),
     ("b200", "b200")],
)  # fmt: skip
def test_paper_devices_answer_to_datasheet_names(
    catalogs: dict[str, HardwareCatalog], alias: str, datasheet_name: str
) -> None:
    assert catalogs["datasheet"].accelerator(alias).name == datasheet_name
    assert catalogs["paper"].accelerator(alias).name.startswith("paper-")


# --- spot checks against hardware.csv ------------------------------------------------------------


def _value(device: AcceleratorSpec, path: str) -> float:
    node: object = device
    for part in path.split("."):
        node = getattr(node, part)
    return node.si if hasattr(node, "si") else float(node)  # type: ignore[union-attr, arg-type]


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("h100-sxm", "compute.bf16", 9.89e14),
        ("h100-sxm", "compute.fp8", 1.979e15),
        ("h100-sxm", "price.rental", 3.78 / 3600),
        ("mi300x", "memory.bandwidth", 5.3e12),
        ("mi300x", "memory.capacity", 192e9),
        ("gaudi3", "memory.capacity", 128e9),
        ("gaudi3", "compute.bf16", 1.835e15),
        ("gaudi3", "scale_up.bandwidth", 525e9),
        ("gaudi3", "price.purchase", 15625),
        ("b200", "compute.fp4", 9e15),
        ("b200", "power.tdp", 1000),
        ("gb200", "scale_up.domain_size", 72),
        ("a100-80gb-sxm", "memory.bandwidth", 2.039e12),
        ("l4", "compute.fp8", 242.5e12),
        ("mi355x", "compute.fp4", 10066.3e12),
        ("tpu-v6e", "compute.int8", 1836e12),
        ("tpu-v5e", "scale_out.bandwidth", 3.125e9),
        ("xeon-8480", "compute.fp32", 7.17e12),
        ("xeon-6980p", "compute.bf16", 262.1e12),
        ("epyc-9654", "memory.bandwidth", 460.8e9),
    ],
)
def test_spot_checks_against_hardware_csv(datasheet: HardwareCatalog, name: str, path: str, expected: float) -> None:
    assert _value(datasheet.accelerator(name), path) == pytest.approx(expected, rel=1e-3)


def test_documented_gaps_stay_gaps(datasheet: HardwareCatalog) -> None:
    """Numbers the references leave blank must not appear as if they were known."""
    assert datasheet.accelerator("b300").compute.int8 is None  # 4500 vs ~150 TOPS conflict
    assert datasheet.accelerator("gb300").compute.int8 is None
    assert datasheet.accelerator("tpu-v5e").power.tdp is None
    assert datasheet.accelerator("a100-80gb-sxm").scale_out is None  # NIC not verified
    for name in ("a40", "a100-40gb-sxm", "a100-80gb-sxm", "a100-40gb-pcie", "a100-80gb-pcie", "mi250x"):
        assert datasheet.accelerator(name).compute.fp8 is None, f"{name} has no FP8"
    for name in ("epyc-9755", "epyc-9965"):
        fp32 = datasheet.accelerator(name).compute.fp32
        assert fp32 is not None and fp32.source.startswith("derived:") and "ASSUMED" in fp32.source


# --- the paper set is Table 5 exactly ------------------------------------------------------------

TABLE_5 = [
    # name, cost USD, memory GB, bandwidth GB/s, FP16 TFLOP/s, operating USD/h
    ("paper-a40", 3000, 48, 696, 75, 0.15),
    ("paper-a100", 8000, 80, 2039, 322, 0.25),
    ("paper-gaudi3", 12500, 128, 3700, 1678, 0.49),
    ("paper-mi300x", 20000, 192, 5300, 1307, 0.52),
    ("paper-h100", 25000, 80, 3350, 1979, 0.60),
    ("paper-b200", 40000, 192, 8000, 2250, 0.83),
]


def test_paper_set_is_exactly_table_5(paper: HardwareCatalog) -> None:
    assert sorted(paper.accelerators) == sorted(row[0] for row in TABLE_5)


@pytest.mark.parametrize(("name", "cost", "memory_gb", "bandwidth_gbs", "fp16_tflops", "operating"), TABLE_5)
def test_paper_row_equals_table_5(
    paper: HardwareCatalog, name: str, cost: float, memory_gb: float, bandwidth_gbs: float, fp16_tflops: float,
    operating: float,
) -> None:  # fmt: skip
    device = paper.accelerator(name)
    # the printed values, in the printed units
    assert (device.compute.fp16.value, device.compute.fp16.unit) == (fp16_tflops, "TFLOP/s")
    assert (device.memory.capacity.value, device.memory.capacity.unit) == (memory_gb, "GB")
    assert (device.memory.bandwidth.value, device.memory.bandwidth.unit) == (bandwidth_gbs, "GB/s")
    assert (device.price.purchase.value, device.price.purchase.unit) == (cost, "USD")
    assert (device.price.operating.value, device.price.operating.unit) == (operating, "USD/h")
    for quantity in (device.compute.fp16, device.memory.capacity, device.memory.bandwidth, device.price.purchase,
                     device.price.operating):  # fmt: skip
        assert quantity.source == "paper"
    assert "2507.19635" in device.cite("paper") and "Table 5" in device.cite("paper")
    # nothing else the paper does not print
    assert [d for d in DType if device.peak_flops(d) is not None] == [DType.FP16]
    assert device.power.tdp is None and device.power.idle is None and device.price.rental is None
    for fabric in (device.scale_up, device.scale_out):
        if fabric is not None:
            assert fabric.bandwidth.source.startswith("assumed:") and fabric.latency.source.startswith("assumed:")


# --- nodes -----------------------------------------------------------------------------------------


def test_every_node_reference_resolves(datasheet: HardwareCatalog) -> None:
    for node in datasheet.nodes.values():
        cpu = datasheet.accelerator(node.host_cpus.device)
        assert cpu.kind is DeviceKind.CPU and cpu.cpu is not None, node.name
        if node.accelerators is not None:
            assert datasheet.accelerator(node.accelerators.device).kind is not DeviceKind.CPU, node.name
        for link in (node.scale_up_link, node.nics.link if node.nics else None):
            if link is not None:
                datasheet.link(link)  # raises ProfileError if unknown
        if node.name.startswith("cpu-"):
            assert node.accelerators is None and node.scale_up_link is None, node.name


def test_node_prices_build_on_device_prices(datasheet: HardwareCatalog) -> None:
    for node in datasheet.nodes.values():
        if node.accelerators is None:
            continue
        device = datasheet.accelerator(node.accelerators.device)
        count = node.accelerators.count
        if device.price.rental is not None:
            assert node.price.rental is not None, f"{node.name}: device has a rental price, node has none"
            assert node.price.rental.si == pytest.approx(count * device.price.rental.si), node.name
            assert node.price.rental.source.startswith("derived:"), node.name
        if device.price.purchase is not None:
            assert node.price.purchase is not None, f"{node.name}: device has a purchase price, node has none"
            assert node.price.purchase.si >= count * device.price.purchase.si, node.name
        else:
            assert node.price.purchase is None, f"{node.name}: price without a device price"


# --- validation errors name the file, the field and the bad value ----------------------------------


@pytest.fixture
def h100_data() -> dict:
    return yaml.safe_load((profiles_root() / "accelerators" / "h100-sxm.yaml").read_text(encoding="utf-8"))


def _write_profile(root: Path, data: dict) -> Path:
    folder = root / "accelerators"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "h100-sxm.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _message(path: Path, field: str, *rest: str) -> str:
    return ".*".join(re.escape(part) for part in (str(path), f"field '{field}'", *rest))


def test_unknown_key_is_named(tmp_path: Path, h100_data: dict) -> None:
    h100_data["colour"] = "red"
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "colour", "unknown key", "'colour'")):
        load_catalog("datasheet", root=tmp_path)


def test_unknown_nested_key_is_named(tmp_path: Path, h100_data: dict) -> None:
    h100_data["compute"]["fp8"]["sparse"] = True
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "compute.fp8.sparse", "unknown key", "'sparse'")):
        load_catalog("datasheet", root=tmp_path)


def test_negative_bandwidth_is_rejected(tmp_path: Path, h100_data: dict) -> None:
    h100_data["memory"]["bandwidth"]["value"] = -3.35
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "memory.bandwidth.value", ">= 0", "-3.35")):
        load_catalog("datasheet", root=tmp_path)


def test_missing_required_field_is_named(tmp_path: Path, h100_data: dict) -> None:
    del h100_data["memory"]["capacity"]
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "memory.capacity", "required field is missing")):
        load_catalog("datasheet", root=tmp_path)


def test_unknown_unit_is_rejected(tmp_path: Path, h100_data: dict) -> None:
    h100_data["memory"]["bandwidth"]["unit"] = "TB/sec"
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "memory.bandwidth.unit", "bytes/s", "TB/s", "'TB/sec'")):
        load_catalog("datasheet", root=tmp_path)


def test_wrong_dimension_unit_is_rejected(tmp_path: Path, h100_data: dict) -> None:
    h100_data["memory"]["bandwidth"]["unit"] = "TB"
    path = _write_profile(tmp_path, h100_data)
    expected = _message(path, "memory.bandwidth.unit", "bytes/s", "'TB'", "measures bytes")
    with pytest.raises(ProfileError, match=expected):
        load_catalog("datasheet", root=tmp_path)


def test_capacity_in_flops_units_is_rejected(tmp_path: Path, h100_data: dict) -> None:
    h100_data["memory"]["capacity"]["unit"] = "TFLOP/s"
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "memory.capacity.unit", "'TFLOP/s'", "measures FLOP/s")):
        load_catalog("datasheet", root=tmp_path)


def test_unresolvable_source_is_rejected(tmp_path: Path, h100_data: dict) -> None:
    h100_data["compute"]["bf16"]["source"] = "nvidai"
    path = _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=_message(path, "compute.bf16.source", "key of 'sources'", "'nvidai'")):
        load_catalog("datasheet", root=tmp_path)


def test_unknown_link_reference_is_named(tmp_path: Path, h100_data: dict) -> None:
    shutil.copytree(profiles_root() / "links", tmp_path / "links")
    h100_data["scale_up"]["link"] = "nvlink9"
    _write_profile(tmp_path, h100_data)
    with pytest.raises(ProfileError, match=r"device 'h100-sxm': link 'nvlink9' is not a known link"):
        load_catalog("datasheet", root=tmp_path)


def test_node_with_unknown_device_is_named(tmp_path: Path) -> None:
    shutil.copytree(profiles_root() / "links", tmp_path / "links")
    for folder, name in (("accelerators", "h100-sxm"), ("accelerators", "xeon-8480"), ("nodes", "hgx-h100-8")):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(profiles_root() / folder / f"{name}.yaml", tmp_path / folder)
    load_catalog("datasheet", root=tmp_path)  # the copy is valid as it stands
    node_path = tmp_path / "nodes" / "hgx-h100-8.yaml"
    data = yaml.safe_load(node_path.read_text(encoding="utf-8"))
    data["accelerators"]["device"] = "h100-sxm9"
    node_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"node 'hgx-h100-8': unknown device 'h100-sxm9'"):
        load_catalog("datasheet", root=tmp_path)


def test_link_bandwidth_scope_must_be_device_or_port(tmp_path: Path) -> None:
    data = yaml.safe_load((profiles_root() / "links" / "roce-400.yaml").read_text(encoding="utf-8"))
    data["bandwidth_per"] = "socket"
    for name in ("accelerators", "nodes", "links"):
        (tmp_path / name).mkdir()
    path = tmp_path / "links" / "roce-400.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ProfileError, match=_message(path, "bandwidth_per", "'device' or 'port'", "socket")):
        load_catalog("datasheet", root=tmp_path)
