"""Kernel parameters fitted through whole runs (``kernel_fit.fit_through_runs``): runs priced by
the model itself with known parameters give those parameters back."""

import numpy as np
import pandas as pd
import pytest

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.kernel_fit import RUN_PARAMETERS, fit_through_runs, with_parameter
from hetsim.perf.kernels import default_kernels
from hetsim.perf.public_rows import predict_generations
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import CalibrationSpec


def test_runs_priced_with_known_kernel_parameters_give_them_back():
    device = load_catalog().accelerator("mi300x")
    models = {"llama-3.1-70b": load_models().model("llama-3.1-70b")}
    rows = pd.DataFrame(
        [
            {"model": "llama-3.1-70b", "tp": 8, "batch": b, "q_tokens": q, "output_tokens": 512, "dtype": "fp8", "kv_dtype": "fp16"}
            for b in (1, 32, 128)
            for q in (128, 2048)
        ]
    )
    start = default_kernels(device.vendor)
    truth = with_parameter(with_parameter(start, "gemm_fp8.efficiency", 0.2), "attention_decode.sequence_s", 1e-6)

    def perf(kernels):
        spec = CalibrationSpec.model_validate({
            "schema_version": 1, "device": "mi300x", "launch_overhead": {"value": 0, "unit": "us"},
            "provenance": {"kind": "test", "device_description": "x", "date": "2026-12-05", "tool": "test"},
            "kernels": kernels,
        })  # fmt: skip
        return DevicePerf(device, spec)

    measured = predict_generations(rows, perf(truth), models)
    fitted = fit_through_runs(lambda k: predict_generations(rows, perf(k), models), measured, start)
    assert [p for p, _, _ in RUN_PARAMETERS] == ["gemm_fp8.efficiency", "attention_decode.sequence_s"]
    assert fitted.gemm_fp8.efficiency == pytest.approx(0.2, rel=0.05)
    assert fitted.attention_decode.sequence_s == pytest.approx(1e-6, rel=0.05)
    assert np.allclose(predict_generations(rows, perf(fitted), models), measured, rtol=0.02)
