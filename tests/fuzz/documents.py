"""Each kind of input file as a document to mutate: how it parses, how it is written back, and the
mutations that only make sense for it (trace semantics, CSV cells, Parquet metadata).

Kinds: ``yaml`` (profiles, models, workloads, scenarios, plans, calibrations), ``json`` (one JSON
document: TensorRT-LLM traces), ``jsonl`` (JSON lines: Mooncake, TraceLab, LMCache),
``canonical-jsonl`` / ``canonical-parquet`` (hetsim's own trace: a ``trace_meta`` record, then
one record per step) and ``csv`` (Azure 2023: a header row, then rows of strings).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import yaml
from mutations import (
    BYTE_OPERATORS,
    INT64_PAST,
    TREE_OPERATOR_NAMES,
    YAML_TEXT_OPERATORS,
    Applied,
    paths,
    put,
    yaml_text_mutation,
)

TRACE_MUST_REFUSE = (
    "negative-tokens", "tokens-past-int64", "tokens-huge", "cached-gt-input", "duplicate-step-id", "parent-cycle",
    "self-parent", "empty-trace", "arrival-nan", "arrival-inf", "arrival-negative", "duration-nan", "duration-inf",
    "duration-negative", "units-negative", "float-tokens", "bool-tokens",
)  # fmt: skip
TRACE_OTHER = ("shuffle-steps", "many-sessions", "no-meta", "dangling-parent", "unknown-model", "unknown-node-type")
PARQUET_OPERATORS = ("drop-column", "no-metadata", "bad-metadata", "metadata-not-object", "empty-table", "string-tokens")
COUNT_OPERATORS = ("count-past-int64", "count-huge", "count-nan", "count-inf")
JSON_TEXT_OPERATORS = ("deep-nesting", "duplicate-key", "nan-literal")
CSV_CELLS = {
    "negative": "-5", "past-int64": str(INT64_PAST), "1e20": "1e20", "nan": "nan", "inf": "inf", "fraction": "1.5",
    "empty": "", "text": "abc", "fullwidth": "１２", "hex": "0x10",
}  # fmt: skip
CSV_TIMES = {
    "empty": "", "garbage": "not a date", "month-13": "2023-13-45 99:99:99", "year-9999": "9999-12-31 23:59:59",
    "year-1600": "1600-01-01 00:00:00", "iso-z": "2023-11-16T18:15:46Z", "offset": "2023-11-16 18:15:46.6805900+05:00",
}  # fmt: skip
CSV_ROWS = ("extra-field", "missing-field", "duplicate", "shuffle", "blank-lines", "header-renamed", "header-missing",
            "header-only", "header-swapped", "quoted-newline")  # fmt: skip
MUST_REFUSE_CSV = frozenset({"cell:negative", "cell:past-int64", "cell:1e20", "cell:nan", "cell:inf", "cell:fraction"})


def operators_for(kind: str) -> list[str]:
    """Every operator a document of ``kind`` is mutated with, in a fixed order."""
    tree, raw = list(TREE_OPERATOR_NAMES), [f"bytes:{name}" for name in BYTE_OPERATORS]
    if kind == "yaml":
        return [*tree, *raw, *(f"yaml:{name}" for name in YAML_TEXT_OPERATORS), "name-traversal"]
    if kind in ("canonical-jsonl", "canonical-parquet"):
        extra = [f"parquet:{name}" for name in PARQUET_OPERATORS] if kind == "canonical-parquet" else []
        text = [f"json:{name}" for name in JSON_TEXT_OPERATORS] if kind == "canonical-jsonl" else []
        return [*tree, *raw, *TRACE_MUST_REFUSE, *TRACE_OTHER, *extra, *text]
    if kind == "csv":
        cells = [f"cell:{name}" for name in CSV_CELLS] + [f"time:{name}" for name in CSV_TIMES]
        return [*cells, *(f"row:{name}" for name in CSV_ROWS), *raw]
    return [*tree, *raw, *COUNT_OPERATORS, *(f"json:{name}" for name in JSON_TEXT_OPERATORS)]


# ---- parsing and writing ----------------------------------------------------------------------------


def load_document(kind: str, source: Path) -> Any:
    if kind == "yaml":
        return yaml.safe_load(source.read_text(encoding="utf-8"))
    if kind == "json":
        return json.loads(source.read_bytes())
    if kind == "csv":
        return list(csv.reader(io.StringIO(source.read_text(encoding="utf-8"))))
    return [json.loads(line) for line in source.read_bytes().splitlines() if line.strip()]


def write_document(kind: str, document: Any, operator: str, rng: random.Random) -> bytes:
    """The file's bytes: the document serialised, then a file-level operator applied."""
    if kind == "canonical-parquet":
        content = _parquet(document, operator.removeprefix("parquet:") if operator.startswith("parquet:") else "")
    elif kind == "yaml":
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=4096)
        if operator.startswith("yaml:"):
            text = yaml_text_mutation(text, operator.removeprefix("yaml:"), rng)
        content = text.encode("utf-8", errors="surrogatepass")
    elif kind == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(document)
        content = buffer.getvalue().encode("utf-8")
    else:
        content = _json_text(kind, document, operator, rng)
    if operator.startswith("bytes:"):
        content = BYTE_OPERATORS[operator.removeprefix("bytes:")](content, rng)
    return content


def _json_text(kind: str, document: Any, operator: str, rng: random.Random) -> bytes:
    records = [document] if kind == "json" else document
    lines = [json.dumps(record) for record in records]
    if kind == "json":
        lines = [json.dumps(document, indent=2)]
    if lines and operator.startswith("json:"):
        row = rng.randrange(len(lines))
        line = lines[row]
        if operator == "json:deep-nesting":
            line = line.replace(":", ": " + "[" * 100_000 + "]" * 100_000 + ", \"deep\":", 1)
        elif operator == "json:duplicate-key":
            line = line.replace("{", '{"' + (re_first_key(line) or "x") + '": -1, ', 1)
        elif operator == "json:nan-literal":
            line = line.replace(":", ": NaN, \"nan_key\":", 1)
        lines[row] = line
    return ("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass")


def re_first_key(line: str) -> str | None:
    start = line.find('"')
    end = line.find('"', start + 1)
    return line[start + 1 : end] if 0 <= start < end else None


def _parquet(records: list[Any], operator: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = records[0].get("trace_meta") if records and isinstance(records[0], dict) and "trace_meta" in records[0] else None
    steps = [r for r in records[1 if meta is not None else 0 :] if isinstance(r, dict)]
    table = _table(steps, pa)
    if operator == "empty-table":
        table = table.slice(0, 0)
    if operator == "drop-column" and table.num_columns:
        table = table.drop_columns([table.column_names[min(2, table.num_columns - 1)]])
    if operator == "string-tokens" and "input_tokens" in table.column_names:
        index = table.column_names.index("input_tokens")
        table = table.set_column(index, "input_tokens", pa.array([str(v) for v in table.column(index).to_pylist()]))
    metadata = {}
    if meta is not None and operator != "no-metadata":
        metadata[b"hetsim.trace_meta"] = json.dumps(meta).encode()
    if operator == "bad-metadata":
        metadata[b"hetsim.trace_meta"] = b"{not json"
    if operator == "metadata-not-object":
        metadata[b"hetsim.trace_meta"] = b"[1, 2, 3]"
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()


def _table(steps: list[dict[str, Any]], pa: Any) -> Any:
    """A table of the steps; a column whose mutated values Arrow cannot type is written as text."""
    names = list(dict.fromkeys(name for step in steps for name in step))
    columns = {}
    for name in names:
        values = [step.get(name) for step in steps]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([None if v is None else json.dumps(v) for v in values])
    return pa.table(columns) if columns else pa.table({"session_id": pa.array([], pa.string())})


# ---- mutations of one kind -------------------------------------------------------------------------


def semantic_mutation(kind: str, document: Any, operator: str, rng: random.Random) -> Applied | None:
    """Apply a kind's own operator in place; None when the document has nothing it fits."""
    if kind in ("canonical-jsonl", "canonical-parquet"):
        return _trace_mutation(document, operator, rng)
    if kind == "csv":
        return _csv_mutation(document, operator, rng)
    if operator in COUNT_OPERATORS:
        return _count_mutation(document, operator, rng)
    return None


def _count_mutation(document: Any, operator: str, rng: random.Random) -> Applied | None:
    value = {"count-past-int64": INT64_PAST, "count-huge": 10**15, "count-nan": math.nan, "count-inf": math.inf}[operator]
    keys = ("token", "length", "timestamp", "time")
    found = [p for p in paths(document) if isinstance(p[-1], str) and any(k in p[-1] for k in keys)]
    found = [p for p in found if _number_at(document, p)]
    if not found:
        return None
    path = rng.choice(found)
    put(document, path, value)
    return Applied(operator, ".".join(map(str, path)))


def _number_at(document: Any, path: tuple) -> bool:
    for key in path:
        document = document[key]
    return isinstance(document, int | float) and not isinstance(document, bool)


def _steps(document: list[Any]) -> list[dict[str, Any]]:
    return [r for r in document if isinstance(r, dict) and "step_id" in r]


def _trace_mutation(document: list[Any], operator: str, rng: random.Random) -> Applied | None:
    steps = _steps(document)
    if not steps:
        return None
    step = rng.choice(steps)
    llm = [s for s in steps if s.get("node_type") == "llm"] or steps
    where = f"session {step.get('session_id')} step {step.get('step_id')}"
    if operator == "negative-tokens":
        step = rng.choice(llm)
        step["input_tokens"] = -rng.randrange(1, 1000)
    elif operator in ("tokens-past-int64", "tokens-huge"):
        step = rng.choice(llm)
        step[rng.choice(["input_tokens", "output_tokens"])] = INT64_PAST if operator == "tokens-past-int64" else 10**12
    elif operator == "float-tokens":
        step["input_tokens"] = 12.5
    elif operator == "bool-tokens":
        step["output_tokens"] = True
    elif operator == "cached-gt-input":
        step = rng.choice(llm)
        step["cached_prefix_tokens"] = int(step.get("input_tokens", 0)) + 10
    elif operator in ("arrival-nan", "arrival-inf", "arrival-negative"):
        step["arrival_s"] = {"arrival-nan": math.nan, "arrival-inf": math.inf, "arrival-negative": -5.0}[operator]
    elif operator in ("duration-nan", "duration-inf", "duration-negative"):
        step["duration_s"] = {"duration-nan": math.nan, "duration-inf": math.inf, "duration-negative": -1.0}[operator]
    elif operator == "units-negative":
        step["units"] = -3.0
    elif operator in ("duplicate-step-id", "parent-cycle", "self-parent", "dangling-parent"):
        return _graph_mutation(steps, operator, rng)
    elif operator == "empty-trace":
        document[:] = [r for r in document if not (isinstance(r, dict) and "step_id" in r)]
        where = "(every step)"
    elif operator == "no-meta":
        document[:] = steps
        where = "trace_meta"
    elif operator == "unknown-model":
        step = rng.choice(llm)
        step["model"] = "no-such-model"
    elif operator == "unknown-node-type":
        step["node_type"] = "quantum"
    elif operator == "shuffle-steps":
        rest = steps[:]
        rng.shuffle(rest)
        document[:] = [r for r in document if r not in steps] + rest
        where = "(step order)"
    elif operator == "many-sessions":
        copies = [dict(s, session_id=f"{s['session_id']}-copy{i}") for i in range(20) for s in steps]
        document.extend(copies)
        where = "(20 copies of every session)"
    else:
        return None
    return Applied(operator, where)


def _graph_mutation(steps: list[dict[str, Any]], operator: str, rng: random.Random) -> Applied | None:
    sessions: dict[Any, list[dict[str, Any]]] = {}
    for step in steps:
        sessions.setdefault(step["session_id"], []).append(step)
    multi = [s for s in sessions.values() if len(s) > 1]
    if operator in ("self-parent", "dangling-parent") or not multi:
        if operator in ("duplicate-step-id", "parent-cycle"):
            return None
        step = rng.choice(steps)
        step["parents"] = [step["step_id"]] if operator == "self-parent" else [987654]
        return Applied(operator, f"session {step['session_id']} step {step['step_id']}")
    group = rng.choice(multi)
    first, second = group[0], group[1]
    if operator == "duplicate-step-id":
        second["step_id"] = first["step_id"]
    else:  # parent-cycle: the first waits on the second, which waits on the first
        first["parents"] = [second["step_id"]]
        second["parents"] = [first["step_id"]]
    return Applied(operator, f"session {first['session_id']} steps {first['step_id']}, {second['step_id']}")


def _csv_mutation(rows: list[list[str]], operator: str, rng: random.Random) -> Applied | None:
    family, name = operator.split(":", 1)
    data = list(range(1, len(rows)))
    if not data:
        return None
    row = rng.choice(data)
    if family == "cell":
        column = rng.choice([1, 2])
        rows[row][column] = CSV_CELLS[name]
        return Applied(operator, f"line {row + 1} column {rows[0][column]}")
    if family == "time":
        rows[row][0] = CSV_TIMES[name]
        return Applied(operator, f"line {row + 1} column TIMESTAMP")
    return _csv_row_mutation(rows, name, row, rng)


def _csv_row_mutation(rows: list[list[str]], name: str, row: int, rng: random.Random) -> Applied | None:
    if name == "extra-field":
        rows[row].append("7")
    elif name == "missing-field":
        rows[row].pop()
    elif name == "duplicate":
        rows.insert(row, copy.copy(rows[row]))
    elif name == "shuffle":
        body = rows[1:]
        rng.shuffle(body)
        rows[1:] = body
        return Applied("row:shuffle", "(row order)")
    elif name == "blank-lines":
        rows.insert(row, [])
    elif name == "header-renamed":
        rows[0][1] = "Context"
        return Applied("row:header-renamed", "line 1")
    elif name == "header-missing":
        del rows[0]
        return Applied("row:header-missing", "line 1")
    elif name == "header-only":
        del rows[1:]
        return Applied("row:header-only", "(every row)")
    elif name == "header-swapped":
        rows[0][1], rows[0][2] = rows[0][2], rows[0][1]
        return Applied("row:header-swapped", "line 1")
    elif name == "quoted-newline":
        rows[row][1] = "12\n34"
    else:
        return None
    return Applied(f"row:{name}", f"line {row + 1}")
