"""How one replica of a plan's LLM pool is launched: the serving engine's command line and
environment, derived from the plan (model, parallelism, batching limits, prefix caching,
KV-cache size, the device kind), as plain data a Ray actor can carry.

vLLM is started as ``python -m vllm.entrypoints.openai.api_server`` with the interpreter of
the environment it is installed in (``--engine-python``; vLLM's CPU build and hetsim may live
in separate virtual environments: the CPU build pins its own numpy and torch). The console
script of the CPU build fails on its distribution name, so the module is used on every kind.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hetsim.errors import ExecutorError
from hetsim.sim.scheduler import DECODE_PRIORITY_TOKEN_BUDGET
from hetsim.specs.plan import LlmStage, PoolSpec

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_MAX_MODEL_LEN = 16384
"""Context cap of a replica unless the model's is smaller: the engine sizes buffers for it."""


@dataclass(frozen=True)
class EngineOptions:
    """What the plan does not say and the machine decides.

    Attributes:
        python: interpreter of the environment vLLM is installed in.
        device_kind: ``cpu`` (vLLM's CPU build) or ``cuda``.
        kv_cache_gib: KV-cache space of a CPU replica, whole GiB (``VLLM_CPU_KVCACHE_SPACE``).
        threads_per_replica: cores bound to each CPU replica (``VLLM_CPU_OMP_THREADS_BIND``).
        max_model_len: context cap (tokens); None: the smaller of the model's and 16384.
        startup_timeout_s: how long an engine may take to answer ``/health``.
        seed: the engine's sampling seed.
        extra_args: more engine arguments, passed through as they are.
    """

    python: str = sys.executable
    device_kind: str = "cpu"
    kv_cache_gib: int = 1
    threads_per_replica: int = 1
    max_model_len: int | None = None
    startup_timeout_s: float = 240.0
    seed: int = 0
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineLaunch:
    """Everything needed to start one engine process and know it is up."""

    pool: str
    replica: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    served_model_name: str = ""
    log_path: str = ""
    startup_timeout_s: float = 240.0
    cpu_affinity: tuple[int, ...] = ()
    """Cores the whole engine (server, scheduler, workers) is confined to; empty: no limit."""
    port_flag: str = "--port"
    host_flag: str = "--host"

    @property
    def label(self) -> str:
        return f"{self.pool}[{self.replica}]"

    def command(self, host: str, port: int) -> list[str]:
        return [*self.argv, self.host_flag, host, self.port_flag, str(port)]

    def shell_line(self) -> str:
        """The command as a user would paste it (host and port left to fill in)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return f"{env} {shlex.join(self.argv)}".strip()


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


EngineArgs = dict[str, str | int | float | bool]
"""vLLM's engine arguments by their keyword names (``max_num_seqs``): True is a bare flag, False
its ``--no-`` form. The command line and the deploy exports are derived from one such dict."""


def vllm_arguments(pool: PoolSpec, model_path: Path | str, random_weights: bool, device_kind: str,
                   max_model_len: int | None, seed: int = 0) -> EngineArgs:  # fmt: skip
    """What the plan says about ``pool``'s engine, as vLLM's arguments.

    Raises:
        ExecutorError: the pool cannot be served this way (a split prefill/decode pool on a
            CPU engine, a dtype the engine lacks on this device kind).
    """
    llm = pool.llm
    if llm is None:
        raise ExecutorError(f"pool {pool.name!r}: not an LLM pool; it has no engine")
    if llm.stage != LlmStage.AGGREGATED and device_kind == "cpu":
        raise ExecutorError(
            f"pool {pool.name!r}: a split {llm.stage.value} pool needs vLLM's KV-transfer connector, "
            "which vLLM's CPU build does not have; plan aggregated pools for a CPU run"
        )
    args: EngineArgs = {
        "model": str(model_path),
        "served_model_name": llm.model,
        "tensor_parallel_size": pool.tp,
        "pipeline_parallel_size": pool.pp,
        "max_num_seqs": llm.max_num_seqs,
        "max_num_batched_tokens": _token_budget(pool),
        "enable_prefix_caching": llm.prefix_caching,
        "seed": seed,
        "enable_prompt_tokens_details": True,  # per-call cached prompt tokens in the usage block
    }
    if max_model_len is not None:
        args["max_model_len"] = max_model_len
    if llm.lora is not None:  # vLLM's multi-LoRA: slots, their rank, the host-memory cache
        args |= {"enable_lora": True, "max_loras": llm.lora.max_loras, "max_lora_rank": llm.lora.max_lora_rank,
                 "max_cpu_loras": llm.lora.cpu_loras}  # fmt: skip
    args |= _dtype_args(pool, device_kind)
    if random_weights:  # a config-only directory: nothing to fetch from a hub
        args |= {"load_format": "dummy", "skip_tokenizer_init": True}
    if device_kind == "cpu":
        args["enforce_eager"] = True  # CUDA graphs do not exist here; compiling costs a minute per start
    else:
        args["gpu_memory_utilization"] = llm.memory_utilization
    return args


def _token_budget(pool: PoolSpec) -> int:
    """vLLM V1's token budget for the pool's scheduler: it chunks prefills and serves running
    (decoding) requests first, so decode-priority is V1 with its smaller budget; prefill-first
    and schedulers of your own have no vLLM V1 counterpart."""
    llm = pool.llm
    assert llm is not None
    if llm.scheduler == "decode-priority":
        return min(llm.token_budget or DECODE_PRIORITY_TOKEN_BUDGET, llm.max_batch_tokens)
    if llm.scheduler != "chunked-prefill":
        raise ExecutorError(
            f"pool {pool.name!r}: llm.scheduler: expected chunked-prefill or decode-priority for a run on vLLM V1 "
            f"(it always chunks prefills), got {llm.scheduler!r}, which is simulated only"
        )
    return max(llm.max_batch_tokens, 1)


def sglang_lora_arguments(pool: PoolSpec, adapters: list[str], adapter_root: str = "adapters") -> list[str]:
    """SGLang's flags for ``pool``'s LoRA block (``python -m sglang.launch_server``; SGLang
    ``docs/advanced_features/lora.ipynb``): adapters batched at once (``--max-loras-per-batch``,
    vLLM's ``max_loras``), the slot rank, and ``--lora-paths name=path`` for ``adapters``
    (found under ``adapter_root``: SGLang loads the adapters it is given at start).

    Raises:
        ExecutorError: the pool has no ``lora`` block.
    """
    llm = pool.llm
    if llm is None or llm.lora is None:
        raise ExecutorError(f"pool {pool.name!r}: no 'lora' block; it serves no adapters")
    argv = ["--enable-lora", "--max-loras-per-batch", str(llm.lora.max_loras), "--max-lora-rank",
            str(llm.lora.max_lora_rank)]  # fmt: skip
    if adapters:
        argv += ["--lora-paths", *(f"{name}={adapter_root}/{name}" for name in adapters)]
    return argv


def to_argv(args: EngineArgs) -> list[str]:
    """``args`` as command-line flags."""
    argv: list[str] = []
    for name, value in args.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + flag[2:])
        else:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def engine_env(device_kind: str, random_weights: bool, kv_cache_gib: int) -> dict[str, str]:
    """The engine's environment: no usage reports; offline with a config-only model; on a CPU,
    its KV-cache space."""
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    if random_weights:  # nothing to fetch from a hub
        env["HF_HUB_OFFLINE"] = "1"
    if device_kind == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
    return env


def vllm_launch(
    pool: PoolSpec,
    replica: int,
    model_path: Path | str,
    random_weights: bool,
    max_context_tokens: int,
    options: EngineOptions,
    log_dir: Path,
) -> EngineLaunch:
    """The vLLM launch of ``replica`` of ``pool`` serving the model at ``model_path``: the
    plan's arguments (``vllm_arguments``), capped context, quiet logs, and on a CPU the
    replica's KV space and cores."""
    max_len = min(max_context_tokens, options.max_model_len or DEFAULT_MAX_MODEL_LEN)
    args = vllm_arguments(pool, model_path, random_weights, options.device_kind, max_len, options.seed)
    argv = [options.python, "-m", VLLM_MODULE, *to_argv(args), "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning"]
    env = engine_env(options.device_kind, random_weights, options.kv_cache_gib)
    affinity: tuple[int, ...] = ()
    if options.device_kind == "cpu":
        first = replica * options.threads_per_replica
        core_ids = tuple(c % (os.cpu_count() or 1) for c in range(first, first + options.threads_per_replica))
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in core_ids)
        # The server and scheduler processes too: left free, they are starved by the other replicas'
        # spinning compute threads and stream a call's tokens late, many to a chunk.
        affinity = core_ids
    argv += list(options.extra_args)
    assert pool.llm is not None  # vllm_arguments checked it
    return EngineLaunch(
        pool=pool.name,
        replica=replica,
        argv=tuple(argv),
        env=env,
        served_model_name=pool.llm.model,
        log_path=str(log_dir / f"{pool.name}-{replica}.log"),
        startup_timeout_s=options.startup_timeout_s,
        cpu_affinity=affinity,
    )


def _dtype_args(pool: PoolSpec, device_kind: str) -> EngineArgs:
    assert pool.llm is not None
    dtype = pool.llm.dtype
    if dtype in _DTYPES:
        return {"dtype": _DTYPES[dtype]}
    if dtype == "fp8" and device_kind == "cuda":
        return {"dtype": "bfloat16", "quantization": "fp8"}
    raise ExecutorError(
        f"pool {pool.name!r}: dtype {dtype!r} has no engine setting on a {device_kind} engine "
        f"(expected one of {sorted(_DTYPES)}{' or fp8' if device_kind == 'cuda' else ''}); set llm.dtype in the plan"
    )
