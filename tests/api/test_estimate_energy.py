"""``hetsim estimate`` answers power and energy: facility watts per device, joules per output
token, per token and per request, from the profile's TDP and idle power and the TCO preset's PUE;
'n/a' with the missing profile field named where the profile has no power figures."""

from __future__ import annotations

import json
import math
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hetsim.api.estimate import EstimateQuestion, estimate
from hetsim.cli import app
from hetsim.cost.energy import operating_power
from hetsim.io.catalog import profiles_root
from tests.conftest import make_device

H100_TDP_W = 700.0  # hardware_profiles/accelerators/h100-sxm.yaml power.tdp
ENTERPRISE_PUE = 1.3  # hetsim.cost.tco PRESETS["enterprise"]
LLAMA = {"model": "llama-3-8b", "device": "h100-sxm", "input_tokens": 1000, "output_tokens": 200}


def _ask(**changes) -> dict:
    return estimate(EstimateQuestion(**{**LLAMA, **changes}))


def test_power_per_device_is_tdp_at_full_load_times_the_presets_pue():
    result = _ask(tco_preset="enterprise", tp=2)
    assert result["power_w_per_device"] == pytest.approx(H100_TDP_W * ENTERPRISE_PUE)
    assert result["power"]["utilization"] == 1.0 and result["power"]["device_w"] == pytest.approx(H100_TDP_W)
    assert "PUE 1.3 (enterprise)" in result["provenance"]["energy"]
    assert "utilisation 1" in result["provenance"]["energy"]


def test_paper_preset_has_pue_one_so_facility_power_is_tdp():
    assert _ask()["power_w_per_device"] == pytest.approx(H100_TDP_W)


@pytest.mark.parametrize(("tp", "batch"), [(1, 1), (2, 16)])
def test_joules_per_token_and_request_match_a_hand_computation(tp, batch):
    result = _ask(tco_preset="enterprise", tp=tp, batch=batch)
    replica_w = H100_TDP_W * ENTERPRISE_PUE * tp
    tokens = LLAMA["input_tokens"] + LLAMA["output_tokens"]
    # decode: the replica emits `batch` tokens every TPOT
    assert result["joules_per_output_token"] == pytest.approx(replica_w * result["tpot_s"] / batch, rel=1e-9)
    # whole request: the replica spends e2e on `batch` requests of in+out tokens each
    assert result["joules_per_token"] == pytest.approx(replica_w * result["e2e_s"] / (batch * tokens), rel=1e-9)
    assert result["joules_per_request"] == pytest.approx(replica_w * result["e2e_s"] / batch, rel=1e-9)
    assert result["joules_per_request"] == pytest.approx(result["joules_per_token"] * tokens, rel=1e-9)


def test_joules_per_output_token_falls_as_the_batch_grows():
    largest = _ask()["max_batch_that_fits"]
    batches = [1, 4, 32, largest]
    results = [_ask(batch=b) for b in batches]
    per_token = [r["joules_per_output_token"] for r in results]
    per_request = [r["joules_per_request"] for r in results]
    assert all(a > b for a, b in pairwise(per_token)), per_token
    assert all(a > b for a, b in pairwise(per_request)), per_request


def test_operating_power_between_idle_and_tdp_and_names_a_missing_field():
    device = make_device()  # TDP 700 W, idle 100 W
    half = operating_power(device, 0.5, 1.5)
    assert half.device_w == pytest.approx(100 + 0.5 * 600) and half.facility_w == pytest.approx(400 * 1.5)
    no_idle = make_device(power={"tdp": {"value": 700, "unit": "W", "source": "t"}})
    assert operating_power(no_idle, 1.0, 1.0).device_w == pytest.approx(700)  # idle cancels at full load
    below = operating_power(no_idle, 0.5, 1.0)
    assert math.isnan(below.device_w) and below.missing == "power.idle"
    unknown = operating_power(make_device(power={}), 1.0, 1.3)
    assert math.isnan(unknown.facility_w) and unknown.missing == "power.tdp"


@pytest.fixture
def powerless_profiles(tmp_path: Path) -> Path:
    """A profile folder whose h100-sxm has no power figures (links shipped as they are)."""
    shipped = profiles_root()
    shutil.copytree(shipped / "links", tmp_path / "links")
    (tmp_path / "accelerators").mkdir()
    spec = yaml.safe_load((shipped / "accelerators" / "h100-sxm.yaml").read_text())
    del spec["power"]
    (tmp_path / "accelerators" / "h100-sxm.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_a_profile_without_power_answers_nan_naming_the_missing_field(powerless_profiles):
    result = _ask(profiles=powerless_profiles)
    for key in ("power_w_per_device", "joules_per_output_token", "joules_per_token", "joules_per_request"):
        assert math.isnan(result[key]), key
    assert result["power"]["missing_profile_field"] == "power.tdp"
    assert "power.tdp" in result["provenance"]["energy"]
    assert result["ttft_s"] > 0  # performance is still answered


def _cli(*args: str) -> str:
    out = CliRunner().invoke(app, ["estimate", "-m", "llama-3-8b", "-d", "h100-sxm", "--input-tokens", "1000",
                                   "--output-tokens", "200", *args])  # fmt: skip
    assert out.exit_code == 0, out.output
    return out.stdout


def test_table_prints_n_a_and_the_missing_field_for_a_profile_without_power(powerless_profiles):
    out = _cli("--profiles", str(powerless_profiles))
    for name in ("power per device", "J per output token", "J per token (in+out)", "J per request"):
        row = next(line for line in out.splitlines() if line.startswith(f"│ {name} "))
        assert "│ n/a " in row and "power.tdp" in row, row


def test_table_and_json_carry_the_energy_figures_with_units():
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in _cli("--tco", "enterprise").splitlines()
            if line.startswith("│ ")}  # fmt: skip
    assert rows["power per device"] == "910 W"
    assert float(rows["J per output token"]) > float(rows["J per token (in+out)"]) > 0
    data = json.loads(_cli("--json", "--batch", "8"))
    assert data["power_w_per_device"] == pytest.approx(H100_TDP_W)
    for key in ("joules_per_output_token", "joules_per_token", "joules_per_request"):
        assert data[key] > 0, key
