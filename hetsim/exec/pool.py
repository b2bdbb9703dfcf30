"""Run a function over inputs in this process or in a pool of local worker processes.

The pool hands each worker one input at a time, so it always knows which input a worker holds:
when a worker dies (killed, out of memory, a crash in native code) only that input is lost, and
it is given to a fresh worker again, up to ``retries`` more times; the other inputs never notice.
Workers ignore Ctrl-C (the terminal sends it to the whole process group): the caller's process
gets it, and the pool stops its workers on the way out.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

RETRIES = 2
"""How many more times an input whose worker died is run (on a fresh worker) before it fails."""
_STOP_WAIT_S = 5.0


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


def map_local(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, retries: int = RETRIES) -> Generator[Outcome, None, None]:
    """Call ``fn`` on each item in up to ``workers`` processes; outcomes in completion order.

    ``fn`` and the items must be picklable (a module-level function and plain data). Workers
    are spawned, not forked: the caller may run threads (a progress bar), and a fork copies
    whatever locks they hold. ``workers <= 1`` runs in this process. An item whose worker died
    is run again on a fresh worker, up to ``retries`` times; then its outcome is the error.
    Closing the iterator early (or an exception in the caller, Ctrl-C) stops every worker.
    """
    workers = min(workers, len(items))
    if workers <= 1:
        yield from map_in_process(fn, items)
        return
    pool = _Pool(fn, items, workers, retries)
    try:
        yield from pool.outcomes()
    finally:
        pool.stop()


class _Worker:
    """One spawned process and the pipe it takes inputs from and answers on."""

    def __init__(self, context: Any, fn: Callable[[Any], Any]) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, fn), daemon=True)
        with _ctrl_c_blocked():  # the child inherits the block and ignores Ctrl-C before it lifts it
            self.process.start()
        child.close()
        self.index: int | None = None
        """The input it is running, if any."""

    def give(self, index: int, item: Any) -> None:
        self.index = index
        with suppress(OSError):  # it died while idle: its sentinel says so at the next wait
            self.conn.send((index, item))

    def death(self) -> str:
        self.process.join(_STOP_WAIT_S)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def stop(self, gracefully: bool) -> None:
        if gracefully and self.process.is_alive():
            with suppress(OSError):  # it is gone already
                self.conn.send(None)
            self.process.join(_STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_STOP_WAIT_S)
        self.conn.close()


class _Pool:
    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any], workers: int, retries: int) -> None:
        self.fn, self.items, self.retries = fn, items, retries
        self.context = multiprocessing.get_context("spawn")
        self.todo: deque[int] = deque(range(len(items)))
        self.tries = [0] * len(items)
        self.workers = [_Worker(self.context, fn) for _ in range(workers)]
        self.finished = False

    def outcomes(self) -> Iterator[Outcome]:
        left = len(self.items)
        while left:
            for worker in self.workers:
                if worker.index is None and self.todo:
                    index = self.todo.popleft()
                    self.tries[index] += 1
                    worker.give(index, self.items[index])
            busy = [w for w in self.workers if w.index is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    outcome = self._collect(worker)
                    if outcome is not None:
                        left -= 1
                        yield outcome
        self.finished = True

    def _collect(self, worker: _Worker) -> Outcome | None:
        """The worker's answer; or, when it died, None after queueing its input again (or its failure)."""
        index = worker.index
        assert index is not None
        try:
            if worker.conn.poll():
                answered, value, error = worker.conn.recv()
                worker.index = None
                return Outcome(answered, value, error)
        except (EOFError, OSError):
            pass
        why = worker.death()
        self.workers.remove(worker)
        worker.stop(gracefully=False)
        outcome = None
        if self.tries[index] <= self.retries:
            self.todo.appendleft(index)
        else:
            outcome = Outcome(index, error=f"worker died ({why}) on each of {self.tries[index]} tries")
        if self.todo:
            self.workers.append(_Worker(self.context, self.fn))
        return outcome

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(gracefully=self.finished)


@contextmanager
def _ctrl_c_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for the block; one that came is delivered after it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _serve(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """A worker's loop: run ``fn`` on each input received, answer ``(index, value, error)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the spawn; now ignored
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        index, item = task
        try:
            answer = (index, fn(item), None)
        except Exception as exc:  # a task's failure is its outcome
            answer = (index, None, describe(exc))
        try:
            conn.send(answer)
        except Exception as exc:  # the value cannot be pickled
            conn.send((index, None, describe(exc)))
