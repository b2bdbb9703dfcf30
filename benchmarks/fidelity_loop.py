"""Benchmark: calibrate the serving engine, then execute and simulate the shipped scenario at a
light load and near saturation, and print the simulator's errors (metric x percentile x load).

CPU (this project's machine; vLLM's CPU build named by HETSIM_ENGINE_PYTHON, see the README):
    python benchmarks/fidelity_loop.py
GPU node (vLLM's CUDA build; one GPU; the plan is the shipped one, with the device named):
    python benchmarks/fidelity_loop.py --engine-device cuda --device h100-sxm --scale full
The CPU run takes about 5 minutes (calibration 1 min, each load about 70 s); on one GPU the same
calls finish well within 10 minutes. ``--calibration FILE`` (twice: alone and side by side) skips
the calibration step.
Reports land in reports/fidelity-<load>/ (index.html, fidelity.csv).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from hetsim.api.bench_engine import bench_engine
from hetsim.api.fidelity import FidelityRequest, fidelity
from hetsim.api.run import RunRequest

REPO = Path(__file__).resolve().parents[1]
LOADS = {"light": REPO / "scenarios/exec/light.yaml", "heavy": REPO / "scenarios/exec/heavy.yaml"}


def _plan_for(device: str, folder: Path) -> Path | None:
    """The shipped plan with its pools moved to ``device`` (None: keep the shipped CPU plan)."""
    if device == "host-xeon-spr-2vcpu":
        return None
    plan = yaml.safe_load((REPO / "scenarios/exec/plan.yaml").read_text())
    for pool in plan["pools"]:
        pool["device"] = device
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def screenshot(page: Path, png: Path) -> bool:
    """A headless-Chromium picture of the report (what a reader sees first); False without Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             f"--screenshot={png}", "--window-size=1280,2200", page.resolve().as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    return done.returncode == 0 and png.is_file()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="host-xeon-spr-2vcpu", help="hardware profile of the machine the engines run on")
    parser.add_argument("--engine-device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--scale", default="auto", help="model size: auto (tiny on a CPU engine), full, small, tiny")
    parser.add_argument("--calibration", type=Path, action="append", help="engine calibration(s) to use instead of measuring (repeatable)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of session arrivals per load")
    args = parser.parse_args()
    if not os.environ.get("HETSIM_ENGINE_PYTHON"):
        print("HETSIM_ENGINE_PYTHON is not set: install vLLM (README, 'Executing a plan')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        calibrations = tuple(args.calibration or ())
        if not calibrations:
            for replicas in (1, 2):  # alone, and beside a saturated neighbour, as the plan co-locates two
                result = bench_engine("llama-3-8b", args.device, args.scale, None, args.engine_device, Path(scratch) / "cal", replicas=replicas)
                calibrations += (Path(result["written"]),)
                print(f"engine calibration, {replicas} side by side: step {result['step_overhead_s'] * 1e3:.2f} ms + "
                      f"{result['sequence_overhead_s'] * 1e3:.3f} ms/seq, request {result['request_overhead_s'] * 1e3:.2f} ms, "
                      f"prefill {result['prefill_pair_s'] * 1e12:.0f} ps/pair; fit median |error| {result['fit']['median_abs_error']:.1%}")  # fmt: skip
        plan = _plan_for(args.device, Path(scratch))
        tables = {}
        for load, scenario in LOADS.items():
            request = RunRequest(scenario=scenario, plan=plan, duration_s=args.duration, scale=args.scale, engine_device=args.engine_device)
            report = REPO / "reports" / f"fidelity-{load}"
            summary = fidelity(FidelityRequest(request, report, calibrations))
            tables[load] = {(r["metric"], r["percentile"]): r for r in summary["table"] if r["pool"] == "all"}
            print(f"\n[{load}] {summary['verdict']}")
            shot = report / "screenshot.png"
            print(f"report {report / 'index.html'}; " + (f"screenshot {shot}" if screenshot(report / "index.html", shot) else "no Chromium: no screenshot"))
    print("\nmetric       pct   " + "".join(f"{load + ' meas':>12}{load + ' sim':>12}{'error':>8}" for load in LOADS))
    for metric in ("ttft_s", "tbt_mean_s", "tbt_max_s", "e2e_s"):
        for pct in ("p50", "p90", "p99"):
            cells = "".join(
                f"{tables[load][metric, pct]['measured'] * 1e3:10.2f}ms{tables[load][metric, pct]['simulated'] * 1e3:10.2f}ms"
                f"{tables[load][metric, pct]['rel_error']:+8.1%}" for load in LOADS
            )
            print(f"{metric:<12} {pct:<5}{cells}")
    for load in LOADS:
        headline = [abs(tables[load][m, p]["rel_error"]) for m in ("ttft_s", "tbt_mean_s", "e2e_s") for p in ("p50",)]
        tail = [abs(tables[load][m, p]["rel_error"]) for m in ("ttft_s", "tbt_mean_s", "e2e_s") for p in ("p99",)]
        print(f"{load}: median |error| of TTFT, TBT, E2E {sorted(headline)[1]:.1%} at p50 (goal 10%), {sorted(tail)[1]:.1%} at p99 (goal 20%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
