"""Your own policies in a plan: objects named by dotted path (``package.module:name``).

A pool's ``routing`` and its ``llm.scheduler`` name a built-in policy or, by dotted path, one
you wrote (``hetsim.sim.policies`` and ``hetsim.sim.scheduler`` say what each must do). The
module is imported when the simulation is built, so a wrong path fails before any event runs,
in one line that names it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from hetsim.errors import ScenarioError
from hetsim.sim.scheduler import SCHEDULERS, DecodePriority, ExternalScheduler, Scheduler
from hetsim.specs.plan import is_dotted_path


def load_dotted(path: str, what: str) -> object:
    """The object at ``package.module:name`` (``name`` may be dotted: a class attribute);
    ``what`` names the field in errors."""
    module_name, _, attribute = path.partition(":")
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScenarioError(f"{what} {path!r}: expected an importable module {module_name!r}, got {exc}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ScenarioError(f"{what} {path!r}: expected {module_name!r} to define {attribute!r}, got no {part!r}")
        found = getattr(found, part)
    return found


def find_extension(name: str, registry: Mapping[str, object], field: str, label: str, expected: str) -> object:
    """What a plan's ``name`` stands for: the registered object, or the callable at a dotted
    path (a class is returned as it is, not instantiated). ``field`` names the plan field when
    the name is neither, ``label`` the extension in a dotted path's errors, ``expected`` what it
    must be.

    Raises:
        ScenarioError: an unknown name, a path that does not import, or not a callable.
    """
    if name in registry:
        return registry[name]
    if not is_dotted_path(name):
        raise ScenarioError(f"{field}: expected one of {', '.join(registry)} or a dotted path 'package.module:name', "
                            f"got {name!r}")  # fmt: skip
    found = load_dotted(name, label)
    if not callable(found):
        raise ScenarioError(f"{label} {name!r}: expected {expected}, got {type(found).__name__}")
    return found


def scheduler_factory(name: str, token_budget: int | None = None) -> Callable[[], Scheduler]:
    """What makes a replica's scheduler: a built-in one by name (``token_budget``: a
    decode-priority one's), or yours by dotted path (a class or function called once per
    replica, or an object with ``schedule``, shared)."""
    if name == "decode-priority" and token_budget is not None:
        return lambda: DecodePriority(token_budget)
    if name in SCHEDULERS:
        return SCHEDULERS[name]
    if not is_dotted_path(name):
        raise ScenarioError(
            f"scheduler: expected one of {', '.join(SCHEDULERS)} or a dotted path 'package.module:name', got {name!r}"
        )
    found = load_dotted(name, "scheduler")
    if callable(getattr(found, "schedule", None)) and not isinstance(found, type):
        return lambda: ExternalScheduler(found, name)
    if not callable(found):
        raise ScenarioError(f"scheduler {name!r}: expected a class or an object with schedule(server, now), "
                            f"got {type(found).__name__}")  # fmt: skip
    return lambda: _made(found, name)


def _made(factory: Callable[[], object], name: str) -> Scheduler:
    scheduler = factory()
    if isinstance(scheduler, Scheduler) and type(scheduler).__module__ == Scheduler.__module__:
        return scheduler  # a built-in one (a factory of yours may configure one)
    if not callable(getattr(scheduler, "schedule", None)):
        raise ScenarioError(f"scheduler {name!r}: expected it to make an object with schedule(server, now), "
                            f"got {type(scheduler).__name__}")  # fmt: skip
    return ExternalScheduler(scheduler, name)
