"""GEMM rows measured by repeating one call with their bytes in L2 (AIConfigurator's collector
runs 6 same-shape layers per call), and the shipped fp8 class that absorbs the input's
quantisation (the step model does not price it apart)."""

import numpy as np
import pandas as pd
import pytest

from hetsim.api.calibrate_public import _fp8_absorbing_quantisation
from hetsim.io.catalog import load_catalog
from hetsim.perf.kernel_fit import log_error
from hetsim.perf.kernels import DEFAULT_KERNELS, gemm_seconds
from hetsim.perf.public_rows import GEMM_COPIES, gemm_warm, predict_ops
from hetsim.perf.roofline import DevicePerf


@pytest.fixture(scope="module")
def l40s():
    return DevicePerf(load_catalog().accelerator("l40s"))


def _rows(shapes, source="aiconfigurator", dtype="bf16"):
    return pd.DataFrame([{"source": source, "op_class": "gemm", "dtype": dtype, "input_dtype": "bf16", "m": m, "n": n, "k": k}
                         for m, n, k in shapes])  # fmt: skip


def test_a_gemm_is_warm_when_its_input_six_layers_weights_and_one_output_fit_the_l2(l40s):
    l2 = l40s.device.memory.l2_cache.si
    assert l2 == 96 * 2**20  # MiB, from the Ada whitepaper (see the profile)
    # weights alone decide for a thin GEMM: 6 x 4096 x 2048 x 2 B = 100.7 MB > 96 MiB; 6 x 4096 x 1024 x 2 B fits
    # the six layers share one input: a large m with a thin weight stays warm (67 MB input + 6 x 0.26 MB + 0.5 MB)
    # and one output buffer, which each layer's discarded output frees for the next: 2048 x 16384 x 2 B = 67 MB
    # is written 6 times a call but occupies 67 MB (the row ran at 2.1 TB/s, past the 864 GB/s of GDDR6)
    rows = _rows([(1, 4096, 1024), (1, 4096, 2048), (8192, 32, 4096), (8192, 4096, 4096), (2048, 16384, 32)])
    warm = gemm_warm(rows, l40s)
    assert warm.tolist() == [True, False, True, False, True]
    assert GEMM_COPIES == 6.0
    assert not gemm_warm(rows.assign(source="vidur"), l40s).any()  # a source that does not repeat its call


def test_a_warm_gemms_memory_side_runs_faster_and_its_compute_side_does_not(l40s):
    params = DEFAULT_KERNELS.gemm.model_copy(update={"warm_cache_speedup": 2.0})
    peak, bandwidth, units = l40s.peak_flops("bf16"), l40s.bandwidth_bytes_per_s, l40s.compute_units
    thin = (1, 4096, 1024, (4096 + 4096 * 1024 + 1024) * 2.0)
    cold = float(gemm_seconds(params, *thin, peak, bandwidth, units))
    warm = float(gemm_seconds(params, *thin, peak, bandwidth, units, warm=True))
    assert cold / 2.0 < warm < cold  # the streamed bytes go twice as fast, the floor and split-K reduction do not
    big = (8192, 8192, 8192, (3 * 8192 * 8192) * 2.0)  # compute-bound: nothing to gain
    assert float(gemm_seconds(params, *big, peak, bandwidth, units, warm=True)) == pytest.approx(
        float(gemm_seconds(params, *big, peak, bandwidth, units)))
    assert float(gemm_seconds(params, *thin, peak, 2 * bandwidth, units, warm=True)) <= warm  # more bandwidth never slower


def test_the_shipped_fp8_class_absorbs_the_input_quantisation(l40s):
    truth = DEFAULT_KERNELS.model_copy(update={
        "gemm_fp8": DEFAULT_KERNELS.gemm.model_copy(update={"efficiency": 0.8}),
        "input_quant": DEFAULT_KERNELS.input_quant.model_copy(update={"memory_efficiency": 0.1}),
    })  # fmt: skip
    shapes = [(m, n, k) for m in (1, 64, 1024, 8192) for n in (256, 4096, 16384) for k in (1024, 8192)]
    rows = _rows(shapes, dtype="fp8")
    rows["measured_s"] = predict_ops(rows, l40s, truth)
    absorbed = _fp8_absorbing_quantisation(rows, l40s, DEFAULT_KERNELS)
    assert absorbed.input_quant is None
    # priced as the step model prices it (no quantisation op), the absorbing class covers the measured
    # layer far better than the class fitted apart, which without its quantisation is too fast
    without_quant = rows.assign(input_dtype="fp8")
    measured = rows["measured_s"].to_numpy()
    absorbed_error = log_error(predict_ops(without_quant, l40s, absorbed), measured)
    separate = predict_ops(without_quant, l40s, truth)
    assert absorbed_error < 0.75 * log_error(separate, measured)
    assert np.median(separate / measured - 1.0) < -0.2
