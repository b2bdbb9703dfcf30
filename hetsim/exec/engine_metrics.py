"""Engines' own Prometheus metrics: sampled during a run (running and waiting requests, KV
usage, steps) and scraped whole at the end. Parsed with ``prometheus_client``'s parser."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

SAMPLE_COLUMNS = ("pool", "replica", "time_s", "running", "waiting", "kv_usage", "steps", "preemptions")
METRIC_COLUMNS = ("pool", "replica", "name", "labels", "value")

_GAUGES = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:iteration_tokens_total_count": "steps",
    "vllm:num_preemptions_total": "preemptions",
}


def parse_metrics(text: str) -> list[tuple[str, str, float]]:
    """(sample name, labels as sorted JSON, value) of every sample in a Prometheus text page."""
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            rows.append((sample.name, json.dumps(dict(sorted(sample.labels.items()))), float(sample.value)))
    return rows


def _pick(rows: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, _, value in rows:
        column = _GAUGES.get(name)
        if column is not None:
            values[column] = values.get(column, 0.0) + value  # summed over label sets (engines, reasons)
    return values


def kv_blocks_total(rows: Iterable[tuple[str, str, float]]) -> int:
    """KV blocks the engine allocated (``cache_config_info``'s ``num_gpu_blocks``; 0 unknown)."""
    for name, labels, _ in rows:
        if name == "vllm:cache_config_info":
            value = json.loads(labels).get("num_gpu_blocks")
            if value not in (None, "None"):
                return int(value)
    return 0


@dataclass
class MetricsLog:
    """Samples of every replica over a run, and each replica's last full page."""

    samples: list[tuple] = field(default_factory=list)
    last_pages: dict[tuple[str, int], list[tuple[str, str, float]]] = field(default_factory=dict)

    async def scrape(self, client: httpx.AsyncClient, pool: str, replica: int, url: str, time_s: float) -> bool:
        """Sample one replica; False when it did not answer (nothing is recorded then)."""
        try:
            response = await client.get(f"{url}/metrics", timeout=5.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        rows = parse_metrics(response.text)
        values = _pick(rows)
        self.samples.append(
            (pool, replica, time_s, *(values.get(c, math.nan) for c in SAMPLE_COLUMNS[3:]))
        )
        self.last_pages[pool, replica] = rows
        return True

    def sample_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.samples, columns=list(SAMPLE_COLUMNS))

    def metric_frame(self) -> pd.DataFrame:
        rows = [(pool, replica, *row) for (pool, replica), page in sorted(self.last_pages.items()) for row in page]
        return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))

    def replica_rows(self, pool: str, replica: int, device: str, devices: int) -> tuple:
        """The simulator's replica record, from this replica's samples: busy time (any request
        running), steps (engine iterations, summed across restarts), time-weighted running batch
        while busy, KV blocks allocated and the peak in use."""
        frame = self.sample_frame()
        mine = frame[(frame.pool == pool) & (frame.replica == replica)].sort_values("time_s")
        total_blocks = kv_blocks_total(self.last_pages.get((pool, replica), []))
        if len(mine) < 2:
            return (pool, replica, device, devices, 0.0, 0, 0, math.nan, total_blocks, 0)
        times = mine["time_s"].to_numpy()
        running = mine["running"].fillna(0.0).to_numpy()[:-1]
        widths = np.diff(times)
        busy = float(widths[running > 0].sum())
        mean_batch = float((running * widths).sum() / busy) if busy > 0 else 0.0
        steps = mine["steps"].ffill().fillna(0.0).to_numpy()
        changes = np.diff(steps)
        step_count = int(np.where(changes < 0, steps[1:], changes).sum())  # a restarted engine counts from zero again
        usage = mine["kv_usage"].dropna()
        peak = round(float(usage.max()) * total_blocks) if len(usage) else 0
        return (pool, replica, device, devices, busy, step_count, len(mine), mean_batch, total_blocks, peak)

    def kv_frame(self, blocks: dict[tuple[str, int], int]) -> pd.DataFrame:
        frame = self.sample_frame()
        if frame.empty:
            return pd.DataFrame([], columns=["pool", "replica", "time_s", "used_blocks"])
        total = np.array([blocks.get((p, r), 0) for p, r in zip(frame.pool, frame.replica, strict=True)])
        used = np.rint(frame["kv_usage"].fillna(0.0).to_numpy() * total).astype(np.int64)
        return pd.DataFrame({"pool": frame.pool, "replica": frame.replica, "time_s": frame.time_s, "used_blocks": used})
