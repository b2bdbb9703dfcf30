"""Token gaps: the time between two consecutive output tokens of a call, over all calls.

A simulation records them as ``token_gaps`` rows of ``count`` gaps of ``gap_s`` each
(``hetsim.sim.token_gaps``); an executed run records every token's arrival (``tokens``),
from which the same rows derive. Percentiles are weighted by ``count`` and use the inverted
CDF (the smallest gap such that at least p% of all gaps are at or below it), so "the p-th
percentile gap is within the objective" and "at least p% of gaps are within it" say the same.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEFINITION = "token gaps (time between consecutive output tokens, every gap of every call), inverted-CDF percentile"


def gap_frame(frames: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The ``token_gaps`` rows of a run (derived from ``tokens`` for an executed run); None
    when the records hold neither."""
    if "token_gaps" in frames:
        return frames["token_gaps"]
    tokens = frames.get("tokens")
    if tokens is None:
        return None
    ordered = tokens.sort_values(["session_id", "step_id", "index"], kind="stable")
    same_call = (ordered["session_id"].to_numpy()[1:] == ordered["session_id"].to_numpy()[:-1]) & (
        ordered["step_id"].to_numpy()[1:] == ordered["step_id"].to_numpy()[:-1]
    )
    gaps = np.diff(ordered["time_s"].to_numpy(dtype=float))[same_call]
    frame = pd.DataFrame({"gap_s": gaps, "count": np.ones(len(gaps), dtype=np.int32)})
    calls = frames.get("llm_calls")
    if calls is not None and {"session_id", "step_id", "pool"} <= set(calls.columns):
        # each gap on the pool that decoded its call (as a simulated run's token_gaps rows are)
        later = ordered.iloc[1:][same_call][["session_id", "step_id"]].reset_index(drop=True)
        columns = ["session_id", "step_id", "pool"] + (["decode_pool"] if "decode_pool" in calls else [])
        pools = calls.drop_duplicates(["session_id", "step_id"])[columns]
        joined = later.merge(pools, on=["session_id", "step_id"], how="left")
        pool = joined["pool"].astype(object)
        if "decode_pool" in joined:
            decode = joined["decode_pool"].astype(object)
            pool = decode.where(decode.notna() & (decode.astype(str) != ""), pool)
        frame.insert(0, "pool", pool.fillna("").astype(str).to_numpy())
    return frame


def gap_percentiles(gaps: pd.DataFrame, points: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """p50/p90/p99 (and the mean, min, max and count) of all gaps, weighted by ``count``."""
    values, counts = _arrays(gaps)
    total = int(counts.sum())
    if total == 0:
        return {f"p{p:g}": math.nan for p in points} | {"mean": math.nan, "min": math.nan, "max": math.nan, "count": 0}
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(counts[order])
    result = {f"p{p:g}": _quantile(values, cumulative, p) for p in points}
    low, high = float(values[0]), float(values[-1])
    mean = min(max(float((values * counts[order]).sum() / total), low), high)  # summing never rounds it outside
    return result | {"mean": mean, "min": low, "max": high, "count": total}


def gap_percentile(gaps: pd.DataFrame, point: float) -> float:
    """The ``point``-th percentile of all gaps (weighted, inverted CDF)."""
    return gap_percentiles(gaps, (point,))[f"p{point:g}"]


def share_within(gaps: pd.DataFrame, limit_s: float) -> float:
    """Share of all gaps at or below ``limit_s`` (NaN without gaps)."""
    values, counts = _arrays(gaps)
    total = counts.sum()
    return float(counts[values <= limit_s].sum() / total) if total else math.nan


def _arrays(gaps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    values = gaps["gap_s"].to_numpy(dtype=float)
    counts = gaps["count"].to_numpy(dtype=np.int64)
    keep = counts > 0
    return values[keep], counts[keep]


def _quantile(sorted_values: np.ndarray, cumulative: np.ndarray, point: float) -> float:
    """The smallest value whose cumulative count reaches ``point`` percent of the total."""
    rank = point / 100.0 * cumulative[-1]
    index = int(np.searchsorted(cumulative, rank - 1e-9 * cumulative[-1], side="left"))
    return float(sorted_values[min(index, len(sorted_values) - 1)])
