"""Find, list and load workload YAMLs (shipped in ``workloads/`` or anywhere on disk)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hetsim.errors import WorkloadError
from hetsim.io.catalog import repo_root
from hetsim.io.yamlfile import describe_validation_error, read_yaml
from hetsim.specs.workload import WorkloadSpec

WORKLOADS_ENV = "HETSIM_WORKLOADS"
_TAG_KEYS = ("type", "dist", "process")  # discriminator keys of the spec's unions


def workloads_root(override: Path | None = None) -> Path:
    """``override``, else $HETSIM_WORKLOADS, else the shipped ``workloads/`` folder."""
    if override is not None:
        return override
    if os.environ.get(WORKLOADS_ENV):
        return Path(os.environ[WORKLOADS_ENV])
    return repo_root() / "workloads"


def list_workload_files(root: Path | None = None) -> list[Path]:
    """The workload YAMLs of ``root`` (default: the shipped ones), sorted by name."""
    folder = workloads_root(root)
    if not folder.is_dir():
        raise WorkloadError(f"{folder}: workload folder not found (set {WORKLOADS_ENV})")
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def find_workload(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A path as given if it is a file, else the shipped workload called ``name_or_path``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise WorkloadError(f"{path}: workload file not found")
    candidate = workloads_root(root) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = ", ".join(p.stem for p in list_workload_files(root)) or "none"
    raise WorkloadError(f"unknown workload {str(name_or_path)!r}; expected a YAML file or one of: {names}")


def load_workload(
    name_or_path: str | Path, known_models: Collection[str] | Mapping[str, str] | None = None, root: Path | None = None
) -> WorkloadSpec:
    """Load and validate a workload; problems raise WorkloadError in one line naming file and field.

    ``known_models`` (names, or name -> kind) makes unknown model names an error.
    """
    path = find_workload(name_or_path, root)
    data = read_yaml(path, WorkloadError)
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    context = {"known_models": known_models} if known_models is not None else None
    try:
        return WorkloadSpec.model_validate(data, context=context)
    except ValidationError as exc:
        raise WorkloadError(describe_validation_error(str(path), _without_union_tags(exc, data))) from None


def _without_union_tags(exc: ValidationError, data: Any) -> ValidationError:
    """The same errors with the union tags pydantic puts in locations (``nodes.x.llm.model``) removed."""
    details = []
    for error in exc.errors(include_url=False):
        detail: dict[str, Any] = {
            "type": error["type"],
            "loc": _strip_tags(error["loc"], data),
            "input": error["input"],
        }
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data(exc.title, details)  # type: ignore[arg-type]
    except (TypeError, KeyError, ValueError):  # an error type pydantic cannot rebuild: keep the original
        return exc


def _strip_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    kept: list[Any] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part not in current and any(current.get(k) == part for k in _TAG_KEYS):
            continue  # the tag of the union member, not a key of the input
        if isinstance(current, int | float) and part == "constant":
            continue  # a bare number read as {dist: constant, value: N}
        kept.append(part)
        current = _child(current, part)
    return tuple(kept)


def _child(current: Any, part: Any) -> Any:
    if isinstance(current, dict):
        return current.get(part)
    if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
        return current[part]
    return None
