"""Ctrl-C (SIGINT) for the ``hetsim`` program: a handler that raises :class:`CtrlC` and remembers
that the signal came.

Python's own handler raises a plain ``KeyboardInterrupt``, which has two flaws for a program that
must exit 130 on Ctrl-C and keep its outputs whole:

- CPython flags a ``KeyboardInterrupt`` that leaves code run by ``exec`` of a string (every
  dataclass's ``__init__`` is made that way, at import) as unhandled; the flag outlives the
  ``except`` that handles it, and the interpreter then kills itself with SIGINT at exit (status
  -2, not 130). The flag compares the exception's type with ``KeyboardInterrupt`` exactly, so a
  subclass never sets it.
- a library's bare ``except:`` (networkx's lazy import has one) can swallow the exception; the
  command would then run on and write its outputs. Remembering the signal lets the output writer
  and the program's end stop anyway (:func:`stop_if_received`).
- where Python cannot raise it (a weakref callback or ``__del__`` that the garbage collector
  runs), it prints "Exception ignored in ..." and a traceback, then goes on: hetsim's hook for
  such exceptions says nothing of a :class:`CtrlC` (the signal is remembered and the program stops
  at its next check) and hands every other one to Python's.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class CtrlC(KeyboardInterrupt):
    """Ctrl-C, raised by :func:`install`'s handler."""


_received: list[int] = []


def install() -> None:
    """Make Ctrl-C raise :class:`CtrlC` in the main thread and be remembered (the program's entry
    point calls this first; a library import does not)."""
    if threading.current_thread() is threading.main_thread():
        _received.clear()
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _unraisable


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Python's hook for an exception it could not raise, quiet for a remembered Ctrl-C."""
    if isinstance(unraisable.exc_value, CtrlC):
        return
    sys.__unraisablehook__(unraisable)


def _on_sigint(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    raise CtrlC


def received() -> bool:
    """Whether Ctrl-C came since :func:`install` (never, where it was not installed)."""
    return bool(_received)


def acknowledge() -> None:
    """The Ctrl-C that came has been handled by code that goes on on purpose (a sweep keeping
    the points that finished): it no longer stops the outputs that code writes."""
    _received.clear()


@contextmanager
def python_handler() -> Iterator[None]:
    """Python's own Ctrl-C handler for the block, hetsim's again after it: ``asyncio.run``
    turns Ctrl-C into cancelling its main task (which cleans up) only under Python's handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_if_received() -> None:
    """Raise :class:`CtrlC` when a Ctrl-C came and was swallowed on its way (the command must not
    go on as if it had not been pressed).

    Raises:
        CtrlC: a Ctrl-C came since :func:`install`.
    """
    if _received:
        raise CtrlC
