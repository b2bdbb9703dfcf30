"""Causal attention work of prefill chunks: the one piece of attention arithmetic that both the
performance model (``hetsim.perf.transformer``) and the simulator's step pricer
(``hetsim.perf.step_pricing``) run, kept apart so that it compiles with the pricer (mypyc);
and the same over arrays of measured rows (``window_pairs``, for the kernel fits)."""

from __future__ import annotations

import numpy as np


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


def window_pairs(q: np.ndarray, cached: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(causal query-key pairs, KV tokens read) of ``q`` new tokens on ``cached`` ones per
    sequence, within ``window`` keys per query where it is finite (NaN: full attention):
    ``chunk_pairs`` per element, over arrays of measured rows (the two are tested equal; the
    scalar loop stays for the step pricer's few chunks, where numpy's overhead would dominate)."""
    full_pairs = q * cached + q * (q + 1.0) / 2.0
    windowed = np.isfinite(window)
    w = np.where(windowed, window, 0.0)
    uncapped = np.minimum(q, np.maximum(0.0, w - cached - 1.0))
    pairs = uncapped * cached + uncapped * (uncapped + 1.0) / 2.0 + (q - uncapped) * w
    kv_read = np.minimum(cached + q, w + q - 1.0)
    return np.where(windowed, pairs, full_pairs), np.where(windowed, kv_read, cached + q)
