"""The engine's timers fire as SimPy timeouts would: at the same instants, in the same order
as the events around them (ties in scheduling order, zero delays after what is already due),
with SimPy processes running beside them and ``env.now`` right in every callback; whether the
run is the compiled loop (``run_until_empty``), ``env.run()`` or ``env.run(until=...)``."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.sim.calendar import Calendar, CallbackHandler, Handler, TupleCalendar, run_until_empty
from hetsim.sim.environment import Environment

delays = st.one_of(st.just(0.0), st.sampled_from([0.1, 0.5, 1.0]), st.floats(0, 4, allow_nan=False))
# A program: timers (delay, follow-up delay or None) and processes (their waits)
programs = st.tuples(
    st.lists(st.tuples(delays, st.one_of(st.none(), delays)), max_size=12),
    st.lists(st.lists(delays, max_size=5), max_size=4),
)


def _logger(env: Environment, log: list, follows: dict[int, float]) -> CallbackHandler:
    """A handler that logs (time, label) and may set a follow-up timer."""

    def fire(arg: int, x: float, now: float) -> None:
        assert now == env.now
        log.append((now, f"timer {arg}"))
        if arg in follows:
            env.calendar.at(now + follows.pop(arg), handler, arg + 1000)

    handler = CallbackHandler(fire)
    return handler


def _processes(env: simpy.Environment, waits: list[list[float]], log: list) -> None:
    def walk(name: str, delays: list[float]):
        for index, delay in enumerate(delays):
            yield env.timeout(delay)
            log.append((env.now, f"{name} waited {index}"))

    for index, delays in enumerate(waits):
        env.process(walk(f"p{index}", delays))


def _with_timeouts(program, until: float | None) -> list[tuple[float, str]]:
    """The reference: every timer a SimPy timeout on a plain environment."""
    timers, waits = program
    env, log = simpy.Environment(), []

    def timer(delay: float, ident: int, follow: float | None) -> None:
        def ring(_event) -> None:
            log.append((env.now, f"timer {ident}"))
            if follow is not None:
                timer(follow, ident + 1000, None)

        env.timeout(delay).callbacks.append(ring)

    _processes(env, waits, log)
    for ident, (delay, follow) in enumerate(timers):
        timer(delay, ident, follow)
    env.run(until)
    return log


def _with_calendar(program, how: str, until: float | None, heap: type[Calendar] = Calendar) -> list[tuple[float, str]]:
    timers, waits = program
    env, log = Environment(), []
    env.calendar = heap()  # the written-out heap (compiled runs) or heapq's (interpreted runs)
    follows = {ident: follow for ident, (_, follow) in enumerate(timers) if follow is not None}
    logger = _logger(env, log, follows)
    _processes(env, waits, log)
    for ident, (delay, _) in enumerate(timers):
        env.calendar.at(env.now + delay, logger, ident)
    if how == "compiled loop":
        run_until_empty(env, env.calendar)
    else:
        env.run(until)
    return log


@settings(max_examples=200, deadline=None)
@given(programs)
@pytest.mark.parametrize("how", ["compiled loop", "env.run"])
@pytest.mark.parametrize("heap", [Calendar, TupleCalendar])
def test_timers_fire_as_simpy_timeouts_would(how, heap, program) -> None:
    assert _with_calendar(program, how, None, heap) == _with_timeouts(program, None)


@settings(max_examples=100, deadline=None)
@given(programs, st.floats(0.05, 5))
@pytest.mark.parametrize("heap", [Calendar, TupleCalendar])
def test_a_horizon_stops_timers_as_it_stops_timeouts(heap, program, until) -> None:
    assert _with_calendar(program, "env.run", until, heap) == _with_timeouts(program, until)


def test_peek_sees_the_earlier_of_the_next_timer_and_the_next_event() -> None:
    env = Environment()
    env.timeout(2.0)
    assert env.peek() == 2.0
    env.calendar.at(1.5, _logger(env, [], {}), 0)
    assert env.peek() == 1.5


def test_a_handler_without_a_fire_method_says_so() -> None:
    calendar = Calendar()
    calendar.at(0.0, Handler(), 0)
    with pytest.raises(NotImplementedError, match="Handler is set on the calendar but does not say what it does"):
        calendar.fire_next()


def test_each_kind_of_event_has_a_named_handler_that_gets_its_values() -> None:
    """A handler per kind of event: the calendar calls the one that was set, with its arg and x
    (``CallbackHandler``s here: compiled, ``Handler`` is native and not subclassed by tests)."""
    env, log = Environment(), []

    def arrived(arg: int, x: float, now: float) -> None:
        log.append(("arrived", arg, x, now))

    def left(arg: int, x: float, now: float) -> None:
        log.append(("left", arg, x, now))

    env.calendar.at(2.0, CallbackHandler(left), 7, 0.5)
    env.calendar.at(1.0, CallbackHandler(arrived), 3, 0.25)
    run_until_empty(env, env.calendar)
    assert log == [("arrived", 3, 0.25, 1.0), ("left", 7, 0.5, 2.0)]
