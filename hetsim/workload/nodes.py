"""Turn one workload node into a step maker: (walker, step id, parents, branch) -> TraceStep.

Each maker owns the sample streams of its node's distributions, so a node's draws do not
depend on what other nodes drew.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from hetsim.specs.distribution import UniformDist
from hetsim.specs.workload import (
    AnyNode,
    CodeExecNode,
    EmbedNode,
    GuardrailNode,
    LlmNode,
    RerankNode,
    RetrievalNode,
    SttNode,
    ToolNode,
    TtsNode,
    WorkloadSpec,
)
from hetsim.workload.sampling import Draw, make_stream
from hetsim.workload.trace import NodeType, TraceStep

StepMaker = Callable[[Any, int, tuple[int, ...], str | None], TraceStep]

STEP_FIELD_ORDER = (
    "session_id", "step_id", "arrival_s", "node", "node_type", "parents", "model", "input_tokens",
    "output_tokens", "reasoning_tokens", "cached_prefix_tokens", "prefix_hash_ids", "duration_s", "units", "branch",
    "adapter", "acceptance_rate",
)  # fmt: skip
"""The makers build TraceStep positionally in this order (keywords cost ~40% more per step on
CPython 3.11, and synthesis builds millions of steps); a test pins it to ``TRACE_COLUMNS``."""
_MAX_TOKENS = 10**9


def _tokens(dist: Any, rng: np.random.Generator) -> Draw:
    return make_stream(dist, rng, integer=True, low=0, high=_MAX_TOKENS)


def _seconds(dist: Any, rng: np.random.Generator) -> Draw:
    return make_stream(dist, rng)


def compile_node(name: str, node: AnyNode, rng: np.random.Generator) -> StepMaker:
    """The step maker of ``node``."""
    if isinstance(node, LlmNode):
        return _llm(name, node, rng)
    if isinstance(node, ToolNode | CodeExecNode):
        return _cpu_work(name, node, rng)
    if isinstance(node, GuardrailNode):
        return _guardrail(name, node, rng)
    return _unit_work(name, node, rng)


def _no_adapter(walker: Any) -> str | None:
    return None


def _adapter_draw(name: str, node: LlmNode, rng: np.random.Generator) -> Callable[[Any], str | None]:
    """The adapter each call of ``node`` names: None without ``adapters``; else drawn by the
    spread's popularity from a stream of the node's own (spawned from ``rng`` only when the
    node has adapters, so other nodes' draws do not move), once per session (kept in the
    walker's ``adapters``) or per call."""
    spread = node.adapters
    if spread is None:
        return _no_adapter
    names, cumulative = spread.names(), np.cumsum(spread.weights())
    uniform = make_stream(UniformDist(dist="uniform", low=0.0, high=1.0), np.random.default_rng(rng.integers(2**63)))
    last = len(names) - 1

    def draw() -> str:
        return names[min(int(np.searchsorted(cumulative, uniform(), side="right")), last)]

    if spread.per == "call":
        return lambda walker: draw()

    def per_session(walker: Any) -> str:
        chosen = walker.adapters.get(name)
        if chosen is None:
            chosen = walker.adapters[name] = draw()
        return chosen

    return per_session


def _llm(name: str, node: LlmNode, rng: np.random.Generator) -> StepMaker:
    prompt, output = _tokens(node.prompt_tokens, rng), _tokens(node.output_tokens, rng)
    turn = _tokens(node.turn_tokens, rng) if node.turn_tokens is not None else prompt
    reasoning = _tokens(node.reasoning_tokens, rng) if node.reasoning_tokens is not None else None
    shared, context, model = node.shared_prefix_tokens, node.context, node.model
    adapter = _adapter_draw(name, node, rng)
    acceptance = node.acceptance_rate

    def make(walker: Any, step_id: int, parents: tuple[int, ...], branch: str | None) -> TraceStep:
        key = (context, branch) if context is not None else None
        carried = walker.contexts.get(key) if key is not None else None
        new = prompt() if carried is None else turn()
        carried = carried or 0
        out = output()
        if key is not None:
            walker.contexts[key] = carried + new + out
        prefix = shared + carried
        thinking = reasoning() if reasoning is not None else 0
        return TraceStep(
            walker.session_id, step_id, walker.arrival_s, name, NodeType.LLM, parents, model,
            prefix + new, out, thinking, prefix, (), None, None, branch, adapter(walker), acceptance,
        )  # fmt: skip

    return make


def _cpu_work(name: str, node: ToolNode | CodeExecNode, rng: np.random.Generator) -> StepMaker:
    latency = _seconds(node.latency_s, rng)
    cpu = _seconds(node.cpu_s, rng) if node.cpu_s is not None else None
    utilization = node.cpu_utilization
    is_external = isinstance(node, ToolNode) and node.external
    node_type = (
        NodeType.EXTERNAL if is_external else NodeType.TOOL if isinstance(node, ToolNode) else NodeType.CODE_EXEC
    )

    def make(walker: Any, step_id: int, parents: tuple[int, ...], branch: str | None) -> TraceStep:
        seconds = latency()
        cpu_s = cpu() if cpu is not None else seconds * utilization if utilization is not None else None
        return TraceStep(
            walker.session_id, step_id, walker.arrival_s, name, node_type, parents, None,
            0, 0, 0, None, (), seconds, cpu_s, branch,
        )  # fmt: skip

    return make


def _guardrail(name: str, node: GuardrailNode, rng: np.random.Generator) -> StepMaker:
    inputs, outputs, shared = (
        _tokens(node.input_tokens, rng),
        _tokens(node.output_tokens, rng),
        node.shared_prefix_tokens,
    )
    model = node.model

    def make(walker: Any, step_id: int, parents: tuple[int, ...], branch: str | None) -> TraceStep:
        tokens = shared + inputs()
        return TraceStep(
            walker.session_id, step_id, walker.arrival_s, name, NodeType.GUARDRAIL, parents, model,
            tokens, outputs(), 0, shared, (), None, float(tokens), branch,
        )  # fmt: skip

    return make


def _unit_work(
    name: str, node: RetrievalNode | EmbedNode | RerankNode | SttNode | TtsNode, rng: np.random.Generator
) -> StepMaker:
    """Model calls sized by one amount (tokens, documents, audio seconds, characters) and retrieval."""
    amount, tokens_per_unit, node_type = _amount(node, rng)
    model = getattr(node, "model", None)

    def make(walker: Any, step_id: int, parents: tuple[int, ...], branch: str | None) -> TraceStep:
        units = amount()
        return TraceStep(
            walker.session_id, step_id, walker.arrival_s, name, node_type, parents, model,
            int(units * tokens_per_unit), 0, 0, None, (), None, float(units), branch,
        )  # fmt: skip

    return make


SPEECH_CHARACTERS_PER_S = 15.0
"""Speech rate used to turn TTS characters into audio seconds: about 150 words per minute at
about 6 characters per word including the space (typical conversational English)."""


def _amount(node: Any, rng: np.random.Generator) -> tuple[Draw, int, NodeType]:
    if isinstance(node, RetrievalNode):
        return itertools.repeat(1).__next__, 0, NodeType.RETRIEVAL
    if isinstance(node, EmbedNode):
        return _tokens(node.input_tokens, rng), 1, NodeType.EMBED
    if isinstance(node, RerankNode):
        return _tokens(node.documents, rng), node.tokens_per_document, NodeType.RERANK
    if isinstance(node, SttNode):
        return _seconds(node.audio_s, rng), 0, NodeType.STT
    if node.output_characters is not None:
        characters = _tokens(node.output_characters, rng)
        return (lambda: characters() / SPEECH_CHARACTERS_PER_S), 0, NodeType.TTS
    return _seconds(node.audio_s, rng), 0, NodeType.TTS


def node_units(spec: WorkloadSpec) -> dict[str, str]:
    """What each node's ``units`` counts in a synthesized trace."""
    units: dict[str, str] = {}
    for name, node in spec.nodes.items():
        if isinstance(node, LlmNode):
            units[name] = "none (tokens in input_tokens/output_tokens)"
        elif isinstance(node, ToolNode | CodeExecNode):
            units[name] = "cpu_s" if node.cpu_s is not None or node.cpu_utilization is not None else "none"
        elif isinstance(node, TtsNode):
            from_text = f"audio_s (characters / {SPEECH_CHARACTERS_PER_S})"
            units[name] = from_text if node.output_characters is not None else "audio_s"
        else:
            units[name] = {
                RetrievalNode: "queries", EmbedNode: "tokens", RerankNode: "documents",
                SttNode: "audio_s", GuardrailNode: "tokens",
            }[type(node)]  # fmt: skip
    return units
