"""The prefix cache lives in free KV memory: running sequences take precedence, idle cached
blocks are evicted (least recent first) when allocation needs them."""

import pandas as pd
import pytest

from hetsim.sim.build import build_simulation
from hetsim.sim.engine import SimConfig
from hetsim.workload.trace import NodeType, TraceStep
from tests.sim.conftest import llm_pool, plan, trace_frame


def _trace(fillers: int) -> pd.DataFrame:
    """A session whose second call reuses its first call's 3,000-token prompt two seconds later;
    meanwhile ``fillers`` long calls take the KV memory."""
    steps = [
        TraceStep("s", 0, 0.0, "first", NodeType.LLM, model="llama-3-8b", input_tokens=3000, output_tokens=2),
        TraceStep("s", 1, 0.0, "think", NodeType.EXTERNAL, parents=(0,), duration_s=2.0),
        TraceStep("s", 2, 0.0, "second", NodeType.LLM, parents=(1,), model="llama-3-8b", input_tokens=3500,
                  output_tokens=2, cached_prefix_tokens=3000),
    ]  # fmt: skip
    steps += [
        TraceStep(f"f{i}", 0, 0.5, "filler", NodeType.LLM, model="llama-3-8b", input_tokens=2300, output_tokens=3000)
        for i in range(fillers)
    ]
    return trace_frame(steps)


def _run(hardware, model_catalog, memory: float, fillers: int, max_skip: int = 1_000_000):
    sim = build_simulation(
        plan(llm_pool(memory_utilization=memory)), _trace(fillers), hardware, model_catalog, config=SimConfig(max_skip)
    )
    sim.run()
    return sim, sim.frames()["llm_calls"].set_index(["session_id", "step_id"])


def test_running_sequences_evict_an_idle_cached_prompt_when_memory_runs_short(hardware, model_catalog):
    _, alone = _run(hardware, model_catalog, 0.25, fillers=0)
    sim, crowded = _run(hardware, model_catalog, 0.25, fillers=6)
    assert alone.loc[("s", 2), "cached_tokens"] == 2816  # 11 whole 256-token blocks of the 3,000
    assert crowded.loc[("s", 2), "cached_tokens"] < 2816  # the fillers' KV took part of it
    cache = sim.llm_routes["llama-3-8b"].servers[0].cache
    assert cache.evicted > 0 and len(cache) <= cache.capacity


def test_with_memory_to_spare_the_cache_keeps_the_prompt(hardware, model_catalog):
    sim, calls = _run(hardware, model_catalog, 0.9, fillers=6)
    assert calls.loc[("s", 2), "cached_tokens"] == 2816
    assert sim.llm_routes["llama-3-8b"].servers[0].cache.evicted == 0


@pytest.mark.parametrize("fillers", [0, 6])
def test_event_skipping_sees_the_same_cache_as_the_per_iteration_reference(hardware, model_catalog, fillers):
    _, fast = _run(hardware, model_catalog, 0.25, fillers)
    _, slow = _run(hardware, model_catalog, 0.25, fillers, max_skip=1)
    columns = ["cached_tokens", "preemptions", "first_token_s", "done_s", "tbt_max_s", "stall_max_s"]
    pd.testing.assert_frame_equal(fast[columns], slow[columns], rtol=1e-9)
