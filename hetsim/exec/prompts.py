"""Prompt token ids for a trace's LLM calls, built so that a real engine's prefix cache sees
the reuse the simulator assumes.

A trace gives token counts and reuse, not text. The simulator's reuse model
(``hetsim.sim.trace_tables.PrefixKeys``) is followed token for token:

* a trace with prefix hash ids (Mooncake style): the block with hash id ``h`` is the same
  ``block_tokens`` tokens wherever it appears, so equal hash prefixes are equal token prefixes;
* otherwise a call keeps the first ``cached_prefix_tokens`` tokens of its session's previous
  LLM call and adds fresh ones. A session's first call that says part of its prompt is cached
  (an agent's system prompt and tool schemas) starts with a prefix shared by every session's
  first call at that workload node: the simulator charges no prefill for it, and a real engine
  computes it once and then serves it from its cache.

Fresh tokens are drawn from a generator seeded by (run seed, session, step): the same trace and
seed give the same prompts, call for call.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

FIRST_TOKEN_ID = 3
"""Ids below this are left out (BOS/EOS/pad in the Llama family's layout)."""


def _seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


class PromptBuilder:
    """``tokens(n)``: the prompt of trace row ``n`` (an LLM step), as a list of token ids."""

    def __init__(self, trace: pd.DataFrame, vocab_size: int, seed: int = 0, block_tokens: int | None = None) -> None:
        self.vocab, self.seed, self.block_tokens = vocab_size, seed, block_tokens
        self._input = trace["input_tokens"].to_numpy(dtype=np.int64)
        cached = trace["cached_prefix_tokens"]
        self._cached = cached.fillna(0).to_numpy(dtype=np.int64) if hasattr(cached, "fillna") else np.zeros(len(trace), np.int64)
        self._hashes = trace["prefix_hash_ids"].tolist()
        self._session = trace["session_id"].astype(str).tolist()
        self._node = trace["node"].astype(str).tolist()
        self._step = trace["step_id"].to_numpy(dtype=np.int64)
        self._previous = _previous_llm_row(trace)
        # A prompt is kept only while a later call of its session still has to extend it.
        self._waiting = np.bincount(self._previous[self._previous >= 0], minlength=len(trace))
        self._prompts: dict[int, np.ndarray] = {}

    def tokens(self, n: int) -> list[int]:
        return self.array(n).tolist()

    def array(self, n: int) -> np.ndarray:
        """Row ``n``'s prompt. Each call's prompt is asked for once (by the call, in session
        order); one its session's later calls extend is kept until they have used it."""
        if n in self._prompts:
            return self._prompts[n]
        length = max(int(self._input[n]), 1)
        hashes = self._hashes[n]
        if self.block_tokens and len(hashes):
            head = self._hashed_blocks(hashes, length)
        else:
            head = self._reused_head(n, length)
        prompt = np.concatenate([head, self._fresh(n, length - len(head))]) if len(head) < length else head[:length]
        if self._waiting[n] > 0:
            self._prompts[n] = prompt
        return prompt

    def _hashed_blocks(self, hashes: tuple, length: int) -> np.ndarray:
        assert self.block_tokens is not None
        blocks = [self._draw(_seed(self.seed, "block", int(h)), self.block_tokens) for h in hashes]
        return np.concatenate(blocks)[:length]

    def _reused_head(self, n: int, length: int) -> np.ndarray:
        reuse = min(int(self._cached[n]), length)
        if reuse <= 0:
            return np.empty(0, dtype=np.int64)
        previous = int(self._previous[n])
        if previous < 0:  # a session's first call: the node's shared prefix
            return self._draw(_seed(self.seed, "shared", self._node[n]), reuse)
        earlier = self.array(previous)
        self._waiting[previous] -= 1
        if self._waiting[previous] <= 0:
            self._prompts.pop(previous, None)
        if reuse <= len(earlier):
            return earlier[:reuse]
        return np.concatenate([earlier, self._fresh(n, reuse - len(earlier), "context")])

    def _fresh(self, n: int, count: int, part: str = "fresh") -> np.ndarray:
        return self._draw(_seed(self.seed, part, self._session[n], int(self._step[n])), count)

    def _draw(self, seed: int, count: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.integers(FIRST_TOKEN_ID, self.vocab, size=max(count, 0), dtype=np.int64)


def _previous_llm_row(trace: pd.DataFrame) -> np.ndarray:
    """Per row, the row of its session's previous LLM step in trace order (-1: none)."""
    previous = np.full(len(trace), -1, dtype=np.int64)
    llm_rows = np.flatnonzero(trace["node_type"].astype(str).to_numpy() == "llm")
    last: dict[str, int] = {}
    sessions = trace["session_id"].astype(str).to_numpy()
    for row in llm_rows:
        session = sessions[row]
        previous[row] = last.get(session, -1)
        last[session] = int(row)
    return previous


def block_keys(prompt: np.ndarray, block_tokens: int) -> tuple[int, ...]:
    """Chained keys of the prompt's full blocks (equal keys: equal prefixes), as a prefix-aware
    router compares prompts."""
    keys, parent = [], 0
    for start in range(0, len(prompt) - block_tokens + 1, block_tokens):
        parent = zlib.crc32(prompt[start : start + block_tokens].tobytes(), parent)
        keys.append(parent)
    return tuple(keys)
