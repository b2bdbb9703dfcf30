"""Agents written as SimPy code: a simulation of a plan whose LLM calls your processes issue.

    from hetsim.api.agents import agent_simulation

    sim = agent_simulation("scenarios/plans/llama8b-h100x2.yaml")

    def agent(env):
        first = yield sim.llm_call("llama-3-8b", prompt_tokens=900, output_tokens=120)
        yield env.timeout(2.0)  # a tool call
        second = yield sim.llm_call("llama-3-8b", 1300, 80, continues=first)

    sim.env.process(agent(sim.env))
    sim.run()
    sim.process_calls  # LlmCallRecord of each call, in the order they finished

The calls share the plan's replicas with each other and with the trace's calls, if a trace is
given (``hetsim.sim.process`` describes the records).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.plans import load_plan
from hetsim.sim.build import build_simulation
from hetsim.sim.engine import SimConfig, Simulation
from hetsim.sim.process import LlmCallRecord
from hetsim.specs.plan import PlanSpec

__all__ = ["LlmCallRecord", "Simulation", "agent_simulation"]


def agent_simulation(
    plan: PlanSpec | Path | str, trace: pd.DataFrame | None = None, *, horizon_s: float | None = None
) -> Simulation:
    """A simulation of ``plan`` (a spec or a plan file) ready for SimPy processes of yours
    (``sim.env.process(...)``, ``sim.llm_call(...)``), with the steps of ``trace`` too when
    given; ``horizon_s`` stops the run there (default: when nothing is left to do)."""
    spec = plan if isinstance(plan, PlanSpec) else load_plan(Path(plan))
    return build_simulation(
        spec, trace, load_catalog(spec.profile_set), load_models(), config=SimConfig(horizon_s=horizon_s)
    )
