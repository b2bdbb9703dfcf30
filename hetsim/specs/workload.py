"""Agent workload specs: a session graph of typed nodes, an arrival process and an SLA.

A workload YAML describes one kind of agent session as a directed graph (cycles allowed for
agent loops). Each node is one piece of work: an LLM call, a tool call, a retrieval, a
speech or embedding model call. Edges say what runs next:

* **branch edges** carry a ``probability``; the outgoing probabilities of a node sum to 1;
* **parallel edges** (``parallel: true``) are all taken at once, ``copies`` times each
  (fan-out); the first node marked ``join: true`` that the branches reach waits for all of
  them (fan-in);
* **loop edges** carry ``loop: {iterations, max_iterations}``. The edge's source decides:
  while the loop count (drawn from ``iterations`` when the loop is entered, capped at
  ``max_iterations``) is not used up it takes a loop edge, otherwise one of its other edges.
  For the usual agent loop ``agent -> tool -> agent`` the loop edge is ``agent -> tool``.
  Every cycle must contain a loop edge, so every session is finite.

Units are in field names (``latency_s``, ``output_tokens``). Model names are checked against
a set the caller passes as validation context ``{"known_models": ...}`` (a set of names,
or a name -> kind mapping to check kinds too); the core never reads the model catalog.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hetsim.specs.common import MAX_RATE_PER_S, SOURCE_PREFIXES, FrozenModel, SourcedDocument
from hetsim.specs.distribution import AnyDist, ConstantDist, Distribution

SCHEMA_VERSION = 1
VECTOR_DTYPES = ("fp32", "fp16", "bf16", "int8", "binary")


class _Node(FrozenModel):
    description: str = ""
    join: bool = Field(default=False, description="waits for every parallel branch that reaches it")

    @property
    def model_name(self) -> str | None:
        return getattr(self, "model", None)


class AdapterSpread(FrozenModel):
    """Calls of an LLM node spread over ``count`` LoRA adapters of its model, named
    ``{prefix}{index}`` (index from 0, zero-padded), each session drawing one (a tenant's
    agent uses its fine-tune) or each call its own (``per``), by ``popularity``: uniform, or
    Zipf with exponent ``zipf_s`` (adapter i drawn with weight 1 / (i + 1) ** zipf_s; S-LoRA,
    arXiv 2311.03285, draws its synthetic requests' adapters by such a power law)."""

    count: int = Field(ge=1, le=1_000_000, description="adapters the calls spread over")
    popularity: Literal["uniform", "zipf"] = "uniform"
    zipf_s: float | None = Field(default=None, gt=0, le=10, description="Zipf exponent (popularity 'zipf')")
    per: Literal["session", "call"] = Field(default="session", description="who draws an adapter: a session or each call")
    prefix: str = Field(default="adapter-", min_length=1, description="adapter names: prefix + index")

    @model_validator(mode="after")
    def _exponent_of_zipf(self) -> AdapterSpread:
        if (self.popularity == "zipf") != (self.zipf_s is not None):
            raise ValueError(f"adapters.zipf_s: expected it exactly with popularity 'zipf', got "
                             f"zipf_s={self.zipf_s} with popularity {self.popularity!r}")  # fmt: skip
        return self

    def names(self) -> tuple[str, ...]:
        """The adapters' names, in index order."""
        width = len(str(self.count - 1))
        return tuple(f"{self.prefix}{index:0{width}d}" for index in range(self.count))

    def weights(self) -> list[float]:
        """Each adapter's share of the draws (summing to 1)."""
        raw = [1.0] * self.count if self.zipf_s is None else [(index + 1.0) ** -self.zipf_s for index in range(self.count)]
        total = sum(raw)
        return [weight / total for weight in raw]


class LlmNode(_Node):
    """An LLM call. With ``context`` set, calls sharing that context name (in one session and
    parallel branch) grow one conversation: each call's input is the earlier context (its
    cached prefix) plus new tokens: ``prompt_tokens`` on the first call, ``turn_tokens``
    (tool results, user messages) on later ones."""

    type: Literal["llm"]
    model: str
    prompt_tokens: Distribution
    output_tokens: Distribution
    reasoning_tokens: Distribution | None = None
    turn_tokens: Distribution | None = None
    shared_prefix_tokens: int = Field(default=0, ge=0, description="system prompt identical across sessions")
    context: str | None = Field(default=None, description="name of the growing conversation this call extends")
    adapters: AdapterSpread | None = Field(default=None, description="LoRA adapters of the model the calls name")
    acceptance_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="per-token acceptance of these calls' speculative drafts, measured with the proposer the pools "
        "run (code and retrieval-grounded text accept more than open chat); none: the pool's own rate",
    )

    @model_validator(mode="after")
    def _turns_need_context(self) -> LlmNode:
        if self.turn_tokens is not None and self.context is None:
            raise ValueError("turn_tokens: expected 'context' too (turn tokens extend a conversation), got none")
        return self


class ToolRun(FrozenModel):
    """What ``hetsim run`` executes for a tool call: a command (an argv, run as a subprocess)
    or an HTTP request. The simulator keeps using the node's ``latency_s``."""

    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")
    method: Literal["GET", "POST"] = "GET"
    timeout_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_action(self) -> ToolRun:
        if (self.command is None) == (self.url is None):
            raise ValueError("run: expected exactly one of 'command' or 'url'")
        return self


class _CpuWork(_Node):
    latency_s: Distribution
    run: ToolRun | None = Field(default=None, description="executed for real by hetsim run; else it waits latency_s")
    cpu_s: Distribution | None = Field(default=None, description="CPU-seconds used per call")
    cpu_utilization: float | None = Field(default=None, ge=0, description="CPU cores busy during the call")

    @model_validator(mode="after")
    def _one_cpu_measure(self) -> _CpuWork:
        if self.cpu_s is not None and self.cpu_utilization is not None:
            raise ValueError("cpu_s: expected either cpu_s or cpu_utilization, got both")
        return self


class ToolNode(_CpuWork):
    """A tool call; ``external: true`` makes it a pure delay that uses no fleet resource."""

    type: Literal["tool"]
    external: bool = False

    @model_validator(mode="after")
    def _external_uses_no_cpu(self) -> ToolNode:
        if self.external and (self.cpu_s is not None or self.cpu_utilization is not None):
            raise ValueError("cpu_s: expected no CPU use for an external tool (a pure delay), got some")
        return self


class CodeExecNode(_CpuWork):
    """Running generated code or shell commands in a sandbox on the fleet's CPUs."""

    type: Literal["code_exec"]


class RetrievalNode(_Node):
    """A vector-index search."""

    type: Literal["retrieval"]
    index_vectors: int = Field(ge=1)
    dimension: int = Field(ge=1)
    top_k: int = Field(ge=1)
    dtype: str = "fp32"

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, dtype: str) -> str:
        if dtype not in VECTOR_DTYPES:
            raise ValueError(f"expected one of {', '.join(VECTOR_DTYPES)}, got {dtype!r}")
        return dtype

    @property
    def index_bytes(self) -> float:
        per_value = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "binary": 1 / 8}[self.dtype]
        return self.index_vectors * self.dimension * per_value


class EmbedNode(_Node):
    type: Literal["embed"]
    model: str
    input_tokens: Distribution


class RerankNode(_Node):
    type: Literal["rerank"]
    model: str
    documents: Distribution
    tokens_per_document: int = Field(default=256, ge=1)


class SttNode(_Node):
    type: Literal["stt"]
    model: str
    audio_s: Distribution


class TtsNode(_Node):
    """Speech synthesis of ``output_characters`` of text, or of ``audio_s`` seconds of speech."""

    type: Literal["tts"]
    model: str
    output_characters: Distribution | None = None
    audio_s: Distribution | None = None

    @model_validator(mode="after")
    def _one_size(self) -> TtsNode:
        if (self.output_characters is None) == (self.audio_s is None):
            given = "both" if self.audio_s is not None else "neither"
            raise ValueError(f"output_characters: expected exactly one of output_characters or audio_s, got {given}")
        return self


class GuardrailNode(_Node):
    """A safety classifier (e.g. Llama Guard) over ``input_tokens`` of text."""

    type: Literal["guardrail"]
    model: str
    input_tokens: Distribution
    output_tokens: Distribution = Field(default_factory=lambda: ConstantDist(value=4))
    shared_prefix_tokens: int = Field(default=0, ge=0)


NodeSpec = Annotated[
    LlmNode | ToolNode | CodeExecNode | RetrievalNode | EmbedNode | RerankNode | SttNode | TtsNode | GuardrailNode,
    Field(discriminator="type"),
]

MODEL_KINDS_FOR_NODE = {
    "llm": ("llm",),
    "embed": ("embed",),
    "rerank": ("rerank",),
    "stt": ("stt",),
    "tts": ("tts",),
    "guardrail": ("guardrail", "llm"),
}
"""Which model-catalog kinds each node type accepts."""


class LoopSpec(FrozenModel):
    """How often a loop edge is taken each time its loop is entered."""

    iterations: Distribution
    max_iterations: int = Field(ge=1, description="hard bound; every cycle needs one")


class EdgeSpec(FrozenModel):
    from_node: str = Field(alias="from")
    to: str
    probability: float | None = Field(default=None, ge=0, le=1)
    parallel: bool = False
    copies: Distribution | None = Field(default=None, description="concurrent copies of a parallel branch")
    max_copies: int = Field(default=16, ge=1)
    loop: LoopSpec | None = None

    @model_validator(mode="after")
    def _consistent_kind(self) -> EdgeSpec:
        if self.parallel and self.probability is not None:
            raise ValueError(f"probability: expected none on a parallel edge (always taken), got {self.probability}")
        if self.parallel and self.loop is not None:
            raise ValueError("loop: expected no loop on a parallel edge, got one")
        if self.copies is not None and not self.parallel:
            raise ValueError("copies: expected parallel: true on an edge with copies, got parallel: false")
        return self


class SlaSpec(FrozenModel):
    """Latency targets, each met at its percentile. TTFT and TBT (time between tokens) apply
    to every LLM call; e2e to a whole session."""

    ttft_s: float | None = Field(default=None, gt=0)
    ttft_percentile: float = Field(default=99.0, gt=0, le=100)
    tbt_s: float | None = Field(default=None, gt=0)
    tbt_percentile: float = Field(default=99.0, gt=0, le=100)
    e2e_s: float | None = Field(default=None, gt=0)
    e2e_percentile: float = Field(default=99.0, gt=0, le=100)
    source: str | None = None


class PoissonArrival(FrozenModel):
    process: Literal["poisson"]
    rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S)
    source: str | None = None

    @property
    def mean_rate_per_s(self) -> float:
        return self.rate_per_s


class GammaArrival(FrozenModel):
    """A renewal process with gamma inter-arrival times: cv > 1 is burstier than Poisson."""

    process: Literal["gamma"]
    rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S)
    cv: float = Field(gt=0, le=100.0)
    source: str | None = None

    @property
    def mean_rate_per_s(self) -> float:
        return self.rate_per_s


class DiurnalArrival(FrozenModel):
    """Poisson arrivals whose rate follows a sinusoid: mean, peak/trough ratio, period."""

    process: Literal["diurnal"]
    mean_rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S)
    peak_to_trough: float = Field(ge=1)
    period_s: float = Field(default=86400.0, gt=0)
    peak_at_s: float = Field(default=0.0, ge=0, description="time of the first peak")
    source: str | None = None

    @property
    def amplitude(self) -> float:
        """Relative amplitude a: rate = mean * (1 + a cos(2 pi (t - peak_at) / period))."""
        return (self.peak_to_trough - 1) / (self.peak_to_trough + 1)


class ClosedLoopArrival(FrozenModel):
    """``users`` users, each starting a new session a think time after the previous one."""

    process: Literal["closed_loop"]
    users: int = Field(ge=1)
    think_time_s: Distribution
    source: str | None = None

    @model_validator(mode="after")
    def _positive_think_time(self) -> ClosedLoopArrival:
        if self.think_time_s.mean <= 0:
            raise ValueError(f"think_time_s: expected a mean think time > 0, got {self.think_time_s.mean}")
        return self

    @property
    def mean_rate_per_s(self) -> float:
        """Session rate if sessions took no time (an upper bound)."""
        return self.users / self.think_time_s.mean


ArrivalSpec = Annotated[
    PoissonArrival | GammaArrival | DiurnalArrival | ClosedLoopArrival, Field(discriminator="process")
]
AnyArrival = PoissonArrival | GammaArrival | DiurnalArrival | ClosedLoopArrival
AnyNode = LlmNode | ToolNode | CodeExecNode | RetrievalNode | EmbedNode | RerankNode | SttNode | TtsNode | GuardrailNode


class WorkloadSpec(SourcedDocument):
    """One agent workload: its session graph, how sessions arrive, and its SLA."""

    description: str = ""
    entry: str | None = Field(default=None, description="first node; default: the only node without in-edges")
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    edges: tuple[EdgeSpec, ...] = ()
    sla: SlaSpec = SlaSpec()
    arrival: ArrivalSpec
    notes: str = ""

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, Any]) -> dict[str, Any]:
        for name in nodes:
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"expected node names of letters, digits, '-', '_' or '.', got {name!r}")
        return nodes

    @model_validator(mode="after")
    def _graph_is_sound(self, info: ValidationInfo) -> WorkloadSpec:
        from hetsim.specs.workload_graph import check_graph  # networkx stays out of import time

        check_graph(self)
        self._check_sources()
        known = (info.context or {}).get("known_models") if info is not None else None
        if known is not None:
            check_model_names(self, known)
        return self

    def _check_sources(self) -> None:
        for path, dist in self.iter_distributions():
            source = dist.source
            if source is not None and source not in self.sources and not source.startswith(SOURCE_PREFIXES):
                known = ", ".join(sorted(self.sources)) or "none"
                raise ValueError(
                    f"{path}.source: expected a key of 'sources' ({known}) or text starting with "
                    f"{'/'.join(SOURCE_PREFIXES)}, got {source!r}"
                )

    def iter_distributions(self) -> Iterator[tuple[str, AnyDist]]:
        """Every distribution in the spec with its dotted field path."""
        for name, node in self.nodes.items():
            for field_name in type(node).model_fields:
                value = getattr(node, field_name)
                if hasattr(value, "dist"):
                    yield f"nodes.{name}.{field_name}", value
        for index, edge in enumerate(self.edges):
            if edge.copies is not None:
                yield f"edges.{index}.copies", edge.copies
            if edge.loop is not None:
                yield f"edges.{index}.loop.iterations", edge.loop.iterations
        if isinstance(self.arrival, ClosedLoopArrival):
            yield "arrival.think_time_s", self.arrival.think_time_s

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the workload uses, sorted."""
        return tuple(sorted({n.model_name for n in self.nodes.values() if n.model_name}))

    @property
    def entry_node(self) -> str:
        from hetsim.specs.workload_graph import resolve_entry

        return resolve_entry(self)


def check_model_names(spec: WorkloadSpec, known: Mapping[str, str] | Any) -> None:
    """Raise ValueError (naming the field) for a model not in ``known``.

    ``known`` is a collection of catalog names, or a mapping name -> kind ('llm', 'stt', ...),
    in which case the kind must suit the node type too.
    """
    for name, node in spec.nodes.items():
        model = node.model_name
        if model is None:
            continue
        if model not in known:
            choices = ", ".join(sorted(known))
            raise ValueError(f"nodes.{name}.model: expected a catalog model ({choices}), got unknown model {model!r}")
        if isinstance(known, Mapping) and known[model]:
            kinds = MODEL_KINDS_FOR_NODE[node.type]
            if str(known[model]) not in kinds:
                raise ValueError(
                    f"nodes.{name}.model: a {node.type} node needs a {' or '.join(kinds)} model, "
                    f"got {model!r} which is a {known[model]} model"
                )
