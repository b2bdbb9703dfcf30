"""Read and write plan and scenario files."""

from __future__ import annotations

from pathlib import Path

import yaml

from hetsim.errors import ProfileError, ScenarioError
from hetsim.io.fleets import catalog_of, check_cost_names
from hetsim.io.models import load_models
from hetsim.io.outputs import write_file
from hetsim.io.yamlfile import load_spec, one_line
from hetsim.specs.plan import PlanSpec
from hetsim.specs.scenario import ScenarioSpec


def load_plan(path: Path) -> PlanSpec:
    """A plan file, validated; a device, node or model it names that the catalogs lack is
    refused here, naming the file and the field."""
    plan = load_spec(path, PlanSpec, ScenarioError)
    catalog, models = catalog_of(path, plan.profile_set), load_models()
    for index, pool in enumerate(plan.pools):
        names = [("device", pool.device, catalog.accelerator)]
        names += [("node", pool.node, catalog.node)] if pool.node is not None else []
        names += [("llm.model", pool.llm.model, models.model)] if pool.llm is not None else []
        names += [(f"models.{i}", model, models.model) for i, model in enumerate(pool.models)]
        for field, name, lookup in names:
            try:
                lookup(name)
            except ProfileError as exc:
                raise ScenarioError(one_line(f"{path}: field 'pools.{index}.{field}': {exc}")) from None
    return plan


def load_scenario(path: Path) -> ScenarioSpec:
    """A scenario file, validated (its TCO preset and cost basis among those hetsim knows)."""
    scenario = load_spec(path, ScenarioSpec, ScenarioError)
    check_cost_names(path, scenario.tco, scenario.cost_basis)
    return scenario


def plan_text(plan: PlanSpec) -> str:
    """``plan`` as YAML, the schema ``load_plan`` reads back."""
    return yaml.safe_dump(plan.model_dump(mode="json", exclude_defaults=False), sort_keys=False)


def write_plan(path: Path, plan: PlanSpec) -> None:
    """Write ``plan`` as YAML, whole or not at all (staged beside it, then moved in)."""
    text = plan_text(plan)
    write_file(path, "plan file", lambda staged: staged.write_text(text, encoding="utf-8"), ScenarioError)
