"""Calibration files: the shipped one loads and predicts its own rows; bad ones fail in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetsim.errors import CalibrationError
from hetsim.io.calibration import calibration_path, load_calibration, read_rows_csv
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.perf.fit import error_summary, predict_seconds
from hetsim.perf.roofline import DevicePerf, OpCost
from hetsim.specs.calibration import CurveAxis, CurveKind

SHIPPED = "host-xeon-spr-2vcpu"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A profile root holding a copy of the shipped host profile and its calibration."""
    for folder, suffixes in (("accelerators", (".yaml",)), ("calibration", (".yaml", ".csv"))):
        (tmp_path / folder).mkdir()
        for suffix in suffixes:
            shutil.copy(profiles_root() / folder / f"{SHIPPED}{suffix}", tmp_path / folder)
    return tmp_path


def _edit(root: Path, change) -> Path:
    path = calibration_path(SHIPPED, root)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_calibration_loads_with_provenance_and_curves() -> None:
    calibration = load_calibration(SHIPPED)
    assert calibration is not None and calibration.device == SHIPPED
    assert calibration.provenance.kind == "measured" and calibration.provenance.threads == 2
    assert "torch" in calibration.provenance.versions
    for kind, dtype in ((CurveKind.GEMM, "fp32"), (CurveKind.GEMM, "bf16"), (CurveKind.GEMV, "fp32"),
                        (CurveKind.ATTENTION_DECODE, "bf16"), (CurveKind.MEMORY, None)):
        assert calibration.curve(kind, dtype) is not None, (kind, dtype)
    assert calibration.curve(CurveKind.GEMM, "fp32").axis == CurveAxis.LOG10_INTENSITY


def test_shipped_calibration_predicts_its_gemm_and_gemv_rows_within_15_percent() -> None:
    device = load_catalog().accelerator(SHIPPED)
    rows = [r for r in read_rows_csv(calibration_path(SHIPPED).with_suffix(".csv"))
            if r["kind"] in ("gemm", "attention_decode") and r["label"] != "probe"]
    assert len(rows) >= 300
    predicted = predict_seconds(rows, DevicePerf(device, load_calibration(SHIPPED)))
    stats = error_summary([r["seconds"] for r in rows], predicted)
    assert stats["median_abs_error"] <= 0.15
    datasheet = error_summary([r["seconds"] for r in rows], predict_seconds(rows, DevicePerf(device)))
    assert datasheet["median_abs_error"] > 2 * stats["median_abs_error"]  # calibration is worth having


def test_calibrated_cpu_decode_gemv_is_memory_bound_at_measured_bandwidth() -> None:
    device = load_catalog().accelerator(SHIPPED)
    perf = DevicePerf(device, load_calibration(SHIPPED))
    weights = 4096 * 4096 * 4.0  # one fp32 Llama-3-8B o_proj, one token
    estimate = perf.op_time(OpCost("o_proj", CurveKind.GEMM, 2 * 4096 * 4096, weights, "fp32"))
    assert 10e9 < weights / estimate.seconds < 40e9  # tens of GB/s, as measured on a 2-vCPU VM
    assert estimate.provenance.value == "calibrated"


def test_a_device_without_calibration_gets_none() -> None:
    assert load_calibration("b200") is None  # no public measurement set covers it yet


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["curves"][0].update(points=[[1.0, 2.0]]),
         r"host-xeon-spr-2vcpu\.yaml: field 'curves\.0\.points': expected efficiency in \(0, 1\.5\], got 2\.0"),
        (lambda d: d["curves"][0].update(axis="log10_tokens"), r"\.yaml: field 'curves\.0\.axis': .*'log10_tokens'"),
        (lambda d: d.pop("launch_overhead"), r"\.yaml: field 'launch_overhead': required field is missing"),
        (lambda d: d.update(colour="red"), r"\.yaml: field 'colour': unknown key"),
    ],
)
def test_malformed_calibration_is_one_line_naming_file_and_field(root: Path, change, message: str) -> None:
    _edit(root, change)
    with pytest.raises(CalibrationError, match=message) as error:
        load_calibration(SHIPPED, root)
    assert "\n" not in str(error.value)


def test_calibration_naming_another_device_is_an_error(root: Path) -> None:
    _edit(root, lambda d: d.update(device="h100-sxm"))
    with pytest.raises(CalibrationError, match=r"field 'device': expected 'host-xeon-spr-2vcpu' \(the file name\)"):
        load_calibration(SHIPPED, root)


def test_calibration_for_an_unknown_device_is_an_error(root: Path) -> None:
    (root / "accelerators" / f"{SHIPPED}.yaml").unlink()
    with pytest.raises(CalibrationError, match=r"got unknown device 'host-xeon-spr-2vcpu'"):
        load_calibration(SHIPPED, root)


def test_rows_csv_parses_numbers_and_blanks() -> None:
    rows = read_rows_csv(calibration_path(SHIPPED).with_suffix(".csv"))
    gemm = next(r for r in rows if r["kind"] == "gemm" and r["label"] != "probe")
    memory = next(r for r in rows if r["kind"] == "memory")
    assert isinstance(gemm["m"], float) and gemm["seconds"] > 0 and memory["m"] is None
    assert np.isfinite([r["seconds"] for r in rows]).all()


def test_a_stack_picks_its_shipped_calibration_and_falls_back_per_device() -> None:
    assert load_calibration("h100-sxm").stack == "vllm==0.14.0"
    assert load_calibration("h100-sxm", stack="vllm-0.24.0").stack == "vllm==0.24.0"
    assert load_calibration("h200-sxm", stack="vllm-0.24.0").stack == "vllm==0.14.0"  # none shipped for it
    splitwise = load_calibration("a100-80gb-sxm", stack="vllm-splitwise-paper-2023")
    assert splitwise.engine is not None and splitwise.error_band["p50"] == pytest.approx(0, abs=0.1)
    shipped = (
        "deepseek-kernels, vllm-0.24.0, vllm-0.5.1-0.6.3-llm-inference-bench, vllm-0.6.6-rocm6.3.1-amd-rocm-vllm-dev-v0, "
        "vllm-0.8.5-rocm6.3.1-amd-rocm-vllm-dev-v0, vllm-0.9.1-rocm6.4.1-amd-rocm-vllm-dev-v1, vllm-splitwise-paper-2023"
    )
    with pytest.raises(CalibrationError, match=rf"stack: expected one of {shipped} .* got 'trt'"):
        load_calibration("h100-sxm", stack="trt")
