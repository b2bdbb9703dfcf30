"""The canonical agent-trace schema: sessions made of steps, one flat record per step.

Every importer produces these records and every consumer (stats, simulator) reads them.
Times are seconds relative to the trace start. Token counts are integers. A step's
``parents`` are the step ids (same session) it waits for; fan-out is several steps with
the same parent, fan-in one step with several parents.

On disk (see ``hetsim.io.traces``): JSONL whose first line is ``{"trace_meta": {...}}`` and
every other line one step, or Parquet with the meta in the file's key-value metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class NodeType(StrEnum):
    """What a step is; values are the YAML/JSON spellings."""

    LLM = "llm"
    TOOL = "tool"
    EXTERNAL = "external"  # a pure delay that uses no fleet resource (remote API, human)
    RETRIEVAL = "retrieval"
    EMBED = "embed"
    RERANK = "rerank"
    STT = "stt"
    TTS = "tts"
    GUARDRAIL = "guardrail"
    CODE_EXEC = "code_exec"


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of one session.

    Attributes:
        session_id: the session (agent task, conversation) the step belongs to.
        step_id: unique within the session, increasing in issue order.
        arrival_s: when the step was issued, seconds since trace start.
        node: the workload node the step instantiates (e.g. 'planner', 'search'); the
            importer's best label when the source has no graph.
        node_type: what kind of work it is.
        parents: step ids of this session that must finish before this step starts.
        model: catalog model name for model steps (llm, embed, stt, ...), else None.
        input_tokens / output_tokens / reasoning_tokens: LLM token counts (reasoning is
            part of output in most APIs; kept apart when the source says so).
        cached_prefix_tokens: prompt tokens the source says were served from a prefix cache.
        prefix_hash_ids: prefix-block hashes (Mooncake style); equal ids = reusable KV blocks.
        duration_s: measured duration of the step when the source gives one (tool time,
            observed latency); None when the simulator must compute it.
        units: amount of non-LLM input in the model's unit (audio seconds, documents, ...).
        branch: branch label for fan-out paths, if any.
        adapter: the LoRA adapter (fine-tune of ``model``) an LLM step names; None: the base
            model.
        acceptance_rate: the per-token acceptance of an LLM step's speculative drafts, as
            measured where it was served (vLLM's ``spec_decode`` acceptance, SGLang's accept
            length); None: the serving pool's own rate (``llm.speculation.acceptance_rate``).
    """

    session_id: str
    step_id: int
    arrival_s: float
    node: str
    node_type: NodeType
    parents: tuple[int, ...] = ()
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prefix_tokens: int | None = None
    prefix_hash_ids: tuple[int, ...] = ()
    duration_s: float | None = None
    units: float | None = None
    branch: str | None = None
    adapter: str | None = None
    acceptance_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["node_type"] = self.node_type.value
        record["parents"] = list(self.parents)
        record["prefix_hash_ids"] = list(self.prefix_hash_ids)
        return record


TRACE_COLUMNS: tuple[str, ...] = tuple(TraceStep.__dataclass_fields__)
"""Column order of a trace DataFrame / Parquet file."""


@dataclass(frozen=True)
class TraceMeta:
    """What a trace is and where it came from.

    Attributes:
        source: citation of the original data (paper, repository, commit).
        format: the importer that read it ('azure-2023', 'mooncake', 'lmcache', 'trtllm',
            'tracelab', 'synthetic', 'canonical').
        license: the data's license (e.g. 'CC-BY-4.0').
        block_size_tokens: tokens per prefix-hash block, when ``prefix_hash_ids`` are used.
        token_count_method: how token counts were obtained ('source', 'chars/4', ...), and
            how accurate that is.
        skipped_lines: malformed input lines skipped with ``--skip-bad``.
        extra: anything else worth keeping (seed, workload, rate for synthetic traces).
    """

    source: str
    format: str
    license: str = "unknown"
    block_size_tokens: int | None = None
    token_count_method: str = "source"
    skipped_lines: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
