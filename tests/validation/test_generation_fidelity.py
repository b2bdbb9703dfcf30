"""The whole-step model against LLM-Inference-Bench's whole batch generations (vLLM 0.5 era,
CUDA graphs: the engine the defaults describe) on A100-SXM4-40GB, whose kernels no kernel-level
source covers: the defaults' signed bias within the issue's +/-15% and the engine-calibrated
model, held out by model, within 10% median and 25% p90 |error| (issue 16's goals). And against
AMD's own ROCm vLLM runs on MI300X (2025 images): the defaults within +/-15% there too, and
kernels fitted through the runs meeting the goals held out by model on the newest two engines."""

import numpy as np
import pandas as pd
import pytest

from hetsim.api.calibrate_public import fit_public

DEVICE, STACK = "a100-40gb-sxm", "vllm>=0.5.1,<0.6.3 (LLM-Inference-Bench)"


@pytest.fixture(scope="module")
def fit():
    return fit_public(devices=[DEVICE])


def test_defaults_and_held_out_calibration_meet_the_goals_on_whole_generations(fit):
    row = fit.table().set_index(["device", "op_class"]).loc[(DEVICE, "generation")]
    assert row["rows"] >= 150  # batches whose KV fits (the others are preempted upstream)
    assert abs(row["default_bias"]) <= 0.15
    assert row["calibrated_median_abs"] <= 0.10 and row["calibrated_p90_abs"] <= 0.25
    assert row["calibrated_median_abs"] < row["default_median_abs"]


def test_the_stack_calibration_says_its_kernels_are_datasheet_defaults_and_carries_its_band(fit):
    spec = fit.calibrations[(DEVICE, STACK)]
    assert spec.engine is not None and spec.engine.fit["points"] >= 150
    assert "datasheet defaults" in spec.provenance.notes
    assert spec.error_band["p10"] < 0 < spec.error_band["p90"]
    assert all(text.startswith("datasheet default") for text in spec.kernels.sources.values())
    scored = fit.scored
    assert np.isfinite(scored["calibrated_s"]).all() and scored["served_s"].isna().all()  # no kernel calibration to serve


@pytest.fixture(scope="module")
def both():
    return fit_public(devices=[DEVICE, "mi300x"], workers=2)


def test_fitting_devices_in_parallel_gives_the_serial_fit(fit, both):
    assert both.calibrations[(DEVICE, STACK)] == fit.calibrations[(DEVICE, STACK)]
    mine = both.scored[both.scored["device"] == DEVICE].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, fit.scored.reset_index(drop=True))
    assert list(both.scored["device"].unique()) == [DEVICE, "mi300x"]  # device order, whatever finished first


ROCM = {
    "vllm==0.6.6 rocm6.3.1 (AMD rocm/vllm-dev, V0)",
    "vllm==0.8.5 rocm6.3.1 (AMD rocm/vllm-dev, V0)",
    "vllm==0.9.1 rocm6.4.1 (AMD rocm/vllm-dev, V1)",
}


def test_mi300x_under_amds_rocm_engines_defaults_within_15_percent_and_run_fitted_kernels_held_out(both):
    table = both.table()
    rocm = table[table["source"] == "rocm-vllm"].set_index("stack")
    assert set(rocm.index) == set(ROCM) and (rocm["rows"] == 32).all()
    assert (rocm["default_bias"].abs() <= 0.15).all()
    assert (rocm["calibrated_median_abs"] <= 0.10).all() and (rocm["calibrated_p90_abs"] <= 0.25).all()
    for stack in ROCM:
        spec = both.calibrations[("mi300x", stack)]
        assert spec.engine is not None and spec.engine.step_overhead_s == 0 and spec.engine.sequence_overhead_s == 0
        assert "fitted through 32 whole runs" in spec.kernels.sources["fitted through runs"]
        # ROCm's paged attention: about a microsecond per sequence and layer (NVIDIA's default: 23 ns)
        assert 3e-7 < spec.kernels.attention_decode.sequence_s < 3e-6 and spec.kernels.gemm_fp8 is not None


def test_mi300x_under_2024_rocm_vllm_runs_its_gemms_flat_far_below_the_matrix_peak(both):
    """LLM-Inference-Bench's MI300X runs (vLLM 0.5-0.6.2 on ROCm) grow linearly with the batch
    at ~66-81 TFLOP/s of GEMM work (5-6% of the peak), so the stack's GEMMs are fitted as a flat
    roofline (no tile padding) at a few percent of the peak; and their decode ran vLLM's
    PagedAttention, whose unpartitioned V1 kernel (more than 512 sequence-heads on a rank) read
    the KV at well under the partitioned V2's bandwidth. Held out by model this took the source
    from 16% / 52% to 10.6% / 26.4% (flat GEMMs), then 9.4% / 22.6% median / p90 (the two
    kernels; README: *Whole steps of the engine the defaults describe*): issue 16's goals."""
    from hetsim.api.calibrate_public import RUN_GEMM_EFFICIENCIES

    row = both.table().set_index(["source", "device"]).loc[("llm-inference-bench", "mi300x")]
    assert row["rows"] == 594  # 9 runs slower than a larger batch of the same prompts left out
    assert row["calibrated_median_abs"] <= 0.10 and row["calibrated_p90_abs"] <= 0.25
    spec = both.calibrations[("mi300x", STACK)]
    decode = spec.kernels.attention_decode
    assert decode.kv_read_per_query_head and 0 < decode.unpartitioned_memory_efficiency < decode.memory_efficiency / 2
    assert "unpartitioned (V1)" in spec.kernels.sources["attention_decode"]
    gemm = spec.kernels.gemm
    assert not gemm.quantise and gemm.efficiency in RUN_GEMM_EFFICIENCIES and gemm.efficiency <= 0.1
    assert "flat roofline" in spec.kernels.sources["gemm"]
