"""Per-node demand of a workload, measured on a synthetic sample of its sessions.

Measuring beats deriving by hand: loops, branch probabilities and fan-out copies are all in
the sample. For each workload node: visits per session, mean tokens/units/durations, and the
visits that lie on the critical path (parallel copies of one fan-out count once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import pairwise

import pandas as pd


@dataclass(frozen=True)
class NodeDemand:
    """What one workload node asks of the fleet, per session."""

    node: str
    node_type: str
    model: str | None
    visits_per_session: float
    critical_visits_per_session: float
    input_tokens: float
    output_tokens: float
    cached_prefix_tokens: float
    units: float
    duration_s: float
    # The prompt-length distribution's upper tail: (percentile, tokens) at INPUT_PERCENTILES; a
    # TTFT percentile is set by long prompts as much as by queueing (empty: only the mean known).
    input_tokens_tail: tuple[tuple[float, float], ...] = ()
    # The LoRA adapters its calls name: (adapter, share of the node's calls naming it), the most
    # called first (empty: every call is the base model's; the shares sum to the LoRA calls' share).
    adapters: tuple[tuple[str, float], ...] = ()
    # Its calls' own acceptance rates of speculative drafts: (rate, share of the node's output
    # tokens decoded at it), by rate (empty: none names one; the rest decode at the pool's rate).
    acceptance_rates: tuple[tuple[float, float], ...] = ()

    def input_tokens_at(self, percentile: float) -> float:
        """Prompt tokens at ``percentile``: interpolated between the tail's points, from the mean
        standing at the median (below it, and where no tail is known, the mean)."""
        points = [(50.0, self.input_tokens), *self.input_tokens_tail] if self.input_tokens_tail else []
        if not points or percentile <= points[0][0]:
            return self.input_tokens
        for (low, low_value), (high, high_value) in pairwise(points):
            if percentile <= high:
                return low_value + (high_value - low_value) * (percentile - low) / (high - low)
        return points[-1][1]


INPUT_PERCENTILES = (90.0, 95.0, 99.0, 99.9)

def node_demand(trace: pd.DataFrame) -> list[NodeDemand]:
    """Per-node means over the sample (``trace`` in the canonical step schema)."""
    sessions = trace["session_id"].nunique()
    frame = trace.assign(parent_set=trace["parents"].map(tuple), node_type=trace["node_type"].astype(str))
    result = []
    for node, group in frame.groupby("node", sort=True):
        # Steps of one node sharing a parent set are parallel copies: one of them is on the critical path.
        waves = group.groupby(["session_id", "parent_set"], sort=False).ngroups
        result.append(
            NodeDemand(
                node=str(node),
                node_type=str(group["node_type"].iloc[0]),
                model=group["model"].dropna().iloc[0] if group["model"].notna().any() else None,
                visits_per_session=len(group) / sessions,
                critical_visits_per_session=waves / sessions,
                input_tokens=float(group["input_tokens"].mean()),
                output_tokens=float(group["output_tokens"].mean()),
                cached_prefix_tokens=float(group["cached_prefix_tokens"].fillna(0).mean()),
                units=float(group["units"].mean()) if group["units"].notna().any() else float("nan"),
                duration_s=float(group["duration_s"].mean()) if group["duration_s"].notna().any() else float("nan"),
                input_tokens_tail=_tail(group["input_tokens"]),
                adapters=_adapter_shares(group),
                acceptance_rates=_acceptance_shares(group),
            )
        )
    return result


def with_adapter_popularity(demands: list[NodeDemand], nodes: Mapping[str, object]) -> list[NodeDemand]:
    """``demands`` with each LLM node's adapter shares from its workload's ``adapters`` spread
    (``hetsim.specs.workload.AdapterSpread``; ``nodes``: the workload's nodes by name) instead
    of the sample's: a sample of a few thousand calls never sees the tail of a long popularity
    law, the adapters that miss a replica's slots most."""
    result = []
    for demand in demands:
        spread = getattr(nodes.get(demand.node), "adapters", None)
        if spread is not None:
            ranked = sorted(zip(spread.names(), spread.weights(), strict=True), key=lambda item: (-item[1], item[0]))
            demand = replace(demand, adapters=tuple(ranked))
        result.append(demand)
    return result


def _adapter_shares(group: pd.DataFrame) -> tuple[tuple[str, float], ...]:
    """Each adapter's share of the node's calls, the most called first (ties by name)."""
    if "adapter" not in group.columns:
        return ()
    counts = group["adapter"].dropna().astype(str).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple((name, count / len(group)) for name, count in ranked)


def _acceptance_shares(group: pd.DataFrame) -> tuple[tuple[float, float], ...]:
    """Each acceptance rate the node's calls name, with its share of their output tokens."""
    if "acceptance_rate" not in group.columns or not group["acceptance_rate"].notna().any():
        return ()
    total = float(group["output_tokens"].sum())
    named = group[group["acceptance_rate"].notna()]
    if total <= 0:
        return ()
    tokens = named.groupby(named["acceptance_rate"].astype(float).round(ACCEPTANCE_DECIMALS))["output_tokens"].sum()
    return tuple((float(rate), float(count) / total) for rate, count in tokens.sort_index().items())


ACCEPTANCE_DECIMALS = 3
"""Calls' acceptance rates are grouped to this many decimals for planning (a trace may name a
measured rate per call)."""


def _tail(tokens: pd.Series) -> tuple[tuple[float, float], ...]:
    """The prompt lengths at INPUT_PERCENTILES, never below the mean (the tail starts there)."""
    values = tokens.dropna().astype(float)
    if values.empty:
        return ()
    mean = float(values.mean())
    return tuple((p, max(mean, float(values.quantile(p / 100.0)))) for p in INPUT_PERCENTILES)
