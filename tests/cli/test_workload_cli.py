"""``hetsim workload list|show|validate`` and the ``trace synth`` command, at the CLI boundary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hetsim.cli import app, main
from hetsim.cli.workload import synth_command

runner = CliRunner()
REQUIRED = {"voice-agent", "rag-chatbot", "react-tool-agent", "swe-coding-agent", "deep-research"}


def synth_app() -> typer.Typer:
    """``synth`` on a group of its own, as the lead attaches it to ``hetsim trace``."""
    group = typer.Typer()
    group.command("synth")(synth_command)
    group.command("noop")(lambda: None)  # two commands keep 'synth' a sub-command
    return group


def test_list_shows_the_shipped_workloads() -> None:
    result = runner.invoke(app, ["workload", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.output)["workloads"]}
    assert names >= REQUIRED


def test_list_prints_a_table() -> None:
    result = runner.invoke(app, ["workload", "list"])
    assert result.exit_code == 0, result.output
    assert "voice-agent" in result.output and "llama-3-8b" in result.output


def test_show_gives_nodes_edges_and_sources_as_json() -> None:
    result = runner.invoke(app, ["workload", "show", "voice-agent", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["entry"] == "stt"
    assert shown["nodes"]["agent"]["quantities"]["output_tokens"]["mean"] == 4096
    assert shown["nodes"]["search"]["external"] is True
    assert {"from": "agent", "to": "search"}.items() <= shown["edges"][1].items()
    assert shown["sla"]["ttft_s"] == 0.25 and "paper" in shown["sources"]


def test_show_accepts_a_file_and_prints_tables() -> None:
    path = Path(__file__).resolve().parents[2] / "workloads" / "deep-research.yaml"
    result = runner.invoke(app, ["workload", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert "synthesis" in result.output and "parallel" in result.output


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "workloads" / "rag-chatbot.yaml"
    result = runner.invoke(app, ["workload", "validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["valid"] is True


def _bad_workload(tmp_path: Path) -> Path:
    good = Path(__file__).resolve().parents[2] / "workloads" / "voice-agent.yaml"
    data = yaml.safe_load(good.read_text(encoding="utf-8"))
    data["edges"][2]["to"] = "agnet"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_validate_reports_a_bad_file_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = _bad_workload(tmp_path)
    monkeypatch.setattr(sys, "argv", ["hetsim", "workload", "validate", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"hetsim: error: {path}: field 'edges.2.to': expected one of the nodes")


def test_unknown_model_fails_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    good = Path(__file__).resolve().parents[2] / "workloads" / "voice-agent.yaml"
    data = yaml.safe_load(good.read_text(encoding="utf-8"))
    data["nodes"]["agent"]["model"] = "llama-9b"
    path = tmp_path / "unknown-model.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["hetsim", "workload", "validate", str(path)])
    with pytest.raises(SystemExit):
        main()
    assert "field 'nodes.agent.model': expected a catalog model" in capsys.readouterr().err


def test_synth_writes_a_canonical_jsonl_trace(tmp_path: Path) -> None:
    out = tmp_path / "voice.jsonl"
    args = ["synth", "--workload", "voice-agent", "--rate", "2", "--duration", "1min", "--seed", "4", "-o", str(out)]
    result = runner.invoke(synth_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    lines = out.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])["trace_meta"]
    assert meta["format"] == "synthetic" and meta["extra"]["seed"] == 4 and meta["extra"]["duration_s"] == 60.0
    assert len(lines) - 1 == summary["steps"] and summary["sessions"] == meta["extra"]["sessions"]
    first = json.loads(lines[1])
    assert first["node"] == "stt" and first["parents"] == []


def test_synth_is_deterministic_in_the_seed(tmp_path: Path) -> None:
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        out = tmp_path / name
        args = ["synth", "-w", "deep-research", "-d", "600", "-r", "0.1", "-s", "7", "-o", str(out)]
        result = runner.invoke(synth_app(), args)
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_synth_writes_parquet_by_suffix(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "rag.parquet"
    result = runner.invoke(synth_app(), ["synth", "-w", "rag-chatbot", "-d", "30s", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_synth_rejects_a_bad_duration(tmp_path: Path) -> None:
    result = runner.invoke(synth_app(), ["synth", "-w", "voice-agent", "-d", "soon", "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code != 0
    assert "duration: expected seconds or a number with a unit" in str(result.exception)
