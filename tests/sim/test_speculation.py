"""Speculative decoding in the simulator: bursts of accepted tokens per iteration, the proposer's
memory and time, and event skipping agreeing exactly with the per-iteration reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.api.estimate import EstimateQuestion, estimate
from hetsim.errors import ScenarioError
from hetsim.io.calibration import load_calibration
from hetsim.perf.speculative import SpecMethod, SpeculativeSteps, expected_tokens, speculation_for, with_proposer
from hetsim.sim.build import build_simulation, llm_replica
from hetsim.sim.engine import SimConfig
from hetsim.specs.plan import PlanSpec
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace, trace_frame

CALL_COLUMNS = ["first_token_s", "done_s", "admitted_s", "tbt_max_s", "preemptions", "cached_tokens", "replica"]
EAGLE = {"method": "eagle", "tokens": 3, "acceptance_rate": 0.7}


def _simulation(hardware, model_catalog, the_plan, trace, calibrations=None, **config):
    sim = build_simulation(the_plan, trace, hardware, model_catalog, calibrations, config=SimConfig(**config))
    sim.run()
    return sim


def _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace) -> dict[str, pd.DataFrame]:
    fast = _simulation(hardware, model_catalog, the_plan, trace).frames()
    slow = _simulation(hardware, model_catalog, the_plan, trace, max_skip=1).frames()
    pd.testing.assert_frame_equal(fast["llm_calls"][CALL_COLUMNS], slow["llm_calls"][CALL_COLUMNS], rtol=1e-9)
    assert fast["replicas"]["steps"].sum() == slow["replicas"]["steps"].sum()
    assert fast["replicas"]["events"].sum() < slow["replicas"]["events"].sum()
    fast_gaps = fast["token_gaps"].sort_values(["pool", "replica", "gap_s"]).reset_index(drop=True)
    slow_gaps = slow["token_gaps"].sort_values(["pool", "replica", "gap_s"]).reset_index(drop=True)
    pd.testing.assert_series_equal(
        fast_gaps.groupby("replica")["count"].sum(), slow_gaps.groupby("replica")["count"].sum()
    )
    return fast


def _one_call(output_tokens: int = 200) -> pd.DataFrame:
    return trace_frame(
        [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=1000, output_tokens=output_tokens)]
    )


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
@pytest.mark.parametrize(
    "speculation",
    [EAGLE, {"method": "ngram", "tokens": 4, "acceptance_rate": 0.3}, {"method": "eagle", "tokens": 5, "acceptance_rate": 0.95}],
)
def test_event_skipping_matches_the_per_iteration_reference_when_speculating(
    hardware, model_catalog, rng, preemption, speculation
):
    """Small KV memory forces preemptions mid-burst; every record must be the reference's."""
    the_plan = plan(
        llm_pool(replicas=2, memory_utilization=0.25, max_num_seqs=64, preemption=preemption, speculation=speculation)
    )
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, poisson_llm_trace(rng, 300, rate=30.0))
    assert (frames["llm_calls"]["status"] == "completed").all()
    assert frames["llm_calls"]["preemptions"].sum() > 0


def test_event_skipping_matches_the_reference_with_a_draft_model_on_a_decode_pool(hardware, model_catalog, rng):
    draft = {"method": "draft", "tokens": 4, "acceptance_rate": 0.75, "draft_model": "llama-3.1-8b"}
    the_plan = plan(
        {**llm_pool("prefill", "h100-sxm", model="llama-3.1-70b", stage="prefill"), "tp": 4},
        {**llm_pool("decode", "h100-sxm", model="llama-3.1-70b", stage="decode", speculation=draft), "tp": 4},
        kv_transfers=({"model": "llama-3.1-70b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
    )
    trace = poisson_llm_trace(rng, 200, rate=8.0, model="llama-3.1-70b")
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()


def test_event_skipping_matches_the_reference_for_a_sliding_window_model(hardware, model_catalog, rng):
    trace = poisson_llm_trace(rng, 150, rate=40.0, model="gpt-oss-120b")
    the_plan = plan({**llm_pool(device="h200", model="gpt-oss-120b", memory_utilization=0.46, speculation=EAGLE), "tp": 4})
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()


def test_a_call_emits_bursts_whose_iterations_follow_the_expected_yield(simulate, hardware, model_catalog):
    """One call of 200 tokens: its first token comes from the prefill, the other 199 in
    ceil-or-floor bursts of E tokens each, one token gap per burst (as vLLM's benchmark records
    one inter-token latency per streamed chunk), and its time is the performance model's."""
    speculation = {"method": "eagle", "tokens": 3, "acceptance_rate": 0.8}
    calibrations = {"h100-sxm": load_calibration("h100-sxm")}  # as the estimate prices it
    frames = _simulation(hardware, model_catalog, plan(llm_pool(speculation=speculation)), _one_call(), calibrations).frames()
    yield_per_step = expected_tokens(3, 0.8)
    iterations = frames["replicas"]["steps"].sum() - 1  # one prefill step
    assert iterations == math.ceil(199 / yield_per_step) or iterations == math.ceil(199 / yield_per_step) + 1
    gaps = frames["token_gaps"]
    assert gaps["count"].sum() == iterations  # a gap per burst, not per token
    call = frames["llm_calls"].iloc[0]
    assert (gaps["gap_s"] * gaps["count"]).sum() == pytest.approx(call.done_s - call.first_token_s, rel=1e-12)
    question = EstimateQuestion(model="llama-3-8b", device="h100-sxm", input_tokens=1000, output_tokens=200,
                                spec_method="eagle", spec_tokens=3, acceptance_rate=0.8)  # fmt: skip
    answer = estimate(question)
    # the estimate prices every iteration at the mean context; the simulator at each one's own
    assert call.tbt_mean_s == pytest.approx(answer["tpot_s"], rel=0.05)


def test_speculation_with_high_acceptance_speeds_a_lone_call_as_the_estimate_says(simulate):
    plain = simulate(plan(llm_pool()), _one_call())["llm_calls"].iloc[0]
    fast = simulate(plan(llm_pool(speculation={"method": "eagle", "tokens": 3, "acceptance_rate": 0.8})), _one_call())
    speedup = plain.tbt_mean_s / fast["llm_calls"].iloc[0].tbt_mean_s
    assert 2.0 < speedup < 2.6  # EAGLE's published 2.7-3.5x on 7-13B chat models at batch 1 (arXiv 2401.15077) come from longer accepted runs


@pytest.mark.parametrize("method", ["eagle", "ngram"])
def test_speculation_that_accepts_nothing_is_never_faster(simulate, rng, method):
    trace = poisson_llm_trace(rng, 150, rate=20.0)
    plain = simulate(plan(llm_pool()), trace)["llm_calls"]
    idle = simulate(plan(llm_pool(speculation={"method": method, "tokens": 3, "acceptance_rate": 0.0})), trace)
    calls = idle["llm_calls"]
    assert (calls["done_s"].to_numpy() >= plain["done_s"].to_numpy() - 1e-12).all()
    assert calls["e2e_s"].mean() > plain["e2e_s"].mean()


def test_a_draft_model_takes_kv_memory_from_the_target(hardware, model_catalog):
    pool = PlanSpec.model_validate(
        {"schema_version": 1, "name": "t", "pools": [{**llm_pool(model="llama-3.1-70b"), "tp": 4}]}
    ).pools[0]
    replica = llm_replica(pool, hardware, model_catalog, {})
    draft = speculation_for(replica, SpecMethod.DRAFT, 4, 0.7, model_catalog.model("llama-3.1-8b"))
    head = speculation_for(replica, SpecMethod.EAGLE, 4, 0.7)
    lookup = speculation_for(replica, SpecMethod.NGRAM, 4, 0.7)
    with_draft, with_head = with_proposer(replica, draft), with_proposer(replica, head)
    assert with_proposer(replica, lookup).kv_capacity_tokens == replica.kv_capacity_tokens
    assert with_draft.kv_capacity_tokens < with_head.kv_capacity_tokens < replica.kv_capacity_tokens
    # the draft's weights (8B over 4 devices, bf16: 4 GB each) and its KV per token (a third of the 70B's)
    per_token = replica.kv_bytes_per_token_per_device
    expected_tokens_lost = replica.kv_capacity_tokens - (
        replica.kv_capacity_tokens * per_token - draft.proposer.weight_bytes_per_device
    ) / (per_token + draft.proposer.kv_bytes_per_token_per_device)
    lost = replica.kv_capacity_tokens - with_draft.kv_capacity_tokens
    assert lost == pytest.approx(expected_tokens_lost, abs=replica.limits.kv_block_tokens)


@settings(max_examples=60, deadline=None)
@given(tokens=st.integers(1, 8), rate=st.floats(0.0, 1.0), start=st.integers(0, 10_000), length=st.integers(1, 500))
def test_bursts_yield_the_expected_tokens_over_any_stretch(hardware, model_catalog, tokens, rate, start, length):
    pool = PlanSpec.model_validate({"schema_version": 1, "name": "t", "pools": [llm_pool()]}).pools[0]
    steps = SpeculativeSteps(
        llm_replica(pool, hardware, model_catalog, {}),
        speculation_for(llm_replica(pool, hardware, model_catalog, {}), SpecMethod.NGRAM, tokens, rate),
    )
    bursts = [steps.burst(i) for i in range(start, start + length)]
    assert all(1 <= b <= tokens + 1 for b in bursts)
    assert abs(sum(bursts) - length * steps.yield_per_step) < 1.0 + 1e-9


@pytest.mark.parametrize(
    ("speculation", "message"),
    [
        ({"method": "eagle", "tokens": 3}, "speculation.acceptance_rate: expected a value for method 'eagle'"),
        ({"method": "draft", "tokens": 3, "acceptance_rate": 0.7}, "speculation.draft_model: expected it with method 'draft'"),
        ({"method": "medusa", "tokens": 3, "acceptance_rate": 0.7}, "speculation.method: expected one of draft, eagle, mtp, ngram"),
        ({"method": "mtp", "tokens": 0}, "tokens"),
    ],
)
def test_an_incomplete_speculation_is_refused_in_one_line(speculation, message):
    with pytest.raises(ValueError, match=message):
        plan(llm_pool(speculation=speculation))


def test_speculation_on_a_prefill_pool_is_refused():
    with pytest.raises(ValueError, match="speculation: expected on an aggregated or decode pool"):
        plan(llm_pool(stage="prefill", speculation=EAGLE))


def test_an_unknown_draft_model_is_a_scenario_error_naming_the_pool(simulate):
    draft = {"method": "draft", "tokens": 3, "acceptance_rate": 0.7, "draft_model": "no-such-model"}
    with pytest.raises(ScenarioError, match=r"^plan pool 'llm': llm.speculation: .*no-such-model"):
        simulate(plan(llm_pool(speculation=draft)), _one_call())


def test_mtp_defaults_to_deepseeks_published_figures():
    serving = plan(llm_pool(speculation={"method": "mtp"})).pools[0].llm
    assert serving is not None and serving.speculation is not None
    assert (serving.speculation.proposed, serving.speculation.rate) == (1, 0.85)
    assert np.isclose(expected_tokens(1, 0.85), 1.85)


def test_the_shipped_expert_parallel_mtp_plan_simulates_as_its_reference(hardware, model_catalog, rng):
    from hetsim.io.plans import load_plan
    from tests.conftest import REPO

    the_plan = load_plan(REPO / "scenarios/plans/deepseek-v3-ep-mtp.yaml")
    trace = poisson_llm_trace(rng, 120, rate=20.0, model="deepseek-v3")
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()


def test_speculation_with_lora_adapters_matches_its_reference(
    hardware, model_catalog, rng
):
    lora = {"max_loras": 4, "max_lora_rank": 16, "max_cpu_loras": 16, "load_gbytes_per_s": 25.0}
    trace = poisson_llm_trace(rng, 150, rate=20.0)
    trace["adapter"] = [f"ft{i % 7}" for i in range(len(trace))]
    with_lora = plan({**llm_pool(replicas=2, lora=lora, speculation=EAGLE), "routing": "adapter-affinity"})
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, with_lora, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()
    plain = _simulation(hardware, model_catalog, plan({**llm_pool(replicas=2, lora=lora), "routing": "adapter-affinity"}),
                        trace).frames()["llm_calls"]  # fmt: skip
    assert frames["llm_calls"]["tbt_mean_s"].median() < plain["tbt_mean_s"].median()  # the bursts still pay


# ---- acceptance per call (trace column, workload node, process call) --------------------------


def _with_rates(trace: pd.DataFrame, rates: list[float | None]) -> pd.DataFrame:
    trace = trace.copy()
    trace["acceptance_rate"] = [np.nan if r is None else r for r in (rates * len(trace))[: len(trace)]]
    return trace


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_event_skipping_matches_the_reference_when_calls_accept_at_their_own_rates(
    hardware, model_catalog, rng, preemption
):
    """Calls of four rates (one the pool's) share batches, each group taking its own bursts;
    small KV memory forces preemptions mid-burst."""
    the_plan = plan(
        llm_pool(replicas=2, memory_utilization=0.25, max_num_seqs=64, preemption=preemption, speculation=EAGLE)
    )
    trace = _with_rates(poisson_llm_trace(rng, 300, rate=30.0), [0.95, None, 0.2, 0.55])
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()
    assert frames["llm_calls"]["preemptions"].sum() > 0


def test_event_skipping_matches_the_reference_with_own_rates_on_a_sliding_window_decode_pool(
    hardware, model_catalog, rng
):
    the_plan = plan(
        {**llm_pool("prefill", "h200", model="gpt-oss-120b", stage="prefill"), "tp": 4},
        {**llm_pool("decode", "h200", model="gpt-oss-120b", stage="decode", speculation=EAGLE,
                    memory_utilization=0.46), "tp": 4},
        kv_transfers=({"model": "gpt-oss-120b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
    )  # fmt: skip
    trace = _with_rates(poisson_llm_trace(rng, 150, rate=40.0, model="gpt-oss-120b"), [0.9, 0.3, None])
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()


@pytest.mark.parametrize("rate", [0.0, 0.45, 0.9])
def test_a_calls_own_rate_serves_it_as_a_pool_of_that_rate_would(simulate, rate):
    """A lone call naming its rate on a pool of another rate: the same records, exactly, as
    the call without a rate on a pool of its rate."""
    own = simulate(plan(llm_pool(speculation=EAGLE)), _with_rates(_one_call(), [rate]))
    pools = simulate(plan(llm_pool(speculation={**EAGLE, "acceptance_rate": rate})), _one_call())
    pd.testing.assert_frame_equal(own["llm_calls"][CALL_COLUMNS], pools["llm_calls"][CALL_COLUMNS], rtol=0, atol=0)
    pd.testing.assert_frame_equal(own["token_gaps"], pools["token_gaps"])


def test_in_one_batch_the_call_that_accepts_more_finishes_first_in_fewer_bursts(simulate):
    """Two calls of 300 tokens arriving together decode in the same iterations (same
    verification width), so their times differ only by their bursts: E(3, 0.9) = 3.44 tokens
    an iteration against E(3, 0.2) = 1.25."""
    steps = [TraceStep(f"s{i}", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=500, output_tokens=300)
             for i in range(2)]  # fmt: skip
    frames = simulate(plan(llm_pool(speculation=EAGLE)), _with_rates(trace_frame(steps), [0.9, 0.2]))
    calls = frames["llm_calls"].set_index("session_id")
    assert calls.loc["s0", "done_s"] < calls.loc["s1", "done_s"]
    high, low = (calls.loc[s, "tbt_mean_s"] for s in ("s0", "s1"))
    # tbt_mean is decode time over tokens; the same iterations carry 3.44 vs 1.25 tokens each
    ratio = expected_tokens(3, 0.9) / expected_tokens(3, 0.2)
    assert low / high == pytest.approx(ratio, rel=0.15)  # the low call also runs alone at the end (a narrower batch)


def test_a_process_call_names_its_acceptance_rate(hardware, model_catalog):
    """``llm_call(acceptance_rate=...)`` is served as a trace call of that rate."""
    records = {}
    for rate in (None, 0.9):
        sim = build_simulation(plan(llm_pool(speculation=EAGLE)), None, hardware, model_catalog, config=SimConfig())

        def agent(sim=sim, rate=rate):
            record = yield sim.llm_call("llama-3-8b", 1000, 200, acceptance_rate=rate)
            records[rate] = record

        sim.env.process(agent())
        sim.run()
    traced = _simulation(hardware, model_catalog, plan(llm_pool(speculation=EAGLE)), _with_rates(_one_call(), [0.9]))
    call = traced.frames()["llm_calls"].iloc[0]
    assert records[0.9].done_s - records[0.9].issued_s == pytest.approx(call.done_s - call.arrival_s, rel=1e-12)
    assert records[0.9].done_s < records[None].done_s


@pytest.mark.parametrize("rate", [1.5, -0.1, "high", True])
def test_a_process_calls_rate_outside_zero_to_one_is_refused_in_one_line(hardware, model_catalog, rate):
    sim = build_simulation(plan(llm_pool(speculation=EAGLE)), None, hardware, model_catalog, config=SimConfig())
    with pytest.raises(ScenarioError, match=r"^llm_call: acceptance_rate: expected a number in \[0, 1\] or None"):
        sim.llm_call("llama-3-8b", 10, 10, acceptance_rate=rate)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rates=st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=1, max_size=5),
    tokens=st.integers(1, 6),
)
def test_any_mix_of_call_rates_skips_events_exactly_as_the_reference(hardware, model_catalog, seed, rates, tokens):
    the_plan = plan(llm_pool(memory_utilization=0.25, max_num_seqs=32,
                             speculation={"method": "ngram", "tokens": tokens, "acceptance_rate": 0.6}))  # fmt: skip
    trace = _with_rates(poisson_llm_trace(np.random.default_rng(seed), 60, rate=25.0), rates)
    frames = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert (frames["llm_calls"]["status"] == "completed").all()
