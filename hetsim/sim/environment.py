"""The simulation's SimPy environment: a ``simpy.Environment`` that also fires the engine's
timers (``hetsim.sim.calendar``), merged with its events in SimPy's order.

It overrides the three places that order events: ``schedule`` (its events take their sequence
numbers from the calendar's counter, so timers and events share one order), ``step`` and
``peek`` (the earlier of the next timer and the next event). Everything else, processes,
``run(until=...)``, ``now``, is SimPy's. The engine's run without a horizon drives the same
merge from a compiled loop (``hetsim.sim.calendar.run_until_empty``).
"""

from __future__ import annotations

from heapq import heappush

import simpy
from simpy.events import NORMAL

from hetsim.sim.calendar import new_calendar


class Environment(simpy.Environment):
    """A SimPy environment with a ``calendar`` of timers (see the module docstring)."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.calendar = new_calendar()

    def schedule(self, event: simpy.Event, priority=NORMAL, delay: float = 0) -> None:
        heappush(self._queue, (self._now + delay, priority, self.calendar.next_seq(), event))

    def peek(self) -> float:
        if self.calendar.goes_first(self._queue):
            return self.calendar.head_s()
        return super().peek()

    def step(self) -> None:
        if self.calendar.goes_first(self._queue):
            self._now = self.calendar.head_s()
            self.calendar.fire_next()
            return
        super().step()
