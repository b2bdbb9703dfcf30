"""``hetsim bench``: measure the local CPU (or GPU) and write its calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.api.bench import bench
from hetsim.cli.output import JsonOption, fmt, print_json, print_table


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
    json: JsonOption = False,
) -> None:
    """Run microbenchmarks, fit efficiency curves and write calibration + raw rows (+ host profile)."""
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
