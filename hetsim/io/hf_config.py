"""A model catalog entry from a Hugging Face ``config.json``: any Llama-style architecture can be
simulated without editing the catalog by hand.

Supported ``model_type`` values are the decoder-only families whose shapes hetsim's cost model
covers: dense and grouped-query attention (llama, mistral, qwen2, qwen3), mixtures of experts
(mixtral, qwen2_moe, qwen3_moe) and DeepSeek's latent attention with shared experts
(deepseek_v2, deepseek_v3). The fields read are those of the transformers configuration classes
(``LlamaConfig``, ``MistralConfig``, ``MixtralConfig``, ``Qwen2Config``, ``Qwen2MoeConfig``,
``Qwen3Config``, ``Qwen3MoeConfig``, ``DeepseekV2Config``, ``DeepseekV3Config``), with their
defaults where a config may leave a field out (``num_key_value_heads``: multi-head attention;
``head_dim``: ``hidden_size / num_attention_heads``). The parameter count is derived from the
architecture (``hetsim.perf.transformer.parameter_count``: norms and biases left out). Anything
else is refused in one line naming the file, the field, what was expected and what it holds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hetsim.errors import ProfileError
from hetsim.io.outputs import write_file
from hetsim.io.yamlfile import describe_validation_error, one_line
from hetsim.perf.transformer import parameter_count
from hetsim.specs.model import ArchitectureSpec, ModelSpec

DENSE = ("llama", "mistral", "qwen2", "qwen3")
MOE = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3")
SUPPORTED = DENSE + MOE
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; anything near this is not one
_MISSING = object()


def read_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; an unreadable or malformed file is a one-line ProfileError."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ProfileError(
                f"{path}: expected a Hugging Face config.json of a few kB, got {path.stat().st_size} bytes"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{path}: expected UTF-8 JSON, got byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProfileError(
            f"{path}: expected a JSON object (a Hugging Face config.json), got invalid JSON ({one_line(str(exc))})"
        ) from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a JSON object (a Hugging Face config.json), got a {type(data).__name__}")
    return data


def model_from_config(
    config: dict[str, Any], path: Path, name: str | None = None, source: str | None = None
) -> ModelSpec:
    """The catalog entry of the model ``config`` describes (``path``: where it was read, for
    messages; ``name``: the catalog name, else one made from ``_name_or_path`` or the folder;
    ``source``: where the config came from, e.g. its Hugging Face URL)."""
    fields = _Fields(config, path)
    model_type = fields.text("model_type")
    if model_type not in SUPPORTED:
        raise ProfileError(f"{path}: field 'model_type': expected one of {', '.join(SUPPORTED)}, got {model_type!r}")
    architecture = _architecture(fields, model_type)
    try:
        arch = ArchitectureSpec.model_validate(architecture)
    except ValidationError as exc:
        raise ProfileError(describe_validation_error(f"{path} (as hetsim architecture)", exc)) from None
    total = sum(parameter_count(arch).values())
    slug = _catalog_name(config, path, name)
    origin = config.get("_name_or_path") if isinstance(config.get("_name_or_path"), str) else None
    document: dict[str, Any] = {
        "schema_version": 1,
        "name": slug,
        "display_name": origin.rsplit("/", 1)[-1] if origin else slug,
        "kind": "llm",
        "parameters": float(f"{total:.4g}"),
        "sources": {"config": source or str(path)},
        "architecture": architecture,
        "notes": f"Imported from a Hugging Face config.json ({model_type}) by hetsim models import; parameters derived "
        "from the architecture (norms and biases left out).",
    }
    if arch.moe is not None:
        document["active_parameters"] = float(f"{_active(arch, total):.4g}")
    try:
        return ModelSpec.model_validate(document)
    except ValidationError as exc:
        raise ProfileError(describe_validation_error(f"{path} (as a hetsim model)", exc)) from None


def write_model(spec: ModelSpec, target: Path) -> Path:
    """Write ``spec`` as a catalog YAML file at ``target`` (whole or not at all)."""
    dumped = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    order = (
        "schema_version",
        "name",
        "display_name",
        "kind",
        "parameters",
        "active_parameters",
        "sources",
        "architecture",
    )
    data = {"schema_version": spec.schema_version, **{key: dumped[key] for key in order if key in dumped}}
    data.update({key: value for key, value in dumped.items() if key not in data})  # notes, and any field added later
    text = yaml.safe_dump(data, sort_keys=False, width=120)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_file(target, "-o", lambda staged: staged.write_text(text, encoding="utf-8"), ProfileError)


class _Fields:
    """Reads typed fields of a config, each error one line naming the file and the field."""

    def __init__(self, config: dict[str, Any], path: Path) -> None:
        self.config, self.path = config, path

    def integer(self, key: str, default: Any = _MISSING, minimum: int = 1) -> Any:
        value = self.config.get(key, _MISSING)
        if value is _MISSING or (value is None and default is not _MISSING):
            if default is _MISSING:
                raise ProfileError(f"{self.path}: field {key!r}: expected an integer >= {minimum}, got none")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ProfileError(f"{self.path}: field {key!r}: expected an integer >= {minimum}, got {value!r:.40}")
        return value

    def text(self, key: str) -> str:
        value = self.config.get(key)
        if not isinstance(value, str):
            got = "none" if value is None else repr(value)[:40]
            raise ProfileError(f"{self.path}: field {key!r}: expected the model family as text, got {got}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProfileError(f"{self.path}: field {key!r}: expected true or false, got {value!r:.40}")
        return value

    def refuse(self, key: str, expected: str, allowed: Any) -> None:
        """Refuse a field whose value hetsim cannot model."""
        value = self.config.get(key, allowed)
        if value != allowed and value not in (None, [], ()):
            raise ProfileError(
                f"{self.path}: field {key!r}: expected {expected} (hetsim models no other layout), got {value!r:.60}"
            )


def _architecture(fields: _Fields, model_type: str) -> dict[str, Any]:
    heads = fields.integer("num_attention_heads")
    hidden = fields.integer("hidden_size")
    if "text_config" in fields.config:
        raise ProfileError(f"{fields.path}: field 'text_config': expected a text-only model, got a multimodal config")
    head_dim = fields.integer("head_dim", None)
    if head_dim is None and model_type not in ("deepseek_v2", "deepseek_v3"):
        if hidden % heads:
            raise ProfileError(f"{fields.path}: field 'head_dim': expected it given when hidden_size ({hidden}) is not a "
                               f"multiple of num_attention_heads ({heads}), got none")  # fmt: skip
        head_dim = hidden // heads
    architecture: dict[str, Any] = {
        "num_layers": fields.integer("num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": fields.integer("num_key_value_heads", heads),
        "head_dim": head_dim,
        "intermediate_size": fields.integer("intermediate_size"),
        "vocab_size": fields.integer("vocab_size"),
        "max_context_tokens": fields.integer("max_position_embeddings"),
    }
    if fields.flag("tie_word_embeddings", False):
        architecture["tie_embeddings"] = True
    architecture.update(_sliding_window(fields, model_type, architecture))
    if model_type in ("deepseek_v2", "deepseek_v3"):
        architecture.update(_deepseek(fields))
    elif model_type == "mixtral":
        architecture["moe"] = {
            "num_experts": fields.integer("num_local_experts", minimum=2),
            "experts_per_token": fields.integer("num_experts_per_tok"),
            "expert_intermediate_size": architecture["intermediate_size"],
        }
    elif model_type in ("qwen2_moe", "qwen3_moe"):
        architecture["moe"] = _qwen_moe(fields, model_type)
    return architecture


def _sliding_window(fields: _Fields, model_type: str, architecture: dict[str, Any]) -> dict[str, Any]:
    """Mistral slides every layer's window when ``sliding_window`` is set; Qwen only with
    ``use_sliding_window``, on the layers past ``max_window_layers``."""
    if model_type not in ("mistral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        return {}
    window = fields.integer("sliding_window", None)
    layers = architecture["num_layers"]
    if model_type != "mistral":
        if not fields.flag("use_sliding_window", False):
            return {}
        layers -= min(layers, fields.integer("max_window_layers", layers, minimum=0))
    if window is None or window >= architecture["max_context_tokens"] or not layers:
        return {}
    return {"sliding_window_tokens": window, "sliding_window_layers": layers}


def _deepseek(fields: _Fields) -> dict[str, Any]:
    """DeepSeek-V2/V3: latent attention (head_dim: the value head size, as the catalog's
    deepseek-v3 entry), routed experts with shared ones after ``first_k_dense_replace`` dense layers."""
    fields.refuse("moe_layer_freq", "1 (every layer past the dense ones is a MoE layer)", 1)
    mla = {
        "kv_lora_rank": fields.integer("kv_lora_rank"),
        "qk_nope_head_dim": fields.integer("qk_nope_head_dim"),
        "qk_rope_head_dim": fields.integer("qk_rope_head_dim"),
        "v_head_dim": fields.integer("v_head_dim"),
    }
    q_lora_rank = fields.integer("q_lora_rank", None)
    if q_lora_rank is not None:
        mla = {"q_lora_rank": q_lora_rank, **mla}
    moe = {
        "num_experts": fields.integer("n_routed_experts", minimum=2),
        "experts_per_token": fields.integer("num_experts_per_tok"),
        "expert_intermediate_size": fields.integer("moe_intermediate_size"),
    }
    shared = fields.integer("n_shared_experts", 0, minimum=0)
    dense = fields.integer("first_k_dense_replace", 0, minimum=0)
    if shared:
        moe["num_shared_experts"] = shared
    if dense:
        moe["first_dense_layers"] = dense
    return {"attention": "mla", "head_dim": mla["v_head_dim"], "mla": mla, "moe": moe}


def _qwen_moe(fields: _Fields, model_type: str) -> dict[str, Any]:
    """Qwen MoE: every layer sparse; Qwen2-MoE's shared expert counted in routed-expert units."""
    fields.refuse("decoder_sparse_step", "1 (every layer a MoE layer)", 1)
    fields.refuse("mlp_only_layers", "no dense-only layers", [])
    expert = fields.integer("moe_intermediate_size")
    moe: dict[str, Any] = {
        "num_experts": fields.integer("num_experts", minimum=2),
        "experts_per_token": fields.integer("num_experts_per_tok"),
        "expert_intermediate_size": expert,
    }
    if model_type == "qwen2_moe":
        shared = fields.integer("shared_expert_intermediate_size", 0, minimum=0)
        if shared % expert:
            raise ProfileError(f"{fields.path}: field 'shared_expert_intermediate_size': expected a multiple of "
                               f"moe_intermediate_size ({expert}), got {shared}")  # fmt: skip
        if shared:
            moe["num_shared_experts"] = shared // expert
    return moe


def _active(arch: ArchitectureSpec, total: float) -> float:
    """Parameters a token uses: the total less the routed experts it skips (``parameter_count``'s
    expert term, per MoE layer)."""
    assert arch.moe is not None
    moe = arch.moe
    expert = (3 if arch.gated_mlp else 2) * arch.hidden_size * moe.expert_intermediate_size
    return total - (arch.num_layers - moe.first_dense_layers) * (moe.num_experts - moe.experts_per_token) * expert


def _catalog_name(config: dict[str, Any], path: Path, name: str | None) -> str:
    if name is not None:
        return name
    origin = config.get("_name_or_path")
    candidates = [origin.rstrip("/").rsplit("/", 1)[-1]] if isinstance(origin, str) and origin.strip("/") else []
    if path.stem != "config":  # a config saved under the model's name
        candidates.append(path.stem)
    candidates.append(path.resolve().parent.name)  # config.json in the model's folder
    for candidate in candidates:
        slug = re.sub(r"[^a-z0-9._-]+", "-", candidate.lower()).strip("-.")
        if slug and ".." not in slug:
            return slug
    raise ProfileError(
        f"{path}: field '_name_or_path': expected a model name to name the entry after, got none (give --name)"
    )
