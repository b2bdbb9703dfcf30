"""Scaled-down models: a catalog architecture with its width, depth and vocabulary divided by
a named factor, so that a machine that cannot hold the real size can still execute (and the
simulator can predict) the same kind of model.

The scaled model keeps the architecture's kind: head size, GQA group, gated MLP, MoE routing.
Its name says the scale (``llama-3-8b@tiny``) and its parameter count is recomputed, so every
output that names it says what ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetsim.errors import ScenarioError
from hetsim.perf.transformer import parameter_count
from hetsim.specs.model import ArchitectureSpec, ModelSpec, NetworkSpec


@dataclass(frozen=True)
class ModelScale:
    """Divisors of width (hidden, MLP, heads), depth (layers) and vocabulary (never below one
    head, one layer, 256 tokens of vocabulary)."""

    name: str
    width_divisor: int
    depth_divisor: int
    vocab_divisor: int

    @property
    def is_full(self) -> bool:
        return self.width_divisor == self.depth_divisor == self.vocab_divisor == 1

    def describe(self) -> str:
        if self.is_full:
            return "full size"
        return (
            f"scaled '{self.name}' (hidden, MLP and heads /{self.width_divisor}, layers /{self.depth_divisor}, "
            f"vocabulary /{self.vocab_divisor})"
        )


SCALES: dict[str, ModelScale] = {
    "full": ModelScale("full", 1, 1, 1),
    "small": ModelScale("small", 4, 4, 4),
    "tiny": ModelScale("tiny", 16, 8, 16),
}
"""Named factors. ``tiny`` turns Llama 3 8B into ~8M parameters, which a 2-core CPU serves at
about a thousand tokens per second."""


def scale_named(name: str) -> ModelScale:
    try:
        return SCALES[name]
    except KeyError:
        raise ScenarioError(f"--scale: expected one of {', '.join(SCALES)}, got {name!r}") from None


def _scaled(value: int, divisor: int, floor: int = 1, multiple: int = 1) -> int:
    scaled = max(floor, value // divisor)
    return max(multiple, scaled - scaled % multiple)


def scaled_architecture(arch: ArchitectureSpec, scale: ModelScale) -> ArchitectureSpec:
    if scale.is_full:
        return arch
    heads = _scaled(arch.num_attention_heads, scale.width_divisor)
    group = arch.num_attention_heads // arch.num_kv_heads
    kv_heads = max(1, heads // group)
    while heads % kv_heads:
        kv_heads -= 1
    update: dict = {
        "num_layers": _scaled(arch.num_layers, scale.depth_divisor),
        "hidden_size": heads * arch.head_dim,
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "intermediate_size": _scaled(arch.intermediate_size, scale.width_divisor, 16, 16),
        "vocab_size": _scaled(arch.vocab_size, scale.vocab_divisor, 256),
    }
    if arch.sliding_window_layers:
        update["sliding_window_layers"] = min(arch.sliding_window_layers, update["num_layers"])
    if arch.moe is not None:
        expert = _scaled(arch.moe.expert_intermediate_size, scale.width_divisor, 16, 16)
        first_dense = min(arch.moe.first_dense_layers, update["num_layers"] - 1)
        update["moe"] = arch.moe.model_copy(update={"expert_intermediate_size": expert, "first_dense_layers": first_dense})
    return arch.model_copy(update=update)


def scaled_model(model: ModelSpec, scale: ModelScale) -> ModelSpec:
    """``model`` at ``scale`` (itself at full size); non-LLM models cannot be scaled."""
    if scale.is_full:
        return model
    if model.architecture is None:
        raise ScenarioError(f"model {model.name!r}: only LLM architectures can be scaled (kind {model.kind})")
    arch = scaled_architecture(model.architecture, scale)
    parameters = sum(parameter_count(arch).values())
    active = None
    if model.active_parameters is not None and model.architecture.moe is not None:
        active = parameters * model.active_parameters / model.parameters
    return model.model_copy(
        update={
            "name": f"{model.name}@{scale.name}",
            "display_name": f"{model.display_name}, {scale.describe()}",
            "architecture": arch,
            "parameters": parameters,
            "active_parameters": active,
            "aliases": (),
            "notes": f"{scale.describe()} of {model.name}; parameters recomputed from the scaled architecture",
        }
    )


def scaled_network(network: NetworkSpec, scale: ModelScale) -> NetworkSpec:
    """A non-LLM network at ``scale``: width and depth divided like an LLM's (head size kept);
    the input per unit and the window are the model's own, so the work per step keeps its shape."""
    if scale.is_full:
        return network
    head_dim = network.hidden_size // network.heads
    heads = _scaled(network.heads, scale.width_divisor)
    return network.model_copy(
        update={
            "layers": _scaled(network.layers, scale.depth_divisor),
            "decoder_layers": _scaled(network.decoder_layers, scale.depth_divisor) if network.decoder_layers else 0,
            "heads": heads,
            "hidden_size": heads * head_dim,
            "intermediate_size": _scaled(network.intermediate_size, scale.width_divisor, 16, 16),
        }
    )
