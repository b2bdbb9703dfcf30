"""Published expert-parallel deployments of DeepSeek-V3/R1, set up in hetsim and predicted.

Two sources, each with its own settings (``CASES`` carries them row by row):

* SGLang on 12 nodes of 8 H100 (LMSYS blog "Deploying DeepSeek with PD Disaggregation and
  Large-scale Expert Parallelism on 96 H100 GPUs", 2025-05-05, lm-sys/lm-sys.github.io
  blog/2025-05-05-large-scale-ep.md @2db4e40): prefill on 4 nodes (EP32, DP attention, DeepEP
  normal kernels, DeepGEMM contiguous grouped GEMMs, two-batch overlap, EPLB with 32 redundant
  experts, 16,384 tokens per GPU) and decode on 9 nodes (EP72, 256 requests per GPU, 2,000-token
  KV, DeepEP low-latency kernels, masked grouped GEMMs, TBO); 52.3k input and 22.3k output
  tokens/s per node for 2,000-token inputs, and a TP16 (DP attention) baseline: "up to 3.3x"
  (prefill) and 5.2x (decode) below the EP deployment on the same nodes.
* DeepSeek's own H800 service (deepseek-ai/open-infra-index, "Day 6: One More Thing,
  DeepSeek-V3/R1 Inference System Overview", 2025-03-01, @56d8685): prefill EP32 on 4 nodes,
  decode EP144 on 18 nodes, 32 redundant experts, TBO; over 24 hours ~73.7k input tokens/s
  per node during prefill (56.3% of them cache hits) and ~14.8k output tokens/s per node during
  decode at a mean KV length of 4,989. Its profiling runs (deepseek-ai/profile-data @4496024:
  prefill EP32, 4K prompts, 16K tokens per GPU; decode EP128, 4K prompts, 128 requests per GPU;
  "absolutely balanced" routing) are 62,713 and 18,598 tokens/s per node as the LMSYS blog
  derives them.

Kernels: the deployments run DeepSeek's kernels, not a stock vLLM stack, so hetsim prices them
with the ``deepseek-kernels`` stack calibration (``deepseek_kernels``): the device's fitted
kernel model with fp8 GEMMs fitted to DeepGEMM's published table, decode attention at
FlashMLA's published bandwidth and throughput, and all-to-alls fitted to DeepEP's table
(``hetsim.perf.kernels.DEFAULT_ALL_TO_ALL``). Every kernel table is H800's; the H100 SXM5 has
the same SMs, clocks and HBM3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from hetsim.errors import CalibrationError, EstimateError
from hetsim.io.calibration import load_calibration, stack_slug
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.io.models import load_models
from hetsim.io.outputs import Provenance, Target, texts_into, write_outputs
from hetsim.perf.expert import MoeOptions
from hetsim.perf.kernel_fit import fit_class, log_error
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.public_rows import predict_ops
from hetsim.perf.roofline import DevicePerf, serving_perf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec
from hetsim.specs.hardware import DType
from hetsim.specs.parallel import CommOverlap

STACK = "deepseek-kernels"
STACK_DEVICES = ("h100-sxm", "h800-sxm")
GPUS_PER_NODE = 8
# FlashMLA README @9edee0c (2025-04-22): "up to 3000 GB/s in memory-bound configuration and 660
# TFLOPS in computation-bound configuration on H800 SXM5" (BF16 KV cache, CUDA 12.8).
FLASHMLA_TFLOPS = 660.0
FLASHMLA_GB_PER_S = 3000.0
# DeepSeek computes MLA and caches KV in BF16, GEMMs and dispatch in FP8 (open-infra-index day 6:
# "matrix multiplications and dispatch transmissions adopt the FP8 format ... core MLA computations
# and combine transmissions use the BF16 format"); FlashMLA's cache is BF16.
DEEPSEEK_PRECISION = Precision(weights=DType.FP8, activations=DType.BF16, kv_cache=DType.BF16)
_MEASUREMENTS = Path("measurements") / "public" / "deepseek"


# ---- the deepseek-kernels stack ------------------------------------------------------------


def deepgemm_rows(root: Path | None = None) -> pd.DataFrame:
    """DeepGEMM's published FP8 GEMM table as op-level rows (``hetsim.perf.public_rows``)."""
    path = profiles_root(root) / _MEASUREMENTS / "deepgemm_fp8_gemm.csv"
    try:
        raw = pd.read_csv(path)
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read DeepGEMM's table ({exc.strerror})") from None
    flops = 2.0 * raw["groups"] * raw["m"] * raw["n"] * raw["k"]
    return raw.assign(op_class="gemm", dtype="fp8", measured_s=flops / (raw["tflops"] * 1e12))


def deepseek_kernels(device: str, root: Path | None = None) -> CalibrationSpec:
    """The ``deepseek-kernels`` calibration of ``device``: the h100-sxm kernel model (the same
    silicon) with fp8 GEMMs fitted to DeepGEMM's table and decode attention at FlashMLA's rates."""
    base = load_calibration("h100-sxm", root)
    if base is None or base.kernels is None:
        raise CalibrationError("deepseek-kernels: expected the h100-sxm kernel calibration to start from, got none")
    hardware = load_catalog("datasheet", root)
    perf = DevicePerf(hardware.accelerator(device), base.model_copy(update={"device": device}))
    rows = deepgemm_rows(root)
    kernels = fit_class(rows, perf, base.kernels, "gemm_fp8")
    error = log_error(predict_ops(rows, perf, kernels), rows["measured_s"].to_numpy())
    decode = base.kernels.attention_decode.model_copy(
        update={
            "efficiency": FLASHMLA_TFLOPS * 1e12 / perf.peak_flops(DType.BF16),
            "memory_efficiency": FLASHMLA_GB_PER_S * 1e9 / perf.bandwidth_bytes_per_s,
        }
    )
    sources = {
        **base.kernels.sources,
        "gemm_fp8": f"fitted to DeepGEMM's {len(rows)}-row FP8 table on H800 (mean |log error| {error:.3f}): "
        "measurements/public/deepseek/deepgemm_fp8_gemm.csv",
        "attention_decode": f"FlashMLA README @9edee0c on H800: {FLASHMLA_TFLOPS:.0f} TFLOPS compute-bound, "
        f"{FLASHMLA_GB_PER_S:.0f} GB/s memory-bound; floor and per-sequence cost as {base.stack}",
        "all_to_all": "DeepEP's low-latency table (hetsim.perf.kernels.DEFAULT_ALL_TO_ALL)",
    }
    kernels = kernels.model_copy(update={"stack": STACK, "attention_decode": decode, "sources": sources})
    provenance = CalibrationProvenance(
        kind="public measurements",
        device_description=hardware.accelerator(device).display_name,
        date=base.provenance.date,
        tool="hetsim.api.moe_published.deepseek_kernels (benchmarks/moe_published.py --write-stacks)",
        versions={"stack": STACK},
        notes=f"DeepSeek's published kernel tables (DeepGEMM, FlashMLA, DeepEP; H800) over {base.stack}'s fit of the rest",
    )
    return base.model_copy(update={"device": device, "kernels": kernels, "provenance": provenance, "error_band": {}})


def write_stacks(root: Path | None = None) -> list[Path]:
    """Write ``calibration/stacks/<device>--deepseek-kernels.yaml`` for ``STACK_DEVICES``."""
    texts = {
        f"stacks/{device}--{stack_slug(STACK)}.yaml": _HEADER
        + yaml.safe_dump(deepseek_kernels(device, root).model_dump(mode="json", exclude_defaults=True), sort_keys=False)
        for device in STACK_DEVICES
    }

    target = Target(profiles_root(root) / "calibration", "--write-stacks", has_manifest=False)
    fill = texts_into(texts)
    return write_outputs([target], lambda staged: fill(staged[0]), CalibrationError, Provenance("moe_published"))


_HEADER = (
    "# Written by `benchmarks/moe_published.py --write-stacks` (hetsim.api.moe_published.deepseek_kernels) from\n"
    "# hardware_profiles/measurements/public/deepseek and the h100-sxm calibration. Re-run it rather than editing.\n"
)


# ---- the published deployments -----------------------------------------------------------------


@dataclass(frozen=True)
class PublishedCase:
    """One published per-node throughput and the deployment that gave it.

    ``per_device`` is the prefill tokens per GPU per step (a step holds as many whole prompts
    as fit) or the decode requests per GPU; ``cached`` the prompt tokens served from cache.
    ``capacity`` says whether the figure is a loaded system's (a benchmark or profile) or a
    day's average of a production service (load below capacity, so a model of capacity should
    exceed it); ``tolerance`` is the |error| the validation test holds the prediction to."""

    name: str
    source: str
    device: str
    nodes: int
    phase: str  # "prefill" (input tokens/s per node) or "decode" (output tokens/s per node)
    shard: Shard
    moe: MoeOptions
    prompt: int
    per_device: int
    published_per_node: float
    cached: int = 0
    capacity: bool = True
    tolerance: float = 0.25
    note: str = ""
    settings: dict[str, object] = field(default_factory=dict)


_BALANCED_TBO = MoeOptions(balancing=True, overlap=CommOverlap.TWO_BATCH)
_PERFECT_TBO = MoeOptions(imbalance=1.0, overlap=CommOverlap.TWO_BATCH)  # DeepSeek's profile: "absolutely balanced"
_LMSYS = "LMSYS blog 2025-05-05 (SGLang, 96 H100)"
_DEEPSEEK = "DeepSeek open-infra-index day 6 (2025-03-01, H800 service)"
_PROFILE = "DeepSeek profile-data (2025-03), per-node figures as the LMSYS blog derives them"
_SGLANG_PREFILL_GAP = (
    "hetsim prices DeepGEMM/FA3 at their micro-benchmark rates and leaves out fp8 quantisation, token permutation "
    "and routing kernels and the compute slowdown SGLang measured under TBO"
)


def _sglang_prefill(prompt: int, published: float, moe: MoeOptions = _BALANCED_TBO, name: str = "") -> PublishedCase:
    return PublishedCase(
        name or f"SGLang prefill, {prompt}-token prompts", _LMSYS, "h100-sxm", 4, "prefill",
        Shard(ep=32, dp=32, redundant_experts=32), moe, prompt, 16384, published, tolerance=0.55, note=_SGLANG_PREFILL_GAP,
    )  # fmt: skip


# fmt: off
CASES: tuple[PublishedCase, ...] = (
    _sglang_prefill(1000, 57674),
    _sglang_prefill(2000, 54543),
    _sglang_prefill(2000, 52300, name="SGLang headline input rate, 2000-token prompts"),
    _sglang_prefill(4000, 50302),
    _sglang_prefill(4096, 59337, _PERFECT_TBO, "SGLang prefill, 4096-token prompts, simulated perfect EPLB"),
    PublishedCase(
        "SGLang decode, 2000-token KV", _LMSYS, "h100-sxm", 9, "decode", Shard(ep=72, dp=72, redundant_experts=32),
        _BALANCED_TBO, 2000, 256, 22282,
    ),
    PublishedCase(
        "DeepSeek profile prefill, 4096-token prompts", _PROFILE, "h800-sxm", 4, "prefill", Shard(ep=32, dp=32),
        _PERFECT_TBO, 4096, 16384, 62713,
    ),
    PublishedCase(
        "DeepSeek profile decode, 4096-token KV", _PROFILE, "h800-sxm", 16, "decode", Shard(ep=128, dp=128),
        _PERFECT_TBO, 4096, 128, 18598, tolerance=0.35,
        note="DeepSeek decodes with multi-token prediction (MTP; the LMSYS blog simulates it to match this profile); "
        "priced here without it, to compare the expert-parallel split alone (hetsim prices MTP: --spec-method mtp)",
    ),
    PublishedCase(
        "DeepSeek service prefill (incl. 56.3% cache hits)", _DEEPSEEK, "h800-sxm", 4, "prefill",
        Shard(ep=32, dp=32, redundant_experts=32), _BALANCED_TBO, 4096, 16384, 73700, cached=2306, capacity=False,
        tolerance=1.25,
        note="a 24-hour average of a service sized to its load (the LMSYS blog: DeepSeek's profile is about twice "
        "the production rate); prompt length not published: 4096 assumed, 56.3% of it cached",
    ),
    PublishedCase(
        "DeepSeek service decode, mean KV 4,989", _DEEPSEEK, "h800-sxm", 18, "decode",
        Shard(ep=144, dp=144, redundant_experts=32), _BALANCED_TBO, 4989, 128, 14800, capacity=False, tolerance=0.35,
        note="a 24-hour average (load below capacity) of a service that decodes with MTP (left out here, as above); "
        "128 requests per GPU as in DeepSeek's profile, fewer where the KV cache holds fewer",
    ),
)
# fmt: on


@dataclass(frozen=True)
class Prediction:
    """hetsim's per-node throughput for one case, and what it was priced with."""

    case: PublishedCase
    predicted_per_node: float
    per_device: int
    step_s: float

    @property
    def error(self) -> float:
        return self.predicted_per_node / self.case.published_per_node - 1.0


def _replica(case: PublishedCase, per_device: int, shard: Shard | None = None) -> LlmReplica:
    shard = shard or case.shard
    devices = shard.stage_devices
    calibration = load_calibration(case.device, stack=STACK)
    perf = serving_perf(load_catalog("datasheet").accelerator(case.device), calibration)  # as `hetsim estimate` serves it
    tokens = per_device if case.phase == "prefill" else 8192
    limits = ServingLimits(max_num_seqs=max(per_device, 256) * devices, max_batch_tokens=tokens * devices)
    return LlmReplica(load_models().model("deepseek-v3"), perf, shard, DEEPSEEK_PRECISION, limits, case.moe)


def predict(case: PublishedCase, shard: Shard | None = None, moe: MoeOptions | None = None) -> Prediction:
    """hetsim's per-node throughput for ``case`` (on ``shard`` and ``moe`` where given: the
    baseline of the EP-vs-TP ratio). Decode runs the published requests per GPU, or as many as
    the KV cache holds when fewer."""
    if moe is not None:
        case = PublishedCase(**{**case.__dict__, "moe": moe})
    replica = _replica(case, case.per_device, shard)
    devices = replica.shard.stage_devices
    if case.phase == "prefill":
        new = case.prompt - case.cached
        prompts = max(1, case.per_device // new) * devices
        step_s = replica.step_seconds([SequenceWork(new, case.cached)] * prompts)
        rate = prompts * case.prompt / step_s
        per_device = prompts // devices * new
    else:
        per_device = min(case.per_device, replica.max_batch(case.prompt + 1) // devices)
        if per_device < 1:
            raise EstimateError(f"{case.name}: no request of {case.prompt} tokens fits")
        step_s = replica.step_seconds([SequenceWork(1, case.prompt)] * (per_device * devices))
        rate = per_device * devices / step_s
    return Prediction(case, rate / devices * GPUS_PER_NODE, per_device, step_s)


def validation_table() -> list[dict[str, object]]:
    """Published vs predicted per-node throughput, one row per case."""
    rows = []
    for case in CASES:
        result = predict(case)
        rows.append({
            "case": case.name, "source": case.source, "device": case.device, "nodes": case.nodes,
            "parallelism": f"EP{case.shard.ep} DP-attention{case.shard.dp}"
            + (f" +{case.shard.redundant_experts} redundant" if case.shard.redundant_experts else ""),
            "imbalance": case.moe.imbalance_factor(case.shard), "overlap": case.moe.overlap.value,
            "load": f"{result.per_device} {'tokens' if case.phase == 'prefill' else 'requests'}/GPU",
            "tokens": "input" if case.phase == "prefill" else "output",
            "published_per_node": case.published_per_node, "predicted_per_node": result.predicted_per_node,
            "error": result.error, "kind": "capacity" if case.capacity else "production average", "note": case.note,
        })  # fmt: skip
    return rows


# The TP16 baseline of the LMSYS blog: "every two nodes are paired ... TP size of 16 and DP
# attention": attention data-parallel over 16 GPUs, experts tensor-parallel over them, no EPLB
# and no TBO (expert-parallel features); a prefill budget of 8,192 tokens per GPU (SGLang's
# chunked-prefill default; the blog does not say) and as many requests per GPU as fit, at most 256.
TP16 = Shard(dp=16)
PUBLISHED_RATIOS = {"prefill": 3.3, "decode": 5.2}  # LMSYS blog: "up to 3.3x" (prefill), 5.2x (decode, 2K inputs)


def ep_vs_tp() -> list[dict[str, object]]:
    """The EP deployment's per-node throughput over the TP16 baseline's, predicted and published."""
    rows = []
    for phase, case in (("prefill", CASES[1]), ("decode", CASES[5])):
        ep = predict(case)
        baseline_case = PublishedCase(**{**case.__dict__, "per_device": 8192 if phase == "prefill" else 256})
        tp = predict(baseline_case, TP16, MoeOptions())
        rows.append({
            "phase": phase, "ep_per_node": ep.predicted_per_node, "tp16_per_node": tp.predicted_per_node,
            "tp16_load": f"{tp.per_device} {'tokens' if phase == 'prefill' else 'requests'}/GPU",
            "predicted_ratio": ep.predicted_per_node / tp.predicted_per_node, "published_ratio": PUBLISHED_RATIOS[phase],
        })  # fmt: skip
    return rows


# The LMSYS blog's two-batch-overlap ablation: decode at 256 requests per GPU, "the speedup reaches
# 25.5%"; prefill at the same tokens per device, "a 27% to 35% throughput increase".
PUBLISHED_TBO_GAINS = {"prefill": (1.27, 1.35), "decode": (1.255, 1.255)}


def two_batch_overlap_gain() -> list[dict[str, object]]:
    """Throughput with two-batch overlap over without, on the SGLang deployment, predicted and published."""
    rows = []
    for phase, case in (("prefill", CASES[1]), ("decode", CASES[5])):
        with_tbo = predict(case).predicted_per_node
        without = predict(case, moe=MoeOptions(balancing=True)).predicted_per_node
        low, high = PUBLISHED_TBO_GAINS[phase]
        rows.append({"phase": phase, "predicted_gain": with_tbo / without, "published_low": low, "published_high": high})
    return rows
