"""A run's records in the field's formats: vLLM's Prometheus metrics and a per-request table.

``exposition`` writes the Prometheus text format (version 0.0.4) with vLLM's own metric names,
types, labels (``model_name``, ``engine``: here the pool) and histogram buckets (vLLM 0.32.0,
``vllm/v1/metrics/buckets.py`` and ``loggers.py``), so a dashboard or a PromQL query built on a
real engine's ``/metrics`` reads a simulated run unchanged (scrape the file with node-exporter's
textfile collector, or load it with ``prometheus_client.parser``). ``METRIC_MAP`` is the
documented correspondence. Pure: frames in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

# vLLM 0.32.0 vllm/v1/metrics/buckets.py
TIME_TO_FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                               10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
INTER_TOKEN_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                               20.0, 40.0, 80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
REQUEST_NUM_PREEMPTIONS_BUCKETS = (1, 2, 3, 4, 5, 10, 20)

# vLLM metric -> (type, hetsim quantity it carries here). Counters are exposed with "_total".
METRIC_MAP: dict[str, tuple[str, str]] = {
    "vllm:time_to_first_token_seconds": ("histogram", "llm_calls.ttft_s: first token - arrival, completed calls"),
    "vllm:e2e_request_latency_seconds": ("histogram", "llm_calls.e2e_s: last token - arrival, completed calls"),
    "vllm:request_queue_time_seconds": ("histogram", "llm_calls.queue_s: admitted to a batch - arrival"),
    "vllm:request_prefill_time_seconds": ("histogram", "first token - admitted"),
    "vllm:request_decode_time_seconds": ("histogram", "last token - first token"),
    "vllm:request_inference_time_seconds": ("histogram", "last token - admitted"),
    "vllm:inter_token_latency_seconds": ("histogram", "token_gaps.gap_s: every gap between consecutive tokens"),
    "vllm:request_time_per_output_token_seconds": ("histogram", "llm_calls.tbt_mean_s: a call's mean gap"),
    "vllm:request_prompt_tokens": ("histogram", "llm_calls.input_tokens"),
    "vllm:request_generation_tokens": ("histogram", "llm_calls.output_tokens"),
    "vllm:request_num_preemptions": ("histogram", "llm_calls.preemptions"),
    "vllm:prompt_tokens": ("counter", "sum of input_tokens, completed calls"),
    "vllm:generation_tokens": ("counter", "sum of output_tokens, completed calls"),
    "vllm:prompt_tokens_cached": ("counter", "sum of cached_tokens (prefix-cache hits), completed calls"),
    "vllm:request_success": ("counter", "completed calls (finished_reason 'length': a trace fixes output lengths)"),
    "vllm:num_preemptions": ("counter", "sum of preemptions"),
}

_HELP = {
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "vllm:request_queue_time_seconds": "Histogram of time spent in WAITING phase for request.",
    "vllm:request_prefill_time_seconds": "Histogram of time spent in PREFILL phase for request.",
    "vllm:request_decode_time_seconds": "Histogram of time spent in DECODE phase for request.",
    "vllm:request_inference_time_seconds": "Histogram of time spent in RUNNING phase for request.",
    "vllm:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "vllm:request_time_per_output_token_seconds": "Histogram of time_per_output_token_seconds per request.",
    "vllm:request_prompt_tokens": "Number of prefill tokens processed.",
    "vllm:request_generation_tokens": "Number of generation tokens processed.",
    "vllm:request_num_preemptions": "Number of preemptions per request.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "vllm:prompt_tokens_cached": "Number of cached prompt tokens (local prefix cache hits).",
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:num_preemptions": "Cumulative number of preemption from the engine.",
}

REQUEST_COLUMNS = (
    "request_id", "session_id", "step_id", "model", "pool", "replica", "decode_pool", "decode_replica", "status",
    "reason", "arrival_s", "admitted_s", "first_token_s", "done_s", "ttft_s", "e2e_s", "queue_s", "tbt_mean_s",
    "tbt_max_s", "input_tokens", "cached_tokens", "output_tokens", "preemptions", "kv_transfer_s", "kv_wait_s",
)  # fmt: skip


def requests_table(calls: pd.DataFrame) -> pd.DataFrame:
    """One row per LLM call (request), every status, in arrival order; ``request_id`` is
    ``<session>/<step>``. Timestamps in seconds from the run's start."""
    table = calls.copy()
    for name, (start, end) in {"ttft_s": ("arrival_s", "first_token_s"), "e2e_s": ("arrival_s", "done_s"),
                               "queue_s": ("arrival_s", "admitted_s")}.items():  # fmt: skip
        if name not in table:
            table[name] = table[end] - table[start]
    if "tbt_mean_s" not in table:
        decode = (table["output_tokens"] - 1).clip(lower=1)
        table["tbt_mean_s"] = ((table["done_s"] - table["first_token_s"]) / decode).where(table["output_tokens"] > 1)
    table["request_id"] = table["session_id"].astype(str) + "/" + table["step_id"].astype(str)
    return table.reindex(columns=list(REQUEST_COLUMNS))


def _cumulative_counts(values: np.ndarray, bounds: Sequence[float], weights: np.ndarray | None = None) -> list[float]:
    """Cumulative counts at each upper bound, then +Inf (Prometheus ``le`` semantics: a value
    equal to a bound counts in it). Each value falls in the first bucket whose bound holds it
    (binned, not sorted: a run's token gaps are millions of values)."""
    bucket = np.searchsorted(np.asarray(bounds, dtype=float), values, side="left")
    counts = np.bincount(bucket, weights=weights, minlength=len(bounds) + 1).cumsum()
    return [float(count) for count in counts]


def _labels(labels: dict[str, str], extra: dict[str, str] | None = None) -> str:
    merged = {**labels, **(extra or {})}
    escaped = {k: str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for k, v in merged.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(escaped.items())) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else f"{float(value):.1f}"


def _histogram(name: str, series: Iterable[tuple[dict[str, str], np.ndarray, np.ndarray | None]],
               bounds: Sequence[float]) -> list[str]:  # fmt: skip
    lines = [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} histogram"]
    for labels, values, weights in series:
        counts = _cumulative_counts(values, bounds, weights)
        for bound, count in zip([*bounds, math.inf], counts, strict=True):
            lines.append(f"{name}_bucket{_labels(labels, {'le': _number(bound)})} {_number(count)}")
        total = float(np.sum(values * (weights if weights is not None else 1.0)))
        lines.append(f"{name}_sum{_labels(labels)} {_number(total)}")
        lines.append(f"{name}_count{_labels(labels)} {_number(counts[-1])}")
    return lines


def _counter(name: str, series: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name}_total {_HELP[name]}", f"# TYPE {name}_total counter"]
    lines += [f"{name}_total{_labels(labels)} {_number(value)}" for labels, value in series]
    return lines


def _token_buckets(values: np.ndarray) -> tuple[int, ...]:
    """vLLM's 1-2-5 series of token-count buckets, up to the longest request seen."""
    top = max(float(values.max()) if len(values) else 1.0, 1.0)
    bounds, scale = [], 1
    while True:
        for step in (1, 2, 5):
            if step * scale > top:
                return tuple(bounds) if bounds else (1,)
            bounds.append(step * scale)
        scale *= 10


def exposition(calls: pd.DataFrame, gaps: pd.DataFrame | None = None) -> str:
    """The run as a Prometheus text page with vLLM's metric names, per (model, pool)."""
    table = requests_table(calls)
    done = table[table["status"] == "completed"]
    groups = list(done.groupby(["model", "pool"], sort=True)) if len(done) else []

    def series(column: str):
        for (model, pool), frame in groups:
            values = frame[column].to_numpy(dtype=float)
            yield {"model_name": str(model), "engine": str(pool)}, values[~np.isnan(values)], None

    lines: list[str] = []
    lines += _histogram("vllm:time_to_first_token_seconds", series("ttft_s"), TIME_TO_FIRST_TOKEN_BUCKETS)
    lines += _histogram("vllm:e2e_request_latency_seconds", series("e2e_s"), REQUEST_LATENCY_BUCKETS)
    lines += _histogram("vllm:request_queue_time_seconds", series("queue_s"), REQUEST_LATENCY_BUCKETS)
    for name, start, end in (("vllm:request_prefill_time_seconds", "admitted_s", "first_token_s"),
                             ("vllm:request_decode_time_seconds", "first_token_s", "done_s"),
                             ("vllm:request_inference_time_seconds", "admitted_s", "done_s")):  # fmt: skip
        lines += _histogram(name, (({"model_name": str(m), "engine": str(p)},
                                    (f[end] - f[start]).to_numpy(dtype=float), None) for (m, p), f in groups),
                            REQUEST_LATENCY_BUCKETS)  # fmt: skip
    lines += _histogram("vllm:request_time_per_output_token_seconds", series("tbt_mean_s"), INTER_TOKEN_LATENCY_BUCKETS)
    if gaps is not None and len(gaps):
        pool_models = done.groupby("pool")["model"].first().to_dict() if len(done) else {}
        gap_series = []
        for pool, frame in gaps.groupby("pool", sort=True):
            weights = frame["count"].to_numpy(dtype=float) if "count" in frame else None
            gap_series.append(({"model_name": str(pool_models.get(pool, "")), "engine": str(pool)},
                               frame["gap_s"].to_numpy(dtype=float), weights))  # fmt: skip
        lines += _histogram("vllm:inter_token_latency_seconds", gap_series, INTER_TOKEN_LATENCY_BUCKETS)
    for name, column in (("vllm:request_prompt_tokens", "input_tokens"), ("vllm:request_generation_tokens", "output_tokens")):
        values = done[column].to_numpy(dtype=float) if len(done) else np.zeros(0)
        lines += _histogram(name, series(column), _token_buckets(values))
    lines += _histogram("vllm:request_num_preemptions", series("preemptions"), REQUEST_NUM_PREEMPTIONS_BUCKETS)
    for name, column in (("vllm:prompt_tokens", "input_tokens"), ("vllm:generation_tokens", "output_tokens"),
                         ("vllm:prompt_tokens_cached", "cached_tokens"), ("vllm:num_preemptions", "preemptions")):  # fmt: skip
        lines += _counter(name, (({"model_name": str(m), "engine": str(p)}, float(f[column].sum())) for (m, p), f in groups))
    lines += _counter("vllm:request_success", (({"model_name": str(m), "engine": str(p), "finished_reason": "length"},
                                                float(len(f))) for (m, p), f in groups))  # fmt: skip
    return "\n".join(lines) + "\n"
