"""Workload questions for the CLI and notebooks: list, show, validate, synthesize traces."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hetsim.errors import WorkloadError
from hetsim.io import workloads as workload_io
from hetsim.io.models import load_models
from hetsim.io.traces import write_trace
from hetsim.specs.workload import AnyArrival, AnyNode, WorkloadSpec
from hetsim.units import Dimension, to_si
from hetsim.workload.synth import SyntheticTrace, synthesize
from hetsim.workload.trace import NodeType

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-z]*)\s*$")


def known_models(models_root: Path | None = None) -> dict[str, str]:
    """Catalog model names and aliases -> kind ('llm', 'stt', ...), for checking workloads."""
    kinds: dict[str, str] = {}
    for spec in load_models(models_root).models.values():
        for name in (spec.name, *spec.aliases):
            kinds[name] = spec.kind.value
    return kinds


def load(name_or_path: str | Path, check_models: bool = True, root: Path | None = None) -> WorkloadSpec:
    """A shipped workload by name, or a workload YAML by path; model names checked against the catalog."""
    return workload_io.load_workload(name_or_path, known_models() if check_models else None, root)


def list_workloads(root: Path | None = None) -> list[dict[str, Any]]:
    """A summary row per workload file of ``root`` (default: the shipped ones)."""
    models = known_models()
    rows = []
    for path in workload_io.list_workload_files(root):
        spec = workload_io.load_workload(path, models)
        rows.append({**summary(spec), "file": str(path)})
    return rows


def summary(spec: WorkloadSpec) -> dict[str, Any]:
    """Headline facts of a workload."""
    return {
        "name": spec.name,
        "description": spec.description,
        "nodes": len(spec.nodes),
        "edges": len(spec.edges),
        "models": list(spec.models),
        "arrival": spec.arrival.process,
        "mean_rate_per_s": spec.arrival.mean_rate_per_s,
    }


def describe(spec: WorkloadSpec) -> dict[str, Any]:
    """Everything about a workload: nodes with their distributions (and means), edges, SLA, arrivals."""
    return {
        **summary(spec),
        "entry": spec.entry_node,
        "nodes": {name: _describe_node(node) for name, node in spec.nodes.items()},
        "edges": [edge.model_dump(mode="json", by_alias=True, exclude_none=True) for edge in spec.edges],
        "sla": _describe_sla(spec),
        "arrival": {
            **spec.arrival.model_dump(mode="json", exclude_none=True),
            "mean_rate_per_s": spec.arrival.mean_rate_per_s,
        },
        "sources": spec.sources,
    }


def _describe_sla(spec: WorkloadSpec) -> dict[str, Any]:
    sla = spec.sla.model_dump(mode="json", exclude_none=True)
    for target in ("ttft", "tbt", "e2e"):
        if f"{target}_s" not in sla:
            sla.pop(f"{target}_percentile")
    return sla


def _describe_node(node: AnyNode) -> dict[str, Any]:
    data: dict[str, Any] = {"type": node.type, "model": node.model_name, "description": node.description}
    quantities = {}
    for field_name in type(node).model_fields:
        value = getattr(node, field_name)
        if hasattr(value, "dist"):
            quantities[field_name] = {"distribution": value.describe(), "mean": value.mean, "source": value.source}
        elif field_name not in ("type", "model", "description") and value not in (None, False, 0, ""):
            data[field_name] = value
    data["quantities"] = quantities
    return data


def validate(path: Path) -> dict[str, Any]:
    """Load ``path`` with every check (models included); raises WorkloadError naming the problem."""
    spec = load(path)
    return {"file": str(path), "valid": True, **summary(spec)}


def parse_duration(text: str | float) -> float:
    """Seconds from ``600``, ``600s``, ``10min`` or ``1.5h``."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise WorkloadError(f"duration: expected seconds or a number with a unit (s, min, h), got {text!r}")
        try:
            seconds = to_si(float(match.group(1)), match.group(2) or "s", Dimension.SECONDS)
        except ValueError as exc:
            raise WorkloadError(f"duration: {exc}") from None
    if seconds <= 0:
        raise WorkloadError(f"duration: expected a positive duration, got {text!r}")
    return seconds


def synthesize_trace(
    workload: str | Path, duration: str | float, seed: int = 0, rate_per_s: float | None = None,
    arrival: AnyArrival | None = None,
) -> SyntheticTrace:
    """A synthetic trace of ``workload`` (name or file) over ``duration``; deterministic in the
    seed. ``arrival`` replaces the workload's arrival process (``rate_per_s`` then sets its mean)."""
    spec, seconds = load(workload), parse_duration(duration)
    if arrival is not None:
        spec = spec.model_copy(update={"arrival": arrival})
    with _gc_paused():
        return synthesize(spec, seconds, seed, rate_per_s)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a big trace.

    Why: synthesis allocates millions of small acyclic objects (steps, parent tuples); the
    collector's repeated scans of them cost ~30% of the run and free nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def synthesize_to_file(
    workload: str | Path, duration: str | float, out: Path, seed: int = 0, rate_per_s: float | None = None
) -> dict[str, Any]:
    """Synthesize a trace and write it (``.jsonl`` or ``.parquet``); returns a summary."""
    trace = synthesize_trace(workload, duration, seed, rate_per_s)
    write_trace(out, trace.steps, trace.meta)
    extra = trace.meta.extra
    llm = [s for s in trace.steps if s.node_type is NodeType.LLM]
    return {
        "workload": extra["workload"], "out": str(out), "seed": seed, "duration_s": extra["duration_s"],
        "rate_per_s": extra["rate_per_s"], "arrival": extra["arrival"]["process"], "sessions": extra["sessions"],
        "steps": len(trace.steps), "llm_steps": len(llm),
        "mean_input_tokens": sum(s.input_tokens for s in llm) / len(llm) if llm else 0.0,
        "mean_output_tokens": sum(s.output_tokens for s in llm) / len(llm) if llm else 0.0,
    }  # fmt: skip
