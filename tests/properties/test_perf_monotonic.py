"""Invariants of the performance and cost models, checked on random inputs (hypothesis)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetsim.cost.tco import TcoAssumptions, capex_usd_per_h, device_hourly_cost, hosting_usd_per_h, power_usd_per_h
from hetsim.perf.llm import LlmReplica
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import Precision, SequenceWork, Shard
from tests.conftest import make_device

PROFILE = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
models = st.sampled_from(["llama-3-8b", "qwen2.5-7b", "mixtral-8x7b", "gpt-oss-120b", "deepseek-v3"])
batches = st.lists(
    st.tuples(st.integers(1, 2048), st.integers(0, 16384)).map(lambda t: SequenceWork(*t)), min_size=1, max_size=12
)


def _replica(catalog, name, tflops=1000.0, tbs=3.0, tp=4):
    device = make_device(bf16_tflops=tflops, bandwidth_tbs=tbs, memory_gb=2000)
    return LlmReplica(catalog.model(name), DevicePerf(device), Shard(tp=tp), Precision())


@PROFILE
@given(name=models, batch=batches, factor=st.floats(1.0, 10.0))
def test_more_compute_is_never_slower(model_catalog, name, batch, factor):
    base = _replica(model_catalog, name).step(batch).seconds
    faster = _replica(model_catalog, name, tflops=1000.0 * factor).step(batch).seconds
    assert faster <= base * (1 + 1e-12)


@PROFILE
@given(name=models, batch=batches, factor=st.floats(1.0, 10.0))
def test_more_bandwidth_is_never_slower(model_catalog, name, batch, factor):
    base = _replica(model_catalog, name).step(batch).seconds
    faster = _replica(model_catalog, name, tbs=3.0 * factor).step(batch).seconds
    assert faster <= base * (1 + 1e-12)


@PROFILE
@given(name=models, batch=batches, extra=batches)
def test_a_larger_batch_never_lowers_step_time(model_catalog, name, batch, extra):
    replica = _replica(model_catalog, name)
    assert replica.step(batch + extra).seconds >= replica.step(batch).seconds * (1 - 1e-12)


@PROFILE
@given(name=models, batch=st.integers(1, 256), context=st.integers(1, 32768), more=st.integers(1, 32768))
def test_longer_context_never_lowers_decode_step_time(model_catalog, name, batch, context, more):
    replica = _replica(model_catalog, name)
    short, long = replica.decode_step_times(batch, [context, context + more])
    assert long >= short


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    price=st.floats(0, 1e6),
    tdp=st.floats(0, 5000),
    idle_share=st.floats(0, 1),
    years=st.floats(0.5, 10),
    rate=st.floats(0, 0.5),
    kwh=st.floats(0, 2),
    pue=st.floats(1, 3),
    util=st.floats(0, 1),
    hosting=st.floats(0, 500),
)
def test_costs_are_never_negative(price, tdp, idle_share, years, rate, kwh, pue, util, hosting):
    a = TcoAssumptions(
        amortization_years=years,
        interest_rate=rate,
        energy_usd_per_kwh=kwh,
        pue=pue,
        power_utilization=util,
        hosting_usd_per_kw_month=hosting,
    )
    assert capex_usd_per_h(price, a) >= 0
    assert power_usd_per_h(tdp, tdp * idle_share, a) >= 0
    assert hosting_usd_per_h(tdp, a) >= 0
    assert device_hourly_cost(make_device(), a).total_usd_per_h >= 0
