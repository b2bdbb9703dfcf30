"""Shared reading helpers for trace importers: JSON lines with line numbers, field checks, input files.

Pure parsers raise :class:`RecordError` with what was expected; the readers here add the file
and line number and either raise ``WorkloadError`` or, with ``skip_bad``, skip and count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from hetsim.errors import WorkloadError

T = TypeVar("T")
SKIP_HINT = "(skip malformed lines with --skip-bad)"


class RecordError(ValueError):
    """One record does not have the expected shape; the message says what was expected."""


INT64_MAX = 2**63 - 1


def _no_constant(name: str) -> Any:
    raise RecordError(f"{name} is not a JSON number (expected a finite number)")


def _int64(text: str) -> int:
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise RecordError(f"integer {text[:12]}... ({len(text)} digits) is past int64 (expected at most {INT64_MAX})")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RecordError(f"number {text[:24]} is past the float range (expected a finite number)")
    return value


def loads(raw: bytes | str) -> Any:
    """Parse JSON strictly: NaN and Infinity (not JSON, though Python writes them), numbers past
    the float range and integers past int64 are refused, and so is nesting too deep to parse
    (``RecordError``)."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_int=_int64, parse_float=_finite)
    except RecursionError:
        raise RecordError("nested deeper than can be read") from None


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """Records parsed from input files, with where each came from and how many lines were skipped."""

    records: list[tuple[str, int, T]]  # (file name, line number, record)
    skipped_lines: int


def input_files(path: Path, pattern: str) -> list[Path]:
    """``path`` itself, or the files under the folder ``path`` matching ``pattern`` (sorted, recursive)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob(pattern) if p.is_file())
        if not files:
            raise WorkloadError(f"{path}: folder holds no files matching {pattern!r}")
        return files
    if not path.is_file():
        raise WorkloadError(f"{path}: no such file or folder")
    return [path]


def read_json_lines(paths: list[Path], parse: Callable[[Any], T], expected: str, skip_bad: bool) -> Parsed[T]:
    """Parse every non-blank line of ``paths`` as JSON and then with ``parse``.

    Raises:
        WorkloadError: a line is not JSON or ``parse`` rejects it (unless ``skip_bad``), naming
            file, line number and ``expected``.
    """
    records: list[tuple[str, int, T]] = []
    skipped = 0
    for path in paths:
        for number, raw in _lines(path):
            try:
                records.append((path.name, number, parse(loads(raw))))
            except (ValueError, TypeError, KeyError) as exc:  # json.JSONDecodeError, RecordError, bad text
                if not skip_bad:
                    message = f"{path}: line {number}: expected {expected}; {_reason(exc)} {SKIP_HINT}"
                    raise WorkloadError(message) from None
                skipped += 1
    return Parsed(records, skipped)


def read_json_document(path: Path, expected: str) -> Any:
    """Parse a whole JSON file; bad JSON raises ``WorkloadError`` with the line number."""
    try:
        return loads(path.read_bytes())
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}); expected {expected}") from None
    except RecordError as exc:
        raise WorkloadError(f"{path}: not valid JSON ({exc}); expected {expected}") from None
    except ValueError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text ({exc}); expected {expected}") from None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield number, raw
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read file ({exc.strerror})") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return str(exc)


def field(record: Any, key: str) -> Any:
    """``record[key]`` of a JSON object; a missing key or a non-object raises ``RecordError``."""
    if not isinstance(record, dict):
        raise RecordError(f"got a JSON {type(record).__name__}, not an object")
    if key not in record:
        raise RecordError(f"field '{key}' is missing")
    return record[key]


def integer(record: Any, key: str) -> int:
    """A non-negative integer field."""
    value = field(record, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(f"field '{key}' must be a non-negative integer, got {value!r:.40}")
    return value


def optional_integer(record: Any, key: str) -> int | None:
    """A non-negative integer field that may be absent or null."""
    if isinstance(record, dict) and record.get(key) is None:
        return None
    return integer(record, key)


def number(record: Any, key: str) -> float:
    """A finite non-negative number field."""
    value = field(record, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise RecordError(f"field '{key}' must be a non-negative number, got {value!r:.40}")
    return float(value)


def optional_number(record: Any, key: str) -> float | None:
    """A finite non-negative number field that may be absent or null."""
    if isinstance(record, dict) and record.get(key) is None:
        return None
    return number(record, key)


def text(record: Any, key: str) -> str:
    """A string field."""
    value = field(record, key)
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


def listing(record: Any, key: str) -> list[Any]:
    """A list field."""
    value = field(record, key)
    if not isinstance(value, list):
        raise RecordError(f"field '{key}' must be a list, got {type(value).__name__}")
    return value


def iso_seconds(value: Any, key: str) -> float:
    """Seconds since the Unix epoch of an ISO-8601 timestamp ('2026-06-01T05:40:20.151Z')."""
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be an ISO-8601 timestamp string, got {value!r:.40}")
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise RecordError(f"field '{key}' must be an ISO-8601 timestamp, got {value!r:.40}") from None
