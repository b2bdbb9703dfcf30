"""SLA attainment: every objective at the percentile its spec names, TBT on token gaps."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetsim.metrics.gaps import gap_frame, gap_percentile, gap_percentiles, share_within
from hetsim.metrics.summary import Sla, sla_attainment
from hetsim.specs.fleet import DemandSla
from hetsim.specs.scenario import SlaSpec as ScenarioSla
from hetsim.specs.workload import SlaSpec as WorkloadSla


def _calls(ttft: list[float], worst_gap: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"status": "completed", "ttft_s": ttft, "tbt_max_s": worst_gap})


def test_gap_percentiles_weigh_each_row_by_its_count_and_take_the_inverted_cdf():
    gaps = pd.DataFrame({"gap_s": [0.01, 0.05, 0.02], "count": [90, 1, 9]})
    result = gap_percentiles(gaps)
    assert result["p50"] == 0.01 and result["p90"] == 0.01 and result["p99"] == 0.02
    assert gap_percentile(gaps, 99.5) == 0.05 and result["count"] == 100
    assert result["mean"] == pytest.approx((0.9 + 0.05 + 0.18) / 100)


@given(
    values=st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=30),
    counts=st.lists(st.integers(1, 50), min_size=30, max_size=30),
    point=st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9]),
)
def test_the_percentile_gap_is_within_a_limit_exactly_when_that_share_of_gaps_is(values, counts, point):
    gaps = pd.DataFrame({"gap_s": values, "count": counts[: len(values)]})
    at = gap_percentile(gaps, point)
    assert share_within(gaps, at) >= point / 100
    below = [v for v in values if v < at]
    if below:
        assert share_within(gaps, max(below)) < point / 100


def test_an_executed_runs_gaps_derive_from_its_token_arrivals():
    tokens = pd.DataFrame(
        {"session_id": ["a", "a", "a", "b", "b"], "step_id": [0, 0, 0, 0, 0], "index": [0, 1, 2, 0, 1],
         "time_s": [1.0, 1.5, 1.75, 0.0, 2.0]}
    )  # fmt: skip
    gaps = gap_frame({"tokens": tokens})
    assert sorted(gaps["gap_s"]) == [0.25, 0.5, 2.0] and gaps["count"].sum() == 3
    assert gap_frame({}) is None


def test_each_objective_is_checked_at_its_own_percentile():
    calls = _calls([0.1] * 95 + [1.0] * 5, [0.02] * 100)
    gaps = pd.DataFrame({"gap_s": [0.01, 0.04], "count": [97, 3]})
    sessions = pd.DataFrame({"e2e_s": np.linspace(1, 10, 100)})
    sla = Sla(ttft_s=0.5, tbt_s=0.02, e2e_s=9.0, ttft_percentile=90, tbt_percentile=99, e2e_percentile=80)
    result = sla_attainment(calls, sessions, sla, gaps)
    assert result["ttft"]["met"] and result["ttft"]["percentile"] == 90  # 95% within, 90% asked
    assert not result["tbt"]["met"] and result["tbt"]["attained"] == pytest.approx(0.97)
    assert result["tbt"]["value_at_percentile_s"] == 0.04 and "token gaps" in result["tbt"]["measure"]
    assert result["e2e"]["met"] and result["e2e"]["percentile"] == 80
    assert not result["all_met"]
    stricter = sla_attainment(calls, sessions, Sla(ttft_s=0.5, ttft_percentile=99), gaps)
    assert not stricter["ttft"]["met"]


def test_without_gap_records_tbt_is_checked_on_each_calls_worst_gap():
    calls = _calls([0.1] * 10, [0.01] * 9 + [0.5])
    result = sla_attainment(calls, pd.DataFrame({"e2e_s": []}), Sla(tbt_s=0.1, tbt_percentile=90))
    assert result["tbt"]["met"] and result["tbt"]["attained"] == pytest.approx(0.9)
    assert "worst token gap" in result["tbt"]["measure"]


def test_every_sla_spec_names_its_percentiles():
    workload = WorkloadSla(ttft_s=1, ttft_percentile=90, tbt_s=0.1, tbt_percentile=95, e2e_s=5, e2e_percentile=50)
    assert Sla.of(workload) == Sla(1, 0.1, 5, 90, 95, 50)
    assert Sla.of(ScenarioSla(ttft_s=1, percentile=95)) == Sla(1, None, None, 95, 95, 95)
    assert Sla.of(DemandSla(tbt_s=0.1, percentile=90)).tbt_percentile == 90
    assert Sla.of(workload).describe() == "TTFT p90 <= 1 s, TBT p95 <= 0.1 s (token gaps), E2E p50 <= 5 s (sessions)"
    assert math.isnan(gap_percentiles(pd.DataFrame({"gap_s": [], "count": []}))["p99"])
