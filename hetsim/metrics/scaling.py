"""Autoscaled pools, from the ``scaling`` records (each replica's state at the start and every
change after: off, starting, serving, draining; ``hetsim.sim.autoscale``): the intervals each
replica spent in each state, replicas over time, replica-hours up, cold starts, and the calls
that waited while their pool was starting a replica."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

UP_STATES = ("starting", "serving", "draining")  # a replica costs money and draws power in these
INTERVAL_COLUMNS = ("pool", "replica", "state", "start_s", "end_s")


def state_intervals(scaling: pd.DataFrame, end_s: float) -> pd.DataFrame:
    """One row per stretch a replica spent in one state, the last ending at ``end_s``."""
    if scaling is None or not len(scaling):
        return pd.DataFrame(columns=list(INTERVAL_COLUMNS))
    ordered = scaling.sort_values(["pool", "replica", "time_s"], kind="stable")
    nxt = ordered.groupby(["pool", "replica"], sort=False)["time_s"].shift(-1)
    frame = pd.DataFrame({"pool": ordered["pool"].to_numpy(), "replica": ordered["replica"].to_numpy(),
                          "state": ordered["state"].to_numpy(), "start_s": ordered["time_s"].to_numpy(),
                          "end_s": nxt.fillna(max(end_s, float(ordered["time_s"].max()))).to_numpy()})  # fmt: skip
    return frame[frame["end_s"] > frame["start_s"]].reset_index(drop=True)


def up_seconds(intervals: pd.DataFrame, start_s: float, end_s: float) -> dict[str, float]:
    """Replica-seconds each pool had up (starting, serving or draining) within [start_s, end_s]."""
    up = intervals[intervals["state"].isin(UP_STATES)]
    clipped = (np.minimum(up["end_s"], end_s) - np.maximum(up["start_s"], start_s)).clip(lower=0.0)
    return {str(pool): float(seconds) for pool, seconds in clipped.groupby(up["pool"]).sum().items()}


def replicas_over_time(scaling: pd.DataFrame) -> pd.DataFrame:
    """Per pool, after each change: how many replicas were up and how many served."""
    if scaling is None or not len(scaling):
        return pd.DataFrame(columns=["pool", "time_s", "up", "serving"])
    rows = []
    for pool, changes in scaling.sort_values("time_s", kind="stable").groupby("pool", sort=True):
        current: dict[int, str] = {}
        for time_s, group in changes.groupby("time_s", sort=True):
            current.update(zip(group["replica"].tolist(), group["state"].tolist(), strict=True))
            states = list(current.values())
            rows.append((pool, float(time_s), sum(s in UP_STATES for s in states), states.count("serving")))
    return pd.DataFrame(rows, columns=["pool", "time_s", "up", "serving"])


def rented_burst_devices(
    scaling: pd.DataFrame,
    pool: str,
    min_replicas: int,
    devices_per_replica: int,
    spare_devices: int,
    start_s: float,
    end_s: float,
) -> float:
    """Devices ``pool`` held above its minimum beyond the ``spare_devices`` free on nodes already
    paid for, averaged over [start_s, end_s] (what it rents per device-hour)."""
    timeline = replicas_over_time(scaling[scaling["pool"] == pool])
    if not len(timeline) or end_s <= start_s:
        return 0.0
    times = np.append(timeline["time_s"].to_numpy(dtype=float), end_s)
    extra = np.maximum((timeline["up"].to_numpy() - min_replicas) * devices_per_replica - spare_devices, 0)
    spans = np.clip(np.minimum(times[1:], end_s) - np.maximum(times[:-1], start_s), 0.0, None)
    return float((extra * spans).sum() / (end_s - start_s))


def _waited_on_cold_start(arrivals: np.ndarray, began: np.ndarray, starts: pd.DataFrame) -> int:
    """How many of the requests (arrival, start of service) queued while one of the pool's
    replicas was starting: queued (began > arrival) and a start overlapping the wait."""
    if not len(starts) or not len(arrivals):
        return 0
    queued = began > arrivals + 1e-12
    waited = np.zeros(len(arrivals), dtype=bool)
    for row in starts.itertuples(index=False):
        waited |= queued & (arrivals < row.end_s) & (began > row.start_s)
    return int(waited.sum())


def scaling_summary(frames: dict[str, pd.DataFrame], start_s: float, end_s: float) -> dict[str, Any] | None:
    """Per autoscaled pool: replicas up on average (time-weighted over the run), at most and at
    least, replica-hours, cold starts and their length, replicas drained, and the calls (LLM
    calls on the pool's first stage, steps of a non-LLM pool) that queued while it was starting
    a replica. None when no pool autoscales."""
    scaling = frames.get("scaling")
    if scaling is None or not len(scaling):
        return None
    intervals = state_intervals(scaling, end_s)
    seconds = up_seconds(intervals, start_s, end_s)
    timeline = replicas_over_time(scaling)
    calls, steps = frames.get("llm_calls"), frames.get("steps")
    duration = max(end_s - start_s, 1e-12)
    out: dict[str, Any] = {}
    for pool in sorted(scaling["pool"].astype(str).unique()):
        mine = intervals[intervals["pool"] == pool]
        starts = mine[mine["state"] == "starting"]
        changes = scaling[scaling["pool"] == pool]
        ready = starts[starts["end_s"] < end_s]  # those that finished starting within the run
        counts = timeline[timeline["pool"] == pool]["up"]
        requests = _requests_of(pool, calls, steps)
        out[pool] = {
            "mean_replicas_up": seconds.get(pool, 0.0) / duration,
            "replica_hours_up": seconds.get(pool, 0.0) / 3600.0,
            "peak_replicas_up": int(counts.max()) if len(counts) else 0,
            "least_replicas_up": int(counts.min()) if len(counts) else 0,
            "cold_starts": int((changes["state"] == "starting").sum()),
            "cold_start_s": float((ready["end_s"] - ready["start_s"]).mean()) if len(ready) else math.nan,
            "drained": int((changes["state"] == "draining").sum()),
            # None for a pool that is no request's first stop (a decode pool: its calls queue there
            # after their prefill, which the records do not time)
            "requests_waited_on_cold_start": None if requests is None else _waited_on_cold_start(*requests, starts),
        }
    return out


def _requests_of(
    pool: str, calls: pd.DataFrame | None, steps: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(arrival, service start) of what ``pool`` served first (its LLM calls, or its steps);
    None when it was no request's first stop."""
    if calls is not None and len(calls) and (calls["pool"].astype(str) == pool).any():
        mine = calls[calls["pool"].astype(str) == pool]
        return mine["arrival_s"].to_numpy(dtype=float), mine["admitted_s"].to_numpy(dtype=float)
    if steps is not None and len(steps) and (steps["pool"].astype(str) == pool).any():
        mine = steps[steps["pool"].astype(str) == pool]
        return mine["ready_s"].to_numpy(dtype=float), mine["start_s"].to_numpy(dtype=float)
    return None
