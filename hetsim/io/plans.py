"""Read and write plan and scenario files."""

from __future__ import annotations

import contextlib
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
    """Write ``plan`` as YAML (the schema ``load_plan`` reads back), whole or not at all: the
    text goes to a staged file beside it, then replaces it."""
    data = plan.model_dump(mode="json", exclude_defaults=False)
    staged = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        staged.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the parent may not exist at all
            staged.unlink(missing_ok=True)
        raise ScenarioError(f"{path}: cannot write the plan ({exc.strerror or exc})") from None
