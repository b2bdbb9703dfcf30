"""``hetsim plan export``: a plan as Kubernetes manifests or a Ray Serve config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hetsim.errors import ExecutorError, HetsimError
from hetsim.exec.deploy import DeployOptions, engine_commands, kubernetes_manifests, ray_serve_config
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.io.outputs import write_file
from hetsim.io.plans import load_plan
from hetsim.io.yamlfile import read_yaml

FORMATS = ("k8s", "ray-serve", "engine-commands")


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values out in full: no anchors and aliases, which some tools refuse."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def export_plan(plan_path: Path, fmt: str, out: Path, weights: Path | None = None, options: DeployOptions | None = None) -> dict[str, Any]:
    """Write the plan's deployment in ``fmt`` to ``out`` (a YAML file, written whole)."""
    if fmt not in FORMATS:
        raise ExecutorError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    plan = load_plan(plan_path)
    hardware, models = load_catalog(plan.profile_set), load_models()
    mapping = load_weights(weights)
    try:
        if fmt == "k8s":
            documents = kubernetes_manifests(plan, hardware, models, mapping, options or DeployOptions())
        elif fmt == "ray-serve":
            documents = [ray_serve_config(plan, hardware, models, mapping)]
        else:
            documents = [engine_commands(plan, hardware, models, mapping)]
    except HetsimError as exc:
        raise type(exc)(f"{plan_path}: {exc}") from None
    _write_whole(out, yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False))
    skipped = [p.name for p in plan.pools if p.llm is None]  # tools, retrieval and model stages are the user's services
    return {"plan": plan.name, "format": fmt, "documents": len(documents), "written": str(out),
            "kinds": [d.get("kind", "ServeConfig" if fmt == "ray-serve" else "EngineCommands") for d in documents], "pools_not_exported": skipped}  # fmt: skip


def load_weights(path: Path | None) -> dict[str, str]:
    """``--weights``: a YAML mapping of catalog model name -> local path or hub id."""
    if path is None:
        return {}
    data = read_yaml(path, ExecutorError)
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ExecutorError(f"{path}: expected a mapping of catalog model name to a local path or hub id, got {type(data).__name__}")
    return data


def _write_whole(out: Path, text: str) -> None:
    write_file(out, "--out", lambda staged: staged.write_text(text, encoding="utf-8"), ExecutorError)
