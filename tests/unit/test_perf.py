"""Performance model behaviour: KV sizes, memory fit, parallelism, MLA, MoE, windows."""

import pytest

from hetsim.errors import EstimateError
from hetsim.perf.collectives import Fabric, all_reduce_s
from hetsim.perf.kernels import DEFAULT_KERNELS
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.roofline import Bound, DevicePerf, OpCost, Provenance
from hetsim.perf.serving import estimate_request, prefill_chunks
from hetsim.perf.transformer import (
    Precision,
    SequenceWork,
    Shard,
    _attention_pairs,
    expected_active_experts,
    kv_bytes_per_token,
)
from hetsim.specs.calibration import CollectiveKernels, CurveKind
from hetsim.specs.hardware import DType
from tests.conftest import make_device


@pytest.mark.parametrize(
    ("model", "dtype", "expected"),
    [
        ("llama-3-8b", "fp16", 131072),
        ("llama-3-70b", "fp16", 327680),
        ("llama-3-8b", "fp8", 65536),
        ("llama-3-70b", "fp8", 163840),
    ],
)
def test_kv_bytes_per_token_match_paper_e5(model_catalog, model, dtype, expected):
    assert kv_bytes_per_token(model_catalog.model(model).architecture, DType(dtype)) == expected


def test_kv_of_70b_at_32k_tokens_matches_paper_e5(model_catalog):
    assert kv_bytes_per_token(
        model_catalog.model("llama-3-70b").architecture, DType.FP16
    ) * 32768 / 1e9 == pytest.approx(10.737, abs=5e-4)


def test_mla_caches_the_compressed_latent(model_catalog):
    # DeepSeek-V3: (kv_lora_rank 512 + rope 64) x 61 layers x 2 bytes, the same on every TP rank.
    arch = model_catalog.model("deepseek-v3").architecture
    assert kv_bytes_per_token(arch, DType.BF16, tp=1) == 576 * 61 * 2
    assert kv_bytes_per_token(arch, DType.BF16, tp=8) == 576 * 61 * 2


def test_kv_heads_are_replicated_when_tp_exceeds_them(model_catalog):
    arch = model_catalog.model("qwen2.5-7b").architecture  # 4 KV heads
    assert kv_bytes_per_token(arch, DType.BF16, tp=4) == kv_bytes_per_token(arch, DType.BF16, tp=1) / 4


def test_roofline_takes_the_slower_resource_and_labels_it():
    perf = DevicePerf(make_device(bf16_tflops=1000, bandwidth_tbs=2))
    big = perf.op_time(OpCost("gemm", CurveKind.GEMM, 1e15, 1e9, DType.BF16))
    assert big.bound == Bound.COMPUTE and big.provenance == Provenance.DATASHEET
    gemm = DEFAULT_KERNELS.gemm  # no shape given: no tile quantisation, no depth term
    assert big.seconds == pytest.approx(1e15 / (1e15 * gemm.efficiency) + gemm.floor_s)
    small = perf.op_time(OpCost("gemv", CurveKind.GEMV, 1e9, 1e10, DType.BF16))
    assert small.bound == Bound.MEMORY
    assert small.seconds == pytest.approx(1e10 / (2e12 * gemm.memory_efficiency) + gemm.floor_s)


def test_fp8_runs_at_bf16_rate_on_a_device_without_fp8():
    device = make_device()
    no_fp8 = device.model_copy(update={"compute": device.compute.model_copy(update={"fp8": None})})
    assert DevicePerf(no_fp8).peak_flops(DType.FP8) == pytest.approx(1e15)


def test_model_that_does_not_fit_says_what_to_change(model_catalog):
    replica = LlmReplica(model_catalog.model("llama-3-70b"), DevicePerf(make_device(memory_gb=80)), Shard(tp=1))
    with pytest.raises(EstimateError, match=r"does not fit on testgpu at tp=1 .* raise tp/pp or use a smaller dtype"):
        _ = replica.kv_capacity_tokens


def test_tp_must_divide_heads(model_catalog):
    with pytest.raises(EstimateError, match="tp: expected a divisor"):
        LlmReplica(model_catalog.model("llama-3-8b"), DevicePerf(make_device()), Shard(tp=3))


def test_more_tp_means_more_kv_capacity(model_catalog):
    def capacity(tp):
        return LlmReplica(
            model_catalog.model("llama-3-70b"), DevicePerf(make_device()), Shard(tp=tp)
        ).kv_capacity_tokens

    assert capacity(8) > capacity(4)


def test_tp_adds_network_time_and_pp_adds_stages(model_catalog):
    model = model_catalog.model("llama-3-8b")
    batch = [SequenceWork(1, 1000)] * 8
    tp1 = LlmReplica(model, DevicePerf(make_device()), Shard(tp=1)).step(batch)
    tp2 = LlmReplica(model, DevicePerf(make_device()), Shard(tp=2)).step(batch)
    pp2 = LlmReplica(model, DevicePerf(make_device()), Shard(pp=2)).step(batch)
    assert tp1.by_bound_s[Bound.NETWORK] == 0 and tp2.by_bound_s[Bound.NETWORK] > 0
    assert pp2.interval_s < pp2.seconds  # pipelined steps are spaced by one stage


def test_all_reduce_is_a_latency_plus_the_ring_bus_bandwidth_term():
    fabric = Fabric("x", 100e9, 5e-6, CollectiveKernels(latency_s=20e-6, efficiency=0.5))
    small = all_reduce_s(1e3, 8, fabric)
    assert small == pytest.approx(20e-6 + 14 / 8 * 1e3 / 50e9)  # latency-bound: tens of microseconds
    large = all_reduce_s(1e9, 8, fabric)
    assert large == pytest.approx(20e-6 + 14 / 8 * 1e9 / 50e9)
    assert all_reduce_s(1e9, 1, None) == 0.0


def test_moe_reads_only_routed_experts_at_small_batch(model_catalog):
    assert expected_active_experts(8, 2, 1) == pytest.approx(2)
    assert expected_active_experts(256, 8, 10_000) == pytest.approx(256)
    replica = LlmReplica(model_catalog.model("mixtral-8x7b"), DevicePerf(make_device(memory_gb=200)), Shard(tp=1))
    _, one_token = replica.step_work([SequenceWork(1, 100)])
    _, many = replica.step_work([SequenceWork(1, 100)] * 64)
    assert many > 3 * one_token  # one token touches 2 of 8 experts, 64 tokens touch nearly all


def test_sliding_window_caps_keys_seen():
    pairs, read = _attention_pairs((SequenceWork(1, 10_000),), window=128)
    assert pairs == 128 and read == 128
    pairs, read = _attention_pairs((SequenceWork(4, 0),), window=2)
    assert pairs == 1 + 2 + 2 + 2  # query i sees min(i, 2) keys
    assert read == 4


def test_chunked_prefill_splits_by_budget_first_come_first_served():
    steps = prefill_chunks([5000, 5000], budget=8192)
    assert [[(s.new_tokens, s.context_tokens) for s in step] for step in steps] == [
        [(5000, 0), (3192, 0)],
        [(1808, 3192)],
    ]


def test_request_estimate_is_consistent(model_catalog):
    limits = ServingLimits(max_num_seqs=100_000)  # let memory, not the sequence cap, bound the batch
    replica = LlmReplica(model_catalog.model("llama-3-8b"), DevicePerf(make_device()), Shard(), Precision(), limits)
    result = estimate_request(replica, 1000, 100, batch=4)
    assert result.e2e_s == pytest.approx(result.ttft_s + 99 * result.tpot_s)
    assert result.output_tokens_per_s_per_device == pytest.approx(4 / result.tpot_s)
    assert result.max_batch_fits == replica.kv_capacity_tokens // 1104  # 1100 tokens -> 69 blocks of 16
    with pytest.raises(EstimateError, match=r"at most \d+ fit"):
        estimate_request(replica, 1000, 100, batch=result.max_batch_fits + 1)


@pytest.mark.parametrize("name", ["llama-3-8b", "gpt-oss-120b", "deepseek-v3", "mixtral-8x7b"])
def test_vectorised_decode_run_equals_per_step_pricing(model_catalog, name):
    """The simulator's event-skipping prices k decode steps at once; it must equal step()."""
    replica = LlmReplica(model_catalog.model(name), DevicePerf(make_device(memory_gb=2000)), Shard(tp=4), Precision())
    contexts = [5, 90, 127, 128, 3000]
    fast = replica.decode_run_times(contexts, 200)
    slow = [replica.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(200)]
    assert fast == pytest.approx(slow, rel=1e-9)


@pytest.mark.parametrize("name", ["llama-3-8b", "gpt-oss-120b", "deepseek-v3"])
@pytest.mark.parametrize("pp", [1, 2])
def test_a_steps_time_split_by_bound_adds_up_to_the_step_models_seconds(model_catalog, name, pp):
    """``step`` reports the step model's seconds and attributes them op by op (each op's
    roofline bound, collectives, head and engine): the attribution, priced from the op
    objects, adds up to what the model computes from its cached parts and attention constants."""
    replica = LlmReplica(model_catalog.model(name), DevicePerf(make_device(memory_gb=2000)), Shard(tp=2, pp=pp), Precision())
    batches = [
        [SequenceWork(512, 0)],
        [SequenceWork(300, 700), SequenceWork(1, 50), SequenceWork(1, 4000)],
        [SequenceWork(1, 10)] * 7,
        [SequenceWork(8, 0), SequenceWork(4, 3)],
    ]
    for batch in batches + batches:  # second pass hits the cache
        step = replica.step(batch)
        assert step.seconds == replica.step_seconds(batch)
        assert sum(step.by_bound_s.values()) == pytest.approx(step.seconds, rel=1e-12)
        assert step.bound == max(step.by_bound_s, key=step.by_bound_s.get)
