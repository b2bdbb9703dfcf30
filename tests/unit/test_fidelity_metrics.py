"""Simulated against measured: errors computed as documented, a verdict computed from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hetsim.metrics.fidelity import compare, summary_errors


def calls(ttft_ms: list[float], decode_ms: list[float], tokens: int = 11, pool: str = "llm") -> pd.DataFrame:
    n = len(ttft_ms)
    ttft, decode = np.array(ttft_ms) / 1e3, np.array(decode_ms) / 1e3
    return pd.DataFrame({
        "session_id": [f"s{i}" for i in range(n)], "step_id": [0] * n, "pool": [pool] * n, "status": ["completed"] * n,
        "arrival_s": np.arange(n, dtype=float), "queue_s": 0.0, "ttft_s": ttft, "e2e_s": ttft + decode,
        "tbt_mean_s": decode / (tokens - 1), "tbt_max_s": decode / (tokens - 1) * 2, "output_tokens": tokens,
    })  # fmt: skip


def test_relative_error_is_simulated_minus_measured_over_measured() -> None:
    measured = calls([10, 20, 30, 40], [100, 100, 100, 100])
    simulated = calls([5, 10, 15, 20], [100, 100, 100, 100])  # first tokens half as long
    result = compare(measured, simulated, (10.0, 10.0))
    row = result.table.set_index(["pool", "metric", "percentile"]).loc[("all", "ttft_s", "p50")]
    assert row.measured == pytest.approx(0.025) and row.simulated == pytest.approx(0.0125)
    assert row.rel_error == pytest.approx(-0.5)
    tbt = result.table.set_index(["pool", "metric", "percentile"]).loc[("all", "tbt_mean_s", "p99")]
    assert tbt.rel_error == pytest.approx(0.0)
    throughput = result.table[result.table.metric == "output_tokens_per_s"].iloc[0]
    assert throughput.measured == pytest.approx(44 / 10.0) and throughput.rel_error == pytest.approx(0.0)


def test_the_verdict_names_the_largest_error_and_the_component_that_differs() -> None:
    measured = calls([10, 10, 10, 10], [100, 120, 140, 160])
    simulated = calls([10, 10, 10, 10], [50, 60, 70, 80])  # decode twice as fast
    result = compare(measured, simulated, (10.0, 10.0))
    assert "decode time" in result.verdict and "optimistic" in result.verdict
    worst = result.table[(result.table.pool == "all") & result.table.metric.isin(["ttft_s", "tbt_mean_s", "e2e_s"])]
    assert worst.rel_error.abs().max() == pytest.approx(0.5)
    assert "-50%" in result.verdict


def test_calls_are_paired_by_session_and_step_and_pools_broken_out() -> None:
    measured = pd.concat([calls([10, 20], [50, 50], pool="a"), calls([30], [50], pool="b").assign(session_id=["s9"])])
    simulated = measured.copy()
    result = compare(measured, simulated, (1.0, 1.0))
    assert len(result.calls) == 3
    assert set(result.table.pool) == {"all", "a", "b"}
    assert summary_errors(result.table) == {"median_abs_error_p50": 0.0, "median_abs_error_p99": 0.0}


def test_failed_calls_are_left_out_of_both_sides() -> None:
    measured = calls([10, 20, 1000], [50, 50, 50])
    measured.loc[2, "status"] = "failed"
    simulated = calls([10, 20, 30], [50, 50, 50])
    simulated.loc[2, "status"] = "dropped"
    result = compare(measured, simulated, (1.0, 1.0))
    assert len(result.calls) == 2 and "2 measured and 2 simulated calls" in result.verdict
