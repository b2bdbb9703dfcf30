"""GEMM terms taken from how the measured kernels run (hetsim.perf.kernels.gemm_seconds): a
library that keeps small problems' K loop in one CTA, a matrix-vector kernel for one row, a
unit's own share of the bandwidth, the epilogue after the K loop, kernel families without
split-K (vLLM's CUTLASS fp8 kernels) and a warm input's quantisation."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.io.catalog import load_catalog
from hetsim.perf.kernel_fit import device_families, fit_class
from hetsim.perf.kernels import (
    DEFAULT_KERNELS,
    VLLM_SM89_FP8_DISPATCH,
    VLLM_SM89_FP8_STACKED_WARPS,
    VLLM_SM89_FP8_TILES,
    gemm_seconds,
    input_quant_seconds,
)
from hetsim.perf.public_rows import predict_ops, quant_warm
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import GemmKernels


@pytest.fixture(scope="module")
def l40s():
    return DevicePerf(load_catalog().accelerator("l40s"))


def _seconds(params, m, n, k, perf, dtype="bf16"):
    nbytes = (m * k + k * n) * 2.0 + m * n * 2.0
    return float(gemm_seconds(params, m, n, k, nbytes, perf.peak_flops(dtype), perf.bandwidth_bytes_per_s, perf.compute_units))


def test_below_the_serial_work_a_gemm_runs_its_whole_k_loop_in_one_cta(l40s):
    params = DEFAULT_KERNELS.gemm.model_copy(update={"serial_k_work": 2.0**21, "serial_k_depth": 8192.0})
    # AIConfigurator's L40S rows: (2, 32, k) grows by ~4 ns per k up to k = 8192, then splits
    small = [_seconds(params, 2, 32, k, l40s) for k in (2048, 4096, 8192)]
    assert (small[1] - small[0]) / 2048 == pytest.approx((small[2] - small[1]) / 4096, rel=0.05)  # linear in k: one CTA
    assert small[2] > 5 * _seconds(DEFAULT_KERNELS.gemm, 2, 32, 8192, l40s)  # the split kernel is far faster
    assert _seconds(params, 2, 32, 16384, l40s) < small[2]  # past serial_k_depth the library splits again
    assert _seconds(params, 128, 32, 8192, l40s) == _seconds(DEFAULT_KERNELS.gemm, 128, 32, 8192, l40s)  # past the work
    # one row is a matrix-vector product, which the library runs with its own kernel
    assert _seconds(params, 1, 32, 8192, l40s) == _seconds(DEFAULT_KERNELS.gemm, 1, 32, 8192, l40s)


def test_a_one_row_gemm_pays_its_own_split_reduction(l40s):
    free = DEFAULT_KERNELS.gemm.model_copy(update={"vector_split_k_s": 0.0})
    assert _seconds(free, 1, 32, 4096, l40s) < _seconds(DEFAULT_KERNELS.gemm, 1, 32, 4096, l40s)
    assert _seconds(free, 2, 32, 4096, l40s) == _seconds(DEFAULT_KERNELS.gemm, 2, 32, 4096, l40s)


def test_a_unit_streaming_more_than_its_even_share_speeds_up_few_blocks_only(l40s):
    wide = DEFAULT_KERNELS.gemm.model_copy(update={"unit_bandwidth_share": 0.04, "split_k": (1,)})
    even = DEFAULT_KERNELS.gemm.model_copy(update={"split_k": (1,)})
    assert _seconds(wide, 64, 256, 8192, l40s) < _seconds(even, 64, 256, 8192, l40s)  # 4 tiles on 142 SMs
    assert _seconds(wide, 8192, 8192, 64, l40s) == _seconds(even, 8192, 8192, 64, l40s)  # every unit busy


def test_an_epilogue_priced_apart_adds_the_output_writes_after_the_k_loop(l40s):
    apart = DEFAULT_KERNELS.gemm.model_copy(update={"output_efficiency": 0.5})
    big_output = _seconds(apart, 8192, 16384, 32, l40s) - _seconds(DEFAULT_KERNELS.gemm, 8192, 16384, 32, l40s)
    writes = 8192 * 16384 * 2.0 / (l40s.bandwidth_bytes_per_s * 0.5)
    assert big_output > 0.5 * writes  # the 268 MB of outputs no longer overlap the inputs' streaming
    assert _seconds(apart, 8, 4096, 8192, l40s) == pytest.approx(_seconds(DEFAULT_KERNELS.gemm, 8, 4096, 8192, l40s), rel=0.02)


def test_a_warm_input_quantises_faster_and_only_when_its_reuse_fits_the_l2(l40s):
    params = DEFAULT_KERNELS.input_quant.model_copy(update={"warm_cache_speedup": 2.0})
    bandwidth = l40s.bandwidth_bytes_per_s
    cold = float(input_quant_seconds(params, 1024, 4096, bandwidth))
    assert float(input_quant_seconds(params, 1024, 4096, bandwidth, True)) < cold
    assert float(input_quant_seconds(DEFAULT_KERNELS.input_quant, 1024, 4096, bandwidth, True)) == pytest.approx(
        float(input_quant_seconds(DEFAULT_KERNELS.input_quant, 1024, 4096, bandwidth)))  # the defaults: never warm
    rows = pd.DataFrame([{"source": "aiconfigurator", "op_class": "gemm", "dtype": "fp8", "input_dtype": "bf16",
                          "m": m, "n": 1024, "k": k} for m, k in ((8192, 2048), (8192, 4096))])  # fmt: skip
    # 8192 x 2048: 33.5 MB input + 16.8 MB fp8 copy + 2 MB weights + 16.8 MB output fit 96 MiB; x 4096 does not
    assert quant_warm(rows, l40s).tolist() == [True, False]
    assert not quant_warm(rows.assign(source="vidur"), l40s).any()


def test_a_device_naming_its_compute_capability_is_fitted_on_its_own_kernel_family_only(l40s):
    ada = {"tiles": VLLM_SM89_FP8_TILES, "split_k": (1,), "tile_dispatch": VLLM_SM89_FP8_DISPATCH,
           "stacked_warp_tiles": VLLM_SM89_FP8_STACKED_WARPS}
    assert device_families("gemm_fp8", l40s.device) == [ada]  # vLLM dispatches its c2x sm89 kernels
    unnamed = _without_capability(l40s)
    assert ada in device_families("gemm_fp8", unnamed.device) and {} in device_families("gemm_fp8", unnamed.device)
    assert device_families("gemm", l40s.device) == [{}]


def _without_capability(perf: DevicePerf) -> DevicePerf:
    units = perf.device.compute_units.model_copy(update={"compute_capability": None})
    return DevicePerf(perf.device.model_copy(update={"compute_units": units}))


def test_the_fitter_keeps_the_fp8_kernels_without_split_k_when_they_fit_better(l40s):
    l40s = _without_capability(l40s)  # every family competes, the generic one included
    ada = {"tiles": VLLM_SM89_FP8_TILES, "split_k": (1,), "tile_dispatch": VLLM_SM89_FP8_DISPATCH,
           "stacked_warp_tiles": VLLM_SM89_FP8_STACKED_WARPS}
    unsplit = DEFAULT_KERNELS.gemm.model_copy(update={**ada, "efficiency": 0.6})
    truth = DEFAULT_KERNELS.model_copy(update={"gemm_fp8": unsplit})
    shapes = [(m, n, k) for m in (1, 16, 256, 4096) for n in (256, 4096) for k in (512, 8192, 65536)]
    rows = pd.DataFrame([{"op_class": "gemm", "dtype": "fp8", "input_dtype": "fp8", "m": m, "n": n, "k": k}
                         for m, n, k in shapes])  # fmt: skip
    rows["measured_s"] = predict_ops(rows, l40s, truth)
    fitted = fit_class(rows, l40s, DEFAULT_KERNELS, "gemm_fp8", sweeps=2)
    assert fitted.gemm_fp8.split_k == (1,)
    assert fitted.gemm_fp8.tiles == VLLM_SM89_FP8_TILES
    assert fitted.gemm_fp8.tile_dispatch == VLLM_SM89_FP8_DISPATCH
    assert np.allclose(predict_ops(rows, l40s, fitted), rows["measured_s"], rtol=0.05)


def test_a_dispatched_tile_replaces_the_fastest_one(l40s):
    fastest = DEFAULT_KERNELS.gemm.model_copy(update={"tiles": VLLM_SM89_FP8_TILES, "split_k": (1,)})
    dispatched = fastest.model_copy(update={"tile_dispatch": VLLM_SM89_FP8_DISPATCH})
    # vLLM's sm89 dispatch: m > 256 with n in (4096, 8192] runs 256 x 128 tiles (measured 2x slower on
    # L40S at small k than the 128 x 128 tiles of n = 4096); the fastest candidate would not be it
    assert _seconds(dispatched, 8192, 8192, 4096, l40s, "fp8") >= _seconds(fastest, 8192, 8192, 4096, l40s, "fp8")
    only = fastest.model_copy(update={"tiles": ((256, 128),)})
    assert _seconds(dispatched, 8192, 8192, 4096, l40s, "fp8") == _seconds(only, 8192, 8192, 4096, l40s, "fp8")
    # vLLM 0.14.0's dispatch reaches its M16 config (m rounded up to 16 at least, PR #16751): m up to
    # 16 runs 16-row tiles, m in (16, 32] 32-row ones, and m <= 16 with n beyond 16384 32 x 64 tiles
    for m, n, tile in ((2, 4096, (16, 64)), (16, 16384, (16, 128)), (17, 4096, (32, 64)), (8, 65536, (32, 64))):
        only = fastest.model_copy(update={"tiles": (tile,)})
        assert _seconds(dispatched, m, n, 4096, l40s, "fp8") == _seconds(only, m, n, 4096, l40s, "fp8")


def _ada_fp8(**update):
    ada = {"tiles": VLLM_SM89_FP8_TILES, "split_k": (1,), "tile_dispatch": VLLM_SM89_FP8_DISPATCH,
           "stacked_warp_tiles": VLLM_SM89_FP8_STACKED_WARPS}
    return DEFAULT_KERNELS.gemm.model_copy(update={**ada, **update})


def _warm_seconds(params, m, n, k, perf, warm):
    nbytes = (m * k + k * n) * 1.0 + m * n * 2.0
    return float(gemm_seconds(params, m, n, k, nbytes, perf.peak_flops("fp8"), perf.bandwidth_bytes_per_s,
                              perf.compute_units, warm=warm))


def test_a_stacked_warp_tile_pays_its_own_floor_and_no_other_tile_does(l40s):
    plain = _ada_fp8()
    stacked = _ada_fp8(stacked_warp_floor_s=3e-6)
    # m = 17-32 with n <= 8192 runs 32 x 64 tiles on 16 x 64 warps, m = 33-64 64 x 64 tiles on 32 x 64
    # warps, m = 65-128 with n > 16384 128 x 64 tiles on 64 x 64 warps: warps stacked along the rows
    for m, n in ((32, 4096), (64, 4096), (128, 32768)):
        assert _seconds(stacked, m, n, 4096, l40s, "fp8") == pytest.approx(_seconds(plain, m, n, 4096, l40s, "fp8") + 3e-6)
    # one warp (16 x 64) or warps side by side (32 x 128, 64 x 128, 128 x 128): no extra cost
    for m, n in ((16, 4096), (32, 16384), (128, 4096), (1024, 4096)):
        assert _seconds(stacked, m, n, 4096, l40s, "fp8") == _seconds(plain, m, n, 4096, l40s, "fp8")


def test_a_stacked_warp_tile_reads_warm_weights_at_its_own_speed_up(l40s):
    params = _ada_fp8(warm_cache_speedup=3.0, stacked_warp_warm_speedup=1.5, memory_efficiency=0.7)
    own = params.model_copy(update={"stacked_warp_warm_speedup": None})
    m, n, k = 32, 8192, 4096  # 32 x 64 tiles; a memory-bound shape
    cold = _warm_seconds(params, m, n, k, l40s, False)
    assert cold == _warm_seconds(own, m, n, k, l40s, False)  # cold, the speed-up plays no part
    assert _warm_seconds(own, m, n, k, l40s, True) < _warm_seconds(params, m, n, k, l40s, True) < cold
    # a side-by-side-warp tile keeps the class's speed-up
    assert _warm_seconds(params, 16, n, k, l40s, True) == _warm_seconds(own, 16, n, k, l40s, True)


def test_the_fitter_recovers_a_stacked_warp_floor_only_where_the_family_has_stacked_tiles(l40s):
    truth = DEFAULT_KERNELS.model_copy(update={"gemm_fp8": _ada_fp8(efficiency=0.6, stacked_warp_floor_s=4e-6)})
    shapes = [(m, n, k) for m in (8, 32, 64, 512) for n in (1024, 4096, 32768) for k in (1024, 8192)]
    rows = pd.DataFrame([{"op_class": "gemm", "dtype": "fp8", "input_dtype": "fp8", "m": m, "n": n, "k": k}
                         for m, n, k in shapes])  # fmt: skip
    rows["measured_s"] = predict_ops(rows, l40s, truth)
    fitted = fit_class(rows, l40s, DEFAULT_KERNELS, "gemm_fp8", sweeps=2)
    assert fitted.gemm_fp8.stacked_warp_tiles == VLLM_SM89_FP8_STACKED_WARPS
    assert fitted.gemm_fp8.stacked_warp_floor_s == pytest.approx(4e-6, rel=0.15)
    assert np.allclose(predict_ops(rows, l40s, fitted), rows["measured_s"], rtol=0.05)
    # 16-bit GEMMs have no stacked-warp family: the terms stay at their defaults
    bf16 = rows.assign(dtype="bf16", input_dtype="bf16")
    bf16["measured_s"] = predict_ops(bf16, l40s, DEFAULT_KERNELS)
    assert fit_class(bf16, l40s, DEFAULT_KERNELS, "gemm", sweeps=1).gemm.stacked_warp_floor_s == 0.0


def test_a_stacked_warp_tile_must_be_one_of_the_candidate_tiles():
    data = _ada_fp8().model_dump() | {"stacked_warp_tiles": ((32, 64), (8, 8))}
    with pytest.raises(ValueError, match=r"stacked_warp_tiles: expected tiles among tiles .*, got \[\(8, 8\)\]"):
        GemmKernels.model_validate(data)
    assert GemmKernels.model_validate(_ada_fp8().model_dump()).stacked_warp_tiles == VLLM_SM89_FP8_STACKED_WARPS


@settings(max_examples=60, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.integers(1, 8192), st.integers(16, 65536), st.integers(16, 65536), st.booleans()),
        min_size=1, max_size=12,
    ),
    ada=st.booleans(),
)
def test_a_batch_of_shapes_costs_what_each_shape_costs_alone(shapes, ada):
    """The candidates are evaluated along a leading axis: pricing many shapes at once must give
    each shape's own price, to the bit (scalar shapes are the planner's path, arrays the fitter's)."""
    perf = DevicePerf(load_catalog().accelerator("l40s"))
    params = _ada_fp8(stacked_warp_floor_s=2e-6, stacked_warp_warm_speedup=2.0, warm_cache_speedup=3.0) if ada else (
        DEFAULT_KERNELS.gemm.model_copy(update={"serial_k_work": 2.0**21, "unit_bandwidth_share": 0.05}))
    m, n, k, warm = (np.array(column) for column in zip(*shapes, strict=True))
    nbytes = (m * k + k * n) * 1.0 + m * n * 2.0
    args = (perf.peak_flops("fp8"), perf.bandwidth_bytes_per_s, perf.compute_units)
    together = gemm_seconds(params, m, n, k, nbytes, *args, warm=warm)
    alone = [float(gemm_seconds(params, *row, *args, warm=w)) for *row, w in zip(m, n, k, nbytes, warm, strict=True)]
    assert together.tolist() == alone
