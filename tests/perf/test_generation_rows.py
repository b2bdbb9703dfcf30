"""A batch's whole generation (LLM-Inference-Bench rows) priced as the steps vLLM 0.5 ran for
it: whole prompts first within the V0 token budget, then one decode step per further token."""

import numpy as np
import pandas as pd
import pytest

from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.llm import LlmReplica
from hetsim.perf.public_rows import fits_without_preemption, generation_features, generation_steps, predict_generations
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
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


def test_prompts_are_batched_within_the_v0_token_budget_then_every_further_token_is_a_step(models):
    # Llama-2-7B: 4096 positions -> 4096 tokens a step; 64 prompts of 2048 need 32 prefill steps
    plan = generation_steps(models["llama-2-7b"], batch=64, prompt_tokens=2048, output_tokens=2048)
    assert plan.prefill_batches == (2,) * 32 and plan.decode_steps == 2047 and plan.steps == 32 + 2047
    # Llama-3-8B: 8192 positions; 5 prompts of 2048 -> 4 then 1
    assert generation_steps(models["llama-3-8b"], batch=5, prompt_tokens=2048, output_tokens=1).prefill_batches == (4, 1)
    # never more than max_num_seqs (256) prompts in a step
    assert max(generation_steps(models["llama-2-7b"], 300, 8, 8).prefill_batches) == 256


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


def test_overhead_features_count_steps_layers_sequences_pairs_and_tokens(models):
    features = generation_features(pd.DataFrame([_row("llama-2-7b", batch=2, length=3)]), models)
    # 1 prefill step + 2 decode steps; 32 layers; 2 rows x 3 steps; 2 x 3 x 4 / 2 x 32 pairs; 2 x (3 + 2) tokens
    assert features.tolist() == [[3.0, 96.0, 6.0, 384.0, 10.0]]
