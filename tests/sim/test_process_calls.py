"""Agents as SimPy code: a process issues LLM calls against the plan's servers and waits on them
as events (``Simulation.llm_call``), beside the trace's calls or without a trace."""

from __future__ import annotations

import pytest

from hetsim.api.agents import agent_simulation
from hetsim.errors import ScenarioError
from hetsim.perf.serving import estimate_request
from hetsim.sim.build import build_simulation, llm_replica
from hetsim.sim.process import LlmCallRecord
from hetsim.workload.trace import NodeType, TraceStep
from tests.conftest import REPO
from tests.sim.conftest import llm_pool, plan, trace_frame


def _simulation(hardware, model_catalog, the_plan, trace=None):
    return build_simulation(the_plan, trace, hardware, model_catalog)


def test_a_process_waits_on_its_calls_and_gets_their_records(hardware, model_catalog):
    """A ReAct-style agent: think (LLM), act (a 2 s tool), answer (LLM continuing the
    conversation). Alone on an idle replica, the first call's record is the performance model's
    own estimate; the answer reuses the first call's blocks from the prefix cache."""
    the_plan = plan(llm_pool())
    sim = _simulation(hardware, model_catalog, the_plan)
    env, seen = sim.env, []

    def agent(env):
        thought = yield sim.llm_call("llama-3-8b", prompt_tokens=1000, output_tokens=200)
        seen.append(("thought", env.now, thought))
        yield env.timeout(2.0)
        answer = yield sim.llm_call("llama-3-8b", 1600, 50, continues=thought)
        seen.append(("answer", env.now, answer))

    env.process(agent(env))
    sim.run()
    (_, thought_at, thought), (_, answer_at, answer) = seen
    expected = estimate_request(llm_replica(the_plan.pools[0], hardware, model_catalog, {}), 1000, 200, 1)
    assert isinstance(thought, LlmCallRecord) and thought.is_completed
    assert thought.ttft_s == pytest.approx(expected.ttft_s, rel=1e-12)
    assert thought.latency_s == pytest.approx(expected.e2e_s, rel=1e-12)
    assert thought_at == thought.done_s  # the process resumed when the call's last token came
    assert answer.issued_s == pytest.approx(thought.done_s + 2.0)
    assert answer.cached_tokens == 1024  # 4 full 256-token blocks of the 1,200-token conversation so far
    assert answer_at == answer.done_s and sim.process_calls == [thought, answer]


def test_process_calls_share_the_replicas_with_the_trace(hardware, model_catalog):
    """Eight callers at once on one replica queue and batch with a trace call: each waits its
    turn, and the trace's own records are unchanged in form."""
    trace = trace_frame(
        [TraceStep("t", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=4000, output_tokens=100)]
    )
    sim = _simulation(hardware, model_catalog, plan(llm_pool(max_num_seqs=4)), trace)
    done = []

    def caller(env, i):
        record = yield sim.llm_call("llama-3-8b", 500 + i, 30)
        done.append(record)

    for i in range(8):
        sim.env.process(caller(sim.env, i))
    sim.run()
    frames = sim.frames()
    assert len(done) == 8 and all(r.is_completed for r in done)
    assert frames["llm_calls"]["session_id"].tolist() == ["t"]  # the trace's records hold the trace's calls
    admitted = sorted(r.admitted_s for r in done)
    assert admitted[4] > admitted[0]  # four sequences at a time: the rest waited for a slot
    assert frames["replicas"]["steps"].sum() > 0


def test_a_process_call_on_a_disaggregated_plan_crosses_to_the_decode_pool(hardware, model_catalog):
    the_plan = plan(
        llm_pool("prefill", stage="prefill"),
        llm_pool("decode", stage="decode", replicas=2),
        kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
    )
    sim = _simulation(hardware, model_catalog, the_plan)
    out = []

    def agent(env):
        out.append((yield sim.llm_call("llama-3-8b", 2000, 40)))

    sim.env.process(agent(sim.env))
    sim.run()
    (record,) = out
    assert (record.pool, record.decode_pool, record.decode_replica) == ("prefill", "decode", 0)
    assert record.kv_transfer_s > 0 and record.first_token_s < record.done_s


def test_a_call_that_cannot_fit_resumes_the_process_with_its_reason(hardware, model_catalog):
    sim = _simulation(hardware, model_catalog, plan(llm_pool()))
    out = []

    def agent(env):
        out.append((yield sim.llm_call("llama-3-8b", 9000, 100)))

    sim.env.process(agent(sim.env))
    sim.run()
    assert out[0].status == "dropped" and "exceeds context" in out[0].reason


def test_a_call_to_a_model_the_plan_does_not_serve_is_one_line(hardware, model_catalog):
    sim = _simulation(hardware, model_catalog, plan(llm_pool()))
    with pytest.raises(
        ScenarioError, match=r"llm_call: model: expected a model the plan serves \(llama-3-8b\), got 'gpt-5'"
    ):
        sim.llm_call("gpt-5", 10, 10)
    with pytest.raises(ScenarioError, match="llm_call: output_tokens: expected a whole number of tokens >= 1, got 0"):
        sim.llm_call("llama-3-8b", 10, 0)


def test_agent_simulation_reads_a_plan_file():
    sim = agent_simulation(REPO / "scenarios/plans/llama8b-h100x2.yaml")
    out = []

    def agent(env):
        for _ in range(3):
            out.append((yield sim.llm_call("llama-3-8b", 800, 64)))
            yield env.timeout(0.5)

    sim.env.process(agent(sim.env))
    sim.run()
    assert [r.pool for r in out] == ["chat"] * 3 and sim.env.now == pytest.approx(out[-1].done_s + 0.5)


def test_a_process_call_names_its_lora_adapter_and_waits_for_its_load_once(hardware, model_catalog):
    """A custom agent's calls name a LoRA adapter: the first loads it over the host link (its
    record says so and how long it waited), the second finds it in its slot."""
    from tests.sim.test_lora_serving import load_s, lora_pool

    sim = _simulation(hardware, model_catalog, plan(lora_pool()))
    seen = []

    def agent(env):
        seen.append((yield sim.llm_call("llama-3-8b", 200, 20, adapter="support-bot")))
        yield env.timeout(100.0)
        seen.append((yield sim.llm_call("llama-3-8b", 200, 20, adapter="support-bot")))

    sim.env.process(agent(sim.env))
    sim.run()
    cold, warm = seen
    assert (cold.adapter, cold.adapter_loaded, warm.adapter_loaded) == ("support-bot", True, False)
    assert cold.adapter_wait_s == pytest.approx(load_s(model_catalog), rel=1e-12) and warm.adapter_wait_s == 0.0
    assert cold.ttft_s - warm.ttft_s == pytest.approx(load_s(model_catalog), rel=1e-9)


def test_an_adapter_on_a_pool_without_lora_is_refused_in_one_line(hardware, model_catalog):
    sim = _simulation(hardware, model_catalog, plan(llm_pool()))
    with pytest.raises(ScenarioError, match=r"llm_call: adapter: expected llama-3-8b served with LoRA .*got a call naming 'x'"):
        sim.llm_call("llama-3-8b", 100, 10, adapter="x")


@pytest.mark.parametrize("adapter", [7, ""])
def test_an_adapter_that_is_no_name_is_refused_in_one_line(hardware, model_catalog, adapter):
    """The same one-line error in the compiled build (no annotation turns it into a TypeError)."""
    sim = _simulation(hardware, model_catalog, plan(llm_pool()))
    with pytest.raises(ScenarioError, match=r"^llm_call: adapter: expected an adapter's name \(a non-empty string\)"):
        sim.llm_call("llama-3-8b", 100, 10, adapter=adapter)
