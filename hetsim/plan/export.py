"""A solved placement as a PlanSpec (the schema the simulator and executor read)."""

from __future__ import annotations

import re
from typing import Any

from hetsim.plan.problem import Choice, PlacementProblem, Solution
from hetsim.specs.plan import PlanSpec


def _pool_name(stage: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", stage.lower()).strip("-")


def pool_names(solution: Solution) -> dict[Choice, str]:
    """A pool per choice, named after its stage; pools sharing a stage add their option's key."""
    names = {}
    for choice in solution.choices:
        shared = len(solution.choices_of(choice.stage)) > 1
        names[choice] = _pool_name(f"{choice.stage}:{choice.option.key}" if shared else choice.stage)
    return names


def _weight(choice: Choice, shared: list[Choice]) -> float:
    """A pool's share of its stage's traffic: its share of the stage's planned capacity (the
    last pool takes the remainder, so that the shares sum to exactly 1)."""
    capacity = [c.replicas * c.option.capacity_per_replica for c in shared]
    shares = [c / sum(capacity) for c in capacity]
    index = shared.index(choice)
    return 1.0 - sum(shares[:-1]) if index == len(shared) - 1 else shares[index]


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
    names = pool_names(solution)
    for choice in solution.choices:
        stage = problem.stage(choice.stage)
        option, detail = choice.option, stage.detail
        pool: dict[str, Any] = {
            "name": names[choice], "device": option.device, "node": node_for(option.device, max(choice.replicas, 1) * option.devices_per_replica),
            "replicas": max(choice.replicas, 1), "tp": option.detail.get("tp", 1), "pp": option.detail.get("pp", 1),
        }  # fmt: skip
        shared = solution.choices_of(choice.stage)
        if len(shared) > 1:
            pool["weight"] = _weight(choice, shared)
        node_type = detail.get("node_type")
        if node_type == "llm":
            pool["llm"] = {
                "model": detail["model"], "stage": option.detail["stage"], "dtype": option.detail["dtype"],
                "max_num_seqs": option.detail["batch"],
                **({"max_batch_tokens": option.detail["max_batch_tokens"]} if "max_batch_tokens" in option.detail else {}),
            }  # fmt: skip
            if option.detail.get("ep", 1) > 1:  # an expert-parallel replica: its split and expert options
                pool.update(ep=option.detail["ep"], dp_attention=option.detail["dp_attention"])
                pool["llm"].update({key: option.detail[key] for key in ("expert_balancing", "redundant_experts", "overlap")})
            if "speculation" in option.detail:
                pool["llm"]["speculation"] = dict(option.detail["speculation"])
            if "lora" in option.detail:  # its calls name adapters: route each to a replica holding its adapter
                pool["llm"]["lora"] = dict(option.detail["lora"])
                pool["routing"] = "adapter-affinity"
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
        for source in solution.choices_of(transfer.source):
            for target in solution.choices_of(transfer.target):
                transfers.append({
                    "model": problem.stage(transfer.source).detail["model"], "prefill_pool": names[source],
                    "decode_pool": names[target], "link": kv_link,
                })  # fmt: skip
    return PlanSpec.model_validate(
        {"schema_version": 1, "name": name, "pools": pools, "kv_transfers": transfers, "provenance": provenance}
    )
