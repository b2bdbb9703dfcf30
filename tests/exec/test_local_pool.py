"""The local executors: every input gets an outcome, in any order; a failure or a dead worker is an error outcome."""

from __future__ import annotations

import os

from hetsim.exec import map_in_process, map_local


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad\nsecond line")
    return x * x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(1)  # the worker process vanishes without a Python exception
    return x


def test_in_process_outcomes_are_in_order_with_failures_as_one_line() -> None:
    outcomes = list(map_in_process(square_or_fail, [1, 2, 3, 4]))
    assert [(o.index, o.value) for o in outcomes] == [(0, 1), (1, 4), (2, None), (3, 16)]
    assert outcomes[2].error == "ValueError: three is bad"


def test_worker_processes_give_the_same_outcomes_in_any_order() -> None:
    pooled = sorted(map_local(square_or_fail, [1, 2, 3, 4], workers=2), key=lambda o: o.index)
    assert pooled == list(map_in_process(square_or_fail, [1, 2, 3, 4]))


def test_a_dead_worker_is_an_error_outcome_not_a_crash() -> None:
    outcomes = sorted(map_local(die_on_two, [1, 2], workers=2), key=lambda o: o.index)
    assert len(outcomes) == 2 and outcomes[1].value is None
    assert outcomes[1].error is not None and outcomes[1].error.startswith("BrokenProcessPool")
