"""TensorRT-LLM scaffolding trace-replay traces: ``{"trace_id", "events": [...]}`` per JSON file.

Event types (``tensorrt_llm/scaffolding/execution_trace.py``): ``message`` (assistant messages carry
``prompt_tokens``, ``completion_tokens`` (reasoning included), ``reasoning_tokens``), ``tool_call``
(``tool_name``, ``duration_ms``), ``parallel_start`` (``num_branches``; sub-branch events follow
on ``branch_path`` = parent path + [i], or come inline as ``children``), ``parallel_end``,
``drop_kv_cache``. Other roles' messages are context only and make no step.

Each file is one session (``session_id`` = ``trace_id``). Assistant messages become LLM steps and
tool calls tool steps (``duration_s`` from ``duration_ms``), chained in event order on each branch;
a fork makes the branches' first steps siblings of one parent and the step after
``parallel_end`` waits for every branch (fan-in). The compact traces have no timestamps: every
session starts at ``arrival_s`` = 0 and a step's ``arrival_s`` is the sum of the known durations
before it on its path (tool durations, plus ``llm_duration_ms`` where a full trace gives it); LLM
time is otherwise unknown and counts as 0 there. ``cached_prefix_tokens`` is the previous
assistant prompt of the same conversation (chat history only grows, so that prompt is a prefix),
capped at this prompt: derived, not recorded by the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hetsim.errors import WorkloadError
from hetsim.io.importers._records import (
    SKIP_HINT,
    RecordError,
    integer,
    number,
    optional_integer,
    optional_number,
    read_json_document,
    text,
)
from hetsim.io.importers._records import field as required
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

FORMAT = "trtllm"
SOURCE = (
    "TensorRT-LLM scaffolding trace replay, https://github.com/NVIDIA/TensorRT-LLM (examples/scaffolding/trace_replay)"
)
EXPECTED = 'a JSON object {"trace_id": str, "events": [{"event_type": ..., "branch_path": [int, ...]}, ...]}'
BranchPath = tuple[int, ...]


@dataclass
class _Walk:
    """Running state while walking one trace's events."""

    session_id: str
    steps: list[TraceStep] = field(default_factory=list)
    frontier: dict[BranchPath, tuple[int, ...]] = field(default_factory=lambda: {(): ()})
    clock: dict[BranchPath, float] = field(default_factory=lambda: {(): 0.0})
    last_prompt: dict[Any, int] = field(default_factory=dict)

    def enter(self, path: BranchPath) -> None:
        """Start a path unseen so far from its nearest known ancestor (a fork without children)."""
        if path not in self.frontier:
            ancestor = max((p for p in self.frontier if path[: len(p)] == p), key=len)
            self.frontier[path], self.clock[path] = self.frontier[ancestor], self.clock[ancestor]

    def add(self, path: BranchPath, duration_s: float | None, **fields: Any) -> None:
        self.enter(path)
        step_id = len(self.steps)
        self.steps.append(
            TraceStep(
                session_id=self.session_id, step_id=step_id, arrival_s=self.clock[path], parents=self.frontier[path],
                duration_s=duration_s, branch="/".join(map(str, path)) or None, **fields,
            )
        )
        self.frontier[path] = (step_id,)
        self.clock[path] += duration_s or 0.0

    def join(self, path: BranchPath) -> None:
        """Fan-in: ``path`` continues after every sub-path of it, which are closed."""
        self.enter(path)
        subs = [p for p in self.frontier if len(p) > len(path) and p[: len(path)] == path]
        if subs:
            self.frontier[path] = tuple(sorted({i for p in subs for i in self.frontier[p]}))
            self.clock[path] = max(self.clock[p] for p in subs)
        for p in subs:
            del self.frontier[p], self.clock[p]


def trtllm_steps(session_id: str, events: list[Any], skip_bad: bool = False) -> tuple[list[TraceStep], list[str]]:
    """Steps of one trace (pure); also the problems of the events skipped with ``skip_bad``.

    Raises:
        RecordError: an event is malformed (unless ``skip_bad``); the message names its index.
    """
    walk = _Walk(session_id)
    skipped: list[str] = []
    for index, event in enumerate(events):
        try:
            _apply(walk, event, _branch(event))
        except RecordError as exc:
            if not skip_bad:
                raise RecordError(f"event {index}: {exc}") from None
            skipped.append(f"event {index}: {exc}")
    return walk.steps, skipped


def _branch(event: Any) -> BranchPath:
    path = event.get("branch_path", []) if isinstance(event, dict) else None
    if not isinstance(path, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
        raise RecordError("'branch_path' must be a list of integers")
    return tuple(path)


def _apply(walk: _Walk, event: Any, path: BranchPath) -> None:
    kind = text(event, "event_type")
    if kind == "message" and event.get("role") == "assistant":
        _assistant(walk, event, path)
    elif kind == "tool_call":
        duration = number(event, "duration_ms") / 1000.0
        walk.add(path, duration, node=text(event, "tool_name"), node_type=NodeType.TOOL)
    elif kind == "parallel_start" and event.get("children") is not None:
        children = required(event, "children")
        if not isinstance(children, list):
            raise RecordError("'children' of parallel_start must be a list of events")
        walk.enter(path)
        for i, child in enumerate(children):
            _apply(walk, child, (*path, i))
        walk.join(path)
    elif kind == "parallel_end":
        walk.join(path)
    # parallel_start without children (its branches start lazily), drop_kv_cache and non-assistant
    # messages (context only) make no step


def _assistant(walk: _Walk, event: dict[str, Any], path: BranchPath) -> None:
    prompt = integer(event, "prompt_tokens")
    completion = integer(event, "completion_tokens")
    llm_ms = optional_number(event, "llm_duration_ms")
    conversation = event.get("conversation_id")
    if conversation is not None and (isinstance(conversation, bool) or not isinstance(conversation, int | str)):
        raise RecordError(f"field 'conversation_id' must be an integer or a string, got {conversation!r:.40}")
    previous = walk.last_prompt.get(conversation)
    walk.last_prompt[conversation] = prompt
    walk.add(
        path, None if llm_ms is None else llm_ms / 1000.0, node="llm", node_type=NodeType.LLM,
        input_tokens=prompt, output_tokens=completion,
        reasoning_tokens=optional_integer(event, "reasoning_tokens") or 0,
        cached_prefix_tokens=None if previous is None else min(previous, prompt),
    )


def read(path: Path, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Read a trace file, or every ``*.trace.json`` (not ``*.full.trace.json``) under a folder."""
    files = [path] if path.is_file() else _folder_files(path)
    steps: list[TraceStep] = []
    problems: list[str] = []
    for file in files:
        session_id, events = _document(file)
        try:
            session_steps, skipped = trtllm_steps(session_id, events, skip_bad)
        except RecordError as exc:
            raise WorkloadError(f"{file}: {exc}; expected events as in {EXPECTED} {SKIP_HINT}") from None
        steps.extend(session_steps)
        problems.extend(f"{file.name}: {p}" for p in skipped)
    meta = TraceMeta(
        source=SOURCE, format=FORMAT, license="Apache-2.0", skipped_lines=len(problems),
        extra={
            "files": len(files), "skipped_events": problems[:20],
            "arrival": "no timestamps: sessions start at 0; steps at the sum of known durations before them",
            "skipped_lines_unit": "events (a JSON document has no line per event)",
        },
    )
    return steps, meta


def _folder_files(path: Path) -> list[Path]:
    if not path.is_dir():
        raise WorkloadError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*.trace.json") if not p.name.endswith(".full.trace.json"))
    if not files:
        raise WorkloadError(f"{path}: folder holds no *.trace.json files")
    return files


def _document(path: Path) -> tuple[str, list[Any]]:
    document = read_json_document(path, EXPECTED)
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise WorkloadError(f"{path}: expected {EXPECTED}, got no 'events' list")
    trace_id = document.get("trace_id")
    return (trace_id if isinstance(trace_id, str) and trace_id else path.name.split(".")[0]), document["events"]
