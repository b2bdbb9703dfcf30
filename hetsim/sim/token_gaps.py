"""Every token gap of one server's calls, recorded as (gap, count) pieces, exact and cheap.

A token gap is the time between two consecutive output tokens of one call (the first token
has none: it is the TTFT). Decoding sequences emit one token per server iteration, so all
members of an iteration see the same gap, the iteration's time: an iteration is one row
``(gap_s, count)``. Event skipping prices a run of ``k`` identical decode iterations at once;
its ``k`` gaps are recorded as one compact row (the run's closed form, or its step-time
array) and expanded into per-iteration rows only when the records are built
(``TokenGaps.arrays``), so a run costs O(1) during the simulation however long it is.

Stalls are gaps of their own: a call preempted (recompute or swap) or handed over from a
prefill pool waits between two tokens; its next token's gap runs from its previous token,
so it includes the wait. A member that joins the decode batch after such a stall takes the
first iteration's gap plus its stall, recorded as its own row (and one count less in the
iteration's row).

The per-call worst gap (``tbt_max_s``) is kept by the decode set and the server; these rows
give the distribution over all gaps (``hetsim.metrics.summary`` weights by ``count``).
"""

from __future__ import annotations

import numpy as np

from hetsim.perf.decode_run import AffineDecodeRun, ArrayDecodeRun
from hetsim.sim.records import Column


class TokenGaps:
    """One server's token gaps: single-gap rows and compact decode-run rows."""

    __slots__ = ("counts", "gaps", "groups", "runs")

    def __init__(self, groups: int) -> None:
        """``groups``: attention groups of the server's model (terms of its closed-form runs)."""
        self.groups = groups
        self.gaps, self.counts = Column("d"), Column("q")
        # Closed-form runs, one row of 4 + 6 * groups floats: first step, stop step, count,
        # constant seconds, then (weight, a1, b1, a2, b2, split) per group (``AffineDecodeRun``).
        self.runs = Column("d")

    def add(self, gap_s: float, count: int) -> None:
        """``count`` tokens each waited ``gap_s`` since their call's previous token."""
        if count > 0:
            self.gaps.append(gap_s)
            self.counts.append(count)

    def add_run(self, run: AffineDecodeRun | ArrayDecodeRun, first: int, stop: int, count: int) -> None:
        """Steps ``first`` to ``stop - 1`` of ``run``, each a gap for ``count`` tokens."""
        if stop <= first or count <= 0:
            return
        if isinstance(run, AffineDecodeRun):
            row = [float(first), float(stop), float(count), run.const_s]
            for piece in run._pieces:  # the closed form's terms, expanded exactly as step_s does
                row.extend(piece)
            self.runs.extend(tuple(row))
            return
        times = run._times[first:stop]  # the run's step times, as priced
        self.gaps.extend(tuple(times.tolist()))
        self.counts.extend((count,) * (stop - first))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All gaps as (gap_s, count) arrays, runs expanded to one row per iteration."""
        gaps, counts = self.gaps.numpy(), self.counts.numpy()
        runs = self.runs.numpy().reshape(-1, 4 + 6 * self.groups)
        if not len(runs):
            return gaps, counts
        first, stop = runs[:, 0].astype(np.int64), runs[:, 1].astype(np.int64)
        lengths = stop - first
        row = np.repeat(np.arange(len(runs)), lengths)
        starts = np.cumsum(lengths) - lengths
        j = (np.arange(int(lengths.sum())) - starts[row] + first[row]).astype(np.float64)
        values = runs[row, 3].copy()  # AffineDecodeRun.step_s, vectorised in the same order
        for g in range(self.groups):
            weight, a1, b1, a2, b2, split = (runs[row, 4 + 6 * g + k] for k in range(6))
            values += weight * np.where(j < split, a1 + b1 * j, a2 + b2 * j)
        return np.concatenate([gaps, values]), np.concatenate([counts, runs[row, 2].astype(np.int64)])
