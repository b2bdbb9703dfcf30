"""A plan as deployment manifests, for clusters that deploy by manifest rather than through
``hetsim run``: Kubernetes (a Deployment and a Service per LLM pool, running vLLM with the same
arguments ``hetsim run`` gives it, the device's resource request, and a router in front of each
pool), or a Ray Serve config (Ray Serve LLM's OpenAI app, one ``LLMConfig`` per pool).

Pure data: the documents are built as dicts; the caller writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineArgs, EngineOptions, engine_env, to_argv, vllm_arguments
from hetsim.exec.serving_flags import sglang_argv, vllm_serving_args
from hetsim.specs.catalog import HardwareCatalog, ModelCatalog
from hetsim.specs.hardware import AcceleratorSpec
from hetsim.specs.plan import LlmStage, PlanSpec, PoolSpec, RoutingPolicy

ENGINE_PORT = 8000
DEFAULT_ENGINE_IMAGE = "vllm/vllm-openai:latest"
DEFAULT_ROUTER_IMAGE = "lmsysorg/sglang-router:latest"
"""The router in front of a pool on Kubernetes: SGLang's model gateway (the vLLM Router is a fork
of it with the same flags), discovering the pool's pods by label."""

# Kubernetes extended-resource names of each vendor's device plugin.
_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "intel": "habana.ai/gaudi", "google": "google.com/tpu"}
# Router policies: the plan's policy -> the gateway's closest one.
_ROUTER_POLICY = {
    RoutingPolicy.ROUND_ROBIN: "round_robin",
    RoutingPolicy.PREFIX_AWARE: "cache_aware",
    RoutingPolicy.LEAST_OUTSTANDING: "power_of_two",  # load-aware; the gateway has no exact least-outstanding
    RoutingPolicy.WEIGHTED_LEAST_OUTSTANDING: "power_of_two",  # one pool per router: its replicas weigh the same
    RoutingPolicy.LEAST_OUTSTANDING_TOKENS: "power_of_two",  # nor a token-weighted one
    RoutingPolicy.ADAPTER_AFFINITY: "power_of_two",  # nor a LoRA-aware one: the engines load what they lack
}
# Ray's accelerator_type names (ray.util.accelerators) by hetsim device profile prefix.
_RAY_ACCELERATOR = (
    ("h100", "H100"), ("h200", "H200"), ("b200", "B200"), ("a100-40", "A100-40G"), ("a100-80", "A100-80G"),
    ("l40s", "L40S"), ("l4", "L4"), ("mi300x", "AMD-Instinct-MI300X-OAM"), ("mi325x", "AMD-Instinct-MI325X-OAM"),
    ("mi355x", "AMD-Instinct-MI355X-OAM"), ("gaudi", "Intel-GAUDI"), ("tpu-v5e", "TPU-V5LITEPOD"), ("tpu-v6e", "TPU-V6E"),
)  # fmt: skip


@dataclass(frozen=True)
class DeployOptions:
    engine_image: str = DEFAULT_ENGINE_IMAGE
    router_image: str = DEFAULT_ROUTER_IMAGE
    namespace: str = "default"


def _name(text: str) -> str:
    """A DNS-1123 label (what Kubernetes accepts as a name)."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return label[:63].rstrip("-") or "pool"


def model_source(model: str, models: ModelCatalog, weights: dict[str, str]) -> str:
    """Where the engine loads the model from: ``weights`` when it names one, else the Hugging
    Face repository of the catalog's config source."""
    if model in weights:
        return weights[model]
    spec = models.model(model)
    match = re.search(r"huggingface\.co/([^/]+/[^/]+)", " ".join(str(v) for v in spec.sources.values()))
    if match is None:
        raise ExecutorError(f"model {model!r}: the catalog names no Hugging Face repository; name its weights in a --weights file")
    return match.group(1)


def _llm_pools(plan: PlanSpec) -> list[PoolSpec]:
    pools = [p for p in plan.pools if p.llm is not None]
    for pool in pools:
        assert pool.llm is not None
        if pool.llm.stage != LlmStage.AGGREGATED:
            raise ExecutorError(f"plan pool {pool.name!r}: split prefill/decode pools are not exported yet; export aggregated pools")
    if not pools:
        raise ExecutorError("plan: no LLM pool to deploy")
    return pools


def _engine_args(pool: PoolSpec, source: str, device_kind: str, weights: dict[str, str]) -> tuple[EngineArgs, dict[str, str]]:
    """vLLM's arguments and environment for ``pool``, as ``hetsim run`` gives them, with real
    weights and the model's own context (the cluster decides cores and cache space), and its
    expert parallelism and speculation (``hetsim.exec.serving_flags``)."""
    args = vllm_arguments(pool, source, False, device_kind, None) | vllm_serving_args(pool, weights)
    return args, engine_env(device_kind, False, EngineOptions().kv_cache_gib)


def _device_kind(device: AcceleratorSpec) -> str:
    return "cpu" if device.kind.value == "cpu" else "cuda"


def kubernetes_manifests(plan: PlanSpec, hardware: HardwareCatalog, models: ModelCatalog, weights: dict[str, str],
                         options: DeployOptions) -> list[dict[str, Any]]:  # fmt: skip
    """Deployment + Service per LLM pool, and a router Deployment + Service in front of each."""
    documents: list[dict[str, Any]] = []
    for pool in _llm_pools(plan):
        assert pool.llm is not None
        device = hardware.accelerator(pool.device)
        name = _name(f"{plan.name}-{pool.name}")
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": _name(plan.name), "hetsim.io/pool": _name(pool.name)}
        args, env = _engine_args(pool, model_source(pool.llm.model, models, weights), _device_kind(device), weights)
        documents += [
            _engine_deployment(name, labels, pool, device, to_argv(args), env, options),
            _service(name, labels, ENGINE_PORT, options),
            _router_deployment(name, labels, pool, options),
            _service(f"{name}-router", {**labels, "app.kubernetes.io/component": "router"}, ENGINE_PORT, options),
        ]
    return documents


def _resources(pool: PoolSpec, device: AcceleratorSpec) -> dict[str, dict[str, str]]:
    devices = pool.devices_per_replica
    if device.kind.value == "cpu":
        return {"requests": {"cpu": str(devices)}, "limits": {"cpu": str(devices)}}
    resource = _RESOURCE.get(device.vendor.lower())
    if resource is None:
        raise ExecutorError(f"device {device.name!r}: no Kubernetes device-plugin resource known for vendor {device.vendor!r}")
    return {"requests": {resource: str(devices)}, "limits": {resource: str(devices)}}


def _engine_deployment(name: str, labels: dict[str, str], pool: PoolSpec, device: AcceleratorSpec, args: list[str],
                       env: dict[str, str], options: DeployOptions) -> dict[str, Any]:  # fmt: skip
    probe = {"httpGet": {"path": "/health", "port": ENGINE_PORT}, "periodSeconds": 10}
    container = {
        "name": "engine",
        "image": options.engine_image,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": [*args, "--host", "0.0.0.0", "--port", str(ENGINE_PORT)],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "ports": [{"containerPort": ENGINE_PORT, "name": "http"}],
        "resources": _resources(pool, device),
        "readinessProbe": probe,
        "startupProbe": probe | {"failureThreshold": 120},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels,
                     "annotations": {"hetsim.io/device": device.name, "hetsim.io/plan-pool": pool.name}},
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                # nodes carrying this device are labelled by the operator (kubectl label node ... hetsim.io/device=...)
                "spec": {"containers": [container], "nodeSelector": {"hetsim.io/device": device.name}},
            },
        },
    }  # fmt: skip


def _router_deployment(name: str, labels: dict[str, str], pool: PoolSpec, options: DeployOptions) -> dict[str, Any]:
    gateway = _ROUTER_POLICY.get(pool.routing)  # type: ignore[call-overload]
    if gateway is None:
        raise ExecutorError(f"plan pool {pool.name!r}: routing: expected one of {', '.join(_ROUTER_POLICY)} to deploy "
                            f"(a policy of your own is simulated only), got {pool.routing!r}")  # fmt: skip
    router_labels = {**labels, "app.kubernetes.io/name": f"{name}-router", "app.kubernetes.io/component": "router"}
    container = {
        "name": "router",
        "image": options.router_image,
        "command": ["python3", "-m", "sglang_router.launch_router"],
        "args": [
            "--host", "0.0.0.0", "--port", str(ENGINE_PORT), "--policy", gateway,
            "--service-discovery", "--selector", f"app.kubernetes.io/name={name}",
            "--service-discovery-port", str(ENGINE_PORT), "--service-discovery-namespace", options.namespace,
        ],
        "ports": [{"containerPort": ENGINE_PORT, "name": "http"}],
        "resources": {"requests": {"cpu": "1"}},
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-router", "namespace": options.namespace, "labels": router_labels,
                     "annotations": {"hetsim.io/routing": f"plan {pool.routing} -> gateway {gateway}"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": f"{name}-router"}},
            "template": {"metadata": {"labels": router_labels}, "spec": {"containers": [container]}},
        },
    }  # fmt: skip


def _service(name: str, labels: dict[str, str], port: int, options: DeployOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }


def ray_serve_config(plan: PlanSpec, hardware: HardwareCatalog, models: ModelCatalog, weights: dict[str, str]) -> dict[str, Any]:
    """A Ray Serve config file: Ray Serve LLM's OpenAI app with one LLMConfig per LLM pool."""
    configs = []
    for pool in _llm_pools(plan):
        assert pool.llm is not None
        device = hardware.accelerator(pool.device)
        config: dict[str, Any] = {
            "model_loading_config": {"model_id": pool.llm.model, "model_source": model_source(pool.llm.model, models, weights)},
            "deployment_config": {"name": _name(pool.name), "num_replicas": pool.replicas},
            "engine_kwargs": _engine_kwargs(pool, device, weights),
        }
        accelerator = next((ray for prefix, ray in _RAY_ACCELERATOR if device.name.startswith(prefix)), None)
        if accelerator is not None:
            config["accelerator_type"] = accelerator
        configs.append(config)
    app = {"name": _name(plan.name), "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app", "args": {"llm_configs": configs}}
    return {"applications": [app]}


def _engine_kwargs(pool: PoolSpec, device: AcceleratorSpec, weights: dict[str, str]) -> dict[str, Any]:
    """The engine arguments of ``hetsim run`` as vLLM keyword arguments (the model and its name
    are Ray Serve's ``model_loading_config``)."""
    args, _ = _engine_args(pool, "model", _device_kind(device), weights)
    skip = {"model", "served_model_name", "enable_prompt_tokens_details"}
    return {name: value for name, value in args.items() if name not in skip}


# vLLM's disaggregated prefill over NIXL (docs.vllm.ai features/disagg_prefill): both roles run
# the same connector; a proxy in front pairs each request's prefill and decode instances.
_VLLM_KV_TRANSFER = '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}'


def engine_commands(plan: PlanSpec, hardware: HardwareCatalog, models: ModelCatalog, weights: dict[str, str]) -> dict[str, Any]:
    """Each LLM pool's launch command for vLLM and for SGLang, with the plan's parallelism
    (TP, PP, expert parallelism, DP attention), batching, speculation and P/D role as each
    engine's own flags: for clusters launched by hand or by a scheduler of their own."""
    pools = [p for p in plan.pools if p.llm is not None]
    if not pools:
        raise ExecutorError("plan: no LLM pool to deploy")
    entries = []
    for pool in pools:
        assert pool.llm is not None
        device = hardware.accelerator(pool.device)
        source = model_source(pool.llm.model, models, weights)
        args = vllm_arguments(pool, source, False, _device_kind(device), None) | vllm_serving_args(pool, weights)
        if pool.llm.stage != LlmStage.AGGREGATED:
            args["kv_transfer_config"] = _VLLM_KV_TRANSFER
        vllm = ["vllm", "serve", str(args.pop("model")), *to_argv(args)]
        entries.append({"pool": pool.name, "device": device.name, "replicas": pool.replicas,
                        "devices_per_replica": pool.devices_per_replica, "serving": pool.serving_text,
                        "vllm": vllm, "sglang": sglang_argv(pool, source, weights)})  # fmt: skip
    return {"plan": plan.name, "pools": entries}
