"""Builders for workload tests: the catalog's model names and a small valid workload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CATALOG_MODELS = frozenset(
    {
        "llama-3-8b", "llama-3.1-8b", "llama-3-70b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-7b",
        "qwen2.5-72b", "mistral-7b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-120b", "whisper-large-v3",
        "bge-large-en-v1.5", "bge-reranker-large", "kokoro-82m", "llama-guard-3-1b",
    }
)  # fmt: skip
"""The model names the catalog promises (issue 'Agent workloads and traces')."""


def agent_loop(**changes: Any) -> dict[str, Any]:
    """A small valid workload: stt -> agent <-> search (loop) -> tts, as a dict to edit."""
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "tiny-agent",
        "nodes": {
            "stt": {"type": "stt", "model": "whisper-large-v3", "audio_s": {"dist": "constant", "value": 4}},
            "agent": {
                "type": "llm", "model": "llama-3-8b", "context": "chat",
                "prompt_tokens": {"dist": "lognormal", "mean": 500, "cv": 0.5},
                "turn_tokens": 100, "output_tokens": {"dist": "gamma", "mean": 200, "cv": 0.8},
            },
            "search": {"type": "tool", "external": True, "latency_s": {"dist": "uniform", "low": 0.2, "high": 0.8}},
            "tts": {"type": "tts", "model": "kokoro-82m", "output_characters": 800},
        },
        "edges": [
            {"from": "stt", "to": "agent"},
            {"from": "agent", "to": "search", "loop": {"iterations": {"dist": "empirical", "values": [0, 1, 2]},
                                                      "max_iterations": 2}},
            {"from": "search", "to": "agent"},
            {"from": "agent", "to": "tts"},
        ],
        "sla": {"ttft_s": 0.25, "tbt_s": 0.02},
        "arrival": {"process": "poisson", "rate_per_s": 2.0},
    }  # fmt: skip
    data.update(changes)
    return data


def one_step_trace(folder: Path, **step: object) -> Path:
    """A canonical JSONL trace ``t.jsonl`` in ``folder`` of one step (session s, step 0, node n) with ``step``'s fields."""
    record = {"session_id": "s", "step_id": 0, "arrival_s": 0.0, "node": "n", **step}
    path = folder / "t.jsonl"
    path.write_text(json.dumps({"trace_meta": {"source": "x", "format": "canonical"}}) + "\n" + json.dumps(record) + "\n")
    return path
