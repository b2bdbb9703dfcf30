"""Validation of canonical trace records (the JSON form of ``TraceMeta`` and ``TraceStep``)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hetsim.io.importers._records import RecordError
from hetsim.workload.trace import TRACE_COLUMNS, NodeType, TraceMeta, TraceStep

_META_FIELDS = {f.name for f in fields(TraceMeta)}
_REQUIRED_STEP_FIELDS = ("session_id", "step_id", "arrival_s", "node", "node_type")


def parse_meta(record: Any) -> TraceMeta:
    """``TraceMeta`` from a parsed ``{"trace_meta": {...}}`` line."""
    if not isinstance(record, dict) or not isinstance(record.get("trace_meta"), dict):
        raise RecordError("no 'trace_meta' object")
    return meta_from_dict(record["trace_meta"])


def meta_from_dict(data: dict[str, Any]) -> TraceMeta:
    """``TraceMeta`` from its dict form; unknown keys and wrong types raise ``RecordError``."""
    unknown = sorted(set(data) - _META_FIELDS)
    if unknown:
        raise RecordError(f"trace_meta has unknown fields {unknown} (expected {sorted(_META_FIELDS)})")
    if not isinstance(data.get("source"), str) or not isinstance(data.get("format"), str):
        raise RecordError("trace_meta needs string fields 'source' and 'format'")
    if not isinstance(data.get("extra", {}), dict):
        raise RecordError("trace_meta 'extra' must be an object")
    return TraceMeta(**data)


def parse_step(record: Any) -> TraceStep:
    """``TraceStep`` from one parsed step line; names the field when something is wrong."""
    if not isinstance(record, dict):
        raise RecordError(f"got a JSON {type(record).__name__}, not an object")
    unknown = sorted(set(record) - set(TRACE_COLUMNS))
    missing = [name for name in _REQUIRED_STEP_FIELDS if name not in record]
    if unknown or missing:
        raise RecordError(f"unknown fields {unknown}" if unknown else f"missing fields {missing}")
    values = dict(record)
    try:
        values["node_type"] = NodeType(record["node_type"])
    except ValueError:
        choices = ", ".join(t.value for t in NodeType)
        raise RecordError(f"field 'node_type' must be one of {choices}, got {record['node_type']!r}") from None
    for name in ("parents", "prefix_hash_ids"):
        values[name] = _int_tuple(record.get(name, []), name)
    _check_types(values)
    adapter = values.get("adapter")
    if adapter is not None and (not adapter.strip() or values["node_type"] != NodeType.LLM):
        raise RecordError(f"field 'adapter' must be a non-empty adapter name on an llm step, got {adapter!r:.40} "
                          f"on a {values['node_type'].value} step")  # fmt: skip
    rate = values.get("acceptance_rate")
    if rate is not None and (not 0.0 <= rate <= 1.0 or values["node_type"] != NodeType.LLM):
        raise RecordError(f"field 'acceptance_rate' must be a number in [0, 1] on an llm step, got {rate!r:.40} "
                          f"on a {values['node_type'].value} step")  # fmt: skip
    return TraceStep(**values)


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise RecordError(f"field '{name}' must be a list of integers")
    return tuple(value)


_STEP_TYPES: dict[str, tuple[type, ...]] = {
    "session_id": (str,), "step_id": (int,), "arrival_s": (int, float), "node": (str,),
    "model": (str, type(None)), "input_tokens": (int,), "output_tokens": (int,), "reasoning_tokens": (int,),
    "cached_prefix_tokens": (int, type(None)), "duration_s": (int, float, type(None)),
    "units": (int, float, type(None)), "branch": (str, type(None)), "adapter": (str, type(None)),
    "acceptance_rate": (int, float, type(None)),
}


def _check_types(values: dict[str, Any]) -> None:
    for name, types in _STEP_TYPES.items():
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], types)):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RecordError(f"field '{name}' must be {expected}, got {values[name]!r:.40}")
    for name in ("arrival_s", "duration_s", "units", "acceptance_rate"):
        if isinstance(values.get(name), int):
            values[name] = float(values[name])
