"""Config-only model directories: a catalog architecture as the ``config.json`` a serving
engine loads with random weights (vLLM's ``--load-format dummy``), scaled down by a named
factor on machines that cannot hold the real size.

Why a config and not weights: the executor measures serving, and serving time depends on the
architecture's shapes, not on the weights' values. Scaling keeps the architecture's kind
(attention heads of the same size, GQA ratio, gated MLP, MoE routing) and divides its width,
depth and vocabulary; every output of a scaled run says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hetsim.errors import ExecutorError
from hetsim.io.outputs import write_file
from hetsim.perf.model_scale import ModelScale, scaled_architecture
from hetsim.specs.model import AttentionKind, ModelSpec

# Hugging Face architecture class and model_type per catalog family; the family is read from the
# catalog name (the catalog carries no HF class of its own).
_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("llama", "LlamaForCausalLM", "llama"),
    ("mistral", "MistralForCausalLM", "mistral"),
    ("mixtral", "MixtralForCausalLM", "mixtral"),
    ("qwen2", "Qwen2ForCausalLM", "qwen2"),
)


def _family(model: ModelSpec) -> tuple[str, str]:
    for prefix, architecture, model_type in _FAMILIES:
        if model.name.lower().startswith(prefix):
            return architecture, model_type
    known = ", ".join(prefix for prefix, _, _ in _FAMILIES)
    raise ExecutorError(
        f"model {model.name!r}: no engine config template for this family (known: {known}); "
        "name its real weights or model directory in a --weights file"
    )


def engine_config(model: ModelSpec, scale: ModelScale) -> dict[str, Any]:
    """The ``config.json`` of ``model`` at ``scale``; raises ExecutorError for what cannot be
    expressed (a non-LLM model, MLA attention, an unknown family)."""
    if model.architecture is None:
        raise ExecutorError(f"model {model.name!r}: not an LLM (kind {model.kind}); only LLMs run on an engine")
    if model.architecture.attention == AttentionKind.MLA:
        raise ExecutorError(f"model {model.name!r}: MLA attention has no config template; name its weights in a --weights file")
    architecture, model_type = _family(model)
    arch = scaled_architecture(model.architecture, scale)
    config: dict[str, Any] = {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_size": arch.hidden_size,
        "head_dim": arch.head_dim,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.max_context_tokens,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": arch.tie_embeddings,
        "hidden_act": "silu",
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if arch.sliding_window_tokens is not None and model_type in ("mistral", "mixtral", "qwen2"):
        config["sliding_window"] = arch.sliding_window_tokens
    if arch.moe is not None:
        if model_type != "mixtral":
            raise ExecutorError(f"model {model.name!r}: MoE is templated for the Mixtral family only")
        config["num_local_experts"] = arch.moe.num_experts
        config["num_experts_per_tok"] = arch.moe.experts_per_token
        config["intermediate_size"] = arch.moe.expert_intermediate_size
    config["hetsim"] = {"catalog_model": model.name, "scale": scale.describe(), "weights": "random (dummy load format)"}
    return config


def write_model_dir(folder: Path, model: ModelSpec, scale: ModelScale) -> Path:
    """Write ``folder/config.json`` for ``model`` at ``scale`` (written aside, then moved in)."""
    text = json.dumps(engine_config(model, scale), indent=2, sort_keys=True)
    write_file(folder / "config.json", "model folder", lambda staged: staged.write_text(text, encoding="utf-8"), ExecutorError)
    return folder


def vocab_size(folder: Path) -> int:
    """The vocabulary of the model directory's config (prompts are drawn below it)."""
    try:
        return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExecutorError(f"{folder / 'config.json'}: expected a model config with 'vocab_size', got {exc}") from None
