"""Mooncake FAST'25 traces: JSON lines ``{"timestamp" (ms), "input_length", "output_length", "hash_ids"}``.

Each request becomes a one-step session; ``hash_ids`` are prefix-block hashes of 512 tokens
each (equal ids = reusable KV blocks) and are kept as ``prefix_hash_ids``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from hetsim.errors import WorkloadError
from hetsim.io.importers._records import RecordError, integer, listing, number, read_json_lines
from hetsim.workload.trace import NodeType, TraceMeta, TraceStep

FORMAT = "mooncake"
BLOCK_SIZE_TOKENS = 512
SOURCE = (
    "Mooncake FAST'25 traces, https://github.com/kvcache-ai/Mooncake (FAST25-release/traces); Qin et al., "
    "'Mooncake: A KVCache-centric Disaggregated Architecture for LLM Serving', FAST 2025"
)
EXPECTED = 'a JSON object {"timestamp": ms, "input_length": int, "output_length": int, "hash_ids": [int, ...]}'


class MooncakeRequest(NamedTuple):
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def parse_request(record: Any) -> MooncakeRequest:
    """Check one parsed JSON line (pure)."""
    timestamp, input_length = number(record, "timestamp"), integer(record, "input_length")
    output_length, hash_ids = integer(record, "output_length"), listing(record, "hash_ids")
    if not all(isinstance(h, int) and not isinstance(h, bool) for h in hash_ids):
        raise RecordError("field 'hash_ids' must be a list of integers")
    return MooncakeRequest(timestamp, input_length, output_length, tuple(hash_ids))


def mooncake_steps(requests: list[MooncakeRequest]) -> list[TraceStep]:
    """One single-LLM-step session per request; arrival is seconds after the earliest timestamp (pure)."""
    start = min(r.timestamp_ms for r in requests)
    return [
        TraceStep(
            session_id=f"req-{i}", step_id=0, arrival_s=(r.timestamp_ms - start) / 1000.0, node="llm",
            node_type=NodeType.LLM, input_tokens=r.input_length, output_tokens=r.output_length,
            prefix_hash_ids=r.hash_ids,
        )
        for i, r in enumerate(requests)
    ]


def read(path: Path, skip_bad: bool = False) -> tuple[list[TraceStep], TraceMeta]:
    """Read a Mooncake JSONL trace (a file; the line number of a bad line is reported)."""
    parsed = read_json_lines([path], parse_request, EXPECTED, skip_bad)
    requests = [record for _, _, record in parsed.records]
    if not requests:
        raise WorkloadError(f"{path}: no requests (expected lines like {EXPECTED})")
    meta = TraceMeta(
        source=SOURCE, format=FORMAT, license="Apache-2.0", block_size_tokens=BLOCK_SIZE_TOKENS,
        skipped_lines=parsed.skipped_lines, extra={"file": path.name},
    )
    return mooncake_steps(requests), meta
