"""Load the model catalog from ``models/`` (or a folder you name, or $HETSIM_MODELS)."""

from __future__ import annotations

import os
from pathlib import Path

from hetsim.errors import ProfileError
from hetsim.io.catalog import repo_root
from hetsim.io.yamlfile import load_spec
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.model import ModelSpec

MODELS_ENV = "HETSIM_MODELS"


def load_models(root: Path | None = None) -> ModelCatalog:
    """Every ``*.yaml`` under the model folder (``root``, else $HETSIM_MODELS, else the shipped
    ``models/``), validated; names must be unique."""
    folder = root or (Path(os.environ[MODELS_ENV]) if os.environ.get(MODELS_ENV) else repo_root() / "models")
    if not folder.is_dir():
        raise ProfileError(f"{folder}: model catalog folder not found (set {MODELS_ENV} to a folder of model YAMLs)")
    models: dict[str, ModelSpec] = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = load_spec(path, ModelSpec, ProfileError)
        if spec.name in models:
            raise ProfileError(f"{path}: field 'name': expected a unique model name, got duplicate {spec.name!r}")
        models[spec.name] = spec
    return ModelCatalog(models)
