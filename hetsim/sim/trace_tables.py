"""The trace as flat arrays indexed by step position, built once per run (vectorised).

A million-call trace has two million steps; per-step Python objects (child lists, a
position dict, a tuple of prefix keys per call) would take gigabytes and seconds to build, so
the parent/child graph is kept as index arrays (CSR) and prefix keys are made when a call
starts.
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from hetsim.errors import ScenarioError

SYNTHETIC_PREFIX_BLOCK_TOKENS = 256
"""Block size of prefix keys made from ``cached_prefix_tokens`` (traces without hash ids)."""

_BLOCK_BITS: Final = 24  # a synthetic prefix key is step << 24 | block (2**24 blocks: 4 G tokens a prompt)


def int_array(values: np.ndarray) -> array:
    """Integers as a flat typed array: 4 bytes each when they fit (indexing gives Python ints)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.max() >= 2**31 or values.min() < -(2**31)):
        return array("q", values.tobytes())
    return array("i", values.astype(np.int32).tobytes())


@dataclass
class PrefixKeys:
    """Prefix-block keys per step (equal keys = reusable KV), made on demand by ``of``.

    From hash ids when the trace has them, chained (a block's key names its whole prefix, as
    vLLM's block hashes do, whatever the trace's ids mean); otherwise synthetic: step n's prompt keeps the
    first ``reused[n]`` keys of the previous LLM step of its session (the blocks its
    ``cached_prefix_tokens`` cover) and adds its own, one per further block up to
    ``blocks[n]``. Only the latest keys of each session are kept in memory.
    """

    block_tokens: int
    hashes: list | None = None
    previous: array = field(default_factory=lambda: array("q"))  # -1: first of its session; -2: no keys
    reused: array = field(default_factory=lambda: array("q"))
    blocks: array = field(default_factory=lambda: array("q"))
    _latest: list[tuple | None] = field(default_factory=list)  # by step: its keys, until its session's next LLM step
    _chain: dict[tuple, int] = field(default_factory=dict)  # (parent key, hash id) -> key

    def __post_init__(self) -> None:
        self._latest = [None] * len(self.previous)

    def of(self, n: int) -> tuple[tuple, int]:
        """The keys of step ``n``'s prompt, and how many of them lead the prompt of its
        session's previous LLM step too (-1: unknown), a hint of what a cache holds."""
        if self.hashes is not None:
            return self._chained(self.hashes[n]), -1
        previous: int = self.previous[n]  # typed: an array's items are Any to mypyc
        if previous == -2:
            return (), 0
        latest = self._latest
        earlier: tuple = ()
        if previous >= 0:
            known = latest[previous]
            if known is None:  # a step that starts before its predecessor in the trace
                earlier = self._build(previous)
            else:
                earlier = known
                latest[previous] = None
        reused: int = self.reused[n]
        keys = _extended(earlier, reused, n, self.blocks[n])
        latest[n] = keys
        return keys, reused

    def _chained(self, hashes: list) -> tuple:
        chain, parent, keys = self._chain, -1, []
        for hash_id in hashes:
            parent = chain.setdefault((parent, hash_id), len(chain))
            keys.append(parent)
        return tuple(keys)

    def _build(self, n: int) -> tuple:
        """Keys of step ``n`` without touching the cache of latest keys."""
        chain = [n]
        while self.previous[chain[-1]] >= 0:
            chain.append(self.previous[chain[-1]])
        keys: tuple = ()
        for step in reversed(chain):
            keys = _extended(keys, self.reused[step], step, self.blocks[step])
        return keys


def _extended(earlier: tuple, reused: int, step: int, blocks: int) -> tuple:
    """The first ``reused`` keys of ``earlier`` and step ``step``'s own keys up to ``blocks``
    (the earlier tuple itself when it is all of them: a copy would touch every key object)."""
    head = earlier if reused >= len(earlier) else earlier[:reused]
    if blocks <= reused:
        return head
    base = step << _BLOCK_BITS
    return head + tuple([base + block for block in range(reused, blocks)])


@dataclass
class TraceTables:
    """The trace indexed by global step position: step ``n``'s children are
    ``child_list[child_start[n]:child_start[n + 1]]`` (in row order)."""

    frame: pd.DataFrame
    child_start: array
    child_list: array
    parent_counts: np.ndarray
    roots: list[int]
    prefix_keys: PrefixKeys
    node_type_codes: np.ndarray  # per step, an index into node_type_names
    node_type_names: list[str]

    @property
    def prefix_block_tokens(self) -> int:
        return self.prefix_keys.block_tokens

    def children(self, n: int) -> list[int]:
        return list(self.child_list[self.child_start[n] : self.child_start[n + 1]])


def build_tables(trace: pd.DataFrame, block_size_tokens: int | None) -> TraceTables:
    """Index the steps, link parents to children, and derive prefix keys per LLM step."""
    frame = trace.reset_index(drop=True)
    size = len(frame)
    sessions, _ = pd.factorize(frame["session_id"])
    node_types, uniques = pd.factorize(frame["node_type"].astype(str))
    names = [str(name) for name in uniques]
    step_ids = frame["step_id"].to_numpy(dtype=np.int64)
    parents = frame["parents"].tolist()
    counts = np.fromiter(map(len, parents), dtype=np.int64, count=size)
    flat = np.fromiter(itertools.chain.from_iterable(parents), dtype=np.int64, count=int(counts.sum()))
    del parents
    child = np.repeat(np.arange(size, dtype=np.int64), counts)
    # A step is found by the key session * width + step id (the last row wins on duplicates).
    width = int(max(step_ids.max(initial=0), flat.max(initial=0))) + 1
    keys = sessions.astype(np.int64) * width + step_ids
    order = np.argsort(keys, kind="stable")
    wanted = sessions[child].astype(np.int64) * width + flat
    found = np.searchsorted(keys[order], wanted, side="right") - 1
    valid = (flat >= 0) & (found >= 0) & (keys[order][np.maximum(found, 0)] == wanted)
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        row = int(child[bad])
        raise ScenarioError(
            f"trace: session {frame['session_id'].iloc[row]!r} step {step_ids[row]} has unknown parent {flat[bad]}"
        )
    parent_rows = order[found]
    late = np.flatnonzero(parent_rows >= child)  # parents come first in a trace: no cycle can hide
    if len(late):
        row = int(child[late[0]])
        raise ScenarioError(
            f"trace: session {frame['session_id'].iloc[row]!r} step {step_ids[row]} lists parent {flat[late[0]]}, "
            "which does not come before it (expected parents before their children; a cycle never runs)"
        )
    by_parent = np.argsort(parent_rows, kind="stable")
    child_start = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent_rows, minlength=size), out=child_start[1:])
    arrival = frame["arrival_s"].to_numpy(dtype=float)
    root_rows = np.flatnonzero(counts == 0)
    roots = root_rows[np.lexsort((root_rows, arrival[root_rows]))].tolist()
    return TraceTables(
        frame,
        int_array(child_start),
        int_array(child[by_parent]),
        counts,
        roots,
        _prefix_keys(frame, sessions, node_types == (names.index("llm") if "llm" in names else -1), block_size_tokens),
        node_types,
        names,
    )


def _prefix_keys(
    frame: pd.DataFrame, sessions: np.ndarray, is_llm: np.ndarray, block_size_tokens: int | None
) -> PrefixKeys:
    hashes = frame["prefix_hash_ids"].tolist()
    if block_size_tokens and any(len(h) for h in hashes):
        return PrefixKeys(block_size_tokens, hashes=hashes)
    del hashes
    block = SYNTHETIC_PREFIX_BLOCK_TOKENS
    size = len(frame)
    previous = np.full(size, -2, dtype=np.int64)
    reused = np.zeros(size, dtype=np.int64)
    cached = frame["cached_prefix_tokens"].to_numpy(dtype=float, na_value=np.nan)
    # Only sessions in which some call reuses a whole block need keys (most public traces: none).
    reusing = np.zeros(sessions.max(initial=-1) + 1, dtype=bool)
    reusing[sessions[np.nan_to_num(cached) >= block]] = True
    rows = np.flatnonzero(is_llm & reusing[sessions])
    tokens = frame["input_tokens"].to_numpy(dtype=np.int64)
    blocks = np.zeros(size, dtype=np.int64)
    blocks[rows] = -(-tokens[rows] // block)
    shared = np.where(np.isnan(cached[rows]), 0, np.nan_to_num(cached[rows]) // block).astype(np.int64)
    # Within each session, in row order: the previous LLM step, and how many of its keys this
    # one reuses (a step holds max(reused, blocks) keys; the next reuses at most that many).
    order = np.lexsort((rows, sessions[rows]))
    rows, shared = rows[order], shared[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = sessions[rows[1:]] != sessions[rows[:-1]]
    previous[rows] = np.where(first, -1, np.roll(rows, 1))
    chained, held = [], 0
    for is_first, limit, own in zip(first.tolist(), shared.tolist(), blocks[rows].tolist(), strict=True):
        take = 0 if is_first else min(limit, held)
        chained.append(take)
        held = max(take, own)
    reused[rows] = chained
    return PrefixKeys(
        block,
        previous=int_array(previous),
        reused=int_array(reused),
        blocks=int_array(blocks),
    )
