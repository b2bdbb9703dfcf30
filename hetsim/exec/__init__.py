"""Execution on real resources: the real executor of plans (``hetsim run``: engines started as Ray
actors, ``cluster``/``replica_actor``; their command lines, ``engine``; routers, the agent runtime
and its records, ``router``/``runtime``/``records``; engine profiling, ``engine_profile``; deploy
manifests, ``deploy``), and map-style executors that run one picklable function over many inputs,
here, in local worker processes, or as Ray tasks (``pool``, ``ray_sweep``).

This is the only package that imports ray, and only inside functions, so ``import hetsim.exec``
works without the ``exec`` extra (the executor's modules need httpx from it). Each map executor yields an
:class:`~hetsim.exec.pool.Outcome` per input in completion order; callers restore the
input order from ``Outcome.index``. A failed task becomes an Outcome with a one-line error,
so one bad input never loses the others' results.
"""

from hetsim.exec.pool import Outcome, map_in_process, map_local

__all__ = ["Outcome", "map_in_process", "map_local"]
