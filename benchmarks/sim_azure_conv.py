"""Benchmark: replay the full Azure LLM 2023 conversation trace (19,366 requests, ~1 h) on an
8-replica plan (Llama 3 8B on H100) and print wall time and events.

Target (issue 4): at most 5 s wall on the project's 2-core machine.
Usage: python benchmarks/sim_azure_conv.py [PATH_TO_AzureLLMInferenceTrace_conv.csv]
(default: ../shared/data/azure_llm_2023/ beside the repository, else the shipped 1,000-row sample).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

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


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (FULL if FULL.is_file() else SAMPLE)
    trace, _ = load_trace(path, "azure-2023")
    trace = assign_model(trace, "llama-3-8b")
    plan = PlanSpec.model_validate({"schema_version": 1, "name": "bench", "pools": [
        {"name": "chat", "device": "h100-sxm", "replicas": 8, "llm": {"model": "llama-3-8b"}}]})
    hardware, models = load_catalog(), load_models()
    start = time.perf_counter()
    sim = build_simulation(plan, trace, hardware, models)
    sim.run()
    frames = sim.frames()
    wall = time.perf_counter() - start
    summary = summarize(frames, [])
    calls = summary["llm_calls"]
    print(f"trace: {path.name} ({len(trace)} requests, {summary['duration_s'] / 60:.1f} min simulated)")
    print(f"completed {calls['completed']}, dropped {calls['dropped']}; TTFT p99 {calls['ttft_s']['p99'] * 1e3:.1f} ms")
    print(f"server events {int(frames['replicas']['events'].sum())}, iterations {int(frames['replicas']['steps'].sum())}")
    print(f"wall {wall:.2f} s (build + run + records)  ->  {len(trace) / wall:.0f} requests per wall-second")


if __name__ == "__main__":
    main()
