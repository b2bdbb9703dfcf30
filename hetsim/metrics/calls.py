"""Per-call latencies derived from a call record's timestamps, the same for simulated and
executed runs."""

from __future__ import annotations

import pandas as pd


def with_call_latencies(calls: pd.DataFrame) -> pd.DataFrame:
    """``calls`` with ``ttft_s``, ``e2e_s``, ``queue_s`` and ``tbt_mean_s`` added (in place).

    TBT mean is the decode time over the gaps between output tokens. A one-token call has no gap
    between tokens, so both of its per-call gap figures, ``tbt_mean_s`` and ``tbt_max_s`` (the
    worst gap), are NaN: the two are then taken over the same calls, and since a call's worst gap
    is never below its mean gap, no percentile of the worst gaps can fall below the same
    percentile of the mean gaps."""
    calls["ttft_s"] = calls["first_token_s"] - calls["arrival_s"]
    calls["e2e_s"] = calls["done_s"] - calls["arrival_s"]
    calls["queue_s"] = calls["admitted_s"] - calls["arrival_s"]
    decode_tokens = (calls["output_tokens"] - 1).clip(lower=1)
    calls["tbt_mean_s"] = (calls["done_s"] - calls["first_token_s"]) / decode_tokens
    no_gap = calls["output_tokens"] <= 1
    calls.loc[no_gap, "tbt_mean_s"] = float("nan")
    if "tbt_max_s" in calls:
        calls["tbt_max_s"] = calls["tbt_max_s"].astype(float)
        calls.loc[no_gap, "tbt_max_s"] = float("nan")
    return calls
