"""``hetsim bench``: measure this machine's CPU (or its GPU), fit a calibration, report the fit."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from hetsim.errors import CalibrationError, ProfileError
from hetsim.io.calibration import load_calibration_file, read_rows_csv
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.io.yamlfile import load_spec
from hetsim.perf.fit import fit_report
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.hardware import AcceleratorSpec

DEFAULT_OUT = Path("hetsim-bench")
"""Where results go without ``--out``; ``--out hardware_profiles`` installs them."""
DEVICES = ("cpu", "cuda")


def bench(
    device: str = "cpu", out_dir: Path | None = None, quick: bool = False, profile: str | None = None,
    profiles: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark of ``device`` ('cpu' or 'cuda'), write its files, summarize the fit.

    Args:
        device: 'cpu' measures the local CPU and writes a host device profile too; 'cuda'
            measures the GPU present and needs ``profile`` (its accelerator profile name).
        out_dir: folder laid out like ``hardware_profiles/`` (default ``./hetsim-bench``).
        quick: tiny shapes, for smoke tests (seconds, not minutes).
        profile: the accelerator profile a GPU calibration is for, e.g. 'h100-sxm'.
        profiles: hardware profile folder to find ``profile`` in (default: the shipped one).

    Raises:
        CalibrationError: unknown device, no CUDA benchmark or device, or nothing to fit.
    """
    out = out_dir or DEFAULT_OUT
    if device == "cpu":
        # Imported by name, lazily: the bench package needs the optional torch extra, and
        # importing the API must not (the import-linter contract forbids api -> torch chains).
        cpu = importlib.import_module("hetsim.bench.cpu")
        calibration_path, device_path = cpu.run_cpu_bench(out, quick=quick, seed=0)
        accelerator = load_spec(device_path, AcceleratorSpec, ProfileError)
    elif device == "cuda":
        calibration_path, accelerator = _run_gpu(out, quick, profile, profiles)
        device_path = profiles_root(profiles) / "accelerators" / f"{accelerator.name}.yaml"
    else:
        raise CalibrationError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
    return summarize(calibration_path, accelerator, device_path)


def _run_gpu(out: Path, quick: bool, profile: str | None, profiles: Path | None) -> tuple[Path, AcceleratorSpec]:
    if importlib.util.find_spec("hetsim.bench.gpu") is None:
        raise CalibrationError("no CUDA benchmark in this installation (hetsim.bench.gpu is missing)")
    if profile is None:
        raise CalibrationError("profile: --device cuda needs --profile NAME, the accelerator profile of the GPU "
                               "present (e.g. h100-sxm), got none")
    accelerator = load_catalog("datasheet", profiles).accelerator(profile)
    gpu = importlib.import_module("hetsim.bench.gpu")
    return gpu.run_gpu_bench(accelerator.name, out, quick, accelerator=accelerator), accelerator


def summarize(calibration_path: Path, accelerator: AcceleratorSpec, device_path: Path | None = None) -> dict[str, Any]:
    """What a calibration file says, with per-curve fit quality on its own measurements."""
    calibration = load_calibration_file(calibration_path)
    rows_path = calibration_path.with_suffix(".csv")
    rows = [r for r in read_rows_csv(rows_path) if r.get("seconds")] if rows_path.is_file() else []
    report = fit_report(rows, DevicePerf(accelerator, calibration)) if rows else []
    return {
        "device": calibration.device,
        "calibration": str(calibration_path),
        "rows_csv": str(rows_path) if rows_path.is_file() else None,
        "device_profile": str(device_path) if device_path else None,
        "launch_overhead_s": calibration.launch_overhead.si,
        "provenance": calibration.provenance.model_dump(mode="json"),
        "curves": report,
        "fit_summary": calibration.fit_summary,
    }
