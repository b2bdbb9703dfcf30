"""Read fleet files."""

from __future__ import annotations

from pathlib import Path

from hetsim.errors import ScenarioError
from hetsim.io.yamlfile import load_spec
from hetsim.specs.fleet import FleetSpec


def load_fleet(path: Path) -> FleetSpec:
    return load_spec(path, FleetSpec, ScenarioError)
