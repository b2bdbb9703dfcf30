"""Prefill::decode pair pricing (hetsim.study.pairs) and the paper's input rules (hetsim.study.inputs)."""

from __future__ import annotations

import math

import pytest

from hetsim.cost.tco import device_hourly_cost, preset
from hetsim.io.catalog import load_catalog
from hetsim.io.models import load_models
from hetsim.perf.roofline import DevicePerf
from hetsim.perf.transformer import SequenceWork
from hetsim.specs.hardware import DType
from hetsim.specs.study import Fp16Override, InputSet
from hetsim.study.inputs import copy_power, derive_fp8, input_device, override_fp16
from hetsim.study.pairs import (
    PairWorkload,
    PricedDevice,
    SearchSpace,
    best_stages,
    decode_configs,
    evaluate_pairs,
    prefill_configs,
    replica_shapes,
)

SPACE = SearchSpace(tp_options=(1, 2), pp_options=(1,), prefill_batches=(1, 2, 4))


@pytest.fixture(scope="module")
def catalogs():
    return load_catalog("paper"), load_catalog("datasheet")


@pytest.fixture(scope="module")
def devices(catalogs) -> list[PricedDevice]:
    paper, _ = catalogs
    return [
        PricedDevice(
            key,
            DevicePerf(paper.accelerator(key)),
            device_hourly_cost(paper.accelerator(key), preset("paper-printed")).total_usd_per_h,
        )
        for key in ("h100", "gaudi3")
    ]


def workload(ttft_s: float | None = 0.25, tbt_s: float | None = 0.02) -> PairWorkload:
    return PairWorkload(load_models().model("llama-3-8b"), DType.BF16, 512, 4096, ttft_s, tbt_s)


def test_pair_cost_is_the_sum_of_its_stages_and_the_baseline_is_one(devices) -> None:
    stages = best_stages(workload(), devices, SPACE)
    results = {r.label: r for r in evaluate_pairs(stages, ("h100", "h100"))}
    assert len(results) == 4 and results["h100::h100"].tco_benefit == pytest.approx(1.0)
    mixed = results["h100::gaudi3"]
    assert mixed.usd_per_request == pytest.approx(
        stages["prefill"]["h100"].usd_per_request + stages["decode"]["gaudi3"].usd_per_request
    )
    assert mixed.tco_benefit == pytest.approx(results["h100::h100"].usd_per_request / mixed.usd_per_request)


def test_latency_sla_decode_batch_is_the_largest_that_meets_tbt(devices) -> None:
    work = workload()
    for config in decode_configs(work, devices[0], SPACE):
        replica = next(r for r in replica_shapes(work, devices[0].perf, SPACE) if r.shard.tp == config.tp)
        at, fits = config.batch, replica.max_batch(512 + 4096)
        tbt = [replica.step([SequenceWork(1, work.decode_context)] * n).seconds for n in (at, at + 1)]
        assert tbt[0] <= 0.02 and (at == fits or tbt[1] > 0.02)
        assert config.latency_s == pytest.approx(tbt[0])


def test_throughput_sla_decode_batch_is_the_largest_whose_kv_fits(devices) -> None:
    work = workload(None, None)
    for config in decode_configs(work, devices[1], SPACE):
        replica = next(r for r in replica_shapes(work, devices[1].perf, SPACE) if r.shard.tp == config.tp)
        assert config.batch == replica.max_batch(512 + 4096)


def test_prefill_meets_ttft_and_a_tighter_ttft_never_lowers_the_cost(devices) -> None:
    loose = min(c.usd_per_request for c in prefill_configs(workload(0.25), devices[0], SPACE))
    tight = prefill_configs(workload(0.02), devices[0], SPACE)
    assert all(c.latency_s <= 0.02 for c in tight)
    assert all(c.usd_per_request >= loose * (1 - 1e-9) for c in tight)


def test_an_infeasible_stage_makes_its_pairs_nan(devices) -> None:
    stages = best_stages(workload(tbt_s=1e-4), devices, SPACE)  # no decode meets 0.1 ms
    with pytest.raises(Exception, match="baseline h100::h100"):
        evaluate_pairs(stages, ("h100", "h100"))
    stages["decode"]["h100"] = best_stages(workload(), devices[:1], SPACE)["decode"]["h100"]
    results = {r.label: r for r in evaluate_pairs(stages, ("h100", "h100"))}
    assert math.isnan(results["h100::gaudi3"].tco_benefit) and not results["h100::gaudi3"].is_feasible


def test_fp8_peak_follows_the_datasheet_ratio(catalogs) -> None:
    paper, sheet = catalogs
    fp8 = lambda key: derive_fp8(paper.accelerator(key), sheet.accelerator(key)).peak_flops(DType.FP8)  # noqa: E731
    assert fp8("h100") == pytest.approx(1979e12 * 2, rel=1e-3)  # Table 5's 1979 x (1979 / 989)
    assert fp8("b200") == pytest.approx(4500e12)
    assert fp8("gaudi3") == pytest.approx(1678e12)  # Intel: fp8 rate = bf16 rate
    assert fp8("a100") is None  # no fp8: up-cast, math at the 16-bit rate
    assert "derived:" in derive_fp8(paper.accelerator("b200"), sheet.accelerator("b200")).compute.fp8.source


def test_input_rules_override_then_derive_then_add_power(catalogs) -> None:
    paper, sheet = catalogs
    rules = InputSet(name="t", label="t", profile_set="paper", tco="paper", fp8_from_reference=True, power_from_reference=True,
                     fp16_overrides=(Fp16Override(device="h100", tflops=989.5, source="https://nvidia.com"),))  # fmt: skip
    h100 = input_device(paper.accelerator("h100"), sheet.accelerator("h100"), rules)
    assert h100.peak_flops(DType.FP16) == pytest.approx(989.5e12)
    assert h100.peak_flops(DType.FP8) == pytest.approx(989.5e12 * 1979 / 989)
    assert h100.tdp_w == 700
    assert copy_power(sheet.accelerator("b200"), sheet.accelerator("h100")).tdp_w == 1000  # own TDP kept
    assert override_fp16(sheet.accelerator("gaudi3"), 1.0, "x").peak_flops(DType.BF16) == pytest.approx(1e12)
