"""The analytical kernel model: tile and wave quantisation, per-kind floors, collectives,
planning for the model's error, and the fitters (on synthetic rows with known parameters)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetsim.errors import EstimateError
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.perf.kernel_fit import STEP_TERMS, fit_class, fit_step_overheads, with_parameter
from hetsim.perf.kernels import (
    DEFAULT_KERNELS,
    all_reduce_seconds,
    gemm_seconds,
    input_quant_seconds,
    kernel_seconds,
    kernel_seconds_scalar,
)
from hetsim.perf.llm import LlmReplica
from hetsim.perf.public_rows import predict_ops
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from hetsim.perf.uncertainty import DEFAULT_ERROR_BAND, DEFAULT_ERROR_BANDS, band_vendor, step_time_factor
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec, CollectiveKernels, CurveKind, GemmKernels
from hetsim.specs.common import SecondsQ
from hetsim.specs.hardware import DType
from tests.conftest import make_device

PROFILE = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
PEAK, BANDWIDTH, UNITS = 1e15, 3e12, 132
# Compute-bound, no floor, no split-K, one tile shape: the quantisation is all there is to see.
PLAIN = GemmKernels(efficiency=1.0, memory_efficiency=1.0, floor_s=0.0, tiles=((128, 128),), split_k=(1,))


def _compute_s(m: int, n: int, k: int) -> float:
    return float(gemm_seconds(PLAIN, m, n, k, 1.0, PEAK, BANDWIDTH, UNITS))


def test_a_row_past_a_tile_pays_for_the_whole_next_tile():
    n, k = 128 * UNITS * 4, 8192  # four full waves of tiles per 128 rows
    assert _compute_s(129, n, k) == pytest.approx(_compute_s(256, n, k))
    assert _compute_s(129, n, k) == pytest.approx(2 * _compute_s(128, n, k))


def test_one_tile_more_than_the_units_costs_a_second_wave():
    k = 4096
    full = _compute_s(128, 128 * UNITS, k)
    assert _compute_s(128, 128 * (UNITS + 1), k) == pytest.approx(2 * full)
    assert full == pytest.approx(2 * 128 * 128 * UNITS * k / PEAK)  # one full wave runs at peak


def test_split_k_fills_the_units_when_tiles_are_few():
    few = PLAIN.model_copy(update={"split_k": (1, 4)})
    unsplit = float(gemm_seconds(PLAIN, 128, 128 * 8, 65536, 1.0, PEAK, BANDWIDTH, UNITS))
    split = float(gemm_seconds(few, 128, 128 * 8, 65536, 1.0, PEAK, BANDWIDTH, UNITS))
    assert split == pytest.approx(unsplit / 4)


def test_without_compute_units_a_gemm_is_a_plain_roofline():
    seconds = float(gemm_seconds(PLAIN, 129, 1000, 1000, 1e6, PEAK, BANDWIDTH, None))
    assert seconds == pytest.approx(max(2 * 129 * 1000 * 1000 / PEAK, 1e6 / BANDWIDTH))


def test_each_kernel_kind_pays_its_own_floor(h100):
    perf = DevicePerf(h100)
    kernels = perf.kernels
    for kind, params in (
        (CurveKind.MEMORY, kernels.elementwise),
        (CurveKind.ATTENTION_DECODE, kernels.attention_decode),
        (CurveKind.ATTENTION_PREFILL, kernels.attention_prefill),
    ):
        assert perf.seconds(kind, DType.BF16, 1.0, 1.0) == pytest.approx(params.floor_s, rel=1e-3)
    assert len({kernels.elementwise.floor_s, kernels.attention_decode.floor_s, kernels.gemm.floor_s}) == 3


def test_all_reduce_latency_grows_with_ranks_and_bytes_ride_the_bus():
    params = CollectiveKernels(latency_s=10e-6, rank_latency_s=1e-6, efficiency=0.5)
    assert float(all_reduce_seconds(params, 1.0, 2, 100e9)) == pytest.approx(11e-6, rel=1e-3)
    assert float(all_reduce_seconds(params, 1.0, 8, 100e9)) == pytest.approx(17e-6, rel=1e-3)
    assert float(all_reduce_seconds(params, 1e9, 8, 100e9)) == pytest.approx(17e-6 + 1.75e9 / 50e9)
    assert float(all_reduce_seconds(params, 1e9, 1, 100e9)) == 0.0


@pytest.fixture(scope="module")
def h100():
    return load_catalog().accelerator("h100-sxm")


def _calibrated(device) -> CalibrationSpec:
    calibration = load_calibration(device.name)
    assert calibration is not None and calibration.kernels is not None
    return calibration


batches = st.lists(
    st.tuples(st.integers(1, 2048), st.integers(0, 8192)).map(lambda t: SequenceWork(*t)), min_size=1, max_size=8
)


@PROFILE
@given(batch=batches, extra=batches, calibrated=st.booleans())
def test_with_tile_quantisation_a_larger_batch_is_never_faster(model_catalog, h100, batch, extra, calibrated):
    perf = DevicePerf(h100, _calibrated(h100) if calibrated else None)
    replica = LlmReplica(model_catalog.model("llama-3-70b"), perf, Shard(tp=4), Precision())
    assert replica.step(batch + extra).seconds >= replica.step(batch).seconds * (1 - 1e-12)


@PROFILE
@given(batch=batches, factor=st.floats(1.0, 8.0), resource=st.sampled_from(["compute", "bandwidth"]))
def test_with_tile_quantisation_more_flops_or_bandwidth_is_never_slower(model_catalog, h100, batch, factor, resource):
    if resource == "compute":
        faster = h100.model_copy(update={"compute": h100.compute.model_copy(update={
            "bf16": h100.compute.bf16.model_copy(update={"value": h100.compute.bf16.value * factor})})})  # fmt: skip
    else:
        faster = h100.model_copy(update={"memory": h100.memory.model_copy(update={
            "bandwidth": h100.memory.bandwidth.model_copy(update={"value": h100.memory.bandwidth.value * factor})})})  # fmt: skip
    model = model_catalog.model("llama-3-8b")
    for calibration in (None, _calibrated(h100)):
        base = LlmReplica(model, DevicePerf(h100, calibration), Shard(tp=1), Precision()).step(batch).seconds
        quick = LlmReplica(model, DevicePerf(faster, calibration), Shard(tp=1), Precision()).step(batch).seconds
        assert quick <= base * (1 + 1e-12)


@PROFILE
@given(batch=batches, scale=st.floats(0.5, 4.0))
def test_a_time_scale_multiplies_every_path_of_a_step(model_catalog, h100, batch, scale):
    calibration = _calibrated(h100)
    model = model_catalog.model("llama-3-70b")
    base = LlmReplica(model, DevicePerf(h100, calibration), Shard(tp=4), Precision())
    scaled = LlmReplica(model, DevicePerf(h100, calibration, scale), Shard(tp=4), Precision())
    assert scaled.step(batch).seconds == pytest.approx(scale * base.step(batch).seconds, rel=1e-9)
    chunks = [(s.new_tokens, s.context_tokens) for s in batch]
    assert scaled.step_seconds_of(0, (), chunks) == pytest.approx(scale * base.step_seconds_of(0, (), chunks), rel=1e-9)
    runs = scaled.decode_run_times([100, 900], 5), base.decode_run_times([100, 900], 5)
    assert np.allclose(runs[0], scale * runs[1], rtol=1e-9)


@pytest.mark.parametrize("stack", [None, "vllm-splitwise-paper-2023"])
def test_the_simulators_pricing_matches_the_step_under_the_kernel_model(model_catalog, h100, stack):
    calibration = load_calibration(h100.name, stack=stack)
    assert (calibration.engine is not None) == (stack is not None)  # the stack adds engine overheads
    replica = LlmReplica(model_catalog.model("llama-3-70b"), DevicePerf(h100, calibration), Shard(tp=4), Precision())
    batch = [SequenceWork(1, 500), SequenceWork(1, 3000), SequenceWork(256, 0), SequenceWork(64, 1000)]
    chunks = [(s.new_tokens, s.context_tokens) for s in batch]
    assert replica.step_seconds_of(0, (), chunks) == pytest.approx(replica.step(batch).seconds, rel=1e-9)
    run = replica.affine_decode_run(2, [(replica.decode_seen([500, 3000])[0], 2)])
    exact = replica.decode_run_times([500, 3000], 4)
    assert run is not None and [run.step_s(j) for j in range(4)] == pytest.approx(list(exact), rel=1e-9)


def test_sizing_for_p90_multiplies_by_the_slow_tail_of_measured_over_predicted():
    spec = CalibrationSpec(
        schema_version=1, device="x", launch_overhead=SecondsQ(value=1, unit="us"),
        provenance=CalibrationProvenance(kind="t", device_description="t", date="d", tool="t"),
        error_band={"p10": -0.2, "p50": 0.0, "p90": 0.25},
    )  # fmt: skip
    assert step_time_factor(spec, "nominal") == 1.0
    assert step_time_factor(spec, "p90") == pytest.approx(1 / 0.8)  # predicted 20% fast: plan 1.25x slower
    assert step_time_factor(spec, "p10") == pytest.approx(1 / 1.25)
    assert step_time_factor(None, "p90") == pytest.approx(1 / (1 + DEFAULT_ERROR_BAND["p10"]))
    # a device without calibration: its vendor's measured band, else the band over every device
    assert step_time_factor(None, "p90", "amd") == pytest.approx(1 / (1 + DEFAULT_ERROR_BANDS["amd"]["p10"]))
    assert step_time_factor(None, "p10", "nvidia") == pytest.approx(1 / (1 + DEFAULT_ERROR_BANDS["nvidia"]["p90"]))
    assert step_time_factor(None, "p90", "google") == step_time_factor(None, "p90")
    assert step_time_factor(spec, "p90", "amd") == pytest.approx(1 / 0.8)  # a calibration's own band wins
    with pytest.raises(EstimateError, match="expected one of nominal"):
        step_time_factor(spec, "p95")
    with pytest.raises(EstimateError, match="time_scale"):
        DevicePerf(make_device(), None, 0.0)


def test_a_cpu_takes_the_band_over_every_device_not_its_vendors_gpu_serving_band():
    catalog = load_catalog()
    assert band_vendor(catalog.accelerator("mi300x")) == "amd"
    assert band_vendor(catalog.accelerator("gaudi3")) == "intel"
    for cpu in ("epyc-9654", "xeon-8480"):  # AMD's and Intel's CPUs run no ROCm / Gaudi stack
        assert band_vendor(catalog.accelerator(cpu)) is None
        assert step_time_factor(None, "p90", band_vendor(catalog.accelerator(cpu))) == step_time_factor(None, "p90")


def test_the_fitter_recovers_known_gemm_parameters(h100):
    truth = DEFAULT_KERNELS.model_copy(update={"gemm": DEFAULT_KERNELS.gemm.model_copy(
        update={"efficiency": 0.7, "k_half": 300.0, "memory_efficiency": 0.9, "floor_s": 4e-6, "split_k_s": 1e-6,
                "unit_bandwidth_share": 0.03})})  # fmt: skip
    grid = [(m, n, k) for m in (1, 16, 128, 1024, 8192) for n in (256, 4096, 16384) for k in (128, 1024, 8192)]
    rows = pd.DataFrame([{"op_class": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k} for m, n, k in grid])
    perf = DevicePerf(h100)
    rows["measured_s"] = predict_ops(rows, perf, truth)
    fitted = fit_class(rows, perf, DEFAULT_KERNELS, "gemm")
    assert np.allclose(predict_ops(rows, perf, fitted), rows["measured_s"], rtol=0.03)
    assert fitted.gemm.efficiency == pytest.approx(0.7, rel=0.05)
    assert fitted.gemm.memory_efficiency == pytest.approx(0.9, rel=0.05)
    assert with_parameter(fitted, "gemm.floor_s", 1.0).gemm.floor_s == 1.0


def test_quantising_an_fp8_gemms_input_costs_three_bytes_per_element_at_its_own_bandwidth():
    params = DEFAULT_KERNELS.input_quant
    assert params is not None
    seconds = input_quant_seconds(params, 8192, 4096, BANDWIDTH)
    assert seconds == pytest.approx(8192 * 4096 * 3.0 / (BANDWIDTH * params.memory_efficiency) + params.floor_s)
    assert input_quant_seconds(params, 8192, 4096, 2 * BANDWIDTH) < seconds  # more bandwidth is never slower


def test_only_fp8_rows_measured_on_16_bit_input_pay_for_quantising_it(h100):
    shape = {"op_class": "gemm", "m": 4096, "n": 4096, "k": 8192}
    rows = pd.DataFrame([
        {**shape, "dtype": "fp8", "input_dtype": "bf16"},  # AIConfigurator's linear layer: quantises its input
        {**shape, "dtype": "fp8", "input_dtype": "fp8"},  # a GEMM already given fp8 input
        {**shape, "dtype": "fp8"},  # a source that does not say
        {**shape, "dtype": "bf16", "input_dtype": "bf16"},
    ])
    perf = DevicePerf(h100)
    seconds = predict_ops(rows, perf)
    quant = input_quant_seconds(DEFAULT_KERNELS.input_quant, 4096, 8192, perf.bandwidth_bytes_per_s)
    assert seconds[0] == pytest.approx(seconds[1] + quant)
    assert seconds[1] == pytest.approx(seconds[2])
    assert seconds[3] == pytest.approx(predict_ops(rows.iloc[[3]].drop(columns="input_dtype"), perf)[0])


def test_the_fitter_recovers_the_input_quantisation_with_the_fp8_gemm(h100):
    truth = DEFAULT_KERNELS.model_copy(update={
        "gemm_fp8": DEFAULT_KERNELS.gemm.model_copy(update={"efficiency": 0.8}),
        "input_quant": DEFAULT_KERNELS.input_quant.model_copy(update={"memory_efficiency": 0.2, "floor_s": 3e-6}),
    })  # fmt: skip
    grid = [(m, n, k) for m in (1, 64, 1024, 8192) for n in (32, 4096, 16384) for k in (128, 8192, 65536)]
    rows = pd.DataFrame([{"op_class": "gemm", "dtype": "fp8", "input_dtype": "bf16", "m": m, "n": n, "k": k} for m, n, k in grid])
    units = h100.compute_units.model_copy(update={"compute_capability": None})  # the generic family competes
    perf = DevicePerf(h100.model_copy(update={"compute_units": units}))
    rows["measured_s"] = predict_ops(rows, perf, truth)
    fitted = fit_class(rows, perf, DEFAULT_KERNELS, "gemm_fp8")
    assert np.allclose(predict_ops(rows, perf, fitted), rows["measured_s"], rtol=0.05)
    assert fitted.input_quant.memory_efficiency == pytest.approx(0.2, rel=0.1)


def test_step_overheads_are_recovered_and_never_negative():
    rng = np.random.default_rng(0)
    features = np.column_stack([np.ones(40), rng.integers(32, 96, 40), rng.integers(1, 64, 40), rng.uniform(0, 1e8, 40), rng.integers(1, 8192, 40)])
    kernel_s = rng.uniform(0.01, 0.2, 40)
    truth = np.array([5e-3, 1e-4, 0.0, 2e-10, 3e-6])
    terms = fit_step_overheads(kernel_s, features, kernel_s + features @ truth)
    assert [terms[t] for t in STEP_TERMS] == pytest.approx(list(truth), rel=1e-6, abs=1e-12)
    negative = fit_step_overheads(kernel_s, features, kernel_s * 0.9)  # steps faster than kernels alone
    assert all(value >= 0 for value in negative.values())


@PROFILE
@given(flops=st.floats(0, 1e15), nbytes=st.floats(0, 1e12), saturating=st.booleans())
def test_the_scalar_and_vector_kernel_formulas_agree(flops, nbytes, saturating):
    params = DEFAULT_KERNELS.attention_prefill if saturating else DEFAULT_KERNELS.attention_decode
    vector = float(kernel_seconds(params, flops, nbytes, PEAK, BANDWIDTH))
    assert kernel_seconds_scalar(params, flops, nbytes, PEAK, BANDWIDTH) == pytest.approx(vector, rel=1e-12)
