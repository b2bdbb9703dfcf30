"""``hetsim calibrate public`` end to end (slow: it fits the kernel model to the public sets)."""

import json

import pytest
from typer.testing import CliRunner

from hetsim.api.calibrate_public import default_error_bands, fit_public
from hetsim.cli import app
from hetsim.io.calibration import load_calibration, load_calibration_file, stack_slug
from hetsim.perf.uncertainty import DEFAULT_ERROR_BAND, DEFAULT_ERROR_BANDS

pytestmark = pytest.mark.slow


def test_calibrating_one_device_prints_held_out_errors_and_installs_a_loadable_file(tmp_path):
    (tmp_path / "accelerators").mkdir()
    result = CliRunner().invoke(app, ["calibrate", "public", "--device", "l40s", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    gemm = next(r for r in data["table"] if r["op_class"] == "gemm" and r["stack"] == "vllm==0.14.0")
    assert gemm["calibrated_median_abs"] < gemm["default_median_abs"]  # the fit helps, held out
    spec = load_calibration_file(tmp_path / "calibration" / "l40s.yaml")
    assert spec.kernels is not None and spec.stack == "vllm==0.14.0"
    assert not spec.error_band  # no measured steps in a one-device fit: no band is invented


def test_the_shipped_calibrations_and_default_error_bands_are_what_the_fit_gives():
    fit = fit_public(devices=["a100-80gb-sxm", "h100-sxm", "a100-40gb-sxm", "mi300x"])
    bands = default_error_bands(fit.scored)
    assert bands.pop("any") == pytest.approx(DEFAULT_ERROR_BAND, abs=1e-3)
    assert bands.keys() == DEFAULT_ERROR_BANDS.keys()
    for vendor, band in bands.items():
        assert band == pytest.approx(DEFAULT_ERROR_BANDS[vendor], abs=1e-3)
    for device in ("a100-80gb-sxm", "h100-sxm"):
        shipped = load_calibration(device)
        fitted = fit.calibrations[(device, "vllm==0.14.0")]
        assert shipped is not None and shipped.kernels is not None
        assert shipped.kernels.gemm.efficiency == pytest.approx(fitted.kernels.gemm.efficiency, rel=1e-6)
        assert shipped.error_band == pytest.approx(fitted.error_band, abs=1e-4)
    for (device, stack), fitted in fit.calibrations.items():
        if device != "mi300x":
            continue  # MI300X's stacks: kernels fitted through the runs (ROCm) or decode read per query head
        shipped = load_calibration(device, stack=stack_slug(stack))
        assert shipped is not None and shipped.kernels is not None and shipped.stack == stack
        shipped_decode, fitted_decode = shipped.kernels.attention_decode, fitted.kernels.attention_decode
        assert shipped_decode.sequence_s == pytest.approx(fitted_decode.sequence_s, rel=1e-6)
        assert shipped_decode.memory_efficiency == pytest.approx(fitted_decode.memory_efficiency, rel=1e-6)
        assert shipped_decode.kv_read_per_query_head == fitted_decode.kv_read_per_query_head == ("rocm" not in stack)
        if "rocm" in stack:
            assert shipped.kernels.gemm_fp8.efficiency == pytest.approx(fitted.kernels.gemm_fp8.efficiency, rel=1e-6)
        assert shipped.error_band == pytest.approx(fitted.error_band, abs=1e-4)
