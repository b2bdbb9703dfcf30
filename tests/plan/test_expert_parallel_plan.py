"""The planner offers expert-parallel replicas for MoE models and chooses them where they pay
(issue 19 item 1): DeepSeek-V3 on an H100/H200 catalog is planned with EP prefill and decode
pools, cheaper than the best tensor-parallel plan, and the solver agrees with brute force."""

from pathlib import Path

import pytest
import yaml

from hetsim.api.plan import plan_fleet
from hetsim.plan.brute import brute_force

WORKLOAD = {
    "schema_version": 1, "name": "dsv3-chat", "description": "DeepSeek-V3 chat: one LLM call per session",
    "entry": "answer",
    "nodes": {"answer": {
        "type": "llm", "model": "deepseek-v3", "shared_prefix_tokens": 0,
        "prompt_tokens": {"dist": "constant", "value": 2000, "source": "assumed: the LMSYS blog's 2000-token inputs"},
        "output_tokens": {"dist": "constant", "value": 500, "source": "assumed: a chat answer"},
    }},
    "edges": [],
    "sla": {"ttft_s": 10.0, "tbt_s": 0.2, "source": "assumed: a throughput-oriented service"},
    "arrival": {"process": "poisson", "rate_per_s": 10, "source": "assumed: a steady load"},
}  # fmt: skip


def _fleet(tmp_path: Path, **options) -> Path:
    workload = tmp_path / "dsv3-chat.yaml"
    workload.write_text(yaml.safe_dump(WORKLOAD))
    fleet = {
        "schema_version": 1, "name": "dsv3", "tco": "paper",
        "catalog": [{"node": "hgx-h100-8", "max_count": 40}, {"node": "hgx-h200-8", "max_count": 40}],
        "demand": [{"workload": str(workload), "rate_per_s": 20, "dtype": "fp8"}],
        "options": {"sample_sessions": 200, "verify_duration_s": 30, "verify_rounds": 1, **options},
    }  # fmt: skip
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    return plan_fleet(_fleet(tmp_path_factory.mktemp("ep")), verify=True)


def test_the_planner_serves_deepseek_v3_with_expert_parallel_pools_that_meet_the_sla(planned):
    pools = {pool.llm.stage.value: pool for pool in planned.plan.pools}
    assert set(pools) == {"prefill", "decode"}
    for pool in pools.values():
        assert pool.ep > 1 and pool.dp_attention == pool.ep and pool.devices_per_replica == pool.ep
        assert pool.llm.expert_balancing and pool.llm.redundant_experts == 32
    assert planned.verification["met"]


def test_expert_parallelism_pays_against_the_best_tensor_parallel_plan(planned, tmp_path):
    tensor_parallel = plan_fleet(_fleet(tmp_path, ep_options=[]), verify=False)
    assert all(pool.ep == 1 for pool in tensor_parallel.plan.pools)
    assert planned.solution.objective < 0.8 * tensor_parallel.solution.objective


def test_the_solver_agrees_with_brute_force_on_the_expert_parallel_problem(planned):
    assert brute_force(planned.problem) == pytest.approx(planned.solution.objective, rel=1e-9)


def test_dense_models_get_no_expert_parallel_options(tmp_path):
    dense = {**WORKLOAD, "nodes": {"answer": {**WORKLOAD["nodes"]["answer"], "model": "llama-3.1-70b"}}}
    workload = tmp_path / "dsv3-chat.yaml"
    fleet = _fleet(tmp_path)
    workload.write_text(yaml.safe_dump(dense))
    result = plan_fleet(fleet, verify=False)
    assert all("ep" not in option.detail for stage in result.problem.stages for option in stage.options)
