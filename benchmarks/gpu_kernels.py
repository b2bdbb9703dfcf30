"""Acceptance benchmark of the Triton kernels and the GPU calibration (needs one CUDA GPU).

    python benchmarks/gpu_kernels.py [--device h100-sxm] [--sweep quick|full] [--json out.json]

Checks, and prints, the issue's acceptance figures:

1. Triton GEMM throughput as a fraction of cuBLAS on prefill-sized bf16 GEMMs
   (M 2048-8192, Llama-3-8B/70B projections at TP 1 and 8); target geometric mean >= 0.85.
2. Paged decode attention's achieved bandwidth at large batch (128-256 sequences, Llama-3-8B
   heads) as a fraction of the datasheet HBM bandwidth (3.35 TB/s H100 SXM, 4.8 TB/s H200);
   target median >= 0.70.
3. Held-out prediction error: the calibration of the device (the shipped file if there is
   one, else fitted now on the sweep's fit split) predicts the held-out problems' times;
   target median |error| <= 10%, p90 <= 20%. The uncalibrated datasheet roofline's error on
   the same problems is printed beside it.

Exits 0 when every target is met, 1 when one is missed, 2 when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from hetsim.errors import HetsimError

REPO = Path(__file__).resolve().parents[1]
GEMM_TARGET, BANDWIDTH_TARGET, MEDIAN_TARGET, P90_TARGET = 0.85, 0.70, 0.10, 0.20
GPU_PROFILES = (("h200", "h200-sxm"), ("h100 nvl", "h100-nvl"), ("h100 pcie", "h100-pcie"), ("h100", "h100-sxm"))


def profile_for(gpu_name: str) -> str:
    """Catalog name of the GPU present, from torch's device name."""
    lowered = gpu_name.lower()
    for needle, name in GPU_PROFILES:
        if needle in lowered:
            return name
    raise HetsimError(f"no profile known for GPU {gpu_name!r}: pass --device with its catalog name")


def gemm_vs_cublas(kernels: Any, timer: Any) -> dict[str, Any]:
    from hetsim.bench.gpu import measure_problem

    models = ("llama-3-8b", "llama-3-70b")
    problems = kernels.sweeps.gemm_problems("gemm", (2048, 4096, 8192), ("bf16",), models, (1, 8))
    ratios = {}
    for problem in problems:
        rows = {row["impl"]: row for row in measure_problem(problem, kernels, timer, quick=False)}
        if rows["triton"]["seconds"] > 0 and rows["torch"]["seconds"] > 0:
            ratios[problem.id] = rows["torch"]["seconds"] / rows["triton"]["seconds"]
            print(f"  {problem.id:40s} triton {rows['triton']['achieved_flops_per_s'] / 1e12:7.1f} TFLOP/s  "
                  f"cuBLAS {rows['torch']['achieved_flops_per_s'] / 1e12:7.1f}  ratio {ratios[problem.id]:.3f}")
    geomean = math.exp(statistics.fmean(math.log(r) for r in ratios.values()))
    worst = min(ratios, key=ratios.__getitem__)
    return {"geomean_ratio": geomean, "worst": worst, "worst_ratio": ratios[worst], "ratios": ratios,
            "pass": geomean >= GEMM_TARGET}


def decode_bandwidth(kernels: Any, timer: Any, datasheet_bytes_per_s: float) -> dict[str, Any]:
    from hetsim.bench.gpu import measure_problem

    problems = kernels.sweeps.decode_attention_problems((128, 256), (2048, 4096, 8192), ("bf16",), ("llama-3-8b",),
                                                        (1,))
    fractions = {}
    for problem in problems:
        rows = {row["impl"]: row for row in measure_problem(problem, kernels, timer, quick=False)}
        achieved = rows["triton"]["achieved_bytes_per_s"]
        if achieved > 0:
            fractions[problem.id] = achieved / datasheet_bytes_per_s
            print(f"  {problem.id:60s} triton {achieved / 1e12:5.2f} TB/s ({fractions[problem.id]:.0%})  "
                  f"SDPA (unpaged) {rows['torch']['achieved_bytes_per_s'] / 1e12:5.2f} TB/s")
    median = statistics.median(fractions.values())
    return {"median_fraction": median, "fractions": fractions, "datasheet_bytes_per_s": datasheet_bytes_per_s,
            "pass": median >= BANDWIDTH_TARGET}


def held_out_errors(kernels: Any, timer: Any, device: Any, quick: bool) -> dict[str, Any]:
    """Errors on held-out problems, with the shipped calibration or one fitted now."""
    import yaml

    from hetsim.bench.gpu import best_rows, measure_problem, run_gpu_bench
    from hetsim.bench.validation import compare_models
    from hetsim.io.calibration import load_calibration
    from hetsim.perf.roofline import DevicePerf

    calibration = load_calibration(device.name)
    if calibration is None:
        sweep = "quick" if quick else "full"
        print(f"  no shipped calibration for {device.name}: running the {sweep} sweep to fit one")
        out = Path(tempfile.mkdtemp(prefix="hetsim-gpu-"))
        path = run_gpu_bench(device.name, out, quick, accelerator=device)
        report = yaml.safe_load(path.with_suffix(".validation.yaml").read_text(encoding="utf-8"))
        source = f"fitted now ({path})"
    else:
        has_fp8 = kernels.gemm.has_fp8("cuda")
        problems = kernels.sweeps.quick_sweep(has_fp8) if quick else kernels.sweeps.full_sweep(has_fp8)
        _, held_out = kernels.sweeps.split(problems)
        rows = [row for problem in held_out for row in measure_problem(problem, kernels, timer, quick)]
        report = compare_models(best_rows(rows), DevicePerf(device, calibration))
        source = f"shipped hardware_profiles/calibration/{device.name}.yaml ({calibration.provenance.date})"
    calibrated, datasheet = report["calibrated"]["all"], report["datasheet"]["all"]
    for key, stats in report["calibrated"].items():
        sheet = report["datasheet"][key]
        print(f"  {key:26s} n={stats['count']:4.0f}  calibrated median {stats['median_abs_error']:6.1%} "
              f"p90 {stats['p90_abs_error']:6.1%}   datasheet median {sheet['median_abs_error']:6.1%} "
              f"p90 {sheet['p90_abs_error']:6.1%} (signed median {sheet['median_error']:+.1%})")
    passed = calibrated["median_abs_error"] <= MEDIAN_TARGET and calibrated["p90_abs_error"] <= P90_TARGET
    return {"calibration": source, "calibrated": calibrated, "datasheet": datasheet, "by_kind": report, "pass": passed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="catalog name of the GPU (default: from the GPU's name)")
    parser.add_argument("--sweep", choices=("quick", "full"), default="quick", help="problems for the held-out check")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        from hetsim.bench.gpu import CudaTimer, require_cuda
        from hetsim.bench.gpu_ops import load_kernels
        from hetsim.io.catalog import load_catalog

        torch = require_cuda()
        gpu_name = torch.cuda.get_device_name(0)
        device = load_catalog().accelerators[args.device or profile_for(gpu_name)]
    except HetsimError as exc:
        print(f"gpu_kernels: {exc}", file=sys.stderr)
        return 2
    kernels, timer = load_kernels(), CudaTimer()
    print(f"{gpu_name} as profile {device.name} (datasheet {device.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s)")
    print("1. Triton GEMM vs cuBLAS, prefill bf16:")
    gemm = gemm_vs_cublas(kernels, timer)
    print(f"   geomean {gemm['geomean_ratio']:.3f} (target >= {GEMM_TARGET}); worst {gemm['worst']} "
          f"{gemm['worst_ratio']:.3f}")
    print("2. Paged decode attention bandwidth, large batch:")
    decode = decode_bandwidth(kernels, timer, device.memory_bandwidth_bytes_per_s)
    print(f"   median {decode['median_fraction']:.1%} of datasheet (target >= {BANDWIDTH_TARGET:.0%})")
    print("3. Held-out kernel-time predictions:")
    errors = held_out_errors(kernels, timer, device, args.sweep == "quick")
    print(f"   calibrated median {errors['calibrated']['median_abs_error']:.1%} (target <= {MEDIAN_TARGET:.0%}), "
          f"p90 {errors['calibrated']['p90_abs_error']:.1%} (target <= {P90_TARGET:.0%}); datasheet roofline median "
          f"{errors['datasheet']['median_abs_error']:.1%}, p90 {errors['datasheet']['p90_abs_error']:.1%}")
    results = {"gpu": gpu_name, "device": device.name, "gemm": gemm, "decode": decode, "held_out": errors}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    verdict = all(part["pass"] for part in (gemm, decode, errors))
    missed = [key for key in ("gemm", "decode", "held_out") if not results[key]["pass"]]
    print("PASS" if verdict else "FAIL: " + ", ".join(missed))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
