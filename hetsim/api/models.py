"""Model catalog questions: list models, show one with derived sizes, import one from a Hugging
Face ``config.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hetsim.errors import ProfileError
from hetsim.io.hf_config import model_from_config, read_config, write_model
from hetsim.io.models import load_models
from hetsim.perf.transformer import kv_bytes_per_token, parameter_count
from hetsim.specs.catalog import ModelCatalog
from hetsim.specs.hardware import DType
from hetsim.specs.model import ModelSpec


def models(root: Path | None = None) -> ModelCatalog:
    return load_models(root)


def describe_model(model: ModelSpec) -> dict[str, Any]:
    """Catalog entry plus sizes derived from the architecture (parameters, KV bytes/token)."""
    data: dict[str, Any] = {
        "name": model.name,
        "display_name": model.display_name,
        "kind": model.kind.value,
        "parameters": model.parameters,
        "active_parameters": model.active_parameters,
        "sources": model.sources,
    }
    if model.architecture is not None:
        counts = parameter_count(model.architecture)
        data["architecture"] = model.architecture.model_dump(mode="json", exclude_none=True)
        data["derived"] = {
            "parameters_from_architecture": sum(counts.values()),
            "parameters_by_part": counts,
            "kv_bytes_per_token": {d: kv_bytes_per_token(model.architecture, DType(d)) for d in ("bf16", "fp8")},
        }
    if model.unit_cost is not None:
        data["unit_cost"] = model.unit_cost.model_dump(mode="json")
    return data


def import_model(
    config: Path, name: str | None = None, out: Path | None = None, source: str | None = None, force: bool = False
) -> tuple[ModelSpec, Path]:
    """Turn a Hugging Face ``config.json`` into a catalog entry and write it to ``out`` (default
    ``models/<name>.yaml``, the catalog ``hetsim`` reads from the current folder); an existing
    file is replaced only with ``force``. Returns the entry and where it was written."""
    spec = model_from_config(read_config(config), config, name, source)
    target = out if out is not None else Path("models") / f"{spec.name}.yaml"
    if target.exists() and not force:
        raise ProfileError(
            f"{target}: expected a new file for model {spec.name!r} (give --force to replace it), got an existing file"
        )
    return spec, write_model(spec, target)
