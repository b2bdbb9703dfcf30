"""Flat result records of a simulation; every metric, plot and cost derives from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

LLM_CALL_COLUMNS = (
    "session_id",
    "step_id",
    "model",
    "pool",
    "replica",
    "decode_pool",
    "decode_replica",
    "arrival_s",
    "admitted_s",
    "first_token_s",
    "done_s",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "preemptions",
    "kv_transfer_s",
    "tbt_max_s",
    "status",
    "reason",
)
STEP_COLUMNS = (
    "session_id",
    "step_id",
    "node",
    "node_type",
    "pool",
    "replica",
    "ready_s",
    "start_s",
    "end_s",
    "status",
    "reason",
)
REPLICA_COLUMNS = (
    "pool",
    "replica",
    "device",
    "devices",
    "busy_s",
    "steps",
    "events",
    "mean_batch_size",
    "kv_blocks_total",
    "kv_peak_blocks",
)


@dataclass
class Recorder:
    """Appends rows during a run; ``frames`` turns them into DataFrames once, at the end."""

    llm_calls: list[tuple] = field(default_factory=list)
    steps: list[tuple] = field(default_factory=list)
    replicas: list[tuple] = field(default_factory=list)
    kv_samples: list[tuple] = field(default_factory=list)

    def frames(self) -> dict[str, pd.DataFrame]:
        calls = pd.DataFrame(self.llm_calls, columns=list(LLM_CALL_COLUMNS))
        calls["ttft_s"] = calls["first_token_s"] - calls["arrival_s"]
        calls["e2e_s"] = calls["done_s"] - calls["arrival_s"]
        calls["queue_s"] = calls["admitted_s"] - calls["arrival_s"]
        decode_tokens = (calls["output_tokens"] - 1).clip(lower=1)
        calls["tbt_mean_s"] = (calls["done_s"] - calls["first_token_s"]) / decode_tokens
        calls.loc[calls["output_tokens"] <= 1, "tbt_mean_s"] = float("nan")
        return {
            "llm_calls": calls.sort_values(["arrival_s", "session_id", "step_id"], kind="stable").reset_index(
                drop=True
            ),
            "steps": pd.DataFrame(self.steps, columns=list(STEP_COLUMNS)),
            "replicas": pd.DataFrame(self.replicas, columns=list(REPLICA_COLUMNS)),
            "kv": pd.DataFrame(self.kv_samples, columns=["pool", "replica", "time_s", "used_blocks"]),
        }
