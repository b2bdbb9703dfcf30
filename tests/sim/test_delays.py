"""The delay calendar ends delays as SimPy timeouts would: at the same instants (to an ulp or
two: SimPy's clock cannot always land on a float from another), in the same order, zero delays
after what is already due, with one SimPy event per alarm."""

from __future__ import annotations

import math

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.sim.delays import DelayCalendar, _delay_to

# A delay program: (wait before adding, delay, whether its end adds a follow-up delay, that delay)
programs = st.lists(
    st.tuples(
        st.floats(0, 5, allow_nan=False),
        st.one_of(st.just(0.0), st.sampled_from([0.1, 0.2, 0.3, 1.0]), st.floats(0, 10, allow_nan=False)),
        st.booleans(),
        st.one_of(st.just(0.0), st.floats(0, 3, allow_nan=False)),
    ),
    min_size=1,
    max_size=40,
)


def _run_with_timeouts(program) -> list[tuple[int, float, float]]:
    """The reference: each delay a SimPy timeout; ends as (id, start, end time)."""
    env, ended = simpy.Environment(), []

    def start(ident: int, delay: float, follow: float | None) -> None:
        begun = env.now

        def end(_event) -> None:
            ended.append((ident, begun, env.now))
            if follow is not None:
                start(ident + 1000, follow, None)

        env.timeout(delay).callbacks.append(end)

    def adder():
        for ident, (wait, delay, chained, follow) in enumerate(program):
            yield env.timeout(wait)
            start(ident, delay, follow if chained else None)

    env.process(adder())
    env.run()
    return ended


def _run_with_calendar(program) -> list[tuple[int, float, float]]:
    env, ended, follows = simpy.Environment(), [], {}

    def on_end(ident: int, begun: float, now: float) -> None:
        assert now == env.now
        ended.append((ident, begun, env.now))
        if ident in follows:
            calendar.add(env.now + follows.pop(ident), ident + 1000, env.now)

    calendar = DelayCalendar(env, on_end)

    def adder():
        for ident, (wait, delay, chained, follow) in enumerate(program):
            yield env.timeout(wait)
            if chained:
                follows[ident] = follow
            calendar.add(env.now + delay, ident, env.now)

    env.process(adder())
    env.run()
    return ended


@given(program=programs)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_delays_end_at_the_instants_and_in_the_order_of_simpy_timeouts(program):
    """Only delays here, so even ties among them (equal ends, zero delays) keep SimPy's order."""
    got, expected = _run_with_calendar(program), _run_with_timeouts(program)
    assert [ident for ident, _, _ in got] == [ident for ident, _, _ in expected]
    for (_, begun, end), (_, expected_begun, expected_end) in zip(got, expected, strict=True):
        assert math.isclose(begun, expected_begun, rel_tol=1e-15, abs_tol=1e-300)
        assert expected_end <= end and math.isclose(end, expected_end, rel_tol=1e-15, abs_tol=1e-300)


def test_a_zero_delay_added_while_delays_end_ends_after_those_already_due():
    env, ended = simpy.Environment(), []

    def on_end(ident: int, begun: float, now: float) -> None:
        ended.append(ident)
        if ident == 1:
            calendar.add(env.now, 9, env.now)

    calendar = DelayCalendar(env, on_end)
    calendar.add(2.0, 1, 0.0)
    calendar.add(2.0, 2, 0.0)
    env.run()
    assert ended == [1, 2, 9]
    assert len(calendar) == 0


def test_delays_that_end_after_the_earliest_schedule_no_simpy_event():
    env, scheduled, ended = simpy.Environment(), [], []
    schedule = env.schedule
    env.schedule = lambda event, priority=1, delay=0: (scheduled.append(delay), schedule(event, priority, delay))
    calendar = DelayCalendar(env, lambda ident, begun, now: ended.append(ident))
    for ident in range(500):
        calendar.add(1.0 + ident * 0.1, ident, 0.0)
    assert len(calendar) == 500
    assert len(scheduled) == 1  # the alarm for the earliest
    env.run()
    assert ended == list(range(500))
    assert len(scheduled) == 500  # then one alarm per end


@given(now=st.floats(0, 1e7, allow_nan=False), later=st.floats(0, 1e7, allow_nan=False))
@settings(max_examples=500, deadline=None, derandomize=True)
def test_the_alarm_delay_brings_simpy_to_the_end_or_an_ulp_or_two_later(now, later):
    end = now + later
    delay = _delay_to(now, end)
    assert now + delay >= end
    assert math.isclose(now + delay, end, rel_tol=1e-15, abs_tol=1e-300)
