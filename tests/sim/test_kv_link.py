"""KV transfers share their prefill replica's link: a FIFO queue per link, waits recorded."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetsim.metrics.summary import summarize
from hetsim.sim.kv_link import KvLinks
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, trace_frame


def _split_plan(link: str = "ethernet-25", prefill_replicas: int = 1):
    return plan(
        llm_pool("prefill", "h100-sxm", stage="prefill", replicas=prefill_replicas),
        llm_pool("decode", "h100-sxm", stage="decode", replicas=2),
        kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": link},),
    )


def _burst(calls: int, prompt: int = 4000) -> object:
    """``calls`` prompts at once: their prefills end together and their caches queue on the link."""
    return trace_frame(
        [
            TraceStep(f"s{i}", 0, 0.0, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=prompt, output_tokens=20)
            for i in range(calls)
        ]
    )


def test_transfers_on_one_link_queue_behind_each_other_and_latency_does_not_hold_it():
    links = KvLinks(replicas=2, bandwidth_bytes_per_s=1e9, latency_s=0.5, kv_bytes_per_token=1e6)
    assert links.send(0, 100, now=1.0) == (0.6, 0.0)  # 0.1 s on the wire, then 0.5 s latency
    transfer, wait = links.send(0, 100, now=1.05)  # waits for the first to leave the link at 1.1 s
    assert wait == pytest.approx(0.05) and transfer == pytest.approx(0.05 + 0.1 + 0.5)
    assert links.send(1, 100, now=1.05) == (0.6, 0.0)  # another replica's link is free
    assert links.send(0, 100, now=2.0) == (0.6, 0.0)  # the first link emptied at 1.2 s
    assert links.busy_s == pytest.approx([0.3, 0.1]) and links.transfers == [3, 1]


@given(st.lists(st.tuples(st.floats(0, 10), st.integers(1, 5000)), min_size=1, max_size=40))
def test_a_link_sends_one_cache_at_a_time_in_order_and_never_idles_while_one_waits(sends):
    links = KvLinks(replicas=1, bandwidth_bytes_per_s=2e8, latency_s=1e-3, kv_bytes_per_token=1e5)
    previous_end = 0.0
    for now, tokens in sorted(sends):
        sending = tokens * 1e5 / 2e8
        transfer, wait = links.send(0, tokens, now)
        start = now + wait
        assert start == pytest.approx(max(now, previous_end), abs=1e-12)
        assert transfer == pytest.approx(wait + 1e-3 + sending)
        previous_end = start + sending
    assert links.busy_s[0] == pytest.approx(sum(t * 1e5 / 2e8 for _, t in sends))


def test_a_burst_of_prefills_waits_for_the_link_and_the_summary_reports_queueing(simulate):
    frames = simulate(_split_plan(), _burst(6))
    calls = frames["llm_calls"].sort_values("kv_wait_s")
    assert (calls.status == "completed").all()
    assert calls.kv_wait_s.iloc[0] == 0.0 and calls.kv_wait_s.iloc[-1] > 0
    links = frames["kv_links"]
    assert links.transfers.sum() == 6 and links.wait_s.sum() == pytest.approx(calls.kv_wait_s.sum())
    # each transfer's own time is the same; the waits make up the rest
    own = calls.kv_transfer_s - calls.kv_wait_s
    np.testing.assert_allclose(own, own.iloc[0], rtol=1e-12)
    summary = summarize(frames, [])
    kv = summary["kv_transfers"]
    assert kv["count"] == 6 and kv["wait_s"]["p99"] > 0 and "FIFO" in kv["queueing"]
    assert kv["link_utilization"]["prefill[0]"] == pytest.approx(links.busy_s.iloc[0] / summary["duration_s"])


def test_more_prefill_replicas_mean_more_links_and_less_waiting(simulate):
    one = simulate(_split_plan(prefill_replicas=1), _burst(8))["llm_calls"]
    two = simulate(_split_plan(prefill_replicas=2), _burst(8))["llm_calls"]
    assert two.kv_wait_s.sum() < one.kv_wait_s.sum()


def test_event_skipping_records_the_same_link_waits(simulate):
    fast, slow = simulate(_split_plan(), _burst(10)), simulate(_split_plan(), _burst(10), max_skip=1)
    columns = ["kv_transfer_s", "kv_wait_s", "first_token_s", "done_s", "tbt_max_s", "stall_max_s"]
    np.testing.assert_allclose(fast["llm_calls"][columns], slow["llm_calls"][columns], rtol=1e-9)


@pytest.mark.parametrize(("routing", "expected"), [("round-robin", [0, 1, 0, 1]), ("least-outstanding", [0, 0, 0, 0])])
def test_decode_placement_follows_the_decode_pools_own_routing(simulate, routing, expected):
    the_plan = plan(
        llm_pool("prefill", "h100-sxm", stage="prefill"),  # least outstanding (the default)
        {**llm_pool("decode", "h100-sxm", stage="decode", replicas=2), "routing": routing},
        kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "ethernet-25"},),
    )
    spaced = trace_frame(  # one call at a time: every decode replica is idle when the next arrives
        [TraceStep(f"s{i}", 0, 10.0 * i, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=500, output_tokens=10)
         for i in range(4)]
    )  # fmt: skip
    calls = simulate(the_plan, spaced)["llm_calls"].sort_values("arrival_s")
    assert calls["decode_replica"].astype(int).tolist() == expected
