"""A stage served by pools on different devices: the router weighs their replicas by the
plan's weights, and every record names the pool that served it."""

import numpy as np
import pandas as pd
import pytest

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.sim.build import build_simulation
from hetsim.specs.plan import PlanSpec
from tests.sim.conftest import poisson_llm_trace


def _trace(calls: int, rate_per_s: float) -> pd.DataFrame:
    return poisson_llm_trace(np.random.default_rng(7), calls, rate_per_s, model="llama-3.1-8b")


def _plan(weights: tuple[float, float], disaggregated: bool) -> PlanSpec:
    stage = "decode" if disaggregated else "aggregated"
    shared = [
        {"name": "on-h100", "device": "h100-sxm", "replicas": 2, "weight": weights[0],
         "llm": {"model": "llama-3.1-8b", "stage": stage}},
        {"name": "on-a100", "device": "a100-80gb-sxm", "replicas": 1, "weight": weights[1],
         "llm": {"model": "llama-3.1-8b", "stage": stage}},
    ]  # fmt: skip
    pools = shared
    transfers = []
    if disaggregated:
        pools = [{"name": "prefill", "device": "h100-sxm", "replicas": 1,
                  "llm": {"model": "llama-3.1-8b", "stage": "prefill"}}, *shared]  # fmt: skip
        transfers = [{"model": "llama-3.1-8b", "prefill_pool": "prefill", "decode_pool": p["name"], "link": "roce-400"}
                     for p in shared]  # fmt: skip
    return PlanSpec.model_validate({"schema_version": 1, "name": "shared", "pools": pools, "kv_transfers": transfers})


def _served(plan: PlanSpec) -> dict:
    sim = build_simulation(plan, _trace(600, 40.0), load_catalog(), load_models())
    sim.run()
    frames = sim.frames()
    calls = frames["llm_calls"]
    assert (calls.status == "completed").all()
    column = "decode_pool" if plan.kv_transfers else "pool"
    return {"calls": calls[column].value_counts().to_dict(), "replicas": frames["replicas"]}


@pytest.mark.parametrize("disaggregated", [False, True])
def test_calls_split_between_a_stages_pools_as_their_weights_say(disaggregated):
    heavy = _served(_plan((0.8, 0.2), disaggregated))["calls"]
    light = _served(_plan((0.3, 0.7), disaggregated))["calls"]
    assert set(heavy) == {"on-h100", "on-a100"}
    # weights steer traffic; outstanding requests still count (a slower pool's queue pushes back)
    assert heavy["on-h100"] / 600 > 0.75
    assert light["on-a100"] / 600 > 2 * heavy["on-a100"] / 600


def test_replica_records_name_each_pool_with_its_own_replica_indexes():
    replicas = _served(_plan((0.5, 0.5), False))["replicas"]
    by_pool = replicas.groupby("pool")["replica"].apply(sorted).to_dict()
    assert by_pool == {"on-h100": [0, 1], "on-a100": [0]}
    assert set(replicas.set_index("pool").loc["on-a100", ["device"]]) == {"a100-80gb-sxm"}


def test_pools_sharing_a_stage_must_carry_weights_that_sum_to_one():
    with pytest.raises(ValueError, match="weight"):
        _plan((0.5, 0.6), False)
    plan = _plan((0.5, 0.5), False).model_dump(mode="json")
    plan["pools"][1].pop("weight")
    with pytest.raises(ValueError, match="expected a 'weight' on each"):
        PlanSpec.model_validate(plan)


def test_a_model_cannot_be_served_both_aggregated_and_disaggregated():
    plan = _plan((0.5, 0.5), True).model_dump(mode="json")
    plan["pools"].append({"name": "agg", "device": "h100-sxm", "replicas": 1, "llm": {"model": "llama-3.1-8b"}})
    with pytest.raises(ValueError, match="both aggregated and disaggregated"):
        PlanSpec.model_validate(plan)
