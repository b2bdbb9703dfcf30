"""Canonical trace files: JSONL and Parquet round trips, and one-line errors that name the line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetsim.errors import WorkloadError
from hetsim.io.trace_parquet import SCHEMA
from hetsim.io.traces import import_trace, read_trace, read_trace_frame, write_trace
from hetsim.workload.trace import TRACE_COLUMNS, NodeType, TraceMeta, TraceStep

SAMPLES = Path(__file__).resolve().parents[2] / "workloads" / "traces"
META = TraceMeta(source="test", format="canonical", license="CC0", block_size_tokens=16, extra={"seed": 3})

step_id = st.integers(min_value=0, max_value=10**9)  # what a readable trace may number its steps
token_count = st.integers(min_value=0, max_value=10**9)  # what a readable trace may carry per step
optional_float = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)


def _cache_within_prompt(step: TraceStep) -> TraceStep:
    if step.cached_prefix_tokens is None:
        return step
    return replace(step, cached_prefix_tokens=min(step.cached_prefix_tokens, step.input_tokens))


def _parents_earlier(steps: list[TraceStep]) -> list[TraceStep]:
    """Keep only parents that are earlier steps of the same session (a readable trace's graph)."""
    seen: dict[str, set[int]] = {}
    kept = []
    for step in steps:
        earlier = seen.setdefault(step.session_id, set())
        kept.append(replace(step, parents=tuple(p for p in step.parents if p in earlier)))
        earlier.add(step.step_id)
    return kept


steps_strategy = st.lists(
    st.builds(
        TraceStep,
        session_id=st.sampled_from(["a", "b", "ñ-1"]) | st.text(min_size=1, max_size=8), step_id=step_id,
        arrival_s=st.floats(min_value=0, max_value=1e9, allow_nan=False), node=st.text(max_size=8),
        node_type=st.sampled_from(NodeType), parents=st.lists(st.sampled_from([0, 1, 2, 7]) | step_id, max_size=3).map(tuple),
        model=st.none() | st.text(max_size=8), input_tokens=token_count, output_tokens=token_count,
        reasoning_tokens=token_count, cached_prefix_tokens=st.none() | token_count,
        prefix_hash_ids=st.lists(st.integers(-(2**62), 2**62), max_size=4).map(tuple),
        duration_s=optional_float, units=optional_float, branch=st.none() | st.text(max_size=4),
    ).map(_cache_within_prompt),
    min_size=1,
    max_size=6,
    unique_by=lambda step: (step.session_id, step.step_id),
).map(_parents_earlier)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps_strategy)
def test_any_trace_round_trips_exactly(tmp_path: Path, suffix: str, steps: list[TraceStep]) -> None:
    path = tmp_path / f"trace{suffix}"
    write_trace(path, steps, META)
    assert read_trace(path) == (steps, META)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_imported_sample_round_trips_and_reads_as_the_same_frame(tmp_path: Path, suffix: str) -> None:
    steps, meta = import_trace(SAMPLES / "tracelab_example" / "round_trace.sanitized.jsonl", "tracelab")
    write_trace(tmp_path / f"t{suffix}", steps, meta)
    assert read_trace(tmp_path / f"t{suffix}") == (steps, meta)
    frame, _ = read_trace_frame(tmp_path / f"t{suffix}")
    assert list(frame.columns) == list(TRACE_COLUMNS) and len(frame) == len(steps)
    assert str(frame["cached_prefix_tokens"].dtype) == "Int64" and frame["parents"].iloc[3] == (1, 2)


def test_jsonl_first_line_is_the_meta_and_then_one_step_per_line(tmp_path: Path) -> None:
    step = TraceStep(session_id="s", step_id=0, arrival_s=0.0, node="llm", node_type=NodeType.LLM, input_tokens=5)
    write_trace(tmp_path / "t.jsonl", [step, step], META)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["trace_meta"]["source"] == "test"
    assert json.loads(lines[1]) == step.to_dict() and len(lines) == 3


def test_parquet_keeps_the_meta_in_key_value_metadata(tmp_path: Path) -> None:
    write_trace(tmp_path / "t.parquet", [], META)
    metadata = pq.read_schema(tmp_path / "t.parquet").metadata
    assert json.loads(metadata[b"hetsim.trace_meta"])["extra"] == {"seed": 3}
    assert tuple(SCHEMA.names) == TRACE_COLUMNS


def _jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps({"trace_meta": {"source": "x", "format": "canonical"}}), *lines]) + "\n")
    return path


GOOD = json.dumps({"session_id": "s", "step_id": 0, "arrival_s": 0, "node": "llm", "node_type": "llm"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"line 3: not valid JSON"),
        (GOOD.replace('"llm"}', '"gpu"}'), r"line 3: .*'node_type' must be one of llm, tool"),
        (GOOD.replace('"step_id": 0', '"step_id": "0"'), r"line 3: .*'step_id' must be int, got '0'"),
        (GOOD.replace('"node": "llm", ', ""), r"line 3: .*missing fields \['node'\]"),
        (GOOD.replace("}", ', "gpu": 1}'), r"line 3: .*unknown fields \['gpu'\]"),
    ],
)
def test_malformed_step_line_names_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=rf"bad\.jsonl: {message}"):
        read_trace(_jsonl(tmp_path, GOOD, line))


def test_raw_trace_read_as_canonical_says_to_pass_a_format(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": []}\n')
    with pytest.raises(WorkloadError, match=r"line 1: expected a first line .*pass --format"):
        read_trace(path)


def test_unknown_meta_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"trace_meta": {"source": "x", "format": "y", "colour": 1}}) + "\n")
    with pytest.raises(WorkloadError, match=r"unknown fields \['colour'\]"):
        read_trace(path)


def test_other_suffixes_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match=r"must end in \.jsonl or \.parquet, got '\.csv'"):
        write_trace(tmp_path / "t.csv", [], META)
    with pytest.raises(WorkloadError, match="cannot read"):
        read_trace(tmp_path / "missing.jsonl")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(WorkloadError, match="cannot read Parquet trace"):
        read_trace(tmp_path / "junk.parquet")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("input_tokens", -5, r"field 'input_tokens': expected an integer 0..1000000000, got -5"),
        ("output_tokens", 2**63 - 1, r"field 'output_tokens': expected an integer 0..1000000000"),
        ("arrival_s", -1.0, r"field 'arrival_s': expected a finite number 0..1e\+09, got -1.0"),
        ("arrival_s", 2e9, r"field 'arrival_s': expected a finite number 0..1e\+09, got 2000000000.0"),
        ("duration_s", -0.5, r"field 'duration_s': expected a finite number 0..1e\+09"),
        ("cached_prefix_tokens", 99, r"field 'cached_prefix_tokens': expected 0..input_tokens, got 99"),
    ],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_trace_with_an_unusable_step_is_refused_naming_the_step(tmp_path, suffix, field, value, expected):
    good = TraceStep(session_id="s", step_id=1, arrival_s=0.0, node="n", node_type=NodeType.LLM, parents=(),
                     model=None, input_tokens=10, output_tokens=5, reasoning_tokens=0, cached_prefix_tokens=None,
                     prefix_hash_ids=(), duration_s=None, units=None, branch=None)  # fmt: skip
    path = tmp_path / f"trace{suffix}"
    write_trace(path, [good, replace(good, step_id=2, **{field: value})], META)
    with pytest.raises(WorkloadError, match=f"trace{suffix}: session 's' step 2: {expected}"):
        read_trace_frame(path)


def test_duplicate_step_ids_and_an_empty_trace_are_refused(tmp_path):
    step = TraceStep(session_id="s", step_id=1, arrival_s=0.0, node="n", node_type=NodeType.LLM, parents=(),
                     model=None, input_tokens=10, output_tokens=5, reasoning_tokens=0, cached_prefix_tokens=None,
                     prefix_hash_ids=(), duration_s=None, units=None, branch=None)  # fmt: skip
    write_trace(tmp_path / "dup.jsonl", [step, step], META)
    with pytest.raises(WorkloadError, match="step 1: field 'step_id': expected ids unique within a session"):
        read_trace(tmp_path / "dup.jsonl")
    write_trace(tmp_path / "empty.parquet", [], META)
    with pytest.raises(WorkloadError, match="no steps"):
        read_trace(tmp_path / "empty.parquet")


# ---- found by the mutation corpus (tests/fuzz) ---------------------------------------------------

STEP = TraceStep(session_id="s", step_id=0, arrival_s=0.0, node="n", node_type=NodeType.LLM, input_tokens=10, output_tokens=5)


def _with_step_line(tmp_path: Path, step_line: str) -> Path:
    path = tmp_path / "t.jsonl"
    write_trace(path, [STEP], META)
    path.write_text(path.read_text() + step_line + "\n")
    return path


@pytest.mark.parametrize(("value", "expected"), [
    ("NaN", r"line 3: expected a trace step object; NaN is not a JSON number"),
    ("-Infinity", r"line 3: expected a trace step object; -Infinity is not a JSON number"),
    ("9223372036854775808", r"line 3: expected a trace step object; integer 922337203685\.\.\. \(19 digits\) is past int64"),
])  # fmt: skip
def test_json_that_is_not_a_number_or_past_int64_is_refused_naming_the_line(tmp_path, value, expected):
    line = f'{{"session_id": "s", "step_id": 1, "arrival_s": {value}, "node": "n", "node_type": "llm"}}'
    with pytest.raises(WorkloadError, match=expected):
        read_trace_frame(_with_step_line(tmp_path, line))


def test_json_nested_past_what_python_parses_is_refused_in_one_line(tmp_path):
    line = '{"session_id": "s", "step_id": 1, "arrival_s": 0, "node": "n", "node_type": "llm", "branch": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(WorkloadError, match=r"line 3: expected a trace step object; nested deeper than can be read"):
        read_trace_frame(_with_step_line(tmp_path, line))


@pytest.mark.parametrize(("parents", "expected"), [
    ((1,), r"session 's' step 0: field 'parents': expected ids of earlier steps of the session, got 1 \(that step is not earlier"),
    ((0,), r"step 0: field 'parents'.*got 0 \(that step is not earlier in the file"),
    ((7,), r"step 0: field 'parents'.*got 7 \(no step of its session has that id\)"),
])  # fmt: skip
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_parent_that_is_not_an_earlier_step_is_refused_so_no_session_vanishes(tmp_path, suffix, parents, expected):
    steps = [replace(STEP, parents=parents), replace(STEP, step_id=1, parents=(0,))]
    write_trace(tmp_path / f"t{suffix}", steps, META)
    with pytest.raises(WorkloadError, match=expected):
        read_trace_frame(tmp_path / f"t{suffix}")


def test_a_parquet_column_of_the_wrong_type_or_holding_nan_is_refused_naming_it(tmp_path):
    write_trace(tmp_path / "t.parquet", [STEP, replace(STEP, step_id=1)], META)
    table = pq.read_table(tmp_path / "t.parquet")
    index = table.column_names.index("input_tokens")
    as_text = table.set_column(index, "input_tokens", table.column(index).cast("string"))
    pq.write_table(as_text, tmp_path / "text.parquet")
    with pytest.raises(WorkloadError, match=r"text.parquet: column 'input_tokens': expected Parquet type int64, got string"):
        read_trace_frame(tmp_path / "text.parquet")
    index = table.column_names.index("duration_s")
    with_nan = table.set_column(index, "duration_s", pa.array([float("nan"), None], pa.float64()))
    pq.write_table(with_nan, tmp_path / "nan.parquet")
    with pytest.raises(WorkloadError, match=r"nan.parquet: column 'duration_s': expected finite numbers or nulls, got NaN"):
        read_trace_frame(tmp_path / "nan.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1" + b"\x00\xff" * 100)
    with pytest.raises(WorkloadError, match=r"junk.parquet: cannot read Parquet trace") as info:
        read_trace_frame(tmp_path / "junk.parquet")
    assert "\n" not in str(info.value)
