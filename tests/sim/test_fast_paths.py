"""The engine's fast paths equal the straightforward computations they replace.

Pricing: closed-form decode runs (``AffineDecodeRun``) and array-priced runs equal
``decode_run_times`` and per-step ``step()``; pricing a step from summed decode keys equals
``step()``. Bookkeeping: the ``DecodeSet`` answers what visiting every member would. Whole
runs: skipping iterations changes no record for sliding-window models, calibrated devices,
disaggregated pools and agent sessions with tools and prefix caching.
"""

import numpy as np
import pandas as pd
import pytest

from hetsim.perf.attention_pairs import chunk_pairs
from hetsim.perf.decode_run import AffineDecodeRun, ArrayDecodeRun
from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import DevicePerf, serving_perf
from hetsim.perf.transformer import Precision, SequenceWork, Shard, _attention_pairs
from hetsim.sim.build import build_simulation
from hetsim.sim.decode_set import DecodeSet
from hetsim.sim.engine import SimConfig
from hetsim.sim.llm_server import LlmCall, SeqState
from hetsim.specs.calibration import DEFAULT_ENGINE, DEFAULT_ENGINE_SOURCE, CalibrationSpec, EngineOverheads
from hetsim.workload.trace import NodeType, TraceStep
from tests.conftest import make_device
from tests.sim.conftest import llm_pool, plan, poisson_llm_trace, trace_frame

MODELS = ["llama-3-8b", "gpt-oss-120b", "deepseek-v3", "mixtral-8x7b"]


def _calibration(device: str = "testgpu") -> CalibrationSpec:
    """Curves whose efficiency changes with op size (so no closed form applies)."""
    return CalibrationSpec.model_validate(
        {
            "schema_version": 1,
            "device": device,
            "provenance": {"kind": "synthetic", "device_description": "t", "date": "2026-11-22", "tool": "test"},
            "launch_overhead": {"value": 4, "unit": "us"},
            "curves": [
                {"kind": "gemm", "axis": "log10_flops", "points": [[6, 0.1], [9, 0.5], [12, 0.8]]},
                {"kind": "gemv", "axis": "log10_bytes", "points": [[4, 0.2], [7, 0.6], [9, 0.85]]},
                {"kind": "memory", "axis": "log10_bytes", "points": [[4, 0.3], [8, 0.9]]},
                {"kind": "attention_decode", "axis": "log10_bytes", "points": [[4, 0.1], [6, 0.4], [9.5, 0.8]]},
            ],
        }
    )


def _replica(model_catalog, name: str, pp: int = 1, calibrated: bool = False) -> LlmReplica:
    device = make_device(memory_gb=2000)
    perf = DevicePerf(device, _calibration() if calibrated else None)
    return LlmReplica(model_catalog.model(name), perf, Shard(tp=4, pp=pp), Precision())


def _seen(replica: LlmReplica, contexts: list[int]) -> list[tuple[float, int]]:
    """Per attention group: keys read at the first step and how many more per step."""
    keys = replica.decode_seen(contexts)
    windows = [window for _, window in replica._attention_params[3]]
    return [
        (k, len(contexts) if w is None else sum(c + 1 < w for c in contexts))
        for k, w in zip(keys, windows, strict=True)
    ]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("pp", [1, 2])
def test_closed_form_decode_run_equals_decode_run_times_and_per_step_pricing(model_catalog, name, pp):
    replica = _replica(model_catalog, name, pp)
    contexts = [300, 900, 1270, 4000]  # beyond any sliding window: the keys read grow linearly
    steps = 150
    run = replica.affine_decode_run(len(contexts), _seen(replica, contexts))
    assert isinstance(run, AffineDecodeRun)
    times = replica.decode_run_times(contexts, steps)
    ends = np.cumsum(times)
    per_step = [replica.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(0, steps, 7)]
    assert [run.step_s(j) for j in range(0, steps, 7)] == pytest.approx(per_step, rel=1e-12)
    assert [run.step_s(j) for j in range(steps)] == pytest.approx(times.tolist(), rel=1e-12)
    assert [run.end_s(k) for k in range(1, steps + 1)] == pytest.approx(ends.tolist(), rel=1e-12)
    assert run.max_step_s(steps) == pytest.approx(times.max(), rel=1e-12)
    array_run = ArrayDecodeRun(times)
    for elapsed in np.random.default_rng(0).uniform(0, ends[-1] * 1.05, 400):
        assert run.steps_by(float(elapsed), steps) == array_run.steps_by(float(elapsed), steps)


def test_closed_form_run_covers_sequences_below_the_window_until_they_reach_it(model_catalog):
    replica = _replica(model_catalog, "gpt-oss-120b")  # 128-token sliding window on half the layers
    contexts = [10, 40, 500]
    steps = 128 - 1 - 40  # the 40-token sequence reads the whole window at the last step
    run = replica.affine_decode_run(len(contexts), _seen(replica, contexts))
    expected = replica.decode_run_times(contexts, steps)
    assert [run.step_s(j) for j in range(steps)] == pytest.approx(expected.tolist(), rel=1e-12)
    assert run.end_s(steps) == pytest.approx(float(expected.sum()), rel=1e-12)


def test_a_calibrated_device_has_no_closed_form_and_prices_runs_exactly(model_catalog):
    replica = _replica(model_catalog, "llama-3-8b", calibrated=True)
    contexts = [100, 2000, 30000]
    assert replica.affine_decode_run(len(contexts), _seen(replica, contexts)) is None
    times = replica.decode_run_times(contexts, 60)
    run = ArrayDecodeRun(times)
    per_step = [replica.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(60)]
    assert times.tolist() == pytest.approx(per_step, rel=1e-12)
    assert run.end_s(60) == pytest.approx(sum(per_step), rel=1e-12)
    assert run.max_step_s(30) == pytest.approx(max(per_step[:30]), rel=1e-12)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("calibrated", [False, True])
def test_step_priced_from_summed_decode_keys_equals_step(model_catalog, name, calibrated):
    replica = _replica(model_catalog, name, calibrated=calibrated)
    decodes = [5, 126, 127, 900]
    chunks = [SequenceWork(700, 300), SequenceWork(1, 60), SequenceWork(40, 0)]
    batch = [SequenceWork(1, c) for c in decodes] + chunks
    fast = replica.mixed_step_seconds(len(decodes), replica.decode_seen(decodes), chunks)
    assert fast == pytest.approx(replica.step(batch).seconds, rel=1e-12)
    assert replica.step_seconds(batch) == pytest.approx(replica.step(batch).seconds, rel=1e-12)


@pytest.mark.parametrize("window", [None, 2, 128])
def test_chunk_pairs_count_each_querys_keys(window):
    """Against brute force: query i of a chunk on c cached tokens sees keys
    [max(0, c + i - window), c + i); the chunk reads the union of them."""
    chunks = [(1, 0), (4, 0), (1, 1_000), (300, 700), (128, 1)]
    pairs, kv_read = 0, 0
    for q, c in chunks:
        seen = [range(max(0, c + i - window) if window else 0, c + i) for i in range(1, q + 1)]
        pairs += sum(len(keys) for keys in seen)
        kv_read += len(set().union(*seen))
    assert chunk_pairs(chunks, window) == (pairs, kv_read)
    assert _attention_pairs(tuple(SequenceWork(q, c) for q, c in chunks), window) == (pairs, kv_read)


def _member(kv: int, generated: int, output: int) -> SeqState:
    state = SeqState(LlmCall(0, kv, output), kv, prefilled=kv, generated=generated, kv_tokens=kv)
    state.blocks = -(-kv // 16)
    return state


def test_decode_set_answers_what_visiting_every_member_would(rng):
    members = [
        _member(int(kv), 1, int(out)) for kv, out in zip(rng.integers(1, 400, 40), rng.integers(9, 90, 40), strict=True)
    ]
    decode = DecodeSet(16, (None, 128))
    for state in members:
        decode.add(state)
    decode.advance(3, 0.5, 1.0)  # every member gains three tokens
    kv = [state.kv_tokens + 3 for state in members]
    for steps in (1, 2, 15, 16, 17, 40, 90):
        brute = sum(-(-(k + steps) // 16) - -(-k // 16) for k in kv)
        assert decode.blocks_to_advance(steps) == brute
        assert decode.run_blocks(steps) == brute - sum(-(-(k + 1) // 16) - -(-k // 16) for k in kv)

    def need(steps):  # blocks beyond those the first step holds
        return sum(-(-(k + steps) // 16) - -(-(k + 1) // 16) for k in kv)

    for free in (0, 1, 5, 37, 200):
        assert decode.steps_until_full(free) == max(k for k in range(1, 400) if need(k) <= free)
    assert decode.keys_seen() == [float(sum(k + 1 for k in kv)), float(sum(min(k + 1, 128) for k in kv))]
    assert decode.min_remaining() == min(state.call.output_tokens - 4 for state in members)
    decode.remove(members[0])
    assert (members[0].kv_tokens, members[0].generated, members[0].last_token_s) == (kv[0], 4, 1.0)
    assert members[0].blocks == -(-kv[0] // 16)
    assert members[0].max_gap_s == 0.5


def test_decode_set_reports_each_member_once_when_it_finishes():
    members = [_member(100, 1, 5), _member(40, 3, 5), _member(7, 1, 9)]
    decode = DecodeSet(16, (None,))
    for state in members:
        decode.add(state)
    assert decode.min_remaining() == 2
    assert decode.advance(2, 0.1, 1.0) == [members[1]]
    decode.remove(members[1])
    assert decode.advance(2, 0.3, 2.0) == [members[0]]
    decode.remove(members[0])
    assert decode.advance(4, 0.2, 3.0) == [members[2]]
    decode.remove(members[2])
    assert members[2].max_gap_s == 0.3 and members[2].generated == 9 and members[2].last_token_s == 3.0


# ---- whole runs: skipping iterations changes no record -------------------------------------


CALL_COLUMNS = ["first_token_s", "done_s", "admitted_s", "tbt_max_s", "preemptions", "cached_tokens", "replica"]


def _run(hardware, model_catalog, the_plan, trace, calibrations=None, **config):
    return _simulation(hardware, model_catalog, the_plan, trace, calibrations, **config).frames()


def _simulation(hardware, model_catalog, the_plan, trace, calibrations=None, **config):
    sim = build_simulation(the_plan, trace, hardware, model_catalog, calibrations, config=SimConfig(**config))
    sim.run()
    return sim


def _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace, calibrations=None):
    fast_sim = _simulation(hardware, model_catalog, the_plan, trace, calibrations)
    fast = fast_sim.frames()
    slow = _run(hardware, model_catalog, the_plan, trace, calibrations, max_skip=1)
    pd.testing.assert_frame_equal(fast["llm_calls"][CALL_COLUMNS], slow["llm_calls"][CALL_COLUMNS], rtol=1e-9)
    assert fast["replicas"]["steps"].sum() == slow["replicas"]["steps"].sum()
    assert fast["replicas"]["events"].sum() < slow["replicas"]["events"].sum()
    pd.testing.assert_frame_equal(fast["steps"], slow["steps"], rtol=1e-9)
    return fast_sim


def test_skipping_changes_nothing_for_a_sliding_window_model_under_kv_pressure(hardware, model_catalog, rng):
    trace = poisson_llm_trace(rng, 250, rate=40.0, model="gpt-oss-120b")
    the_plan = plan({**llm_pool(device="h200", model="gpt-oss-120b", memory_utilization=0.43), "tp": 4})
    fast = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace)
    assert fast.frames()["llm_calls"]["preemptions"].sum() > 0
    # runs in which a sequence reaches the window have no closed form: priced step by step
    assert sum(server.stats.stepwise_runs for server in fast.llm_routes["gpt-oss-120b"].servers) > 0


def test_skipping_changes_nothing_on_a_calibrated_device(hardware, model_catalog, rng):
    trace = poisson_llm_trace(rng, 250, rate=40.0)
    the_plan = plan(llm_pool(replicas=2, memory_utilization=0.3))
    _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace, {"h100-sxm": _calibration("h100-sxm")})


def test_skipping_changes_nothing_for_disaggregated_pools(hardware, model_catalog, rng):
    the_plan = plan(
        llm_pool("prefill", "h100-sxm", stage="prefill"),
        llm_pool("decode", "gaudi3", stage="decode", replicas=2),
        kv_transfers=({"model": "llama-3-8b", "prefill_pool": "prefill", "decode_pool": "decode", "link": "roce-400"},),
    )
    _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, poisson_llm_trace(rng, 300, rate=15.0))


def _agent_trace(rng, sessions: int) -> pd.DataFrame:
    """Sessions of LLM <-> tool turns whose prompts grow and reuse the previous prefix."""
    steps = []
    for s in range(sessions):
        start, context = float(s) * 0.7, int(rng.integers(300, 3000))
        for turn in range(4):
            step = 2 * turn
            parents = (step - 1,) if turn else ()
            prompt = context + int(rng.integers(20, 400))
            output = int(rng.integers(5, 80))
            steps.append(
                TraceStep(
                    f"s{s}", step, start, "agent", NodeType.LLM, parents=parents, model="llama-3-8b",
                    input_tokens=prompt, output_tokens=output, cached_prefix_tokens=context if turn else None,
                )
            )  # fmt: skip
            duration = float(rng.exponential(0.3))
            steps.append(
                TraceStep(f"s{s}", step + 1, start, "tool", NodeType.TOOL, parents=(step,), duration_s=duration)
            )
            context = prompt + output
    return trace_frame(steps)


@pytest.mark.parametrize("routing", ["prefix-aware", "least-outstanding"])
def test_skipping_changes_nothing_for_agent_sessions_with_tools_and_prefix_caching(
    hardware, model_catalog, rng, routing
):
    the_plan = plan(
        {**llm_pool(replicas=3, memory_utilization=0.3), "routing": routing},
        {"name": "cpu", "device": "xeon-8480", "replicas": 2, "concurrency": 2, "node_types": ["tool"]},
    )
    fast = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, _agent_trace(rng, 60))
    assert fast.frames()["llm_calls"]["cached_tokens"].sum() > 0


def test_a_run_leaves_the_garbage_collector_as_it_found_it(hardware, model_catalog, rng):
    import gc

    assert gc.isenabled()
    _run(hardware, model_catalog, plan(llm_pool()), poisson_llm_trace(rng, 20, rate=5.0))
    assert gc.isenabled()


def test_a_horizon_run_is_the_full_run_cut_at_the_horizon(hardware, model_catalog, rng):
    """With a horizon the run goes through SimPy's ``run(until=...)`` (the environment's
    ``step``, not the compiled loop): what ended before the horizon is exactly what the full run
    has, and the clock stops at the horizon."""
    trace = poisson_llm_trace(rng, 200, rate=20.0)
    the_plan = plan(llm_pool(replicas=2))
    full = _run(hardware, model_catalog, the_plan, trace)
    horizon = float(full["steps"]["end_s"].median())
    cut = _run(hardware, model_catalog, the_plan, trace, horizon_s=horizon)
    assert float(cut["meta"]["end_s"].iloc[0]) == horizon
    ended = full["steps"][full["steps"]["end_s"] < horizon].reset_index(drop=True)
    assert 0 < len(ended) < len(full["steps"])
    pd.testing.assert_frame_equal(cut["steps"].sort_values("end_s", kind="stable").reset_index(drop=True),
                                  ended.sort_values("end_s", kind="stable").reset_index(drop=True))


# ---- a serving engine's calibrated overheads ------------------------------------------------


ENGINE = {"engine": "test-engine", "model": "m", "step_overhead_s": 8e-4, "sequence_overhead_s": 6e-5,
          "request_overhead_s": 4e-3, "prefill_pair_s": 3e-11}  # fmt: skip


def _with_engine(calibration: CalibrationSpec) -> CalibrationSpec:
    return calibration.model_copy(update={"engine": EngineOverheads(**ENGINE)})


def test_engine_overheads_join_every_step_pricing_path(model_catalog):
    plain = _replica(model_catalog, "llama-3.1-70b", calibrated=True)
    device = make_device(memory_gb=2000)
    engine = LlmReplica(model_catalog.model("llama-3.1-70b"), DevicePerf(device, _with_engine(_calibration())), Shard(tp=4, pp=1), Precision())
    decodes, chunks = [5, 900], [SequenceWork(300, 200)]
    batch = [SequenceWork(1, c) for c in decodes] + chunks
    rows = len(batch)
    pairs = engine.prefill_pairs_per_stage([(300, 200)])
    added = ENGINE["step_overhead_s"] + ENGINE["sequence_overhead_s"] * rows + ENGINE["prefill_pair_s"] * pairs
    assert engine.step(batch).seconds == pytest.approx(plain.step(batch).seconds + added, rel=1e-12)
    assert engine.mixed_step_seconds(2, engine.decode_seen(decodes), chunks) == pytest.approx(engine.step(batch).seconds, rel=1e-12)
    contexts = [10, 400, 1000]
    runs = engine.decode_run_times(contexts, 20)
    per_step = [engine.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(20)]
    assert runs.tolist() == pytest.approx(per_step, rel=1e-12)
    assert engine.request_overhead_s == ENGINE["request_overhead_s"]


def test_the_default_engine_overhead_joins_every_step_pricing_path_of_an_uncalibrated_device(model_catalog):
    device, model = make_device(memory_gb=2000), model_catalog.model("llama-3.1-70b")
    kernels_only = LlmReplica(model, DevicePerf(device, default_engine=None), Shard(tp=4, pp=1), Precision())
    default = LlmReplica(model, DevicePerf(device), Shard(tp=4, pp=1), Precision())
    decodes, chunks = [5, 900], [SequenceWork(300, 200)]
    batch = [SequenceWork(1, c) for c in decodes] + chunks
    added = DEFAULT_ENGINE.step_overhead_s + DEFAULT_ENGINE.sequence_overhead_s * len(batch)
    assert added > 0
    assert default.step(batch).seconds == pytest.approx(kernels_only.step(batch).seconds + added, rel=1e-12)
    assert default.mixed_step_seconds(2, default.decode_seen(decodes), chunks) == pytest.approx(default.step(batch).seconds, rel=1e-12)
    contexts = [10, 400, 1000]
    per_step = [default.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(20)]
    assert default.decode_run_times(contexts, 20).tolist() == pytest.approx(per_step, rel=1e-12)
    assert "datasheet default" in DevicePerf(device).model_label and DEFAULT_ENGINE_SOURCE in DevicePerf(device).model_label
    assert DevicePerf(device, default_engine=None).model_label == "datasheet default"


def test_a_served_calibration_of_kernels_alone_pays_the_default_engine_and_says_so(model_catalog):
    device, model = make_device(memory_gb=2000), model_catalog.model("llama-3.1-70b")
    kernels = _calibration()
    assert kernels.engine is None
    fitted = LlmReplica(model, DevicePerf(device, kernels), Shard(tp=4, pp=1), Precision())  # what fits price
    served = LlmReplica(model, serving_perf(device, kernels), Shard(tp=4, pp=1), Precision())
    batch = [SequenceWork(1, 5), SequenceWork(1, 900), SequenceWork(300, 200)]
    added = DEFAULT_ENGINE.step_overhead_s + DEFAULT_ENGINE.sequence_overhead_s * len(batch)
    assert served.step(batch).seconds == pytest.approx(fitted.step(batch).seconds + added, rel=1e-12)
    label = serving_perf(device, kernels).model_label
    assert label.startswith(f"calibrated ({kernels.stack}) (+ default engine overhead") and DEFAULT_ENGINE_SOURCE in label
    assert DevicePerf(device, kernels).model_label == f"calibrated ({kernels.stack})"
    # a calibration with its own engine keeps it, and says nothing of the default
    own = serving_perf(device, _with_engine(kernels))
    assert own.engine == _with_engine(kernels).engine and own.model_label == f"calibrated ({own.calibration.stack})"
    assert serving_perf(device, None).engine == DEFAULT_ENGINE


def test_skipping_changes_nothing_with_an_engine_calibration(hardware, model_catalog, rng):
    trace = poisson_llm_trace(rng, 250, rate=40.0)
    the_plan = plan(llm_pool(replicas=2, memory_utilization=0.3))
    calibrations = {"h100-sxm": _with_engine(_calibration("h100-sxm"))}
    fast = _assert_skipping_changes_nothing(hardware, model_catalog, the_plan, trace, calibrations)
    calls = fast.frames()["llm_calls"]
    assert (calls["admitted_s"] - calls["arrival_s"] >= ENGINE["request_overhead_s"] - 1e-12).all()  # the API latency first
