"""Summaries of a simulation: latency percentiles, SLA attainment, goodput, utilisation,
energy and cost, all computed from the flat result records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PoolCost:
    """What one pool costs and draws: devices, $/h per device, idle and peak watts per device."""

    pool: str
    devices: int
    usd_per_h_per_device: float
    idle_w: float
    tdp_w: float
    cost_provenance: str


@dataclass(frozen=True)
class Sla:
    """Service-level objectives; each is met when ``percentile`` of calls/sessions are within it."""

    ttft_s: float | None = None
    tbt_s: float | None = None
    e2e_s: float | None = None
    percentile: float = 99.0


def _percentiles(values: pd.Series, points=(50, 90, 99)) -> dict[str, float]:
    clean = values.dropna().to_numpy(dtype=float)
    if clean.size == 0:
        return {f"p{p}": math.nan for p in points} | {"mean": math.nan}
    return {f"p{p}": float(np.percentile(clean, p)) for p in points} | {"mean": float(clean.mean())}


def session_frame(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per session: start, end, end-to-end time and how many steps were dropped."""
    grouped = steps.groupby("session_id", sort=False)
    sessions = pd.DataFrame({"start_s": grouped["ready_s"].min(), "end_s": grouped["end_s"].max()})
    sessions["e2e_s"] = sessions["end_s"] - sessions["start_s"]
    sessions["dropped_steps"] = (steps["status"] != "completed").groupby(steps["session_id"], sort=False).sum()
    return sessions


def sla_attainment(calls: pd.DataFrame, sessions: pd.DataFrame, sla: Sla) -> dict[str, Any]:
    """Share of calls (TTFT, TBT) and sessions (E2E) within each objective, and whether met."""
    done = calls[calls.status == "completed"]
    result: dict[str, Any] = {"percentile": sla.percentile}
    checks = {
        "ttft": (done["ttft_s"], sla.ttft_s),
        "tbt": (done["tbt_mean_s"].fillna(0.0), sla.tbt_s),
        "e2e": (sessions["e2e_s"], sla.e2e_s),
    }
    for name, (values, limit) in checks.items():
        if limit is None:
            continue
        share = float((values <= limit).mean()) if len(values) else math.nan
        # Dropped calls count against attainment: they never met anything.
        if name != "e2e" and len(calls):
            share *= len(done) / len(calls)
        result[name] = {"objective_s": limit, "attained": share, "met": share >= sla.percentile / 100.0}
    result["all_met"] = all(v["met"] for k, v in result.items() if isinstance(v, dict))
    return result


def _goodput(calls: pd.DataFrame, sla: Sla | None, duration_s: float) -> float:
    done = calls[calls.status == "completed"]
    if sla is not None:
        if sla.ttft_s is not None:
            done = done[done.ttft_s <= sla.ttft_s]
        if sla.tbt_s is not None:
            done = done[done.tbt_mean_s.fillna(0.0) <= sla.tbt_s]
    return len(done) / duration_s if duration_s > 0 else math.nan


def summarize(frames: dict[str, pd.DataFrame], pools: list[PoolCost], sla: Sla | None = None) -> dict[str, Any]:
    """Every headline figure of a run, with its provenance."""
    calls, steps, replicas = frames["llm_calls"], frames["steps"], frames["replicas"]
    sessions = session_frame(steps) if len(steps) else pd.DataFrame(columns=["start_s", "end_s", "e2e_s", "dropped_steps"])
    start = float(steps["ready_s"].min()) if len(steps) else 0.0
    end = float(steps["end_s"].max()) if len(steps) else 0.0
    duration = max(end - start, 1e-12)
    done = calls[calls.status == "completed"]
    tokens = float(done["input_tokens"].sum() + done["output_tokens"].sum())
    utilization = _utilization(replicas, duration)
    cost = _cost(pools, utilization, duration, tokens, len(sessions))
    return {
        "duration_s": duration,
        "sessions": {"count": len(sessions), "e2e_s": _percentiles(sessions["e2e_s"]) if len(sessions) else {}},
        "llm_calls": {
            "count": len(calls),
            "completed": len(done),
            "dropped": len(calls) - len(done),
            "dropped_reasons": calls.loc[calls.status != "completed", "reason"].value_counts().to_dict(),
            "ttft_s": _percentiles(done["ttft_s"]),
            "tbt_mean_s": _percentiles(done["tbt_mean_s"]),
            "tbt_max_s": _percentiles(done["tbt_max_s"]),
            "e2e_s": _percentiles(done["e2e_s"]),
            "preemptions": int(calls["preemptions"].sum()),
            "input_tokens": int(done["input_tokens"].sum()),
            "output_tokens": int(done["output_tokens"].sum()),
            "cached_tokens": int(done["cached_tokens"].sum()),
            "output_tokens_per_s": float(done["output_tokens"].sum()) / duration,
        },
        "steps": {"count": len(steps), "dropped": int((steps.status != "completed").sum())},
        "sla": sla_attainment(calls, sessions, sla) if sla is not None else None,
        "goodput_calls_per_s": _goodput(calls, sla, duration),
        "utilization": utilization,
        "cost": cost,
        "provenance": {
            "latency": "simulated (step times from the performance model)",
            "cost": sorted({p.cost_provenance for p in pools}),
        },
    }


def _utilization(replicas: pd.DataFrame, duration: float) -> dict[str, float]:
    """Mean busy share of each pool's replicas over the run."""
    if not len(replicas):
        return {}
    return {pool: float(group["busy_s"].mean() / duration) for pool, group in replicas.groupby("pool", sort=False)}


def _cost(pools: list[PoolCost], utilization: dict[str, float], duration: float, tokens: float, sessions: int) -> dict[str, Any]:
    hours = duration / 3600.0
    fleet_usd_per_h = sum(p.devices * p.usd_per_h_per_device for p in pools)
    energy_kwh = sum(
        p.devices * (p.idle_w + min(utilization.get(p.pool, 0.0), 1.0) * (p.tdp_w - p.idle_w)) * hours / 1000.0 for p in pools
    )
    total = fleet_usd_per_h * hours
    return {
        "fleet_usd_per_h": fleet_usd_per_h,
        "by_pool_usd_per_h": {p.pool: p.devices * p.usd_per_h_per_device for p in pools},
        "devices": {p.pool: p.devices for p in pools},
        "total_usd": total,
        "usd_per_million_tokens": total / tokens * 1e6 if tokens else math.nan,
        "usd_per_session": total / sessions if sessions else math.nan,
        "energy_kwh": energy_kwh,
    }
