"""Bad input files are refused in one line, in bounded time: non-UTF-8 text, alias bombs,
unknown schema versions, infinities and NaNs, and names that would write outside reports/."""

import tracemalloc
from pathlib import Path

import pytest
import yaml

from hetsim.errors import ProfileError, ScenarioError, WorkloadError
from hetsim.io.fleets import load_comparison, load_fleet
from hetsim.io.plans import load_plan
from hetsim.io.workloads import load_workload
from hetsim.io.yamlfile import load_spec
from hetsim.specs.hardware import AcceleratorSpec

FLEET = Path(__file__).resolve().parents[2] / "scenarios" / "fleet.yaml"


def _fleet(tmp_path: Path, old: str, new: str) -> Path:
    text = FLEET.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "fleet.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _refused(path: Path, match: str) -> str:
    with pytest.raises(ScenarioError, match=match) as info:
        load_fleet(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_non_utf8_yaml_names_the_byte(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"schema_version: 1\nname: \xff\xfe\n")
    _refused(path, r"expected UTF-8 text, got byte 0xff at offset 24")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["schema_version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "fleet.yaml"
    path.write_text("\n".join([*lines, "name: *a8"]) + "\n", encoding="utf-8")
    tracemalloc.start()
    try:
        _refused(path, r"expected at most 64 aliases \(\*name\), got 73")
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # bounded: nothing was expanded (9**9 = 387 million items had it been; a few kB to refuse)
    assert peak_bytes < 1e6


@pytest.mark.parametrize("version", ["-1", "0", "2", "99"])
def test_only_the_known_schema_version_is_accepted(tmp_path, version):
    _refused(_fleet(tmp_path, "schema_version: 1", f"schema_version: {version}"), r"field 'schema_version'")


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_infinities_and_nans_pass_no_bound(tmp_path, value):
    _refused(_fleet(tmp_path, "rate_per_s: 2.0", f"rate_per_s: {value}"), r"field 'demand.0.rate_per_s': Input should be a finite number")


@pytest.mark.parametrize("name", ["../../escape", "/etc/owned", ".hidden", "a..b", "a/b", "x" * 101])
def test_a_name_cannot_leave_the_reports_folder(tmp_path, name):
    _refused(_fleet(tmp_path, "name: default", f"name: '{name}'"), r"field 'name': expected a name of letters")


def test_a_huge_wrong_value_is_shown_short(tmp_path):
    nested = "[" * 50 + "1" + "]" * 50
    message = _refused(_fleet(tmp_path, "name: default", f"name: {nested}"), r"field 'name'")
    assert len(message) < len(str(tmp_path)) + 200


@pytest.mark.parametrize(("old", "new", "field"), [
    ("rate_per_s: 2.0", "rate_per_s: 1.0e+300", "demand.0.rate_per_s"),
    ("headroom: 1.25", "headroom: 1.0e+300", "options.headroom"),
])  # fmt: skip
def test_rates_and_headroom_past_any_fleet_are_refused_before_the_math_overflows(tmp_path, old, new, field):
    _refused(_fleet(tmp_path, old, new), rf"field '{field}': Input should be less than or equal to")


# ---- found by the mutation corpus (tests/fuzz) ---------------------------------------------------

ROOT = FLEET.parents[1]


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    _refused(_fleet(tmp_path, "tco: enterprise", "tco: enterprise\ntco: paper"), r"line \d+ not valid YAML \(found the key 'tco' twice")


def test_a_nul_byte_is_refused_in_one_line(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_bytes(FLEET.read_bytes().replace(b"name: default", b"name: def\x00ault"))
    _refused(path, r"character \d+ not valid YAML \(character U\+0000 is not allowed in YAML\)")


def test_a_recursive_alias_is_refused_before_anything_walks_it(tmp_path):
    _refused(_fleet(tmp_path, "name: default", "name: &loop [1, *loop]"), r"expected a document without a recursive alias")


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1000000000000000000000000000000"])
def test_an_integer_past_int64_or_float_precision_is_refused_naming_the_field(tmp_path, value):
    message = _refused(_fleet(tmp_path, "count: 1", f"count: {value}"), r"field 'inventory.0.count': expected an integer within \+-2\*\*53")
    assert len(message) < len(str(tmp_path)) + 160  # a 31-digit number is shown short


def test_a_quantity_past_any_machine_is_refused_before_its_arithmetic_overflows(tmp_path):
    device = ROOT / "hardware_profiles" / "accelerators" / "h100-sxm.yaml"
    text = device.read_text(encoding="utf-8")
    path = tmp_path / "h100-sxm.yaml"
    path.write_text(text.replace("value: 80", "value: 1.0e+300", 1), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"expected at most 1e\+30 in SI units"):
        load_spec(path, AcceleratorSpec, ProfileError)


@pytest.mark.parametrize(("dist", "match"), [
    ("{dist: lognormal, mean: 100, cv: 1.0e+300}", r"field 'nodes.answer.prompt_tokens.cv': expected at most 100, got 1e\+300"),
    ("{dist: lognormal, mu: 700, sigma: 2}", r"expected parameters with a finite mean of at most 1e\+09"),
    ("{dist: gamma, shape: 1.0e+200, scale: 1.0e+200}", r"finite mean of at most 1e\+09"),
])  # fmt: skip
def test_a_distribution_whose_moments_overflow_is_refused(tmp_path, dist, match):
    workload = ROOT / "workloads" / "rag-chatbot.yaml"
    spec = yaml.safe_load(workload.read_text(encoding="utf-8"))
    node = next(n for n in spec["nodes"].values() if "prompt_tokens" in n)
    node["prompt_tokens"] = yaml.safe_load(dist)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(WorkloadError, match=match):
        load_workload(path)


def test_a_comparison_whose_candidate_is_no_fleet_is_refused_when_read(tmp_path):
    text = (ROOT / "scenarios" / "compare-default.yaml").read_text(encoding="utf-8")
    path = tmp_path / "compare.yaml"
    path.write_text(text.replace("catalog: [{node: hgx-h100-8}, {node: cpu-2x-xeon-8480}]",
                                 "catalog: [{node: hgx-h100-8}, {node: hgx-h100-8}, {node: cpu-2x-xeon-8480}]", 1))  # fmt: skip
    with pytest.raises(ScenarioError, match=r"field 'fleets.0': catalog: each node SKU may appear once .*\['hgx-h100-8'\] more than once"):
        load_comparison(path)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("{node: hgx-h100-8, count: 1}", "{node: '', count: 1}", r"field 'inventory.0.node': expected a node SKU \(.*\), got ''"),
    ("kv_link: roce-400", "kv_link: roce-999", r"field 'kv_link': expected a link \(.*\), got 'roce-999'"),
    ("tco: enterprise", "tco: cheap", r"field 'tco': expected a TCO preset \(paper, paper-printed, enterprise\), got 'cheap'"),
    ("profile_set: datasheet", "profile_set: rumours", r"field 'profile_set': expected one of datasheet, paper, got 'rumours'"),
])  # fmt: skip
def test_a_fleet_naming_what_the_catalog_lacks_is_refused_naming_the_field(tmp_path, old, new, match):
    _refused(_fleet(tmp_path, old, new), match)


def test_a_plan_naming_an_unknown_device_or_model_is_refused_naming_the_field(tmp_path):
    text = (ROOT / "scenarios" / "plans" / "llama8b-h100x2.yaml").read_text(encoding="utf-8")
    for old, new, field in (("device: h100-sxm", "device: h100-sxn", "device"), ("model: llama-3-8b", "model: llama-9", "llm.model")):
        path = tmp_path / "plan.yaml"
        path.write_text(text.replace(old, new), encoding="utf-8")
        with pytest.raises(ScenarioError, match=rf"plan.yaml: field 'pools.0.{field}': unknown"):
            load_plan(path)


def test_control_characters_in_a_wrong_value_stay_on_one_line(tmp_path):
    message = _refused(_fleet(tmp_path, "tco: enterprise", 'tco: "a\\nb\\x1b[31m"'), r"field 'tco'")
    assert "\\n" in message and "\x1b" not in message
