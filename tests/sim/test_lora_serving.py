"""Multi-LoRA serving in the simulator: adapter loads over the host link, GPU slots held by
calls (LRU among idle ones), the adapter kernels in each step, adapter-affinity routing, and
event skipping unchanged by all of it."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.errors import ScenarioError
from hetsim.perf.lora import adapter_bytes
from hetsim.specs.hardware import DType
from hetsim.specs.plan import LoraModule
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace, trace_frame

QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
LOAD_GBYTES_PER_S = 20.0


def lora_pool(replicas=1, max_loras=2, **lora) -> dict:
    block = {"max_loras": max_loras, "max_lora_rank": 16, "target_modules": QKVO,
             "load_gbytes_per_s": LOAD_GBYTES_PER_S, **lora}  # fmt: skip
    return llm_pool(replicas=replicas, lora=block)


def call(session: str, arrival_s: float, adapter: str | None, prompt=200, output=20) -> TraceStep:
    return TraceStep(session, 0, arrival_s, "chat", NodeType.LLM, model="llama-3-8b", input_tokens=prompt,
                     output_tokens=output, adapter=adapter)  # fmt: skip


def with_adapters(trace: pd.DataFrame, rng: np.random.Generator, count: int) -> pd.DataFrame:
    """The trace with each call naming one of ``count`` adapters (Zipf-like popularity)."""
    weights = 1.0 / np.arange(1, count + 1)
    picks = rng.choice(count, size=len(trace), p=weights / weights.sum())
    trace = trace.copy()
    trace["adapter"] = [f"a{i}" for i in picks]
    return trace


def load_s(model_catalog) -> float:
    arch = model_catalog.model("llama-3-8b").architecture
    return adapter_bytes(arch, 16, [LoraModule(m) for m in QKVO], DType.BF16) / (LOAD_GBYTES_PER_S * 1e9)


def test_a_call_whose_adapter_is_absent_waits_exactly_its_load_more_than_one_whose_adapter_is_held(
    simulate, model_catalog
):
    """The same call twice, far apart: the first loads the adapter (bytes over the host link),
    the second finds it in its slot."""
    calls = simulate(plan(lora_pool()), trace_frame([call("cold", 0.0, "a"), call("warm", 100.0, "a")]))["llm_calls"]
    calls = calls.set_index("session_id")
    ttft = calls["first_token_s"] - calls["arrival_s"]
    assert calls.loc["cold", "adapter_loaded"] == 1 and calls.loc["warm", "adapter_loaded"] == 0
    assert calls.loc["cold", "adapter_wait_s"] == pytest.approx(load_s(model_catalog), rel=1e-12)
    assert calls.loc["warm", "adapter_wait_s"] == 0.0
    assert ttft["cold"] - ttft["warm"] == pytest.approx(load_s(model_catalog), rel=1e-9)


def test_loads_are_serialized_per_replica(simulate, model_catalog):
    """Two absent adapters at once: the second load starts when the first ends."""
    frames = simulate(plan(lora_pool()), trace_frame([call("x", 0.0, "a"), call("y", 0.0, "b")]))
    waits = frames["llm_calls"].set_index("session_id")["adapter_wait_s"]
    assert waits["x"] == pytest.approx(load_s(model_catalog)) and waits["y"] == pytest.approx(2 * load_s(model_catalog))
    assert frames["adapters"]["loads"].tolist() == [2]


def test_a_call_waits_for_a_slot_while_every_slot_is_used_and_lru_never_evicts_an_adapter_in_use(simulate):
    """One slot: b's call must wait until a's long call leaves, then b evicts a."""
    long_a, short_b = call("a", 0.0, "a", output=400), call("b", 0.01, "b", output=5)
    calls = simulate(plan(lora_pool(max_loras=1)), trace_frame([long_a, short_b]))["llm_calls"].set_index("session_id")
    assert calls.loc["b", "admitted_s"] >= calls.loc["a", "done_s"]
    assert calls.loc["b", "adapter_loaded"] == 1


def test_the_least_recently_used_idle_adapter_is_evicted(simulate):
    """Two slots: a, b loaded; a used again; c evicts b (least recent), so a later a is warm."""
    steps = [call("1", 0.0, "a"), call("2", 10.0, "b"), call("3", 20.0, "a"), call("4", 30.0, "c"), call("5", 40.0, "a")]
    frames = simulate(plan(lora_pool(max_loras=2)), trace_frame(steps))
    loaded = frames["llm_calls"].set_index("session_id")["adapter_loaded"]
    assert loaded.tolist() == [1, 1, 0, 1, 0]
    assert frames["adapters"]["evictions"].tolist() == [1]


@settings(max_examples=15, deadline=None)
@given(max_loras=st.integers(1, 3), count=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_a_batch_never_names_more_adapters_than_slots(max_loras, count, seed, hardware, model_catalog):
    from hetsim.sim.build import build_simulation
    from hetsim.sim.engine import SimConfig

    rng = np.random.default_rng(seed)
    trace = with_adapters(poisson_llm_trace(rng, 40, rate=40.0), rng, count)
    sim = build_simulation(plan(lora_pool(max_loras=max_loras)), trace, hardware, model_catalog, config=SimConfig())
    server = sim.llm_routes["llama-3-8b"].servers[0]
    seen: list[int] = []
    original = server.lora.step_s

    def watched(srv, chunks, decoding):
        names = {s.call.adapter for s in srv.running} | {s.call.adapter for s in srv.waiting}
        seen.append(len(names))
        return original(srv, chunks, decoding)

    server.lora.step_s = watched
    sim.run()
    calls = sim.frames()["llm_calls"]
    assert (calls["status"] == "completed").all()
    assert max(seen) <= max_loras


def test_adapter_kernels_lengthen_steps(simulate):
    """The same calls without adapters and with them: LoRA tokens cost their kernels."""
    rng = np.random.default_rng(5)
    base = poisson_llm_trace(rng, 30, rate=5.0)
    adapted = with_adapters(base, np.random.default_rng(6), 1)
    plain = simulate(plan(lora_pool()), base)["replicas"]["busy_s"].sum()
    lora = simulate(plan(lora_pool()), adapted)["replicas"]["busy_s"].sum()
    assert lora > plain * 1.01


def test_adapter_slots_come_out_of_the_kv_cache(simulate):
    trace = trace_frame([call("x", 0.0, None)])
    without = simulate(plan(llm_pool()), trace)["replicas"]["kv_blocks_total"].iloc[0]
    with_slots = simulate(plan(lora_pool(max_loras=8)), trace)["replicas"]["kv_blocks_total"].iloc[0]
    assert with_slots < without


def test_adapter_affinity_routing_sends_a_call_to_a_replica_holding_its_adapter(simulate):
    """Replica 0 loads a; the next call of a goes there even though replica 1 is as idle
    (least-outstanding would pick the lowest index too, so give replica 0 a load first)."""
    steps = [call("warm", 0.0, "a"), call("busy", 10.0, "b", output=2000), call("next", 10.001, "a")]
    for routing, expected in (("adapter-affinity", 0), ("least-outstanding", 1)):
        the_plan = plan({**lora_pool(replicas=2), "routing": routing})
        calls = simulate(the_plan, trace_frame(steps))["llm_calls"].set_index("session_id")
        assert calls.loc["busy", "replica"] == 0
        assert calls.loc["next", "replica"] == expected
        assert calls.loc["next", "adapter_loaded"] == (0 if routing == "adapter-affinity" else 1)


@pytest.mark.parametrize("max_loras", [1, 3])
def test_event_skipping_matches_the_per_iteration_reference_with_lora(simulate, max_loras):
    rng = np.random.default_rng(11)
    trace = with_adapters(poisson_llm_trace(rng, 200, rate=25.0), rng, 6)
    the_plan = plan({**lora_pool(replicas=2, max_loras=max_loras), "routing": "adapter-affinity"})
    fast, slow = simulate(the_plan, trace), simulate(the_plan, trace, max_skip=1)
    columns = ["first_token_s", "done_s", "admitted_s", "preemptions", "cached_tokens", "replica", "adapter_loaded",
               "adapter_wait_s", "tbt_max_s"]  # fmt: skip
    pd.testing.assert_frame_equal(fast["llm_calls"][columns], slow["llm_calls"][columns], rtol=1e-9, atol=1e-9)
    pd.testing.assert_frame_equal(fast["adapters"], slow["adapters"], rtol=1e-9, atol=1e-9)
    assert fast["replicas"]["events"].sum() < slow["replicas"]["events"].sum() / 3
    assert fast["adapters"]["loads"].sum() > 0


def test_a_plan_without_lora_runs_as_before_and_ignores_adapter_names(simulate):
    """Adapter names in the trace change nothing on a pool without 'lora'; no adapter frame."""
    rng = np.random.default_rng(3)
    base = poisson_llm_trace(rng, 60, rate=20.0)
    named = with_adapters(base, np.random.default_rng(4), 5)
    plain, with_names = simulate(plan(llm_pool()), base), simulate(plan(llm_pool()), named)
    pd.testing.assert_frame_equal(plain["llm_calls"], with_names["llm_calls"])
    assert "adapters" not in plain and "adapter" not in plain["llm_calls"].columns


def test_lora_without_a_host_link_is_a_one_line_error(simulate):
    pool = llm_pool(lora={"max_loras": 2})
    with pytest.raises(ScenarioError, match=r"^plan pool 'llm': lora: expected host_link, load_gbytes_per_s or a node"):
        simulate(plan(pool), trace_frame([call("x", 0.0, "a")]))


def test_lora_on_an_expert_mlp_is_a_one_line_error(simulate):
    pool = llm_pool(model="mixtral-8x7b", lora={"load_gbytes_per_s": 20, "target_modules": ["q_proj", "down_proj"]})
    pool["tp"] = 4
    with pytest.raises(ScenarioError, match=r"down_proj of an expert MLP \(MoE\) is not modelled"):
        simulate(plan(pool), trace_frame([call("x", 0.0, None)]))


def test_the_node_profile_host_link_prices_the_load(simulate, hardware, model_catalog):
    pool = llm_pool(lora={"max_loras": 1, "target_modules": QKVO})
    pool["node"] = "hgx-h100-8"
    calls = simulate(plan(pool), trace_frame([call("x", 0.0, "a")]))["llm_calls"]
    arch = model_catalog.model("llama-3-8b").architecture
    expected = adapter_bytes(arch, 16, [LoraModule(m) for m in QKVO], DType.BF16) / hardware.link("pcie5-x16").bandwidth.si
    assert calls["adapter_wait_s"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_adapter_stats_are_plain_counters():
    from hetsim.sim.lora import AdapterStats

    assert dataclasses.asdict(AdapterStats()) == {"loads": 0, "cpu_misses": 0, "evictions": 0, "load_busy_s": 0.0}
