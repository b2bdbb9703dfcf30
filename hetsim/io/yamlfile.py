"""Read a YAML file into a validated spec, with one-line errors that name file and field."""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hetsim.errors import HetsimError

SpecT = TypeVar("SpecT", bound=BaseModel)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster on 100 profiles
_NESTED_FIELD = re.compile(r"^([A-Za-z_][\w.]*): ")


def read_yaml(path: Path, error: type[HetsimError]) -> Any:
    """Parse a YAML file; a missing file or bad syntax raises ``error`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} at offset {exc.start}") from None
    try:
        _check_aliases(text)
        return yaml.load(text, Loader=_LOADER)  # a safe loader, C-accelerated when available
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise error(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None


MAX_ALIASES = 64
"""YAML aliases a file may use: a few kilobytes of nested aliases expand to gigabytes."""


def _check_aliases(text: str) -> None:
    if "*" not in text:
        return
    aliases = sum(1 for token in yaml.scan(text, Loader=_LOADER) if isinstance(token, yaml.AliasToken))
    if aliases > MAX_ALIASES:
        raise yaml.YAMLError(f"expected at most {MAX_ALIASES} aliases (*name), got {aliases}")


def describe_validation_error(source: str, exc: ValidationError) -> str:
    """One line naming the source, the field path, what was expected and what came."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    given = first.get("input")
    if kind == "extra_forbidden":
        text = f"{source}: field '{loc}': unknown key (expected only the documented keys), got {loc.split('.')[-1]!r}"
    elif kind == "missing":
        text = f"{source}: field '{loc}': required field is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        nested = _NESTED_FIELD.match(message)
        if nested:  # a model-level validator that names the offending field itself
            loc = ".".join(p for p in (loc if first["loc"] else "", nested.group(1)) if p)
            message, given = message[nested.end() :], None
        got = "" if "got" in message else f", got {_short(given)}"
        text = f"{source}: field '{loc}': {message}{got}"
    more = len(exc.errors()) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring = _REPR.maxother = 50


def _short(value: Any) -> str:
    """A short rendering of ``value`` that never renders the whole of a large or deep one."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_spec(path: Path, spec_type: type[SpecT], error: type[HetsimError]) -> SpecT:
    """Load and validate ``path`` as ``spec_type``; problems raise ``error`` in one line."""
    data = read_yaml(path, error)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return spec_type.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(str(path), exc)) from None
