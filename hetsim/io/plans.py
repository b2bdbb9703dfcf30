"""Read and write plan and scenario files."""

from __future__ import annotations

from pathlib import Path

import yaml

from hetsim.errors import ScenarioError
from hetsim.io.yamlfile import load_spec
from hetsim.specs.plan import PlanSpec
from hetsim.specs.scenario import ScenarioSpec


def load_plan(path: Path) -> PlanSpec:
    return load_spec(path, PlanSpec, ScenarioError)


def load_scenario(path: Path) -> ScenarioSpec:
    return load_spec(path, ScenarioSpec, ScenarioError)


def write_plan(path: Path, plan: PlanSpec) -> None:
    """Write ``plan`` as YAML (the schema ``load_plan`` reads back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = plan.model_dump(mode="json", exclude_defaults=False)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
