"""Sweep metrics: one flat row of headline figures per run, and their spread across seeds.

A run's summary (``hetsim.metrics.summary.summarize``) is a nested dict; a sweep wants one
row per (scenario, seed) so that runs can be compared, plotted and averaged. Across seeds
each metric gets its mean and a two-sided 95% Student-t confidence interval of the mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# (column, key path into the summary); a path that is absent (no SLA, no sessions) gives NaN.
METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sessions", ("sessions", "count")),
    ("session_e2e_p50_s", ("sessions", "e2e_s", "p50")),
    ("session_e2e_p99_s", ("sessions", "e2e_s", "p99")),
    ("llm_calls", ("llm_calls", "count")),
    ("completed_calls", ("llm_calls", "completed")),
    ("dropped_calls", ("llm_calls", "dropped")),
    ("ttft_p50_s", ("llm_calls", "ttft_s", "p50")),
    ("ttft_p99_s", ("llm_calls", "ttft_s", "p99")),
    ("tbt_p50_s", ("llm_calls", "tbt_s", "p50")),  # token gaps (``hetsim.metrics.gaps``)
    ("tbt_p99_s", ("llm_calls", "tbt_s", "p99")),
    ("tbt_max_p99_s", ("llm_calls", "tbt_max_s", "p99")),
    ("e2e_p50_s", ("llm_calls", "e2e_s", "p50")),
    ("e2e_p99_s", ("llm_calls", "e2e_s", "p99")),
    ("output_tokens_per_s", ("llm_calls", "output_tokens_per_s")),
    ("goodput_calls_per_s", ("goodput_calls_per_s",)),
    ("fleet_usd_per_h", ("cost", "fleet_usd_per_h")),
    ("usd_per_million_tokens", ("cost", "usd_per_million_tokens")),
    ("usd_per_session", ("cost", "usd_per_session")),
    ("energy_kwh", ("cost", "energy_kwh")),
    ("sla_ttft_attained", ("sla", "ttft", "attained")),
    ("sla_tbt_attained", ("sla", "tbt", "attained")),
    ("sla_e2e_attained", ("sla", "e2e", "attained")),
    ("sla_met", ("sla", "all_met")),
    ("simulated_s", ("duration_s",)),
    ("events", ("run", "events")),
)
METRIC_COLUMNS: tuple[str, ...] = (*(name for name, _ in METRICS), "wall_s")
"""Every numeric column of a sweep row; ``sla_met`` is 1 when all objectives were met, else 0."""

# Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30 (standard tables).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959963984540054


def flatten_summary(summary: dict[str, Any]) -> dict[str, float]:
    """The headline figures of one run's summary as a flat ``{column: number}`` (NaN if absent)."""
    row: dict[str, float] = {}
    for column, path in METRICS:
        value: Any = summary
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        row[column] = math.nan if value is None else float(value)
    return row


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table below 31 degrees of freedom, the Cornish-Fisher series above (error < 1e-4)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci95(values: np.ndarray) -> dict[str, float]:
    """Mean, sample std and the 95% confidence interval of the mean of the finite ``values``."""
    finite = values[np.isfinite(values)]
    n = len(finite)
    mean = float(finite.mean()) if n else math.nan
    # identical values (a trace file replayed under several seeds) have no spread, not rounding noise
    std = (0.0 if np.ptp(finite) == 0 else float(finite.std(ddof=1))) if n > 1 else math.nan
    half = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95_half_width": half, "ci95_low": mean - half, "ci95_high": mean + half}


def across_seeds(points: pd.DataFrame, metrics: tuple[str, ...] = METRIC_COLUMNS) -> pd.DataFrame:
    """One row per (scenario, metric) over the successful points of each scenario file.

    ``points`` has columns ``scenario``, ``scenario_file``, ``status`` ('ok' or 'failed') and
    the ``metrics``; the result has ``scenario, scenario_file, metric, points, failed, n, mean,
    std, ci95_half_width, ci95_low, ci95_high`` in the order the scenario files first appear.
    """
    rows = []
    for scenario_file, group in points.groupby("scenario_file", sort=False):
        ok = group[group["status"] == "ok"]
        head = {"scenario": group["scenario"].iloc[0], "scenario_file": scenario_file,
                "points": len(group), "failed": len(group) - len(ok)}
        for metric in metrics:
            values = ok[metric].to_numpy(dtype=float, na_value=np.nan)
            rows.append(head | {"metric": metric} | mean_ci95(values))
    columns = ["scenario", "scenario_file", "metric", "points", "failed", "n", "mean", "std",
               "ci95_half_width", "ci95_low", "ci95_high"]
    return pd.DataFrame(rows, columns=columns)
