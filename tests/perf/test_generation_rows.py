"""A batch's whole generation (LLM-Inference-Bench rows) priced as the steps vLLM 0.5 ran for
it: whole prompts first within the V0 token budget, then one decode step per further token."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.llm import LlmReplica
from hetsim.perf.public_rows import (
    fits_without_preemption,
    generation_features,
    generation_schedule,
    predict_generations,
    slower_than_a_larger_batch,
)
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from hetsim.specs.calibration import CalibrationSpec
from hetsim.specs.hardware import DType


@pytest.fixture(scope="module")
def models():
    catalog = load_models()
    return {name: catalog.model(name) for name in ("llama-2-7b", "llama-3-8b", "llama-2-70b")}


@pytest.fixture(scope="module")
def h100():
    return DevicePerf(load_catalog().accelerator("h100-sxm"))


def _row(model: str, batch: int, length: int, tp: int = 1) -> dict:
    return {"model": model, "tp": tp, "batch": batch, "q_tokens": length, "output_tokens": length, "dtype": "fp16"}


def _prompt_batches(plan) -> tuple[int, ...]:
    return tuple(len(step) for step in plan.steps)


def test_prompts_are_batched_within_the_v0_token_budget_then_every_further_token_is_a_step(models):
    # Llama-2-7B: 4096 positions -> 4096 tokens a step; 64 prompts of 2048 need 32 prefill steps
    plan = generation_schedule(models["llama-2-7b"], batch=64, prompt_tokens=2048, output_tokens=2048)
    assert _prompt_batches(plan) == (2,) * 32 and plan.decode_runs == (((2048,) * 64, 2047),)
    assert plan.step_count == 32 + 2047
    # Llama-3-8B: 8192 positions; 5 prompts of 2048 -> 4 then 1
    assert _prompt_batches(generation_schedule(models["llama-3-8b"], batch=5, prompt_tokens=2048, output_tokens=1)) == (4, 1)
    # never more than max_num_seqs (256) prompts in a step
    assert max(_prompt_batches(generation_schedule(models["llama-2-7b"], 300, 8, 8))) == 256


def test_chunked_prefill_fills_each_step_with_decodes_first_then_prompt_chunks(models):
    # 3 prompts of 5 tokens, budget 8: [5, 3 of the second] -> [1 decode, 2 rest, 5] -> decodes
    plan = generation_schedule(models["llama-2-7b"], 3, 5, 4, chunked_prefill=True, token_budget=8)
    assert plan.steps == (
        (SequenceWork(5, 0), SequenceWork(3, 0)),
        (SequenceWork(1, 5), SequenceWork(2, 3), SequenceWork(5, 0)),
    )
    assert plan.prompt_chunks == ((True, True), (False, True, True))
    # after step 2 the first sequence has 2 output tokens, the others 1; each stops at 4
    assert plan.decode_runs == (((6, 5, 5), 2), ((7, 7), 1))
    # every sequence computes its prompt once and every output token after the first once
    assert sum(w.new_tokens for step in plan.steps for w in step) + sum(len(c) * n for c, n in plan.decode_runs) == 3 * (5 + 3)
    assert plan.step_count == 2 + sum(n for _, n in plan.decode_runs)
    # never more than max_num_seqs (256) sequences running: the rest wait for a slot
    crowd = generation_schedule(models["llama-2-7b"], 300, 8, 4, chunked_prefill=True, token_budget=16384)
    assert len(crowd.steps[0]) == 256 and max(len(step) for step in crowd.steps) <= 256


def test_a_generation_is_the_sum_of_its_steps_as_the_replica_prices_them(models, h100):
    frame = pd.DataFrame([_row("llama-2-7b", batch=4, length=64)])
    replica = LlmReplica(models["llama-2-7b"], h100, Shard(tp=1), precision=Precision.uniform(DType("fp16")))
    expected = replica.step([SequenceWork(64, 0)] * 4).seconds
    expected += sum(replica.step([SequenceWork(1, 64 + j)] * 4).seconds for j in range(63))
    assert predict_generations(frame, h100, models)[0] == pytest.approx(expected, rel=1e-9)


def test_longer_generations_and_larger_batches_never_take_less_time(models, h100):
    frame = pd.DataFrame([_row("llama-3-8b", b, n) for b in (1, 16, 64) for n in (128, 512)])
    seconds = predict_generations(frame, h100, models).reshape(3, 2)
    assert (np.diff(seconds, axis=0) > 0).all() and (np.diff(seconds, axis=1) > 0).all()


def test_batches_whose_kv_the_replica_cannot_hold_are_flagged(models, h100):
    # 70B at TP1 does not fit an H100 at all; 64 x 4096 tokens of Llama-2-7B KV (128 GiB) exceed it
    frame = pd.DataFrame([_row("llama-2-7b", 1, 128), _row("llama-2-7b", 64, 2048), _row("llama-2-70b", 1, 128)])
    assert fits_without_preemption(frame, h100, models).tolist() == [True, False, False]


def test_a_run_slower_than_a_larger_batch_of_the_same_prompts_is_flagged():
    # LLM-Inference-Bench, MI300X, Llama-2-7B TP1: batch 1 of 128 + 128 tokens 2.148 s, batch 16 1.450 s
    runs = [(1, 128, 2.148), (16, 128, 1.450), (32, 128, 2.098), (1, 256, 2.212), (16, 256, 3.265)]
    frame = pd.DataFrame(
        [{**_row("llama-2-7b", b, n), "device": "mi300x", "stack": "lib", "measured_s": t} for b, n, t in runs]
        + [{**_row("llama-2-7b", 1, 128, tp=2), "device": "mi300x", "stack": "lib", "measured_s": 9.0}]
    )
    # only the batch-1 run that took longer than batch 16 of the same prompts; a lone TP2 run has
    # nothing to compare with, and another length is another comparison
    assert slower_than_a_larger_batch(frame).tolist() == [True, False, False, False, False, False]


@given(st.lists(st.floats(0.1, 100.0), min_size=1, max_size=6))
@settings(max_examples=50, deadline=None)
def test_no_run_is_flagged_where_time_never_falls_with_the_batch(times):
    ordered = np.maximum.accumulate(np.asarray(times))
    frame = pd.DataFrame(
        [{**_row("llama-2-7b", 2**i, 128), "device": "d", "stack": "s", "measured_s": t} for i, t in enumerate(ordered)]
    )
    flagged = slower_than_a_larger_batch(frame)
    assert not flagged.any()
    # a run made slower than every larger batch is flagged, whatever the rest
    if len(times) > 1:
        frame.loc[0, "measured_s"] = ordered[-1] * 2.0
        assert slower_than_a_larger_batch(frame)[0]


def test_overhead_features_count_steps_layers_sequences_pairs_and_tokens(models):
    features = generation_features(pd.DataFrame([_row("llama-2-7b", batch=2, length=3)]), models)
    # 1 prefill step + 2 decode steps; 32 layers; 2 rows x 3 steps; 2 x 3 x 4 / 2 x 32 pairs; 2 x (3 + 2) tokens
    assert features.tolist() == [[3.0, 96.0, 6.0, 384.0, 10.0]]


def test_a_row_naming_its_kv_cache_format_prices_that_cache(models, h100):
    # fp8 weights: the KV cache follows them (fp8) unless the row names a 16-bit one, which
    # holds half the tokens and reads twice the bytes per decode step
    fp8 = {"model": "llama-3-8b", "tp": 1, "batch": 64, "q_tokens": 2048, "output_tokens": 256, "dtype": "fp8"}
    frame = pd.DataFrame([fp8, {**fp8, "kv_dtype": "fp16"}])
    seconds = predict_generations(frame, h100, models)
    assert seconds[1] > seconds[0]
    large = {**fp8, "batch": 256, "q_tokens": 1024, "output_tokens": 1024}
    big = pd.DataFrame([large, {**large, "kv_dtype": "fp16"}])
    assert fits_without_preemption(big, h100, models).tolist() == [True, False]


def test_chunked_rows_price_the_chunked_schedule(models, h100):
    row = {"model": "llama-3-8b", "tp": 1, "batch": 8, "q_tokens": 512, "output_tokens": 8, "dtype": "fp16"}
    whole, chunked = predict_generations(
        pd.DataFrame([row, {**row, "chunked_prefill": True, "token_budget": 1024}]), h100, models
    )
    replica = LlmReplica(models["llama-3-8b"], h100, Shard(tp=1), precision=Precision.uniform(DType("fp16")))
    plan = generation_schedule(models["llama-3-8b"], 8, 512, 8, chunked_prefill=True, token_budget=1024)
    expected = sum(replica.step(list(step)).seconds for step in plan.steps)
    expected += sum(replica.step([SequenceWork(1, c + j) for c in contexts]).seconds for contexts, n in plan.decode_runs for j in range(n))
    assert chunked == pytest.approx(expected, rel=1e-9) and chunked != whole


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    batch=st.integers(1, 40),
    prompt=st.integers(1, 300),
    output=st.integers(1, 12),
    budget=st.integers(1, 2000),
    chunked=st.booleans(),
)
def test_every_schedule_computes_each_prompt_once_and_each_later_token_once(models, batch, prompt, output, budget, chunked):
    plan = generation_schedule(models["llama-2-7b"], batch, prompt, output, chunked_prefill=chunked, token_budget=budget)
    prompt_tokens = sum(
        w.new_tokens for step, chunks in zip(plan.steps, plan.prompt_chunks, strict=True) for w, c in zip(step, chunks, strict=True) if c
    )
    decode_tokens = sum(1 for chunks in plan.prompt_chunks for c in chunks if not c) + sum(len(c) * n for c, n in plan.decode_runs)
    assert prompt_tokens == batch * prompt and decode_tokens == batch * (output - 1)
    if chunked:  # a chunked step never exceeds its token budget; a whole prompt may (V0 runs it alone)
        assert all(sum(w.new_tokens for w in step) <= budget for step in plan.steps)
    assert all(n > 0 and len(c) > 0 for c, n in plan.decode_runs)
    features = plan.features(32)
    assert features[0] == plan.step_count and features[4] == batch * (prompt + output - 1)


def test_a_decode_kernel_reading_kv_per_query_head_reads_a_grouped_models_kv_that_many_times(h100):
    # vLLM's PagedAttention: one CTA per query head, each reading its KV head (Llama-3-8B: 32 query
    # heads over 8 KV heads -> 4x the KV bytes); an MHA model (Llama-2-7B) reads the same bytes
    from hetsim.perf.transformer import attention_constants

    catalog = load_models()
    gqa, mha = catalog.model("llama-3-8b").architecture, catalog.model("llama-2-7b").architecture
    precision = Precision.uniform(DType("fp16"))
    assert attention_constants(gqa, precision, 1, 1, True)[1] == 4 * attention_constants(gqa, precision, 1)[1]
    assert attention_constants(gqa, precision, 8, 1, True)[1] == 4 * attention_constants(gqa, precision, 8)[1]
    assert attention_constants(mha, precision, 2, 1, True) == attention_constants(mha, precision, 2)
    kernels = h100.kernels.model_copy(
        update={"attention_decode": h100.kernels.attention_decode.model_copy(update={"kv_read_per_query_head": True})}
    )
    paged = DevicePerf(h100.device, CalibrationSpec.model_validate({
        "schema_version": 1, "device": "h100-sxm", "launch_overhead": {"value": 0, "unit": "us"},
        "provenance": {"kind": "test", "device_description": "x", "date": "2026-12-06", "tool": "test"},
        "kernels": kernels,
    }))  # fmt: skip
    flash = DevicePerf(h100.device, paged.calibration.model_copy(update={"kernels": h100.kernels}))
    batch = [SequenceWork(1, 4096)] * 64
    paged_replica, flash_replica = (
        LlmReplica(catalog.model("llama-3-8b"), perf, Shard(tp=1), precision=precision) for perf in (paged, flash)
    )
    step = paged_replica.step(batch)
    assert sum(step.by_bound_s.values()) == pytest.approx(step.seconds, rel=1e-9)  # the attribution reads it too
    assert step.seconds > flash_replica.step(batch).seconds


def _paged_perf(h100, unpartitioned: float, memory: float = 0.9) -> DevicePerf:
    decode = h100.kernels.attention_decode.model_copy(
        update={"kv_read_per_query_head": True, "memory_efficiency": memory, "unpartitioned_memory_efficiency": unpartitioned}
    )
    return DevicePerf(h100.device, CalibrationSpec.model_validate({
        "schema_version": 1, "device": "h100-sxm", "launch_overhead": {"value": 0, "unit": "us"},
        "provenance": {"kind": "test", "device_description": "x", "date": "2026-12-06", "tool": "test"},
        "kernels": h100.kernels.model_copy(update={"attention_decode": decode}),
    }))  # fmt: skip


def _attention_s(replica: LlmReplica, batch: list[SequenceWork]) -> float:
    return sum(replica.perf.op_time(op).seconds for op in replica._attention_ops(tuple(batch)))


def test_pagedattention_decodes_more_than_512_sequence_heads_on_its_unpartitioned_kernel(h100):
    # vLLM <= 0.6: use_v1 = ... num_seqs * num_heads > 512. Llama-3-8B has 32 query heads: V2 up to
    # 16 sequences at TP1, up to 64 at TP4 (8 heads a rank); V1's KV reads priced at its own efficiency
    catalog = load_models()
    model, precision = catalog.model("llama-3-8b"), Precision.uniform(DType("fp16"))
    v1_at_a_third, same = _paged_perf(h100, 0.3), _paged_perf(h100, 0.9)
    for tp, last_v2 in ((1, 16), (4, 64)):
        slow, even = (LlmReplica(model, perf, Shard(tp=tp), precision=precision) for perf in (v1_at_a_third, same))
        for n in (last_v2, last_v2 + 1):
            batch = [SequenceWork(1, 4096)] * n
            ratio = _attention_s(slow, batch) / _attention_s(even, batch)
            assert ratio == pytest.approx(1.0 if n == last_v2 else 3.0, rel=0.02)  # the KV reads dominate
            # the step pricer (what the simulator calls), the op list and the decode-run paths agree
            step = slow.step(batch)
            assert sum(step.by_bound_s.values()) == pytest.approx(step.seconds, rel=1e-9)
            assert slow.decode_step_times(n, [4096])[0] == pytest.approx(step.seconds, rel=1e-9)
            times = slow.decode_run_times([4096] * n, 5)
            run = slow.affine_decode_run(n, [(float(n * 4097), n)])
            assert [run.step_s(j) for j in range(5)] == pytest.approx(list(times), rel=1e-9)


def test_an_unpartitioned_kernel_priced_faster_than_the_partitioned_is_refused(h100):
    with pytest.raises(ValueError, match=r"unpartitioned_memory_efficiency: expected at most memory_efficiency \(0.5\), got 0.6"):
        h100.kernels.attention_decode.model_validate(
            {**h100.kernels.attention_decode.model_dump(), "memory_efficiency": 0.5, "unpartitioned_memory_efficiency": 0.6}
        )


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), context=st.integers(1, 8192), unpartitioned=st.floats(0.05, 0.9))
def test_a_larger_paged_decode_batch_never_attends_faster(h100, n, context, unpartitioned):
    # the switch to the unpartitioned kernel only ever slows a larger batch's attention (the GEMMs'
    # own tile and split-K choices are another matter: tests/unit/test_kernel_model.py)
    replica = LlmReplica(load_models().model("llama-3-8b"), _paged_perf(h100, unpartitioned), Shard(tp=1),
                         precision=Precision.uniform(DType("fp16")))  # fmt: skip
    smaller = _attention_s(replica, [SequenceWork(1, context)] * n)
    assert _attention_s(replica, [SequenceWork(1, context)] * (n + 1)) >= smaller
