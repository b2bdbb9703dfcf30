"""Helpers to build small traces and plans for engine tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hetsim.io.catalog import load_catalog
from hetsim.sim.build import build_simulation
from hetsim.sim.engine import SimConfig
from hetsim.specs.plan import PlanSpec
from hetsim.workload.trace import TRACE_COLUMNS, NodeType, TraceStep


def trace_frame(steps: list[TraceStep]) -> pd.DataFrame:
    return pd.DataFrame([s.to_dict() for s in steps], columns=list(TRACE_COLUMNS))


def plan(*pools: dict, kv_transfers: tuple = ()) -> PlanSpec:
    return PlanSpec.model_validate(
        {"schema_version": 1, "name": "test", "pools": list(pools), "kv_transfers": list(kv_transfers)}
    )


def llm_pool(name="llm", device="h100-sxm", replicas=1, model="llama-3-8b", **llm) -> dict:
    return {"name": name, "device": device, "replicas": replicas, "llm": {"model": model, **llm}}


def poisson_llm_trace(rng: np.random.Generator, n: int, rate: float, model="llama-3-8b") -> pd.DataFrame:
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    return trace_frame(
        [
            TraceStep(
                f"s{i}",
                0,
                float(a),
                "chat",
                NodeType.LLM,
                model=model,
                input_tokens=int(rng.integers(50, 2000)),
                output_tokens=int(rng.integers(5, 300)),
            )
            for i, a in enumerate(arrivals)
        ]
    )


@pytest.fixture(scope="session")
def hardware():
    return load_catalog()


@pytest.fixture
def simulate(hardware, model_catalog):
    def run(the_plan, trace, **config):
        sim = build_simulation(the_plan, trace, hardware, model_catalog, config=SimConfig(**config))
        sim.run()
        return sim.frames()

    return run
