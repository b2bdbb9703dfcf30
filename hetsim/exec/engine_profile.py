"""Profile a running serving engine through its API on a synthetic grid, independent of any
workload: prefill alone (one request of P prompt tokens, one output token: its time to first
token) and decode batches (B concurrent requests at a context of L tokens: the median gap
between their tokens once all are decoding). The fit of these rows is in
``hetsim.perf.engine_fit``.

Prompts are random token ids, new for every request, so no prefix cache helps any of them.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hetsim.exec.client import make_client, monotonic_clock, request_body, stream_completion
from hetsim.exec.prompts import FIRST_TOKEN_ID

PREFILL_TOKENS = (16, 64, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_CONTEXTS = (64, 1024)
DECODE_OUTPUT_TOKENS = 48
REPEATS = 3


@dataclass(frozen=True)
class GridPoint:
    kind: str  # "prefill" or "decode"
    tokens: int  # prompt tokens (prefill) or context tokens (decode)
    batch: int
    measured_s: float


@dataclass
class EngineProfiler:
    url: str
    served_model: str
    vocab_size: int
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _prompt(self, length: int) -> list[int]:
        return self._rng.integers(FIRST_TOKEN_ID, self.vocab_size, size=length).tolist()

    async def grid(
        self,
        prefill_tokens: tuple[int, ...] = PREFILL_TOKENS,
        batches: tuple[int, ...] = DECODE_BATCHES,
        contexts: tuple[int, ...] = DECODE_CONTEXTS,
        progress: Callable[[str], None] | None = None,
    ) -> list[GridPoint]:
        """Every grid point, each the median of ``REPEATS`` measurements."""
        points: list[GridPoint] = []
        async with make_client() as client:
            clock = monotonic_clock(0.0)
            for _ in range(2):  # warm-up, as a run does
                await stream_completion(client, self.url, request_body(self.served_model, self._prompt(64), 8, self.seed), clock)
            for tokens in prefill_tokens:
                if progress:
                    progress(f"prefill {tokens} tokens")
                times = []
                for _ in range(REPEATS):
                    body = request_body(self.served_model, self._prompt(tokens), 1, self.seed)
                    result = await stream_completion(client, self.url, body, clock)
                    times.append(result.token_times_s[0] - result.sent_s)
                points.append(GridPoint("prefill", tokens, 1, statistics.median(times)))
            for context in contexts:
                for batch in batches:
                    if progress:
                        progress(f"decode batch {batch} at context {context}")
                    gaps = [await self._decode_gap(client, clock, batch, context) for _ in range(REPEATS)]
                    points.append(GridPoint("decode", context, batch, statistics.median(gaps)))
        return points

    async def _decode_gap(self, client, clock, batch: int, context: int) -> float:
        """Median token gap of ``batch`` concurrent decodes, from tokens 8-40 of each (all
        sequences are past their prefill by then)."""
        bodies = [request_body(self.served_model, self._prompt(context), DECODE_OUTPUT_TOKENS, self.seed) for _ in range(batch)]
        results = await asyncio.gather(*(stream_completion(client, self.url, body, clock) for body in bodies))
        gaps = []
        for result in results:
            times = np.asarray(result.token_times_s[8:40])
            gaps.extend(np.diff(times).tolist())
        return float(np.median(gaps))
