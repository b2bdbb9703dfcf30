"""Bad input files are refused in one line, in bounded time: non-UTF-8 text, alias bombs,
unknown schema versions, infinities and NaNs, and names that would write outside reports/."""

import time
from pathlib import Path

import pytest

from hetsim.errors import ScenarioError
from hetsim.io.fleets import load_fleet

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
    start = time.perf_counter()
    _refused(path, r"expected at most 64 aliases \(\*name\), got 73")
    assert time.perf_counter() - start < 5.0  # bounded: nothing was expanded


@pytest.mark.parametrize("version", ["-1", "0", "2", "99"])
def test_only_the_known_schema_version_is_accepted(tmp_path, version):
    _refused(_fleet(tmp_path, "schema_version: 1", f"schema_version: {version}"), r"field 'schema_version'")


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_infinities_and_nans_pass_no_bound(tmp_path, value):
    _refused(_fleet(tmp_path, "rate_per_s: 2.0", f"rate_per_s: {value}"), r"field 'demand.0.rate_per_s': Input should be a finite number")


@pytest.mark.parametrize("name", ["../../escape", "/etc/owned", ".hidden", "a..b", "a/b"])
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
