"""``hetsim sweep``: scenarios x seeds, the same results whatever runs them, failures kept, spread across seeds."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hetsim.api.sweep import POINT_COLUMNS, SweepInterrupted, SweepRequest, parse_seeds, sweep
from hetsim.cli import app, main
from hetsim.errors import ScenarioError
from hetsim.io.outputs import verify_folder
from hetsim.metrics.sweep import across_seeds, mean_ci95, t_quantile_975

ROOT = Path(__file__).resolve().parents[2]
AZURE_CSV = ROOT / "workloads" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv"
runner = CliRunner()


def tiny_scenarios(folder: Path) -> tuple[Path, Path]:
    """A synthetic voice-agent scenario (20 s) and a 40-request slice of the Azure trace: ~0.1 s each."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "azure40.csv").write_text("".join(AZURE_CSV.read_text().splitlines(keepends=True)[:41]))
    voice = folder / "voice.yaml"
    voice.write_text(
        "schema_version: 1\nname: voice\n"
        f"plan: {ROOT / 'scenarios/plans/voice-agent-hetero.yaml'}\n"
        "trace: {workload: voice-agent, duration_s: 20, seed: 7}\n"
        "sla: {ttft_s: 0.25, tbt_s: 0.02}\n"
    )
    azure = folder / "azure.yaml"
    azure.write_text(
        "schema_version: 1\nname: azure40\n"
        f"plan: {ROOT / 'scenarios/plans/llama8b-h100x2.yaml'}\n"
        "trace: {file: azure40.csv, format: azure-2023, model: llama-3-8b}\n"
    )
    return voice, azure


def bad_scenario(folder: Path) -> Path:
    """A scenario whose plan names a device that does not exist: every point of it fails."""
    (folder / "bad-plan.yaml").write_text(
        "schema_version: 1\nname: bad-plan\npools: [{name: llm, device: h999, replicas: 1, llm: {model: llama-3-8b}}]\n"
    )
    bad = folder / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\nplan: bad-plan.yaml\ntrace: {workload: voice-agent, duration_s: 5}\n")
    return bad


@pytest.fixture(scope="module")
def grids(tmp_path_factory: pytest.TempPathFactory) -> dict[int, pd.DataFrame]:
    """The same 2 scenarios x 2 seeds run in this process and in two worker processes."""
    scenarios = tiny_scenarios(tmp_path_factory.mktemp("grid"))
    return {w: sweep(SweepRequest(scenarios, (0, 1), workers=w)).points for w in (1, 2)}


def test_seeds_are_lists_inclusive_ranges_or_both() -> None:
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds("0..3") == (0, 1, 2, 3)
    assert parse_seeds(" 5 , 0..2,1") == (5, 0, 1, 2)


@pytest.mark.parametrize("text", ["a", "0..", "1,,2", "0.5"])
def test_malformed_seeds_name_the_expected_form(text: str) -> None:
    with pytest.raises(ScenarioError, match=r"--seeds: expected integers or ranges like '0,1,2' or '0\.\.9'"):
        parse_seeds(text)


def test_an_empty_seed_range_is_an_error() -> None:
    with pytest.raises(ScenarioError, match=r"range '3\.\.1' is empty"):
        parse_seeds("3..1")


def test_one_worker_and_two_workers_give_identical_frames_in_grid_order(grids: dict[int, pd.DataFrame]) -> None:
    local, pooled = grids[1], grids[2]
    assert list(local.columns) == list(POINT_COLUMNS)
    assert list(zip(local["scenario"], local["seed"], strict=True)) == [
        ("voice", 0), ("voice", 1), ("azure40", 0), ("azure40", 1)
    ]
    assert (local["status"] == "ok").all() and local["error"].isna().all()
    pd.testing.assert_frame_equal(local.drop(columns="wall_s"), pooled.drop(columns="wall_s"))


def test_seed_changes_a_synthetic_trace_but_not_a_trace_file(grids: dict[int, pd.DataFrame]) -> None:
    frame = grids[1].set_index(["scenario", "seed"])
    metrics = ["sessions", "llm_calls", "ttft_p99_s", "usd_per_million_tokens"]
    assert not frame.loc[("voice", 0), metrics].equals(frame.loc[("voice", 1), metrics])
    assert frame.loc[("azure40", 0), metrics].equals(frame.loc[("azure40", 1), metrics])
    assert frame.loc[("azure40", 0), "llm_calls"] == 40


def test_without_seeds_each_scenario_runs_once_with_its_own(tmp_path: Path) -> None:
    voice, _ = tiny_scenarios(tmp_path)
    result = sweep(SweepRequest((voice, voice), workers=1))
    assert result.points["seed"].tolist() == [7] and result.run["executor"] == "in-process"


def test_across_seeds_gives_the_mean_and_student_t_interval() -> None:
    stats = mean_ci95(np.array([1.0, 2.0, 3.0, math.nan]))
    assert stats["n"] == 3 and stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95_half_width"] == pytest.approx(4.303 / math.sqrt(3))
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-4) and t_quantile_975(120) == pytest.approx(1.9799, abs=1e-4)
    points = pd.DataFrame({"scenario": ["a"] * 3, "scenario_file": ["a.yaml"] * 3, "status": ["ok", "ok", "failed"],
                           "x": [5.0, 5.0, math.nan]})
    row = across_seeds(points, ("x",)).iloc[0]
    assert (row["points"], row["failed"], row["n"], row["mean"], row["ci95_half_width"]) == (3, 1, 2, 5.0, 0.0)


def test_failed_points_are_written_with_their_error_and_the_command_exits_1(tmp_path: Path) -> None:
    voice, _ = tiny_scenarios(tmp_path)
    out = tmp_path / "out"
    args = ["sweep", str(voice), str(bad_scenario(tmp_path)), "--seeds", "0,1", "--workers", "1", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [p["status"] for p in report["points"]] == ["ok", "ok", "failed", "failed"]
    assert "unknown device 'h999'" in report["points"][2]["error"] and "\n" not in report["points"][2]["error"]
    assert "hetsim: point failed: bad seed 0: " in result.stderr
    assert "bad-plan.yaml: field 'pools.0.device': unknown device 'h999'" in result.stderr
    assert {p.name for p in out.iterdir()} == {"points.csv", "points.parquet", "by_scenario.csv",
                                               "by_scenario.parquet", "sweep.json", "manifest.json"}
    assert verify_folder(out)["complete"] is True
    written = pd.read_parquet(out / "points.parquet")
    assert written["status"].tolist() == ["ok", "ok", "failed", "failed"] and written["error"].iloc[3]
    by = pd.read_csv(out / "by_scenario.csv")
    assert set(by.loc[by["scenario"] == "bad", "failed"]) == {2}
    assert by.set_index(["scenario", "metric"]).loc[("voice", "ttft_p99_s"), "n"] == 2


def test_the_entry_point_exits_1_when_a_point_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["hetsim", "sweep", str(bad_scenario(tmp_path)), "-w", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "Sweep: points" in captured.out and "failed" in captured.out
    assert captured.err.startswith("hetsim: point failed: bad seed 0: ") and "Traceback" not in captured.err


def test_table_shows_each_point_and_the_spread_per_scenario(tmp_path: Path) -> None:
    voice, _ = tiny_scenarios(tmp_path)
    result = runner.invoke(app, ["sweep", str(voice), "--seeds", "0..1", "-w", "1"])
    assert result.exit_code == 0, result.output
    assert "Sweep: points" in result.stdout and "mean ± 95% CI across seeds" in result.stdout
    assert "2 of 2" in result.stdout and "in-process" in result.stdout


def test_ctrl_c_keeps_the_finished_points_beside_out_and_leaves_out_alone(tmp_path: Path) -> None:
    """Ctrl-C after two points: they are written, marked incomplete, to OUT.incomplete; OUT keeps its sweep."""
    voice, _ = tiny_scenarios(tmp_path)
    out = tmp_path / "out"
    sweep(SweepRequest((voice,), (0,), workers=1, out=out))
    previous = verify_folder(out)

    def ctrl_c_after_two(done: int, total: int, row: dict | None) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as caught:
        sweep(SweepRequest((voice,), (0, 1, 2, 3), workers=1, out=out), ctrl_c_after_two)
    kept = tmp_path / "out.incomplete"
    assert str(caught.value) == f"2 of 4 points finished, kept in {kept} (marked incomplete)"
    assert caught.value.result.run["not_finished"] == ["voice seed 2", "voice seed 3"]
    assert verify_folder(out) == previous
    assert verify_folder(kept)["complete"] is False
    assert pd.read_parquet(kept / "points.parquet")["seed"].tolist() == [0, 1]
    assert json.loads((kept / "sweep.json").read_text())["run"]["incomplete"] is True


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to this process")
def test_a_ctrl_c_that_a_point_turns_into_its_failure_still_interrupts_the_sweep(tmp_path: Path, monkeypatch) -> None:
    """The second point's simulation gets the Ctrl-C and a library wraps it in its own error
    (run_point keeps any error as the point's failure): the sweep still stops there, keeps the
    first point in <out>.incomplete, and does not count the wrapped one as finished."""
    import os
    import signal

    from hetsim.api import sweep as sweep_module
    from hetsim.io import ctrl_c

    real = sweep_module.run_point
    calls = []

    def point(p):
        calls.append(p)
        if len(calls) == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                import time

                time.sleep(5)
            except KeyboardInterrupt as exc:
                return real(p) | {"status": "failed", "error": f"SchemaError: {exc!r}"}
        return real(p)

    before = signal.getsignal(signal.SIGINT)
    ctrl_c.install()
    monkeypatch.setattr(sweep_module, "run_point", point)
    voice, _ = tiny_scenarios(tmp_path / "grid")
    try:
        with pytest.raises(SweepInterrupted) as stopped:
            sweep(SweepRequest((voice,), (0, 1, 2), workers=1, out=tmp_path / "out"))
    finally:
        signal.signal(signal.SIGINT, before)
        ctrl_c._received.clear()
    points = stopped.value.result.points
    assert len(calls) == 2 and list(points["seed"]) == [0] and (points["status"] == "ok").all()
    manifest = verify_folder(tmp_path / "out.incomplete")
    assert manifest["complete"] is False and not (tmp_path / "out").exists()
