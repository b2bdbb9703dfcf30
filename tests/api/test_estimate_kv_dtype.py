"""``hetsim estimate --kv-dtype``: the KV cache's format apart from the weights' (vLLM's
``--kv-cache-dtype auto`` keeps an fp8 model's cache in 16 bits; AMD's vLLM 0.9.1 latency runs
did): a 16-bit cache holds half the tokens of an fp8 one and each decode reads twice the bytes."""

import pytest

from hetsim.api.estimate import EstimateQuestion, estimate

FP8_LLAMA = {"model": "llama-3-8b", "device": "h100-sxm", "input_tokens": 2000, "output_tokens": 200, "dtype": "fp8", "batch": 64}


def test_an_fp8_model_keeps_an_fp8_cache_unless_told_otherwise():
    default = estimate(EstimateQuestion(**FP8_LLAMA))
    fp8 = estimate(EstimateQuestion(**FP8_LLAMA, kv_dtype="fp8"))
    sixteen = estimate(EstimateQuestion(**FP8_LLAMA, kv_dtype="fp16"))
    assert default["kv_capacity_tokens"] == fp8["kv_capacity_tokens"] and default["tpot_s"] == fp8["tpot_s"]
    assert sixteen["kv_capacity_tokens"] == pytest.approx(fp8["kv_capacity_tokens"] / 2, rel=0.01)
    assert sixteen["tpot_s"] > fp8["tpot_s"]
    assert sixteen["question"]["kv_dtype"] == "fp16"  # the answer says what it was asked
