"""Flat result records of a simulation; every metric, plot and cost derives from them.

During a run the engine appends each row column by column into typed columns (8 bytes a value,
no per-row objects: a million-call run keeps its records in tens of MB); strings that repeat
(pool, status, reason) are stored once, as a code. ``Recorder.frames`` turns them into the
DataFrames below once, at the end.
"""

from __future__ import annotations

import struct
from array import array
from typing import Any, Final

import numpy as np
import pandas as pd

from hetsim.metrics.calls import with_call_latencies

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
    "kv_wait_s",
    "tbt_max_s",
    "stall_max_s",
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
KV_COLUMNS = ("pool", "replica", "time_s", "used_blocks")
# An autoscaled pool's replicas: each change of state (off, starting, serving, draining) and
# every replica's state at the start (``hetsim.sim.autoscale``).
SCALING_COLUMNS = ("time_s", "pool", "replica", "state")
# Every token gap (time between two consecutive output tokens of a call), as rows of ``count``
# gaps of ``gap_s`` each on one replica (``hetsim.sim.token_gaps``).
TOKEN_GAP_COLUMNS = ("pool", "replica", "gap_s", "count")
# The KV link of each prefill replica (``hetsim.sim.kv_link``): transfers, bytes, seconds busy
# sending, seconds transfers waited for it in all.
KV_LINK_COLUMNS = ("pool", "replica", "transfers", "bytes", "busy_s", "wait_s")
# The LoRA adapters of each replica of a pool that serves them (``hetsim.sim.lora``): loads
# into its GPU slots, those read from storage first (missing from host memory), evictions
# from a slot, seconds its copy stream was busy. Only runs with LoRA pools have this frame.
ADAPTER_COLUMNS = ("pool", "replica", "loads", "cpu_misses", "evictions", "load_busy_s")

# What the engine records per row, as (integer fields, float fields); the rest of a row comes
# from the trace, by step position n.
STEP_FIELDS = (("n", "code", "replica"), ("start_s", "end_s"))
LLM_FIELDS = (
    ("n", "code", "replica", "decode_replica", "cached_tokens", "preemptions"),
    ("admitted_s", "first_token_s", "done_s", "kv_transfer_s", "kv_wait_s", "tbt_max_s", "stall_max_s"),
)


_BLOCK: Final = 4096  # values a column converts at once
_DTYPES: Final = {"d": np.dtype(np.float64), "q": np.dtype(np.int64)}


class Column:
    """A growing column of 64-bit floats (``"d"``) or ints (``"q"``), kept as a typed array.

    Values wait in a short list and join the array a block at a time: ``array.append`` parses
    every value like a function argument (about 20 ns), ``struct.pack`` converts a block of them
    at about 6 ns a value (numpy's conversion of a list: 21 ns)."""

    __slots__ = ("_dtype", "_typecode", "pending", "values")

    def __init__(self, typecode: str) -> None:
        if typecode not in _DTYPES:
            raise ValueError(f"record column: expected typecode 'd' or 'q', got {typecode!r}")
        self.values = array(typecode)
        self._typecode = typecode
        self.pending: list = []
        self._dtype = _DTYPES[typecode]

    def __len__(self) -> int:
        return len(self.values) + len(self.pending)

    def append(self, value: int | float) -> None:
        pending = self.pending
        pending.append(value)
        if len(pending) >= _BLOCK:
            self.flush()

    def extend(self, values: tuple) -> None:
        pending = self.pending
        pending.extend(values)
        if len(pending) >= _BLOCK:
            self.flush()

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.values.frombytes(struct.pack(f"{len(pending)}{self._typecode}", *pending))
            pending.clear()

    def numpy(self) -> np.ndarray:
        """The values so far (a copy)."""
        self.flush()
        return np.frombuffer(self.values, dtype=self._dtype).copy()


class Rows:
    """Rows of fixed integer and float fields, each kind in one flat typed column."""

    def __init__(self, fields: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        self.int_fields, self.float_fields = fields
        self.ints, self.floats = Column("q"), Column("d")

    def __len__(self) -> int:
        return len(self.ints) // len(self.int_fields)

    def columns(self) -> dict[str, np.ndarray]:
        ints = self.ints.numpy().reshape(-1, len(self.int_fields))
        floats = self.floats.numpy().reshape(-1, len(self.float_fields))
        columns: dict[str, np.ndarray] = {name: ints[:, i] for i, name in enumerate(self.int_fields)}
        columns.update({name: floats[:, i] for i, name in enumerate(self.float_fields)})
        return columns


class Codes:
    """Small integer codes for repeated tuples of strings."""

    def __init__(self) -> None:
        self.values: list[tuple[str, ...]] = []
        self.index: dict[tuple[str, ...], int] = {}  # value -> code (read it first: no call)

    def code(self, value: tuple[str, ...]) -> int:
        index = self.index.get(value)
        if index is None:
            index = self.index[value] = len(self.values)
            self.values.append(value)
        return index

    def column(self, codes: np.ndarray, part: int) -> np.ndarray:
        return np.array([value[part] for value in self.values] or [""], dtype=object)[codes]


class Recorder:
    """Appends rows during a run; ``frames`` turns them into DataFrames once, at the end.

    ``steps`` codes (pool, status, reason); ``llm_calls`` codes (pool, decode pool, status,
    reason). ``replicas`` and ``kv`` rows are filled at the end from the servers' counters.
    """

    def __init__(self) -> None:
        self.steps, self.llm_calls = Rows(STEP_FIELDS), Rows(LLM_FIELDS)
        self.step_codes, self.llm_codes = Codes(), Codes()
        self.replicas: list[tuple] = []
        self.kv_parts: list[tuple[str, int, Column, Column]] = []
        self.gap_parts: list[tuple[str, int, np.ndarray, np.ndarray]] = []  # pool, replica, gap_s, count
        self.links: list[tuple] = []  # KV_LINK_COLUMNS rows

    def frames(self, trace: pd.DataFrame, ready_s: np.ndarray) -> dict[str, pd.DataFrame]:
        """The record DataFrames; ``trace`` supplies the per-step columns (session, step id,
        node, model, tokens) and ``ready_s`` when each step became ready."""
        steps = _step_frame(self, trace, ready_s)
        calls = _llm_frame(self, trace, ready_s)
        calls = with_call_latencies(calls)
        return {
            "llm_calls": calls.sort_values(["arrival_s", "session_id", "step_id"], kind="stable").reset_index(
                drop=True
            ),
            "steps": steps,
            "replicas": pd.DataFrame(self.replicas, columns=list(REPLICA_COLUMNS)),
            "kv": _kv_frame(self.kv_parts),
            "token_gaps": _gap_frame(self.gap_parts),
            "kv_links": pd.DataFrame(self.links, columns=list(KV_LINK_COLUMNS)),
        }


_INFERRED_STRING = pd.Series(["a"]).dtype  # what a column of Python strings becomes


def _take(column: pd.Series, rows: np.ndarray) -> Any:
    """``column[rows]`` as a new column of the dtype the values would be inferred as; a
    string column is indexed as it is, without making a Python string per row."""
    if column.dtype == _INFERRED_STRING or column.dtype.kind in "iuf":
        return column.take(rows).reset_index(drop=True)
    return column.to_numpy()[rows]


def _step_frame(recorder: Recorder, trace: pd.DataFrame, ready_s: np.ndarray) -> pd.DataFrame:
    if not len(recorder.steps):
        return pd.DataFrame([], columns=list(STEP_COLUMNS))
    rows = recorder.steps.columns()
    n, codes = rows["n"], rows["code"]
    columns: dict[str, Any] = {
        "session_id": _take(trace["session_id"], n),
        "step_id": trace["step_id"].to_numpy()[n].astype(np.int64),
        "node": _take(trace["node"], n),
        "node_type": _take(trace["node_type"].astype(str), n),
        "pool": recorder.step_codes.column(codes, 0),
        "replica": rows["replica"],
        "ready_s": ready_s[n],
        "start_s": rows["start_s"],
        "end_s": rows["end_s"],
        "status": recorder.step_codes.column(codes, 1),
        "reason": recorder.step_codes.column(codes, 2),
    }
    return pd.DataFrame(columns)


def _llm_frame(recorder: Recorder, trace: pd.DataFrame, ready_s: np.ndarray) -> pd.DataFrame:
    if not len(recorder.llm_calls):
        return pd.DataFrame([], columns=list(LLM_CALL_COLUMNS))
    rows = recorder.llm_calls.columns()
    n, codes = rows["n"], rows["code"]
    columns: dict[str, Any] = {
        "session_id": _take(trace["session_id"], n),
        "step_id": trace["step_id"].to_numpy()[n].astype(np.int64),
        "model": _take(trace["model"], n),
        "pool": recorder.llm_codes.column(codes, 0),
        "replica": rows["replica"],
        "decode_pool": recorder.llm_codes.column(codes, 1),
        "decode_replica": rows["decode_replica"],
        "arrival_s": ready_s[n],
        "admitted_s": rows["admitted_s"],
        "first_token_s": rows["first_token_s"],
        "done_s": rows["done_s"],
        "input_tokens": trace["input_tokens"].to_numpy()[n].astype(np.int64),
        "cached_tokens": rows["cached_tokens"],
        "output_tokens": trace["output_tokens"].to_numpy()[n].astype(np.int64),
        "preemptions": rows["preemptions"],
        "kv_transfer_s": rows["kv_transfer_s"],
        "kv_wait_s": rows["kv_wait_s"],
        "tbt_max_s": rows["tbt_max_s"],
        "stall_max_s": rows["stall_max_s"],
        "status": recorder.llm_codes.column(codes, 2),
        "reason": recorder.llm_codes.column(codes, 3),
    }
    return pd.DataFrame(columns)


def _kv_frame(parts: list[tuple[str, int, Column, Column]]) -> pd.DataFrame:
    if not any(len(times) for _, _, times, _ in parts):
        return pd.DataFrame([], columns=list(KV_COLUMNS))
    sizes = [len(times) for _, _, times, _ in parts]
    return pd.DataFrame(
        {
            "pool": np.repeat(np.array([pool for pool, _, _, _ in parts], dtype=object), sizes),
            "replica": np.repeat(np.array([replica for _, replica, _, _ in parts], dtype=np.int64), sizes),
            "time_s": np.concatenate([times.numpy() for _, _, times, _ in parts]),
            "used_blocks": np.concatenate([used.numpy() for _, _, _, used in parts]),
        }
    )


def _gap_frame(parts: list[tuple[str, int, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The token gaps of every replica (pool as a categorical: a run has millions of rows)."""
    sizes = [len(gaps) for _, _, gaps, _ in parts]
    names = list(dict.fromkeys(pool for pool, _, _, _ in parts))
    codes = np.array([names.index(pool) for pool, _, _, _ in parts], dtype=np.int32)
    return pd.DataFrame(
        {
            "pool": pd.Categorical.from_codes(np.repeat(codes, sizes), names or [""]),
            "replica": np.repeat(np.array([replica for _, replica, _, _ in parts], dtype=np.int32), sizes),
            "gap_s": np.concatenate([gaps for _, _, gaps, _ in parts] or [np.zeros(0)]),
            "count": np.concatenate([counts for _, _, _, counts in parts] or [np.zeros(0, np.int64)]).astype(np.int32),
        }
    )
