"""An output that cannot be written (read-only folder, a file where the folder belongs, a full disk)
is one line naming the path, what was expected and what came, exit 1; the results computed are kept
elsewhere and the line says where."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from hetsim.cli import main
from hetsim.io.outputs import verify_folder

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "scenarios" / "fleet.yaml"
KEPT = re.compile(r"; the results were kept in (\S+)$")


def hetsim(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the entry point in this process; its exit code and its stderr's one error line."""
    monkeypatch.setattr(sys, "argv", ["hetsim", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.count("\n") == 1, error
    return int(exit_info.value.code or 0), error.strip()


@pytest.fixture
def voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty seconds of the voice agent on the shipped heterogeneous plan (a tenth of a second)."""
    path = tmp_path_factory.mktemp("scenario") / "voice.yaml"
    path.write_text("schema_version: 1\nname: voice\n"
                    f"plan: {ROOT / 'scenarios/plans/voice-agent-hetero.yaml'}\n"
                    "trace: {workload: voice-agent, duration_s: 20, seed: 7}\n")  # fmt: skip
    return path


def kept_folder(message: str, name: str) -> Path:
    match = KEPT.search(message)
    assert match, message
    return Path(match.group(1)) / name


def test_simulate_out_on_a_file_is_one_line_and_the_records_are_kept(
    tmp_path: Path, voice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "records"
    out.write_text("somebody's file")
    code, error = hetsim(["simulate", "--scenario", str(voice), "--out", str(out), "--json"], monkeypatch, capsys)
    assert code == 1
    assert error.startswith(f"hetsim: error: --out {out}: expected a folder (or a new path), got a file; the results were kept in ")
    kept = kept_folder(error, "records")
    assert verify_folder(kept)["complete"] is True
    assert len(pd.read_parquet(kept / "llm_calls.parquet")) > 0
    assert out.read_text() == "somebody's file"


def test_simulate_out_in_a_read_only_folder_is_one_line_and_the_records_are_kept(
    read_only_folder: Path, voice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = read_only_folder / "records"
    code, error = hetsim(["simulate", "--scenario", str(voice), "--out", str(out), "--json"], monkeypatch, capsys)
    assert code == 1
    assert re.match(rf"^hetsim: error: --out {re.escape(str(out))}: expected a writable place, got "
                    r"(Permission denied|Operation not permitted|Read-only file system); the results were kept in ", error)  # fmt: skip
    assert json.loads((kept_folder(error, "records") / "summary.json").read_text())["llm_calls"]["count"] > 0
    assert not out.exists()


def test_simulate_out_on_a_full_disk_is_one_line_and_the_records_are_kept(
    tmp_path: Path, voice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "records"
    to_parquet = pd.DataFrame.to_parquet

    def full_beside_the_output(frame: pd.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        if Path(path).is_relative_to(tmp_path):  # the disk of --out is full; the temporary folder's is not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        to_parquet(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_beside_the_output)
    code, error = hetsim(["simulate", "--scenario", str(voice), "--out", str(out), "--json"], monkeypatch, capsys)
    assert code == 1
    assert error.startswith(f"hetsim: error: --out {out}: expected free space for the results, got No space left on device; "
                            "the results were kept in ")  # fmt: skip
    assert verify_folder(kept_folder(error, "records"))["complete"] is True
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []  # nothing half-written left beside


def test_sweep_out_on_a_file_is_one_line_and_the_points_are_kept(
    tmp_path: Path, voice: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    out.write_text("somebody's file")
    code, error = hetsim(["sweep", str(voice), "--seeds", "0,1", "-w", "1", "--out", str(out), "--json"], monkeypatch, capsys)
    assert code == 1 and error.startswith(f"hetsim: error: --out {out}: expected a folder (or a new path), got a file; ")
    points = pd.read_parquet(kept_folder(error, "sweep") / "points.parquet")
    assert points["seed"].tolist() == [0, 1] and (points["status"] == "ok").all()


@pytest.mark.slow
def test_plan_report_on_a_file_is_one_line_and_the_plan_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report"
    report.write_text("somebody's file")
    code, error = hetsim(["plan", "--fleet", str(FLEET), "--no-verify", "--report", str(report)], monkeypatch, capsys)
    assert code == 1 and error.startswith(f"hetsim: error: --report {report}: expected a folder (or a new path), got a file; ")
    kept = Path(KEPT.search(error).group(1))  # type: ignore[union-attr]
    assert (kept / "plan.yaml").is_file() and "report.html" in verify_folder(kept / "report")["files"]
    assert not (tmp_path / "reports" / "default" / "plan.yaml").exists()  # the plan did not go in without its report
