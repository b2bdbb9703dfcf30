"""The simulator's own timers, kept in SimPy's order in a typed heap beside SimPy's event queue.

A million-call run schedules about four timers per LLM call (server iterations, decode runs
and their cuts, tool service ends, think times, KV transfers). As SimPy timeouts, each was an
event object with a callback list, a tuple in SimPy's heap compared item by item, and two
interpreted calls: about 7,500 machine instructions, over a quarter of the run. Here a timer is
a row of six native values and its callback a native method (``Timer.fire``), at a tenth of
that cost.

Nothing of SimPy's semantics is lost: the timers belong to the run's environment
(``hetsim.sim.environment.Environment``, a ``simpy.Environment``), take their sequence numbers
from the same counter as its events, and are merged with its queue by (time, priority,
sequence), a timer having a timeout's priority (NORMAL): events and timers due at the same
instant fire in the order they were scheduled, exactly as if every timer were a timeout, and
``env.now`` is the timer's time when it fires. SimPy processes and events keep working beside
the timers (``tests/sim/test_calendar.py`` runs both against plain timeouts).

The heap is written out (not ``heapq`` on tuples) so that, compiled, its comparisons are on
native floats and ints.
"""

from __future__ import annotations

from typing import Any

import simpy

_NORMAL = 1  # SimPy's priority of a timeout (simpy.events.NORMAL); URGENT (0) goes first


class Timer:
    """What the calendar calls back: ``fire(kind, arg, x, now)`` with the values a timer was
    set with; subclasses say what each ``kind`` means."""

    def fire(self, kind: int, arg: int, x: float, now: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} sets timers but does not say how they fire")


class Calendar:
    """Timers (``at``) and the sequence counter shared with the environment's events."""

    def __init__(self) -> None:
        # A binary heap on (end, seq) held in parallel lists.
        self._ends: list[float] = []
        self._seqs: list[int] = []
        self._timers: list[Timer] = []
        self._kinds: list[int] = []
        self._args: list[int] = []
        self._xs: list[float] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._ends)

    def next_seq(self) -> int:
        """The next sequence number (SimPy events scheduled by the environment take theirs here)."""
        self._seq += 1
        return self._seq

    def at(self, end_s: float, timer: Timer, kind: int, arg: int = 0, x: float = 0.0) -> None:
        """Call ``timer.fire(kind, arg, x, end_s)`` at ``end_s`` (not before the current time)."""
        self._seq += 1
        self._push(end_s, self._seq, timer, kind, arg, x)

    def head_s(self) -> float:
        """When the earliest timer fires (there is one)."""
        return self._ends[0]

    def goes_before(self, entry: tuple) -> bool:
        """Whether the earliest timer (there is one) fires before SimPy's queue entry
        ``(time, priority, sequence, event)``."""
        end, time = self._ends[0], entry[0]
        if end != time:
            return end < time
        priority: int = entry[1]
        if priority != _NORMAL:
            return priority > _NORMAL
        sequence: int = entry[2]
        return self._seqs[0] < sequence

    def fire_next(self) -> None:
        """Take the earliest timer off the heap and fire it (the caller has set the clock)."""
        end, timer, kind, arg, x = self._ends[0], self._timers[0], self._kinds[0], self._args[0], self._xs[0]
        self._pop()
        timer.fire(kind, arg, x, end)

    def _push(self, end_s: float, seq: int, timer: Timer, kind: int, arg: int, x: float) -> None:
        ends, seqs, timers, kinds, args, xs = self._ends, self._seqs, self._timers, self._kinds, self._args, self._xs
        ends.append(end_s)
        seqs.append(seq)
        timers.append(timer)
        kinds.append(kind)
        args.append(arg)
        xs.append(x)
        pos = len(ends) - 1
        while pos > 0:  # up while the parent fires later
            parent = (pos - 1) >> 1
            parent_end = ends[parent]
            if parent_end < end_s or (parent_end == end_s and seqs[parent] < seq):
                break
            ends[pos], seqs[pos], timers[pos] = parent_end, seqs[parent], timers[parent]
            kinds[pos], args[pos], xs[pos] = kinds[parent], args[parent], xs[parent]
            pos = parent
        ends[pos], seqs[pos], timers[pos], kinds[pos], args[pos], xs[pos] = end_s, seq, timer, kind, arg, x

    def _pop(self) -> None:
        """Drop the earliest (the last entry moves down from the top)."""
        ends, seqs, timers, kinds, args, xs = self._ends, self._seqs, self._timers, self._kinds, self._args, self._xs
        end_s, seq, timer, kind, arg, x = ends.pop(), seqs.pop(), timers.pop(), kinds.pop(), args.pop(), xs.pop()
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
            ends[pos], seqs[pos], timers[pos] = child_end, seqs[child], timers[child]
            kinds[pos], args[pos], xs[pos] = kinds[child], args[child], xs[child]
            pos = child
        ends[pos], seqs[pos], timers[pos], kinds[pos], args[pos], xs[pos] = end_s, seq, timer, kind, arg, x


def run_until_empty(env: Any, calendar: Calendar) -> None:
    """``env.run()`` of a ``hetsim.sim.environment.Environment``: timers and SimPy events in
    their merged order until neither is left (the loop compiled with the calendar; SimPy's
    events are processed by SimPy's own ``step``)."""
    queue: list = env._queue
    simpy_step = simpy.Environment.step
    while True:
        if len(calendar):
            if queue and not calendar.goes_before(queue[0]):
                simpy_step(env)
                continue
            env._now = calendar.head_s()
            calendar.fire_next()
        elif queue:
            simpy_step(env)
        else:
            return
