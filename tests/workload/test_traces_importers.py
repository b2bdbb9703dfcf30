"""Importers of public trace formats, on the shipped samples and on hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetsim.errors import WorkloadError
from hetsim.io.importers import importer
from hetsim.io.importers._records import RecordError
from hetsim.io.importers.lmcache import LMCacheCall, common_prefix_length, lmcache_steps
from hetsim.io.importers.trtllm import trtllm_steps
from hetsim.io.traces import import_trace
from hetsim.workload.tokens import estimate_tokens
from hetsim.workload.trace import NodeType

SAMPLES = Path(__file__).resolve().parents[2] / "workloads" / "traces"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- Azure ---------------------------------------------------------------------------------------


def test_azure_sample_makes_one_step_sessions_relative_to_the_first_timestamp() -> None:
    steps, meta = import_trace(SAMPLES / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.first1000.csv", "azure-2023")
    assert len(steps) == 1000 and len({s.session_id for s in steps}) == 1000
    assert steps[0].arrival_s == 0.0 and steps[0].input_tokens == 374 and steps[0].output_tokens == 44
    assert steps[1].arrival_s == pytest.approx(4.3145790)
    assert meta.license == "CC-BY-4.0" and meta.token_count_method == "source"


def test_azure_bad_row_names_its_line_and_skip_bad_counts_it(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "a.csv",
        ["TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:15:46.6805900,374,44", "2023-11-16 18:15:50,x,1",
         "2023-11-16 18:15:51,5", "2023-11-16 18:15:52,7,8"],
    )
    with pytest.raises(WorkloadError, match=r"a\.csv: line 3: expected values: TIMESTAMP"):
        import_trace(path, "azure-2023")
    steps, meta = import_trace(path, "azure-2023", skip_bad=True)
    assert [s.input_tokens for s in steps] == [374, 7]
    assert meta.skipped_lines == 2


def test_azure_wrong_header_is_rejected(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.csv", ["time,in,out", "1,2,3"])
    with pytest.raises(WorkloadError, match="line 1: expected the header"):
        import_trace(path, "azure-2023")


# --- Mooncake ------------------------------------------------------------------------------------


def test_mooncake_sample_keeps_prefix_blocks_of_512_tokens() -> None:
    steps, meta = import_trace(SAMPLES / "mooncake_fast25" / "conversation_trace.first1000.jsonl", "mooncake")
    assert len(steps) == 1000 and meta.block_size_tokens == 512
    assert steps[0].prefix_hash_ids == tuple(range(14)) and steps[0].input_tokens == 6758
    assert all(len(s.prefix_hash_ids) == -(-s.input_tokens // 512) for s in steps)


def test_mooncake_malformed_line_reports_its_line_number(tmp_path: Path) -> None:
    good = json.dumps({"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]})
    path = write_lines(tmp_path / "m.jsonl", [good, "", good, '{"timestamp": 5, "input_length": 10}', "not json", good])
    with pytest.raises(WorkloadError, match=r"m\.jsonl: line 4: expected a JSON object .*'output_length' is missing"):
        import_trace(path, "mooncake")
    steps, meta = import_trace(path, "mooncake", skip_bad=True)
    assert len(steps) == 3 and meta.skipped_lines == 2


def test_mooncake_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", ['{"timestamp": 0,'])
    with pytest.raises(WorkloadError, match=r"line 1: .*not valid JSON.*--skip-bad"):
        import_trace(path, "mooncake")


# --- LMCache -------------------------------------------------------------------------------------


def call(session: str, ts: int, prompt: str, output: str = "ok") -> LMCacheCall:
    return LMCacheCall(session, ts, prompt, output)


def test_lmcache_orders_calls_by_timestamp_and_chains_them() -> None:
    calls = [call("s", 3_000_000, "system. user. a. b."), call("s", 1_000_000, "system. user."),
             call("s", 2_000_000, "system. user. a.")]
    steps = lmcache_steps(calls)
    assert [s.arrival_s for s in steps] == [0.0, 1.0, 2.0]
    assert [s.parents for s in steps] == [(), (0,), (1,)]
    assert steps[0].cached_prefix_tokens is None
    assert steps[1].cached_prefix_tokens == estimate_tokens("system. user.")
    assert all(s.cached_prefix_tokens is None or s.cached_prefix_tokens <= s.input_tokens for s in steps)


def test_lmcache_any_prefix_match_finds_an_earlier_interleaved_conversation() -> None:
    agent, user = "You are the agent. " * 20, "You are the user. " * 20
    calls = [call("s", 0, agent + "q1"), call("s", 1, user + "r1"), call("s", 2, agent + "q1 q2")]
    any_match = lmcache_steps(calls, "any")[2].cached_prefix_tokens
    previous = lmcache_steps(calls, "previous")[2].cached_prefix_tokens
    assert any_match == estimate_tokens(agent + "q1")
    assert previous is not None and previous < any_match


def test_lmcache_rejects_an_unknown_prefix_match() -> None:
    with pytest.raises(WorkloadError, match="prefix_match"):
        lmcache_steps([call("s", 0, "x")], "longest")  # type: ignore[arg-type]


@pytest.mark.parametrize(("a", "b", "n"), [("abc", "abd", 2), ("abc", "abc", 3), ("", "x", 0), ("ab", "abc", 2)])
def test_common_prefix_length(a: str, b: str, n: int) -> None:
    assert common_prefix_length(a, b) == n


def test_lmcache_sample_folder_gives_three_sessions_and_says_how_tokens_were_counted() -> None:
    steps, meta = import_trace(SAMPLES / "lmcache_agent_trace", "lmcache")
    assert len({s.session_id for s in steps}) == 3 and len(steps) == 9 + 13 + 31
    assert "regex-bpe-v1" in meta.token_count_method and meta.extra["prefix_match"] == "any"


def test_lmcache_line_without_session_is_reported(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"timestamp": 1, "input": "a", "output": "b"})])
    with pytest.raises(WorkloadError, match=r"s\.jsonl: line 1: .*'session_id' is missing"):
        import_trace(path, "lmcache")


# --- TensorRT-LLM --------------------------------------------------------------------------------


def assistant(prompt: int, completion: int, path: list[int] | None = None) -> dict:
    return {"event_type": "message", "role": "assistant", "branch_path": path or [], "conversation_id": 0,
            "prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": 0}


def tool(name: str, ms: float, path: list[int] | None = None) -> dict:
    return {"event_type": "tool_call", "branch_path": path or [], "tool_name": name, "duration_ms": ms}


def test_trtllm_chains_llm_and_tool_steps_with_cumulative_arrivals() -> None:
    events = [{"event_type": "message", "role": "system", "tokens": 9}, assistant(100, 10), tool("shell", 500.0),
              assistant(200, 20)]
    steps, skipped = trtllm_steps("t", events)
    assert skipped == []
    assert [(s.node_type, s.parents, s.arrival_s) for s in steps] == [
        (NodeType.LLM, (), 0.0), (NodeType.TOOL, (0,), 0.0), (NodeType.LLM, (1,), 0.5)]
    assert steps[1].duration_s == 0.5 and steps[2].cached_prefix_tokens == 100


def test_trtllm_fan_out_on_branch_paths_and_fan_in_after_parallel_end() -> None:
    events = [assistant(100, 10), {"event_type": "parallel_start", "branch_path": [], "num_branches": 2},
              assistant(150, 5, [0]), tool("search", 2000.0, [0]), assistant(150, 5, [1]), tool("search", 1000.0, [1]),
              {"event_type": "parallel_end", "branch_path": []}, assistant(400, 30)]
    steps, _ = trtllm_steps("t", events)
    assert steps[1].parents == (0,) and steps[3].parents == (0,)  # siblings of one parent
    assert steps[1].branch == "0" and steps[3].branch == "1"
    assert steps[5].parents == (2, 4) and steps[5].arrival_s == 2.0  # waits for both branches


def test_trtllm_inline_children_run_side_by_side_then_join() -> None:
    events = [assistant(100, 10), {"event_type": "parallel_start", "branch_path": [], "num_branches": 2,
                                   "children": [tool("a", 300.0), tool("b", 100.0)]}, assistant(200, 10)]
    steps, _ = trtllm_steps("t", events)
    assert [s.parents for s in steps] == [(), (0,), (0,), (1, 2)]
    assert steps[3].arrival_s == pytest.approx(0.3)


def test_trtllm_bad_event_is_named_or_skipped() -> None:
    events = [assistant(100, 10), {"event_type": "tool_call", "tool_name": "x"}, assistant(200, 10)]
    with pytest.raises(RecordError, match="event 1: field 'duration_ms' is missing"):
        trtllm_steps("t", events)
    steps, skipped = trtllm_steps("t", events, skip_bad=True)
    assert len(steps) == 2 and skipped == ["event 1: field 'duration_ms' is missing"]


def test_trtllm_sample_folder_has_both_traces() -> None:
    steps, meta = import_trace(SAMPLES / "trtllm_trace_replay_examples", "trtllm")
    assert len({s.session_id for s in steps}) == 2 and meta.extra["files"] == 2


def test_trtllm_broken_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.trace.json", ["{", '  "events": [', "  }"])
    with pytest.raises(WorkloadError, match=r"x\.trace\.json: line 3: not valid JSON"):
        import_trace(path, "trtllm")


# --- TraceLab ------------------------------------------------------------------------------------


def test_tracelab_rounds_fan_out_to_tools_and_fan_in_to_the_next_round() -> None:
    steps, meta = import_trace(SAMPLES / "tracelab_example" / "round_trace.sanitized.jsonl", "tracelab")
    claude = [s for s in steps if s.session_id.startswith("claude")]
    assert [s.node for s in claude[:4]] == ["llm", "Bash", "WebSearch", "llm"]
    assert claude[1].parents == (0,) and claude[2].parents == (0,) and claude[3].parents == (1, 2)
    assert claude[0].cached_prefix_tokens == 27217 and claude[2].duration_s == pytest.approx(19.291)
    assert claude[0].duration_s == pytest.approx(31.647 - 20.151)  # request -> last output event
    assert meta.extra["source_models"] == ["claude-opus-4-8", "gpt-5.4"]


def test_tracelab_bad_timestamp_is_reported_with_its_line(tmp_path: Path) -> None:
    line = json.loads((SAMPLES / "tracelab_example" / "round_trace.sanitized.jsonl").read_text().splitlines()[0])
    line["timing_events"][0]["timestamp"] = "yesterday"
    path = write_lines(tmp_path / "r.jsonl", [json.dumps(line)])
    with pytest.raises(WorkloadError, match=r"line 1: .*ISO-8601"):
        import_trace(path, "tracelab")


# --- registry ------------------------------------------------------------------------------------


def test_unknown_format_lists_the_choices() -> None:
    with pytest.raises(WorkloadError, match="azure-2023, mooncake, lmcache, trtllm, tracelab"):
        importer("vidur")


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no such file or folder"):
        import_trace(tmp_path / "nope", "lmcache")


# --- found by the mutation corpus (tests/fuzz) -------------------------------------------------

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"


@pytest.mark.parametrize("count", ["1e20", "9223372036854775808", "inf", "nan", "-5", "1.5"])
def test_azure_counts_that_would_wrap_or_mean_nothing_are_refused_naming_the_line(tmp_path: Path, count: str) -> None:
    path = write_lines(tmp_path / "a.csv", [HEADER, "2023-11-16 18:15:46.6805900,374,44", f"2023-11-16 18:15:47.0,{count},44"])
    with pytest.raises(WorkloadError, match=r"a.csv: line 3: expected values: .*ContextTokens \(integer 0..1000000000\)"):
        import_trace(path, "azure-2023")


def test_azure_timestamps_with_a_zone_are_read_in_utc_beside_plain_ones(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.csv", [HEADER, "2023-11-16 18:15:46,1,1", "2023-11-16T18:15:50Z,2,2", "2023-11-16 19:15:56+01:00,3,3"])
    steps, _ = import_trace(path, "azure-2023")
    assert [s.arrival_s for s in steps] == [0.0, 4.0, 10.0]


def test_a_conversation_id_that_is_not_an_id_is_named(tmp_path: Path) -> None:
    events = [{"event_type": "message", "role": "assistant", "branch_path": [], "conversation_id": [1, 2],
               "prompt_tokens": 10, "completion_tokens": 5}]  # fmt: skip
    with pytest.raises(RecordError, match=r"event 0: field 'conversation_id' must be an integer or a string, got \[1, 2\]"):
        trtllm_steps("t", events)


@pytest.mark.parametrize(("value", "expected"), [("NaN", "NaN is not a JSON number"), ("1e999", "past the float range"),
                                                 ("99999999999999999999", "past int64")])  # fmt: skip
def test_importers_refuse_json_numbers_that_are_not_numbers(tmp_path: Path, value: str, expected: str) -> None:
    path = write_lines(tmp_path / "m.jsonl", [f'{{"timestamp": 0, "input_length": {value}, "output_length": 5, "hash_ids": [0]}}'])
    with pytest.raises(WorkloadError, match=rf"m.jsonl: line 1: .*{expected}"):
        import_trace(path, "mooncake")


def test_an_imported_trace_is_checked_as_a_canonical_one_before_it_is_used_or_written(tmp_path: Path) -> None:
    from hetsim.api.traces import convert_trace, describe_trace

    path = write_lines(tmp_path / "m.jsonl", ['{"timestamp": 0, "input_length": 1000000000000, "output_length": 5, "hash_ids": [0]}'])
    expected = r"m.jsonl: imported as mooncake: session '.*' step 0: field 'input_tokens': expected an integer 0..1000000000"
    with pytest.raises(WorkloadError, match=expected):
        describe_trace(path, "mooncake")
    with pytest.raises(WorkloadError, match=expected):
        convert_trace(path, "mooncake", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
