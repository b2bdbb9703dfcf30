"""Token gaps: every gap between two output tokens of a call is recorded, stalls included.

Invariants: a completed call's gaps add up to its decode time (first token to last) and
number ``output_tokens - 1``; the worst gap of a call is at least every stall it met; event
skipping records the same gaps, worst gaps and stalls as the per-iteration reference.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetsim.perf.decode_run import AffineDecodeRun
from hetsim.sim.token_gaps import TokenGaps
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace

DISAGGREGATED = plan(
    llm_pool("prefill", "h100-sxm", stage="prefill"),
    llm_pool("decode", "gaudi3", stage="decode", replicas=2, memory_utilization=0.3),
    kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
)


def _gap_totals(frames: dict[str, pd.DataFrame]) -> tuple[int, float]:
    gaps = frames["token_gaps"]
    return int(gaps["count"].sum()), float((gaps["gap_s"] * gaps["count"]).sum())


def _assert_gaps_cover_every_decode_interval(frames: dict[str, pd.DataFrame]) -> None:
    calls = frames["llm_calls"]
    done = calls[calls.status == "completed"]
    count, total_s = _gap_totals(frames)
    assert count == int((done.output_tokens - 1).sum())
    assert total_s == pytest.approx(float((done.done_s - done.first_token_s).sum()), rel=1e-9)
    assert (done.tbt_max_s >= done.stall_max_s).all()


def _sorted_gaps(frames: dict[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    gaps = frames["token_gaps"]
    values = np.repeat(gaps["gap_s"].to_numpy(), gaps["count"].to_numpy())
    return np.sort(values), np.sort(gaps["pool"].astype(str).to_numpy().repeat(gaps["count"].to_numpy()))


def test_a_lone_call_has_one_gap_per_token_after_the_first_summing_to_its_decode_time(simulate):
    trace = poisson_llm_trace(np.random.default_rng(1), 1, rate=1.0)
    frames = simulate(plan(llm_pool()), trace)
    _assert_gaps_cover_every_decode_interval(frames)
    call = frames["llm_calls"].iloc[0]
    assert frames["token_gaps"]["gap_s"].max() == pytest.approx(call.tbt_max_s, rel=1e-12)
    assert call.stall_max_s == 0.0


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
def test_a_preempted_calls_worst_gap_includes_its_stall(simulate, rng, preemption):
    trace = poisson_llm_trace(rng, 200, rate=100.0)
    the_plan = plan(llm_pool(memory_utilization=0.235, max_num_seqs=256, preemption=preemption))
    frames = simulate(the_plan, trace)
    calls = frames["llm_calls"]
    preempted = calls[calls.preemptions > 0]
    assert len(preempted) > 0
    stalled = preempted[preempted.stall_max_s > 0]
    assert len(stalled) > 0  # calls preempted after their first token stalled between two tokens
    assert (stalled.tbt_max_s >= stalled.stall_max_s).all()
    assert (calls.loc[calls.preemptions == 0, "stall_max_s"] == 0).all()
    # a stall is longer than any plain iteration of the run's calls that never stalled
    assert stalled.stall_max_s.max() > calls.loc[calls.preemptions == 0, "tbt_max_s"].max()
    _assert_gaps_cover_every_decode_interval(frames)


def test_the_hand_off_from_a_prefill_pool_is_a_gap_of_the_decode_pool(simulate, rng):
    frames = simulate(DISAGGREGATED, poisson_llm_trace(rng, 150, rate=15.0))
    calls = frames["llm_calls"]
    many = calls[calls.output_tokens > 1]
    # the second token waited for the KV transfer: that gap is at least the transfer
    assert (many.stall_max_s >= many.kv_transfer_s).all()
    assert set(frames["token_gaps"]["pool"].astype(str)) == {"decode"}
    _assert_gaps_cover_every_decode_interval(frames)


@pytest.mark.parametrize(
    "the_plan",
    [
        plan(llm_pool(replicas=2, memory_utilization=0.25, preemption="recompute", max_num_seqs=64)),
        plan(llm_pool(replicas=2, memory_utilization=0.25, preemption="swap", max_num_seqs=64)),
        DISAGGREGATED,
    ],
    ids=["recompute", "swap", "disaggregated"],
)
def test_event_skipping_records_the_same_token_gaps_worst_gaps_and_stalls(simulate, rng, the_plan):
    """The multiset of gaps (counts exactly; values to the rounding of closed-form pricing)."""
    trace = poisson_llm_trace(rng, 250, rate=30.0)
    fast, slow = simulate(the_plan, trace), simulate(the_plan, trace, max_skip=1)
    columns = ["tbt_max_s", "stall_max_s", "preemptions", "first_token_s", "done_s"]
    pd.testing.assert_frame_equal(fast["llm_calls"][columns], slow["llm_calls"][columns], rtol=1e-9, atol=1e-12)
    fast_values, fast_pools = _sorted_gaps(fast)
    slow_values, slow_pools = _sorted_gaps(slow)
    assert len(fast_values) == len(slow_values) and (fast_pools == slow_pools).all()
    np.testing.assert_allclose(fast_values, slow_values, rtol=1e-9, atol=0)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), memory=st.sampled_from([0.235, 0.3, 0.9]), rate=st.sampled_from([5.0, 60.0]))
def test_gaps_of_every_call_add_up_to_its_decode_time_under_any_load(simulate, seed, memory, rate):
    trace = poisson_llm_trace(np.random.default_rng(seed), 40, rate=rate)
    _assert_gaps_cover_every_decode_interval(simulate(plan(llm_pool(memory_utilization=memory)), trace))


def test_a_closed_form_run_expands_to_exactly_its_step_times():
    run = AffineDecodeRun.of_terms(0.004, ((2.0, 1e-6, 3e-9, 2e-6, 1e-9), (0.5, 3e-6, 0.0, 1e-6, 2e-9)))
    gaps = TokenGaps(groups=2)
    gaps.add_run(run, 3, 700, count=5)
    gaps.add(0.25, 1)
    values, counts = gaps.arrays()
    assert values.tolist() == [0.25, *(run.step_s(j) for j in range(3, 700))]  # bit for bit
    assert counts.tolist() == [1] + [5] * 697
