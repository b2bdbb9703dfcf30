"""``hetsim trace import|stats`` through typer's CliRunner, and the one-line error of the entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.cli import app, main
from hetsim.errors import WorkloadError

SAMPLES = Path(__file__).resolve().parents[2] / "workloads" / "traces"
MOONCAKE = SAMPLES / "mooncake_fast25" / "conversation_trace.first1000.jsonl"
runner = CliRunner()


def test_import_writes_a_canonical_trace_and_reports_it_as_json(tmp_path: Path) -> None:
    out = tmp_path / "mc.parquet"
    result = runner.invoke(app, ["trace", "import", "--format", "mooncake", str(MOONCAKE), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["steps"] == 1000 and summary["skipped_lines"] == 0 and out.is_file()


def test_stats_of_a_canonical_trace_and_of_a_raw_trace_imported_on_the_fly_agree(tmp_path: Path) -> None:
    out = tmp_path / "mc.jsonl"
    assert runner.invoke(app, ["trace", "import", "-f", "mooncake", str(MOONCAKE), "-o", str(out)]).exit_code == 0
    canonical = json.loads(runner.invoke(app, ["trace", "stats", str(out), "--json"]).output)
    raw = json.loads(runner.invoke(app, ["trace", "stats", "--format", "mooncake", str(MOONCAKE), "--json"]).output)
    assert canonical["stats"] == raw["stats"]
    assert canonical["stats"]["llm_calls"] == 1000 and canonical["format"] == "mooncake"


def test_stats_table_names_the_statistics() -> None:
    result = runner.invoke(app, ["trace", "stats", "-f", "lmcache", str(SAMPLES / "lmcache_agent_trace")])
    assert result.exit_code == 0, result.output
    assert "cached_prefix_ratio" in result.output and "llm_interarrival_cv" in result.output


def test_skip_bad_skips_and_counts_malformed_lines(tmp_path: Path) -> None:
    raw = tmp_path / "mc.jsonl"
    lines = MOONCAKE.read_text().splitlines()[:5]
    raw.write_text("\n".join([*lines[:2], "{oops", *lines[2:]]) + "\n")
    result = runner.invoke(
        app, ["trace", "import", "-f", "mooncake", str(raw), "-o", str(tmp_path / "o.jsonl"), "--skip-bad", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["skipped_lines"] == 1 and json.loads(result.output)["steps"] == 5


def test_malformed_line_fails_with_its_line_number_and_no_traceback(tmp_path: Path) -> None:
    raw = tmp_path / "mc.jsonl"
    raw.write_text(MOONCAKE.read_text().splitlines()[0] + "\n{oops\n")
    result = runner.invoke(app, ["trace", "import", "-f", "mooncake", str(raw), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0
    assert isinstance(result.exception, WorkloadError)  # `app` leaves translation to the entry point
    assert "line 2" in str(result.exception) and "\n" not in str(result.exception)
    assert "Traceback" not in result.output


def test_entry_point_prints_one_error_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "mc.jsonl"
    raw.write_text("{oops\n")
    argv = ["hetsim", "trace", "import", "-f", "mooncake", str(raw), "-o", str(tmp_path / "o.jsonl")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("hetsim: error: ") and "line 1: " in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_unknown_format_is_one_line_listing_the_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["hetsim", "trace", "stats", "-f", "vidur", str(MOONCAKE)])
    with pytest.raises(SystemExit):
        main()
    assert "expected one of: azure-2023, mooncake, lmcache, trtllm, tracelab" in capsys.readouterr().err


def test_missing_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["trace", "import", str(MOONCAKE)])
    assert result.exit_code == 2 and "Missing option" in result.output
