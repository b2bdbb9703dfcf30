"""Pure delays waiting to end (external steps: a tool's latency, a user's think time), kept in
a typed heap with one SimPy timeout, the alarm, set for the earliest.

An agent trace keeps hundreds of sessions in a think time at once. As SimPy timeouts they
would make SimPy's event heap ten times deeper than the servers need, and every event (most
are server iterations) pays for that depth: a million-call run spent about 4% of its time on
it. Here a delay costs a push and a pop on native floats, and SimPy holds one alarm.

What is kept of SimPy's order: a delay ends at ``start + duration``, the float a SimPy timeout
would end at (or an ulp or two later, when SimPy's clock cannot land on it from the instant the
alarm is set: it adds a delay to its time); delays that end at the same instant end in the
order they began; a delay of zero ends after the events already due at its instant, as a
``timeout(0)`` would. The heap is written out (not ``heapq`` on tuples) so that, compiled, its
comparisons are on native floats. At
an instant where a delay and another kind of event are both due, the delays' alarm may come
before or after it (SimPy breaks such ties by scheduling order, and the alarm is scheduled when
its delay becomes the earliest).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

DelayEnd = Callable[[int, float, float], None]  # (step, start_s, now) -> None


class DelayCalendar:
    """Delays of steps: ``add(end_s, step, start_s)``; ``on_end(step, start_s, now)`` is called
    at ``end_s`` (``now``: the clock, ``env.now``; see the module docstring)."""

    def __init__(self, env: simpy.Environment, on_end: DelayEnd) -> None:
        self.env, self.on_end = env, on_end
        # A binary heap on (end, seq) held in parallel lists: compiled, compares are native.
        self._ends: list[float] = []
        self._seqs: list[int] = []
        self._steps: list[int] = []
        self._starts: list[float] = []
        self._seq = 0
        self._alarm_s = math.inf
        self._alarm: simpy.Event | None = None

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, end_s: float, step: int, start_s: float) -> None:
        """Wait until ``end_s`` (at least ``start_s``, the current time) for ``step``."""
        self._seq += 1
        self._push(end_s, self._seq, step, start_s)
        if end_s < self._alarm_s:
            self._set_alarm(end_s, start_s)

    def _set_alarm(self, end_s: float, now: float) -> None:
        """The alarm at ``end_s`` (an earlier alarm goes stale: ``_on_alarm`` ignores it)."""
        self._alarm_s = end_s
        self._alarm = event = self.env.timeout(_delay_to(now, end_s))
        event.callbacks.append(self._on_alarm)  # type: ignore[union-attr]

    def _on_alarm(self, event: simpy.Event) -> None:
        if event is not self._alarm:
            return
        now, last_seq, ends, seqs = self.env.now, self._seq, self._ends, self._seqs
        # Delays added from here on (by on_end) end no earlier than their own alarm.
        while ends and ends[0] <= now and seqs[0] <= last_seq:
            step, start = self._steps[0], self._starts[0]
            self._pop()
            self.on_end(step, start, now)
        self._alarm, self._alarm_s = None, math.inf
        if ends:
            self._set_alarm(ends[0], now)

    def _push(self, end_s: float, seq: int, step: int, start_s: float) -> None:
        ends, seqs, steps, starts = self._ends, self._seqs, self._steps, self._starts
        ends.append(end_s)
        seqs.append(seq)
        steps.append(step)
        starts.append(start_s)
        pos = len(ends) - 1
        while pos > 0:  # up while the parent ends later
            parent = (pos - 1) >> 1
            parent_end = ends[parent]
            if parent_end < end_s or (parent_end == end_s and seqs[parent] < seq):
                break
            ends[pos], seqs[pos], steps[pos], starts[pos] = parent_end, seqs[parent], steps[parent], starts[parent]
            pos = parent
        ends[pos], seqs[pos], steps[pos], starts[pos] = end_s, seq, step, start_s

    def _pop(self) -> None:
        """Drop the earliest (the last entry moves down from the top)."""
        ends, seqs, steps, starts = self._ends, self._seqs, self._steps, self._starts
        end_s, seq, step, start_s = ends.pop(), seqs.pop(), steps.pop(), starts.pop()
        size = len(ends)
        if not size:
            return
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= size:
                break
            right = child + 1
            if right < size and (ends[right] < ends[child] or (ends[right] == ends[child] and seqs[right] < seqs[child])):
                child = right
            child_end = ends[child]
            if end_s < child_end or (end_s == child_end and seq < seqs[child]):
                break
            ends[pos], seqs[pos], steps[pos], starts[pos] = child_end, seqs[child], steps[child], starts[child]
            pos = child
        ends[pos], seqs[pos], steps[pos], starts[pos] = end_s, seq, step, start_s


def _delay_to(now: float, end_s: float) -> float:
    """A delay that SimPy, adding it to ``now``, turns into ``end_s`` or at most a few ulps
    later: ``end_s - now``, raised by an ulp of ``end_s`` where rounding falls short."""
    delay = max(end_s - now, 0.0)
    step = math.ulp(end_s)
    for _ in range(4):
        if now + delay >= end_s:
            break
        delay += step
    return delay
