"""Routing policies: plain functions ``(replicas, prefix keys, state, prefix hint) -> replica index``.

What a policy reads of the replicas is in the pool's ``RouterState``: their loads, which of them
hold a prompt's first block, and their prefix caches (``replicas`` is the pool's replica list,
for its length). The hint is a guess of the cached leading keys (-1: none) that a cache checks
in two lookups instead of searching (the engine passes how many keys the call shares with its
session's previous call).
The registry is a dict; an unknown name lists the choices. A plan may also name a policy of
your own by dotted path (``package.module:name``): a function with the signature above, or a
class whose instances are (one per pool and stage); its answers are checked (``CheckedPolicy``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from hetsim.errors import ScenarioError
from hetsim.sim.extensions import find_extension
from hetsim.sim.prefix_cache import PrefixCache

OFFLINE_LOAD: Final = 1 << 40
"""Added to the load (and token load) of a replica that is not serving (an autoscaled pool's
replica that is off, starting or draining; ``hetsim.sim.autoscale``): every policy that reads
loads passes it over while any replica serves, and round-robin skips it."""


@dataclass
class RouterState:
    """Per-pool memory a policy reads: round-robin's cursor; ``loads``, each replica's
    outstanding requests (queued + running), kept there by the replicas themselves;
    ``token_loads``, their tokens (prompt + output of each; 0 on non-LLM replicas); and
    ``holders``, which replicas hold each first prefix block (a bitmask the replicas' prefix
    caches keep exact; see ``hetsim.sim.prefix_cache``); ``caches``, each replica's prefix
    cache (None without one), which a prefix-aware policy asks directly (a native call when
    compiled, where a method looked up by name on a replica is generic). A replica joins with
    ``register``, in the order of the pool's replica list."""

    cursor: int = 0
    loads: list[int] = field(default_factory=list)
    token_loads: list[int] = field(default_factory=list)
    holders: dict[object, int] = field(default_factory=dict)
    caches: list[PrefixCache | None] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # per replica, for weighted routing (empty: equal)
    adapter: str | None = None  # the LoRA adapter of the call being placed (set by the engine)
    adapter_holders: dict[str, int] = field(default_factory=dict)  # adapter -> bitmask of replicas holding it

    def register(self) -> int:
        """A new replica's slot in ``loads`` and ``caches`` (its bit in ``holders`` is
        ``1 << slot``); a replica with a prefix cache puts it in ``caches[slot]``."""
        self.loads.append(0)
        self.token_loads.append(0)
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
    """The next replica in turn, passing over those not serving (``OFFLINE_LOAD``)."""
    size, loads = len(replicas), state.loads
    for _ in range(size):
        index = state.cursor % size
        state.cursor += 1
        if loads[index] < OFFLINE_LOAD:
            return index
    return state.cursor % size


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


def least_outstanding_tokens(replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
    """Token-weighted join-shortest-queue: the fewest outstanding tokens (prompt + output of the
    calls queued or running there, ``state.token_loads``), then the fewest calls, then the
    lowest index. Request routers weigh load by tokens this way, as NVIDIA Dynamo's KV router
    costs a worker by its active blocks plus the prefill blocks a request adds
    (ai-dynamo/dynamo ``docs/router/README.md``, "Cost Function", with no overlap weight); the
    call's output stands in for the ``max_tokens`` a router sees."""
    tokens, loads = state.token_loads, state.loads
    best = 0
    best_tokens, best_load = tokens[0], loads[0]
    for index in range(1, len(tokens)):
        here = tokens[index]
        if here < best_tokens or (here == best_tokens and loads[index] < best_load):
            best, best_tokens, best_load = index, here, loads[index]
    return best


ADAPTER_AFFINITY_SLACK: Final = 4
"""Outstanding requests a replica holding the call's adapter may have beyond the least loaded
one and still take the call (the same worth prefix-aware gives a full prefix hit)."""


def adapter_affinity(replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
    """LoRA-aware join-shortest-queue: the least loaded replica holding the call's adapter (in
    a GPU slot or being loaded; ``state.adapter_holders``, which the replicas keep exact),
    unless it has more than ``ADAPTER_AFFINITY_SLACK`` requests beyond the least loaded of
    all, which then takes the call (and loads the adapter). Loading an adapter costs a copy
    over the host link and a slot; a holder saves both, as S-LoRA's and vLLM production
    stack's LoRA-aware routers weigh it (Sheng et al., arXiv 2311.03285, section 6). A call
    without an adapter, or whose adapter no replica holds, goes to the least loaded. Ties:
    lowest index."""
    loads = state.loads
    best = _least_loaded(loads)
    adapter = state.adapter
    if adapter is None:
        return best
    holders, index, chosen, chosen_load = state.adapter_holders.get(adapter, 0), 0, -1, 0
    while holders:
        if holders & 1 and (chosen < 0 or loads[index] < chosen_load):
            chosen, chosen_load = index, loads[index]
        holders >>= 1
        index += 1
    if chosen >= 0 and chosen_load - loads[best] <= ADAPTER_AFFINITY_SLACK:
        return chosen
    return best


POLICIES: dict[str, Policy] = {
    "weighted-least-outstanding": weighted_least_outstanding,
    "round-robin": round_robin,
    "least-outstanding": least_outstanding,
    "prefix-aware": prefix_aware,
    "least-outstanding-tokens": least_outstanding_tokens,
    "adapter-affinity": adapter_affinity,
}


class CheckedPolicy:
    """A policy of your own (a dotted path), its answer checked: an index into the replicas."""

    def __init__(self, function: Callable[..., object], name: str) -> None:
        self.function, self.name = function, name

    def __call__(self, replicas: Sequence[object], prefix_keys: tuple, state: RouterState, hint: int = -1) -> int:
        index = self.function(replicas, prefix_keys, state, hint)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(replicas):
            raise ScenarioError(
                f"routing policy {self.name!r}: expected a replica index from 0 to {len(replicas) - 1}, got {index!r:.40}"
            )
        if state.loads[index] >= OFFLINE_LOAD and min(state.loads) < OFFLINE_LOAD:
            raise ScenarioError(f"routing policy {self.name!r}: expected a serving replica, got {index}, which is "
                                f"not serving (autoscaled: its load carries OFFLINE_LOAD)")  # fmt: skip
        return index


def policy(name: str) -> Policy:
    """The routing policy a plan names: a registered one, or one of yours by dotted path (a
    class is instantiated here, so each pool gets its own)."""
    if name in POLICIES:
        return POLICIES[name]
    found = find_policy(name)
    if isinstance(found, type):
        found = found()
    return CheckedPolicy(found, name)  # type: ignore[arg-type]


def find_policy(name: str) -> object:
    """What a policy name stands for, checked (a registered function, or the function or class
    at a dotted path); nothing is instantiated."""
    return find_extension(name, POLICIES, "routing policy", "routing policy",
                          "a function (replicas, prefix_keys, state, hint) -> index or a class of them")  # fmt: skip
