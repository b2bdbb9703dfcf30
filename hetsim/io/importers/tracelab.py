"""TraceLab coding-agent round traces (Claude Code, Codex): JSON lines, one LLM round each.

Fields used: ``session_id``, ``round_index``, ``input_tokens_total``, ``prefix_tokens`` (served
from the provider's prompt cache), ``output_tokens`` (reasoning included), ``reasoning_output_tokens``,
``timing_events[]`` (``event_type``, ISO ``timestamp``) and ``tools[]`` (``tool_name``,
``emitted_at``, ``result_at``, ``tool_wall_latency_ms``).

Each round becomes an LLM step followed by its tool steps, which all wait for it and run side by
side (fan-out: the tools of one round overlap in the data). The next round waits for every tool of
the round before (fan-in), or for the round's LLM step when it called none. Times:

* LLM ``arrival_s``: the last input event of the round (``user_message`` / ``tool_result``), i.e.
  when the request could be sent; the first timing event when there is no input event.
* LLM ``duration_s``: from that arrival to the last output event (``reasoning``, ``text``,
  ``tool_call``) of the round, when one comes later; an observed latency, not a server time.
* Tool ``arrival_s`` = ``emitted_at``; ``duration_s`` = ``tool_wall_latency_ms`` (else
  ``result_at - emitted_at``).

``arrival_s`` is seconds after the earliest timestamp of the import, so sessions recorded months
apart stay months apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hetsim.errors import WorkloadError
from hetsim.io.importers._records import (
    RecordError,
    input_files,
    integer,
    iso_seconds,
    listing,
    optional_integer,
    optional_number,
    read_json_lines,
    text,
)
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

FORMAT = "tracelab"
SOURCE = "TraceLab coding-agent traces, https://github.com/uw-syfi/TraceLab"
EXPECTED = (
    "a JSON object with session_id, round_index, input_tokens_total, prefix_tokens, output_tokens, "
    "reasoning_output_tokens, timing_events [{event_type, timestamp}], "
    "tools [{tool_name, emitted_at, tool_wall_latency_ms}]"
)
_INPUT_EVENTS = frozenset({"user_message", "tool_result"})
_OUTPUT_EVENTS = frozenset({"reasoning", "text", "tool_call"})


class Tool(NamedTuple):
    name: str
    emitted_s: float | None
    duration_s: float | None


class Round(NamedTuple):
    session_id: str
    round_index: int
    input_tokens: int
    cached_tokens: int | None
    output_tokens: int
    reasoning_tokens: int
    request_s: float | None
    response_s: float | None
    tools: tuple[Tool, ...]
    model: str | None


def parse_round(record: Any) -> Round:
    """Check one parsed JSON line and extract what a step needs (pure)."""
    events = [
        (text(e, "event_type"), iso_seconds(e.get("timestamp"), "timestamp")) for e in listing(record, "timing_events")
    ]
    inputs = [t for kind, t in events if kind in _INPUT_EVENTS]
    request = max(inputs) if inputs else min((t for _, t in events), default=None)
    outputs = [t for kind, t in events if kind in _OUTPUT_EVENTS and request is not None and t > request]
    model = record.get("model")
    return Round(
        session_id=text(record, "session_id"), round_index=integer(record, "round_index"),
        input_tokens=integer(record, "input_tokens_total"), cached_tokens=optional_integer(record, "prefix_tokens"),
        output_tokens=integer(record, "output_tokens"),
        reasoning_tokens=optional_integer(record, "reasoning_output_tokens") or 0,
        request_s=request, response_s=max(outputs) if outputs else None,
        tools=tuple(_tool(t) for t in listing(record, "tools")), model=model if isinstance(model, str) else None,
    )


def _tool(record: Any) -> Tool:
    emitted = None if record.get("emitted_at") is None else iso_seconds(record["emitted_at"], "tools[].emitted_at")
    latency_ms = optional_number(record, "tool_wall_latency_ms")
    if latency_ms is None and emitted is not None and record.get("result_at") is not None:
        latency_ms = max(0.0, iso_seconds(record["result_at"], "tools[].result_at") - emitted) * 1000.0
    return Tool(text(record, "tool_name"), emitted, None if latency_ms is None else latency_ms / 1000.0)


def tracelab_steps(rounds: Sequence[Round]) -> list[TraceStep]:
    """Sessions of LLM rounds with fanned-out tool steps (pure)."""
    times = [t for r in rounds for t in (r.request_s, *(tool.emitted_s for tool in r.tools)) if t is not None]
    if not times:
        raise RecordError("no round has a timestamp: cannot place the steps in time")
    start = min(times)
    sessions: dict[str, list[Round]] = defaultdict(list)
    for r in rounds:
        sessions[r.session_id].append(r)
    steps: list[TraceStep] = []
    for session_rounds in sessions.values():
        steps.extend(_session_steps(sorted(session_rounds, key=lambda r: r.round_index), start))
    return steps


def _session_steps(rounds: list[Round], start: float) -> list[TraceStep]:
    steps: list[TraceStep] = []
    waits_for: tuple[int, ...] = ()
    clock = 0.0  # a round with no timestamp keeps the session's last known time
    for r in rounds:
        llm_id = len(steps)
        clock = clock if r.request_s is None else r.request_s - start
        duration = None if r.response_s is None or r.request_s is None else r.response_s - r.request_s
        steps.append(
            TraceStep(
                session_id=r.session_id, step_id=llm_id, arrival_s=clock, node="llm", node_type=NodeType.LLM,
                parents=waits_for, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                reasoning_tokens=r.reasoning_tokens, cached_prefix_tokens=r.cached_tokens, duration_s=duration,
            )
        )
        for tool in r.tools:
            steps.append(
                TraceStep(
                    session_id=r.session_id, step_id=len(steps), node=tool.name, node_type=NodeType.TOOL,
                    arrival_s=clock if tool.emitted_s is None else tool.emitted_s - start, parents=(llm_id,),
                    duration_s=tool.duration_s,
                )
            )
        waits_for = tuple(range(llm_id + 1, len(steps))) or (llm_id,)
    return steps


def read(path: Path, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Read a TraceLab round-trace JSONL file, or every ``*.jsonl`` under a folder."""
    files = input_files(path, "*.jsonl")
    parsed = read_json_lines(files, parse_round, EXPECTED, skip_bad)
    rounds = [record for _, _, record in parsed.records]
    if not rounds:
        raise WorkloadError(f"{path}: no rounds (expected lines like {EXPECTED})")
    try:
        steps = tracelab_steps(rounds)
    except RecordError as exc:
        raise WorkloadError(f"{path}: {exc}") from None
    meta = TraceMeta(
        source=SOURCE, format=FORMAT, license="CC-BY-4.0 (data)", skipped_lines=parsed.skipped_lines,
        extra={"files": len(files), "source_models": sorted({r.model for r in rounds if r.model})},
    )
    return steps, meta
