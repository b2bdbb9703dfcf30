"""Per-call latencies derived from a call record's timestamps, the same for simulated and
executed runs."""

from __future__ import annotations

import pandas as pd


def with_call_latencies(calls: pd.DataFrame) -> pd.DataFrame:
    """``calls`` with ``ttft_s``, ``e2e_s``, ``queue_s`` and ``tbt_mean_s`` added (in place).

    TBT mean is the decode time over the gaps between output tokens (NaN for a one-token call)."""
    calls["ttft_s"] = calls["first_token_s"] - calls["arrival_s"]
    calls["e2e_s"] = calls["done_s"] - calls["arrival_s"]
    calls["queue_s"] = calls["admitted_s"] - calls["arrival_s"]
    decode_tokens = (calls["output_tokens"] - 1).clip(lower=1)
    calls["tbt_mean_s"] = (calls["done_s"] - calls["first_token_s"]) / decode_tokens
    calls.loc[calls["output_tokens"] <= 1, "tbt_mean_s"] = float("nan")
    return calls
