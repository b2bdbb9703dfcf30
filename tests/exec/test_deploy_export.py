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
    with pytest.raises(ExecutorError, match="--format: expected one of k8s, ray-serve, got 'helm'"):
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
