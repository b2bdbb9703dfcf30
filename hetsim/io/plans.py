"""Read and write plan and scenario files."""

from __future__ import annotations

from pathlib import Path

import yaml

from hetsim.errors import ScenarioError
from hetsim.io.outputs import write_file
from hetsim.io.yamlfile import load_spec
from hetsim.specs.plan import PlanSpec
from hetsim.specs.scenario import ScenarioSpec


def load_plan(path: Path) -> PlanSpec:
    return load_spec(path, PlanSpec, ScenarioError)


def load_scenario(path: Path) -> ScenarioSpec:
    return load_spec(path, ScenarioSpec, ScenarioError)


def plan_text(plan: PlanSpec) -> str:
    """``plan`` as YAML, the schema ``load_plan`` reads back."""
    return yaml.safe_dump(plan.model_dump(mode="json", exclude_defaults=False), sort_keys=False)


def write_plan(path: Path, plan: PlanSpec) -> None:
    """Write ``plan`` as YAML, whole or not at all (staged beside it, then moved in)."""
    text = plan_text(plan)
    write_file(path, "plan file", lambda staged: staged.write_text(text, encoding="utf-8"), ScenarioError)
