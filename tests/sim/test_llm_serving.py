"""LLM serving semantics of the engine."""

import numpy as np
import pandas as pd
import pytest

from hetsim.errors import ScenarioError
from hetsim.perf.serving import estimate_request
from hetsim.perf.transformer import kv_bytes_per_token
from hetsim.sim.build import build_simulation, llm_replica
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace, trace_frame


def test_single_request_on_h100_reproduces_the_performance_model_exactly(simulate, hardware, model_catalog):
    the_plan = plan(llm_pool())
    trace = trace_frame(
        [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=1000, output_tokens=200)]
    )
    call = simulate(the_plan, trace)["llm_calls"].iloc[0]
    expected = estimate_request(llm_replica(the_plan.pools[0], hardware, model_catalog, {}), 1000, 200, 1)
    assert call.ttft_s == pytest.approx(expected.ttft_s, rel=1e-12)
    assert call.tbt_mean_s == pytest.approx(expected.tpot_s, rel=1e-12)
    assert call.e2e_s == pytest.approx(expected.e2e_s, rel=1e-12)


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_event_skipping_matches_the_per_iteration_reference(simulate, rng, preemption):
    """Skipping identical decode iterations must not change any record (small KV forces preemption)."""
    trace = poisson_llm_trace(rng, 300, rate=30.0)
    the_plan = plan(llm_pool(replicas=2, memory_utilization=0.25, preemption=preemption, max_num_seqs=64))
    fast = simulate(the_plan, trace)
    slow = simulate(the_plan, trace, max_skip=1)
    columns = ["first_token_s", "done_s", "admitted_s", "preemptions", "cached_tokens", "replica"]
    pd.testing.assert_frame_equal(fast["llm_calls"][columns], slow["llm_calls"][columns], rtol=1e-9, atol=1e-9)
    assert fast["replicas"]["steps"].sum() == slow["replicas"]["steps"].sum()
    assert fast["replicas"]["events"].sum() < slow["replicas"]["events"].sum() / 3


def test_kv_pressure_causes_preemption_and_every_call_still_completes(simulate, rng):
    trace = poisson_llm_trace(rng, 200, rate=100.0)
    calls = simulate(plan(llm_pool(memory_utilization=0.235, max_num_seqs=256)), trace)["llm_calls"]
    assert (calls.status == "completed").all()
    assert calls.preemptions.sum() > 0


def test_a_call_that_can_never_fit_is_dropped_with_a_reason(simulate):
    trace = trace_frame(
        [
            TraceStep("a", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=9000, output_tokens=100),
            TraceStep("b", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=100, output_tokens=10),
        ]
    )
    calls = simulate(plan(llm_pool()), trace)["llm_calls"].set_index("session_id")
    assert calls.loc["a", "status"] == "dropped" and "exceeds context" in calls.loc["a", "reason"]
    assert calls.loc["b", "status"] == "completed"


def test_prefix_caching_reuses_blocks_of_the_previous_call(simulate):
    trace = trace_frame(
        [
            TraceStep("s", 0, 0.0, "turn1", NodeType.LLM, model="llama-3-8b", input_tokens=2048, output_tokens=20),
            TraceStep(
                "s",
                1,
                0.0,
                "turn2",
                NodeType.LLM,
                parents=(0,),
                model="llama-3-8b",
                input_tokens=3000,
                output_tokens=20,
                cached_prefix_tokens=2068,
            ),
        ]
    )
    calls = simulate(plan(llm_pool()), trace)["llm_calls"].set_index("step_id")
    assert calls.loc[1, "cached_tokens"] == 2048  # 8 whole 256-token blocks
    no_cache = simulate(plan(llm_pool(prefix_caching=False)), trace)["llm_calls"].set_index("step_id")
    assert no_cache.loc[1, "cached_tokens"] == 0
    assert calls.loc[1, "ttft_s"] < no_cache.loc[1, "ttft_s"]


def test_disaggregated_second_token_includes_the_kv_transfer_of_eq_1_to_3(simulate, hardware, model_catalog):
    the_plan = plan(
        llm_pool("prefill", "h100-sxm", stage="prefill"),
        llm_pool("decode", "gaudi3", stage="decode"),
        kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
    )
    trace = trace_frame(
        [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=4096, output_tokens=2)]
    )
    call = simulate(the_plan, trace)["llm_calls"].iloc[0]
    arch = model_catalog.model("llama-3-8b").architecture
    # Eq. (3): 2 * layers * d_model * (n_kv / n_heads) * ISL * BPE, here with BS = 1 and BPE = 2.
    kv_bytes = 2 * 32 * 4096 * (8 / 32) * 4096 * 2
    assert kv_bytes == kv_bytes_per_token(arch, "bf16") * 4096
    link = hardware.link("roce-400")
    transfer = link.latency.si + kv_bytes / link.bandwidth.si
    assert call.kv_transfer_s == pytest.approx(transfer)
    decode = llm_replica(the_plan.pools[1], hardware, model_catalog, {})
    first_decode_step = decode.decode_run_times([4096], 1)[0]
    second_token_gap = call.done_s - call.first_token_s
    assert second_token_gap == pytest.approx(transfer + first_decode_step, rel=1e-9)


def test_same_seed_gives_identical_records(simulate):
    first = simulate(plan(llm_pool(replicas=2)), poisson_llm_trace(np.random.default_rng(7), 200, 20.0))
    second = simulate(plan(llm_pool(replicas=2)), poisson_llm_trace(np.random.default_rng(7), 200, 20.0))
    pd.testing.assert_frame_equal(first["llm_calls"], second["llm_calls"])
    pd.testing.assert_frame_equal(first["steps"], second["steps"])


@pytest.mark.parametrize("policy", ["round-robin", "least-outstanding", "prefix-aware"])
def test_more_replicas_never_raise_mean_latency(simulate, policy):
    trace = poisson_llm_trace(np.random.default_rng(3), 400, rate=40.0)
    means = [
        simulate(plan({**llm_pool(replicas=r), "routing": policy}), trace)["llm_calls"].e2e_s.mean() for r in (1, 2, 4)
    ]
    assert means[0] >= means[1] >= means[2]


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (llm_pool(device="h100-sxmx"), r"plan pool 'llm': unknown device 'h100-sxmx'"),
        (llm_pool(model="llama-3-70b"), r"plan pool 'llm': llama-3-70b \(bf16\) does not fit on h100-sxm at tp=1"),
        (llm_pool(model="llama-3-70b-typo"), r"plan pool 'llm': unknown model 'llama-3-70b-typo'"),
    ],
)
def test_bad_plans_fail_before_simulating(hardware, model_catalog, pool, message):
    trace = trace_frame(
        [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=10, output_tokens=2)]
    )
    with pytest.raises(ScenarioError, match=message):
        build_simulation(plan(pool), trace, hardware, model_catalog)


def test_a_stage_the_trace_needs_without_a_pool_is_an_error(hardware, model_catalog):
    trace = trace_frame(
        [
            TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=10, output_tokens=2),
            TraceStep("s", 1, 0.0, "search", NodeType.TOOL, parents=(0,), duration_s=0.5),
        ]
    )
    with pytest.raises(ScenarioError, match="no pool serves tool steps"):
        build_simulation(plan(llm_pool()), trace, hardware, model_catalog)
