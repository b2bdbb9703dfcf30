"""LMCache agent traces: JSON lines ``{"timestamp" (µs), "input", "output", "session_id"}``, one LLM call each.

The source has text, no token counts: counts come from :func:`hetsim.workload.tokens.estimate_tokens`
(the method and its measured error are stated in ``TraceMeta.token_count_method``).

Calls are ordered by timestamp within a session (file order is not issue order: in the LMCache
files about one call in four is logged out of order) and chained, each call's parent being the
call before it. ``arrival_s`` is seconds after the earliest call of the import.

``cached_prefix_tokens`` is the token count of the longest common character prefix of a call's
prompt with an earlier prompt of the same session: with ``prefix_match="any"`` (default) the best
of all earlier calls, which is what an unbounded per-session prefix cache could reuse; with
``"previous"`` only the call just before. The two agree for single-chain agents (mini-SWE-agent)
but not for multi-agent sessions whose conversations interleave (Magentic-One style, tau-bench
agent + simulated user), where ``"previous"`` sees about half the reuse. Prefix and remainder are
counted separately, so ``input_tokens`` = cached prefix tokens + remainder tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from hetsim.errors import WorkloadError
from hetsim.io.importers._records import input_files, integer, read_json_lines, text
from hetsim.workload.tokens import TOKEN_COUNT_METHOD, estimate_tokens
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

FORMAT = "lmcache"
SOURCE = "LMCache agent traces, https://github.com/LMCache/lmcache-agent-trace"
EXPECTED = 'a JSON object {"timestamp": microseconds, "input": str, "output": str, "session_id": str}'
PrefixMatch = Literal["any", "previous"]


class LMCacheCall(NamedTuple):
    session_id: str
    timestamp_us: int
    input: str
    output: str


def parse_call(record: Any) -> LMCacheCall:
    """Check one parsed JSON line (pure)."""
    session_id, timestamp = text(record, "session_id"), integer(record, "timestamp")
    return LMCacheCall(session_id, timestamp, text(record, "input"), text(record, "output"))


def lmcache_steps(calls: Sequence[LMCacheCall], prefix_match: PrefixMatch = "any") -> list[TraceStep]:
    """Sessions of chained LLM steps with estimated token counts and reusable prefixes (pure)."""
    if prefix_match not in ("any", "previous"):
        raise WorkloadError(f"prefix_match must be 'any' or 'previous', got {prefix_match!r}")
    start = min(call.timestamp_us for call in calls)
    sessions: dict[str, list[LMCacheCall]] = defaultdict(list)
    for call in calls:
        sessions[call.session_id].append(call)
    steps: list[TraceStep] = []
    for session_calls in sessions.values():
        ordered = sorted(session_calls, key=lambda c: c.timestamp_us)  # stable: ties keep file order
        steps.extend(_session_steps(ordered, start, prefix_match))
    return steps


def _session_steps(calls: list[LMCacheCall], start_us: int, prefix_match: PrefixMatch) -> list[TraceStep]:
    steps: list[TraceStep] = []
    input_tokens: list[int] = []
    for index, call in enumerate(calls):
        candidates = range(index - 1, index) if prefix_match == "previous" else range(index)
        match, length = _best_prefix(call.input, [calls[j].input for j in candidates], list(candidates))
        if match is None or length == 0:
            cached = 0
        elif length == len(calls[match].input):
            cached = input_tokens[match]  # the whole earlier prompt: reuse its count
        else:
            cached = estimate_tokens(call.input[:length])
        total = cached + estimate_tokens(call.input[length:])
        input_tokens.append(total)
        steps.append(
            TraceStep(
                session_id=call.session_id, step_id=index, arrival_s=(call.timestamp_us - start_us) / 1e6, node="llm",
                node_type=NodeType.LLM, parents=(index - 1,) if index else (), input_tokens=total,
                output_tokens=estimate_tokens(call.output), cached_prefix_tokens=cached if index else None,
            )
        )
    return steps


def _best_prefix(prompt: str, earlier: list[str], indices: list[int]) -> tuple[int | None, int]:
    """Index and length of the longest common prefix of ``prompt`` with one of ``earlier``."""
    best, best_length = None, 0
    for index, other in zip(indices, earlier, strict=True):
        length = common_prefix_length(prompt, other)
        if length > best_length or (length == best_length and best is not None and length == len(other)):
            best, best_length = index, length
    return best, best_length


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings (bisection on slice equality, C speed)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low] and a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def read(path: Path, skip_bad: bool = False, prefix_match: PrefixMatch = "any") -> tuple[list[TraceStep], TraceMeta]:
    """Read an LMCache session file, or every ``*.jsonl`` under a folder."""
    files = input_files(path, "*.jsonl")
    parsed = read_json_lines(files, parse_call, EXPECTED, skip_bad)
    calls = [record for _, _, record in parsed.records]
    if not calls:
        raise WorkloadError(f"{path}: no LLM calls (expected lines like {EXPECTED})")
    meta = TraceMeta(
        source=SOURCE, format=FORMAT, license="Apache-2.0", token_count_method=TOKEN_COUNT_METHOD,
        skipped_lines=parsed.skipped_lines,
        extra={
            "files": len(files), "prefix_match": prefix_match,
            "empty_outputs": sum(1 for call in calls if not call.output),
            "arrival": "timestamps (µs since the Unix epoch, wall clock) relative to the earliest call",
        },
    )
    return lmcache_steps(calls, prefix_match), meta
