"""The claim table's reasons are computed from the frames, never typed: each statement the 'why'
column makes (a ratio read as 'equal' or 'double', a with-sparsity figure, a dominant bound, one
device dearer than another) flips when the input it reads moves past the study's tolerance."""

from __future__ import annotations

import pandas as pd
import pytest

from hetsim.io.studies import default_study_path, load_study
from hetsim.study.reasons import (
    COST_WORDS,
    Context,
    bandwidth_bound,
    blog_reason,
    bound_counts,
    decode_reason,
    fp8_ratios,
    peak_ratios,
    prefill_reason,
    ratio_reading,
    readings,
    reasons,
    relation,
)

STUDY = load_study(default_study_path("paper"))
TIE = STUDY.tie_tolerance


def context(frames: dict[str, pd.DataFrame]) -> Context:
    return Context(STUDY, frames, "paper", "datasheet")


def move(frames: dict[str, pd.DataFrame], input_set: str, device: str, column: str, value: float) -> None:
    inputs = frames["inputs"]
    inputs.loc[(inputs.input_set == input_set) & (inputs.device == device), column] = value


def paper_value(frames: dict[str, pd.DataFrame], device: str, column: str, input_set: str = "paper") -> float:
    inputs = frames["inputs"]
    return float(inputs[(inputs.input_set == input_set) & (inputs.device == device)][column].iloc[0])


def test_a_ratio_reads_equal_or_double_only_within_the_tolerance() -> None:
    assert [ratio_reading(r, TIE) for r in (1.0, 1.019, 1.03, 2.0, 1.97, 2.1, float("nan"))] == [
        "equal", "equal", "1.03x", "double", "double", "2.10x", "none",
    ]  # fmt: skip
    assert [relation(r, TIE, COST_WORDS) for r in (1.64, 1.01, 0.9)] == ["dearer than", "as cheap as", "cheaper than"]


def test_gaudi3s_fp8_rate_reads_equal_to_its_16_bit_rate_only_while_the_columns_say_so(paper_frames) -> None:
    """Compared from the inputs frame's fp8 and 16-bit columns: Gaudi 3's are equal, H100, B200
    and MI300X double, A100 has no fp8 peak; moving Gaudi 3's fp8 peak 3% moves the reading."""
    assert readings(fp8_ratios(paper_frames, "paper"), TIE) == {
        "h100": "double", "b200": "double", "gaudi3": "equal", "a100": "none", "mi300x": "double",
    }  # fmt: skip
    sixteen = paper_value(paper_frames, "gaudi3", "tflops_16bit")
    move(paper_frames, "paper", "gaudi3", "tflops_fp8", sixteen * 1.01)
    assert readings(fp8_ratios(paper_frames, "paper"), TIE)["gaudi3"] == "equal"
    move(paper_frames, "paper", "gaudi3", "tflops_fp8", sixteen * 1.03)
    assert readings(fp8_ratios(paper_frames, "paper"), TIE)["gaudi3"] == "1.03x"
    assert "equal: gaudi3" not in prefill_reason(context(paper_frames)).derived


def test_table_5s_h100_reads_as_a_with_sparsity_figure_only_while_it_doubles_the_datasheets(paper_frames) -> None:
    """1979 TFLOP/s is 2.00x the datasheet's dense 989: the 2:4 sparsity factor. At the dense
    989.5 the two agree and the reason no longer calls it a with-sparsity figure."""
    assert readings(peak_ratios(paper_frames, "paper", "datasheet"), TIE)["h100"] == "double"
    assert "h100: double the datasheet's dense peak" in prefill_reason(context(paper_frames)).derived
    move(paper_frames, "paper", "h100", "tflops_16bit", 989.5)
    assert readings(peak_ratios(paper_frames, "paper", "datasheet"), TIE)["h100"] == "equal"
    assert "with-sparsity" not in prefill_reason(context(paper_frames)).derived


def test_the_bound_a_stage_is_said_to_hit_is_the_one_most_chosen_configurations_hit(paper_frames) -> None:
    ctx = context(paper_frames)
    prefill = bound_counts(ctx, "prefill")
    assert prefill.most_common(1)[0][0] == "compute"
    assert bound_counts(ctx, "decode").most_common(1)[0][0] == "memory"
    stages = paper_frames["stages"]
    stages.loc[stages.stage == "prefill", "bound"] = "memory"
    assert bound_counts(ctx, "prefill") == {"memory": prefill.total()}
    assert decode_reason(ctx).derived.startswith("Decode is memory-bound")
    assert prefill_reason(ctx).derived.startswith("Prefill is memory-bound")


def test_the_decode_comparison_follows_the_chosen_configurations_costs(paper_frames) -> None:
    """70B FP16 at TBT <= 20 ms: Gaudi 3's chosen decode costs 1.64x B200's, so it decodes dearer;
    set to B200's cost it decodes as cheap."""
    assert "gaudi3 decodes dearer than b200" in decode_reason(context(paper_frames)).derived
    stages = paper_frames["stages"]
    case = (stages.input_set == "paper") & (stages.stage == "decode") & (stages.variant == "70B FP16") & (
        stages["shape"] == "decode-heavy") & (stages.sla == "latency")  # fmt: skip
    b200 = stages.loc[case & (stages.device == "b200"), "usd_per_request"].iloc[0]
    stages.loc[case & (stages.device == "gaudi3"), "usd_per_request"] = b200 * (1 + TIE / 2)
    assert "gaudi3 decodes as cheap as b200" in decode_reason(context(paper_frames)).derived


def test_the_blog_bound_is_gaudi3s_bandwidth_per_dollar_over_h100s_and_compared_with_the_band(paper_frames) -> None:
    ctx = context(paper_frames)
    assert bandwidth_bound(ctx) == pytest.approx(1.75, abs=0.01)
    assert "below the blog's decode-heavy band" in blog_reason(ctx).derived
    gb_s = paper_value(paper_frames, "gaudi3", "bandwidth_gb_s")
    move(paper_frames, "paper", "gaudi3", "bandwidth_gb_s", gb_s * 2.0)  # 3.5x H100's: inside 3.40-4.60
    assert bandwidth_bound(ctx) == pytest.approx(3.5, abs=0.02)
    assert "within or above the blog's decode-heavy band" in blog_reason(ctx).derived


def test_commentary_is_kept_apart_from_what_is_computed(paper_frames) -> None:
    """The paper's own words and the method live in the commentary; moving an input changes the
    computed text and never the commentary."""
    before = reasons(STUDY, paper_frames)
    move(paper_frames, "paper", "gaudi3", "tflops_fp8", paper_value(paper_frames, "gaudi3", "tflops_16bit") * 1.5)
    after = reasons(STUDY, paper_frames)
    assert "slightly longer token-to-token latency" in before["decode"].commentary
    assert all("token-to-token" not in r.derived for r in before.values())
    assert {k: r.commentary for k, r in before.items()} == {k: r.commentary for k, r in after.items()}
    assert before["prefill"].derived != after["prefill"].derived
