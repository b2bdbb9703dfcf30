"""Benchmark: plan 5 workloads on a catalog of 12 accelerator node types (+ CPU servers) with
TP 1/2/4/8 and batch options; print problem size, solve time and optimality gap.

Target (issue 5): within 1% of optimal in at most 30 s on the project's 2-core machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from hetsim.api.plan import plan_fleet

# Every node SKU with a price in the shipped profiles: 11 accelerator types, plus CPU servers
# (with their host CPUs that makes 15 device types).
NODES = [
    "hgx-h100-8",
    "hgx-h200-8",
    "hgx-b200-8",
    "gb200-nvl72-tray",
    "hgx-a100-8",
    "mi300x-8",
    "mi325x-8",
    "gaudi3-8",
    "l40s-8-pcie",
    "l4-8-pcie",
    "a40-8-pcie",
    "cpu-2x-xeon-8480",
    "cpu-2x-epyc-9654",
    "cpu-2x-xeon-6980p",
]
WORKLOADS = [
    ("voice-agent", 2.0),
    ("rag-chatbot", 3.0),
    ("react-tool-agent", 1.0),
    ("swe-coding-agent", 0.3),
    ("deep-research", 0.1),
]


def main() -> None:
    fleet = {
        "schema_version": 1, "name": "scale-benchmark", "tco": "enterprise",
        "catalog": [{"node": n} for n in NODES],
        "demand": [{"workload": w, "rate_per_s": r} for w, r in WORKLOADS],
        "options": {"relative_gap": 0.01, "time_limit_s": 30, "sample_sessions": 500},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fleet.yaml"
        path.write_text(yaml.safe_dump(fleet))
        start = time.perf_counter()
        result = plan_fleet(path, verify=False)
        wall = time.perf_counter() - start
    problem, solution = result.problem, result.solution
    options = sum(len(s.options) for s in problem.stages)
    device_types = sorted({d for n in problem.node_types for d in n.devices})
    print(
        f"{len(WORKLOADS)} workloads, {len(problem.stages)} stages, {options} candidate configurations, "
        f"{len(problem.node_types)} node types, {len(device_types)} device types"
    )
    print(f"solver {solution.solver}: {solution.status}, gap {solution.gap:.3%}, solve {solution.wall_s:.2f} s")
    print(
        f"end to end (demand sampling + candidates + solve) {wall:.2f} s; fleet {result.cost['total_usd_per_h']:.2f} $/h, nodes {result.cost['nodes']}"
    )
    for choice in solution.choices:
        print(f"  {choice.stage:40s} {choice.option.key:28s} x{choice.replicas}")


if __name__ == "__main__":
    main()
