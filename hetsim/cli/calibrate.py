"""``hetsim calibrate public``: fit kernel models to the shipped public measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hetsim.cli.output import JsonOption, print_json, print_table

app = typer.Typer(help="Calibrate the performance model against measurements.", no_args_is_help=True)


@app.command("public")
def public_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder laid out like hardware_profiles/ to write calibration/ into "
                     "(default: print only; --out hardware_profiles installs them)"),
    ] = None,
    device: Annotated[list[str] | None, typer.Option("--device", help="Only these devices (repeatable)")] = None,
    json: JsonOption = False,
) -> None:
    """Fit each covered device's kernel model to the public measurement sets, score the datasheet
    defaults and the calibrated model on held-out rows, and print the error table."""
    from hetsim.api.calibrate_public import fit_public, write_calibrations

    fit = fit_public(devices=device)
    table = fit.table()
    written = [str(p) for p in write_calibrations(fit, out)] if out is not None else []
    if json:
        print_json({"table": table.to_dict(orient="records"), "written": written})
        return
    print_table(
        "Kernel model vs public measurements (|error| median / p90, signed bias; calibrated = held out)",
        ["source", "device", "stack", "op class", "rows", "default med", "default p90", "default bias",
         "calibrated med", "calibrated p90", "calibrated bias"],
        [
            [r.source, r.device, r.stack, r.op_class, r.rows, *(f"{v:+.1%}" if "bias" in k else f"{v:.1%}"
             for k, v in zip(_METRICS, (getattr(r, m) for m in _METRICS), strict=True))]
            for r in table.itertuples(index=False)
        ],
        caption="wrote " + ", ".join(written) if written else "nothing written (give --out to install the calibrations)",
    )


_METRICS = (
    "default_median_abs", "default_p90_abs", "default_bias", "calibrated_median_abs", "calibrated_p90_abs", "calibrated_bias",
)
