"""Expert-parallel pools in a plan and in the simulator (issue 19 item 1): the pool's split and
options reach the replica, bad splits fail when the plan is read, and skipping decode
iterations changes no record (the reference per-iteration mode agrees with the fast one)."""

import pytest
from pydantic import ValidationError

from hetsim.sim.build import llm_replica
from hetsim.specs.parallel import CommOverlap
from tests.sim.conftest import plan, poisson_llm_trace
from tests.sim.test_fast_paths import _assert_skipping_changes_nothing

EP_OPTIONS = {"expert_balancing": True, "redundant_experts": 32, "overlap": "two-batch", "dtype": "fp8"}


def _ep_pool(name="moe", replicas=1, stage="aggregated", **pool):
    llm = {"model": "deepseek-v3", "stage": stage, **EP_OPTIONS}
    return {"name": name, "device": "h200-sxm", "replicas": replicas, "ep": 8, "dp_attention": 8, "llm": llm, **pool}


def test_a_pools_split_and_expert_options_reach_its_replica(hardware, model_catalog):
    the_plan = plan(_ep_pool())
    pool = the_plan.pools[0]
    assert pool.devices_per_replica == 8
    replica = llm_replica(pool, hardware, model_catalog, {})
    assert (replica.shard.ep, replica.shard.dp, replica.shard.redundant_experts) == (8, 8, 32)
    assert replica.moe.balancing and replica.moe.overlap == CommOverlap.TWO_BATCH


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"ep": 4}, r"ep: expected 1 or tp x dp_attention = 8, got 4"),
        ({"ep": 1, "dp_attention": 1, "tp": 8}, r"redundant_experts and overlap need expert parallelism \(ep > 1\), got ep=1"),
        ({"ep": 0}, r"ep\n  Input should be greater than or equal to 1"),
    ],
)
def test_a_split_the_engines_cannot_run_fails_when_the_plan_is_read(pool, message):
    with pytest.raises(ValidationError, match=message):
        plan(_ep_pool(**pool))


def test_an_expert_split_the_model_cannot_take_fails_before_simulating(hardware, model_catalog):
    from hetsim.errors import ScenarioError

    the_plan = plan(_ep_pool(ep=16, dp_attention=16, llm={"model": "llama-3-8b"}))
    with pytest.raises(ScenarioError, match=r"plan pool 'moe': llama-3-8b is a dense model"):
        llm_replica(the_plan.pools[0], hardware, model_catalog, {})


def test_skipping_changes_nothing_for_an_expert_parallel_pool(hardware, model_catalog, rng):
    trace = poisson_llm_trace(rng, 200, rate=30.0, model="deepseek-v3")
    _assert_skipping_changes_nothing(hardware, model_catalog, plan(_ep_pool(replicas=2)), trace)


def test_skipping_changes_nothing_for_disaggregated_expert_parallel_pools(hardware, model_catalog, rng):
    the_plan = plan(
        _ep_pool("prefill", stage="prefill"),
        _ep_pool("decode", stage="decode", replicas=2),
        kv_transfers=({"model": "deepseek-v3", "prefill_pool": "prefill", "decode_pool": "decode", "link": "ib-ndr-400"},),
    )
    _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, poisson_llm_trace(rng, 200, rate=20.0, model="deepseek-v3"))
