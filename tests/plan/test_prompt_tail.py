"""Candidates are sized on the prompt-length distribution, not its mean alone: a TTFT
percentile is set by the long prompts at that percentile as well as by queueing."""

import pytest

from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.roofline import DevicePerf
from hetsim.plan.candidates import LlmTargets, aggregated_options, prefill_options
from hetsim.specs.hardware import DType
from hetsim.workload.demand import NodeDemand


def _demand(tail: tuple[tuple[float, float], ...]) -> NodeDemand:
    return NodeDemand("chat", "llm", "llama-3.1-70b", 1.0, 1.0, 2000.0, 200.0, 0.0, float("nan"), float("nan"), tail)


def test_the_prompt_length_at_a_percentile_interpolates_the_tail_from_the_mean():
    demand = _demand(((90.0, 6000.0), (99.0, 24000.0)))
    assert demand.input_tokens_at(40.0) == 2000.0
    assert demand.input_tokens_at(90.0) == 6000.0
    assert demand.input_tokens_at(95.0) == pytest.approx(6000.0 + 18000.0 * 5 / 9)
    assert demand.input_tokens_at(99.9) == 24000.0
    assert _demand(()).input_tokens_at(99.0) == 2000.0


@pytest.mark.parametrize("options", [aggregated_options, prefill_options])
def test_a_long_prompt_tail_lengthens_the_ttft_percentile_a_candidate_is_priced_at(options):
    perf = DevicePerf(load_catalog().accelerator("h100-sxm"), load_calibration("h100-sxm"))
    model = load_models().model("llama-3.1-70b")
    targets = LlmTargets(None, None, 1.25, (8,), (64,), DType.BF16, 99.0, 99.0)
    extra = (50e9,) if options is prefill_options else ()
    flat = {o.key: o.detail["ttft_s"] for o in options(model, [perf], _demand(()), targets, *extra)}
    tailed = {o.key: o.detail["ttft_s"] for o in options(model, [perf], _demand(((99.0, 30000.0),)), targets, *extra)}
    assert flat.keys() == tailed.keys() and flat
    assert all(tailed[k] >= flat[k] for k in flat)
    assert any(tailed[k] > 1.5 * flat[k] for k in flat)  # a 30k-token prompt takes far longer than the mean's wait


def test_a_model_too_big_for_one_nodes_tensor_parallel_group_gets_pipeline_parallel_candidates():
    from dataclasses import replace

    from hetsim.plan.candidates import decode_options

    perf = DevicePerf(load_catalog().accelerator("h100-sxm"), load_calibration("h100-sxm"))
    model = load_models().model("llama-3.1-405b")  # 810 GB of bf16 weights; 8 x 80 GB per node
    demand = replace(_demand(()), model="llama-3.1-405b")
    targets = LlmTargets(None, None, 1.25, (1, 2, 4, 8), (1, 8, 64), DType.BF16, 99.0, 99.0)
    assert decode_options(model, [perf], demand, targets) == []
    split = decode_options(model, [perf], demand, replace(targets, pp_options=(1, 2)))
    assert split and {o.detail["pp"] for o in split} == {2}
    assert all(o.devices_per_replica == o.detail["tp"] * 2 for o in split)
