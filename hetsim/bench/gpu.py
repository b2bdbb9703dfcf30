"""GPU microbenchmarks: Triton kernels vs torch (cuBLAS, SDPA) on LLM-shaped problems.

``run_gpu_bench`` times every problem of ``kernels.sweeps`` on the current CUDA device with
CUDA events (warm-up, an L2 flush before every repetition, median of the repetitions), writes
one row per (problem, implementation), fits the device's efficiency curves on the fit split
and checks them on the held-out split. torch and triton are imported lazily (``bench`` extra).

Row format (``ROW_COLUMNS``; what ``hetsim.perf.fit.fit_calibration`` receives):
``kind`` (the CurveKind: gemm, gemv, attention_decode, attention_prefill, memory, collective),
``dtype`` (bf16, fp16, fp8), ``flops`` and ``bytes`` (the problem's work, ``kernels.work``),
``seconds`` (median GPU time of one call), plus ``problem_id``, ``op``, ``impl`` (triton,
torch, or ``best:<impl>`` for the faster of the two), ``variant`` (tuning label), ``shape``,
``achieved_flops_per_s``, ``achieved_bytes_per_s``, ``seconds_min``, ``reps``,
``max_rel_diff`` (Triton vs torch output), ``is_held_out``, ``source`` and ``error``.
The fit sees one ``best:`` row per fit-split problem: the simulator prices what the fastest
available kernel achieves.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hetsim import __version__
from hetsim.bench.files import write_rows_csv
from hetsim.bench.gpu_ops import build_candidates, load_kernels
from hetsim.bench.validation import compare_models
from hetsim.errors import CalibrationError
from hetsim.perf.fit import fit_calibration
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec
from hetsim.specs.hardware import AcceleratorSpec

MAX_REL_DIFF = 0.05
"""Largest |triton - torch| / max|torch| accepted; beyond it the Triton row is marked an error."""
ROW_COLUMNS = ("problem_id", "kind", "op", "impl", "variant", "dtype", "shape", "flops", "bytes", "seconds",
               "seconds_min", "reps", "achieved_flops_per_s", "achieved_bytes_per_s", "max_rel_diff", "is_held_out",
               "source", "error")


@dataclass(frozen=True)
class CudaTimer:
    """CUDA-event timing of one callable.

    Attributes:
        warmup: untimed calls first (compilation, autotuning caches, clocks ramping up).
        reps: timed calls; the result is their median.
        tune_reps: timed calls per variant when choosing among tuning variants.
        flush_bytes: a buffer zeroed before every timed call so no operand is left in L2
            (50 MB on H100/H200; 256 MiB leaves margin for larger caches).
    """

    warmup: int = 5
    reps: int = 25
    tune_reps: int = 5
    flush_bytes: int = 256 * 2**20

    def time(self, fn: Callable[[], Any], reps: int | None = None) -> list[float]:
        """Seconds of each timed call of ``fn`` (GPU time between two events)."""
        import torch

        flush = _flush_buffer(self.flush_bytes)
        for _ in range(self.warmup):
            fn()
        count = reps or self.reps
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
        torch.cuda.synchronize()
        for start, end in zip(starts, ends, strict=True):
            flush.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) * 1e-3 for start, end in zip(starts, ends, strict=True)]


_FLUSH: dict[int, Any] = {}


def _flush_buffer(nbytes: int) -> Any:
    import torch

    if nbytes not in _FLUSH:
        _FLUSH[nbytes] = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    return _FLUSH[nbytes]


def require_cuda() -> Any:
    """The torch module, once a usable CUDA device is known to be present."""
    try:
        import torch
    except ImportError:
        raise CalibrationError("no CUDA device: torch is not installed (pip install 'hetsim[bench]')") from None
    if not torch.cuda.is_available():
        raise CalibrationError(f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
                               f"built for CUDA {torch.version.cuda or 'none'}); run on a machine with an NVIDIA GPU")
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise CalibrationError("TRITON_INTERPRET=1 is set: unset it so the Triton kernels compile for the GPU")
    return torch


def gpu_provenance(timer: CudaTimer, quick: bool, elapsed_s: float, problems: int) -> CalibrationProvenance:
    """GPU, driver, library versions and date of this run."""
    torch = require_cuda()
    import triton

    props = torch.cuda.get_device_properties(0)
    smi = _nvidia_smi()
    versions = {"hetsim": __version__, "torch": torch.__version__, "triton": triton.__version__,
                "cuda_runtime": str(torch.version.cuda), "cudnn": str(torch.backends.cudnn.version()),
                "python": platform.python_version(), "driver": smi.get("driver_version", "unknown"),
                "compute_capability": f"{props.major}.{props.minor}"}
    notes = (f"{problems} problems in {elapsed_s:.0f} s ({'quick' if quick else 'full'} sweep); CUDA events, "
             f"L2 flushed before each call, median of {timer.reps} calls after {timer.warmup} warm-up; "
             f"{props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
             f"clocks {smi.get('clocks.max.sm', '?')} MHz SM max, "
             f"power limit {smi.get('power.limit', '?')}")
    return CalibrationProvenance(
        kind="measured", device_description=torch.cuda.get_device_name(0), host=platform.node(),
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tool=f"hetsim bench {__version__} (torch {torch.__version__}, triton {triton.__version__})",
        versions=versions, notes=notes,
    )


def _nvidia_smi() -> dict[str, str]:
    fields = ("driver_version", "clocks.max.sm", "power.limit")
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        result = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in result.stdout.splitlines()[0].split(",")] if result.stdout.strip() else []
    return dict(zip(fields, values, strict=False))


def measure_problem(problem: Any, kernels: Any, timer: CudaTimer, quick: bool) -> list[dict[str, Any]]:
    """Rows for the Triton kernel and the torch baseline of one problem (failures as rows)."""
    failures = _failures()
    rows, outputs = [], {}
    try:
        candidates = build_candidates(problem, kernels, quick)
    except failures as exc:  # e.g. out of memory for the largest KV caches
        import torch

        torch.cuda.empty_cache()
        return [_row(problem, impl, "", [], _describe(exc)) for impl in ("triton", "torch")]
    for impl, variants in candidates.items():
        try:
            variant = _fastest(variants, timer, failures)
            outputs[impl] = variants[variant]()
            rows.append(_row(problem, impl, variant, timer.time(variants[variant]), ""))
        except failures as exc:  # one unsupported shape must not end a long sweep
            rows.append(_row(problem, impl, "", [], _describe(exc)))
    if len(outputs) == 2:
        diff = _rel_diff(outputs["triton"], outputs["torch"])
        for row in rows:
            row["max_rel_diff"] = diff
            if row["impl"] == "triton" and not diff <= MAX_REL_DIFF:  # a wrong kernel must not calibrate
                row["error"] = f"output differs from torch by {diff:.3g} of its largest value"
    del candidates, outputs
    return rows


def _failures() -> tuple[type[BaseException], ...]:
    """What a kernel launch raises for an unsupported shape or config (OOM is a RuntimeError)."""
    from triton.errors import TritonError

    return (RuntimeError, ValueError, TritonError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _fastest(variants: dict[str, Callable[[], Any]], timer: CudaTimer, failures: tuple[type[BaseException], ...],
             ) -> str:
    """The label of the fastest variant; variants that fail (e.g. too much shared memory) are skipped."""
    import statistics

    if len(variants) == 1:
        return next(iter(variants))
    times: dict[str, float] = {}
    last: BaseException | None = None
    for label, fn in variants.items():
        try:
            times[label] = statistics.median(timer.time(fn, timer.tune_reps))
        except failures as exc:
            last = exc
    if not times:
        raise last or RuntimeError("no variant ran")
    return min(times, key=times.__getitem__)


def _rel_diff(a: Any, b: Any) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _row(problem: Any, impl: str, variant: str, samples: list[float], error: str) -> dict[str, Any]:
    import statistics

    seconds = statistics.median(samples) if samples else float("nan")
    return {"problem_id": problem.id, "kind": problem.kind, "op": problem.op, "impl": impl, "variant": variant,
            "dtype": problem.dtype, "shape": " ".join(f"{k}={v}" for k, v in problem.shape),
            "flops": problem.flops, "bytes": problem.bytes, "seconds": seconds,
            "seconds_min": min(samples) if samples else float("nan"), "reps": len(samples),
            "achieved_flops_per_s": problem.flops / seconds if samples else float("nan"),
            "achieved_bytes_per_s": problem.bytes / seconds if samples else float("nan"),
            "max_rel_diff": None, "is_held_out": problem.is_held_out, "source": problem.source, "error": error}


def best_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per problem, the fastest successful implementation's row, with ``impl`` = ``best:<impl>``."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["error"] or not row["seconds"] > 0:
            continue
        seen = best.get(row["problem_id"])
        if seen is None or row["seconds"] < seen["seconds"]:
            best[row["problem_id"]] = row
    return [{**row, "impl": f"best:{row['impl']}"} for row in best.values()]


def fit_device(rows: Sequence[dict[str, Any]], accelerator: AcceleratorSpec,
               provenance: CalibrationProvenance) -> tuple[CalibrationSpec, dict[str, Any]]:
    """Fit on the fit split's best rows; validate on the held-out split's best rows.

    The one place the GPU side calls the fitter. Returns the calibration (its ``fit_summary``
    extended with the held-out errors) and the full validation report.
    """
    best = best_rows(rows)
    fit_rows = [row for row in best if not row["is_held_out"]]
    held_out = [row for row in best if row["is_held_out"]]
    if not fit_rows:
        raise CalibrationError("GPU benchmark: no successful measurement in the fit split; nothing to fit")
    calibration = fit_calibration(fit_rows, DevicePerf(accelerator), provenance)
    report = compare_models(held_out, DevicePerf(accelerator, calibration))
    summary = {**calibration.fit_summary}
    for model in ("calibrated", "datasheet"):
        for stat in ("median_abs_error", "p90_abs_error"):
            summary[f"heldout_{model}_{stat}"] = round(report[model]["all"][stat], 4)
    summary["heldout_count"] = report["calibrated"]["all"]["count"]
    return calibration.model_copy(update={"fit_summary": summary}), report


def check_device_matches(accelerator: AcceleratorSpec, gpu_name: str) -> None:
    """Refuse to calibrate profile ``h100-sxm`` on, say, an A100."""
    family = accelerator.name.split("-")[0].lower()
    if family not in gpu_name.lower().replace(" ", ""):
        raise CalibrationError(f"device: profile {accelerator.name!r} does not match the GPU present ({gpu_name!r}); "
                               f"pass the profile of this GPU")


def run_gpu_bench(device_name: str, out_dir: Path, quick: bool, *, accelerator: AcceleratorSpec) -> Path:
    """Measure the current GPU, fit the calibration of ``device_name`` and write it.

    Writes ``out_dir/calibration/<device>.yaml`` (curves, provenance, held-out errors in
    ``fit_summary``), ``<device>.csv`` (every row) and ``<device>.validation.yaml``. The
    caller (``hetsim.api``) loads ``accelerator`` from the catalog: ``bench`` does no profile
    I/O of its own.

    Raises:
        CalibrationError: no CUDA device, a profile that does not match the GPU, or no data.
    """
    import time

    torch = require_cuda()
    if accelerator.name != device_name:
        raise CalibrationError(f"device: expected the profile of {device_name!r}, got {accelerator.name!r}")
    check_device_matches(accelerator, torch.cuda.get_device_name(0))
    kernels = load_kernels()
    has_fp8 = kernels.gemm.has_fp8("cuda")
    problems = kernels.sweeps.quick_sweep(has_fp8) if quick else kernels.sweeps.full_sweep(has_fp8)
    timer = CudaTimer(reps=10, tune_reps=3) if quick else CudaTimer()
    started = time.perf_counter()
    torch.manual_seed(0)
    rows = [row for problem in problems for row in measure_problem(problem, kernels, timer, quick)]
    rows += measure_collectives(quick)
    provenance = gpu_provenance(timer, quick, time.perf_counter() - started, len(problems))
    calibration, report = fit_device(rows, accelerator, provenance)
    return write_gpu_outputs(out_dir, calibration, rows, report)


def measure_collectives(quick: bool) -> list[dict[str, Any]]:
    """All-reduce rows when more than one GPU is visible; none otherwise."""
    import torch

    if torch.cuda.device_count() < 2:
        return []
    from hetsim.bench.gpu_collectives import all_reduce_rows

    return all_reduce_rows(torch.cuda.device_count(), quick)


def write_gpu_outputs(out_dir: Path, calibration: CalibrationSpec, rows: Sequence[dict[str, Any]],
                      report: dict[str, Any]) -> Path:
    """Write the calibration YAML, the raw rows CSV and the validation report; returns the YAML."""
    path = out_dir / "calibration" / f"{calibration.device}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    dump = calibration.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(dump, sort_keys=False, width=120), encoding="utf-8")
    write_rows_csv(path.with_suffix(".csv"), rows, ROW_COLUMNS)
    path.with_suffix(".validation.yaml").write_text(yaml.safe_dump(report, sort_keys=False), encoding="utf-8")
    return path
