"""Run a function over inputs in this process or in a pool of local worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What running the function on ``items[index]`` gave: its value, or a one-line error."""

    index: int
    value: Any = None
    error: str | None = None


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (the first line of a multi-line message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def map_in_process(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Outcome]:
    """Call ``fn`` on each item in order, in this process (the reference every executor matches)."""
    for index, item in enumerate(items):
        try:
            yield Outcome(index, fn(item))
        except Exception as exc:  # a task's failure is its outcome, as in a worker process
            yield Outcome(index, error=describe(exc))


def map_local(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[Outcome]:
    """Call ``fn`` on each item in up to ``workers`` processes; outcomes in completion order.

    ``fn`` and the items must be picklable (a module-level function and plain data). Workers
    are spawned, not forked: the caller may run threads (a progress bar), and a fork copies
    whatever locks they hold. ``workers <= 1`` runs in this process.
    """
    workers = min(workers, len(items))
    if workers <= 1:
        yield from map_in_process(fn, items)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    finished = False
    try:
        futures: dict[Future[Any], int] = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            yield _outcome(futures[future], future)
        finished = True
    finally:  # on an interrupt, drop queued work instead of waiting for all of it
        pool.shutdown(wait=finished, cancel_futures=not finished)


def _outcome(index: int, future: Future[Any]) -> Outcome:
    try:
        return Outcome(index, future.result())
    except Exception as exc:  # the task raised, or its worker died (BrokenProcessPool)
        return Outcome(index, error=describe(exc))
