"""Run a function over inputs as Ray tasks: on a running cluster, or on one started here.

Ray is the optional ``exec`` extra; it is imported inside these functions only. Each input
becomes one task (one CPU); outcomes come back in completion order, like ``map_local``.
On a cluster the function's module (hetsim) must be importable on every node, and any
files the inputs name must exist there at the same paths (a shared filesystem).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from types import ModuleType
from typing import Any

from hetsim.errors import ExecutorError
from hetsim.exec.pool import RETRIES, Outcome, describe

LOCAL = "local"
"""``address`` that starts a private Ray instance on this machine for the run (and stops it)."""
DEFAULT_OBJECT_STORE_BYTES = 256 * 1024**2
"""Object store of a local instance: results are small dicts, and Ray's default takes 30% of RAM."""
INSTALL_HINT = "the Ray executor needs the exec extra: pip install 'hetsim[exec]'"


def import_ray() -> ModuleType:
    """The ray module, or an ExecutorError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(INSTALL_HINT) from None
    return ray


def connect(address: str, num_cpus: int | None = None, object_store_bytes: int | None = None) -> bool:
    """Make sure this process is attached to Ray; returns True when this call started the attachment.

    Args:
        address: ``local`` (start an instance here), ``auto`` (the cluster this node belongs
            to) or a cluster address (``host:6379``, ``ray://host:10001``). A process already
            attached (``ray.init`` called earlier) keeps its cluster whatever the address.
        num_cpus: CPUs of a local instance (default: all of this machine's).
        object_store_bytes: object store of a local instance (default 256 MiB).

    Raises:
        ExecutorError: ray is not installed, or the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}  # keep stdout for --json
    if address == LOCAL:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance needs no token
        options |= {"num_cpus": num_cpus, "object_store_memory": object_store_bytes or DEFAULT_OBJECT_STORE_BYTES}
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExecutorError(f"Ray: cannot attach to {address!r}: {describe(exc)}") from None
    return True


def map_on_ray(
    fn: Callable[[Any], Any], items: Sequence[Any], address: str, num_cpus: int | None = None,
    object_store_bytes: int | None = None,
) -> Generator[Outcome, None, None]:
    """Call ``fn`` on each item as a Ray task; outcomes in completion order.

    A task whose worker died is run again by Ray, up to ``RETRIES`` times (as ``map_local``
    does); only then is its outcome the error. Closing the iteration early (Ctrl-C) cancels the
    tasks not yet done. A Ray instance this call started is shut down when the iteration ends;
    one it found running is left alone. Arguments are those of :func:`connect`.
    """
    ray = import_ray()
    started = connect(address, num_cpus, object_store_bytes)
    pending: list[Any] = []
    try:
        task = ray.remote(num_cpus=1, max_retries=RETRIES)(fn)
        refs = {task.remote(item): index for index, item in enumerate(items)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield _outcome(ray, refs[done[0]], done[0])
    finally:
        if pending and not started:  # a cluster's workers would go on with them; a local instance stops anyway
            for ref in pending:
                ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _outcome(ray: ModuleType, index: int, ref: Any) -> Outcome:
    try:
        return Outcome(index, ray.get(ref))
    except ray.exceptions.RayError as exc:  # the task raised (its cause travels with it) or its worker died
        cause = getattr(exc, "cause", None)
        return Outcome(index, error=describe(cause if isinstance(cause, BaseException) else exc))
