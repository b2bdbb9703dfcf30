"""A solved placement as a PlanSpec (the schema the simulator and executor read)."""

from __future__ import annotations

import re
from typing import Any

from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.specs.plan import PlanSpec


def _pool_name(stage: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", stage.lower()).strip("-")


def _node_assigner(problem: PlacementProblem, solution: Solution):
    """Hand out devices node type by node type (owned first, then bought), so each pool is
    labelled with the node type its devices come from."""
    left = {
        (node.name, device): per_node * (node.owned + solution.extra_nodes.get(node.name, 0))
        for node in problem.node_types
        for device, per_node in node.devices.items()
    }

    def assign(device: str, count: int) -> str | None:
        for (node, kind), free in left.items():
            if kind == device and free >= count:
                left[node, kind] = free - count
                return node
        return next((node for (node, kind), free in left.items() if kind == device and free > 0), None)

    return assign


def to_plan(
    problem: PlacementProblem, solution: Solution, name: str, kv_link: str, provenance: dict[str, Any]
) -> PlanSpec:
    pools: list[dict[str, Any]] = []
    transfers = []
    node_for = _node_assigner(problem, solution)
    for choice in solution.choices:
        stage = problem.stage(choice.stage)
        option, detail = choice.option, stage.detail
        pool: dict[str, Any] = {
            "name": _pool_name(choice.stage), "device": option.device, "node": node_for(option.device, max(choice.replicas, 1) * option.devices_per_replica),
            "replicas": max(choice.replicas, 1), "tp": option.detail.get("tp", 1), "pp": option.detail.get("pp", 1),
        }  # fmt: skip
        node_type = detail.get("node_type")
        if node_type == "llm":
            pool["llm"] = {
                "model": detail["model"], "stage": option.detail["stage"], "dtype": option.detail["dtype"],
                "max_num_seqs": option.detail["batch"],
            }  # fmt: skip
        elif node_type in ("tool", "code_exec"):
            pool["node_types"] = [node_type]
            pool["concurrency"] = option.detail.get("concurrency", 1)
        elif node_type == "retrieval":
            pool["node_types"] = ["retrieval"]
            pool["vector_index"] = option.detail["vector_index"]
        else:
            pool["models"] = [detail["model"]]
        pools.append(pool)
    for transfer in problem.transfers:
        if solution.choice(transfer.source) and solution.choice(transfer.target):
            transfers.append({
                "model": problem.stage(transfer.source).detail["model"], "prefill_pool": _pool_name(transfer.source),
                "decode_pool": _pool_name(transfer.target), "link": kv_link,
            })  # fmt: skip
    return PlanSpec.model_validate(
        {"schema_version": 1, "name": name, "pools": pools, "kv_transfers": transfers, "provenance": provenance}
    )
