"""Typed mutations of parsed documents (YAML, JSON, JSON lines, CSV rows) and of raw bytes.

A document is a tree of dicts, lists and scalars. A *tree* mutation picks a node by its path and
applies an operator that fits the node's type (a number turns negative, NaN, past int64; a string
turns empty, unicode, a path out of the folder; a mapping loses a key or gains an unknown one; a
list loses its items or repeats one). A *byte* mutation works on the serialised file (truncated,
non-UTF-8, empty, garbage). Every choice comes from the ``random.Random`` passed in, so a seed
gives the same corpus byte for byte.

``MUST_REFUSE`` names the operators whose result no input of hetsim may accept: a NaN, an
infinity or an integer past int64 is never a valid quantity, count or time.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

INT64_PAST = 2**63
"""One past the largest int64: a count that wraps to negative in a numpy int64 column."""


@dataclass(frozen=True)
class Applied:
    """A tree mutation that was applied: operator name and where (a dotted path)."""

    operator: str
    where: str


class _Delete:
    """Marker: remove the node (a mapping key or a list item)."""


DELETE = _Delete()


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _not_container(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _escape(tag: str) -> Callable[[Any, random.Random], Any]:
    """Names that would leave the output folder; the tag makes any escaped file findable."""

    def apply(_: Any, rng: random.Random) -> Any:
        return rng.choice([f"../escape-{tag}", f"../../escape-{tag}", f"a/../../escape-{tag}", "..", ".", "/", f"/tmp/escape-{tag}"])

    return apply


def _wrong_type(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        return rng.choice([42, "a string", [1, 2]])
    if isinstance(value, list):
        return rng.choice(["a string", {"key": 1}, 7])
    if isinstance(value, bool):
        return rng.choice(["maybe", 2])
    if is_number(value):
        return rng.choice(["twelve", [value], {"value": value}])
    if isinstance(value, str):
        return rng.choice([12345, [value], {"name": value}, True])
    return rng.choice(["text", 3.5, []])


# name -> (does it apply to this node, what it becomes)
TREE_OPERATORS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, random.Random], Any]]] = {
    "delete": (lambda v: True, lambda v, r: DELETE),
    "null": (lambda v: v is not None, lambda v, r: None),
    "wrong-type": (lambda v: True, _wrong_type),
    "negative": (is_number, lambda v, r: -abs(v) if v else -1),
    "zero": (is_number, lambda v, r: 0 if isinstance(v, int) else 0.0),
    "huge": (is_number, lambda v, r: 1e300),
    "huge-int": (is_number, lambda v, r: 10**30),
    "int64-overflow": (is_number, lambda v, r: r.choice([INT64_PAST, 2**64 + 7, -(2**63) - 1])),
    "nan": (is_number, lambda v, r: math.nan),
    "inf": (is_number, lambda v, r: r.choice([math.inf, -math.inf])),
    "tiny": (is_number, lambda v, r: 1e-300),
    "fraction": (lambda v: isinstance(v, int) and not isinstance(v, bool), lambda v, r: v + 0.5),
    "bool": (_not_container, lambda v, r: not v if isinstance(v, bool) else True),
    "empty-string": (lambda v: isinstance(v, str), lambda v, r: ""),
    "unicode": (lambda v: isinstance(v, str), lambda v, r: r.choice(["ñandú-名前-💥", "\u202eevil", "ｆｕｌｌ", "a\u200bb"])),
    "control-chars": (lambda v: isinstance(v, str), lambda v, r: "a\x00b\x1b[31m\nc"),
    "long-string": (lambda v: isinstance(v, str), lambda v, r: "x" * 100_000),
    "number-as-string": (is_number, lambda v, r: str(v)),
    "string-as-number": (lambda v: isinstance(v, str), lambda v, r: r.choice([0, -1, 1e300])),
    "empty-container": (lambda v: isinstance(v, dict | list) and len(v) > 0, lambda v, r: type(v)()),
    "duplicate-item": (lambda v: isinstance(v, list) and len(v) > 0, lambda v, r: [*v, copy.deepcopy(v[0])]),
    "one-item": (lambda v: isinstance(v, list) and len(v) > 1, lambda v, r: v[:1]),
    "many-items": (lambda v: isinstance(v, list) and len(v) > 0, lambda v, r: [copy.deepcopy(v[0]) for _ in range(5000)]),
    "unknown-key": (lambda v: isinstance(v, dict), lambda v, r: {**v, "surprise_key": 1}),
    "deep-nesting": (lambda v: True, lambda v, r: _nested(200)),
}
MUST_REFUSE = frozenset({"nan", "inf", "int64-overflow"})
"""Operators whose value no field of any hetsim input may accept."""


def _nested(depth: int) -> Any:
    value: Any = [1]
    for _ in range(depth):
        value = [value]
    return value


def paths(tree: Any) -> list[Path]:
    """Every node's path below the root, depth first, in document order."""
    found: list[Path] = []

    def walk(node: Any, path: Path) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            found.append((*path, key))
            walk(child, (*path, key))

    walk(tree, ())
    return found


def get(tree: Any, path: Path) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def put(tree: Any, path: Path, value: Any) -> None:
    parent = get(tree, path[:-1])
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def mutate_tree(tree: Any, operator: str, rng: random.Random, tag: str, where: list[Path] | None = None) -> Applied | None:
    """Apply ``operator`` in place to a node it fits (one of ``where``, else any); None if none fits."""
    fits, transform = TREE_OPERATORS[operator] if operator != "path-traversal" else (lambda v: isinstance(v, str), _escape(tag))
    candidates = [p for p in (where if where is not None else paths(tree)) if fits(get(tree, p))]
    if not candidates:
        return None
    path = rng.choice(candidates)
    put(tree, path, transform(get(tree, path), rng))
    return Applied(operator, dotted(path))


TREE_OPERATOR_NAMES: tuple[str, ...] = (*TREE_OPERATORS, "path-traversal")


# ---- bytes ---------------------------------------------------------------------------------------


def truncate(content: bytes, rng: random.Random) -> bytes:
    return content[: rng.randrange(1, max(2, len(content)))]


def non_utf8(content: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(0, max(1, len(content)))
    return content[:at] + b"\xff\xfe\xc3\x28" + content[at:]


BYTE_OPERATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "non-utf8": non_utf8,
    "empty-file": lambda c, r: b"",
    "whitespace-only": lambda c, r: b"\n   \n\t\n",
    "bom": lambda c, r: b"\xef\xbb\xbf" + c,
    "garbage": lambda c, r: r.randbytes(512),
    "crlf": lambda c, r: c.replace(b"\n", b"\r\n"),
    "nul-bytes": lambda c, r: c[: len(c) // 2] + b"\x00" * 64 + c[len(c) // 2 :],
}


# ---- YAML text --------------------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def yaml_text_mutation(text: str, operator: str, rng: random.Random) -> str:
    """Text-level YAML mutations (``YAML_TEXT_OPERATORS``)."""
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if line and not line[0].isspace() and ":" in line and not line.startswith("#")]
    if operator == "alias-bomb":
        return alias_bomb() + text
    if operator == "alias-bomb-in-value":
        key = lines[rng.choice(keys)].split(":", 1)[0]
        return text + "\n" + alias_bomb(7) + f"{key}: *a6\n"
    if operator == "recursive-alias":
        key = lines[rng.choice(keys)].split(":", 1)[0]
        return "\n".join(line for line in lines if not line.startswith(f"{key}:")) + f"\n{key}: &loop [1, *loop]\n"
    if operator == "deep-flow-nesting":
        key = lines[rng.choice(keys)].split(":", 1)[0]
        return text + f"\n{key}: " + "[" * 5000 + "]" * 5000 + "\n"
    if operator == "deep-block-nesting":
        return text + "\n" + "".join("  " * i + "k:\n" for i in range(3000)) + "  " * 3000 + "k: 1\n"
    if operator == "duplicate-key":
        line = lines[rng.choice(keys)]
        key = line.split(":", 1)[0]
        return text + f"\n{key}: 7\n"
    if operator == "top-level-list":
        return "- " + "\n- ".join(lines[:3]) + "\n"
    if operator == "top-level-scalar":
        return "just a sentence\n"
    if operator == "python-tag":
        key = lines[rng.choice(keys)].split(":", 1)[0]
        return text + f"\n{key}: !!python/object/apply:os.system ['true']\n"
    if operator == "tab-indent":
        return text.replace("  ", "\t")
    if operator == "comment-only":
        return "# nothing but a comment\n"
    if operator == "huge-line":
        return text + "\n# " + "y" * 2_000_000 + "\n"
    raise KeyError(operator)


YAML_TEXT_OPERATORS = (
    "alias-bomb", "alias-bomb-in-value", "recursive-alias", "deep-flow-nesting", "deep-block-nesting", "duplicate-key",
    "top-level-list", "top-level-scalar", "python-tag", "tab-indent", "comment-only", "huge-line",
)  # fmt: skip
