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
    batch: Annotated[int, typer.Option("--batch", help="Requests served together")] = 1,
    profile_set: Annotated[str, typer.Option("--set", help="Hardware profile set: datasheet or paper")] = "datasheet",
    tco: Annotated[str, typer.Option("--tco", help="TCO preset: paper, paper-printed, enterprise")] = "paper",
    cost_basis: Annotated[
        str | None, typer.Option("--cost-basis", help="owned or rented (default: owned when a price is known)")
    ] = None,
    profiles: Annotated[Path | None, typer.Option("--profiles", help="Folder of hardware profiles")] = None,
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
        batch=batch,
        profile_set=profile_set,
        tco_preset=tco,
        cost_basis=cost_basis,
        profiles=profiles,
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
    ]
    title = f"{result['model']} on {result['devices_per_replica']}x {result['device']} ({dtype}, batch {batch})"
    print_table(title, ("figure", "value", "note"), rows, caption=f"performance: {result['provenance']['performance']}")
