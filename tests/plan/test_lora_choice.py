"""The planner serves the LoRA adapters a workload's calls name: slots out of KV memory, adapter
kernels in the steps, a slot count per pool, loads over the host link; plans carry ``llm.lora``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hetsim.api.plan import plan_fleet
from hetsim.errors import InfeasiblePlanError, ScenarioError
from hetsim.io.fleets import load_fleet
from hetsim.perf.lora import slot_bytes_per_device
from hetsim.perf.transformer import Precision, kv_bytes_per_token
from hetsim.plan.build import _merge
from hetsim.plan.candidates import _replica, decode_options
from hetsim.plan.lora import lora_targets
from hetsim.specs.fleet import LoraChoice
from hetsim.specs.hardware import DType
from hetsim.specs.plan import LoraModule
from tests.conftest import REPO, write_fleet

H100 = [{"node": "hgx-h100-8", "max_count": 4}]
L4 = [{"node": "l4-8-pcie", "max_count": 8}]
LLAMA = "llama-3-8b"


def _fleet(folder: Path, catalog: list[dict], lora: list[dict] | None = None, *, workload: str = "multi-lora-chat",
           verify_s: float = 30.0) -> Path:  # fmt: skip
    options = {"sample_sessions": 300, "verify_duration_s": verify_s, "verify_rounds": 0}
    if lora is not None:
        options["lora"] = lora
    return write_fleet(folder, "t", catalog, [{"workload": workload, "rate_per_s": 5.53}], options, tco="paper")


def _llm_pools(result):
    return [pool for pool in result.plan.pools if pool.llm is not None]


def _stage_inputs(result, stage_suffix: str):
    """(model spec, device models, mean demand, targets) of the plan's LLM stage."""
    key = next(s.name for s in result.problem.stages if s.name.endswith(stage_suffix)).rsplit(":", 1)[0]
    merged = _merge(result.workloads)[key]
    model = result.context["models"].model(merged.model)
    return model, list(result.context["perfs"].values()), merged.mean_demand(key), merged.targets(result.context["headroom"], result.fleet)


def _lora_options(result, stage_suffix: str, lora):
    """The stage's decode options, the stage's adapters served by ``lora`` (None: the fleet's
    choice), and the adapters' targets."""
    model, perfs, demand, targets = _stage_inputs(result, stage_suffix)
    served = lora_targets(model, demand, result.fleet, result.context["hardware"])
    assert served is not None
    chosen = served if lora is None else replace(served, choice=lora)
    return decode_options(model, perfs, demand, replace(targets, lora=chosen)), chosen


@pytest.fixture(scope="module")
def l4_plan(tmp_path_factory):
    return plan_fleet(_fleet(tmp_path_factory.mktemp("l4"), L4, [{"model": LLAMA, "max_loras": [8, 16, 32, 64]}]),
                      verify=False)  # fmt: skip


def test_demand_names_each_adapters_share_of_the_calls_from_the_workloads_popularity(l4_plan):
    """The shares are the workload's Zipf law over all 100 adapters (a sample of 300 sessions
    sees only part of its tail), the most called first."""
    node = next(d for w in l4_plan.workloads for d in w.nodes if d.node_type == "llm")
    shares = [share for _, share in node.adapters]
    assert len(shares) == 100 and shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] / shares[1] == pytest.approx(2**1.1)  # Zipf exponent 1.1
    assert node.adapters[0][0] == "tenant-00"


def test_lora_slots_come_out_of_a_replicas_kv_memory(l4_plan):
    model = l4_plan.context["models"].model(LLAMA)
    perf = l4_plan.context["perfs"]["l4"]
    plain = _replica(model, perf, 1, DType.BF16, 256)
    lora = LoraChoice(model=LLAMA).serving(32)
    served = _replica(model, perf, 1, DType.BF16, 256, lora=lora)
    assert plain is not None and served is not None
    per_token = kv_bytes_per_token(model.architecture, Precision.uniform(DType.BF16).kv_cache)
    lost = (plain.kv_capacity_tokens - served.kv_capacity_tokens) * per_token
    slots = slot_bytes_per_device(model.architecture, 32, 16, tuple(LoraModule), DType.BF16)
    assert slots == pytest.approx(32 * 83.9e6, rel=0.01)  # 42 M parameters of bf16 an adapter
    assert abs(lost - slots) <= 16 * per_token  # to a KV block


def test_a_batch_is_offered_only_where_its_slots_hold_its_calls_adapters(l4_plan):
    options, lora = _lora_options(l4_plan, ":decode", None)
    assert options
    for option in options:
        assert lora.slots_needed(option.detail["batch"]) <= option.detail["lora"]["max_loras"]
    assert {o.detail["lora"]["max_loras"] for o in options} <= {8, 16, 32, 64}


def test_more_slots_cost_kv_memory_and_so_the_largest_batch_on_a_small_device(l4_plan):
    """On one L4 (24 GB, 16 GB of them weights) 32 slots of 84 MB leave room for a smaller batch
    than 16 do, and 64 for none at all."""
    options, _ = _lora_options(l4_plan, ":decode", LoraChoice(model=LLAMA, max_loras=(16, 32, 64)))
    largest: dict[int, int] = {}
    for option in options:
        if option.key.startswith("l4 tp1 lora"):  # one device, no pipeline
            slots = option.detail["lora"]["max_loras"]
            largest[slots] = max(largest.get(slots, 0), option.detail["batch"])
    assert largest[16] > largest.get(32, 0) > largest.get(64, 0) == 0


def test_the_planner_takes_the_fewest_slots_that_hold_its_batch_when_loads_are_cheap(tmp_path):
    result = plan_fleet(_fleet(tmp_path, H100, [{"model": LLAMA, "max_loras": [16, 64, 128]}]), verify=False)
    choice = next(c for c in result.solution.choices if "lora" in c.option.detail)
    model, _, demand, _ = _stage_inputs(result, ":aggregated")
    served = lora_targets(model, demand, result.fleet, result.context["hardware"])
    assert served is not None
    needed = served.slots_needed(choice.option.detail["batch"])
    assert choice.option.detail["lora"]["max_loras"] == min(s for s in (16, 64, 128) if s >= needed)
    assert choice.option.detail["adapter_miss_ratio"] > 0.01  # some calls load their adapter: cheap over PCIe


def test_more_slots_are_chosen_where_adapter_loads_would_break_the_ttft(tmp_path):
    """At 0.05 GB/s an adapter takes 1.7 s to load: missing 1% of calls would break the 2 s TTFT
    p99, so the planner holds every adapter (128 slots) instead of the fewest that hold its batch."""
    slow = [{"model": LLAMA, "max_loras": [16, 64, 128], "load_gbytes_per_s": 0.05}]
    result = plan_fleet(_fleet(tmp_path, H100, slow), verify=False)
    pools = _llm_pools(result)
    assert [pool.llm.lora.max_loras for pool in pools] == [128]
    assert pools[0].llm.lora.load_gbytes_per_s == 0.05
    choice = next(c for c in result.solution.choices if "lora" in c.option.detail)
    assert choice.option.detail["adapter_miss_ratio"] == 0.0


def test_a_plan_carries_lora_and_its_simulation_loads_adapters(tmp_path):
    """Without options.lora the planner serves the adapters with vLLM's defaults (rank 16, all
    seven projections) and slots sized per batch; the verifying simulation loads them."""
    result = plan_fleet(_fleet(tmp_path, H100))
    pools = _llm_pools(result)
    assert pools and all(pool.llm.lora is not None for pool in pools)
    assert all(pool.routing == "adapter-affinity" for pool in pools)
    lora = pools[0].llm.lora
    assert (lora.max_lora_rank, lora.target_modules) == (16, tuple(LoraModule))
    assert all(f"lora x{pool.llm.lora.max_loras} r16" in pool.serving_text for pool in pools)
    frames = result.verification["frames"]
    assert frames["adapters"]["loads"].sum() > 0
    assert frames["llm_calls"]["adapter"].notna().all() and frames["llm_calls"]["adapter_loaded"].sum() > 0
    assert result.verification["met"]


def test_a_workload_naming_no_adapters_is_planned_without_lora(tmp_path):
    result = plan_fleet(_fleet(tmp_path, L4, workload="chat"), verify=False)
    assert all(pool.llm.lora is None for pool in _llm_pools(result))
    assert all("lora" not in c.option.detail for c in result.solution.choices)


def test_the_shipped_multi_lora_fleet_rents_l4s_serving_the_adapters():
    result = plan_fleet(REPO / "scenarios" / "multi-lora-fleet.yaml", verify=False)
    assert all(pool.llm.lora is not None and pool.llm.lora.max_loras in (8, 16, 32, 64) for pool in _llm_pools(result))


# ---- bad fleet input: one line naming the field, what was expected and what came --------------


def test_a_lora_choice_for_a_model_whose_calls_name_no_adapters_is_refused(tmp_path):
    with pytest.raises(InfeasiblePlanError, match=r"^fleet options.lora\[0\].model: expected one of the LLMs whose calls "
                                                  r"name LoRA adapters \(llama-3-8b\), got 'llama-3-70b'$"):  # fmt: skip
        plan_fleet(_fleet(tmp_path, H100, [{"model": "llama-3-70b"}]), verify=False)


def test_a_lora_choice_on_a_workload_without_adapters_names_none(tmp_path):
    with pytest.raises(InfeasiblePlanError, match=r"options.lora\[0\].model: expected one of .* \(none\), got 'llama-3-8b'"):
        plan_fleet(_fleet(tmp_path, L4, [{"model": LLAMA}], workload="chat"), verify=False)


@pytest.mark.parametrize(
    ("choice", "match"),
    [
        ({"max_lora_rank": 24}, r"field 'options.lora.0.max_lora_rank': expected one of \[1, 8, 16, .*\] \(vLLM's\), got 24"),
        ({"adapter_rank": 32}, r"field 'options.lora.0.adapter_rank': expected at most max_lora_rank \(16\), got 32"),
        ({"max_loras": [8, 64], "max_cpu_loras": 32},
         r"field 'options.lora.0.max_cpu_loras': expected at least max_loras \(64\), got 32"),
        ({"max_loras": [0]}, r"field 'options.lora.0.max_loras.0': Input should be greater than or equal to 1"),
        ({"host_link": "pcie9"}, r"field 'options.lora.0.host_link': expected a link \(.*pcie5-x16.*\), got 'pcie9'"),
        ({"target_modules": ["q_proj", "lm_head"]}, r"field 'options.lora.0.target_modules.1': Input should be 'q_proj'"),
        ({"max_loras": [8], "slots": 8}, r"field 'options.lora.0.slots': unknown key"),
    ],
)
def test_a_bad_lora_choice_is_refused_when_the_fleet_is_read(tmp_path, choice, match):
    path = _fleet(tmp_path, H100, [{"model": LLAMA, **choice}])
    with pytest.raises(ScenarioError, match=match) as caught:
        load_fleet(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_two_lora_choices_for_one_model_are_refused(tmp_path):
    with pytest.raises(ScenarioError, match=r"field 'options.lora.1.model': expected each model once, got 'llama-3-8b' again"):
        load_fleet(_fleet(tmp_path, H100, [{"model": LLAMA}, {"model": LLAMA, "max_loras": [4]}]))


def test_adapting_an_expert_mlp_is_refused_naming_the_modules(tmp_path):
    """Mixtral's MLP is a mixture of experts, which hetsim.perf.lora does not adapt: the default
    target modules (all seven) are refused, and attention-only ones plan."""
    spec = yaml.safe_load((REPO / "workloads" / "multi-lora-chat.yaml").read_text())
    spec["nodes"]["answer"]["model"] = "mixtral-8x7b"
    workload = tmp_path / "moe-lora.yaml"
    workload.write_text(yaml.safe_dump(spec))
    with pytest.raises(InfeasiblePlanError, match=r"^fleet options.lora.target_modules \(no entry for mixtral-8x7b, whose "
                                                  r"calls name adapters: all seven\): gate_proj of an expert MLP \(MoE\) "
                                                  r"is not modelled; target q_proj, k_proj, v_proj, o_proj$"):  # fmt: skip
        plan_fleet(_fleet(tmp_path, H100, workload=str(workload)), verify=False)
    attention = [{"model": "mixtral-8x7b", "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}]
    result = plan_fleet(_fleet(tmp_path, H100, attention, workload=str(workload)), verify=False)
    assert all(pool.llm.lora.target_modules == tuple(LoraModule)[:4] for pool in _llm_pools(result))


def test_a_fleet_whose_nodes_name_no_host_link_needs_one_for_lora(tmp_path):
    mi300 = [{"node": "mi300x-8", "max_count": 2}]
    with pytest.raises(InfeasiblePlanError, match=r"^fleet options.lora: expected host_link or load_gbytes_per_s .*got neither$"):
        plan_fleet(_fleet(tmp_path, mi300), verify=False)
    result = plan_fleet(_fleet(tmp_path, mi300, [{"model": LLAMA, "host_link": "pcie5-x16"}]), verify=False)
    assert all(pool.llm.lora.host_link == "pcie5-x16" for pool in _llm_pools(result))
