"""Own versus rent over a day: the owned base plus the rented burst, one MIP over the day's windows,
never dearer than buying for the peak or renting every window; day profiles from specs and traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hetsim.api.day import plan_day, summary
from hetsim.api.traces import save_trace
from hetsim.cli import app
from hetsim.errors import HetsimError, ScenarioError
from hetsim.specs.profile import DayProfile
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep
from tests.conftest import write_fleet

runner = CliRunner()
PEAK_HOURS = range(10, 14)


def _fleet(tmp_path: Path, profile, **options) -> Path:
    """Buy or rent 8x H100 servers (CPU servers only to buy); a voice agent peaking at 16 sessions/s."""
    return write_fleet(tmp_path, "day", [{"node": "hgx-h100-8", "max_count": 8}, {"node": "cpu-2x-xeon-8480", "max_count": 8}],
                       [{"workload": "voice-agent", "rate_per_s": 16.0, "profile": profile}],
                       {"sample_sessions": 300, "verify_duration_s": 60, "verify_rounds": 0, **options})  # fmt: skip


@pytest.fixture(scope="module")
def four_hour_peak(tmp_path_factory: pytest.TempPathFactory):
    """4x the night's demand from 10:00 to 14:00 (points, piecewise by hour)."""
    folder = tmp_path_factory.mktemp("day")
    return plan_day(_fleet(folder, {"points": [[0, 1], [10, 4], [14, 1]]}), verify=False)


def test_a_four_times_peak_is_served_by_an_owned_base_below_the_peak_and_rent_only_at_the_peak(four_hour_peak):
    result = four_hour_peak
    mix, owned = result.answers["mix"], result.answers["owned"]
    assert owned is not None and mix is not None
    gpu = "hgx-h100-8"
    assert mix.buy[gpu] < owned.buy[gpu]  # the base is sized below the peak
    peak_window = result.window_of_hour[min(PEAK_HOURS)]
    for hour, window in enumerate(result.window_of_hour):
        rented = sum(mix.rent[window].values())
        assert (rented > 0) == (hour in PEAK_HOURS), hour
    assert sum(mix.rent[peak_window].values()) > 0


def test_the_mix_is_never_dearer_than_all_owned_or_all_rented_and_costs_add_up(four_hour_peak):
    result = four_hour_peak
    data = summary(result)
    mix = data["answers"]["mix"]
    for mode in ("owned", "rented"):
        assert data["answers"][mode]["feasible"]
        assert mix["usd_per_day"] <= data["answers"][mode]["usd_per_day"] * (1 + 1e-6)
    prices = result.prices
    answer = result.answers["mix"]
    owned = 24 * sum(prices[n].owned_usd_per_h * c for n, c in answer.buy.items())
    rented = sum(h * sum(prices[n].rented_usd_per_h * c for n, c in r.items() if c) for h, r in zip(answer.hours, answer.rent, strict=True))
    assert mix["owned_usd_per_day"] == pytest.approx(owned)
    assert mix["rented_usd_per_day"] == pytest.approx(rented)
    assert sum(answer.hours) == 24
    assert data["headline"].startswith("Own ") and "rented-only" in data["headline"]


def test_the_hour_table_shows_demand_with_capacity_at_least_as_large(four_hour_peak):
    rows = summary(four_hour_peak)["hours"]
    assert [r["hour"] for r in rows] == list(range(24))
    assert sorted({round(r["sessions_per_s"], 9) for r in rows}) == [4.0, 16.0]
    assert all(r["capacity_sessions_per_s"] >= r["sessions_per_s"] for r in rows)


def test_hetsim_plan_on_a_fleet_with_a_profile_plans_own_versus_rent(tmp_path):
    hourly = [1.0] * 10 + [4.0] * 4 + [1.0] * 10
    (tmp_path / "day.yaml").write_text(yaml.safe_dump({"unit": "multiplier", "hourly": hourly}))
    fleet = _fleet(tmp_path, "day.yaml")  # a profile file beside the fleet
    report = tmp_path / "report"
    outcome = runner.invoke(app, ["plan", "--fleet", str(fleet), "--no-verify", "--json", "--report", str(report)])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.stdout)
    assert data["written"] and all(Path(p).is_relative_to(report) for p in data["written"])
    assert data["answers"]["mix"]["usd_per_day"] <= data["answers"]["owned"]["usd_per_day"] * (1 + 1e-6)
    assert data["hours"][12]["rented"] and not data["hours"][3]["rented"]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [({"hourly": [1.0] * 23}, "expected 24 values"), ({"hourly": [1.0] * 23 + [0.0]}, "expected every value > 0"),
     ({"points": [[5, 1.0], [3, 2.0]]}, "hours increasing"), ("missing.yaml", "does not exist")],
)  # fmt: skip
def test_a_bad_profile_is_a_one_line_error(tmp_path, profile, expected):
    outcome = runner.invoke(app, ["plan", "--fleet", str(_fleet(tmp_path, profile)), "--no-verify", "--report",
                                  str(tmp_path / "report")])  # fmt: skip
    # `hetsim` (hetsim.cli.main) prints a HetsimError as its one line and exits 1.
    assert isinstance(outcome.exception, HetsimError), outcome.output
    message = str(outcome.exception)
    assert expected in message and "\n" not in message, message


def test_points_hold_from_their_hour_and_wrap_round_midnight():
    profile = DayProfile(points=((6, 2.0), (18, 4.0)))
    values = profile.hourly_values()
    assert values[:6] == (4.0,) * 6 and values[6:18] == (2.0,) * 12 and values[18:] == (4.0,) * 6
    assert max(profile.multipliers()) == 1.0


def _trace(path: Path, per_hour: list[int]) -> Path:
    """One single-step session per arrival, ``per_hour[h]`` of them spread evenly over hour h."""
    steps = []
    for hour, count in enumerate(per_hour):
        for index in range(count):
            arrival = hour * 3600 + (index + 0.5) * 3600 / count
            steps.append(TraceStep(session_id=f"s{hour}-{index}", step_id=0, arrival_s=arrival, node="llm",
                                   node_type=NodeType.LLM, model="llama-3.1-8b", input_tokens=100, output_tokens=10))  # fmt: skip
    save_trace(path, steps, TraceMeta(source="synthetic test trace", format="synthetic"))
    return path


def test_trace_profile_measures_sessions_per_second_by_hour_and_saves_a_profile(tmp_path):
    per_hour = [2] * 8 + [8] * 8 + [4] * 8
    trace = _trace(tmp_path / "day.jsonl", per_hour)
    out = tmp_path / "profile.yaml"
    outcome = runner.invoke(app, ["trace", "profile", str(trace), "-o", str(out), "--json"])
    assert outcome.exit_code == 0, outcome.output
    hours = json.loads(outcome.stdout)["hours"]
    # Interior hours are covered whole: count / 3600 s.
    assert hours[4]["sessions_per_s"] == pytest.approx(2 / 3600)
    assert hours[12]["sessions_per_s"] == pytest.approx(8 / 3600)
    saved = DayProfile.model_validate(yaml.safe_load(out.read_text()))
    assert saved.unit == "sessions/s" and saved.multipliers()[12] == pytest.approx(1.0)
    assert saved.multipliers()[4] == pytest.approx(0.25)


def test_trace_profile_refuses_to_save_a_profile_with_an_empty_hour(tmp_path):
    trace = _trace(tmp_path / "half.jsonl", [3] * 12 + [0] * 12)
    outcome = runner.invoke(app, ["trace", "profile", str(trace), "-o", str(tmp_path / "p.yaml")])
    assert isinstance(outcome.exception, HetsimError)
    assert "no sessions in hour(s)" in str(outcome.exception) and "\n" not in str(outcome.exception)
    assert not (tmp_path / "p.yaml").exists()


def test_a_profile_file_that_does_not_validate_names_the_file():
    with pytest.raises(ScenarioError, match="does not exist"):
        from hetsim.io.profiles import load_profile

        load_profile(Path("/nonexistent/profile.yaml"))


def _spot_fleet(tmp_path: Path, **options) -> Path:
    return _fleet(tmp_path, {"points": [[0, 1], [10, 4], [14, 1]]}, allow_spot=True, **options)


def test_spot_nodes_serve_the_peak_with_spares_for_the_reclaimed_share_when_cheaper(four_hour_peak, tmp_path):
    result = plan_day(_spot_fleet(tmp_path), verify=False)
    mix, gpu = result.answers["mix"], "hgx-h100-8"
    price = result.prices[gpu]
    # the profile: 18 USD/h spot, 3 h mean run before a reclaim; 300 s to replace one
    assert price.spot_usd_per_h == pytest.approx(18.0) and price.spot_down_share == pytest.approx(300 / (3 * 3600 + 300))
    peak = result.window_of_hour[min(PEAK_HOURS)]
    assert mix.spot[peak][gpu] > 0 and mix.rent[peak][gpu] == 0  # spot with a spare beats on-demand at 30.24 USD/h
    for serving, spares in zip(mix.spot, mix.spare, strict=True):
        assert spares[gpu] >= price.spot_down_share * serving[gpu] - 1e-9  # the expected reclaimed share is covered
    assert mix.usd_per_day <= four_hour_peak.answers["mix"].usd_per_day + 1e-6  # never dearer than without spot
    data = summary(result)
    answer = data["answers"]["mix"]
    held = sum(h * (s[gpu] + e[gpu]) for h, s, e in zip(mix.hours, mix.spot, mix.spare, strict=True))
    assert answer["spot_node_hours"] == pytest.approx(held)
    assert answer["spot_interruptions_per_day"] == pytest.approx(held / 3.0)  # one reclaim per 3 node-hours
    assert answer["spot_usd_per_day"] == pytest.approx(18.0 * held)
    assert "spot" in data["headline"] and "spares for the share of time" in data["basis"]


def test_spot_that_is_reclaimed_too_often_loses_to_on_demand_rental(tmp_path):
    # a replacement taking 30 h against a 3 h mean run: a spot node is missing 91% of the time
    result = plan_day(_spot_fleet(tmp_path, spot_replacement_s=30 * 3600.0), verify=False)
    assert not any(sum(s.values()) for s in result.answers["mix"].spot)


def test_spot_is_left_out_unless_the_fleet_allows_it(four_hour_peak):
    assert not any(sum(s.values()) for s in four_hour_peak.answers["mix"].spot)
    assert four_hour_peak.prices["hgx-h100-8"].spot_usd_per_h is None
    assert "spot capacity not considered (options.allow_spot)" in summary(four_hour_peak)["basis"]


def test_the_day_report_holds_the_figure_the_tables_and_each_windows_plan(four_hour_peak, tmp_path):
    from hetsim.api.day import write_day
    from hetsim.io.outputs import verify_folder
    from hetsim.io.plans import load_plan

    data = summary(four_hour_peak)
    folder = tmp_path / "day"
    written = write_day(four_hour_peak, data, folder)
    manifest = verify_folder(folder)
    assert sorted(manifest["files"]) == ["day.json", "day.md", "day.png", "window-1/plan.yaml", "window-2/plan.yaml"]
    assert (folder / "day.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(written) == 6
    markdown = (folder / "day.md").read_text()
    assert data["headline"] in markdown and markdown.count("\n| 1") >= 10 and "![demand and capacity" in markdown
    assert json.loads((folder / "day.json").read_text())["answers"]["mix"]["usd_per_day"] == pytest.approx(
        data["answers"]["mix"]["usd_per_day"])
    peak = four_hour_peak.window_of_hour[min(PEAK_HOURS)]
    plan = load_plan(folder / f"window-{peak + 1}" / "plan.yaml")
    assert plan.pools and plan.name.endswith(f"window-{peak + 1}")
