"""``hetsim estimate``: one model on one device type, as latency, capacity, throughput, cost and energy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from hetsim.cost.energy import OperatingPower, joules_per_request, joules_per_token, operating_power
from hetsim.cost.tco import CostBasis, device_hourly_cost, preset, usd_per_million_tokens
from hetsim.errors import EstimateError
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.expert import MoeOptions
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.roofline import DevicePerf, serving_perf
from hetsim.perf.serving import estimate_request
from hetsim.perf.speculative import MTP_ACCEPTANCE_RATE, SpecMethod, Speculation, speculation_for, with_proposer
from hetsim.perf.transformer import Precision, Shard
from hetsim.specs.hardware import AcceleratorSpec, DType
from hetsim.specs.parallel import CommOverlap

E = TypeVar("E", bound=Enum)

SERVING_UTILIZATION = 1.0
"""The busy share power is taken at: a steady-state serving estimate keeps its devices busy."""


@dataclass(frozen=True)
class EstimateQuestion:
    """What ``hetsim estimate`` is asked. ``max_batch_tokens`` is each attention group's step
    budget, and each group may batch vLLM's default 256 sequences."""

    model: str
    device: str
    input_tokens: int
    output_tokens: int
    tp: int = 1
    pp: int = 1
    dtype: str = "bf16"
    kv_dtype: str | None = None  # the KV cache's format; None: the weights' rule (Precision.uniform)
    batch: int = 1
    profile_set: str = "datasheet"
    tco_preset: str = "paper"
    cost_basis: str | None = None
    max_batch_tokens: int = 8192
    profiles: Path | None = None
    ep: int = 1
    dp_attention: int = 1
    expert_balancing: bool = False
    redundant_experts: int = 0
    overlap: str = "none"
    expert_imbalance: float | None = None
    stack: str | None = None
    spec_method: str | None = None
    spec_tokens: int | None = None
    acceptance_rate: float | None = None
    draft_model: str | None = None


def device_perf(
    device_name: str, profile_set: str = "datasheet", profiles: Path | None = None, stack: str | None = None
) -> DevicePerf:
    """A device with its calibration file, if it has one (``stack``'s where the device has one)."""
    device = load_catalog(profile_set, profiles).accelerator(device_name)
    return serving_perf(device, load_calibration(device.name, profiles, stack))


def estimate(question: EstimateQuestion) -> dict[str, Any]:
    """Answer the question; every figure says where it comes from."""
    if question.cost_basis:
        _member(CostBasis, "cost_basis", question.cost_basis)  # bad input is refused before any work
    model = load_models().model(question.model)
    perf = device_perf(question.device, question.profile_set, question.profiles, question.stack)
    replica = LlmReplica(
        model,
        perf,
        Shard(question.tp, question.pp, question.ep, question.dp_attention, question.redundant_experts),
        _precision(question.dtype, question.kv_dtype),
        ServingLimits(
            max_batch_tokens=question.max_batch_tokens * question.dp_attention,
            max_num_seqs=ServingLimits.max_num_seqs * question.dp_attention,
        ),
        MoeOptions(question.expert_balancing, question.expert_imbalance, _member(CommOverlap, "overlap", question.overlap)),
    )
    speculation = _speculation(question, replica)
    serving = replica if speculation is None else with_proposer(replica, speculation)  # the proposer's memory too
    result = estimate_request(serving, question.input_tokens, question.output_tokens, question.batch, speculation)
    plain = estimate_request(replica, question.input_tokens, question.output_tokens, question.batch) if speculation else None
    usd_per_h, cost_text = _hourly(perf.device, question)
    replica_usd_per_h = usd_per_h * replica.devices
    output_tps = result.output_tokens_per_s_per_device * replica.devices
    total_tps = result.total_tokens_per_s_per_device * replica.devices
    power = operating_power(perf.device, SERVING_UTILIZATION, preset(question.tco_preset).pue)
    replica_w = power.facility_w * replica.devices
    return {
        "question": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(question).items()},
        "model": model.name,
        "device": perf.device.name,
        "devices_per_replica": replica.devices,
        "parallelism": {
            "tp": replica.shard.tp, "pp": replica.shard.pp, "ep": replica.shard.ep, "dp_attention": replica.shard.dp,
            "redundant_experts": replica.shard.redundant_experts, "expert_imbalance": replica.imbalance,
            "expert_balancing": question.expert_balancing, "overlap": replica.moe.overlap.value,
        },
        "ttft_s": result.ttft_s,
        "tpot_s": result.tpot_s,
        "e2e_s": result.e2e_s,
        "max_batch_that_fits": result.max_batch_fits,
        "kv_capacity_tokens": result.kv_capacity_tokens,
        "weight_bytes_per_device": replica.weight_bytes_per_device,
        "output_tokens_per_s_per_device": result.output_tokens_per_s_per_device,
        "total_tokens_per_s_per_device": result.total_tokens_per_s_per_device,
        "usd_per_h_per_device": usd_per_h,
        "usd_per_million_output_tokens_decode": usd_per_million_tokens(replica_usd_per_h, output_tps),
        "usd_per_million_tokens_end_to_end": usd_per_million_tokens(replica_usd_per_h, total_tps),
        "power_w_per_device": power.facility_w,
        "joules_per_output_token": joules_per_token(replica_w, output_tps),
        "joules_per_token": joules_per_token(replica_w, total_tps),
        "joules_per_request": joules_per_request(replica_w, result.e2e_s, result.batch),
        "power": {
            "device_w": power.device_w, "tdp_w": power.tdp_w, "idle_w": power.idle_w,
            "utilization": power.utilization, "pue": power.pue, "missing_profile_field": power.missing,
        },
        "speculation": None if speculation is None else {
            "method": speculation.method.value, "tokens": speculation.tokens, "acceptance_rate": speculation.acceptance_rate,
            "tokens_per_step": speculation.tokens_per_step,
            "proposer": speculation.proposer.model.name if speculation.proposer is not None else "prompt lookup (host CPU)",
            "tpot_without_s": plain.tpot_s if plain else None,
            "decode_speedup": plain.tpot_s / result.tpot_s if plain and result.tpot_s else None,
            "acceptance_source": _acceptance_source(question),
        },
        "prefill_bound": result.prefill_bound.value,
        "decode_bound": result.decode_bound.value,
        "provenance": {
            "performance": result.provenance.value
            + ("" if perf.calibration else " (roofline with documented default efficiencies; no calibration file)"),
            "cost": cost_text,
            "energy": _energy_text(power, perf.device.name, question.tco_preset),
            "hardware": f"{question.profile_set} profile {perf.device.name}",
            "stack": perf.stack,
            "model": perf.model_label,
        },
    }


def _speculation(question: EstimateQuestion, replica: LlmReplica) -> Speculation | None:
    """The question's speculative decoding; MTP's tokens and acceptance default to DeepSeek-V3's
    measured ones, the other methods' must be given (they depend on the draft and the workload)."""
    if question.spec_method is None:
        for name, value in (("--spec-tokens", question.spec_tokens), ("--acceptance-rate", question.acceptance_rate),
                            ("--draft-model", question.draft_model)):  # fmt: skip
            if value is not None:
                raise EstimateError(f"{name}: expected with --spec-method, got it alone")
        return None
    method = _member(SpecMethod, "--spec-method", question.spec_method)
    tokens, rate = question.spec_tokens, question.acceptance_rate
    if method == SpecMethod.MTP:
        tokens, rate = tokens or 1, MTP_ACCEPTANCE_RATE if rate is None else rate
    missing = [name for name, value in (("--spec-tokens", tokens), ("--acceptance-rate", rate)) if value is None]
    if missing:
        raise EstimateError(f"{' and '.join(missing)}: expected with --spec-method {method.value} (they depend on the "
                            "proposer and the workload; measure them, e.g. vLLM's spec-decode acceptance metrics), got none")  # fmt: skip
    draft = load_models().model(question.draft_model) if question.draft_model else None
    if method == SpecMethod.DRAFT and draft is None:
        raise EstimateError("--draft-model: expected the draft model's name with --spec-method draft, got none")
    assert tokens is not None and rate is not None
    return speculation_for(replica, method, tokens, rate, draft)


def _acceptance_source(question: EstimateQuestion) -> str:
    if question.spec_method == SpecMethod.MTP and question.acceptance_rate is None:
        return "DeepSeek-V3 technical report (arXiv 2412.19437) section 5.4.3: 85-90% of second tokens accepted"
    return "given (--acceptance-rate)"


def _hourly(device: AcceleratorSpec, question: EstimateQuestion) -> tuple[float, str]:
    """$/h of one device and where it comes from. A device whose profile has no price (for the
    basis asked, or either when none was asked) costs NaN, 'unknown: why': its performance is
    still answered, as ``hetsim simulate`` does for a pool it cannot price."""
    basis = _member(CostBasis, "cost_basis", question.cost_basis) if question.cost_basis else None
    assumptions = preset(question.tco_preset)
    try:
        hourly = device_hourly_cost(device, assumptions, basis)
    except EstimateError as exc:
        if basis is not None:
            raise
        unpriced = device.price.purchase is None and device.price.rental is None
        return math.nan, f"unknown: device {device.name!r} has no purchase or rental price in its profile" if unpriced else f"unknown: {exc}"
    return hourly.total_usd_per_h, f"{hourly.basis.value}: {hourly.provenance}"


def _energy_text(power: OperatingPower, device: str, tco: str) -> str:
    """Where the watts come from, or which profile field they lack."""
    if power.missing is not None:
        return f"unknown: device {device!r} has no {power.missing} in its profile"
    draw = "TDP" if power.utilization == 1.0 else f"idle + {power.utilization:g} x (TDP - idle)"
    return (
        f"facility: {draw} {power.device_w:g} W (utilisation {power.utilization:g}: serving keeps it busy) "
        f"x PUE {power.pue:g} ({tco})"
    )


def _precision(dtype: str, kv_dtype: str | None) -> Precision:
    """The deployment's formats: ``dtype`` weights (``Precision.uniform``: an fp8 or narrower model
    keeps an fp8 KV cache), the KV cache in ``kv_dtype`` where given (vLLM's ``--kv-cache-dtype
    auto`` keeps it in the 16-bit model dtype)."""
    return Precision.uniform(_member(DType, "dtype", dtype)).with_kv_cache(None if kv_dtype is None else _member(DType, "kv_dtype", kv_dtype))


def _member(kind: type[E], field: str, name: str) -> E:
    """The ``kind`` member called ``name``; a bad name is a one-line error naming ``field`` and the choices."""
    try:
        return kind(name)
    except ValueError:
        raise EstimateError(f"{field}: expected one of {', '.join(m.value for m in kind)}, got {name!r}") from None
