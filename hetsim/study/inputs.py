"""Inputs of the paper reproduction: device numbers of an input set, and the paper's KV-link
equations (arXiv 2507.19635 §5.2, Eq. (1)-(3); paper.md §1.10 and E6). Pure: no I/O.

Table 5 prints one 16-bit peak, a price and an operating $/h per device: no fp8 peak and no
TDP. An input set fills those gaps from the device's datasheet profile (the *reference*) by a
stated rule, and every number so derived says so in its ``source``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hetsim.specs.common import SourcedFlops
from hetsim.specs.hardware import AcceleratorSpec, DType
from hetsim.specs.model import ArchitectureSpec
from hetsim.specs.study import InputSet


def _with_compute(device: AcceleratorSpec, **peaks: SourcedFlops) -> AcceleratorSpec:
    return device.model_copy(update={"compute": device.compute.model_copy(update=peaks)})


def override_fp16(device: AcceleratorSpec, tflops: float, source: str) -> AcceleratorSpec:
    """The device with its 16-bit peak (fp16, and bf16 where listed) replaced."""
    peak = SourcedFlops(value=tflops, unit="TFLOP/s", source=source)
    peaks = {"fp16": peak} | ({"bf16": peak} if device.compute.bf16 is not None else {})
    return _with_compute(device, **peaks)


def sixteen_bit_tflops(device: AcceleratorSpec) -> float | None:
    """The 16-bit peak a bf16 model runs at (bf16, else fp16: the runtime's fallback order)."""
    for dtype in (DType.BF16, DType.FP16):
        peak = device.peak_flops(dtype)
        if peak:
            return peak / 1e12
    return None


def fp8_ratio(reference: AcceleratorSpec) -> float | None:
    """Datasheet fp8 / 16-bit peak ratio; None when the device has no native fp8."""
    fp8 = reference.peak_flops(DType.FP8)
    sixteen = sixteen_bit_tflops(reference)
    return None if not fp8 or not sixteen else fp8 / 1e12 / sixteen


def derive_fp8(device: AcceleratorSpec, reference: AcceleratorSpec) -> AcceleratorSpec:
    """Add an fp8 peak = the device's 16-bit peak x the reference's fp8/16-bit ratio.

    A device that already prints an fp8 peak, or whose reference has none (A100, A40: fp8
    weights are up-cast and the math runs at the 16-bit rate), is returned unchanged.
    """
    ratio = fp8_ratio(reference)
    sixteen = sixteen_bit_tflops(device)
    if device.compute.fp8 is not None or ratio is None or sixteen is None:
        return device
    source = (
        f"derived: 16-bit peak {sixteen:g} TFLOP/s x datasheet fp8/16-bit ratio {ratio:.3g} "
        f"(profile {reference.name}); the paper prints no fp8 peak"
    )
    return _with_compute(device, fp8=SourcedFlops(value=sixteen * ratio, unit="TFLOP/s", source=source))


def copy_power(device: AcceleratorSpec, reference: AcceleratorSpec) -> AcceleratorSpec:
    """The device with the reference's TDP and idle power where it has no TDP of its own."""
    if device.power.tdp is not None:
        return device
    return device.model_copy(update={"power": reference.power})


def input_device(device: AcceleratorSpec, reference: AcceleratorSpec, rules: InputSet) -> AcceleratorSpec:
    """``device`` adjusted by the input set's rules, in order: 16-bit override, fp8, power."""
    for override in rules.fp16_overrides:
        if override.device in {device.name, *device.aliases}:
            device = override_fp16(device, override.tflops, override.source)
    if rules.fp8_from_reference:
        device = derive_fp8(device, reference)
    if rules.power_from_reference:
        device = copy_power(device, reference)
    return device


# ---- Eq. (1)-(3): KV-cache size and peak link bandwidth ---------------------------------


def kv_cache_bytes(arch: ArchitectureSpec, input_tokens: int, batch: int, bytes_per_element: float) -> float:
    """Eq. (3): 2 x N_layers x d_model x (N_kv / N_heads) x ISL x BS x BPE."""
    ratio = arch.num_kv_heads / arch.num_attention_heads
    return 2.0 * arch.num_layers * arch.hidden_size * ratio * input_tokens * batch * bytes_per_element


def peak_egress_gbps(kv_bytes: float, ttft_s: float, prefill_devices: int) -> float:
    """Eq. (1): KV size / (TTFT x N_prefill), in Gb/s (1 Gb = 1e9 bits)."""
    return kv_bytes * 8.0 / (ttft_s * prefill_devices) / 1e9


def peak_ingress_gbps(kv_bytes: float, tbt_s: float, decode_devices: int) -> float:
    """Eq. (2): KV size / (TBT x N_decode), in Gb/s."""
    return kv_bytes * 8.0 / (tbt_s * decode_devices) / 1e9


def link_bandwidth_rows(
    variants: Iterable[tuple[str, str, ArchitectureSpec, float]],
    input_tokens: Sequence[int],
    instances: Sequence[int],
    ttft_s: float,
    tbt_s: float,
) -> list[dict[str, object]]:
    """Eq. (1)/(2) at batch 1 for each (model label, precision label, architecture, bytes per
    element) x prompt length x instance count: one row per combination."""
    rows: list[dict[str, object]] = []
    for model, precision, arch, bpe in variants:
        for isl in input_tokens:
            kv = kv_cache_bytes(arch, isl, 1, bpe)
            for n in instances:
                rows.append({
                    "model": model, "precision": precision, "input_tokens": isl, "instances": n, "kv_gb": kv / 1e9,
                    "egress_gbps": peak_egress_gbps(kv, ttft_s, n), "ingress_gbps": peak_ingress_gbps(kv, tbt_s, n),
                })  # fmt: skip
    return rows
