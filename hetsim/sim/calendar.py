"""The simulator's own timers, kept in SimPy's order in a typed heap beside SimPy's event queue.

A million-call run schedules about four timers per LLM call (server iterations, decode runs
and their cuts, tool service ends, think times, KV transfers). As SimPy timeouts, each was an
event object with a callback list, a tuple in SimPy's heap compared item by item, and
interpreted calls: about 4,000 machine instructions to create and as much again to process,
a quarter of the compiled run (callgrind). Here a timer is one small native object and its
callback a native method (``Handler.fire``): about 1,200 instructions from setting to firing.

Each kind of event has a handler object of its own class named for what happens (a server's
``StepEnd``, the engine's ``WorkEnd``), whose ``fire`` calls the one method that handles it:
no dispatch on a kind code.

Nothing of SimPy's semantics is lost: the timers belong to the run's environment
(``hetsim.sim.environment.Environment``, a ``simpy.Environment``), take their sequence numbers
from the same counter as its events, and are merged with its queue by (time, priority,
sequence), a timer having a timeout's priority (NORMAL): events and timers due at the same
instant fire in the order they were scheduled, exactly as if every timer were a timeout, and
``env.now`` is the timer's time when it fires. SimPy processes and events keep working beside
the timers (``tests/sim/test_calendar.py`` runs both against plain timeouts).

The heap is written out (not ``heapq`` on tuples) and holds native objects, so that, compiled,
its comparisons are on C doubles and ints and nothing is boxed while it sifts. Interpreted, the
same sifting is Python bytecode, and ``heapq``'s C functions on ``(time, sequence, ...)`` tuples
are faster (8% of a whole run of the Azure trace): ``new_calendar`` gives each build its heap,
``TupleCalendar`` the interpreted one; both keep the same order (tested side by side).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, Final

import simpy

_NORMAL: Final = 1  # SimPy's priority of a timeout (simpy.events.NORMAL); URGENT (0) goes first
COMPILED: Final = not __file__.endswith(".py")  # this module built by mypyc (HETSIM_COMPILE)


class Handler:
    """What the calendar calls back for one kind of event: ``fire(arg, x, now)`` with the
    values its timer was set with (``now``: the timer's time). A subclass per kind."""

    def fire(self, arg: int, x: float, now: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} is set on the calendar but does not say what it does")


class CallbackHandler(Handler):
    """A handler that calls ``callback(arg, x, now)``: any Python function (compiled, a
    ``Handler`` cannot be subclassed by interpreted code)."""

    def __init__(self, callback: Callable[[int, float, float], None]) -> None:
        self.callback = callback

    def fire(self, arg: int, x: float, now: float) -> None:
        self.callback(arg, x, now)


class _Entry:
    """A timer on the heap (a native object when compiled: its fields are C values, so the
    heap compares them without unboxing and moves entries as pointers)."""

    __slots__ = ("arg", "end", "handler", "seq", "x")

    def __init__(self, end: float, seq: int, handler: Handler, arg: int, x: float) -> None:
        self.end, self.seq, self.handler, self.arg, self.x = end, seq, handler, arg, x


class Calendar:
    """Timers (``at``) and the sequence counter shared with the environment's events."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []  # a binary heap on (end, seq)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def next_seq(self) -> int:
        """The next sequence number (SimPy events scheduled by the environment take theirs here)."""
        self._seq += 1
        return self._seq

    def at(self, end_s: float, handler: Handler, arg: int = 0, x: float = 0.0) -> None:
        """Call ``handler.fire(arg, x, end_s)`` at ``end_s`` (not before the current time)."""
        self._seq += 1
        self._push(_Entry(end_s, self._seq, handler, arg, x))

    def head_s(self) -> float:
        """When the earliest timer fires (there is one)."""
        return self._heap[0].end

    def goes_first(self, queue: list) -> bool:
        """Whether the next thing due is a timer rather than an event of SimPy's ``queue``."""
        return bool(self._heap) and (not queue or self.goes_before(queue[0]))

    def goes_before(self, entry: tuple) -> bool:
        """Whether the earliest timer (there is one) fires before SimPy's queue entry
        ``(time, priority, sequence, event)``."""
        head = self._heap[0]
        return _fires_before(head.end, head.seq, entry)

    def fire_next(self) -> None:
        """Take the earliest timer off the heap and fire it (the caller has set the clock)."""
        head = self._heap[0]
        self._pop()
        head.handler.fire(head.arg, head.x, head.end)

    def _push(self, entry: _Entry) -> None:
        heap = self._heap
        heap.append(entry)
        end, seq = entry.end, entry.seq
        pos = len(heap) - 1
        while pos > 0:  # up while the parent fires later
            parent_pos = (pos - 1) >> 1
            parent = heap[parent_pos]
            if parent.end < end or (parent.end == end and parent.seq < seq):
                break
            heap[pos] = parent
            pos = parent_pos
        heap[pos] = entry

    def _pop(self) -> None:
        """Drop the earliest (the last entry moves down from the top)."""
        heap = self._heap
        last = heap.pop()
        size = len(heap)
        if not size:
            return
        end, seq = last.end, last.seq
        pos = 0
        while True:
            child_pos = 2 * pos + 1
            if child_pos >= size:
                break
            child = heap[child_pos]
            if child_pos + 1 < size:
                right = heap[child_pos + 1]
                if right.end < child.end or (right.end == child.end and right.seq < child.seq):
                    child_pos, child = child_pos + 1, right
            if end < child.end or (end == child.end and seq < child.seq):
                break
            heap[pos] = child
            pos = child_pos
        heap[pos] = last


def _fires_before(end: float, seq: int, entry: tuple) -> bool:
    """Whether a timer at ``end`` (sequence ``seq``) fires before SimPy's queue entry ``(time,
    priority, sequence, event)``: earlier time first; at a tie, as a timeout (NORMAL priority)
    would, in scheduling order."""
    time = entry[0]
    if end != time:
        return end < time
    priority: int = entry[1]
    if priority != _NORMAL:
        return priority > _NORMAL
    sequence: int = entry[2]
    return seq < sequence


class TupleCalendar(Calendar):
    """``Calendar`` on ``heapq`` over ``(end, seq, handler, arg, x)`` tuples: the faster heap when
    interpreted (see the module docstring). Sequence numbers are unique, so a comparison never
    reaches the handler."""

    def __init__(self) -> None:
        super().__init__()
        self._tuples: list[tuple[float, int, Handler, int, float]] = []

    def __len__(self) -> int:
        return len(self._tuples)

    def at(self, end_s: float, handler: Handler, arg: int = 0, x: float = 0.0) -> None:
        self._seq += 1
        heappush(self._tuples, (end_s, self._seq, handler, arg, x))

    def head_s(self) -> float:
        return self._tuples[0][0]

    def goes_first(self, queue: list) -> bool:
        return bool(self._tuples) and (not queue or self.goes_before(queue[0]))

    def goes_before(self, entry: tuple) -> bool:
        head = self._tuples[0]
        return _fires_before(head[0], head[1], entry)

    def fire_next(self) -> None:
        end, _, handler, arg, x = heappop(self._tuples)
        handler.fire(arg, x, end)


def new_calendar() -> Calendar:
    """The calendar of a run: the written-out heap compiled, ``heapq``'s interpreted."""
    return Calendar() if COMPILED else TupleCalendar()


def run_until_empty(env: Any, calendar: Calendar) -> None:
    """``env.run()`` of a ``hetsim.sim.environment.Environment``: timers and SimPy events in
    their merged order until neither is left (the loop compiled with the calendar; SimPy's
    events are processed by SimPy's own ``step``)."""
    queue: list = env._queue
    simpy_step = simpy.Environment.step
    while True:
        if calendar.goes_first(queue):
            env._now = calendar.head_s()
            calendar.fire_next()
        elif queue:
            simpy_step(env)
        else:
            return
