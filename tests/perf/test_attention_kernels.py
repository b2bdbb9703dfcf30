"""Attention's shape terms in the kernel model (``hetsim.perf.kernels.attention_seconds``), the
windowed attention work of public rows, and the fitter on synthetic rows with known parameters."""

import itertools

import numpy as np
import pandas as pd
import pytest

from hetsim.io.catalog import load_catalog
from hetsim.perf.attention_pairs import chunk_pairs, window_pairs
from hetsim.perf.kernel_fit import device_prefill_tilings, fit_class, fit_step_overheads, with_parameter
from hetsim.perf.kernels import (
    ATTENTION_TILE_ROWS,
    DEFAULT_KERNELS,
    AttentionShape,
    attention_seconds,
    flash_tiles,
    kernel_seconds,
)
from hetsim.perf.public_rows import attention_shape, attention_work, predict_ops
from hetsim.perf.roofline import DevicePerf
from hetsim.specs.calibration import CalibrationProvenance, CalibrationSpec, CurveKind, KernelClass
from hetsim.specs.common import SecondsQ

PEAK, BANDWIDTH, UNITS = 1e15, 3e12, 132
PLAIN = KernelClass(efficiency=1.0, memory_efficiency=1.0, floor_s=0.0)


def _shape(batch=1, q=1, kv=1024, heads=8, kv_heads=8, head_dim=128, window=np.nan, warm=None) -> AttentionShape:
    q_arr, kv_arr, w = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (q, kv, window))
    _, kv_read = window_pairs(q_arr, kv_arr, w)
    return AttentionShape(batch=np.atleast_1d(float(batch)), q_tokens=q_arr, kv_read=kv_read, window=w,
                          heads=np.atleast_1d(float(heads)), kv_heads=np.atleast_1d(float(kv_heads)),
                          head_dim=np.atleast_1d(float(head_dim)), warm_cache_bytes=warm)  # fmt: skip


def _work(shape: AttentionShape) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes of ``_shape``'s op (whose cached keys are ``kv_read - q`` without a window)."""
    windowed = np.isfinite(shape.window)
    cached = np.where(windowed, 0.0, shape.kv_read - shape.q_tokens)
    pairs, kv_read = window_pairs(shape.q_tokens, cached, shape.window)
    flops = shape.batch * pairs * 4.0 * shape.head_dim * shape.heads
    nbytes = shape.batch * (kv_read * 2 * shape.kv_heads + shape.q_tokens * 2 * shape.heads) * shape.head_dim * 2.0
    return flops, nbytes


def _seconds(params: KernelClass, shape: AttentionShape, decode: bool, peak=PEAK, bandwidth=BANDWIDTH) -> float:
    flops, nbytes = _work(shape)
    return float(attention_seconds(params, flops, nbytes, peak, bandwidth, UNITS, shape, decode)[0])


@pytest.mark.parametrize("q, cached, window", [(1, 100, 50), (1, 10, 50), (100, 0, 30), (100, 0, None), (5, 40, 42),
                                               (16384, 0, 128), (1, 131071, 8192), (7, 3, 1)])  # fmt: skip
def test_windowed_pairs_and_keys_read_are_the_simulators(q, cached, window):
    pairs, kv_read = window_pairs(np.array([q], float), np.array([cached], float), np.array([np.nan if window is None else window]))
    assert (pairs[0], kv_read[0]) == pytest.approx(chunk_pairs([(q, cached)], window))


def test_a_sliding_window_bounds_a_public_rows_work():
    row = {"op_class": "attention_prefill", "dtype": "bf16", "batch": 2, "q_tokens": 16384, "kv_tokens": 0, "heads": 8,
           "kv_heads": 8, "head_dim": 128}  # fmt: skip
    rows = pd.DataFrame([row, {**row, "window": 128.0}])
    flops, nbytes = attention_work(rows)
    pairs, _ = chunk_pairs([(16384, 0)], 128)
    assert flops[1] == pytest.approx(2 * pairs * 4 * 128 * 8)
    assert flops[1] < flops[0] / 50 and nbytes[1] == nbytes[0]  # every key is still read once


def test_with_every_shape_term_off_attention_is_the_roofline_plus_its_work_items():
    params = DEFAULT_KERNELS.attention_decode
    shape = _shape(batch=16, kv=4096, heads=32, kv_heads=8, warm=1e9)
    flops, nbytes = _work(shape)
    expected = kernel_seconds(params, flops, nbytes, PEAK, BANDWIDTH) + 16 * 8 * params.sequence_s
    assert _seconds(params, shape, True) == pytest.approx(float(expected[0]))


def test_a_prefill_with_fewer_query_tiles_than_units_lasts_as_long_as_its_longest_tile():
    params = PLAIN.model_copy(update={"cta_efficiency": 0.5})
    one_head = _shape(q=8192, kv=0, heads=1, kv_heads=1)
    longest = 4.0 * 128 * ATTENTION_TILE_ROWS * 8192 / (PEAK / UNITS * 0.5)
    assert _seconds(params, one_head, False) == pytest.approx(longest)
    # 64 query tiles on 132 units: more heads fill idle units, time stays that of the longest tile
    assert _seconds(params, _shape(q=8192, kv=0, heads=2, kv_heads=2), False) == pytest.approx(longest)
    # enough heads to fill the device: the roofline's total FLOPs bound it again
    many = _shape(q=8192, kv=0, heads=64, kv_heads=64)
    assert _seconds(params, many, False) == pytest.approx(float(_work(many)[0][0]) / PEAK)
    # a sliding window bounds the keys the last tile sees
    windowed = _shape(q=8192, kv=0, heads=1, kv_heads=1, window=256)  # (a prefill: nothing cached)
    assert _seconds(params, windowed, False) == pytest.approx(4.0 * 128 * 128 * (256 + 127) / (PEAK / UNITS * 0.5))


def test_fa2s_paged_prefill_runs_a_64_row_tile_per_query_head_and_fa3_packs_grouped_heads():
    shape = _shape(batch=4, q=100, kv=0, heads=32, kv_heads=8)
    ctas, rows, keys, swapped = flash_tiles("fa2-paged", shape)
    assert (ctas[0], rows[0], keys[0], swapped[0]) == (4 * 32 * 2, 64, 128, False)  # ceil(100 / 64) tiles per head
    ctas, rows, keys, _ = flash_tiles("fa3", shape)
    assert (ctas[0], rows[0], keys[0]) == (4 * 8 * 4, 128, 128)  # 100 x 4 packed rows per KV head: 4 tiles of 128
    assert flash_tiles("fa3", _shape(q=16, kv=0, heads=8, kv_heads=2))[1][0] == 64  # 64 packed rows: one warpgroup
    assert flash_tiles("fa2-paged", _shape(q=100, kv=0, head_dim=64))[2][0] == 256
    # a one-token prefill of grouped heads takes FA2's decode swap: a CTA per (sequence, KV head)
    ctas, _, _, swapped = flash_tiles("fa2-paged", _shape(batch=4, q=1, kv=0, heads=32, kv_heads=8))
    assert (ctas[0], swapped[0]) == (4 * 8, True)
    with pytest.raises(ValueError, match="tiling"):
        flash_tiles("fa9", shape)


def test_a_tiled_prefill_pays_whole_tiles_per_cta_and_ends_with_its_longest_tile_alone():
    params = PLAIN.model_copy(update={"tiling": "fa2-paged", "item_s": 1e-6})
    short = _shape(batch=64, q=16, kv=0, heads=32, kv_heads=8)  # 16 tokens: a whole 64-row tile per head
    assert _seconds(params, short, False) == pytest.approx(64 * 32 * 1e-6)
    assert _seconds(params.model_copy(update={"tiling": "fa3"}), short, False) == pytest.approx(64 * 8 * 1e-6)
    params = PLAIN.model_copy(update={"tiling": "fa2-paged", "cta_efficiency": 0.5})
    one_head = _shape(q=8192, kv=0, heads=1, kv_heads=1)
    longest = 4.0 * 128 * 64 * 8192 / (PEAK / UNITS * 0.5)  # the last 64-row tile over 64 key tiles of 128
    assert _seconds(params, one_head, False) == pytest.approx(float(_work(one_head)[0][0]) / PEAK + longest)
    windowed = _shape(q=8192, kv=0, heads=1, kv_heads=1, window=256)  # 256 + 63 keys: 3 key tiles
    window_longest = 4.0 * 128 * 64 * 3 * 128 / (PEAK / UNITS * 0.5)
    assert _seconds(params, windowed, False) == pytest.approx(float(_work(windowed)[0][0]) / PEAK + window_longest)


def test_fa2s_one_token_prefill_of_grouped_heads_pays_the_regrouping_copies():
    base = PLAIN.model_copy(update={"tiling": "fa2-paged"})
    params = base.model_copy(update={"regroup_s": 3e-6})
    for batch, heads, kv_heads, extra in [(8, 32, 8, 3e-6), (1, 32, 8, 0.0), (8, 32, 1, 0.0), (8, 8, 8, 0.0)]:
        shape = _shape(batch=batch, q=1, kv=0, heads=heads, kv_heads=kv_heads)
        assert _seconds(params, shape, False) - _seconds(base, shape, False) == pytest.approx(extra)
    shape = _shape(batch=8, q=1, kv=0, heads=32, kv_heads=8)
    fa3 = base.model_copy(update={"tiling": "fa3"})
    assert _seconds(fa3.model_copy(update={"regroup_s": 3e-6}), shape, False) == _seconds(fa3, shape, False)


@pytest.mark.parametrize("tiling", ["fa2-paged", "fa3"])
def test_a_tiled_prefill_is_never_slower_on_more_flops_or_bandwidth_nor_faster_on_a_larger_batch(tiling):
    params = TERMS.model_copy(update={"tiling": tiling})
    for case in SHAPES:
        shape = _shape(**case, warm=50e6)
        seconds = _seconds(params, shape, False)
        assert _seconds(params, shape, False, peak=2 * PEAK) <= seconds
        assert _seconds(params, shape, False, bandwidth=2 * BANDWIDTH) <= seconds
        assert _seconds(params, _shape(**{**case, "batch": case["batch"] + 1}, warm=50e6), False) >= seconds


@pytest.mark.parametrize("tiling", ["fa2-paged", "fa3"])
def test_the_prefill_fitter_keeps_the_grid_its_rows_ran_on(tiling):
    a100 = load_catalog().accelerator("a100-80gb-sxm")
    units = a100.compute_units.model_copy(update={"compute_capability": None})  # both grids compete
    perf = DevicePerf(a100.model_copy(update={"compute_units": units}))
    truth = DEFAULT_KERNELS.attention_prefill.model_copy(update={
        "tiling": tiling, "cta_efficiency": 0.6, "item_s": 4e-8, "regroup_s": 5e-6})  # fmt: skip
    kernels = DEFAULT_KERNELS.model_copy(update={"attention_prefill": truth})
    grid = itertools.product((1, 8, 64), (1, 16, 100, 1024, 8192), ((8, 8), (32, 8), (8, 1), (64, 1)))
    rows = pd.DataFrame([{"op_class": "attention_prefill", "dtype": "bf16", "batch": b, "q_tokens": q, "kv_tokens": 0,
                          "heads": h, "kv_heads": k, "head_dim": 128} for b, q, (h, k) in grid])  # fmt: skip
    rows["measured_s"] = predict_ops(rows, perf, kernels)
    fitted = fit_class(rows, perf, DEFAULT_KERNELS, "attention_prefill", sweeps=2)
    assert fitted.attention_prefill.tiling == tiling
    error = np.abs(predict_ops(rows, perf, fitted) / rows["measured_s"] - 1.0)
    assert np.median(error) < 0.05


def test_decode_without_grouped_queries_streams_a_share_per_sequence_and_head():
    params = PLAIN.model_copy(update={"unsplit_cta_share": 0.01})
    mha = _shape(batch=1, kv=65535, heads=4, kv_heads=4)
    gqa = _shape(batch=1, kv=65535, heads=32, kv_heads=4)
    assert _seconds(params, mha, True) == pytest.approx(float(_work(mha)[1][0]) / (BANDWIDTH * 0.04))
    assert _seconds(params, gqa, True) == pytest.approx(float(_work(gqa)[1][0]) / BANDWIDTH)  # split-KV
    full = _shape(batch=64, kv=65535, heads=4, kv_heads=4)  # 256 CTAs: the whole bandwidth
    assert _seconds(params, full, True) == pytest.approx(float(_work(full)[1][0]) / BANDWIDTH)


def test_regrouping_queries_costs_only_when_the_transpose_moves_data():
    params = PLAIN.model_copy(update={"regroup_s": 3e-6})
    base = PLAIN
    for batch, heads, kv_heads, extra in [(8, 32, 8, 3e-6), (1, 32, 8, 0.0), (8, 32, 1, 0.0), (8, 8, 8, 0.0)]:
        shape = _shape(batch=batch, kv=1024, heads=heads, kv_heads=kv_heads)
        assert _seconds(params, shape, True) - _seconds(base, shape, True) == pytest.approx(extra)
        assert _seconds(params, shape, False) == _seconds(base, shape, False)  # a decode term only


def test_few_sequences_stream_their_keys_at_a_bounded_rate():
    params = PLAIN.model_copy(update={"stream_token_s": 1e-9, "stream_sequences": 4.0})
    for batch in (1, 2, 4, 8):
        shape = _shape(batch=batch, kv=65535, heads=8, kv_heads=1)
        floor = min(batch, 4) * 65536 * 1e-9
        assert _seconds(params, shape, True) == pytest.approx(max(floor, float(_work(shape)[1][0]) / BANDWIDTH))


def test_a_warm_cache_speeds_up_only_repeated_calls_whose_bytes_fit():
    params = PLAIN.model_copy(update={"warm_cache_speedup": 2.0})
    small, large = _shape(batch=1, kv=4096, heads=8, kv_heads=8), _shape(batch=64, kv=65535, heads=8, kv_heads=8)
    for shape, fits in ((small, True), (large, False)):
        cold = _seconds(params, shape, True)
        warm = _seconds(params, AttentionShape(**{**shape.__dict__, "warm_cache_bytes": 50e6}), True)
        assert warm == pytest.approx(cold / 2.0 if fits else cold)


def test_work_items_overlap_the_roofline_and_the_step_pricer_adds_only_the_added_part():
    params = PLAIN.model_copy(update={"item_s": 1e-7, "sequence_s": 1e-8})
    shape = _shape(batch=256, kv=15, heads=8, kv_heads=8)
    items = 256 * 8
    roofline = float(_work(shape)[1][0]) / BANDWIDTH
    assert _seconds(params, shape, True) == pytest.approx(max(roofline, items * 1e-7) + items * 1e-8)
    spec = CalibrationSpec(
        schema_version=1, device="h100-sxm", launch_overhead=SecondsQ(value=1, unit="us"),
        provenance=CalibrationProvenance(kind="t", device_description="t", date="d", tool="t"),
        kernels=DEFAULT_KERNELS.model_copy(update={"attention_decode": params}),
    )  # fmt: skip
    perf = DevicePerf(load_catalog().accelerator("h100-sxm"), spec, time_scale=2.0)
    assert perf.sequence_s(CurveKind.ATTENTION_DECODE) == pytest.approx(2.0 * 1e-8)  # the added part only


SHAPES = [dict(batch=b, q=q, kv=kv, heads=h, kv_heads=k) for b, (q, kv), (h, k) in
          itertools.product((1, 3, 16, 256), ((1, 127), (1, 65535), (512, 0), (4096, 0)), ((1, 1), (8, 8), (32, 4), (64, 8)))]  # fmt: skip
TERMS = PLAIN.model_copy(update={"cta_efficiency": 0.6, "unsplit_cta_share": 0.02, "regroup_s": 2e-6, "stream_token_s": 1e-9,
                                 "stream_sequences": 12.0, "warm_cache_speedup": 2.0, "item_s": 2e-8, "floor_s": 1e-5})  # fmt: skip


@pytest.mark.parametrize("case", SHAPES, ids=str)
def test_more_flops_or_bandwidth_is_never_slower_and_a_larger_batch_never_faster(case):
    decode = case["q"] == 1
    shape = _shape(**case, warm=50e6)
    seconds = _seconds(TERMS, shape, decode)
    assert _seconds(TERMS, shape, decode, peak=2 * PEAK) <= seconds
    assert _seconds(TERMS, shape, decode, bandwidth=2 * BANDWIDTH) <= seconds
    assert _seconds(TERMS, _shape(**{**case, "batch": case["batch"] + 1}, warm=50e6), decode) >= seconds


def test_the_fitter_recovers_known_decode_terms():
    perf = DevicePerf(load_catalog().accelerator("a100-80gb-sxm"))
    truth = DEFAULT_KERNELS.attention_decode.model_copy(update={
        "memory_efficiency": 0.75, "floor_s": 1.5e-5, "sequence_s": 0.0, "item_s": 3e-8, "unsplit_cta_share": 0.015,
        "regroup_s": 2.5e-6, "stream_token_s": 1.7e-9, "stream_sequences": 1.0})  # fmt: skip
    kernels = DEFAULT_KERNELS.model_copy(update={"attention_decode": truth})
    grid = itertools.product((1, 2, 8, 64, 512), (15, 1023, 16383, 131071), ((8, 8), (32, 8), (8, 1), (64, 1)))
    rows = pd.DataFrame([{"op_class": "attention_decode", "dtype": "bf16", "batch": b, "q_tokens": 1, "kv_tokens": kv,
                          "heads": h, "kv_heads": k, "head_dim": 128} for b, kv, (h, k) in grid])  # fmt: skip
    rows["measured_s"] = predict_ops(rows, perf, kernels)
    fitted = fit_class(rows, perf, DEFAULT_KERNELS, "attention_decode")
    assert np.allclose(predict_ops(rows, perf, fitted), rows["measured_s"], rtol=0.05)
    assert fitted.attention_decode.unsplit_cta_share == pytest.approx(0.015, rel=0.1)
    assert fitted.attention_decode.regroup_s == pytest.approx(2.5e-6, rel=0.2)
    assert fitted.attention_decode.floor_s == pytest.approx(1.5e-5, rel=0.1)
    assert np.isnan(attention_shape(rows, perf).warm_cache_bytes).all()  # no source: nothing assumed warm


def test_a_valley_coordinate_moves_one_term_against_the_other_and_keeps_their_sum():
    kernels = DEFAULT_KERNELS.model_copy(update={"attention_decode": PLAIN.model_copy(update={"floor_s": 1.6e-5, "regroup_s": 2e-6})})
    moved = with_parameter(kernels, "attention_decode.floor_s~regroup_s", 1.2e-5).attention_decode
    assert (moved.floor_s, moved.regroup_s) == pytest.approx((1.2e-5, 6e-6))
    beyond = with_parameter(kernels, "attention_decode.floor_s~regroup_s", 3e-5).attention_decode
    assert (beyond.floor_s, beyond.regroup_s) == (3e-5, 0.0)  # the other term never goes negative


def test_step_overheads_the_rows_cannot_tell_apart_keep_the_earlier_term_whatever_the_rounding():
    rng = np.random.default_rng(1)
    n = 40  # one model's steps: the layer count is one constant, so per-step and per-layer costs fit alike
    features = np.column_stack([np.ones(n), np.full(n, 80.0), rng.integers(1, 64, n), np.zeros(n), rng.integers(1, 8192, n)])
    kernel_s = rng.uniform(0.01, 0.2, n)
    measured = kernel_s + features @ np.array([0.0, 1.7e-4, 2e-4, 0.0, 3e-5])
    for scale in (1.0, 1.0005, 0.9995):
        terms = fit_step_overheads(kernel_s * scale, features, measured)
        assert terms["layer_overhead_s"] == 0.0 and terms["step_overhead_s"] > 0.0


def test_a_device_naming_its_compute_capability_is_fitted_on_its_flashattention_grid_only():
    catalog = load_catalog()
    assert device_prefill_tilings(catalog.accelerator("h100-sxm")) == ("fa3",)  # vLLM runs FA3 on sm90
    assert device_prefill_tilings(catalog.accelerator("l40s")) == ("fa2-paged",)
    assert device_prefill_tilings(catalog.accelerator("mi300x")) == ("fa2-paged", "fa3")  # unknown: both compete
