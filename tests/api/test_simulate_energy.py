"""Energy in a simulation's summary: each pool's devices from idle to TDP with their busy share,
times the TCO preset's PUE, per output token, per LLM call and per session; an autoscaled pool's
devices counted while they were up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hetsim.api.simulate import SimulateRequest, simulate
from hetsim.io.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
VOICE = ROOT / "scenarios" / "voice-agent-hetero.yaml"


@pytest.fixture(scope="module")
def voice() -> dict:
    return simulate(SimulateRequest(VOICE))


def test_energy_is_each_pools_devices_from_idle_to_tdp_with_their_busy_share(voice: dict) -> None:
    plan = yaml.safe_load((VOICE.parent / "plans" / "voice-agent-hetero.yaml").read_text())
    hardware = load_catalog("datasheet")
    hours = voice["duration_s"] / 3600.0
    expected_kwh = 0.0
    for pool in plan["pools"]:
        device = hardware.accelerator(pool["device"])
        tdp = device.tdp_w
        idle = device.power.idle.si if device.power.idle else tdp
        busy = min(voice["utilization"][pool["name"]], 1.0)
        expected_kwh += pool["replicas"] * pool.get("tp", 1) * (idle + busy * (tdp - idle)) * hours / 1000.0
    assert voice["cost"]["energy_kwh"] == pytest.approx(expected_kwh, rel=1e-9)


def test_energy_per_token_call_and_session_divide_the_same_facility_energy(voice: dict) -> None:
    cost, calls, sessions = voice["cost"], voice["llm_calls"], voice["sessions"]
    joules = cost["facility_energy_kwh"] * 3.6e6
    assert cost["facility_energy_kwh"] == pytest.approx(cost["energy_kwh"] * 1.0)  # the paper preset's PUE is 1
    assert cost["joules_per_output_token"] * calls["output_tokens"] == pytest.approx(joules)
    assert cost["joules_per_llm_call"] * calls["completed"] == pytest.approx(joules)
    assert cost["joules_per_session"] * sessions["completed"] == pytest.approx(joules)
    assert cost["kwh_per_day"] == pytest.approx(cost["facility_energy_kwh"] / voice["duration_s"] * 86400.0)


def test_an_autoscaled_pools_energy_counts_its_devices_while_they_were_up(tmp_path: Path) -> None:
    plan = yaml.safe_load((ROOT / "scenarios/plans/chat-l4-autoscaled.yaml").read_text())
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    scenario = {"schema_version": 1, "name": "energy", "plan": "plan.yaml", "tco": "paper",
                "trace": {"workload": str(ROOT / "workloads/chat.yaml"), "duration_s": 1800, "seed": 4,
                          "arrival": {"process": "poisson", "rate_per_s": 2.0}}}  # fmt: skip
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    summary = simulate(SimulateRequest(tmp_path / "scenario.yaml"))
    l4 = load_catalog("datasheet").accelerator("l4")
    up = summary["autoscaling"]["chat"]["mean_replicas_up"]
    busy = min(summary["utilization"]["chat"], 1.0)  # over the time replicas were up
    idle = l4.power.idle.si if l4.power.idle else l4.tdp_w
    expected = up * (idle + busy * (l4.tdp_w - idle)) * summary["duration_s"] / 3600.0 / 1000.0
    assert 1.0 < up < plan["pools"][0]["autoscale"]["max_replicas"]
    assert summary["cost"]["energy_kwh"] == pytest.approx(expected, rel=1e-9)
    assert summary["cost"]["devices"]["chat"] == pytest.approx(up)
