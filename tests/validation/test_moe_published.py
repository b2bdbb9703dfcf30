"""DeepSeek-V3 on published expert-parallel deployments: hetsim's per-node throughput against
SGLang's 96-H100 deployment and DeepSeek's H800 service and profile (issue 19 item 2).

The cases, their settings and sources are ``hetsim.api.moe_published.CASES``; each carries the
tolerance it is held to: 25% (the goal) where the model meets it, a wider stated bound where it
does not, with the reason in the case's note (README, "Expert parallelism: validation"). The
all-to-all and grouped-GEMM terms are checked against DeepSeek's own kernel tables.
"""

import numpy as np
import pandas as pd
import pytest

from hetsim.api.moe_published import (
    CASES,
    DEEPSEEK_PRECISION,
    deepgemm_rows,
    deepseek_kernels,
    ep_vs_tp,
    predict,
    two_batch_overlap_gain,
)
from hetsim.io.calibration import load_calibration
from hetsim.io.catalog import load_catalog, profiles_root
from hetsim.io.models import load_models
from hetsim.perf.expert import ExpertLinks, all_to_all_s
from hetsim.perf.kernel_fit import log_error
from hetsim.perf.kernels import DEFAULT_ALL_TO_ALL
from hetsim.perf.public_rows import predict_ops
from hetsim.perf.roofline import DevicePerf

DEEPSEEK = profiles_root() / "measurements" / "public" / "deepseek"


@pytest.fixture(scope="module")
def predictions():
    return {case.name: predict(case) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_published_deployment_is_predicted_within_its_stated_tolerance(predictions, case):
    result = predictions[case.name]
    assert abs(result.error) <= case.tolerance, f"{case.name}: {result.predicted_per_node:,.0f} vs {case.published_per_node:,.0f}"
    assert case.tolerance == 0.25 or case.note, "a bound wider than the goal must say what the model lacks"


def test_the_decode_deployments_meet_the_25_percent_goal(predictions):
    for name in ("SGLang decode, 2000-token KV", "DeepSeek profile decode, 4096-token KV"):
        assert abs(predictions[name].error) <= 0.25, name


def test_production_averages_stay_below_the_modelled_capacity(predictions):
    """A day's average of a service sized to its load cannot exceed what its nodes can do."""
    for case in CASES:
        if not case.capacity:
            assert predictions[case.name].predicted_per_node > case.published_per_node, case.name


def test_ep_beats_the_tp16_baseline_on_the_same_nodes_as_published():
    for row in ep_vs_tp():
        assert row["predicted_ratio"] > 1.0, row  # the published direction: EP above TP16 in both phases
        assert row["predicted_ratio"] <= row["published_ratio"] * 1.25, row


def test_two_batch_overlap_gains_in_decode_as_sglang_measured():
    decode = next(row for row in two_batch_overlap_gain() if row["phase"] == "decode")
    assert decode["predicted_gain"] == pytest.approx(decode["published_low"], rel=0.1)


# ---- the kernel terms against DeepSeek's own tables (H800) -------------------------------------


def _h800_links(ep):
    return ExpertLinks.of(load_catalog("datasheet").accelerator("h800-sxm"), ep)


def test_the_all_to_all_reproduces_deepeps_low_latency_table():
    arch = load_models().model("deepseek-v3").architecture
    table = pd.read_csv(DEEPSEEK / "deepep_low_latency.csv")
    errors = []
    for row in table.itertuples():
        both = all_to_all_s(row.tokens_per_rank, arch, DEEPSEEK_PRECISION, row.ep, 1.0, _h800_links(row.ep), DEFAULT_ALL_TO_ALL)
        errors.append(both / ((row.dispatch_us + row.combine_us) * 1e-6) - 1.0)
    assert max(abs(e) for e in errors) < 0.10, errors


def test_the_high_throughput_all_to_all_reaches_deepeps_bottleneck_bandwidth():
    """DeepEP's normal kernels at 4096 tokens per rank: bytes on the bottleneck link (NVLink
    inside one node, the NIC across nodes) over the modelled time, against DeepEP's figure:
    159 vs 153 GB/s (EP8), 28 vs 43 (EP16), 46 vs 58 (EP32), 46 vs 51 (EP64). At EP16 the model
    has H800's 200 GB/s NVLink forwarding every copy inside the node as the bottleneck where
    DeepEP's measurement puts it on the NIC: the forwarding is cheaper than modelled."""
    arch = load_models().model("deepseek-v3").architecture
    table = pd.read_csv(DEEPSEEK / "deepep_normal.csv")
    for row in table.itertuples():
        seconds = all_to_all_s(row.tokens_per_rank, arch, DEEPSEEK_PRECISION, row.ep, 1.0, _h800_links(row.ep), DEFAULT_ALL_TO_ALL)
        nodes = row.ep // 8
        if nodes == 1:
            copies = row.ep * (1 - (1 - 1 / row.ep) ** 8) * (row.ep - 1) / row.ep  # distinct other ranks
        else:
            copies = (nodes - 1) * (1 - (1 - 1 / nodes) ** 8)  # distinct other nodes
        moved = row.tokens_per_rank * copies * 7168 * (1 + 4 / 128 + 2)  # fp8 dispatch + bf16 combine
        published = 2 / (1 / row.dispatch_gb_per_s + 1 / row.combine_gb_per_s) * 1e9
        assert moved / seconds == pytest.approx(published, rel=0.35), row


def test_grouped_gemms_fit_deepgemms_table_and_the_shipped_stack_is_that_fit():
    rows = deepgemm_rows()
    for device in ("h100-sxm", "h800-sxm"):
        shipped = load_calibration(device, stack="deepseek-kernels")
        refit = deepseek_kernels(device)
        assert shipped.kernels.gemm_fp8.efficiency == pytest.approx(refit.kernels.gemm_fp8.efficiency, rel=1e-6)
        assert shipped.kernels.attention_decode == refit.kernels.attention_decode
        perf = DevicePerf(load_catalog("datasheet").accelerator(device), shipped)
        predicted = predict_ops(rows, perf)
        assert log_error(predicted, rows["measured_s"].to_numpy()) < 0.10
        ratio = predicted / rows["measured_s"].to_numpy()
        assert np.quantile(np.abs(ratio - 1), 0.9) < 0.25  # the worst: small-M dense rows DeepGEMM runs better than its tiles say
        assert np.max(np.abs(ratio - 1)) < 0.5
