"""``hetsim bench``: measure the local CPU (or GPU) and write its calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hetsim.cli.output import JsonOption, fmt, print_json, print_table
from hetsim.cli.run import import_exec
from hetsim.errors import CalibrationError


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)


def bench_command(
    device: Annotated[str, typer.Option("--device", help="What to measure: cpu (this machine) or cuda")] = "cpu",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder, laid out like hardware_profiles/ (default: ./hetsim-bench)"),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny shapes: a smoke test in seconds, not a calibration")
    ] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", help="cuda only: the GPU's accelerator profile, e.g. h100-sxm")
    ] = None,
    profiles: Annotated[Path | None, typer.Option("--profiles", help="Folder of hardware profiles")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="Profile a serving engine instead: vllm")] = None,
    model: Annotated[str, typer.Option("--model", help="--engine: the catalog model it serves")] = "llama-3-8b",
    scale: Annotated[str, typer.Option("--scale", help="--engine: model size (auto: tiny on a CPU engine)")] = "auto",
    engine_python: Annotated[str | None, typer.Option("--engine-python", help="--engine: Python with vLLM (default: $HETSIM_ENGINE_PYTHON)")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="--engine: engines profiled side by side, as the plan co-locates them", min=1)] = 1,
    json: JsonOption = False,
) -> None:
    """Run microbenchmarks, fit efficiency curves and write calibration + raw rows (+ host profile).

    With --engine vllm: profile the serving engine itself on a synthetic grid (prefill lengths,
    decode batches) through its API, and write its overheads (--profile names the device it ran on)."""
    if engine is not None:
        _engine_command(engine, model, profile or "host-xeon-spr-2vcpu", scale, engine_python, device, out, json, replicas)
        return
    from hetsim.api.bench import bench  # loaded on use: starting the CLI stays light
    result = bench(device, out, quick, profile, profiles)
    if json:
        print_json(result)
        return
    rows = [
        (c["kind"], c["dtype"], c["rows"], f"{c['side']} / {c['axis']}", c["knots"], fmt(c["median_efficiency"]),
         f"{c['median_abs_error']:.1%}", f"{c['p90_abs_error']:.1%}")
        for c in result["curves"]
    ]
    caption = (f"launch overhead {fmt(result['launch_overhead_s'] * 1e6)} us; wrote {result['calibration']}"
               f"{'' if not result['device_profile'] else ' and ' + result['device_profile']}; "
               f"{result['provenance']['tool']}")
    print_table(f"calibration of {result['device']}", ("kind", "dtype", "points", "side / axis", "knots",
                "median efficiency", "fit median |err|", "fit p90 |err|"), rows, caption=caption)


def _engine_command(engine: str, model: str, profile: str, scale: str, engine_python: str | None, device: str,
                    out: Path | None, json: bool, replicas: int) -> None:  # fmt: skip
    if engine != "vllm":
        raise CalibrationError(f"--engine: expected vllm, got {engine!r}")
    import_exec("hetsim bench --engine")
    from hetsim.api.bench_engine import bench_engine

    console = Console(stderr=True)
    with console.status("profiling the engine") as status:
        result = bench_engine(model, profile, scale, engine_python, "cpu" if device == "cpu" else "cuda", out, replicas=replicas,
                              progress=lambda text: status.update(f"profiling the engine: {text}"))  # fmt: skip
    if json:
        print_json(result)
        return
    rows = [("prefill" if r["prefill"] else "decode", int(r["tokens"]), int(r["batch"]), fmt(r["measured_s"] * 1e3),
             fmt(r["kernels_s"] * 1e3), fmt(r["fitted_s"] * 1e3), f"{r['error']:+.1%}") for r in result["rows"]]  # fmt: skip
    caption = (f"{result['engine']} on {result['device']}, {result['model']}: step overhead "
               f"{fmt(result['step_overhead_s'] * 1e3)} ms + {fmt(result['sequence_overhead_s'] * 1e3)} ms per sequence, "
               f"request overhead {fmt(result['request_overhead_s'] * 1e3)} ms, prefill attention "
               f"{fmt(result['prefill_pair_s'] * 1e12)} ps per query-key pair and layer; fit median |error| "
               f"{result['fit']['median_abs_error']:.1%}, max {result['fit']['max_abs_error']:.1%}; wrote {result['written']}")
    print_table("engine calibration", ("step", "tokens", "batch", "measured ms", "kernels ms (model)", "fitted ms", "error"), rows,
                caption=caption)
