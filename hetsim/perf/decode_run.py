"""Times of a run of consecutive decode-only steps of one batch, for event skipping.

A simulator that skips identical decode iterations needs, for a batch that will take up to
``k`` steps: the end of step ``i`` (``end_s``), the longest step among the first ``i``
(``max_step_s``, the worst token gap), and how many steps have finished or are in flight at
a given elapsed time (``steps_by``, to stop at the next iteration boundary when a request
arrives). Two implementations answer the same questions:

* ``AffineDecodeRun``: closed form, for a device without calibration curves. Step ``j`` of a
  batch of ``n`` sequences sees ``seen + slope * j`` keys in each attention group; with
  constant efficiencies its compute and memory times are affine in ``j``, so a step's time is
  ``const + sum_g weight_g * max(c0 + c1 j, m0 + m1 j)``. Sums over steps are arithmetic
  series split where compute overtakes memory; no arrays, O(1) per question (``steps_by`` is a
  short search between the bounds the first and last step times give).
* ``ArrayDecodeRun``: the per-step times as an array (``LlmReplica.decode_run_times``), exact
  under calibration curves, whose efficiencies depend on the op size.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np


def pieces(
    weight: float, c0: float, c1: float, m0: float, m1: float
) -> tuple[float, float, float, float, float, float]:
    """The term ``weight * max(c0 + c1 j, m0 + m1 j)`` as ``(weight, a1, b1, a2, b2, split)``:
    ``weight * (a1 + b1 j)`` for j < split and ``weight * (a2 + b2 j)`` from split on, split
    being the step where compute overtakes memory (or memory compute); inf when never."""
    d0, d1 = c0 - m0, c1 - m1
    if d1 > 0.0:  # memory-bound first
        return weight, m0, m1, c0, c1, float(max(math.ceil(-d0 / d1), 0))
    if d1 < 0.0:  # compute-bound first
        return weight, c0, c1, m0, m1, float(max(math.floor(-d0 / d1) + 1, 0))
    return (weight, c0, c1, m0, m1, math.inf) if d0 >= 0.0 else (weight, m0, m1, c0, c1, math.inf)


class AffineDecodeRun:
    """Closed-form step times ``const_s + sum_g weight_g * max(c0 + c1 j, m0 + m1 j)`` of a
    decode run (see the module docstring); ``terms`` holds one ``(weight, c0, c1, m0, m1)``
    per attention group. Sums over steps are arithmetic series on either side of the step
    where the bound changes."""

    __slots__ = ("_last", "_pieces", "const_s")

    def __init__(self, const_s: float, split_terms: list[tuple[float, float, float, float, float, float]]) -> None:
        """``split_terms``: the terms already split by ``pieces`` (see ``of_terms``)."""
        self.const_s = const_s
        self._pieces = split_terms
        self._last = (-1, 0.0)  # the latest end_s asked for: the run's end is asked for again

    @classmethod
    def of_terms(cls, const_s: float, terms: tuple[tuple[float, float, float, float, float], ...]) -> AffineDecodeRun:
        """A run from ``(weight, c0, c1, m0, m1)`` terms, one per attention group."""
        return cls(const_s, [pieces(*term) for term in terms])

    def plus_s(self, extra_s: float) -> AffineDecodeRun:
        """The same run with ``extra_s`` more per step (a per-step constant the batch's
        membership fixes, as its LoRA kernels' time)."""
        return AffineDecodeRun(self.const_s + extra_s, self._pieces)

    def step_s(self, j: int) -> float:
        """Time of step ``j`` (0-based)."""
        total = self.const_s
        for weight, a1, b1, a2, b2, split in self._pieces:
            total += weight * (a1 + b1 * j if j < split else a2 + b2 * j)
        return total

    def end_s(self, k: int) -> float:
        """Time from the start of the run to the end of step ``k`` (1-based)."""
        last = self._last
        if last[0] == k:
            return last[1]
        total = k * self.const_s
        for weight, a1, b1, a2, b2, split in self._pieces:
            first = int(split) if split < k else k  # steps priced by the first piece
            rest = k - first
            total += weight * (
                first * a1 + b1 * ((first - 1) * first / 2.0) + rest * a2 + b2 * ((first + k - 1) * rest / 2.0)
            )
        self._last = (k, total)
        return total

    def max_step_s(self, k: int) -> float:
        """Longest of the first ``k`` steps: the last, since contexts only grow."""
        j, total = k - 1, self.const_s
        for weight, a1, b1, a2, b2, split in self._pieces:
            total += weight * (a1 + b1 * j if j < split else a2 + b2 * j)
        return total

    def steps_by(self, elapsed_s: float, steps: int) -> int:
        """Steps finished or in flight ``elapsed_s`` into a run of ``steps``: the iteration
        boundary a newcomer waits for (``searchsorted(ends, elapsed, 'right') + 1``, capped)."""
        first, last = self.step_s(0), self.step_s(steps - 1)
        low = max(int(elapsed_s / last) - 1, 0)  # finished steps lie in [low, high]
        high = min(int(elapsed_s / first) + 1, steps)
        while low > 0 and self.end_s(low) > elapsed_s:  # guards against rounding in the bounds
            low -= 1
        while low < high:  # the most steps whose end is at or before elapsed_s
            mid = (low + high + 1) // 2
            if self.end_s(mid) <= elapsed_s:
                low = mid
            else:
                high = mid - 1
        return min(low + 1, steps)


class ArrayDecodeRun:
    """Step times given as an array (exact with calibration curves)."""

    __slots__ = ("_ends", "_times")

    def __init__(self, times: np.ndarray) -> None:
        self._times = times
        self._ends = np.cumsum(times).tolist()

    def plus_s(self, extra_s: float) -> ArrayDecodeRun:
        """The same run with ``extra_s`` more per step."""
        return ArrayDecodeRun(self._times + extra_s)

    def step_s(self, j: int) -> float:
        return float(self._times[j])

    def end_s(self, k: int) -> float:
        return self._ends[k - 1]

    def max_step_s(self, k: int) -> float:
        return float(self._times[:k].max())

    def steps_by(self, elapsed_s: float, steps: int) -> int:
        return min(bisect_right(self._ends, elapsed_s) + 1, steps)
