"""Summaries of a simulation: latency percentiles, SLA attainment, goodput, utilisation,
energy and cost, all computed from the flat result records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hetsim.metrics.gaps import DEFINITION as GAP_DEFINITION
from hetsim.metrics.gaps import gap_frame, gap_percentile, gap_percentiles, share_within


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
    """Service-level objectives, each met at its own percentile: TTFT when that share of calls
    is within it, TBT when that share of all token gaps is, E2E when that share of sessions is."""

    ttft_s: float | None = None
    tbt_s: float | None = None
    e2e_s: float | None = None
    ttft_percentile: float = 99.0
    tbt_percentile: float = 99.0
    e2e_percentile: float = 99.0

    @classmethod
    def of(cls, spec: Any) -> Sla:
        """From any SLA spec: a scenario's or a fleet demand's (one ``percentile`` for all)
        or a workload's (``ttft_percentile``, ``tbt_percentile``, ``e2e_percentile``)."""
        if hasattr(spec, "ttft_percentile"):
            points = (spec.ttft_percentile, spec.tbt_percentile, spec.e2e_percentile)
        else:
            points = (spec.percentile,) * 3
        return cls(spec.ttft_s, spec.tbt_s, spec.e2e_s, *points)

    def describe(self) -> str:
        """E.g. 'TTFT p99 <= 0.25 s, TBT p95 <= 0.02 s (token gaps)'."""
        parts = [
            f"{label} p{point:g} <= {limit:g} s{suffix}"
            for label, limit, point, suffix in (
                ("TTFT", self.ttft_s, self.ttft_percentile, ""),
                ("TBT", self.tbt_s, self.tbt_percentile, " (token gaps)"),
                ("E2E", self.e2e_s, self.e2e_percentile, " (sessions)"),
            )
            if limit is not None
        ]
        return ", ".join(parts) or "none"


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


def sla_attainment(
    calls: pd.DataFrame, sessions: pd.DataFrame, sla: Sla, gaps: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Per objective: the percentile it is checked at, what it measures, the share within it
    and whether that share reaches the percentile. TTFT counts calls, TBT every token gap
    (``gaps``: the run's ``token_gaps``; without them, each call's worst gap), E2E sessions.
    Dropped calls count against TTFT and TBT: they never met anything."""
    done = calls[calls.status == "completed"]
    completed_share = len(done) / len(calls) if len(calls) else 1.0
    result: dict[str, Any] = {}
    if sla.ttft_s is not None:
        share = float((done["ttft_s"] <= sla.ttft_s).mean()) if len(done) else math.nan
        result["ttft"] = _objective(sla.ttft_s, sla.ttft_percentile, share * completed_share, "calls' TTFT",
                                    _percentile(done["ttft_s"], sla.ttft_percentile))  # fmt: skip
    if sla.tbt_s is not None:
        if gaps is not None:
            share, measure = share_within(gaps, sla.tbt_s), GAP_DEFINITION
            at = gap_percentile(gaps, sla.tbt_percentile)
        else:
            worst = done["tbt_max_s"].fillna(0.0)
            share = float((worst <= sla.tbt_s).mean()) if len(done) else math.nan
            measure, at = "calls' worst token gap (no token-gap records)", _percentile(worst, sla.tbt_percentile)
        share = 1.0 if math.isnan(share) and len(done) else share  # one-token calls have no gaps
        result["tbt"] = _objective(sla.tbt_s, sla.tbt_percentile, share * completed_share, measure, at)
    if sla.e2e_s is not None:
        share = float((sessions["e2e_s"] <= sla.e2e_s).mean()) if len(sessions) else math.nan
        result["e2e"] = _objective(sla.e2e_s, sla.e2e_percentile, share, "sessions' end-to-end time",
                                   _percentile(sessions["e2e_s"], sla.e2e_percentile))  # fmt: skip
    result["all_met"] = all(v["met"] for v in result.values())
    return result


def _objective(limit_s: float, percentile: float, share: float, measure: str, at_s: float) -> dict[str, Any]:
    return {
        "objective_s": limit_s,
        "percentile": percentile,
        "measure": measure,
        "value_at_percentile_s": at_s,
        "attained": share,
        "met": share >= percentile / 100.0,
    }


def _percentile(values: pd.Series, point: float) -> float:
    clean = values.dropna().to_numpy(dtype=float)
    return float(np.percentile(clean, point)) if clean.size else math.nan


def _goodput(calls: pd.DataFrame, sla: Sla | None, duration_s: float) -> float:
    """Completed calls per second whose TTFT and every token gap (the worst) are within the SLA."""
    done = calls[calls.status == "completed"]
    if sla is not None:
        if sla.ttft_s is not None:
            done = done[done.ttft_s <= sla.ttft_s]
        if sla.tbt_s is not None:
            done = done[done.tbt_max_s.fillna(0.0) <= sla.tbt_s]
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
    gaps = gap_frame(frames)
    return {
        "duration_s": duration,
        "sessions": {"count": len(sessions), "e2e_s": _percentiles(sessions["e2e_s"]) if len(sessions) else {}},
        "llm_calls": {
            "count": len(calls),
            "completed": len(done),
            "dropped": len(calls) - len(done),
            "dropped_reasons": calls.loc[calls.status != "completed", "reason"].value_counts().to_dict(),
            "ttft_s": _percentiles(done["ttft_s"]),
            "tbt_s": gap_percentiles(gaps) if gaps is not None else None,
            "tbt_definition": GAP_DEFINITION,
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
        "kv_transfers": _kv_transfers(frames.get("kv_links"), calls, duration),
        "sla": sla_attainment(calls, sessions, sla, gaps) if sla is not None else None,
        "goodput_calls_per_s": _goodput(calls, sla, duration),
        "utilization": utilization,
        "cost": cost,
        "provenance": {
            "latency": "simulated (step times from the performance model)",
            "goodput": "completed calls whose TTFT and worst token gap are within the SLA",
            "cost": sorted({p.cost_provenance for p in pools}),
        },
    }


def _kv_transfers(links: pd.DataFrame | None, calls: pd.DataFrame, duration: float) -> dict[str, Any] | None:
    """Prefill -> decode KV transfers: how long calls waited for their prefill replica's link
    (a FIFO queue per link) and how busy each link was; None without disaggregated pools."""
    if links is None or not len(links):
        return None
    moved = calls[calls["decode_pool"].astype(str) != ""] if "kv_wait_s" in calls else calls.iloc[:0]
    return {
        "count": int(links["transfers"].sum()),
        "bytes": float(links["bytes"].sum()),
        "transfer_s": _percentiles(moved["kv_transfer_s"]) if len(moved) else None,
        "wait_s": _percentiles(moved["kv_wait_s"]) if len(moved) else None,
        "waited_share": float((moved["kv_wait_s"] > 0).mean()) if len(moved) else math.nan,
        "link_utilization": {
            f"{row.pool}[{row.replica}]": float(row.busy_s / duration) for row in links.itertuples(index=False)
        },
        "queueing": "FIFO per prefill replica's link (hetsim.sim.kv_link)",
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
