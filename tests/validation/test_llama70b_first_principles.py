"""Llama-3-70B FLOPs and bytes, derived by hand from the architecture, vs the model (within 1%).

Architecture (Meta config.json): 80 layers, hidden 8192, 64 query heads, 8 KV heads, head dim
128, SwiGLU MLP width 28672, vocabulary 128256. bf16 weights, activations and KV (2 bytes).
"""

import pytest

from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from tests.conftest import make_device

L, H, NH, KV, HD, INTER, V, B = 80, 8192, 64, 8, 128, 28672, 128256, 2


def _replica(model_catalog, tp):
    device = make_device(memory_gb=192)
    return LlmReplica(model_catalog.model("llama-3-70b"), DevicePerf(device), Shard(tp=tp), Precision())


def _gemm(m, k, n):
    """FLOPs and bytes of an (m x k) @ (k x n) GEMM with bf16 weights and activations."""
    return 2 * m * k * n, B * (k * n + m * k + m * n)


def _layer_gemms(tokens, tp):
    q_heads, kv_heads = NH // tp, max(1, KV // tp)
    shapes = [
        (tokens, H, (q_heads + 2 * kv_heads) * HD),  # fused QKV projection
        (tokens, q_heads * HD, H),  # output projection
        (tokens, H, 2 * INTER // tp),  # gate + up
        (tokens, INTER // tp, H),  # down
    ]
    return [_gemm(*s) for s in shapes]


def _expected(tokens, pairs, kv_tokens_read, sequences, tp):
    q_heads, kv_heads = NH // tp, max(1, KV // tp)
    flops = bytes_ = 0.0
    for f, b in _layer_gemms(tokens, tp):
        flops += L * f
        bytes_ += L * b
    flops += L * 4 * HD * q_heads * pairs  # QK^T and PV
    kv_width = 2 * kv_heads * HD
    bytes_ += L * B * (kv_tokens_read * kv_width + tokens * kv_width + 2 * tokens * q_heads * HD)
    # Elementwise kernels are real memory traffic (vLLM runs them as separate kernels):
    # two RMSNorms per layer read and write the hidden state (4 FLOPs/element); SwiGLU reads
    # gate and up and writes their product (5 FLOPs/element); the embedding gather writes T rows.
    # Two residual adds per layer read two hidden states and write one (1 FLOP/element); the
    # rotary embedding reads and rewrites q and k (6 FLOPs/element).
    rotated = (q_heads + kv_heads) * HD
    flops += L * (2 * tokens * H * 4 + tokens * INTER // tp * 5 + 2 * tokens * H + tokens * rotated * 6)
    bytes_ += L * B * (2 * tokens * H * 2 + 3 * tokens * INTER // tp + 2 * 3 * tokens * H + 2 * tokens * rotated)
    bytes_ += B * 2 * tokens * H + B * 2 * sequences * H  # embedding gather (read a row, write it), final norm
    flops += 4 * sequences * H
    f, b = _gemm(sequences, H, V // tp)  # logits for the sampled rows only
    return flops + f, bytes_ + b


def test_prefill_4096_tokens_matches_first_principles(model_catalog):
    tokens = 4096
    expected = _expected(tokens, pairs=tokens * (tokens + 1) / 2, kv_tokens_read=tokens, sequences=1, tp=1)
    flops, nbytes = _replica(model_catalog, tp=1).step_work([SequenceWork(tokens, 0)])
    assert flops == pytest.approx(expected[0], rel=0.01)
    assert nbytes == pytest.approx(expected[1], rel=0.01)
    # Sanity against the textbook 2 x parameters x tokens (non-embedding) plus attention:
    assert flops / (2 * 70.55e9 * tokens) == pytest.approx(1.0, abs=0.12)


@pytest.mark.parametrize("tp", [4, 8])
def test_decode_batch_64_matches_first_principles(model_catalog, tp):
    batch, context = 64, 2048
    expected = _expected(
        batch, pairs=batch * (context + 1), kv_tokens_read=batch * (context + 1), sequences=batch, tp=tp
    )
    flops, nbytes = _replica(model_catalog, tp=tp).step_work([SequenceWork(1, context)] * batch)
    assert flops == pytest.approx(expected[0], rel=0.01)
    assert nbytes == pytest.approx(expected[1], rel=0.01)


def test_decode_is_dominated_by_weights_and_kv(model_catalog):
    """At TP8 a decode step reads about 1/8 of the 141 GB of bf16 weights plus the KV cache
    (activations add about 6% at batch 64: norms, residual adds, rope and the activation each
    stream the hidden state as separate kernels)."""
    _flops, nbytes = _replica(model_catalog, tp=8).step_work([SequenceWork(1, 2048)] * 64)
    weights = (70.55e9 - V * H) * B / 8  # the embedding table is gathered, not streamed
    kv = 64 * 2049 * 80 * 2 * 1 * HD * B
    assert weights + kv < nbytes < 1.08 * (weights + kv)
