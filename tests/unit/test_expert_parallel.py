"""Expert parallelism, data-parallel attention, the all-to-all and expert imbalance (issue 19 item 1)."""

import itertools
import json
import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hetsim.cli import app, main
from hetsim.errors import EstimateError
from hetsim.perf.collectives import Fabric, all_reduce_s, fabric_for_group
from hetsim.perf.expert import (
    IMBALANCE_BALANCED,
    IMBALANCE_UNBALANCED,
    ExpertLinks,
    MoeOptions,
    all_to_all_s,
    overlapped_s,
)
from hetsim.perf.kernels import DEFAULT_ALL_TO_ALL, DEFAULT_KERNELS, gemm_seconds
from hetsim.perf.llm import LlmReplica, ServingLimits
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard, attention_constants, prefill_attention_constants
from hetsim.specs.calibration import CollectiveKernels
from hetsim.specs.hardware import DType
from hetsim.specs.parallel import CommOverlap
from tests.conftest import make_device

PROFILE = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
FP8 = Precision.uniform(DType.FP8)
BIG = dict(memory_gb=2000)
SCALE_OUT = {
    "link": "testnic", "bandwidth": {"value": 50, "unit": "GB/s", "source": "t"},
    "latency": {"value": 5, "unit": "us", "source": "t"},
}  # fmt: skip


def _device(**extra):
    return make_device(**{**BIG, "scale_out": SCALE_OUT, **extra})


def _replica(catalog, name="deepseek-v3", shard=Shard(), moe=MoeOptions(), device=None, seqs=256):
    device = device or _device()
    limits = ServingLimits(max_num_seqs=seqs * shard.dp)
    return LlmReplica(catalog.model(name), DevicePerf(device), shard, FP8, limits, moe)


# ---- input errors: one line naming the field, what was expected and what came ----------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tp": 2, "dp": 4, "ep": 4}, r"ep: expected 1 or the devices of a pipeline stage \(tp x dp_attention = 2 x 4 = 8\), got 4"),
        ({"ep": 0}, r"expected ep >= 1, dp_attention >= 1 and redundant_experts >= 0"),
        ({"dp": 2, "redundant_experts": -1}, r"redundant_experts >= 0"),
    ],
)
def test_a_split_the_engines_cannot_run_is_one_line(kwargs, message):
    with pytest.raises(EstimateError, match=message):
        Shard(**kwargs)


def test_ep_that_does_not_divide_the_experts_is_refused(model_catalog):
    with pytest.raises(EstimateError, match=r"ep: expected a divisor of deepseek-v3's 256 experts, got 24"):
        _replica(model_catalog, shard=Shard(ep=24, dp=24))
    with pytest.raises(EstimateError, match=r"256 experts \+ 32 redundant = 288, got 64"):
        _replica(model_catalog, shard=Shard(ep=64, dp=64, redundant_experts=32))
    _replica(model_catalog, shard=Shard(ep=72, dp=72, redundant_experts=32))  # 288 / 72 = 4 per GPU


def test_dense_models_and_ep_only_options_are_refused(model_catalog):
    with pytest.raises(EstimateError, match=r"llama-3-8b is a dense model: ep, dp_attention"):
        _replica(model_catalog, "llama-3-8b", shard=Shard(ep=8, dp=8))
    with pytest.raises(EstimateError, match=r"need expert parallelism: expected ep > 1, got ep=1"):
        _replica(model_catalog, shard=Shard(tp=8), moe=MoeOptions(overlap=CommOverlap.TWO_BATCH))
    with pytest.raises(EstimateError, match=r"expert imbalance: expected a finite factor >= 1"):
        MoeOptions(imbalance=0.5)


def test_ep_beyond_the_node_needs_a_scale_out_link(model_catalog):
    with pytest.raises(EstimateError, match=r"ep: 16 ranks exceed testgpu's scale-up domain of 8"):
        _replica(model_catalog, shard=Shard(ep=16, dp=16), device=make_device(**BIG)).step([SequenceWork(1, 10)])


# ---- memory: experts per rank, KV per rank ------------------------------------------------------


@pytest.mark.parametrize(("name", "degrees"), [("deepseek-v3", (1, 2, 4, 8, 16, 32, 64)), ("qwen3-235b-a22b", (1, 2, 4, 8, 16, 32)),
                                               ("mixtral-8x7b", (1, 2, 4, 8))])  # fmt: skip
def test_more_expert_ranks_never_hold_more_expert_weights_per_rank(model_catalog, name, degrees):
    weights = [_replica(model_catalog, name, Shard(ep=ep, dp=ep) if ep > 1 else Shard()).weight_bytes_per_device for ep in degrees]
    assert all(b <= a for a, b in itertools.pairwise(weights)), weights


def test_an_ep_rank_holds_its_experts_whole_and_the_dense_parts_replicated(model_catalog):
    arch = model_catalog.model("deepseek-v3").architecture
    replica = _replica(model_catalog, shard=Shard(ep=72, dp=72, redundant_experts=32))
    expert = 3 * arch.hidden_size * arch.moe.expert_intermediate_size
    routed = (256 + 32) / 72 * expert * (arch.num_layers - 3)
    assert replica.weight_bytes_per_device > routed  # plus attention, shared experts, dense layers, embedding
    assert replica.weight_bytes_per_device < routed + 20e9  # DeepSeek-V3's non-expert part is ~17B parameters


def test_data_parallel_attention_keeps_each_groups_kv_and_duplicates_none(model_catalog):
    tp8 = _replica(model_catalog, shard=Shard(tp=8))
    dp8 = _replica(model_catalog, shard=Shard(ep=8, dp=8))
    # MLA's latent is replicated on every TP rank (8 copies of one request's KV); DP ranks hold their own.
    assert dp8.kv_bytes_per_token_per_device == tp8.kv_bytes_per_token_per_device
    assert dp8.kv_capacity_tokens == 8 * dp8.group_kv_capacity_tokens
    assert dp8.kv_capacity_tokens > 7 * tp8.kv_capacity_tokens


# ---- time: the all-to-all, imbalance, overlap -----------------------------------------------------


LOW_LATENCY_MAX = DEFAULT_ALL_TO_ALL.low_latency_max_tokens
low_latency_tokens = st.lists(st.integers(0, LOW_LATENCY_MAX), min_size=2, max_size=6).map(sorted)
throughput_tokens = st.lists(st.integers(LOW_LATENCY_MAX + 1, 40_000), min_size=2, max_size=6).map(sorted)


@PROFILE
@given(tokens=st.one_of(low_latency_tokens, throughput_tokens), ep=st.sampled_from([2, 8, 16, 32, 72, 144]))
def test_all_to_all_time_never_falls_as_tokens_grow(model_catalog, tokens, ep):
    """Within each kernel: the low-latency kernels up to 256 tokens per rank, the
    high-throughput ones above (see the next test for the switch between them)."""
    arch = model_catalog.model("deepseek-v3").architecture
    links = ExpertLinks.of(_device(), ep)
    times = [all_to_all_s(t, arch, FP8, ep, 1.0, links, DEFAULT_ALL_TO_ALL) for t in tokens]
    assert all(b >= a for a, b in itertools.pairwise(times)), times


def test_high_throughput_kernels_send_a_token_once_per_node_not_once_per_expert(model_catalog):
    """Why prefill runs DeepEP's normal kernels: across nodes a token crosses the NIC once per
    destination node and is forwarded inside it, where the low-latency kernels send one message
    per routed expert; a step just past the switch can therefore communicate for less time than
    one at it (the model prices no extra fixed cost for the normal kernels' host handshake)."""
    arch = model_catalog.model("deepseek-v3").architecture
    links = ExpertLinks.of(_device(), 32)
    at = all_to_all_s(LOW_LATENCY_MAX, arch, FP8, 32, 1.0, links, DEFAULT_ALL_TO_ALL)
    past = all_to_all_s(LOW_LATENCY_MAX + 1, arch, FP8, 32, 1.0, links, DEFAULT_ALL_TO_ALL)
    per_token_at = (at - 2 * DEFAULT_ALL_TO_ALL.latency_s) / LOW_LATENCY_MAX
    per_token_past = (past - 2 * DEFAULT_ALL_TO_ALL.latency_s) / (LOW_LATENCY_MAX + 1)
    nodes = 4  # 8 experts on 4 nodes: 3 x (1 - (3/4)^8) = 2.70 other nodes, against 8 x 24/32 = 6 remote experts
    assert per_token_past / per_token_at == pytest.approx((nodes - 1) * (1 - 0.75**8) / 6.0)


def test_all_to_all_is_zero_without_expert_parallelism_or_tokens(model_catalog):
    arch = model_catalog.model("deepseek-v3").architecture
    links = ExpertLinks.of(_device(), 8)
    assert all_to_all_s(100, arch, FP8, 1, 1.0, links, DEFAULT_ALL_TO_ALL) == 0.0
    assert all_to_all_s(0, arch, FP8, 8, 1.0, links, DEFAULT_ALL_TO_ALL) == 0.0


def test_the_busiest_rank_receives_imbalance_times_the_mean(model_catalog):
    arch = model_catalog.model("deepseek-v3").architecture
    links = ExpertLinks.of(_device(), 32)
    even = all_to_all_s(128, arch, FP8, 32, 1.0, links, DEFAULT_ALL_TO_ALL) - 2 * DEFAULT_ALL_TO_ALL.latency_s
    skewed = all_to_all_s(128, arch, FP8, 32, 2.0, links, DEFAULT_ALL_TO_ALL) - 2 * DEFAULT_ALL_TO_ALL.latency_s
    assert skewed == pytest.approx(2 * even)


def test_imbalance_defaults_are_the_measured_ones_and_balancing_lowers_them():
    shard = Shard(ep=32, dp=32)
    assert MoeOptions().imbalance_factor(shard) == IMBALANCE_UNBALANCED == pytest.approx(2.564)
    assert MoeOptions(balancing=True).imbalance_factor(shard) == IMBALANCE_BALANCED == pytest.approx(1.109)
    assert MoeOptions().imbalance_factor(Shard(tp=8)) == 1.0  # tensor-parallel experts: every rank a slice of each
    assert MoeOptions().imbalance_factor(Shard(ep=2, dp=2)) == 2.0  # the busiest of two holds at most all


def test_balancing_experts_never_slows_a_step(model_catalog):
    batch = [SequenceWork(1, 2000)] * 512
    shard = Shard(ep=16, dp=16, redundant_experts=32)
    plain = _replica(model_catalog, shard=shard).step_seconds(batch)
    balanced = _replica(model_catalog, shard=shard, moe=MoeOptions(balancing=True)).step_seconds(batch)
    assert balanced < plain


def test_two_batch_overlap_hides_what_the_other_micro_batch_computes():
    assert overlapped_s(3.0, 2.0, 0.0, CommOverlap.NONE) == 5.0
    assert overlapped_s(3.0, 2.0, 0.0, CommOverlap.TWO_BATCH) == 3.0  # all hidden
    assert overlapped_s(3.0, 5.0, 0.0, CommOverlap.TWO_BATCH) == 5.0  # communication-bound
    assert overlapped_s(3.0, 2.0, 0.25, CommOverlap.TWO_BATCH) == 3.5  # compute slowed while comm holds SMs


def test_two_batch_overlap_helps_when_communication_dominates(model_catalog):
    batch = [SequenceWork(1, 2000)] * (256 * 32)
    shard = Shard(ep=32, dp=32, redundant_experts=32)
    plain = _replica(model_catalog, shard=shard, moe=MoeOptions(balancing=True)).step_seconds(batch)
    tbo = MoeOptions(balancing=True, overlap=CommOverlap.TWO_BATCH)
    assert _replica(model_catalog, shard=shard, moe=tbo).step_seconds(batch) < plain


@pytest.mark.parametrize("shard", [Shard(ep=8, dp=8), Shard(tp=2, dp=4, ep=8), Shard(dp=4), Shard(ep=16, dp=16, pp=2)])
@pytest.mark.parametrize("overlap", [CommOverlap.NONE, CommOverlap.TWO_BATCH])
def test_the_simulators_fast_pricing_equals_step_under_every_split(model_catalog, shard, overlap):
    if overlap == CommOverlap.TWO_BATCH and shard.ep == 1:
        return
    replica = _replica(model_catalog, shard=shard, moe=MoeOptions(balancing=True, overlap=overlap))
    batches = [[SequenceWork(512, 0)], [SequenceWork(300, 700), SequenceWork(1, 50), SequenceWork(1, 4000)],
               [SequenceWork(1, 10)] * 300, [SequenceWork(4000, 0)] * 9]  # fmt: skip
    for batch in batches + batches:
        assert replica.step_seconds(batch) == pytest.approx(replica.step(batch).seconds, rel=1e-12)
    contexts = [5, 90, 127, 3000]
    fast = replica.decode_run_times(contexts, 50)
    slow = [replica.step([SequenceWork(1, c + j) for c in contexts]).seconds for j in range(50)]
    assert fast == pytest.approx(slow, rel=1e-9)


def test_ep_decode_at_large_batch_is_several_times_tp_per_device(model_catalog):
    """The issue's acceptance: DeepSeek-V3 fp8 on 80 GB devices, EP32 with DP attention (4 nodes)
    against TP16 (2 nodes), each at the batch its memory holds (at most 256 per GPU), per GPU."""
    device = _device(memory_gb=80)
    model = model_catalog.model("deepseek-v3")
    ep = LlmReplica(model, DevicePerf(device), Shard(ep=32, dp=32, redundant_experts=32), FP8,
                    ServingLimits(max_num_seqs=256 * 32), MoeOptions(balancing=True, overlap=CommOverlap.TWO_BATCH))  # fmt: skip
    tp = LlmReplica(model, DevicePerf(device), Shard(tp=16), FP8, ServingLimits(max_num_seqs=256 * 16))
    ep_batch, tp_batch = ep.max_batch(3000), tp.max_batch(3000)
    assert ep_batch / 32 > 10 * tp_batch / 16  # no KV duplication, experts split: many more requests per GPU fit
    ep_rate = ep_batch / ep.step_seconds([SequenceWork(1, 2500)] * ep_batch) / 32
    tp_rate = tp_batch / tp.step_seconds([SequenceWork(1, 2500)] * tp_batch) / 16
    assert ep_rate > 3 * tp_rate


# ---- kernels: grouped GEMMs, hierarchical all-reduce, MLA prefill ---------------------------------


def test_a_grouped_gemm_of_one_group_is_the_gemm_and_groups_share_waves():
    params = DEFAULT_KERNELS.gemm
    one = gemm_seconds(params, 256, 4096, 7168, 1e7, 1e15, 3e12, 132)
    assert gemm_seconds(params, 256, 4096, 7168, 1e7, 1e15, 3e12, 132, 1) == pytest.approx(one)
    eight = gemm_seconds(params, 256, 4096, 7168, 8e7, 1e15, 3e12, 132, 8)
    assert one < eight < 8 * one  # one launch: a floor once, tiles of all groups in shared waves


def test_a_group_beyond_the_node_all_reduces_in_the_node_then_over_every_nic():
    device = _device()
    collective = CollectiveKernels(latency_s=10e-6, efficiency=1.0)
    fabric = fabric_for_group(device, 16, collective)
    assert fabric.inner is not None and fabric.domain == 8
    inner = Fabric("testlink", 450e9, 3e-6, collective)
    outer = Fabric("testnic", 50e9, 5e-6, collective)
    expected = all_reduce_s(1e9, 8, inner) + all_reduce_s(1e9 / 8, 2, outer)
    assert all_reduce_s(1e9, 16, fabric) == pytest.approx(expected)


def test_mla_prefills_in_its_multi_head_form(model_catalog):
    arch = model_catalog.model("deepseek-v3").architecture
    absorbed = attention_constants(arch, Precision(), 8)[0]
    multi_head = prefill_attention_constants(arch, Precision(), 8)[0]
    assert multi_head == 2 * (128 + 64 + 128) * 16  # per pair: (qk + v) x 2 FLOPs x 16 heads per rank
    assert multi_head < absorbed / 3
    llama = model_catalog.model("llama-3-8b").architecture
    assert prefill_attention_constants(llama, Precision(), 2) == attention_constants(llama, Precision(), 2)


# ---- hetsim estimate ---------------------------------------------------------------------------


def test_estimate_takes_ep_and_dp_attention():
    result = CliRunner().invoke(app, [
        "estimate", "-m", "deepseek-v3", "-d", "h200-sxm", "--dtype", "fp8", "--ep", "8", "--dp-attention", "8",
        "--batch", "512", "--input-tokens", "2000", "--output-tokens", "100", "--expert-balancing",
        "--redundant-experts", "32", "--overlap", "two-batch", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["devices_per_replica"] == 8
    assert data["parallelism"]["ep"] == 8 and data["parallelism"]["dp_attention"] == 8
    assert data["parallelism"]["expert_imbalance"] == pytest.approx(IMBALANCE_BALANCED)
    assert math.isfinite(data["output_tokens_per_s_per_device"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ep", "4", "--dp-attention", "8"], "ep: expected 1 or the devices of a pipeline stage"),
        (["--ep", "12", "--dp-attention", "12"], "ep: expected a divisor of deepseek-v3's 256 experts, got 12"),
        (["--overlap", "three-batch"], "overlap: expected one of none, two-batch, got 'three-batch'"),
        (["--dtype", "fp9"], "dtype: expected one of fp32, tf32, bf16, fp16, fp8, int8, fp4, got 'fp9'"),
        (["--kv-dtype", "fp7"], "kv_dtype: expected one of fp32, tf32, bf16, fp16, fp8, int8, fp4, got 'fp7'"),
        (["--cost-basis", "bought"], "cost_basis: expected one of owned, rented, got 'bought'"),
        (["--ep", "8", "--dp-attention", "8", "-d", "h100-sxm"], "does not fit on h100-sxm at tp=1 pp=1 dp_attention=8 ep=8"),
    ],
)
def test_estimate_errors_are_one_line(args, message, monkeypatch, capsys):
    base = ["estimate", "-m", "deepseek-v3", "-d", "h200-sxm", "--dtype", "fp8", "--input-tokens", "100", "--output-tokens", "10"]
    monkeypatch.setattr(sys, "argv", ["hetsim", *base, *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert message in error and len(error.strip().splitlines()) == 1, error
