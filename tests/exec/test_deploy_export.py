"""``hetsim plan export``: manifests validated against the Kubernetes API schemas (strict: no
unknown field) and the Ray Serve config against Ray Serve's own schema, not by string matching.

``tests/data/ray_serve_2.60.0_deploy_schema.json`` is ``ServeDeploySchema.model_json_schema()``
of ``ray[serve]==2.60.0`` (Apache-2.0), saved once: Ray Serve's dependencies cannot live beside
OR-Tools (they need protobuf 7, OR-Tools protobuf 6).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hetsim.api.deploy import export_plan
from hetsim.errors import ExecutorError

ROOT = Path(__file__).resolve().parents[2]
SERVE_SCHEMA = json.loads((ROOT / "tests/data/ray_serve_2.60.0_deploy_schema.json").read_text())
K8S_VERSION = "1.33"
PLANS = ["scenarios/plans/llama8b-h100x2.yaml", "scenarios/exec/plan.yaml"]


@pytest.mark.parametrize("plan", PLANS)
def test_kubernetes_manifests_validate_against_the_api_schemas(tmp_path: Path, plan: str) -> None:
    out = tmp_path / "k8s.yaml"
    summary = export_plan(ROOT / plan, "k8s", out)
    documents = list(yaml.safe_load_all(out.read_text()))
    assert len(documents) == summary["documents"] == 4
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    engine, service, router, _ = documents
    assert engine["kind"] == "Deployment" and service["kind"] == "Service"
    assert router["spec"]["template"]["spec"]["containers"][0]["args"].count("--service-discovery") == 1
    assert "&id" not in out.read_text()  # no YAML anchors


def test_the_engine_gets_the_plans_arguments_and_devices(tmp_path: Path) -> None:
    out = tmp_path / "k8s.yaml"
    export_plan(ROOT / "scenarios/plans/llama8b-h100x2.yaml", "k8s", out)
    engine = next(yaml.safe_load_all(out.read_text()))
    container = engine["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert engine["spec"]["replicas"] == 2
    assert args[args.index("--served-model-name") + 1] == "llama-3-8b"
    assert args[args.index("--model") + 1] == "meta-llama/Meta-Llama-3-8B"  # the catalog's Hugging Face repository
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "--load-format" not in args  # real weights on a cluster
    assert all(e["name"] != "HF_HUB_OFFLINE" for e in container["env"])


def test_a_ray_serve_config_validates_against_ray_serves_schema(tmp_path: Path) -> None:
    out = tmp_path / "serve.yaml"
    export_plan(ROOT / "scenarios/plans/llama8b-h100x2.yaml", "ray-serve", out)
    config = yaml.safe_load(out.read_text())
    jsonschema.validate(config, SERVE_SCHEMA)
    llm = config["applications"][0]["args"]["llm_configs"][0]
    assert llm["accelerator_type"] == "H100" and llm["deployment_config"]["num_replicas"] == 2
    assert llm["engine_kwargs"]["max_num_seqs"] == 256 and llm["engine_kwargs"]["enable_prefix_caching"] is True


def test_weights_named_in_a_file_replace_the_catalog_source(tmp_path: Path) -> None:
    weights = tmp_path / "weights.yaml"
    weights.write_text("llama-3-8b: /models/llama3-8b-instruct\n")
    out = tmp_path / "serve.yaml"
    export_plan(ROOT / "scenarios/plans/llama8b-h100x2.yaml", "ray-serve", out, weights)
    llm = yaml.safe_load(out.read_text())["applications"][0]["args"]["llm_configs"][0]
    assert llm["model_loading_config"]["model_source"] == "/models/llama3-8b-instruct"


def test_what_cannot_be_exported_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="split prefill/decode pools are not exported yet"):
        export_plan(ROOT / "scenarios/plans/voice-agent-hetero.yaml", "k8s", tmp_path / "x.yaml")
    with pytest.raises(ExecutorError, match="--format: expected one of k8s, ray-serve, engine-commands, got 'helm'"):
        export_plan(ROOT / "scenarios/plans/llama8b-h100x2.yaml", "helm", tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_the_cli_exports_and_plan_still_needs_a_fleet(tmp_path: Path) -> None:
    out = tmp_path / "k.yaml"
    done = subprocess.run([sys.executable, "-m", "hetsim", "plan", "export", "--plan", str(ROOT / PLANS[0]), "--format", "k8s", "-o", str(out)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    bare = subprocess.run([sys.executable, "-m", "hetsim", "plan"], capture_output=True, text=True, check=False)
    assert bare.returncode == 2 and "--fleet" in bare.stderr and "Traceback" not in bare.stderr


EP_MTP_PLAN = ROOT / "scenarios/plans/deepseek-v3-ep-mtp.yaml"


def _commands(tmp_path: Path, plan: Path, weights: dict[str, str] | None = None) -> dict:
    out, mapping = tmp_path / "commands.yaml", None
    if weights is not None:
        mapping = tmp_path / "weights.yaml"
        mapping.write_text(yaml.safe_dump(weights))
    summary = export_plan(plan, "engine-commands", out, mapping)
    assert summary["kinds"] == ["EngineCommands"]
    return yaml.safe_load(out.read_text())


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_engine_commands_carry_expert_parallelism_dp_attention_and_mtp(tmp_path: Path) -> None:
    pools = {entry["pool"]: entry for entry in _commands(tmp_path, EP_MTP_PLAN)["pools"]}
    decode = pools["decode"]
    assert decode["devices_per_replica"] == 72 and decode["serving"] == "ep72 dp-attention72 two-batch mtp k1 a0.85"
    vllm, sglang = decode["vllm"], decode["sglang"]
    assert vllm[:3] == ["vllm", "serve", "deepseek-ai/DeepSeek-V3"]
    assert _flag(vllm, "--data-parallel-size") == "72" and "--enable-expert-parallel" in vllm and "--enable-dbo" in vllm
    assert json.loads(_flag(vllm, "--speculative-config")) == {"method": "mtp", "num_speculative_tokens": 1}
    assert json.loads(_flag(vllm, "--eplb-config")) == {"num_redundant_experts": 32}
    assert _flag(sglang, "--tp-size") == "72" and _flag(sglang, "--dp-size") == "72" and "--enable-dp-attention" in sglang
    assert _flag(sglang, "--ep-size") == "72" and _flag(sglang, "--disaggregation-mode") == "decode"
    assert _flag(sglang, "--speculative-algorithm") == "EAGLE" and _flag(sglang, "--speculative-num-draft-tokens") == "2"
    assert "--speculative-config" not in pools["prefill"]["vllm"] and "--speculative-algorithm" not in pools["prefill"]["sglang"]


def _plan_with(tmp_path: Path, speculation: dict) -> Path:
    plan = {"schema_version": 1, "name": "p", "pools": [
        {"name": "chat", "device": "h100-sxm", "replicas": 1, "tp": 4, "llm": {"model": "llama-3.1-70b", "speculation": speculation}}]}  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_a_draft_model_and_an_eagle_head_are_named_by_their_weights(tmp_path: Path) -> None:
    draft = _plan_with(tmp_path, {"method": "draft", "tokens": 4, "acceptance_rate": 0.7, "draft_model": "llama-3.1-8b"})
    entry = _commands(tmp_path, draft, {"llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct"})["pools"][0]
    assert json.loads(_flag(entry["vllm"], "--speculative-config")) == {
        "method": "draft_model", "num_speculative_tokens": 4, "model": "meta-llama/Llama-3.1-8B-Instruct"}  # fmt: skip
    assert _flag(entry["sglang"], "--speculative-algorithm") == "STANDALONE"
    assert _flag(entry["sglang"], "--speculative-draft-model-path") == "meta-llama/Llama-3.1-8B-Instruct"
    eagle = _plan_with(tmp_path, {"method": "eagle", "tokens": 3, "acceptance_rate": 0.7})
    with pytest.raises(ExecutorError, match=r"add 'llama-3.1-70b:eagle: <hub id or path>' to the --weights file"):
        _commands(tmp_path, eagle)
    entry = _commands(tmp_path, eagle, {"llama-3.1-70b:eagle": "yuhuili/EAGLE-LLaMA3.1-Instruct-70B"})["pools"][0]
    assert json.loads(_flag(entry["vllm"], "--speculative-config"))["model"] == "yuhuili/EAGLE-LLaMA3.1-Instruct-70B"


def test_kubernetes_manifests_pass_the_speculation_to_the_engine(tmp_path: Path) -> None:
    out = tmp_path / "k8s.yaml"
    export_plan(ROOT / "scenarios/plans/llama8b-h100x2-eagle.yaml", "k8s", out, _weights(tmp_path))
    engine = next(yaml.safe_load_all(out.read_text()))
    args = engine["spec"]["template"]["spec"]["containers"][0]["args"]
    assert json.loads(_flag(args, "--speculative-config"))["method"] == "eagle"
    kubernetes_validate.validate(engine, K8S_VERSION, strict=True)


def _weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights.yaml"
    path.write_text(yaml.safe_dump({"llama-3-8b:eagle": "yuhuili/EAGLE-LLaMA3-Instruct-8B"}))
    return path


ENGINE_PYTHON = __import__("os").environ.get("HETSIM_ENGINE_PYTHON", "")
_PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser  # what `vllm serve` parses with (vLLM 0.32)
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = make_arg_parser(FlexibleArgumentParser())
for argv in json.load(sys.stdin):
    parser.parse_args(["--model", argv[2], *argv[3:]])
print("parsed", flush=True)
"""


@pytest.mark.engine
@pytest.mark.skipif(not ENGINE_PYTHON, reason="no vLLM engine: set HETSIM_ENGINE_PYTHON to an interpreter with vLLM (see README)")
def test_vllms_own_parser_accepts_every_exported_command(tmp_path: Path) -> None:
    """The vLLM commands of the EP/MTP, draft, n-gram and LoRA plans, parsed by vLLM's own argument
    parser (an unknown flag or a malformed JSON config exits 2)."""
    commands = [entry["vllm"] for entry in _commands(tmp_path, EP_MTP_PLAN)["pools"]]
    draft = _plan_with(tmp_path, {"method": "draft", "tokens": 4, "acceptance_rate": 0.7, "draft_model": "llama-3.1-8b"})
    commands.append(_commands(tmp_path, draft, {"llama-3.1-8b": "x/y"})["pools"][0]["vllm"])
    commands.append(_commands(tmp_path, _plan_with(tmp_path, {"method": "ngram", "tokens": 4, "acceptance_rate": 0.3}))["pools"][0]["vllm"])
    commands.append(_commands(tmp_path, ROOT / "scenarios/plans/multi-lora-h100x2.yaml")["pools"][0]["vllm"])
    done = subprocess.run([ENGINE_PYTHON, "-c", _PARSE], input=json.dumps(commands), capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0 and "parsed" in done.stdout, done.stderr[-2000:]


def test_engine_commands_carry_the_lora_slots_for_both_engines(tmp_path: Path) -> None:
    entry = _commands(tmp_path, ROOT / "scenarios/plans/multi-lora-h100x2.yaml")["pools"][0]
    assert "--enable-lora" in entry["vllm"] and "--enable-lora" in entry["sglang"]
    assert _flag(entry["vllm"], "--max-loras") == _flag(entry["sglang"], "--max-loras-per-batch")
    assert _flag(entry["vllm"], "--max-lora-rank") == _flag(entry["sglang"], "--max-lora-rank")
