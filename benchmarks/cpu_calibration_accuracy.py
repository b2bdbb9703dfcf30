"""Acceptance benchmark of the CPU calibration: fit on some shapes, predict held-out ones.

    python benchmarks/cpu_calibration_accuracy.py                # measure now (about 2-3 min)
    python benchmarks/cpu_calibration_accuracy.py --from-csv     # the shipped measurements
    python benchmarks/cpu_calibration_accuracy.py --from-csv PATH --device-profile PROFILE.yaml

The rows (GEMMs via ``F.linear`` over Llama-3-8B projections at TP 1/2/4 x 12 token counts,
decode attention, memory streams, overhead probes) are split deterministically by shape:

* ``--split tp`` (default): every TP=2 projection shape (all token counts) and every batch-4
  attention shape is held out; the fit never sees those (K, N) pairs or that batch size.
* ``--split interleave``: every third GEMM/attention shape in sweep order is held out.

The calibration is fitted on the rest (``hetsim.perf.fit.fit_calibration``), and each
held-out row is priced by ``DevicePerf.op_time``, calibrated and uncalibrated (datasheet peaks
x documented default efficiencies). Target: median |error| <= 15% on >= 20 held-out GEMM/GEMV
shapes. Exits 0 when met, 1 when missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hetsim.errors import HetsimError
from hetsim.io.calibration import read_rows_csv
from hetsim.io.catalog import profiles_root
from hetsim.io.yamlfile import load_spec
from hetsim.perf.fit import error_summary, fit_calibration, predict_seconds, stream_bandwidth
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import CalibrationProvenance
from hetsim.specs.hardware import AcceleratorSpec

SHIPPED = "host-xeon-spr-2vcpu"
MEDIAN_TARGET, MIN_HELD_OUT = 0.15, 20
PREDICTED_KINDS = ("gemm", "attention_decode")  # GEMMs and batched decode GEMVs


def measure_now(quick: bool) -> tuple[list[dict[str, Any]], AcceleratorSpec]:
    """Run the sweep on this machine; the host profile takes its bandwidth from the rows."""
    from hetsim.bench import cpu
    from hetsim.bench.host import detect_host, host_profile

    host = detect_host()
    rows, _ = cpu.run_sweep(cpu.QUICK_SWEEP if quick else cpu.FULL_SWEEP, host, seed=0)
    bandwidth, how = stream_bandwidth(rows)
    return rows, AcceleratorSpec.model_validate(host_profile(host, bandwidth, how, "now"))


def load_shipped(csv_path: Path, profile_path: Path) -> tuple[list[dict[str, Any]], AcceleratorSpec]:
    return read_rows_csv(csv_path), load_spec(profile_path, AcceleratorSpec, HetsimError)


def is_held_out(row: dict[str, Any], index: int, split: str) -> bool:
    """Deterministic shape split; probes and memory streams always stay in the fit set."""
    if row["kind"] not in PREDICTED_KINDS or row.get("label") == "probe":
        return False
    if split == "interleave":
        return index % 3 == 1
    return ".tp2" in str(row.get("label")) or row.get("batch") == 4


def shape(row: dict[str, Any]) -> str:
    if row["kind"] == "gemm":
        return f"{row['dtype']} {row['label']:>11} M={int(row['m']):<5d} K={int(row['k']):<5d} N={int(row['n'])}"
    return f"{row['dtype']} attention b={int(row['batch'])} L={int(row['context'])}"


def evaluate(rows: list[dict[str, Any]], device: AcceleratorSpec, split: str) -> dict[str, Any]:
    held = [is_held_out(row, i, split) for i, row in enumerate(rows)]
    fit_rows = [r for r, h in zip(rows, held, strict=True) if not h]
    test_rows = [r for r, h in zip(rows, held, strict=True) if h]
    provenance = CalibrationProvenance(kind="measured", device_description=device.display_name, date="-",
                                       tool="benchmarks/cpu_calibration_accuracy.py (fit split only)")
    calibration = fit_calibration(fit_rows, DevicePerf(device), provenance)
    measured = np.array([float(r["seconds"]) for r in test_rows])
    predicted = {"calibrated": predict_seconds(test_rows, DevicePerf(device, calibration)),
                 "datasheet": predict_seconds(test_rows, DevicePerf(device))}
    summary = {model: {"all": error_summary(measured, p)} for model, p in predicted.items()}
    for model, p in predicted.items():
        for key in sorted({f"{r['kind']}/{r['dtype']}" for r in test_rows}):
            mask = np.array([f"{r['kind']}/{r['dtype']}" == key for r in test_rows])
            summary[model][key] = error_summary(measured[mask], p[mask])
    columns = zip(test_rows, measured, predicted["calibrated"], predicted["datasheet"], strict=True)
    per_shape = [{"shape": shape(r), "measured_s": m, "calibrated_s": c, "datasheet_s": d} for r, m, c, d in columns]
    return {"split": split, "fit_rows": len(fit_rows), "held_out": len(test_rows), "summary": summary,
            "per_shape": per_shape, "launch_overhead_s": calibration.launch_overhead.si}


def report(result: dict[str, Any]) -> None:
    print(f"{'held-out shape':52s} {'measured':>10s} {'calibrated':>11s} {'err':>7s} {'datasheet':>10s} {'err':>7s}")
    for s in result["per_shape"]:
        m, c, d = s["measured_s"], s["calibrated_s"], s["datasheet_s"]
        print(f"{s['shape']:52s} {m * 1e3:8.3f}ms {c * 1e3:9.3f}ms {c / m - 1:+7.1%} "
              f"{d * 1e3:8.3f}ms {d / m - 1:+7.1%}")
    print(f"\nsplit '{result['split']}': fitted on {result['fit_rows']} rows, {result['held_out']} held-out "
          f"GEMM/GEMV shapes; launch overhead {result['launch_overhead_s'] * 1e6:.1f} us")
    for model in ("calibrated", "datasheet"):
        for key, stats in result["summary"][model].items():
            print(f"  {model:10s} {key:22s} n={int(stats['count']):3d}  median |err| {stats['median_abs_error']:6.1%}  "
                  f"p90 |err| {stats['p90_abs_error']:6.1%}  median signed {stats['median_error']:+6.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-csv", nargs="?", const="shipped", help="rows CSV (default: the shipped one)")
    parser.add_argument("--device-profile", type=Path, help="host profile YAML (default: ../accelerators/ of the CSV)")
    parser.add_argument("--split", choices=("tp", "interleave"), default="tp")
    parser.add_argument("--quick", action="store_true", help="measure the quick sweep (smoke test only)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.from_csv:
        root = profiles_root()
        csv_path = root / "calibration" / f"{SHIPPED}.csv" if args.from_csv == "shipped" else Path(args.from_csv)
        # The profile sits where `hetsim bench` wrote it: <out>/accelerators/<device>.yaml.
        profile = args.device_profile or csv_path.parent.parent / "accelerators" / f"{csv_path.stem}.yaml"
        rows, device = load_shipped(csv_path, profile)
    else:
        rows, device = measure_now(args.quick)
    result = evaluate(rows, device, args.split)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    stats = result["summary"]["calibrated"]["all"]
    met = result["held_out"] >= MIN_HELD_OUT and stats["median_abs_error"] <= MEDIAN_TARGET
    print(f"\ntarget: median |err| <= {MEDIAN_TARGET:.0%} on >= {MIN_HELD_OUT} held-out shapes: "
          f"{'MET' if met else 'MISSED'} ({stats['median_abs_error']:.1%} on {result['held_out']})")
    return 0 if met else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HetsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
