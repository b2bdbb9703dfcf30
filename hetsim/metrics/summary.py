"""Summaries of a simulation: latency percentiles, SLA attainment, goodput, utilisation,
energy, cost and an overload verdict, all computed from the flat result records.

How calls that never completed are counted, so that no two figures contradict each other:

* every LLM call of the trace is counted: ``completed``, ``dropped`` (recorded as dropped, failed
  or interrupted) or ``unfinished`` (no record: still queued or running when the run stopped, or
  never started because an earlier step of its session never finished);
* latency percentiles (``ttft_s``, ``tbt_mean_s``, ``tbt_max_s``, ``e2e_s``) are over completed
  calls only, and say so (``percentiles_over``); each family carries its ``count``, ``min`` and
  ``max``, so min <= p50 <= p90 <= p99 <= max and min <= mean <= max hold by construction;
* SLA attainment counts every dropped or unfinished call (and every session that did not
  complete) as a miss, i.e. as an infinite latency: ``attained`` is the share of *all* calls
  within the objective, and ``value_at_percentile_s`` is the percentile over all of them, infinite
  when the misses alone reach past the percentile, so "met" and "value <= objective" agree;
* ``load`` says whether the run was overloaded, from the numbers (``hetsim.metrics.load``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hetsim.metrics.gaps import DEFINITION as GAP_DEFINITION
from hetsim.metrics.gaps import gap_frame, gap_percentile, gap_percentiles, share_within
from hetsim.metrics.load import load_verdict
from hetsim.metrics.scaling import rented_burst_devices, scaling_summary


@dataclass(frozen=True)
class PlanCost:
    """The plan's one cost figure: whole nodes occupied at their $/h (``nodes``: SKU -> count),
    the planner's own figure when the plan carries it, and the TCO preset used."""

    usd_per_h: float
    nodes: dict[str, int]
    planner_usd_per_h: float | None
    tco: str
    pue: float = 1.0  # the facility's power usage effectiveness under that preset


@dataclass(frozen=True)
class PoolCost:
    """What one pool costs and draws: devices, $/h per device, idle and peak watts per device."""

    pool: str
    devices: int
    usd_per_h_per_device: float
    idle_w: float
    tdp_w: float
    cost_provenance: str
    # An autoscaled pool: its minimum is billed as the plan prices it (``usd_per_h_per_device``,
    # ``devices`` = min x devices per replica); replicas above it per device-hour up, at
    # ``burst_usd_per_h_per_device`` (rented).
    min_replicas: int | None = None
    devices_per_replica: int = 1
    burst_usd_per_h_per_device: float = math.nan
    spare_devices: int = 0  # devices free on nodes the plan pays for anyway: the burst uses them first


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
    """p50/p90/p99, mean, min, max and count of the non-missing ``values``."""
    clean = values.dropna().to_numpy(dtype=float)
    if clean.size == 0:
        return {f"p{p}": math.nan for p in points} | {"mean": math.nan, "min": math.nan, "max": math.nan, "count": 0}
    low, high = float(clean.min()), float(clean.max())
    found = {f"p{p}": min(max(float(np.percentile(clean, p)), low), high) for p in points}  # rounding stays inside
    mean = min(max(float(clean.mean()), low), high)
    return found | {"mean": mean, "min": low, "max": high, "count": int(clean.size)}


def session_frame(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per session: start, end, end-to-end time and how many steps were dropped."""
    grouped = steps.groupby("session_id", sort=False)
    sessions = pd.DataFrame({"start_s": grouped["ready_s"].min(), "end_s": grouped["end_s"].max()})
    sessions["e2e_s"] = sessions["end_s"] - sessions["start_s"]
    sessions["dropped_steps"] = (steps["status"] != "completed").groupby(steps["session_id"], sort=False).sum()
    return sessions


@dataclass(frozen=True)
class Expected:
    """What the trace asked for: LLM calls and sessions (None: count only what was recorded)."""

    llm_calls: int | None = None
    sessions: int | None = None
    steps: int | None = None

    @classmethod
    def of(cls, trace: pd.DataFrame) -> Expected:
        llm = int((trace["node_type"].astype(str) == "llm").sum())
        return cls(llm, int(trace["session_id"].nunique()), len(trace))


def sla_attainment(
    calls: pd.DataFrame, sessions: pd.DataFrame, sla: Sla, gaps: pd.DataFrame | None = None, expected: Expected | None = None
) -> dict[str, Any]:
    """Per objective: the percentile it is checked at, what it measures, the share within it
    and whether that share reaches the percentile. TTFT counts calls, TBT every token gap
    (``gaps``: the run's ``token_gaps``; without them, each call's worst gap), E2E sessions.
    Dropped and unfinished calls, and sessions that did not complete, count as misses (an
    infinite latency): they never met anything. ``misses`` says how many there were."""
    expected = expected or Expected()
    done = calls[calls.status == "completed"]
    all_calls = max(len(calls), expected.llm_calls or 0)
    missed_calls = all_calls - len(done)
    completed_share = len(done) / all_calls if all_calls else 1.0
    result: dict[str, Any] = {}
    if sla.ttft_s is not None:
        share = float((done["ttft_s"] <= sla.ttft_s).mean()) if len(done) else math.nan
        at = _at_percentile(done["ttft_s"].dropna().to_numpy(dtype=float), sla.ttft_percentile, all_calls)
        result["ttft"] = _objective(sla.ttft_s, sla.ttft_percentile, share * completed_share, "calls' TTFT", at, missed_calls)
    if sla.tbt_s is not None:
        if gaps is not None:
            share, measure = share_within(gaps, sla.tbt_s), GAP_DEFINITION
            point = _point_among_completed(sla.tbt_percentile, completed_share)
            at = math.inf if point is None else gap_percentile(gaps, point)
        else:
            worst = done["tbt_max_s"].fillna(0.0)
            share = float((worst <= sla.tbt_s).mean()) if len(done) else math.nan
            measure = "calls' worst token gap (no token-gap records)"
            at = _at_percentile(worst.to_numpy(dtype=float), sla.tbt_percentile, all_calls)
        share = 1.0 if math.isnan(share) and len(done) else share  # one-token calls have no gaps
        result["tbt"] = _objective(sla.tbt_s, sla.tbt_percentile, share * completed_share, measure, at, missed_calls)
    if sla.e2e_s is not None:
        complete = sessions[sessions["dropped_steps"] == 0] if "dropped_steps" in sessions else sessions
        whole = complete["e2e_s"].dropna().to_numpy(dtype=float)
        all_sessions = max(len(sessions), expected.sessions or 0)
        session_share = len(whole) / all_sessions if all_sessions else 1.0
        share = float((whole <= sla.e2e_s).mean()) if len(whole) else math.nan
        at = _at_percentile(whole, sla.e2e_percentile, all_sessions)
        result["e2e"] = _objective(sla.e2e_s, sla.e2e_percentile, share * session_share, "sessions' end-to-end time", at,
                                   all_sessions - len(whole))  # fmt: skip
    result["all_met"] = all(v["met"] for v in result.values())
    return result


def _point_among_completed(percentile: float, completed_share: float) -> float | None:
    """The percentile among completed items that is ``percentile`` among all of them (misses
    ranked last, as infinite); None when the misses alone reach past it."""
    if completed_share <= 0.0 or percentile / 100.0 > completed_share + 1e-12:
        return None
    return min(100.0, percentile / completed_share)


def _at_percentile(values: np.ndarray, percentile: float, all_items: int) -> float:
    """The value at ``percentile`` of ``all_items`` items, ``values`` being the completed ones and
    the rest misses (infinite); inverted CDF (the k-th smallest, k = ceil(p N / 100)), so it is
    within an objective exactly when the share of all items within that objective reaches the
    percentile. The rank is counted, not found through a percentile among the completed items,
    whose rescaling can land a rounding error past a whole rank."""
    if not values.size:
        return math.nan if all_items == 0 or percentile <= 0 else math.inf
    all_items = max(all_items, values.size)
    rank = max(1, math.ceil(percentile / 100.0 * all_items - RANK_TOLERANCE))
    if rank > values.size:
        return math.inf
    return float(np.partition(values, rank - 1)[rank - 1])


RANK_TOLERANCE = 1e-9
"""A percentile's rank within this of a whole number is that number (p N / 100 in floating point)."""


def _objective(limit_s: float, percentile: float, share: float, measure: str, at_s: float, misses: int) -> dict[str, Any]:
    return {
        "objective_s": limit_s,
        "percentile": percentile,
        "measure": measure,
        "value_at_percentile_s": at_s,
        "attained": share,
        "met": share >= percentile / 100.0 - RANK_TOLERANCE / 100.0,  # the rank's tolerance, as a share
        "misses": misses,
    }


def _goodput(calls: pd.DataFrame, sla: Sla | None, duration_s: float) -> float:
    """Completed calls per second whose TTFT and every token gap (the worst) are within the SLA."""
    done = calls[calls.status == "completed"]
    if sla is not None:
        if sla.ttft_s is not None:
            done = done[done.ttft_s <= sla.ttft_s]
        if sla.tbt_s is not None:
            done = done[done.tbt_max_s.fillna(0.0) <= sla.tbt_s]
    return len(done) / duration_s if duration_s > 0 else math.nan


def summarize(
    frames: dict[str, pd.DataFrame], pools: list[PoolCost], sla: Sla | None = None, expected: Expected | None = None,
    plan_cost: PlanCost | None = None,
) -> dict[str, Any]:
    """Every headline figure of a run, with its provenance. ``expected`` (``Expected.of(trace)``)
    lets calls and sessions the run never finished be counted; without it only recorded ones are."""
    calls, steps, replicas = frames["llm_calls"], frames["steps"], frames["replicas"]
    expected = expected or Expected()
    sessions = session_frame(steps) if len(steps) else pd.DataFrame(columns=["start_s", "end_s", "e2e_s", "dropped_steps"])
    start = float(steps["ready_s"].min()) if len(steps) else 0.0
    end = float(steps["end_s"].max()) if len(steps) else 0.0
    duration = max(end - start, 1e-12)
    done = calls[calls.status == "completed"]
    unfinished = max((expected.llm_calls or 0) - len(calls), 0)
    tokens = float(done["input_tokens"].sum() + done["output_tokens"].sum())
    scaled = scaling_summary(frames, start, end)
    up_s = {pool: figures["replica_hours_up"] * 3600.0 for pool, figures in (scaled or {}).items()}
    utilization = _utilization(replicas, duration, up_s)
    rented = {p.pool: rented_burst_devices(frames["scaling"], p.pool, p.min_replicas, p.devices_per_replica,
                                           p.spare_devices, start, end)
              for p in pools if scaled and p.min_replicas is not None and p.pool in scaled}  # fmt: skip
    cost = _cost(pools, utilization, duration, tokens, len(sessions), plan_cost, scaled or {}, rented)
    output_tokens = float(done["output_tokens"].sum())
    facility_kwh = cost["energy_kwh"] * (plan_cost.pue if plan_cost is not None else 1.0)
    cost["facility_energy_kwh"] = facility_kwh  # devices' energy x PUE
    cost["kwh_per_day"] = facility_kwh / duration * 86400.0
    cost["joules_per_output_token"] = facility_kwh * 3.6e6 / output_tokens if output_tokens else math.nan
    # the whole fleet's energy (non-LLM pools too) over what completed
    cost["joules_per_llm_call"] = facility_kwh * 3.6e6 / len(done) if len(done) else math.nan
    finished = int((sessions["dropped_steps"] == 0).sum()) if len(sessions) else 0
    cost["joules_per_session"] = facility_kwh * 3.6e6 / finished if finished else math.nan
    gaps = gap_frame(frames)
    adapters = _adapters(frames.get("adapters"), calls)
    return {
        "duration_s": duration,
        "load": load_verdict(steps, utilization, unfinished),
        "sessions": _sessions(sessions, expected),
        "llm_calls": _llm_calls(calls, done, unfinished, gaps, duration),
        "steps": {"count": max(len(steps), expected.steps or 0), "dropped": int((steps.status != "completed").sum()),
                  "unfinished": max((expected.steps or 0) - len(steps), 0)},
        "kv_transfers": _kv_transfers(frames.get("kv_links"), calls, duration),
        **({"adapters": adapters} if adapters is not None else {}),
        "sla": sla_attainment(calls, sessions, sla, gaps, expected) if sla is not None else None,
        "goodput_calls_per_s": _goodput(calls, sla, duration),
        "utilization": utilization,
        "autoscaling": scaled,
        "cost": cost,
        "provenance": {
            "latency": "simulated (step times from the performance model)",
            "goodput": "completed calls whose TTFT and worst token gap are within the SLA",
            "cost": sorted({p.cost_provenance for p in pools}),
        },
    }


def _llm_calls(calls: pd.DataFrame, done: pd.DataFrame, unfinished: int, gaps: pd.DataFrame | None, duration: float) -> dict[str, Any]:
    """Counts of every call (completed, dropped, unfinished) and percentiles over the completed ones."""
    not_done = calls[calls.status != "completed"]
    count = len(calls) + unfinished
    return {
        "count": count,
        "completed": len(done),
        "dropped": len(not_done),
        "unfinished": unfinished,
        "dropped_by_status": not_done["status"].astype(str).value_counts().to_dict(),
        "dropped_reasons": not_done["reason"].value_counts().to_dict(),
        "percentiles_over": (
            f"completed calls ({len(done)} of {count}); the {len(not_done)} dropped and {unfinished} unfinished calls "
            "are counted, not ranked, and count as misses in SLA attainment"
        ),
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
    }


def _sessions(sessions: pd.DataFrame, expected: Expected) -> dict[str, Any]:
    """Sessions: how many, how many completed every step, and end-to-end percentiles over those."""
    whole = sessions[sessions["dropped_steps"] == 0] if len(sessions) else sessions
    count = max(len(sessions), expected.sessions or 0)
    return {
        "count": count,
        "completed": len(whole),
        "incomplete": count - len(whole),
        "e2e_s": _percentiles(whole["e2e_s"]) if len(whole) else {},
        "percentiles_over": f"sessions whose every step completed ({len(whole)} of {count})",
    }


def _adapters(replicas: pd.DataFrame | None, calls: pd.DataFrame) -> dict[str, Any] | None:
    """LoRA adapters (``hetsim.sim.lora``): per pool, the adapters its calls named, the loads
    into its GPU slots (those read from storage first), evictions, and how long calls waited
    for their adapter; None without LoRA pools (the key is then left out)."""
    if replicas is None or "adapter" not in calls:
        return None
    pools: dict[str, Any] = {}
    for pool, rows in replicas.groupby("pool", sort=True):
        named = calls[(calls["pool"] == pool) & calls["adapter"].notna()]
        used = named["adapter"].value_counts()
        pools[str(pool)] = {
            "adapters_used": len(used),
            "calls_by_adapter_top": {str(k): int(v) for k, v in used.head(10).items()},
            "loads": int(rows["loads"].sum()),
            "cpu_misses": int(rows["cpu_misses"].sum()),
            "evictions": int(rows["evictions"].sum()),
            "load_busy_s": float(rows["load_busy_s"].sum()),
            "calls_with_adapter": len(named),
            "calls_that_loaded": int(named["adapter_loaded"].sum()),
            "adapter_wait_s": _percentiles(named["adapter_wait_s"]),
        }
    return {"pools": pools, "definition": "adapter_wait_s: from a call's arrival at its replica until its adapter "
                                          "was in a GPU slot (its load, the loads before it, or a slot to free)"}  # fmt: skip


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


def _mean_devices(pool: PoolCost, scaled: dict[str, Any]) -> float:
    """The pool's devices, time-weighted where it autoscaled."""
    if pool.min_replicas is None or pool.pool not in scaled:
        return pool.devices
    return scaled[pool.pool]["mean_replicas_up"] * pool.devices_per_replica


def _utilization(replicas: pd.DataFrame, duration: float, up_s: dict[str, float] | None = None) -> dict[str, float]:
    """Mean busy share of each pool's replicas over the run; an autoscaled pool's (``up_s``: its
    replica-seconds up) over the time its replicas were up."""
    if not len(replicas):
        return {}
    up_s = up_s or {}
    return {pool: float(group["busy_s"].sum() / up_s[pool] if up_s.get(pool) else group["busy_s"].mean() / duration)
            for pool, group in replicas.groupby("pool", sort=False)}  # fmt: skip


def _cost(pools: list[PoolCost], utilization: dict[str, float], duration: float, tokens: float, sessions: int,
          plan: PlanCost | None = None, scaled: dict[str, Any] | None = None,
          rented: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Two named figures: ``fleet_usd_per_h``, the plan's cost (whole nodes occupied, as the
    planner prices them; without node SKUs, the pools' devices), which $ per token and session
    use; ``traffic_weighted_usd_per_h``, each pool's $/h times its simulated busy share (the
    capacity the traffic kept busy). An autoscaled pool adds the devices it ran above its
    minimum beyond those free on its paid nodes (``rented``: their mean over the run), per
    device-hour (``burst_usd_per_h``); its devices and energy are time-weighted."""
    hours = duration / 3600.0
    scaled, rented = scaled or {}, rented or {}
    devices = {p.pool: _mean_devices(p, scaled) for p in pools}
    burst = {p.pool: rented[p.pool] * p.burst_usd_per_h_per_device for p in pools if p.pool in rented}
    # an autoscaled pool: the devices it ran on paid nodes at their share, the rented ones at their price
    by_pool = {p.pool: (devices[p.pool] - rented.get(p.pool, 0.0)) * p.usd_per_h_per_device + burst.get(p.pool, 0.0)
               for p in pools}  # fmt: skip
    pools_usd_per_h = sum(by_pool.values())
    fleet_usd_per_h = plan.usd_per_h + sum(burst.values()) if plan is not None else pools_usd_per_h
    energy_kwh = sum(
        devices[p.pool] * (p.idle_w + min(utilization.get(p.pool, 0.0), 1.0) * (p.tdp_w - p.idle_w)) * hours / 1000.0
        for p in pools
    )
    total = fleet_usd_per_h * hours
    return {
        "fleet_usd_per_h": fleet_usd_per_h,
        "traffic_weighted_usd_per_h": sum(by_pool[p.pool] * min(utilization.get(p.pool, 0.0), 1.0) for p in pools),
        "pools_usd_per_h": pools_usd_per_h,
        "burst_usd_per_h": burst or None,
        "nodes": dict(plan.nodes) if plan is not None else {},
        "planner_usd_per_h": plan.planner_usd_per_h if plan is not None else None,
        "tco": plan.tco if plan is not None else None,
        "by_pool_usd_per_h": by_pool,
        "devices": devices,
        "total_usd": total,
        "usd_per_million_tokens": total / tokens * 1e6 if tokens else math.nan,
        "usd_per_session": total / sessions if sessions else math.nan,
        "energy_kwh": energy_kwh,
    }
