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
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster on 100 profiles
_NESTED_FIELD = re.compile(r"^([A-Za-z_][\w.]*): ")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a key given twice in one mapping (YAML forbids it; PyYAML
    would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key_node.tag != "tag:yaml.org,2002:merge" and _hashable(key):
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"found the key {key!r} twice in one mapping", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so a message stays one line."""
    return _CONTROL.sub(lambda match: repr(match.group(0))[1:-1], text)


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
        data = yaml.load(text, Loader=_Loader)  # a safe loader, C-accelerated when available
    except yaml.YAMLError as exc:
        raise error(f"{path}:{_where(exc)} not valid YAML ({_problem(exc)})") from None
    except RecursionError:
        raise error(f"{path}: not valid YAML (nested too deep to read)") from None
    if _holds_itself(data):
        raise error(f"{path}: expected a document without a recursive alias (an &anchor used inside its own value), got one")
    return data


def _holds_itself(value: Any) -> bool:
    """True when a list or mapping contains itself (``&a [1, *a]``): no spec can hold it, and
    walking it never ends. Values shared by aliases elsewhere are fine."""
    open_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            open_ids.discard(id(node))
            continue
        if not isinstance(node, dict | list):
            continue
        if id(node) in open_ids:
            return True
        open_ids.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))
    return False


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f" line {mark.line + 1}"
    position = getattr(exc, "position", None)  # a reader error: a character YAML does not allow
    return f" character {position}" if isinstance(position, int) else ""


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return f"character U+{code:04X} is not allowed in YAML"
    return one_line(str(getattr(exc, "problem", None) or exc))


MAX_ALIASES = 64
"""YAML aliases a file may use: a few kilobytes of nested aliases expand to gigabytes."""


def _check_aliases(text: str) -> None:
    if "*" not in text:
        return
    aliases = sum(1 for token in yaml.scan(text, Loader=_BASE_LOADER) if isinstance(token, yaml.AliasToken))
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
    return one_line(text + (f" (and {more} more problem{'s' * (more > 1)})" if more else ""))


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
