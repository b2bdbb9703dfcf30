"""``hetsim models import``: a Hugging Face config.json becomes a catalog entry.

The fixtures are the public configs (``tests/data/hf_configs/SOURCES.md`` cites each). Where the
shipped catalog has the same model, the imported architecture must equal it field for field;
the derived parameter counts must match the published ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.cli import app
from hetsim.errors import ProfileError
from hetsim.io.catalog import load_catalog
from hetsim.io.hf_config import model_from_config, read_config
from hetsim.io.models import load_models
from hetsim.sim.build import build_simulation
from hetsim.specs.catalog import ModelCatalog
from hetsim.workload.trace import NodeType, TraceStep
from tests.conftest import REPO
from tests.sim.conftest import llm_pool, plan, trace_frame

CONFIGS = REPO / "tests/data/hf_configs"
runner = CliRunner()


def _imported(file: str, **changes):
    path = CONFIGS / file
    config = {**read_config(path), **changes}
    return model_from_config(config, path)


@pytest.mark.parametrize(
    ("file", "catalog_name"),
    [
        ("llama-2-7b-hf.json", "llama-2-7b"),  # dense, multi-head attention
        ("meta-llama-3-8b.json", "llama-3-8b"),  # grouped-query attention
        ("mixtral-8x7b-v0.1.json", "mixtral-8x7b"),  # mixture of experts
        ("deepseek-v3.json", "deepseek-v3"),  # latent attention, shared experts, dense first layers
    ],
)
def test_an_imported_config_equals_the_catalog_entry_made_from_it(model_catalog, file, catalog_name):
    imported = _imported(file)
    shipped = model_catalog.model(catalog_name)
    assert imported.architecture == shipped.architecture
    assert imported.parameters == pytest.approx(shipped.parameters, rel=0.01)
    if shipped.active_parameters is not None:  # DeepSeek's 37B leaves out what the cost model leaves out too
        assert imported.active_parameters == pytest.approx(shipped.active_parameters, rel=0.02)


def test_the_entry_is_named_after_the_models_repository_or_the_file():
    assert _imported("llama-2-7b-hf.json").name == "llama-2-7b-hf"  # from _name_or_path
    assert _imported("meta-llama-3-8b.json").name == "meta-llama-3-8b"  # no _name_or_path: the file's name
    path = CONFIGS / "mixtral-8x7b-v0.1.json"
    assert model_from_config(read_config(path), path, name="my-moe").name == "my-moe"


def test_a_moe_with_an_explicit_head_dim_gets_the_published_sizes():
    """Qwen3-30B-A3B: 30.5B parameters, 3.3B active (model card); head_dim 128 though
    hidden_size / heads is 64."""
    model = _imported("qwen3-30b-a3b.json")
    arch = model.architecture
    assert (arch.head_dim, arch.num_kv_heads, arch.moe.num_experts, arch.moe.experts_per_token) == (128, 4, 128, 8)
    assert model.parameters == pytest.approx(30.5e9, rel=0.01)
    assert model.active_parameters == pytest.approx(3.3e9, rel=0.03)
    assert arch.sliding_window_tokens is None  # use_sliding_window is false


def test_mistral_slides_every_layers_window_and_qwen_only_past_max_window_layers():
    mistral = _imported("mistral-7b-v0.1.json").architecture
    assert (mistral.sliding_window_tokens, mistral.sliding_window_layers) == (4096, 32)
    qwen = _imported(
        "qwen3-30b-a3b.json", use_sliding_window=True, sliding_window=4096, max_window_layers=40
    ).architecture
    assert (qwen.sliding_window_tokens, qwen.sliding_window_layers) == (4096, 8)


def test_an_imported_model_can_be_simulated():
    model = _imported("llama-2-7b-hf.json")
    trace = trace_frame(
        [TraceStep("s", 0, 0.0, "chat", NodeType.LLM, model=model.name, input_tokens=1500, output_tokens=100)]
    )
    sim = build_simulation(plan(llm_pool(model=model.name)), trace, load_catalog(), ModelCatalog({model.name: model}))
    sim.run()
    assert sim.frames()["llm_calls"]["status"].tolist() == ["completed"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_type": "gpt2"}, r"field 'model_type': expected one of llama, mistral, .*deepseek_v3, got 'gpt2'"),
        ({"model_type": None}, r"field 'model_type': expected the model family as text, got none"),
        ({"num_hidden_layers": None}, r"field 'num_hidden_layers': expected an integer >= 1, got None"),
        ({"hidden_size": "4096"}, r"field 'hidden_size': expected an integer >= 1, got '4096'"),
        (
            {"num_key_value_heads": 5},
            r"\(as hetsim architecture\): field 'num_kv_heads': expected a divisor of num_attention_heads \(32\), got 5",
        ),
        ({"text_config": {}}, r"field 'text_config': expected a text-only model, got a multimodal config"),
    ],
)
def test_a_config_hetsim_cannot_model_is_refused_in_one_line_naming_file_and_field(changes, message):
    with pytest.raises(ProfileError, match=rf"^{CONFIGS}/meta-llama-3-8b.json.*{message}") as info:
        _imported("meta-llama-3-8b.json", **changes)
    assert "\n" not in str(info.value)


def test_missing_fields_and_layouts_without_a_model_are_refused(tmp_path):
    with pytest.raises(ProfileError, match=r"field 'num_hidden_layers': expected an integer >= 1, got none"):
        model_from_config(
            {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}, tmp_path / "config.json"
        )
    with pytest.raises(ProfileError, match=r"field 'moe_layer_freq': expected 1 .*, got 2"):
        _imported("deepseek-v3.json", moe_layer_freq=2)
    with pytest.raises(ProfileError, match=r"field 'mlp_only_layers': expected no dense-only layers .*, got \[0, 1\]"):
        _imported("qwen3-30b-a3b.json", mlp_only_layers=[0, 1])


def test_a_file_that_is_not_a_json_object_is_refused(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{'model_type': 'llama'}", encoding="utf-8")
    with pytest.raises(
        ProfileError, match=r"config.json: expected a JSON object \(a Hugging Face config.json\), got invalid JSON"
    ):
        read_config(bad)
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ProfileError, match="got a list"):
        read_config(bad)
    with pytest.raises(ProfileError, match="cannot read file"):
        read_config(tmp_path / "missing.json")


def test_the_command_writes_an_entry_the_catalog_loads(tmp_path):
    out = tmp_path / "models" / "moe.yaml"
    result = runner.invoke(app, ["models", "import", str(CONFIGS / "mixtral-8x7b-v0.1.json"), "--name", "moe", "-o", str(out),
                                 "--source", "https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: moe (46.7 B parameters, 12.9 B active, 131,072 KV bytes per token in bf16)" in result.stdout
    model = load_models(out.parent).model("moe")
    assert model.architecture.moe.num_experts == 8 and model.sources["config"].startswith("https://huggingface.co/")
    again = runner.invoke(
        app, ["models", "import", str(CONFIGS / "mixtral-8x7b-v0.1.json"), "--name", "moe", "-o", str(out)]
    )
    assert isinstance(again.exception, ProfileError)
    assert (
        str(again.exception)
        == f"{out}: expected a new file for model 'moe' (give --force to replace it), got an existing file"
    )
    forced = runner.invoke(app, ["models", "import", str(CONFIGS / "mixtral-8x7b-v0.1.json"), "--name", "moe", "-o", str(out),
                                 "--force", "--json"])  # fmt: skip
    assert forced.exit_code == 0 and json.loads(forced.stdout)["model"]["name"] == "moe"


def test_the_command_defaults_to_the_catalog_folder_of_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "import", str(CONFIGS / "llama-2-7b-hf.json")])
    assert result.exit_code == 0, result.output
    assert Path("models/llama-2-7b-hf.yaml").is_file()
    bad = runner.invoke(app, ["models", "import", str(REPO / "README.md")])
    assert isinstance(bad.exception, ProfileError) and "README.md: expected a JSON object" in str(bad.exception)
