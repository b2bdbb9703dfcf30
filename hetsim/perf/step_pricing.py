"""The step model of one LLM replica: the one place a step's time is computed.

A step's time is a part that depends only on its token count (projections, MLP, collectives,
embedding, the engine's per-token cost), a part that depends only on its row count (final
norm and LM head of the rows that sample, the engine's per-step cost), both computed by the
replica from its op lists and cached per count, plus ``pp`` times one stage's attention,
computed here from the attention constants (FLOPs per query-key pair, bytes per key, bytes
per query) and the device's efficiencies.

Every path prices steps here: ``step_seconds_of`` (a step of decodes and prefill chunks: the
simulator's hot path and ``LlmReplica.step``'s seconds), ``verify_step_seconds_of``
(speculative verification), and the two fast paths of a run of decode-only steps derived from
the same constants: ``decode_run_times`` (the per-step times, vectorised over steps; exact
under calibration curves) and ``affine_decode_run`` (closed form when efficiencies are flat).

Typed for mypyc (``HETSIM_COMPILE``; see the README): plain attributes, no ``Any``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hetsim.perf.attention_pairs import chunk_pairs
from hetsim.perf.decode_run import AffineDecodeRun, pieces
from hetsim.specs.calibration import CurveKind

Rates = tuple[float, float, float]  # (compute FLOP/s, memory B/s, fixed s per op) at flat efficiency
OpSeconds = Callable[[CurveKind, float, float, int], float]  # (kind, FLOPs, bytes, count) -> s
OpTimes = Callable[[CurveKind, np.ndarray, np.ndarray, int], np.ndarray]  # the same, over arrays of sizes


class StepPricer:
    """Step and decode-run times of one replica (see the module docstring)."""

    def __init__(
        self,
        *,
        pp: int,
        flops_per_pair: float,
        kv_bytes: float,
        qo_bytes: float,
        groups: tuple[tuple[int, int | None], ...],
        decode_rates: Rates | None,
        prefill_rates: Rates | None,
        token_part_cache: dict[int, float],
        row_part_cache: dict[int, float],
        decode_base_cache: dict[int, float],
        token_part_s: Callable[[int], float],
        row_part_s: Callable[[int], float],
        decode_base_s: Callable[[int], float],
        op_seconds: OpSeconds,
        op_times: OpTimes,
        prefill_pair_s: float = 0.0,
        sequence_costs: tuple[float, float] = (0.0, 0.0),
        prefill_constants: tuple[float, float, float] | None = None,
        unpartitioned_decode: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.pp = pp
        self.flops_per_pair, self.kv_bytes, self.qo_bytes = flops_per_pair, kv_bytes, qo_bytes
        # Prefill's (FLOPs per pair, bytes per key, bytes per token) where they differ from
        # decode's (MLA prefills in its multi-head form).
        prefill = prefill_constants if prefill_constants is not None else (flops_per_pair, kv_bytes, qo_bytes)
        self.prefill_flops_per_pair, self.prefill_kv_bytes, self.prefill_qo_bytes = prefill
        self.groups = groups
        self.windows: list[int | None] = [window for _, window in groups]
        # Flat rates make an attention kind's time affine in its work (no call per op); decode
        # runs have a closed form when decode attention is flat.
        self.decode_flat = decode_rates is not None
        self.prefill_flat = prefill_rates is not None
        self.affine = decode_rates is not None
        # Per-sequence seconds of decode and prefill attention kernels, per layer.
        self.decode_sequence_s, self.prefill_sequence_s = sequence_costs
        self.decode_rates: Rates = decode_rates if decode_rates is not None else (1.0, 1.0, 0.0)
        self.prefill_rates: Rates = prefill_rates if prefill_rates is not None else (1.0, 1.0, 0.0)
        self.token_part_cache, self.row_part_cache = token_part_cache, row_part_cache
        self.decode_base_cache = decode_base_cache
        self.token_part_s, self.row_part_s, self.decode_base_s = token_part_s, row_part_s, decode_base_s
        self.op_seconds, self.op_times = op_seconds, op_times
        self.prefill_pair_s = prefill_pair_s  # an engine's prefill attention beyond the kernel model, per pair and layer
        # Decode attention without calibration is affine in the keys read: per group, a weight
        # and the seconds per pair (compute), per key and per query (memory), plus fixed s.
        compute, memory, overhead = self.decode_rates
        self.per_pair = flops_per_pair / compute
        self.per_key = kv_bytes / memory
        self.per_token = qo_bytes / memory
        self.weights: list[float] = [float(pp * count) for count, _ in groups]
        self.overhead_s = sum(weight * overhead for weight in self.weights)
        self.layer_weight = float(sum(count for count, _ in groups))  # layers per stage
        # vLLM's PagedAttention decode above this many sequences runs its unpartitioned V1
        # kernel, whose KV reads cost this factor more (transformer.unpartitioned_decode).
        self.unpartitioned_after: float = unpartitioned_decode[0]
        self.unpartitioned_scale: float = unpartitioned_decode[1]

    def decode_kv_scale(self, decodes: int) -> float:
        """The KV-read factor of a decode of ``decodes`` sequences: the unpartitioned kernel's
        above its threshold, else 1 (``transformer.decode_kv_scale``, in plain floats)."""
        if self.unpartitioned_after and decodes > self.unpartitioned_after:
            return self.unpartitioned_scale
        return 1.0

    def decode_kv_bytes(self, decodes: int) -> float:
        """Bytes per key a decode of ``decodes`` sequences is priced at."""
        return self.kv_bytes * self.decode_kv_scale(decodes)

    def step_seconds_of(self, decodes: int, decode_seen: list[float], chunks: list[tuple[int, int]]) -> float:
        """One step of ``decodes`` one-token decodes (summarised by the keys they read per
        attention group, ``decode_seen``) plus prefill chunks as (new tokens, context tokens)."""
        windows = self.windows
        tokens, rows = decodes, decodes + len(chunks)
        decode_n = decodes
        seen = list(decode_seen) if decodes else [0.0] * len(windows)
        prefill: list[tuple[int, int]] = []
        for new, context in chunks:
            tokens += new
            if new == 1 and context > 0:
                decode_n += 1
                for g in range(len(windows)):
                    window = windows[g]
                    seen[g] += context + 1 if window is None else min(context + 1, window)
            else:
                prefill.append((new, context))
        attention = self.attention_s(decode_n, seen, prefill, tokens - decode_n)
        return self._parts_s(tokens, rows) + self.pp * attention

    def _parts_s(self, tokens: int, rows: int) -> float:
        """The step's parts that depend on its token count and its row count (cached)."""
        token_part = self.token_part_cache.get(tokens)
        if token_part is None:
            token_part = self.token_part_s(tokens)
        row_part = self.row_part_cache.get(rows)
        if row_part is None:
            row_part = self.row_part_s(rows)
        return token_part + row_part

    def verify_seconds_of(self, sequences: int, decode_seen: list[float], queries: int) -> float:
        """A speculative verification step of ``sequences`` decodes alone (``verify_step_seconds_of``)."""
        return self.verify_step_seconds_of(sequences, decode_seen, [], queries)

    def verify_step_seconds_of(
        self, sequences: int, decode_seen: list[float], chunks: list[tuple[int, int]], queries: int
    ) -> float:
        """A speculative verification step: ``sequences`` decodes of ``queries`` tokens each (the
        last accepted token and the drafts) over the keys they read (``decode_seen``, as one-token
        decodes would), plus prefill ``chunks`` as (new tokens, context tokens). Tokens, MLP and
        the LM head count every query; attention reads each sequence's keys once and computes
        ``queries`` times over them (a decode kernel with several queries per sequence, as
        FlashAttention's and FlashMLA's decode paths run it). ``queries`` 1 is ``step_seconds_of``."""
        tokens = sequences * queries
        rows = tokens + len(chunks)
        kv_bytes, qo_bytes, flops_per_pair = self.decode_kv_bytes(sequences), self.qo_bytes, self.flops_per_pair
        attention = 0.0
        if sequences:
            for g, (count, _) in enumerate(self.groups):
                keys = decode_seen[g]
                nbytes = (keys + tokens) * kv_bytes + tokens * qo_bytes
                attention += self._op_s(True, self.decode_rates, queries * keys * flops_per_pair, nbytes, count)
            attention += self.layer_weight * sequences * self.decode_sequence_s
        if chunks:
            prefill_tokens = 0
            for new, _ in chunks:
                prefill_tokens += new
            tokens += prefill_tokens
            attention += self.prefill_attention_s(chunks, prefill_tokens)
        return self._parts_s(tokens, rows) + self.pp * attention

    def attention_s(
        self, decode_n: int, decode_seen: list[float], prefill: list[tuple[int, int]], prefill_tokens: int
    ) -> float:
        """Attention seconds of one stage (the arithmetic of ``attention_ops``, without objects)."""
        kv_bytes, qo_bytes, flops_per_pair = self.decode_kv_bytes(decode_n), self.qo_bytes, self.flops_per_pair
        total = 0.0
        if decode_n:  # a one-token decode's pairs and keys read are both min(context + 1, window)
            for g, (count, _) in enumerate(self.groups):
                keys = decode_seen[g]
                nbytes = (keys + decode_n) * kv_bytes + decode_n * qo_bytes
                total += self._op_s(True, self.decode_rates, keys * flops_per_pair, nbytes, count)
            total += self.layer_weight * decode_n * self.decode_sequence_s
        if prefill:
            total += self.prefill_attention_s(prefill, prefill_tokens)
        return total

    def prefill_attention_s(self, prefill: list[tuple[int, int]], prefill_tokens: int) -> float:
        """Attention seconds of one stage's prefill chunks, (new tokens, context tokens) pairs."""
        total = 0.0
        for count, window in self.groups:
            pairs, kv_read = chunk_pairs(prefill, window)
            nbytes = (kv_read + prefill_tokens) * self.prefill_kv_bytes + prefill_tokens * self.prefill_qo_bytes
            total += self._op_s(False, self.prefill_rates, pairs * self.prefill_flops_per_pair, nbytes, count)
            total += count * pairs * self.prefill_pair_s
        return total + self.layer_weight * len(prefill) * self.prefill_sequence_s

    def _op_s(self, decode: bool, rates: Rates, flops: float, nbytes: float, count: int) -> float:
        """``DevicePerf.seconds`` of an attention op (decode's or prefill's), inlined when
        efficiencies are flat (no enum member is looked up then: compiled, that lookup is
        generic and costs as much as the arithmetic)."""
        if not (self.decode_flat if decode else self.prefill_flat):
            kind = CurveKind.ATTENTION_DECODE if decode else CurveKind.ATTENTION_PREFILL
            return self.op_seconds(kind, flops, nbytes, count)
        compute_rate, memory_rate, overhead_s = rates
        compute_s = flops / compute_rate if flops else 0.0
        memory_s = nbytes / memory_rate if nbytes else 0.0
        return count * ((compute_s if compute_s >= memory_s else memory_s) + overhead_s)

    def decode_run_times(self, contexts: list[int], steps: int) -> np.ndarray:
        """Times of ``steps`` consecutive decode-only steps of sequences now at ``contexts``:
        step j is ``step_seconds_of`` of one-token decodes at ``c + j``; only attention
        depends on j, so its ops are priced for all j at once (the same work as
        ``attention_s``'s decode part: keys seen per group, FLOPs per pair, bytes per key and
        query), over the cached token and row parts of n sequences."""
        n = len(contexts)
        if n == 0 or steps < 1:
            return np.zeros(max(steps, 0))
        base = self.decode_base_cache.get(n)
        if base is None:
            base = self.decode_base_s(n)
        attention = np.zeros(steps)
        c = np.asarray(contexts, dtype=float)
        j = np.arange(steps, dtype=float)
        kv_bytes = self.decode_kv_bytes(n)
        for count, window in self.groups:
            if window is None:
                keys = c.sum() + n * (j + 1.0)  # each query sees its context plus itself
            else:
                keys = np.minimum(c[None, :] + j[:, None] + 1.0, window).sum(axis=1)
            nbytes = (keys + n) * kv_bytes + n * self.qo_bytes
            attention += self.op_times(CurveKind.ATTENTION_DECODE, keys * self.flops_per_pair, nbytes, count)
        attention += self.layer_weight * n * self.decode_sequence_s
        return base + self.pp * attention

    def affine_decode_run(self, n: int, seen: list[tuple[float, int]]) -> AffineDecodeRun | None:
        """Closed-form times of consecutive decode steps of ``n`` sequences, or None when a
        calibration curve makes efficiency depend on the op size (``decode_run_times`` then).

        ``seen[g] = (keys, slope)``: at step j attention group g sees ``keys + slope * j`` keys
        (``slope`` is n without a window; the caller must stop where a sequence reaches the
        window). Equal to ``decode_run_times`` to rounding.
        """
        if not self.affine:
            return None
        per_pair, per_key, per_token = self.per_pair, self.per_key * self.decode_kv_scale(n), self.per_token
        terms: list[tuple[float, float, float, float, float, float]] = []
        for g, weight in enumerate(self.weights):
            keys, slope = seen[g]
            terms.append(
                pieces(weight, keys * per_pair, slope * per_pair, (keys + n) * per_key + n * per_token, slope * per_key)
            )
        base = self.decode_base_cache.get(n)
        if base is None:
            base = self.decode_base_s(n)
        per_sequence = self.pp * self.layer_weight * n * self.decode_sequence_s
        return AffineDecodeRun(base + self.overhead_s + per_sequence, terms)
