"""``hetsim estimate``: one model on one device type."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli.output import JsonOption, fmt, print_json, print_table


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_command)


def estimate_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. llama-3-70b")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device name, e.g. h100-sxm")],
    input_tokens: Annotated[int, typer.Option("--input-tokens", help="Prompt tokens per request")],
    output_tokens: Annotated[int, typer.Option("--output-tokens", help="Output tokens per request")],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel degree")] = 1,
    dtype: Annotated[str, typer.Option("--dtype", help="Weights/GEMM format: bf16, fp16, fp8, fp4, int8")] = "bf16",
    kv_dtype: Annotated[
        str | None,
        typer.Option(
            "--kv-dtype",
            help="KV cache format (default: fp8 for fp8/fp4/int8 weights, else the weights'; vLLM's --kv-cache-dtype auto keeps fp16/bf16)",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Requests served together")] = 1,
    profile_set: Annotated[str, typer.Option("--set", help="Hardware profile set: datasheet or paper")] = "datasheet",
    tco: Annotated[str, typer.Option("--tco", help="TCO preset: paper, paper-printed, enterprise")] = "paper",
    cost_basis: Annotated[
        str | None, typer.Option("--cost-basis", help="owned or rented (default: owned when a price is known)")
    ] = None,
    profiles: Annotated[Path | None, typer.Option("--profiles", help="Folder of hardware profiles")] = None,
    ep: Annotated[
        int, typer.Option("--ep", help="Expert-parallel degree (MoE): 1, or tp x dp-attention (each device holds whole experts)")
    ] = 1,
    dp_attention: Annotated[
        int, typer.Option("--dp-attention", help="Attention data-parallel groups of tp devices (MoE; no KV duplication)")
    ] = 1,
    expert_balancing: Annotated[
        bool, typer.Option("--expert-balancing", help="An expert load balancer (EPLB) places experts: lower imbalance")
    ] = False,
    redundant_experts: Annotated[
        int, typer.Option("--redundant-experts", help="Replicas of hot experts beside the model's own (EPLB), e.g. 32")
    ] = 0,
    overlap: Annotated[str, typer.Option("--overlap", help="All-to-all overlap with compute: none or two-batch")] = "none",
    expert_imbalance: Annotated[
        float | None, typer.Option("--expert-imbalance", help="Busiest/mean routed tokens per device (default: measured)")
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Kernel calibration of a serving stack (calibration/stacks/), e.g. deepseek-kernels"),
    ] = None,
    max_batch_tokens: Annotated[
        int, typer.Option("--max-batch-tokens", help="Tokens per step per attention group (chunked-prefill budget)")
    ] = 8192,
    spec_method: Annotated[
        str | None, typer.Option("--spec-method", help="Speculative decoding: draft, eagle, mtp or ngram")
    ] = None,
    spec_tokens: Annotated[
        int | None, typer.Option("--spec-tokens", help="Tokens proposed per step (mtp: 1 by default)")
    ] = None,
    acceptance_rate: Annotated[
        float | None, typer.Option("--acceptance-rate", help="Per-token acceptance of the proposals (mtp: 0.85, DeepSeek-V3)")
    ] = None,
    draft_model: Annotated[str | None, typer.Option("--draft-model", help="The draft model (with --spec-method draft)")] = None,
    json: JsonOption = False,
) -> None:
    """Predict TTFT, TPOT, the largest batch that fits, tokens/s per device and $ per 1M tokens."""
    from hetsim.api.estimate import EstimateQuestion, estimate  # loaded on use: starting the CLI stays light
    question = EstimateQuestion(
        model=model,
        device=device,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tp=tp,
        pp=pp,
        dtype=dtype,
        kv_dtype=kv_dtype,
        batch=batch,
        profile_set=profile_set,
        tco_preset=tco,
        cost_basis=cost_basis,
        profiles=profiles,
        max_batch_tokens=max_batch_tokens,
        ep=ep,
        dp_attention=dp_attention,
        expert_balancing=expert_balancing,
        redundant_experts=redundant_experts,
        overlap=overlap,
        expert_imbalance=expert_imbalance,
        stack=stack,
        spec_method=spec_method,
        spec_tokens=spec_tokens,
        acceptance_rate=acceptance_rate,
        draft_model=draft_model,
    )
    result = estimate(question)
    if json:
        print_json(result)
        return
    rows = [
        ("TTFT", f"{fmt(result['ttft_s'] * 1e3)} ms", f"prefill {result['prefill_bound']}-bound"),
        ("TPOT (mean)", f"{fmt(result['tpot_s'] * 1e3)} ms", f"decode {result['decode_bound']}-bound"),
        ("end to end", f"{fmt(result['e2e_s'])} s", ""),
        (
            "largest batch that fits",
            result["max_batch_that_fits"],
            f"KV capacity {result['kv_capacity_tokens']} tokens",
        ),
        ("weights per device", f"{fmt(result['weight_bytes_per_device'] / 1e9)} GB", ""),
        ("output tokens/s per device", fmt(result["output_tokens_per_s_per_device"], 4), "steady-state decode"),
        ("tokens/s per device (in+out)", fmt(result["total_tokens_per_s_per_device"], 4), "prefill + decode"),
        ("$/h per device", fmt(result["usd_per_h_per_device"], 4), result["provenance"]["cost"]),
        ("$ per 1M output tokens", fmt(result["usd_per_million_output_tokens_decode"], 4), "decode only"),
        ("$ per 1M tokens (in+out)", fmt(result["usd_per_million_tokens_end_to_end"], 4), "whole request"),
        *_energy_rows(result, batch),
        *_speculation_rows(result.get("speculation")),
    ]
    title = f"{result['model']} on {result['devices_per_replica']}x {result['device']} ({_shape(result)}{dtype}, batch {batch})"
    caption = f"performance: {result['provenance']['model']}"
    print_table(title, ("figure", "value", "note"), rows, caption=caption)


def _speculation_rows(spec: dict | None) -> list[tuple[str, str, str]]:
    if spec is None:
        return []
    return [("speculative decoding", f"{spec['method']}, {spec['tokens']} tokens proposed, "
             f"{spec['acceptance_rate']:.2f} accepted each", f"proposer {spec['proposer']}; acceptance: {spec['acceptance_source']}"),
            ("tokens per verification step", fmt(spec["tokens_per_step"]), "expected: (1 - a^(k+1)) / (1 - a)"),
            ("decode speed-up", f"{fmt(spec['decode_speedup'])}x",
             f"TPOT {fmt(spec['tpot_without_s'] * 1e3)} ms without speculation")]  # fmt: skip


def _energy_rows(result: dict, batch: int) -> list[tuple[str, str, str]]:
    """Facility watts per device and joules per token and per request, each with its derivation;
    'n/a' and the missing profile field where the profile has no power figures."""
    energy = result["provenance"]["energy"]
    devices = result["devices_per_replica"]
    if result["power"]["missing_profile_field"] is not None:
        return [(name, "n/a", energy) for name in ("power per device", "J per output token", "J per token (in+out)",
                                                     "J per request")]  # fmt: skip
    per = f"facility W x {devices} device{'s' if devices > 1 else ''}"
    return [
        ("power per device", f"{fmt(result['power_w_per_device'], 4)} W", energy),
        ("J per output token", fmt(result["joules_per_output_token"], 4), f"decode only: {per} / output tokens/s"),
        ("J per token (in+out)", fmt(result["joules_per_token"], 4), f"whole request: {per} / tokens/s"),
        ("J per request", fmt(result["joules_per_request"], 4), f"{per} x end to end / {batch} served at once"),
    ]


def _shape(result: dict) -> str:
    """The parallelism beyond tp x pp, when there is any, e.g. 'ep8 dp-attention8, '."""
    shape = result["parallelism"]
    parts = [f"ep{shape['ep']}"] if shape["ep"] > 1 else []
    parts += [f"dp-attention{shape['dp_attention']}"] if shape["dp_attention"] > 1 else []
    parts += [f"imbalance {shape['expert_imbalance']:.3g}"] if shape["ep"] > 1 else []
    parts += ["two-batch overlap"] if shape["overlap"] != "none" else []
    return ", ".join(parts) + ", " if parts else ""
