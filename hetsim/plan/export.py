"""A solved placement as a PlanSpec (the schema the simulator and executor read)."""

from __future__ import annotations

import re
from typing import Any

from hetsim.plan.problem import PlacementProblem, Solution
from hetsim.specs.plan import PlanSpec


def _pool_name(stage: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", stage.lower()).strip("-")


def _node_for(problem: PlacementProblem, solution: Solution, device: str) -> str | None:
    """The node type that supplies ``device`` (owned first, then bought)."""
    for node in problem.node_types:
        if device in node.devices and node.owned + solution.extra_nodes.get(node.name, 0) > 0:
            return node.name
    return next((n.name for n in problem.node_types if device in n.devices), None)


def to_plan(
    problem: PlacementProblem, solution: Solution, name: str, kv_link: str, provenance: dict[str, Any]
) -> PlanSpec:
    pools: list[dict[str, Any]] = []
    transfers = []
    for choice in solution.choices:
        stage = problem.stage(choice.stage)
        option, detail = choice.option, stage.detail
        pool: dict[str, Any] = {
            "name": _pool_name(choice.stage), "device": option.device, "node": _node_for(problem, solution, option.device),
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
