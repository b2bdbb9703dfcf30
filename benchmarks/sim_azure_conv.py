"""Benchmark: replay the full Azure LLM 2023 conversation trace (19,366 requests, ~1 h) on an
8-replica plan (Llama 3 8B on H100) and print wall time and events.

Target (issue 4): at most 5 s wall on the project's 2-core machine.
Usage: python benchmarks/sim_azure_conv.py [PATH_TO_AzureLLMInferenceTrace_conv.csv] [--repeat N]
(default: ../shared/data/azure_llm_2023/ beside the repository, else the shipped 1,000-row sample).
The machine may be shared: each repeat builds and runs afresh; best and median are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from compiled_build import describe_build, rerun_compiled

from hetsim.api.simulate import assign_model
from hetsim.api.traces import load_trace
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.metrics.summary import summarize
from hetsim.sim.build import build_simulation
from hetsim.specs.plan import PlanSpec

REPO = Path(__file__).resolve().parents[1]
FULL = REPO.parent / "shared" / "data" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
SAMPLE = REPO / "workloads" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv"


def _once(plan: PlanSpec, trace, hardware, models) -> tuple[dict, float, float]:
    """(frames, wall s, CPU s) of building, running and recording one simulation."""
    start, cpu = time.perf_counter(), time.process_time()
    sim = build_simulation(plan, trace, hardware, models)
    sim.run()
    frames = sim.frames()
    return frames, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=FULL if FULL.is_file() else SAMPLE)
    parser.add_argument("--repeat", type=int, default=3, help="runs to time (best and median are printed)")
    parser.add_argument("--compiled", action="store_true", help="run on the compiled (mypyc) build")
    args = parser.parse_args()
    rerun_compiled(args.compiled, __file__)  # exits with the compiled rerun's status when --compiled
    print(describe_build())
    trace, _ = load_trace(args.path, "azure-2023")
    trace = assign_model(trace, "llama-3-8b")
    plan = PlanSpec.model_validate(
        {
            "schema_version": 1,
            "name": "bench",
            "pools": [{"name": "chat", "device": "h100-sxm", "replicas": 8, "llm": {"model": "llama-3-8b"}}],
        }
    )
    hardware, models = load_catalog(), load_models()
    runs = [_once(plan, trace, hardware, models) for _ in range(max(args.repeat, 1))]
    frames = runs[0][0]
    summary = summarize(frames, [])
    calls = summary["llm_calls"]
    walls, cpus = [wall for _, wall, _ in runs], [cpu for _, _, cpu in runs]
    print(f"trace: {args.path.name} ({len(trace)} requests, {summary['duration_s'] / 60:.1f} min simulated)")
    print(f"completed {calls['completed']}, dropped {calls['dropped']}; TTFT p99 {calls['ttft_s']['p99'] * 1e3:.1f} ms")
    replicas = frames["replicas"]
    print(f"server events {int(replicas['events'].sum())}, iterations {int(replicas['steps'].sum())}")
    print("walls " + " ".join(f"{wall:.2f}" for wall in walls) + " s (build + run + records)")
    best, median = min(walls), statistics.median(walls)
    print(
        f"wall best {best:.2f} s, median {median:.2f} s (CPU best {min(cpus):.2f} s)  ->  "
        f"{len(trace) / best:.0f} requests per wall-second (target: 5 s)"
    )


if __name__ == "__main__":
    main()
