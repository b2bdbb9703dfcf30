"""Importers of published, licensed measurement sets into flat rows with provenance.

Each source's files keep their upstream layout under ``hardware_profiles/measurements/public/``
(see the README there: licences, upstream commits, what was trimmed), so a newer upstream
checkout can be pointed at with ``root``. Every row is one measured configuration:

``source, path, device, stack, op_class, op, dtype, input_dtype, model, tp, m, n, k, batch, q_tokens,
kv_tokens, heads, kv_heads, head_dim, window, hidden, width, ranks, message_bytes, measured_s``

(``window``: the sliding-window attention's keys per query where a row measured one; empty otherwise.)

``op_class`` is what the kernel model prices it as: ``gemm``, ``attention_prefill``,
``attention_decode``, ``elementwise``, ``all_reduce``, a whole serving step (``prefill_step``,
``decode_step``), or a whole batch's generation (``generation``: ``batch`` prompts of
``q_tokens`` each, ``output_tokens`` generated each, every step of it). Sources:

* AIConfigurator (NVIDIA, Apache-2.0): GEMM, context and generation attention, NCCL and the
  engine's custom all-reduce, per device, engine and engine version (collected with the
  engine's own kernels).
* Vidur (Microsoft, MIT): per-operator times of Llama-2 layers (projections, norms,
  activation, rope, residual add) at TP 1-8 and NCCL all-reduce on DGX A100 / H100.
* splitwise-sim (MIT): whole prefill and decode iterations of Llama-2-70B and BLOOM-176B
  served by vLLM on DGX-A100 and DGX-H100 at TP 2-8 (the Splitwise paper's measurements).
* LLM-Inference-Bench (Argonne, BSD-3-Clause): the latency of one batch's whole generation
  (vLLM 0.5-era ``LLM.generate``, CUDA graphs, fixed batch, input = output length, EOS
  ignored) of Llama-2/3, Mistral and Mixtral at TP 1-8 on A100 SXM4 40GB, H100 SXM and MI300X.
* AMD's ROCm vLLM (ROCm/vllm ``docs/dev-docker/README.md``, Apache-2.0): the same kind of
  whole-batch latency (vLLM's ``benchmark_latency.py``) of Llama-3.1-70B/405B FP8 at TP8 on
  MI300X under AMD's vLLM 0.6.6, 0.8.5 and 0.9.1 images (2025).

Generation rows may name their KV cache's format (``kv_dtype``; empty: the weights' rule of
``Precision.uniform``) and their scheduler (``chunked_prefill``, ``token_budget``: its
``max_num_batched_tokens``; empty: V0's whole prompts within max(max_model_len, 2048)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hetsim.errors import CalibrationError
from hetsim.io.catalog import profiles_root

SOURCES = ("aiconfigurator", "vidur", "splitwise-sim", "llm-inference-bench", "rocm-vllm")

COLUMNS = (
    "source",
    "path",
    "device",
    "stack",
    "op_class",
    "op",
    "dtype",
    "input_dtype",
    "model",
    "tp",
    "m",
    "n",
    "k",
    "batch",
    "q_tokens",
    "kv_tokens",
    "output_tokens",
    "kv_dtype",
    "chunked_prefill",
    "token_budget",
    "heads",
    "kv_heads",
    "head_dim",
    "window",
    "hidden",
    "width",
    "ranks",
    "message_bytes",
    "measured_s",
)

# Upstream device folder or label -> the accelerator profile it measured.
AIC_DEVICES = {"a100_sxm": "a100-80gb-sxm", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "l40s": "l40s"}
VIDUR_DEVICES = {"a100": "a100-80gb-sxm", "h100": "h100-sxm", "a40": "a40"}
VIDUR_NETWORKS = {"a100_dgx": "a100-80gb-sxm", "h100_dgx": "h100-sxm"}
SPLITWISE_DEVICES = {"a100-80gb": "a100-80gb-sxm", "h100-80gb": "h100-sxm"}  # h100-80gb-pcap: power-capped, left out
SPLITWISE_MODELS = {"llama2-70b": "llama-2-70b", "bloom-176b": "bloom-176b"}
SPLITWISE_CONTEXT = {"llama2-70b": 4096, "bloom-176b": 2048}
SPLITWISE_STEP_TOKENS = 16384
VIDUR_MODELS = {"Llama-2-7b-hf": "llama-2-7b", "Llama-2-70b-hf": "llama-2-70b"}

_AIC_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8": "fp8"}
_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "half": 2, "float": 4}


def public_root(root: Path | None = None) -> Path:
    return profiles_root(root) / "measurements" / "public"


def load_public_measurements(root: Path | None = None, sources: tuple[str, ...] = SOURCES) -> pd.DataFrame:
    """Every row of every requested source (see the module docstring), in a stable order."""
    base = public_root(root)
    if not base.is_dir():
        raise CalibrationError(f"{base}: expected the folder of public measurement sets, found none")
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise CalibrationError(f"sources: expected some of {', '.join(SOURCES)}, got {', '.join(unknown)}")
    readers: dict[str, Callable[[Path], list[pd.DataFrame]]] = {
        "aiconfigurator": _aiconfigurator,
        "vidur": _vidur,
        "splitwise-sim": _splitwise,
        "llm-inference-bench": _llm_inference_bench,
        "rocm-vllm": _rocm_vllm,
    }
    frames = [frame for source in sources for frame in readers[source](base / source)]
    rows = pd.concat([f.reindex(columns=COLUMNS) for f in frames if len(f)], ignore_index=True)
    rows["path"] = rows["path"].astype(str)
    return rows.sort_values(["source", "device", "stack", "op_class", "path"], kind="stable").reset_index(drop=True)


def _read(path: Path, reader: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    try:
        return reader(path)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read measurements ({exc})") from None


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV measurement file that must hold ``columns`` (one-line errors otherwise)."""
    return _need(_read(path, pd.read_csv), path, columns)


def _need(frame: pd.DataFrame, path: Path, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CalibrationError(f"{path}: expected columns {', '.join(missing)}, found {', '.join(map(str, frame.columns))}")
    return frame


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base.parent))


# ---- AIConfigurator ---------------------------------------------------------------------------


def _aiconfigurator(base: Path) -> list[pd.DataFrame]:
    frames = []
    for path in sorted(base.rglob("*.parquet")):
        parts = path.relative_to(base).parts  # device / family / framework / version / file
        device = AIC_DEVICES.get(parts[0])
        if device is None or len(parts) != 5:
            continue
        framework, version = parts[2], parts[3]
        stack = f"nccl=={version}" if framework == "nccl" else f"{framework}=={version}"
        raw = _read(path, pd.read_parquet)
        frame = {
            "gemm_perf.parquet": _aic_gemm,
            "context_attention_perf.parquet": _aic_attention,
            "generation_attention_perf.parquet": _aic_attention,
            "nccl_perf.parquet": _aic_all_reduce,
            "custom_allreduce_perf.parquet": _aic_all_reduce,
        }[parts[4]](_need(raw, path, ["latency"]), path)
        frame = frame.assign(source="aiconfigurator", path=_relative(path, base), device=device, stack=stack)
        frames.append(frame)
    return frames


def _aic_gemm(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    raw = _need(raw, path, ["gemm_dtype", "m", "n", "k"])
    raw = raw[raw["gemm_dtype"].isin(["bfloat16", "float16", "fp8"])]
    return pd.DataFrame(
        {
            "op_class": "gemm",
            "op": "gemm",
            "dtype": raw["gemm_dtype"].map(_AIC_DTYPES),
            # The collector times the engine's linear layer on a bf16 input (aiconfigurator
            # collector/vllm/collect_gemm.py: x = torch.randn(m, k, dtype=torch.bfloat16), then
            # RowParallelLinear.forward(x)), so fp8 rows include quantising that input.
            "input_dtype": "bf16",
            "m": raw["m"],
            "n": raw["n"],
            "k": raw["k"],
            "measured_s": raw["latency"] * 1e-3,
        }
    )


def _aic_attention(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    raw = _need(raw, path, ["op_name", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "step"])
    raw = raw[(raw["kv_cache_dtype"] == raw["attn_dtype"]) & (raw["beam_width"] == 1)]
    prefill = raw["op_name"].str.startswith("context")
    return pd.DataFrame(
        {
            "op_class": np.where(prefill, "attention_prefill", "attention_decode"),
            "op": raw["op_name"],
            "dtype": raw["attn_dtype"].map(_AIC_DTYPES),
            "batch": raw["batch_size"],
            # context: isl new tokens, nothing cached; generation: 1 new token on `step` cached
            "q_tokens": np.where(prefill, raw["isl"], 1),
            "kv_tokens": np.where(prefill, 0, raw["step"]),
            "heads": raw["num_heads"],
            "kv_heads": raw["num_key_value_heads"],
            "head_dim": raw["head_dim"],
            # vLLM >= 0.2x collectors also time sliding-window layers (window_size keys per query;
            # 0: full attention), which read and compute over the window only
            "window": raw["window_size"].where(raw["window_size"] > 0) if "window_size" in raw else np.nan,
            "measured_s": raw["latency"] * 1e-3,
        }
    )


def _aic_all_reduce(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    raw = _need(raw, path, ["op_name", "num_gpus", "message_size"])
    raw = raw[raw["op_name"] == "all_reduce"]
    if "backend" in raw.columns:  # the engine's custom all-reduce: CUDA-graph replay, as served
        raw = raw[raw["backend"].astype(str).str.endswith("graph")]
    dtype_column = "nccl_dtype" if "nccl_dtype" in raw.columns else "allreduce_dtype"
    dtype = raw[dtype_column].map(lambda d: {"half": "fp16", "bfloat16": "bf16", "float16": "fp16"}.get(d, d))
    element = dtype.map(lambda d: _BYTES.get(d, 2))
    return pd.DataFrame(
        {
            "op_class": "all_reduce",
            "op": raw["kernel_source"],
            "dtype": dtype,
            "ranks": raw["num_gpus"],
            "message_bytes": raw["message_size"] * element,  # upstream counts elements
            "measured_s": raw["latency"] * 1e-3,
        }
    )


# ---- Vidur ------------------------------------------------------------------------------------

_VIDUR_GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
_VIDUR_ELEMENTWISE = ("input_layernorm", "post_attention_layernorm", "mlp_act", "attn_rope", "add", "emb")


def _vidur(base: Path) -> list[pd.DataFrame]:
    frames = []
    for path in sorted((base / "compute").rglob("mlp.csv")):
        device = VIDUR_DEVICES.get(path.relative_to(base / "compute").parts[0])
        model = VIDUR_MODELS.get(path.parent.name)
        if device is None or model is None:
            continue
        raw = _read_csv(path, ["num_tokens", "num_tensor_parallel_workers", "n_embd", "n_expanded_embd", "n_head", "n_kv_head"])
        frames.append(_vidur_ops(raw, path).assign(path=_relative(path, base), device=device, model=model))
    for path in sorted((base / "network").rglob("all_reduce.csv")):
        device = VIDUR_NETWORKS.get(path.parent.name)
        if device is None:
            continue
        raw = _read_csv(path, ["time_stats.all_reduce.median", "num_workers", "size"])
        raw = raw[raw["num_workers"] <= raw["devices_per_node"]]  # one node: the scale-up fabric
        frames.append(
            pd.DataFrame(
                {
                    "op_class": "all_reduce",
                    "op": "nccl_all_reduce",
                    "dtype": "fp16",
                    "ranks": raw["num_workers"],
                    "message_bytes": raw["size"] * 2,  # fp16 elements
                    "measured_s": raw["time_stats.all_reduce.median"] * 1e-3,
                }
            ).assign(path=_relative(path, base), device=device)
        )
    return [f.assign(source="vidur", stack="sarathi-serve (vidur profiler)") for f in frames]


def _vidur_ops(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    tp = raw["num_tensor_parallel_workers"]
    hidden, width = raw["n_embd"], raw["n_expanded_embd"]
    head_dim = hidden // raw["n_head"]
    gated = raw["use_gated_mlp"].astype(str).str.lower() == "true"
    shapes = {  # (n, k) of each projection on one TP rank
        "attn_pre_proj": ((raw["n_head"] + 2 * raw["n_kv_head"]) * head_dim / tp, hidden),
        "attn_post_proj": (hidden, raw["n_head"] * head_dim / tp),
        "mlp_up_proj": (np.where(gated, 2, 1) * width / tp, hidden),
        "mlp_down_proj": (hidden, width / tp),
    }
    frames = []
    for op in _VIDUR_GEMMS + _VIDUR_ELEMENTWISE:
        column = f"time_stats.{op}.median"
        if column not in raw.columns:
            continue
        frame = pd.DataFrame(
            {
                "op_class": "gemm" if op in _VIDUR_GEMMS else "elementwise",
                "op": op,
                "dtype": "fp16",
                "tp": tp,
                "m": raw["num_tokens"],
                "batch": raw["num_tokens"],
                "hidden": hidden,
                "width": width / tp,
                "heads": raw["n_head"] / tp,
                "kv_heads": np.maximum(raw["n_kv_head"] / tp, 1),
                "head_dim": head_dim,
                "measured_s": raw[column] * 1e-3,
            }
        )
        if op in shapes:
            frame["n"], frame["k"] = shapes[op]
        frames.append(frame[raw[column].notna().to_numpy()])
    return pd.concat(frames, ignore_index=True)


# ---- splitwise-sim ------------------------------------------------------------------------------


def _splitwise(base: Path) -> list[pd.DataFrame]:
    path = base / "perf_model.csv"
    raw = _read_csv(path, ["model", "hardware", "prompt_size", "batch_size", "token_size", "prompt_time", "token_time", "tensor_parallel"])
    raw = raw[raw["hardware"].isin(SPLITWISE_DEVICES) & raw["model"].isin(SPLITWISE_MODELS)]
    # A prompt beyond the model's context (Llama-2 4096, BLOOM 2048 tokens) or a batch of prompts
    # beyond one iteration's token budget (16384) cannot have been one forward step: such rows
    # time something else (chunked or rescaled runs) and are left out.
    context = raw["model"].map(SPLITWISE_CONTEXT)
    raw = raw[(raw["prompt_size"] <= context) & (raw["prompt_size"] * raw["batch_size"] <= SPLITWISE_STEP_TOKENS)]
    keys = ["model", "hardware", "prompt_size", "batch_size", "token_size", "tensor_parallel"]
    runs = raw.groupby(keys, as_index=False)[["prompt_time", "token_time"]].median()  # 5 repeats each
    common = {
        "source": "splitwise-sim",
        "path": _relative(path, base),
        "device": runs["hardware"].map(SPLITWISE_DEVICES),
        "stack": "vllm (Splitwise paper, 2023)",
        "dtype": "fp16",
        "model": runs["model"].map(SPLITWISE_MODELS),
        "tp": runs["tensor_parallel"],
        "batch": runs["batch_size"],
    }
    prefill = pd.DataFrame(
        {**common, "op_class": "prefill_step", "op": "prompt", "q_tokens": runs["prompt_size"], "kv_tokens": 0,
         "measured_s": runs["prompt_time"] * 1e-3}
    )
    # token_time is the mean decode iteration over the generation: at the middle context
    decode = pd.DataFrame(
        {**common, "op_class": "decode_step", "op": "token", "q_tokens": 1,
         "kv_tokens": runs["prompt_size"] + runs["token_size"] // 2, "measured_s": runs["token_time"] * 1e-3}
    )
    return [prefill, decode]


# ---- LLM-Inference-Bench ------------------------------------------------------------------------

# Upstream hardware label -> the accelerator profile it measured. A100: ALCF Polaris' A100-SXM4
# 40GB; H100: the JLSE H100 80GB, whose form factor the repository does not name: its rows match
# the SXM part (bandwidth-bound Llama-2-7B batches within 10% of GH200's 4 TB/s; batch 1 reads the
# weights at 1.85 TB/s, which the PCIe part's 2.0 TB/s would allow only at 92%, past what any
# decode reaches). Left out: GH200, MI250 (one GCD of an MI250, not the catalogued MI250X),
# Intel Max 1550 / PVC (no catalogued profile).
LIB_DEVICES = {"Nvidia A100 GPU": "a100-40gb-sxm", "Nvidia H100 GPU": "h100-sxm", "AMD MI300X GPU": "mi300x"}
LIB_MODELS = {
    "meta-llama/Llama-2-7b-hf": "llama-2-7b",
    "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b",
    "meta-llama/Meta-Llama-3-70B": "llama-3-70b",
    "mistralai/Mistral-7B-v0.1": "mistral-7b",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
}
# The scripts (vLLM/*/benchmark_*.py) use FlexibleArgumentParser (vLLM >= 0.5.1) and
# SamplingParams(use_beam_search=...) (removed in vLLM 0.6.3); no --enforce-eager: CUDA graphs.
LIB_STACK = "vllm>=0.5.1,<0.6.3 (LLM-Inference-Bench)"


def _llm_inference_bench(base: Path) -> list[pd.DataFrame]:
    path = base / "vllm_all_results.csv"
    raw = _read_csv(path, ["Hardware", "Num of Hardware", "Framework", "Model", "Input Output Length", "Batch Size", "Latency"])
    raw = raw[raw["Framework"].eq("vLLM") & raw["Hardware"].isin(LIB_DEVICES) & raw["Model"].isin(LIB_MODELS)]
    keys = ["Hardware", "Model", "Num of Hardware", "Input Output Length", "Batch Size"]
    runs = raw.groupby(keys, as_index=False)["Latency"].median()  # a few configurations were run twice
    length = runs["Input Output Length"]
    return [
        pd.DataFrame({
            "source": "llm-inference-bench",
            "path": _relative(path, base),
            "device": runs["Hardware"].map(LIB_DEVICES),
            "stack": LIB_STACK,
            "op_class": "generation",
            "op": "batch generation",
            "dtype": "fp16",  # run-*.sh: --dtype float16
            "model": runs["Model"].map(LIB_MODELS),
            "tp": runs["Num of Hardware"],
            "batch": runs["Batch Size"],
            "q_tokens": length,
            "kv_tokens": 0,
            "output_tokens": length,
            "measured_s": runs["Latency"],  # seconds upstream
        })
    ]


# ---- AMD's ROCm vLLM (rocm/vllm-dev images) -----------------------------------------------------


@dataclass(frozen=True)
class RocmEngine:
    """What one published table's engine ran: its stack label, KV cache format and scheduler."""

    stack: str
    kv_dtype: str
    chunked_prefill: bool
    token_budget: float  # max_num_batched_tokens; NaN: V0's max(max_model_len, 2048)


# The published latency command of each table (``benchmark_latency.py --dtype float16``, no
# --max-model-len, so Llama 3.1's 131072 positions) and the engine source at the image's tag:
# 0.6.6 and 0.8.5 pass --kv-cache-dtype fp8; 0.6.6 runs V0 (VLLM_USE_V1 off), and V0 on ROCm
# never enables chunked prefill by default (vllm/engine/arg_utils.py: ``not
# current_platform.is_rocm()``), so whole prompts go within max(131072, 2048) tokens a step;
# 0.8.5 defaults to V1 but falls back to V0 for an fp8 KV cache off CUDA (``_is_v1_supported_oracle``:
# "--kv-cache-dtype"). 0.9.1's command drops the fp8 KV cache ("AITER does not support fp8 kv
# cache"), so it runs V1 with a 16-bit cache (--dtype float16) and always-chunked prefill of
# ``max_num_batched_tokens`` = 16384 (LLM class on a >= 70 GiB device, ``_set_default_args_v1``).
ROCM_VLLM_ENGINES = {
    "0.6.6": RocmEngine("vllm==0.6.6 rocm6.3.1 (AMD rocm/vllm-dev, V0)", "fp8", False, np.nan),
    "0.8.5": RocmEngine("vllm==0.8.5 rocm6.3.1 (AMD rocm/vllm-dev, V0)", "fp8", False, np.nan),
    "0.9.1": RocmEngine("vllm==0.9.1 rocm6.4.1 (AMD rocm/vllm-dev, V1)", "fp16", True, 16384.0),
}
ROCM_VLLM_MODELS = {
    "amd/Llama-3.1-70B-Instruct-FP8-KV": "llama-3.1-70b",
    "amd/Llama-3.1-405B-Instruct-FP8-KV": "llama-3.1-405b",
}
ROCM_VLLM_DEVICE = "mi300x"  # "8x AMD Instinct MI300X (192GiB, 750W)", Supermicro AS-8125GS-TNMR2


def _rocm_vllm(base: Path) -> list[pd.DataFrame]:
    path = base / "mi300x_latency.csv"
    raw = _read_csv(path, ["vllm_version", "model", "precision", "tp", "batch_size", "input_len", "output_len", "latency_s"])
    versions = raw["vllm_version"].astype(str)
    unknown = sorted(set(versions) - set(ROCM_VLLM_ENGINES)) + sorted(set(raw["model"]) - set(ROCM_VLLM_MODELS))
    if unknown or not raw["precision"].eq("FP8").all():
        found = ", ".join(unknown) or "a precision other than FP8"
        raise CalibrationError(f"{path}: expected vLLM versions {', '.join(ROCM_VLLM_ENGINES)}, models "
                               f"{', '.join(ROCM_VLLM_MODELS)} and FP8 rows, found {found}")
    engines = versions.map(ROCM_VLLM_ENGINES)
    return [
        pd.DataFrame({
            "source": "rocm-vllm",
            "path": _relative(path, base),
            "device": ROCM_VLLM_DEVICE,
            "stack": engines.map(lambda e: e.stack),
            "op_class": "generation",
            "op": "batch generation",
            "dtype": "fp8",
            "kv_dtype": engines.map(lambda e: e.kv_dtype),
            "chunked_prefill": engines.map(lambda e: e.chunked_prefill),
            "token_budget": engines.map(lambda e: e.token_budget),
            "model": raw["model"].map(ROCM_VLLM_MODELS),
            "tp": raw["tp"],
            "batch": raw["batch_size"],
            "q_tokens": raw["input_len"],
            "kv_tokens": 0,
            "output_tokens": raw["output_len"],
            "measured_s": raw["latency_s"],
        })
    ]
