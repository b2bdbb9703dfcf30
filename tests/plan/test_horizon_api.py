"""``hetsim plan --horizon``: a purchase schedule over growing demand, verified period by period,
written whole, with an exit status that tells the truth."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.api import horizon as horizon_api
from hetsim.api.horizon import EXIT_NOT_PROVEN, EXIT_SLA_MISSED, HorizonRequest, plan_horizon, summary, write_schedule
from hetsim.cli import app
from hetsim.errors import ScenarioError
from hetsim.io.outputs import verify_folder
from hetsim.io.plans import load_plan
from tests.conftest import write_fleet

runner = CliRunner()


def _fleet(tmp_path: Path) -> Path:
    """Own one 8x H100 server; may buy Gaudi 3, MI300X and CPU servers; a voice agent at 1 session/s."""
    return write_fleet(tmp_path, "grow",
                       [{"node": "gaudi3-8", "max_count": 3}, {"node": "mi300x-8", "max_count": 2},
                        {"node": "cpu-2x-xeon-8480", "max_count": 4}],
                       [{"workload": "voice-agent", "rate_per_s": 1.0}],
                       {"sample_sessions": 300, "verify_duration_s": 60, "verify_rounds": 2},
                       inventory=[{"node": "hgx-h100-8", "count": 1}])  # fmt: skip


@pytest.fixture(scope="module")
def doubling(tmp_path_factory: pytest.TempPathFactory):
    """Four six-month periods, demand doubling each period (x1, x2, x4, x8); about 1 s."""
    folder = tmp_path_factory.mktemp("horizon")
    return plan_horizon(HorizonRequest(_fleet(folder), periods=4, growth=1.0)), folder


def test_a_four_period_horizon_with_growing_demand_never_unbuys_and_meets_every_period(doubling):
    """Issue 17 acceptance: the schedule never un-buys and every period meets its SLA in simulation."""
    result, _ = doubling
    held = [p.solution.extra_nodes for p in result.periods]
    for earlier, later in itertools.pairwise(held):
        assert all(later[name] >= earlier[name] for name in earlier)
    assert sum(held[-1].values()) > 0  # x8 demand does not fit the owned server: something is bought
    assert [p.verification["met"] for p in result.periods] == [True] * 4
    assert result.is_met and result.exit_code == 0
    rates = [sum(w.rate_per_s for w in p.workloads) for p in result.periods]
    assert rates == pytest.approx([1.0, 2.0, 4.0, 8.0])


def test_the_schedule_costs_each_period_by_its_hours_and_buys_the_difference(doubling):
    result, _ = doubling
    data = summary(result)
    hours = 6 * 730.0
    for row, period in zip(data["schedule"], result.periods, strict=True):
        assert row["fleet_usd"] == pytest.approx(period.cost["total_usd_per_h"] * hours)
    assert result.solution.objective_usd == pytest.approx(sum(p.solution.objective * hours for p in result.periods))
    bought = {}
    for row in data["schedule"]:
        for name, count in row["buy"].items():
            bought[name] = bought.get(name, 0) + count
    assert bought == {k: v for k, v in result.periods[-1].solution.extra_nodes.items() if v}
    assert data["new_spend_usd"] <= data["myopic_new_spend_usd"] + 1e-6
    assert data["headline"].startswith("Buy ") and "meets every period's SLA in simulation" in data["headline"]


def test_the_schedule_folder_holds_json_markdown_and_each_periods_plan(doubling, tmp_path):
    result, _ = doubling
    written = write_schedule(result, summary(result), tmp_path / "horizon")
    folder = tmp_path / "horizon"
    assert {p.relative_to(folder).as_posix() for p in written} == {
        "schedule.json", "schedule.md", "manifest.json", *(f"period-{t}/plan.yaml" for t in range(1, 5))}  # fmt: skip
    verify_folder(folder)
    data = json.loads((folder / "schedule.json").read_text())
    assert [row["period"] for row in data["schedule"]] == [1, 2, 3, 4]
    plan = load_plan(folder / "period-4" / "plan.yaml")
    assert plan.provenance["horizon"]["period"] == 4 and plan.provenance["verified_in_simulation"] is True
    assert "| period | demand | buy |" in (folder / "schedule.md").read_text()


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"periods": 0}, r"--horizon: expected 1 to 40 periods, got 0"),
     ({"growth": -1.0}, r"--growth: expected a growth rate per period above -1 \(0.5 = \+50%\), got -1.0"),
     ({"period_months": 0.0}, r"--period-months: expected months > 0, got 0.0")],
)  # fmt: skip
def test_out_of_range_horizon_options_name_the_option(tmp_path, fields, message):
    request = HorizonRequest(_fleet(tmp_path), **{"periods": 2, "growth": 0.5, **fields})
    with pytest.raises(ScenarioError, match=message):
        plan_horizon(request)


def _missing_everything(*args, **kwargs):
    return {"met": False, "workloads": {"voice-agent": {"sla": {}, "dropped_calls": 3}}, "utilization": {}}


def test_a_period_that_misses_its_sla_after_every_round_exits_4_and_says_which(tmp_path, monkeypatch):
    monkeypatch.setattr(horizon_api, "_verify", _missing_everything)
    fleet = _fleet(tmp_path)
    result = runner.invoke(app, ["plan", "--fleet", str(fleet), "--horizon", "2", "--growth", "0.5",
                                 "--report", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == EXIT_SLA_MISSED == 4
    assert (
        "hetsim: period 1 missed its SLA in simulation (SLA missed in simulation: voice-agent: 3 calls dropped)"
        in result.stderr
    )
    assert (tmp_path / "out" / "schedule.json").is_file()  # the schedule is still written


def test_a_schedule_stopped_by_the_time_limit_exits_5_with_its_gap(tmp_path, monkeypatch):
    real = horizon_api.solve_horizon

    def stopped(*args, **kwargs):
        from dataclasses import replace

        return replace(real(*args, **kwargs), status="feasible", gap=0.042)

    monkeypatch.setattr(horizon_api, "solve_horizon", stopped)
    result = runner.invoke(app, ["plan", "--fleet", str(_fleet(tmp_path)), "--horizon", "2", "--growth", "0.5",
                                 "--no-verify", "--report", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert result.exit_code == EXIT_NOT_PROVEN == 5
    assert "the schedule is not proven optimal: time limit (60 s), incumbent, gap 4.20%" in result.stderr
    data = json.loads(result.stdout)
    assert data["solver"]["status"] == "feasible" and data["sla_met_in_simulation"] is None


def test_the_cli_table_shows_every_period_and_the_headline(tmp_path):
    result = runner.invoke(app, ["plan", "--fleet", str(_fleet(tmp_path)), "--horizon", "3", "--growth", "1",
                                 "--period-months", "12", "--report", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 periods of 12 months" in result.stdout and "SLA in sim." in result.stdout
    assert "Buy " in result.stdout and "one model over all periods: optimal" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--growth", "0.5"], "--growth plans a horizon: give --horizon N too"),
     (["--horizon", "3"], "--horizon needs --growth"),
     (["--horizon", "3", "--growth", "0.5", "--out", "p.yaml"], "go to --report DIR, not --out")],
)  # fmt: skip
def test_horizon_options_come_together(tmp_path, extra, message):
    result = runner.invoke(app, ["plan", "--fleet", str(_fleet(tmp_path)), *extra])
    assert result.exit_code == 2
    assert message in result.output
