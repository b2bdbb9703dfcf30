"""Locate and load hardware profiles from ``hardware_profiles/`` (or a directory you name)."""

from __future__ import annotations

import os
from pathlib import Path

from hetsim.errors import ProfileError
from hetsim.io.yamlfile import load_spec
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.hardware import AcceleratorSpec, LinkSpec, NodeSpec

PROFILES_ENV = "HETSIM_PROFILES"
PROFILE_SETS = ("datasheet", "paper")


def repo_root() -> Path:
    """The folder that holds the shipped data (profiles, models, workloads, scenarios)."""
    package = Path(__file__).resolve().parents[1]
    bundled = package / "_bundled"
    return bundled if bundled.is_dir() else package.parent


def profiles_root(override: Path | None = None) -> Path:
    """``override``, else $HETSIM_PROFILES, else the shipped ``hardware_profiles``."""
    root = override or (Path(os.environ[PROFILES_ENV]) if os.environ.get(PROFILES_ENV) else None)
    root = root or repo_root() / "hardware_profiles"
    if not root.is_dir():
        raise ProfileError(f"{root}: hardware profile folder not found (set {PROFILES_ENV} or pass --profiles)")
    return root


def _load_folder(folder: Path, spec_type: type, label: str) -> dict:
    specs: dict = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = load_spec(path, spec_type, ProfileError)
        if spec.name in specs:
            raise ProfileError(f"{path}: field 'name': expected a unique {label} name, got duplicate {spec.name!r}")
        specs[spec.name] = spec
    return specs


def load_catalog(profile_set: str = "datasheet", root: Path | None = None) -> HardwareCatalog:
    """Load every accelerator, link and node of ``profile_set`` and cross-check their names.

    The ``paper`` set holds the paper's Table 5 devices as printed; it shares links with the
    datasheet set and has no node SKUs of its own.
    """
    if profile_set not in PROFILE_SETS:
        raise ProfileError(f"profile set: expected one of {', '.join(PROFILE_SETS)}, got {profile_set!r}")
    base = profiles_root(root)
    device_folder = base / ("accelerators" if profile_set == "datasheet" else "paper")
    if not device_folder.is_dir():
        raise ProfileError(f"{device_folder}: profile folder not found")
    return HardwareCatalog(
        profile_set=profile_set,
        accelerators=_load_folder(device_folder, AcceleratorSpec, "device"),
        links=_load_folder(base / "links", LinkSpec, "link"),
        nodes=_load_folder(base / "nodes", NodeSpec, "node") if profile_set == "datasheet" else {},
    )
