"""Simulation against execution: the same arrivals measured on real engines and predicted by
the simulator, compared metric by metric (pure: record frames in, tables and a verdict out).

Relative error is ``(simulated - measured) / measured``: negative means the simulator is
optimistic (predicts less time than was measured). The verdict is computed from the errors:
it names the metric and percentile with the largest error, and the component of a call's
time whose simulated mean differs most from the measured one: first token (arrival to first
token: queueing, the engine's API latency and the prefill step) or decode (first token to last:
the step time of decoding). Queueing alone is not compared: a client sees when it sent a call,
not when the engine's scheduler admitted it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = ("ttft_s", "tbt_mean_s", "tbt_max_s", "e2e_s")
HEADLINE_METRICS = ("ttft_s", "tbt_mean_s", "e2e_s")
PERCENTILES = (50, 90, 99)
COMPONENTS = {
    "first_token": "time to first token (queueing, the engine's API latency and the prefill step)",
    "decode": "decode time (first token to last: the step time of decoding)",
}
COLUMNS = ("pool", "metric", "percentile", "measured", "simulated", "rel_error")
LABELS = {"ttft_s": "TTFT", "tbt_mean_s": "mean TBT", "tbt_max_s": "worst token gap", "e2e_s": "call E2E"}


@dataclass(frozen=True)
class Comparison:
    table: pd.DataFrame  # COLUMNS: one row per pool x metric x percentile, plus throughput
    calls: pd.DataFrame  # one row per call seen on both sides: measured and simulated e2e, ttft
    components: pd.DataFrame  # mean seconds per component, measured and simulated
    verdict: str


def _percentile(values: pd.Series, point: float) -> float:
    clean = values.dropna().to_numpy(dtype=float)
    return float(np.percentile(clean, point)) if clean.size else math.nan


def _relative(simulated: float, measured: float) -> float:
    if not (math.isfinite(simulated) and math.isfinite(measured)) or measured == 0:
        return math.nan
    return (simulated - measured) / measured


def compare(measured: pd.DataFrame, simulated: pd.DataFrame, duration_s: tuple[float, float]) -> Comparison:
    """Compare completed calls of the two ``llm_calls`` frames, per pool and over all pools.

    ``duration_s``: (measured, simulated) seconds of traffic, for the throughput rows."""
    done_m = measured[measured.status == "completed"]
    done_s = simulated[simulated.status == "completed"]
    rows = []
    for pool, m_calls, s_calls in _groups(done_m, done_s):
        for metric in METRICS:
            for point in PERCENTILES:
                m, s = _percentile(m_calls[metric], point), _percentile(s_calls[metric], point)
                rows.append((pool, metric, f"p{point}", m, s, _relative(s, m)))
        m_rate = m_calls["output_tokens"].sum() / duration_s[0] if duration_s[0] > 0 else math.nan
        s_rate = s_calls["output_tokens"].sum() / duration_s[1] if duration_s[1] > 0 else math.nan
        rows.append((pool, "output_tokens_per_s", "mean", m_rate, s_rate, _relative(s_rate, m_rate)))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    calls = _paired(done_m, done_s)
    components = _components(calls)
    return Comparison(table, calls, components, _verdict(table, components, len(done_m), len(done_s)))


def _groups(measured: pd.DataFrame, simulated: pd.DataFrame):
    yield "all", measured, simulated
    pools = sorted(set(measured.pool) | set(simulated.pool))
    if len(pools) > 1:
        for pool in pools:
            yield pool, measured[measured.pool == pool], simulated[simulated.pool == pool]


def _paired(measured: pd.DataFrame, simulated: pd.DataFrame) -> pd.DataFrame:
    keys = ["session_id", "step_id"]
    columns = [*keys, "pool", "arrival_s", "ttft_s", "e2e_s", "output_tokens"]
    return measured[columns].merge(simulated[[*keys, "arrival_s", "ttft_s", "e2e_s"]], on=keys,
                                   suffixes=("_measured", "_simulated"))  # fmt: skip


def _components(calls: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for side in ("measured", "simulated"):
        decode = calls[f"e2e_s_{side}"] - calls[f"ttft_s_{side}"]
        rows.append({"side": side, "first_token": calls[f"ttft_s_{side}"].mean(), "decode": decode.mean()})
    return pd.DataFrame(rows).set_index("side")


def _verdict(table: pd.DataFrame, components: pd.DataFrame, measured_calls: int, simulated_calls: int) -> str:
    overall = table[(table.pool == "all") & table.metric.isin(HEADLINE_METRICS)].dropna(subset=["rel_error"])
    if overall.empty or components.empty:
        return f"No comparison: {measured_calls} measured and {simulated_calls} simulated calls completed."
    worst = overall.loc[overall.rel_error.abs().idxmax()]
    direction = "optimistic (predicts less time)" if worst.rel_error < 0 else "pessimistic (predicts more time)"
    gaps = (components.loc["simulated"] - components.loc["measured"]).astype(float)
    source = gaps.abs().idxmax()
    parts = "; ".join(
        f"{name.replace('_', ' ')} {components.loc['measured', name] * 1e3:.1f} ms measured vs "
        f"{components.loc['simulated', name] * 1e3:.1f} ms simulated" for name in COMPONENTS
    )
    p50 = overall[overall.percentile == "p50"].rel_error.abs().median()
    p99 = overall[overall.percentile == "p99"].rel_error.abs().median()
    return (
        f"The largest error is {LABELS.get(str(worst.metric), worst.metric)} {worst.percentile}: simulated {worst.simulated * 1e3:.1f} ms against "
        f"{worst.measured * 1e3:.1f} ms measured ({worst.rel_error:+.0%}), the simulator being {direction}. "
        f"Per call, the mean component that differs most is {COMPONENTS[str(source)]}: {parts}. "
        f"Median |error| of TTFT, TBT and E2E: {p50:.0%} at p50, {p99:.0%} at p99 "
        f"({measured_calls} measured and {simulated_calls} simulated calls completed)."
    )


def summary_errors(table: pd.DataFrame) -> dict[str, float]:
    """Median |relative error| over TTFT, TBT and E2E at p50 and at p99 (all pools)."""
    overall = table[(table.pool == "all") & table.metric.isin(HEADLINE_METRICS)]
    return {
        f"median_abs_error_{p}": float(overall[overall.percentile == p].rel_error.abs().median()) for p in ("p50", "p99")
    }
