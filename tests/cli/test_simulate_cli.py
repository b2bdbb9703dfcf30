"""``hetsim simulate`` at the CLI boundary: JSON and table output, written records, one-line plan errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hetsim.cli import app, main
from hetsim.perf.speculative import expected_tokens

ROOT = Path(__file__).resolve().parents[2]
AZURE = ROOT / "scenarios" / "azure-conv-h100.yaml"
runner = CliRunner()
SUMMARY_KEYS = {"duration_s", "sessions", "llm_calls", "steps", "sla", "goodput_calls_per_s", "utilization", "cost",
                "provenance", "run"}


@pytest.fixture(scope="module")
def azure_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One run of the Azure scenario with ``--json --out`` (about 1.5 s), shared by the tests below."""
    out = tmp_path_factory.mktemp("azure")
    result = runner.invoke(app, ["simulate", "--scenario", str(AZURE), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def write_scenario(tmp_path: Path, pools: str, trace: str = "{workload: voice-agent, duration_s: 10, seed: 3}") -> Path:
    """A scenario with its own plan of ``pools`` (YAML flow list) and a short synthetic trace."""
    (tmp_path / "plan.yaml").write_text(f"schema_version: 1\nname: test-plan\npools: {pools}\n")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(f"schema_version: 1\nname: test\nplan: plan.yaml\ntrace: {trace}\n")
    return scenario


def test_json_summary_has_every_headline_figure(azure_run: tuple[dict, Path]) -> None:
    summary, _ = azure_run
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["llm_calls"]["count"] == 1000 and summary["sessions"]["count"] == 1000
    assert {"p50", "p99"} <= summary["llm_calls"]["ttft_s"].keys()
    assert {"fleet_usd_per_h", "usd_per_million_tokens", "usd_per_session"} <= summary["cost"].keys()
    assert summary["sla"]["ttft"]["objective_s"] == 0.5 and isinstance(summary["sla"]["all_met"], bool)
    assert summary["run"]["scenario"] == "azure-conv-h100" and summary["run"]["plan"] == "llama8b-h100x2"


def test_out_writes_the_records_as_parquet_and_the_summary_as_json(azure_run: tuple[dict, Path]) -> None:
    summary, out = azure_run
    assert {"llm_calls.parquet", "steps.parquet", "replicas.parquet", "summary.json"} <= {p.name for p in out.iterdir()}
    calls = pd.read_parquet(out / "llm_calls.parquet")
    assert len(calls) == 1000 and (calls["status"] == "completed").sum() == summary["llm_calls"]["completed"]
    written = json.loads((out / "summary.json").read_text())
    assert written["llm_calls"]["ttft_s"] == summary["llm_calls"]["ttft_s"]
    assert sorted(summary["run"]["written"]) == sorted(str(p) for p in out.iterdir())


def test_table_names_latency_sla_and_cost(tmp_path: Path) -> None:
    pools = ("[{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}},"
             " {name: cpu, device: xeon-8480, replicas: 2, concurrency: 8,"
             " models: [whisper-large-v3, kokoro-82m], node_types: [tool, code_exec]}]")
    scenario = write_scenario(tmp_path, pools)
    result = runner.invoke(app, ["simulate", "-s", str(scenario)])
    assert result.exit_code == 0, result.output
    for figure in ("TTFT p50 / p99", "goodput", "plan cost", "traffic-weighted cost", "$ per 1M tokens", "Simulation: test"):
        assert figure in result.stdout


@pytest.mark.parametrize(
    ("pools", "expected"),
    [
        ("[{name: llm, device: h999, replicas: 1, llm: {model: llama-3-8b}}]", "unknown device 'h999'"),
        ("[{name: llm, device: l4, replicas: 1, llm: {model: llama-3.1-405b}}]", "plan pool 'llm': llama-3.1-405b (bf16) does not fit on l4"),
        ("[{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}}]", "plan: no pool serves "),
    ],
    ids=["unknown-device", "model-does-not-fit", "no-pool-for-a-stage"],
)
def test_bad_plan_is_one_error_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pools: str, expected: str
) -> None:
    scenario = write_scenario(tmp_path, pools)
    monkeypatch.setattr(sys, "argv", ["hetsim", "simulate", "--scenario", str(scenario)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("hetsim: error: ") and captured.err.count("\n") == 1
    assert expected in captured.err and "Traceback" not in captured.err + captured.out


def test_missing_scenario_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--scenario", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_missing_scenario_file_is_a_usage_error_without_click_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)  # recent typer vendors click: it may be absent
    monkeypatch.setattr(sys, "argv", ["hetsim", "simulate", "--scenario", str(tmp_path / "nope.yaml")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err and "Traceback" not in captured.err + captured.out


def _burst_trace(tmp_path: Path, calls: int, window_s: float, prompt: int = 1000) -> Path:
    """``calls`` single-call sessions of Llama 3 8B spread evenly over ``window_s`` seconds."""
    from hetsim.io.traces import write_trace
    from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

    steps = [TraceStep(f"s{i}", 0, i * window_s / calls, "chat", NodeType.LLM, model="llama-3-8b",
                       input_tokens=prompt, output_tokens=200) for i in range(calls)]  # fmt: skip
    path = tmp_path / "burst.jsonl"
    write_trace(path, steps, TraceMeta(source="test", format="canonical"))
    return path


def test_an_overloaded_run_says_so_and_counts_every_call(tmp_path: Path) -> None:
    """2,000 calls in 2 s on one H100 (far past what it serves): the verdict says 'overloaded'
    with the numbers behind it, in the table and the JSON, and every call is counted."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("schema_version: 1\nname: one\npools: [{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}}]\n")
    trace = _burst_trace(tmp_path, 2000, 2.0)
    result = runner.invoke(app, ["simulate", "--plan", str(plan), "--trace", str(trace), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    load = summary["load"]
    assert load["overloaded"] is True and load["verdict"].startswith("overloaded: ")
    assert load["ready_in_window"] > load["ended_in_window"] and load["drain_s"] > 10
    calls = summary["llm_calls"]
    assert calls["count"] == 2000 == calls["completed"] + calls["dropped"] + calls["unfinished"]
    table = runner.invoke(app, ["simulate", "--plan", str(plan), "--trace", str(trace)])
    assert table.exit_code == 0 and "│ load " in table.stdout and "│ overloaded " in table.stdout
    assert "percentiles below are over completed calls" in table.stdout


def test_a_light_run_is_not_overloaded(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("schema_version: 1\nname: one\npools: [{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}}]\n")
    result = runner.invoke(app, ["simulate", "--plan", str(plan), "--trace", str(_burst_trace(tmp_path, 200, 400.0)), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["load"]["verdict"].startswith("not overloaded: ")


def test_dropped_calls_are_counted_and_missed_not_left_out_of_the_sla(tmp_path: Path) -> None:
    """Prompts longer than Llama 3 8B's context are dropped: they are counted, the percentiles say
    they are over completed calls, and the TTFT objective counts the drops as misses."""
    from hetsim.io.traces import write_trace
    from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

    steps = [TraceStep(f"s{i}", 0, float(i), "chat", NodeType.LLM, model="llama-3-8b",
                       input_tokens=20_000 if i % 10 == 0 else 500, output_tokens=50) for i in range(100)]  # fmt: skip
    trace = tmp_path / "long.jsonl"
    write_trace(trace, steps, TraceMeta(source="test", format="canonical"))
    (tmp_path / "plan.yaml").write_text("schema_version: 1\nname: one\npools: [{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}}]\n")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(f"schema_version: 1\nname: drops\nplan: plan.yaml\ntrace: {{file: {trace.name}}}\nsla: {{ttft_s: 5.0, percentile: 95}}\n")
    summary = json.loads(runner.invoke(app, ["simulate", "--scenario", str(scenario), "--json"]).stdout)
    calls, ttft = summary["llm_calls"], summary["sla"]["ttft"]
    assert calls["dropped"] == 10 and calls["ttft_s"]["count"] == 90 and "90 of 100" in calls["percentiles_over"]
    assert ttft["attained"] == pytest.approx(0.9) and not ttft["met"] and ttft["misses"] == 10
    assert ttft["value_at_percentile_s"] is None  # infinite: the misses reach past p95 (JSON has no infinity)
    table = runner.invoke(app, ["simulate", "--scenario", str(scenario)]).stdout
    assert "not reached (10 misses: dropped or unfinished)" in table


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [("azure-conv-h100-eagle.yaml", ["chat tp1 eagle k3 a0.70", "a speculative burst is one gap"]),
     ("multi-lora.yaml", ["chat tp1 lora x16 r16", "LoRA adapters (chat)", "calls loaded theirs"])],
)  # fmt: skip
def test_the_table_says_how_each_pool_serves(scenario: str, expected: list[str]) -> None:
    result = runner.invoke(app, ["simulate", "--scenario", str(ROOT / "scenarios" / scenario)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.stdout


def test_a_run_that_misses_its_sla_exits_4_and_says_so_with_its_whole_result(tmp_path: Path) -> None:
    """Exit statuses tell the truth: the same run exits 0 against an SLA it meets and 4 against
    one it misses, printing the whole result (JSON or table) either way."""
    met = tmp_path / "met.yaml"
    met.write_text(AZURE.read_text().replace("plan: plans/", f"plan: {ROOT}/scenarios/plans/")
                   .replace("file: ../", f"file: {ROOT}/"))  # fmt: skip
    missed = tmp_path / "missed.yaml"
    missed.write_text(met.read_text().replace("ttft_s: 0.5", "ttft_s: 0.001"))
    assert runner.invoke(app, ["simulate", "-s", str(met), "--json"]).exit_code == 0
    result = runner.invoke(app, ["simulate", "-s", str(missed), "--json"])
    assert result.exit_code == 4
    assert json.loads(result.stdout)["sla"]["all_met"] is False
    table = runner.invoke(app, ["simulate", "-s", str(missed)])
    assert table.exit_code == 4 and "exit status 4: an SLA is missed" in table.stdout


def test_a_run_with_dropped_calls_and_no_sla_exits_3(tmp_path: Path) -> None:
    """Calls longer than the model's context are dropped (as vLLM refuses them): the run exits 3,
    its JSON whole and counting them."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("schema_version: 1\nname: p\npools: [{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b}}]\n")
    trace = _burst_trace(tmp_path, 2, 1.0, prompt=9000)  # Llama 3 8B holds 8,192 tokens
    result = runner.invoke(app, ["simulate", "--plan", str(plan), "--trace", str(trace), "--json"])
    assert result.exit_code == 3, result.output
    calls = json.loads(result.stdout)["llm_calls"]
    assert (calls["dropped"], calls["completed"]) == (2, 0)


def test_a_speculating_pool_says_how_many_calls_named_their_own_acceptance_rate(tmp_path: Path) -> None:
    """A workload node's acceptance_rate reaches the calls; the summary counts them and gives
    the tokens an iteration yields over the pool's calls (the performance model's E)."""
    workload = yaml.safe_load((ROOT / "workloads" / "chat.yaml").read_text())
    workload["nodes"]["answer"]["acceptance_rate"] = 0.9
    (tmp_path / "chat.yaml").write_text(yaml.safe_dump(workload))
    pools = ("[{name: llm, device: h100-sxm, replicas: 1, llm: {model: llama-3-8b, "
             "speculation: {method: eagle, tokens: 3, acceptance_rate: 0.5}}}]")  # fmt: skip
    scenario = write_scenario(tmp_path, pools, "{workload: chat.yaml, duration_s: 10, seed: 3}")
    result = runner.invoke(app, ["simulate", "--scenario", str(scenario), "--json"])
    assert result.exit_code == 0, result.output
    own = json.loads(result.stdout)["speculation"]["llm"]["calls_with_own_rate"]
    assert own["count"] == own["of"] > 0 and own["min"] == own["max"] == 0.9
    assert own["tokens_per_iteration"] == pytest.approx(expected_tokens(3, 0.9), rel=1e-12)
    assert own["tokens_per_iteration_at_pool_rate"] == pytest.approx(expected_tokens(3, 0.5), rel=1e-12)
    table = runner.invoke(app, ["simulate", "--scenario", str(scenario)])
    assert f"{own['count']} of {own['of']} calls name their own acceptance rate (0.90-0.90)" in " ".join(table.output.split())
