"""The router in front of one pool: picks a healthy replica by the plan's policy, counts what
is outstanding on each, and takes replicas out of rotation while they are down.

The policies are the simulator's (``hetsim.sim.policies``), applied to what a router can see:
round robin; least outstanding (fewest calls in flight, lowest index on ties); prefix aware
(longest prompt prefix this router has sent to a replica, worth up to 4 outstanding calls, as
SGLang's cache-aware router balances; the memory of sent prefixes is bounded and least
recently used is forgotten first).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from hetsim.errors import ExecutorError
from hetsim.specs.plan import RoutingPolicy

EXECUTED_POLICIES = (RoutingPolicy.ROUND_ROBIN, RoutingPolicy.LEAST_OUTSTANDING, RoutingPolicy.PREFIX_AWARE)
"""The policies this router implements."""
PREFIX_MEMORY_KEYS = 65536
"""Prompt blocks a prefix-aware router remembers per replica."""
PREFIX_HIT_WEIGHT = 4.0


@dataclass
class RouteSlot:
    """A replica as its router sees it."""

    index: int
    url: str | None
    outstanding: int = 0
    generation: int = 0
    """Times the replica came back into rotation: a call sent before then that fails later
    speaks of the engine that was, not of this one."""
    prefixes: OrderedDict[int, None] = field(default_factory=OrderedDict)

    @property
    def healthy(self) -> bool:
        return self.url is not None


class Router:
    """Replica choice for one pool; ``acquire`` waits (bounded) while no replica is healthy."""

    def __init__(self, pool: str, policy: RoutingPolicy | str, urls: Sequence[str | None]) -> None:
        if policy not in EXECUTED_POLICIES:
            choices = ", ".join(EXECUTED_POLICIES)
            raise ExecutorError(f"pool {pool!r}: routing: expected one of {choices}, got {policy!r} (the router of "
                                "hetsim run implements these; the others are simulated only)")  # fmt: skip
        self.policy = RoutingPolicy(policy)
        self.pool = pool
        self.slots = [RouteSlot(i, url) for i, url in enumerate(urls)]
        self._cursor = 0
        self._healthy = asyncio.Event()
        if any(s.healthy for s in self.slots):
            self._healthy.set()

    def choose(self, keys: tuple[int, ...] = ()) -> RouteSlot | None:
        """The replica for a call whose prompt has block ``keys``; None when none is healthy."""
        live = [s for s in self.slots if s.healthy]
        if not live:
            return None
        if self.policy == RoutingPolicy.ROUND_ROBIN:
            slot = live[self._cursor % len(live)]
            self._cursor += 1
        elif self.policy == RoutingPolicy.PREFIX_AWARE and keys:
            slot = max(live, key=lambda s: (_prefix_hits(s, keys) * PREFIX_HIT_WEIGHT / len(keys) - s.outstanding, -s.index))
        else:
            slot = min(live, key=lambda s: (s.outstanding, s.index))
        return slot

    async def acquire(self, keys: tuple[int, ...], wait_s: float) -> RouteSlot | None:
        """Choose a replica and count the call on it; waits up to ``wait_s`` for one to be
        healthy. None when none came back in time."""
        slot = self.choose(keys)
        if slot is None:
            try:
                await asyncio.wait_for(self._healthy.wait(), timeout=wait_s)
            except TimeoutError:
                return None
            slot = self.choose(keys)
            if slot is None:
                return None
        slot.outstanding += 1
        if self.policy == RoutingPolicy.PREFIX_AWARE:
            _remember(slot, keys)
        return slot

    @staticmethod
    def release(slot: RouteSlot) -> None:
        slot.outstanding -= 1

    def mark_down(self, slot: RouteSlot, generation: int) -> bool:
        """Take a replica out of rotation after a call sent in ``generation`` failed; True when
        it was in and has not come back since (the first caller to see this engine fail)."""
        if slot.url is None or slot.generation != generation:
            return False
        slot.url = None
        slot.prefixes.clear()  # a restarted engine starts with an empty cache
        if not any(s.healthy for s in self.slots):
            self._healthy.clear()
        return True

    def mark_up(self, slot: RouteSlot, url: str) -> None:
        slot.url = url
        slot.generation += 1
        self._healthy.set()


def _prefix_hits(slot: RouteSlot, keys: tuple[int, ...]) -> int:
    hits = 0
    for key in keys:
        if key not in slot.prefixes:
            break
        hits += 1
    return hits


def _remember(slot: RouteSlot, keys: tuple[int, ...]) -> None:
    memory = slot.prefixes
    for key in keys:
        memory[key] = None
        memory.move_to_end(key)
    while len(memory) > PREFIX_MEMORY_KEYS:
        memory.popitem(last=False)
