"""Records of an executed run, in the simulator's schema (``hetsim.sim.records``) so that
``hetsim.metrics`` summarises both alike, plus what only a real run has: every token's arrival,
retries, the engines' own counts and metrics.

Extra columns of ``llm_calls``: ``retries`` (attempts that failed before the one recorded),
``input_tokens_served`` and ``output_tokens_received`` (what the engine counted and sent),
``tokens_sent_s`` (when the recorded attempt was sent). Tables ``tokens`` (one row per output
token: session, step, index, arrival) and ``engine_samples`` / ``engine_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hetsim.metrics.calls import with_call_latencies

LLM_CALL_COLUMNS = (
    "session_id", "step_id", "model", "pool", "replica", "decode_pool", "decode_replica", "arrival_s", "admitted_s",
    "first_token_s", "done_s", "input_tokens", "cached_tokens", "output_tokens", "preemptions", "kv_transfer_s",
    "tbt_max_s", "status", "reason", "retries", "input_tokens_served", "output_tokens_received",
)  # fmt: skip
STEP_COLUMNS = ("session_id", "step_id", "node", "node_type", "pool", "replica", "ready_s", "start_s", "end_s", "status", "reason")
TOKEN_COLUMNS = ("session_id", "step_id", "index", "time_s")


@dataclass
class ExecRecorder:
    """Rows appended as the run goes (a run is thousands of calls, not millions: plain lists)."""

    calls: list[tuple] = field(default_factory=list)
    steps: list[tuple] = field(default_factory=list)
    token_session: list[str] = field(default_factory=list)
    token_step: list[int] = field(default_factory=list)
    token_index: list[int] = field(default_factory=list)
    token_time: list[float] = field(default_factory=list)

    def step(self, session: str, step_id: int, node: str, node_type: str, pool: str, replica: int,
             ready_s: float, start_s: float, end_s: float, status: str, reason: str = "") -> None:  # fmt: skip
        self.steps.append((session, step_id, node, node_type, pool, replica, ready_s, start_s, end_s, status, reason))

    def call(self, row: tuple) -> None:
        assert len(row) == len(LLM_CALL_COLUMNS)
        self.calls.append(row)

    def tokens(self, session: str, step_id: int, times_s: list[float]) -> None:
        count = len(times_s)
        self.token_session.extend([session] * count)
        self.token_step.extend([step_id] * count)
        self.token_index.extend(range(count))
        self.token_time.extend(times_s)

    def frames(self) -> dict[str, pd.DataFrame]:
        calls = pd.DataFrame(self.calls, columns=list(LLM_CALL_COLUMNS))
        for column in ("step_id", "replica", "decode_replica", "input_tokens", "cached_tokens", "output_tokens",
                       "preemptions", "retries", "input_tokens_served", "output_tokens_received"):  # fmt: skip
            calls[column] = calls[column].astype(np.int64)
        for column in ("arrival_s", "admitted_s", "first_token_s", "done_s", "kv_transfer_s", "tbt_max_s"):
            calls[column] = calls[column].astype(float)
        calls = with_call_latencies(calls).sort_values(["arrival_s", "session_id", "step_id"], kind="stable")
        steps = pd.DataFrame(self.steps, columns=list(STEP_COLUMNS))
        steps["step_id"] = steps["step_id"].astype(np.int64)
        steps["replica"] = steps["replica"].astype(np.int64)
        tokens = pd.DataFrame(
            {
                "session_id": pd.Series(self.token_session, dtype=object),
                "step_id": np.asarray(self.token_step, dtype=np.int64),
                "index": np.asarray(self.token_index, dtype=np.int64),
                "time_s": np.asarray(self.token_time, dtype=float),
            }
        )
        return {"llm_calls": calls.reset_index(drop=True), "steps": steps, "tokens": tokens}


def max_gap_s(times_s: list[float]) -> float:
    """The longest wait between consecutive tokens (0 for fewer than two)."""
    if len(times_s) < 2:
        return 0.0
    return float(np.diff(np.asarray(times_s)).max())
