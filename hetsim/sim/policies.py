"""Routing policies: plain functions ``(replicas, prefix keys, state, prefix hint) -> replica index``.

What a policy reads of the replicas is in the pool's ``RouterState``: their loads, which of them
hold a prompt's first block, and their prefix caches (``replicas`` is the pool's replica list,
for its length). The hint is a guess of the cached leading keys (-1: none) that a cache checks
in two lookups instead of searching (the engine passes how many keys the call shares with its
session's previous call).
The registry is a dict; an unknown name lists the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hetsim.errors import ScenarioError
from hetsim.sim.prefix_cache import PrefixCache


@dataclass
class RouterState:
    """Per-pool memory a policy reads: round-robin's cursor; ``loads``, each replica's
    outstanding requests (queued + running), kept there by the replicas themselves; and
    ``holders``, which replicas hold each first prefix block (a bitmask the replicas' prefix
    caches keep exact; see ``hetsim.sim.prefix_cache``); ``caches``, each replica's prefix
    cache (None without one), which a prefix-aware policy asks directly (a native call when
    compiled, where a method looked up by name on a replica is generic). A replica joins with
    ``register``, in the order of the pool's replica list."""

    cursor: int = 0
    loads: list[int] = field(default_factory=list)
    holders: dict[object, int] = field(default_factory=dict)
    caches: list[PrefixCache | None] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # per replica, for weighted routing (empty: equal)

    def register(self) -> int:
        """A new replica's slot in ``loads`` and ``caches`` (its bit in ``holders`` is
        ``1 << slot``); a replica with a prefix cache puts it in ``caches[slot]``."""
        self.loads.append(0)
        self.caches.append(None)
        return len(self.loads) - 1


Policy = Callable[[Sequence[object], tuple, RouterState, int], int]


def _least_loaded(loads: list[int]) -> int:
    """Index of the smallest load, the lowest on ties (a loop: compiled, cheaper than ``min``)."""
    best, best_load = 0, loads[0]
    for index in range(1, len(loads)):
        if loads[index] < best_load:
            best, best_load = index, loads[index]
    return best


def round_robin(replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
    index = state.cursor % len(replicas)
    state.cursor += 1
    return index


def least_outstanding(replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
    """Fewest queued + running requests; ties go to the lowest index (deterministic)."""
    return _least_loaded(state.loads)


def prefix_aware(replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
    """Longest cached prefix wins unless that replica is much busier (SGLang's cache-aware
    router balances the same way): a hit is worth up to 4 requests of extra queue.

    The score ``4 * hits / keys - outstanding`` of a replica without the prompt's first block
    is its load alone, so only the (few) replicas holding it (``state.holders``) are scored
    one by one, asking their caches (``state.caches``; each remembers the probe for the
    admission that may follow); the best of the rest is the least loaded. Ties go to the
    lowest index."""
    loads = state.loads
    best = _least_loaded(loads)
    best_score = 0.0 - loads[best]  # scores are floats (float() would be a call)
    if not prefix_keys:
        return best
    holders, weight, index, caches = state.holders.get(prefix_keys[0], 0), 4.0 / len(prefix_keys), 0, state.caches
    while holders:
        if holders & 1:
            cache = caches[index]
            assert cache is not None  # only a replica's cache sets its bit in holders
            score = cache.probe(prefix_keys, hint) * weight - loads[index]
            if score > best_score or (score == best_score and index < best):
                best, best_score = index, score
        holders >>= 1
        index += 1
    return best


def weighted_least_outstanding(
    replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1
) -> int:
    """Fewest outstanding requests per unit of weight, counting the one being placed: the
    router of a stage served by pools on different devices, each replica weighted by its
    pool's share of the stage's capacity (the plan's ``weight`` over its replicas), so a
    replica with twice the weight takes twice the requests under load. Ties: lowest index."""
    loads, weights = state.loads, state.weights
    if not weights:
        return _least_loaded(loads)
    best, best_score = 0, (loads[0] + 1) / weights[0]
    for index in range(1, len(loads)):
        score = (loads[index] + 1) / weights[index]
        if score < best_score:
            best, best_score = index, score
    return best


POLICIES: dict[str, Policy] = {
    "weighted-least-outstanding": weighted_least_outstanding,
    "round-robin": round_robin,
    "least-outstanding": least_outstanding,
    "prefix-aware": prefix_aware,
}


def policy(name: str) -> Policy:
    if name not in POLICIES:
        raise ScenarioError(f"routing policy: expected one of {', '.join(POLICIES)}, got {name!r}")
    return POLICIES[name]
