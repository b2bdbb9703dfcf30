"""Model catalog specs: LLM architectures and the non-LLM models an agent uses.

LLMs are described by their published architecture (layers, widths, heads, experts), from
which ``hetsim.perf`` derives FLOPs and bytes. Non-LLM models (speech, embedding, rerank,
TTS, guardrail) are described as FLOPs and bytes per unit of input, with the derivation in
their ``source``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from hetsim.specs.common import FrozenModel, SourcedDocument


class ModelKind(StrEnum):
    LLM = "llm"
    STT = "stt"
    EMBED = "embed"
    RERANK = "rerank"
    TTS = "tts"
    GUARDRAIL = "guardrail"


class AttentionKind(StrEnum):
    GQA = "gqa"  # multi-head (num_kv_heads == num_attention_heads), grouped-query or multi-query
    MLA = "mla"  # DeepSeek multi-head latent attention


class MlaSpec(FrozenModel):
    """DeepSeek-V2/V3 latent attention dimensions."""

    q_lora_rank: int | None = Field(default=None, ge=1)
    kv_lora_rank: int = Field(ge=1)
    qk_nope_head_dim: int = Field(ge=1)
    qk_rope_head_dim: int = Field(ge=1)
    v_head_dim: int = Field(ge=1)


class MoeSpec(FrozenModel):
    num_experts: int = Field(ge=2)
    experts_per_token: int = Field(ge=1)
    expert_intermediate_size: int = Field(ge=1)
    num_shared_experts: int = Field(default=0, ge=0)
    first_dense_layers: int = Field(default=0, ge=0, description="leading layers with a dense MLP instead")

    @model_validator(mode="after")
    def _top_k_fits(self) -> MoeSpec:
        if self.experts_per_token > self.num_experts:
            raise ValueError(
                f"experts_per_token: expected at most num_experts ({self.num_experts}), got {self.experts_per_token}"
            )
        return self


class ArchitectureSpec(FrozenModel):
    """A decoder-only transformer; the MLP is gated (SwiGLU) unless ``gated_mlp`` is false."""

    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=1, description="dense MLP width (also MoE dense layers)")
    vocab_size: int = Field(ge=1)
    max_context_tokens: int = Field(ge=1)
    attention: AttentionKind = AttentionKind.GQA
    gated_mlp: bool = True
    tie_embeddings: bool = False
    sliding_window_tokens: int | None = Field(default=None, ge=1)
    sliding_window_layers: int = Field(default=0, ge=0, description="how many layers use the sliding window")
    mla: MlaSpec | None = None
    moe: MoeSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ArchitectureSpec:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_kv_heads: expected a divisor of num_attention_heads ({self.num_attention_heads}), "
                f"got {self.num_kv_heads}"
            )
        if (self.attention == AttentionKind.MLA) != (self.mla is not None):
            raise ValueError("mla: expected an 'mla' block exactly when attention is 'mla'")
        if self.sliding_window_layers > self.num_layers:
            raise ValueError(f"sliding_window_layers: expected at most num_layers, got {self.sliding_window_layers}")
        return self


class NonLlmCostSpec(FrozenModel):
    """Work per unit of input for a non-LLM model, as FLOPs and bytes moved."""

    unit: str = Field(description="what one unit of input is: audio_second, token, document, character")
    flops_per_unit: float = Field(ge=0)
    bytes_per_unit: float = Field(ge=0, description="activation/KV bytes per unit, beyond reading weights")
    weight_reads_per_unit: float = Field(
        default=0.0, ge=0, description="how many times the weights are streamed per unit at batch 1"
    )
    source: str


class NetworkSpec(FrozenModel):
    """The shape of a non-LLM model's network, for running it for real (``hetsim run``): a
    transformer encoder over the step's input (tokens, audio frames or characters), and for
    speech recognition an autoregressive decoder emitting text tokens."""

    layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    heads: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    input: Literal["tokens", "audio_frames", "characters"]
    inputs_per_unit: float = Field(gt=0, description="encoder positions per unit of the model's input")
    max_inputs: int = Field(ge=1, description="positions of one forward pass (context or audio window)")
    decoder_layers: int = Field(default=0, ge=0)
    outputs_per_unit: float = Field(default=0.0, ge=0, description="decoded tokens per unit (speech recognition)")
    source: str

    @model_validator(mode="after")
    def _heads_divide(self) -> NetworkSpec:
        if self.hidden_size % self.heads:
            raise ValueError(f"heads: expected a divisor of hidden_size ({self.hidden_size}), got {self.heads}")
        return self


class ModelSpec(SourcedDocument):
    """One catalog entry: an LLM with its architecture, or a non-LLM model with unit costs."""

    display_name: str
    kind: ModelKind
    parameters: float = Field(gt=0, description="total parameter count (published)")
    active_parameters: float | None = Field(default=None, gt=0, description="per token, for MoE")
    architecture: ArchitectureSpec | None = None
    unit_cost: NonLlmCostSpec | None = None
    network: NetworkSpec | None = Field(default=None, description="non-LLM models: the network hetsim run executes")
    aliases: tuple[str, ...] = ()
    notes: str = ""

    @model_validator(mode="after")
    def _kind_matches(self) -> ModelSpec:
        if self.kind == ModelKind.LLM and self.architecture is None:
            raise ValueError("architecture: required for an llm model, got none")
        if self.kind != ModelKind.LLM and self.unit_cost is None:
            raise ValueError(f"unit_cost: required for a {self.kind} model, got none")
        return self
