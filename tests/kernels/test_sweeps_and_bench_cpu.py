"""The parts of the GPU benchmark that need no GPU: sweep data, row handling, fit plumbing,
held-out validation math, and the error raised where CUDA is absent."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hetsim.bench import gpu
from hetsim.bench.validation import compare_models, prediction_errors
from hetsim.errors import CalibrationError
from hetsim.perf.kernels import DEFAULT_KERNELS
from hetsim.perf.roofline import DevicePerf, OpCost
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec, CurveKind, EfficiencyCurve
from hetsim.specs.hardware import DType
from kernels import sweeps, work

REPO = Path(__file__).resolve().parents[2]


def test_sweep_module_is_plain_data_without_torch() -> None:
    code = "import sys, kernels.sweeps; sys.exit('torch' in sys.modules or 'triton' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_full_sweep_covers_every_curve_with_unique_positive_problems() -> None:
    problems = sweeps.full_sweep()
    assert len({p.id for p in problems}) == len(problems)
    assert {p.kind for p in problems} == {"gemm", "gemv", "attention_decode", "attention_prefill", "memory"}
    assert all(CurveKind(p.kind) and p.flops > 0 and p.bytes > 0 for p in problems)
    assert all(p.bytes <= sweeps.MAX_KV_BYTES * 1.01 for p in problems if p.op == "decode_attention")


def test_held_out_split_is_deterministic_about_a_fifth_and_leaves_every_curve_fittable() -> None:
    problems = sweeps.full_sweep()
    fit, held_out = sweeps.split(problems)
    assert 0.15 < len(held_out) / len(problems) < 0.25
    assert sweeps.is_held_out("gemm/bf16/m512-n6144-k4096") is sweeps.is_held_out("gemm/bf16/m512-n6144-k4096")
    for key in {(p.kind, p.dtype) for p in problems}:
        assert sum((p.kind, p.dtype) == key for p in fit) >= 3, key
        assert any((p.kind, p.dtype) == key for p in held_out), key


def test_tensor_parallel_shapes_follow_megatron_sharding() -> None:
    ids = {p.id: p for p in sweeps.gemm_problems("gemm", (512,), ("bf16",), ("llama-3-70b",), (8,))}
    # QKV: 64/8 q heads + 2 x 8/8 kv heads, 128 wide; gate-up column-split, down row-split.
    assert {"gemm/bf16/m512-n1280-k8192", "gemm/bf16/m512-n8192-k1024", "gemm/bf16/m512-n7168-k8192",
            "gemm/bf16/m512-n8192-k3584"} == set(ids)
    shared = next(p for p in sweeps.full_sweep() if p.id == "gemm/bf16/m512-n6144-k4096")
    assert "llama-3-8b tp1 qkv_proj" in shared.source and "mixtral-8x7b tp1 qkv_proj" in shared.source


def test_work_formulas() -> None:
    assert work.gemm_flops(2, 3, 4) == 48
    assert work.gemm_bytes(2, 3, 4, elem=1, out_elem=2) == (8 + 12) + 12
    assert work.causal_pairs(4, 4) == 10 and work.causal_pairs(2, 5) == 4 + 5
    assert work.prefill_attention_flops(1, 4, 4, q_heads=2, head_dim=8) == 4 * 2 * 8 * 10
    assert work.decode_attention_bytes(1, 32, 4, 2, 8, elem=2) == 2 * 32 * 2 * 8 * 2 + 2 * 4 * 8 * 2 + 4 * 2


def test_run_gpu_bench_without_cuda_raises_calibration_error(tmp_path: Path, test_device) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(CalibrationError, match=r"no CUDA device: torch\.cuda\.is_available"):
        gpu.run_gpu_bench("testgpu", tmp_path, quick=True, accelerator=test_device)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("gpu_name,ok", [("NVIDIA H100 80GB HBM3", True), ("NVIDIA H100 NVL", True),
                                         ("NVIDIA A100-SXM4-80GB", False)])
def test_profile_must_match_the_gpu_present(test_device, gpu_name: str, ok: bool) -> None:
    h100 = test_device.model_copy(update={"name": "h100-sxm"})
    if ok:
        gpu.check_device_matches(h100, gpu_name)
    else:
        with pytest.raises(CalibrationError, match="does not match the GPU present"):
            gpu.check_device_matches(h100, gpu_name)


def _row(problem_id: str, impl: str, seconds: float, held_out: bool = False, kind: str = "gemm",
         flops: float = 1e12, nbytes: float = 1e9, error: str = "") -> dict:
    return {"problem_id": problem_id, "kind": kind, "op": "gemm", "impl": impl, "variant": "", "dtype": "bf16",
            "shape": "", "flops": flops, "bytes": nbytes, "seconds": seconds, "is_held_out": held_out,
            "error": error}


def test_best_rows_keep_the_fastest_successful_implementation() -> None:
    rows = [_row("a", "triton", 2e-3), _row("a", "torch", 1e-3), _row("b", "triton", 5e-3),
            _row("b", "torch", math.nan, error="RuntimeError: x"), _row("c", "torch", math.nan, error="oom")]
    best = {row["problem_id"]: row for row in gpu.best_rows(rows)}
    assert set(best) == {"a", "b"}
    assert best["a"]["impl"] == "best:torch" and best["b"]["impl"] == "best:triton"


def _calibration(device: str, efficiency: float) -> CalibrationSpec:
    provenance = CalibrationProvenance(kind="measured", device_description="test", date="2026-11-22", tool="test")
    curves = (EfficiencyCurve(kind=CurveKind.GEMM, dtype="bf16", axis="log10_flops", points=((9.0, efficiency),)),
              EfficiencyCurve(kind=CurveKind.MEMORY, axis="log10_bytes", points=((6.0, 1.0),)))
    return CalibrationSpec(schema_version=1, device=device, provenance=provenance,
                           launch_overhead={"value": 0, "unit": "s"}, curves=curves)


def test_fit_device_fits_on_the_fit_split_and_reports_held_out_errors(test_device, monkeypatch) -> None:
    # 1 TFLOP at 500 TFLOP/s (half of the test device's 1000 TFLOP/s bf16 peak) takes 2 ms.
    rows = [_row(f"p{i}", "torch", 2e-3, held_out=i % 4 == 0) for i in range(8)]
    seen = []

    def fake_fit(fit_rows, perf, provenance):
        seen.extend(fit_rows)
        return _calibration(perf.device.name, 0.5)

    monkeypatch.setattr(gpu, "fit_calibration", fake_fit)
    provenance = CalibrationProvenance(kind="measured", device_description="t", date="d", tool="t")
    calibration, report = gpu.fit_device(rows, test_device, provenance)
    assert {r["problem_id"] for r in seen} == {"p1", "p2", "p3", "p5", "p6", "p7"}
    assert calibration.fit_summary["heldout_count"] == 2
    assert calibration.fit_summary["heldout_calibrated_median_abs_error"] == pytest.approx(0, abs=1e-3)
    # The datasheet defaults assume the kernel model's GEMM efficiency plus its floor.
    gemm = DEFAULT_KERNELS.gemm
    expected_s = 1e12 / (1e15 * gemm.efficiency) + gemm.floor_s
    assert report["datasheet"]["all"]["median_error"] == pytest.approx(expected_s / 2e-3 - 1, abs=1e-6)


def test_write_gpu_outputs_round_trips(tmp_path: Path, test_device) -> None:
    calibration = _calibration("testgpu", 0.6)
    rows = [_row("a", "torch", 1e-3)]
    report = compare_models(rows, DevicePerf(test_device, calibration))
    path = gpu.write_gpu_outputs(tmp_path, calibration, rows, report)
    assert path == tmp_path / "calibration" / "testgpu.yaml"
    assert CalibrationSpec.model_validate(yaml.safe_load(path.read_text())) == calibration
    assert path.with_suffix(".csv").read_text().splitlines()[0].split(",") == list(gpu.ROW_COLUMNS)
    assert "calibrated" in yaml.safe_load(path.with_suffix(".validation.yaml").read_text())


def test_prediction_errors_are_signed_relative_to_measured(test_device) -> None:
    perf = DevicePerf(test_device, _calibration("testgpu", 0.25))
    (slow,) = prediction_errors([_row("a", "t", 2e-3)], perf)  # predicts 4 ms for 2 ms measured
    assert slow["error"] == pytest.approx(1.0, abs=1e-3)
    assert prediction_errors([_row("b", "t", math.nan)], perf) == []


class _InstantTimer:
    tune_reps = 1

    def time(self, fn, reps=None):
        fn()
        return [1e-3] * (reps or 3)


def test_measure_problem_marks_a_wrong_triton_result_and_keeps_failures_as_rows(monkeypatch) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("triton", reason="triton is not installed")
    problem = sweeps.Problem("memory", "rmsnorm", "bf16", (("rows", 2), ("width", 4)), 1.0, 1.0)

    def broken() -> None:
        raise RuntimeError("CUDA out of memory.\nmore detail")

    candidates = {"triton": {"a": lambda: torch.ones(4), "b": broken}, "torch": {"ref": lambda: torch.zeros(4) + 0.5}}
    monkeypatch.setattr(gpu, "build_candidates", lambda *args: candidates)
    triton_row, torch_row = gpu.measure_problem(problem, None, _InstantTimer(), quick=True)
    assert triton_row["variant"] == "a" and triton_row["max_rel_diff"] == pytest.approx(1.0)
    assert triton_row["error"].startswith("output differs from torch by 1")
    assert torch_row["error"] == "" and torch_row["seconds"] == 1e-3
    assert [r["impl"] for r in gpu.best_rows([triton_row, torch_row])] == ["best:torch"]
    candidates["torch"] = {"ref": broken}
    rows = gpu.measure_problem(problem, None, _InstantTimer(), quick=True)
    assert rows[1]["error"] == "RuntimeError: CUDA out of memory." and math.isnan(rows[1]["seconds"])


def test_fit_device_recovers_a_synthetic_gpu_on_held_out_problems(test_device) -> None:
    """Times made by a known calibration over the quick sweep: the real fitter, fitted on the
    fit split, must predict the held-out split within the acceptance targets (10% / 20%)."""
    points = {CurveKind.GEMM: ((9.0, 0.2), (11.0, 0.6), (13.0, 0.8)),
              CurveKind.GEMV: ((5.0, 0.1), (7.0, 0.6), (9.0, 0.85)),
              CurveKind.ATTENTION_DECODE: ((5.0, 0.1), (7.0, 0.5), (9.5, 0.8)),
              CurveKind.ATTENTION_PREFILL: ((9.0, 0.1), (11.0, 0.4), (13.0, 0.6)),
              CurveKind.MEMORY: ((5.0, 0.1), (7.0, 0.5), (9.0, 0.9))}
    axis = {CurveKind.GEMM: "log10_flops", CurveKind.ATTENTION_PREFILL: "log10_flops"}
    truth = CalibrationSpec(
        schema_version=1, device="testgpu", launch_overhead={"value": 4, "unit": "us"},
        provenance=CalibrationProvenance(kind="measured", device_description="synthetic", date="d", tool="t"),
        curves=tuple(EfficiencyCurve(kind=k, axis=axis.get(k, "log10_bytes"), points=p) for k, p in points.items()))
    gpu_model = DevicePerf(test_device, truth)
    rows = [{"problem_id": p.id, "kind": p.kind, "dtype": p.dtype, "flops": p.flops, "bytes": p.bytes,
             "seconds": gpu_model.op_time(OpCost(p.id, CurveKind(p.kind), p.flops, p.bytes, DType(p.dtype))).seconds,
             "impl": "torch", "is_held_out": p.is_held_out, "error": ""} for p in sweeps.quick_sweep()]
    provenance = CalibrationProvenance(kind="measured", device_description="t", date="d", tool="t")
    calibration, report = gpu.fit_device(rows, test_device, provenance)
    assert calibration.fit_summary["heldout_count"] == sum(p.is_held_out for p in sweeps.quick_sweep())
    assert report["calibrated"]["all"]["median_abs_error"] <= 0.10
    assert report["calibrated"]["all"]["p90_abs_error"] <= 0.20
    assert report["datasheet"]["all"]["median_abs_error"] > report["calibrated"]["all"]["median_abs_error"]
