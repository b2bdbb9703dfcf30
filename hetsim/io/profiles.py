"""Day profiles (``hetsim.specs.profile``) as YAML files: read one a fleet names, write one a trace measured."""

from __future__ import annotations

from pathlib import Path

import yaml

from hetsim.errors import ScenarioError
from hetsim.io.outputs import write_file
from hetsim.io.yamlfile import load_spec
from hetsim.specs.fleet import FleetSpec
from hetsim.specs.profile import DayProfile


def load_profile(path: Path) -> DayProfile:
    """A profile file, validated; problems raise ScenarioError in one line naming the file."""
    if not path.is_file():
        raise ScenarioError(f"profile: expected a profile file, got {str(path)!r}, which does not exist")
    return load_spec(path, DayProfile, ScenarioError)


def resolve_profiles(fleet: FleetSpec, fleet_path: Path | None) -> FleetSpec:
    """``fleet`` with every demand entry's profile file read (a relative path from the fleet file's folder)."""
    demand = []
    for entry in fleet.demand:
        if isinstance(entry.profile, str):
            path = Path(entry.profile)
            if not path.is_absolute() and fleet_path is not None:
                path = fleet_path.parent / path
            entry = entry.model_copy(update={"profile": load_profile(path)})
        demand.append(entry)
    return fleet.model_copy(update={"demand": tuple(demand)})


def write_profile(path: Path, profile: DayProfile) -> Path:
    """Write ``profile`` as YAML at ``path`` (whole, or not at all)."""
    text = yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False)
    return write_file(path, "--out", lambda staged: staged.write_text(text), ScenarioError)
