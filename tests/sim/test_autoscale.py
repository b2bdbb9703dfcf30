"""Autoscaled pools (``hetsim.sim.autoscale``): replicas start after a cold start and stop after
draining; routers only see serving replicas; nothing is lost; a pool that cannot scale runs as
if it did not autoscale; the cold start (provisioning, engine start, weight bytes over the node's
bandwidth) shows in the peak's latency; policies follow their published rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from hetsim.api.simulate import SimulateRequest, simulate
from hetsim.api.workloads import synthesize_trace
from hetsim.errors import ScenarioError
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.metrics.scaling import replicas_over_time, state_intervals
from hetsim.sim.autoscale import PoolObservation, queue_length, sla_headroom, target_utilization
from hetsim.sim.build import build_simulation, cold_start, llm_replica
from hetsim.specs.plan import AutoscaleSpec, PlanSpec, PoolSpec
from hetsim.specs.workload import DiurnalArrival
from hetsim.workload.frame import steps_to_frame

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PLAN = ROOT / "scenarios" / "plans" / "chat-l4-autoscaled.yaml"
CHAT = ROOT / "workloads" / "chat.yaml"
# A day compressed to two hours: 5x between trough (t = 0) and peak (t = 3600 s).
DAY = DiurnalArrival(process="diurnal", mean_rate_per_s=4.0, peak_to_trough=5, period_s=7200, peak_at_s=3600)


def plan_with(replicas: int = 1, **autoscale) -> PlanSpec:
    """The shipped autoscaled chat plan with ``replicas`` up at the start and its autoscale block changed."""
    spec = yaml.safe_load(SHIPPED_PLAN.read_text())
    spec["pools"][0]["autoscale"] |= autoscale
    spec["pools"][0]["replicas"] = replicas
    return PlanSpec.model_validate(spec)


def day_trace(duration_s: float = 7200.0, seed: int = 3) -> pd.DataFrame:
    return steps_to_frame(synthesize_trace(CHAT, duration_s, seed, arrival=DAY).steps)


def run(plan: PlanSpec, trace: pd.DataFrame) -> dict[str, pd.DataFrame]:
    sim = build_simulation(plan, trace, load_catalog("datasheet"), load_models())
    sim.run()
    return sim.frames()


@pytest.fixture(scope="module")
def trace() -> pd.DataFrame:
    return day_trace()


@pytest.fixture(scope="module")
def day(trace: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return run(plan_with(), trace)


def test_a_diurnal_day_scales_replicas_up_and_down_and_loses_no_call(day: dict, trace: pd.DataFrame) -> None:
    calls, scaling = day["llm_calls"], day["scaling"]
    assert len(calls) == len(trace) and (calls["status"] == "completed").all()  # nothing dropped or left
    timeline = replicas_over_time(scaling)
    at = {h: timeline[timeline.time_s <= h * 3600 + 1e-9]["up"].iloc[-1] for h in (0.25, 1.0, 1.9)}
    assert at[0.25] < at[1.0] > at[1.9]  # up towards the peak, down after it
    assert (scaling["state"] == "starting").sum() >= 3 and (scaling["state"] == "draining").sum() >= 3
    # a start serves after exactly the cold start, unless it was stopped before (then it is shorter)
    pool, hardware = plan_with().pools[0], load_catalog("datasheet")
    weights = llm_replica(pool, hardware, load_models(), {}).weight_bytes_per_device
    seconds, _ = cold_start(pool, weights, hardware)
    ordered = scaling.sort_values(["replica", "time_s"], kind="stable")
    after = ordered.groupby("replica")[["state", "time_s"]].shift(-1)
    starts = ordered["state"] == "starting"
    took = (after["time_s"] - ordered["time_s"])[starts]
    served = after["state"][starts] == "serving"
    assert served.any() and np.allclose(took[served], seconds) and (took[~served] < seconds).all()


def test_routers_send_calls_only_to_serving_replicas(day: dict) -> None:
    calls, scaling = day["llm_calls"], day["scaling"]
    intervals = state_intervals(scaling, float(calls["done_s"].max()))
    serving = intervals[intervals.state == "serving"]
    for replica, mine in calls.groupby("replica"):
        spans = serving[serving.replica == replica]
        arrived = mine["arrival_s"].to_numpy()
        inside = np.zeros(len(arrived), dtype=bool)
        for span in spans.itertuples(index=False):
            inside |= (arrived >= span.start_s) & (arrived <= span.end_s)
        assert inside.all(), f"replica {replica}: {int((~inside).sum())} calls arrived while it was not serving"


def test_a_draining_replica_finishes_its_calls_before_it_is_off(day: dict) -> None:
    calls, scaling = day["llm_calls"], day["scaling"]
    offs = scaling[scaling.state == "off"]
    drains = scaling[scaling.state == "draining"]
    assert len(drains)
    for drain in drains.itertuples(index=False):
        off = offs[(offs.replica == drain.replica) & (offs.time_s >= drain.time_s)]["time_s"].min()
        mine = calls[(calls.replica == drain.replica) & (calls.arrival_s <= drain.time_s)]
        if not math.isnan(off):
            assert (mine["done_s"][mine["done_s"] >= drain.time_s] <= off).all()


def test_a_slower_weight_load_raises_the_peak_hour_ttft() -> None:
    # a day compressed to an hour: demand rises 5x in 30 minutes, a replica needed every few
    # minutes; a start 5 minutes longer (16 GB at 50 MB/s) leaves the peak short of replicas
    day = DAY.model_copy(update={"period_s": 3600.0, "peak_at_s": 1800.0})
    trace = steps_to_frame(synthesize_trace(CHAT, 3600.0, 3, arrival=day).steps)
    fast = run(plan_with(weight_read_gbytes_per_s=25.0), trace)["llm_calls"]
    slow = run(plan_with(weight_read_gbytes_per_s=0.05), trace)["llm_calls"]

    def peak_ttft_p99(calls: pd.DataFrame) -> float:
        peak = calls[(calls.arrival_s >= 1800.0 - 450.0) & (calls.arrival_s < 1800.0 + 450.0)]  # the peak "hour"
        return float(np.quantile(peak["ttft_s"], 0.99))

    assert (slow["status"] == "completed").all() and (fast["status"] == "completed").all()
    assert peak_ttft_p99(fast) < 2.0 < 10 * 2.0 < peak_ttft_p99(slow)  # the SLA's 2 s met, then missed by far


def test_a_pool_that_cannot_scale_runs_as_the_same_pool_without_autoscale() -> None:
    trace = day_trace(1800.0)
    pinned = run(plan_with(3, min_replicas=3, max_replicas=3), trace.copy())
    spec = yaml.safe_load(SHIPPED_PLAN.read_text())
    spec["pools"][0]["replicas"] = 3
    del spec["pools"][0]["autoscale"]
    plain = run(PlanSpec.model_validate(spec), trace.copy())
    pd.testing.assert_frame_equal(pinned["llm_calls"], plain["llm_calls"])
    assert set(pinned["scaling"]["state"]) == {"serving"} and plain["scaling"].empty


def test_the_cold_start_is_provisioning_engine_start_and_weights_over_the_nodes_nic_share() -> None:
    pool = plan_with().pools[0]
    seconds, parts = cold_start(pool, 16e9, load_catalog("datasheet"))
    # l4-8-pcie: 2 x roce-100 (12.5 GB/s each) shared by 8 L4s
    assert parts == pytest.approx({"provision_s": 60.0, "engine_start_s": 60.0, "weights_s": 16e9 / (2 * 12.5e9 / 8)})
    assert seconds == pytest.approx(sum(parts.values()))
    measured = plan_with(weight_read_gbytes_per_s=2.0).pools[0]
    assert cold_start(measured, 16e9, load_catalog("datasheet"))[1]["weights_s"] == pytest.approx(8.0)


def test_weights_from_storage_need_the_nodes_storage_profile(trace: pd.DataFrame) -> None:
    with pytest.raises(
        ScenarioError, match=r"autoscale.weights_from: expected node 'l4-8-pcie' to profile 'storage.read_bandwidth'"
    ):
        run(plan_with(weights_from="storage"), trace.head(20))
    spec = yaml.safe_load(SHIPPED_PLAN.read_text())
    del spec["pools"][0]["node"]
    with pytest.raises(
        ScenarioError, match=r"expected the pool's 'node' .* or autoscale.weight_read_gbytes_per_s, got neither"
    ):
        run(PlanSpec.model_validate(spec), trace.head(20))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"replicas": 20}, "replicas: expected the replicas up at the start, within autoscale's [1, 16], got 20"),
        ({"autoscale": {"max_replicas": 0}}, "max_replicas"),
        (
            {"autoscale": {"min_replicas": 4, "max_replicas": 2}},
            "autoscale.max_replicas: expected >= min_replicas (4), got 2",
        ),
        ({"autoscale": {"policy": "sla-headroom", "target": None}}, "autoscale.target: expected the TTFT objective"),
        ({"autoscale": {"target": 1.5}}, "expected a busy share in (0, 1] for 'target-utilization', got 1.5"),
        (
            {"autoscale": {"policy": "random"}},
            "expected one of target-utilization, queue-length, sla-headroom or a dotted path",
        ),
    ],
)
def test_bad_autoscale_blocks_are_one_line_errors(change: dict, message: str) -> None:
    spec = yaml.safe_load(SHIPPED_PLAN.read_text())
    pool = spec["pools"][0]
    for key, value in change.items():
        pool[key] = pool[key] | value if isinstance(value, dict) else value
    with pytest.raises(ValidationError) as caught:
        PlanSpec.model_validate(spec)
    assert message in str(caught.value)


def test_pools_sharing_a_stage_cannot_autoscale() -> None:
    spec = yaml.safe_load(SHIPPED_PLAN.read_text())
    second = dict(spec["pools"][0], name="chat-2", weight=0.5)
    del second["autoscale"]
    spec["pools"] = [dict(spec["pools"][0], weight=0.5), second]
    with pytest.raises(ValidationError, match="autoscale applies to a pool that serves its stage alone, got it on"):
        PlanSpec.model_validate(spec)


def seen(**figures) -> PoolObservation:
    base = dict(pool="p", now_s=0.0, interval_s=15.0, serving=4, starting=0, draining=0, min_replicas=1, max_replicas=9,
                busy_share=0.5, occupancy=math.nan, outstanding=0, waiting=0, recent_ttft_s=(), target=None, headroom=0.25)  # fmt: skip
    return PoolObservation(**(base | figures))


def test_target_utilization_is_kubernetes_hpas_rule_with_its_tolerance() -> None:
    assert target_utilization(seen(busy_share=0.7 * 1.5)) == 6  # ceil(4 x 1.5)
    assert target_utilization(seen(busy_share=0.35)) == 2  # ceil(4 x 0.5)
    assert target_utilization(seen(busy_share=0.75, starting=1)) == 5  # within 10%: as many as are up
    assert (
        target_utilization(seen(occupancy=0.9, busy_share=1.0, target=0.6)) == 6
    )  # occupancy rules an LLM decode pool


def test_queue_length_keeps_the_target_outstanding_per_replica() -> None:
    assert queue_length(seen(outstanding=33, target=8)) == 5
    assert queue_length(seen(outstanding=0, target=8)) == 0  # the autoscaler clamps to the minimum


def test_sla_headroom_adds_replicas_with_the_excess_and_sheds_one_when_well_inside() -> None:
    slow = tuple([0.5] * 5 + [3.0] * 5)  # p90 3 s, above (1 - 0.25) x 2 s = 1.5 s
    assert sla_headroom(seen(recent_ttft_s=slow, target=2.0)) > 4
    assert sla_headroom(seen(recent_ttft_s=(0.2,) * 10, target=2.0)) == 3
    assert sla_headroom(seen(recent_ttft_s=(1.0,) * 10, target=2.0)) == 4
    assert sla_headroom(seen(recent_ttft_s=(), outstanding=0, target=2.0)) == 3


def scale_to_max(observation: PoolObservation) -> int:
    """A policy of one's own (by dotted path): always the most."""
    return observation.max_replicas


def answers_a_float(observation: PoolObservation) -> float:
    return 2.5


def test_a_policy_of_your_own_is_named_by_dotted_path_and_checked(trace: pd.DataFrame) -> None:
    frames = run(plan_with(policy="tests.sim.test_autoscale:scale_to_max", max_replicas=4), trace.head(400))
    assert replicas_over_time(frames["scaling"])["up"].max() == 4
    with pytest.raises(
        ScenarioError, match=r"autoscale policy 'tests.sim.test_autoscale:answers_a_float': expected a whole"
    ):
        run(plan_with(policy="tests.sim.test_autoscale:answers_a_float"), trace.head(400))


def test_simulate_bills_replicas_above_the_minimum_per_device_hour_beyond_the_free_devices(tmp_path: Path) -> None:
    plan = yaml.safe_load(SHIPPED_PLAN.read_text())
    plan["pools"][0]["replicas"] = 8
    plan["pools"][0]["autoscale"] |= {"min_replicas": 8, "max_replicas": 14}  # a whole node, then rented L4s
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    scenario = {"schema_version": 1, "name": "burst", "plan": "plan.yaml", "tco": "paper",
                "trace": {"workload": str(CHAT), "duration_s": 3600, "seed": 2,
                          "arrival": {"process": "poisson", "rate_per_s": 9.0}}}  # fmt: skip
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    summary = simulate(SimulateRequest(tmp_path / "scenario.yaml"))
    scaled, cost = summary["autoscaling"]["chat"], summary["cost"]
    assert scaled["peak_replicas_up"] > 8 and scaled["mean_replicas_up"] > 8
    node = load_catalog("datasheet").node("l4-8-pcie")
    rental_per_l4 = node.price.rental.si * 3600.0 / 8
    assert cost["nodes"] == {"l4-8-pcie": 1}
    # the burst: devices above the node's 8, averaged over the run, at the L4's rental share
    assert cost["burst_usd_per_h"]["chat"] == pytest.approx((scaled["mean_replicas_up"] - 8) * rental_per_l4, rel=1e-6)
    assert cost["fleet_usd_per_h"] == pytest.approx(node.price.rental.si * 3600.0 + cost["burst_usd_per_h"]["chat"])


def test_an_autoscaled_pools_spec_accepts_the_shipped_defaults() -> None:
    spec = AutoscaleSpec(min_replicas=1, max_replicas=2, provision_s=0, engine_start_s=0)
    assert (spec.interval_s, spec.scale_down_window_s, spec.policy) == (15.0, 300.0, "target-utilization")
    assert PoolSpec(name="t", device="xeon-8480", replicas=1, node_types=("tool",), autoscale=spec).autoscale == spec
