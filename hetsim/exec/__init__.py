"""Executors: run one picklable function over many inputs, here, in local worker processes,
or as Ray tasks.

This is the only package that imports ray, and only inside functions (``ray_sweep``), so
``import hetsim.exec`` works without the ``exec`` extra. Each executor yields an
:class:`~hetsim.exec.pool.Outcome` per input in completion order; callers restore the
input order from ``Outcome.index``. A failed task becomes an Outcome with a one-line error,
so one bad input never loses the others' results.
"""

from hetsim.exec.pool import Outcome, map_in_process, map_local

__all__ = ["Outcome", "map_in_process", "map_local"]
