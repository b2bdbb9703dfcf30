"""The local executors: every input gets an outcome, in any order; a failure is an error outcome;
a dead worker's input is run again on a fresh worker, and fails alone only when it keeps killing it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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


def killed_once(item: tuple[int, str]) -> int:
    """Kills its worker (SIGKILL, as the OOM killer would) the first time it runs ``item``."""
    value, marker = item
    if value == 2 and not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def slow(x: int) -> int:
    time.sleep(600)  # far past the hang guard below
    return x


def test_a_worker_killed_once_has_its_input_run_again_and_the_others_are_untouched(tmp_path: Path) -> None:
    marker = str(tmp_path / "killed")
    outcomes = sorted(map_local(killed_once, [(v, marker) for v in (1, 2, 3, 4)], workers=2), key=lambda o: o.index)
    assert Path(marker).exists()  # the worker did die
    assert [(o.value, o.error) for o in outcomes] == [(1, None), (2, None), (3, None), (4, None)]


def test_an_input_that_kills_every_worker_fails_alone_after_its_retries() -> None:
    outcomes = sorted(map_local(die_on_two, [1, 2, 3], workers=2, retries=1), key=lambda o: o.index)
    assert [o.value for o in outcomes] == [1, None, 3]
    assert outcomes[1].error == "worker died (exit code 1) on each of 2 tries"


def test_closing_the_outcomes_early_stops_every_worker() -> None:
    outcomes = map_local(slow, [1, 2], workers=2)
    with pytest.raises(TimeoutError), alarm(1):
        next(outcomes)
    with alarm(30):  # a hang guard: close stops the workers, it does not wait for their inputs
        outcomes.close()
    assert multiprocessing.active_children() == []


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the main thread after ``seconds`` (as Ctrl-C interrupts a wait)."""

    def fire(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_worker_killed_while_idle_is_replaced_and_every_input_still_runs() -> None:
    outcomes = map_local(abs, [-1, -2, -3, -4], workers=2)
    first = next(outcomes)
    for child in multiprocessing.active_children():  # both workers: one idle, one busy or idle
        os.kill(child.pid, signal.SIGKILL)
    rest = list(outcomes)
    assert sorted(o.value for o in [first, *rest]) == [1, 2, 3, 4] and all(o.error is None for o in rest)
