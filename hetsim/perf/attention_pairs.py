"""Causal attention work of prefill chunks: the one piece of attention arithmetic that both the
performance model (``hetsim.perf.transformer``) and the simulator's step pricer
(``hetsim.perf.step_pricing``) run, kept apart so that it compiles with the pricer (mypyc)."""

from __future__ import annotations


def chunk_pairs(chunks: list[tuple[int, int]], window: int | None) -> tuple[float, float]:
    """(causal query-key pairs, KV tokens read) over (new tokens, cached tokens) chunks,
    within ``window`` if set.

    Query i (1..q) of a chunk on top of c cached tokens sees c + i keys, or ``window`` keys
    once c + i reaches the window.
    """
    pairs = kv_read = 0.0
    for q, c in chunks:
        if window is None:
            pairs += q * c + q * (q + 1) / 2.0
            kv_read += c + q
            continue
        uncapped = min(q, max(0, window - c - 1))
        pairs += uncapped * c + uncapped * (uncapped + 1) / 2.0 + (q - uncapped) * window
        kv_read += min(c + q, window + q - 1)
    return pairs, kv_read
