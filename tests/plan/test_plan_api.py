"""``hetsim plan`` behaviour: placement, explanations of infeasibility, bad input."""

from pathlib import Path

import pytest
import yaml

from hetsim.api.plan import plan_fleet
from hetsim.errors import InfeasiblePlanError, ScenarioError
from hetsim.io.plans import load_plan, write_plan


def _fleet(tmp_path: Path, **fields) -> Path:
    data = {
        "schema_version": 1, "name": "t", "tco": "paper",
        "catalog": [{"node": "hgx-h100-8", "max_count": 2}, {"node": "cpu-2x-xeon-8480", "max_count": 4}],
        "demand": [{"workload": "voice-agent", "rate_per_s": 0.5}],
        "options": {"sample_sessions": 200, "verify_duration_s": 60, "verify_rounds": 1},
    }  # fmt: skip
    data.update(fields)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_non_llm_stages_land_on_cpus_and_the_plan_meets_the_sla_in_simulation(tmp_path):
    """paper.md E11: the optimiser places STT and TTS on CPUs; the LLM on the GPU."""
    result = plan_fleet(_fleet(tmp_path))
    devices = {c.stage.split(":")[0]: c.option.device for c in result.solution.choices}
    assert devices["stt"] == devices["tts"] == "xeon-8480"
    assert devices["llm"] == "h100-sxm"
    assert result.verification["met"]
    assert result.solution.status == "optimal"


def test_plan_export_round_trips_and_simulates(tmp_path):
    result = plan_fleet(_fleet(tmp_path), verify=False)
    path = tmp_path / "plan.yaml"
    write_plan(path, result.plan)
    assert load_plan(path) == result.plan
    assert result.plan.provenance["status"] == "optimal"
    assert result.plan.provenance["inputs_sha256"]


def test_a_tbt_no_device_meets_names_the_fastest_and_the_relaxation(tmp_path):
    fleet = _fleet(tmp_path, demand=[{"workload": "voice-agent", "rate_per_s": 0.5, "sla": {"tbt_s": 0.001}}])
    with pytest.raises(
        InfeasiblePlanError, match=r"no device meets TBT 1 ms \(fastest [\d.]+ ms\): relax TBT to [\d.]+ ms"
    ):
        plan_fleet(fleet, verify=False)


def test_too_little_inventory_says_how_many_nodes_to_add(tmp_path):
    fleet = _fleet(
        tmp_path,
        catalog=[{"node": "hgx-h100-8", "max_count": 1}, {"node": "cpu-2x-xeon-8480", "max_count": 4}],
        demand=[{"workload": "voice-agent", "rate_per_s": 40.0}],
    )
    with pytest.raises(InfeasiblePlanError, match=r"need \d+ x hgx-h100-8, the fleet allows 1: add \d+"):
        plan_fleet(fleet, verify=False)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"catalog": [{"node": "hgx-h100-9"}]}, ScenarioError, r"field 'catalog.0.node': expected a node SKU .*got 'hgx-h100-9'"),
        (
            {"inventory": [{"node": "hgx-h100-8", "count": -1}], "catalog": []},
            ScenarioError,
            r"field 'inventory.0.count'.*greater than or equal to 0",
        ),
        ({"demand": [{"workload": "voice-agnt", "rate_per_s": 1}]}, Exception, r"voice-agnt"),
        ({"demand": []}, ScenarioError, r"field 'demand': expected at least one workload"),
    ],
)
def test_bad_fleet_input_gives_a_one_line_error(tmp_path, fields, error, message):
    with pytest.raises(error, match=message) as info:
        plan_fleet(_fleet(tmp_path, **fields), verify=False)
    assert "\n" not in str(info.value)
