"""The prefix cache against a plain LRU list with vLLM's order: a use moves the prompt's cached
blocks to the most recent end tail first, so a prompt's head outlives its tail."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from hetsim.sim.prefix_cache import PrefixCache


class ReferenceLru:
    """Every block visited on every use (what the cache must equal)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.keys = capacity, OrderedDict()

    def leading(self, keys: tuple) -> int:
        hits = 0
        for key in keys:
            if key not in self.keys:
                break
            hits += 1
        return hits

    def use_leading(self, keys: tuple) -> int:
        hits = self.leading(keys)
        for key in reversed(keys[:hits]):
            self.keys.move_to_end(key)
        return hits

    def remember(self, keys: tuple) -> None:
        for key in reversed(keys):
            self.keys[key] = None
            self.keys.move_to_end(key)
        self.fit(self.capacity)

    def fit(self, capacity: int) -> None:
        self.capacity = capacity
        while len(self.keys) > self.capacity:
            self.keys.popitem(last=False)


# An operation: (use or remember, which earlier prompt to extend, how much of it to keep, new blocks,
# the hint use or remember gets: any number, right, stale or wrong; -2: remember gets what leading says).
operations = st.lists(
    st.tuples(st.booleans(), st.integers(0, 1000), st.floats(0, 1), st.integers(0, 6), st.integers(-2, 8)),
    min_size=1,
    max_size=120,
)


@given(capacity=st.integers(1, 40), ops=operations)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_prefix_cache_evicts_and_hits_exactly_as_an_lru_list_in_vllm_order(capacity, ops):
    cache, reference = PrefixCache(capacity), ReferenceLru(capacity)
    prompts: list[tuple] = [()]
    fresh = 0
    for is_use, base, keep, new, hint in ops:
        parent = prompts[base % len(prompts)]
        prompt = parent[: round(keep * len(parent))] + tuple(range(fresh, fresh + new))
        fresh += new
        prompts.append(prompt)
        assert cache.leading(prompt) == reference.leading(prompt)
        if is_use:
            assert cache.use_leading(prompt, hint) == reference.use_leading(prompt)
        else:
            cache.remember(prompt, hint if hint > -2 else cache.leading(prompt))
            reference.remember(prompt)
        assert set(cache.nodes) == set(reference.keys)
        assert len(cache) <= capacity


def test_a_remembered_prompt_is_found_whole_and_a_longer_one_by_its_prefix():
    cache = PrefixCache(100)
    cache.remember((1, 2, 3))
    assert cache.leading((1, 2, 3)) == 3
    assert cache.leading((1, 2, 3, 4, 5)) == 3
    assert cache.leading((1, 2)) == 2
    assert cache.leading((7, 2, 3)) == 0
    assert cache.leading(()) == 0


def test_the_tail_of_a_prompt_is_evicted_before_its_head():
    cache = PrefixCache(3)
    cache.remember((1, 2, 3))
    cache.remember((9,))
    assert set(cache.nodes) == {1, 2, 9}
    assert cache.leading((1, 2, 3)) == 2


def _linked(cache: PrefixCache) -> list:
    """Keys in the cache's touch-ordered list, least recent first."""
    keys, node = [], cache._list.next
    while node is not cache._list:
        keys.append(node.key)
        node = node.next
    return keys


def test_repeated_uses_keep_one_list_entry_per_block_and_order_by_the_latest_touch():
    cache = PrefixCache(1000)
    cache.remember((1, 2))
    cache.remember((7,))
    for _ in range(10_000):
        cache.use_leading((1, 2))
    assert _linked(cache) == [7, 2]
    cache.use_leading((1,))  # an inner block touched on its own: linked, more recent than its leaf
    assert _linked(cache) == [7, 2, 1]


@given(capacities=st.lists(st.integers(1, 12), min_size=1, max_size=4), ops=operations, picks=st.lists(st.integers(0, 3)))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_shared_first_block_holders_name_exactly_the_caches_holding_each_first_block(capacities, ops, picks):
    holders: dict = {}
    caches = [PrefixCache(capacity, holders, 1 << index) for index, capacity in enumerate(capacities)]
    prompts: list[tuple] = [()]
    fresh = 0
    for step, (is_use, base, keep, new, _) in enumerate(ops):
        parent = prompts[base % len(prompts)]
        prompt = parent[: round(keep * len(parent))] + tuple(range(fresh, fresh + new))
        fresh += new
        prompts.append(prompt)
        cache = caches[picks[step % len(picks)] % len(caches) if picks else 0]
        if is_use:
            cache.use_leading(prompt)
        else:
            cache.remember(prompt)
        firsts = {prompt[0] for prompt in prompts if prompt}
        expected = {
            first: sum(1 << index for index, c in enumerate(caches) if first in c.nodes) for first in firsts
        }
        assert holders == {first: mask for first, mask in expected.items() if mask}


@given(ops=operations, capacities=st.lists(st.integers(0, 30), min_size=1, max_size=120))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_a_cache_fitted_to_the_free_kv_blocks_evicts_exactly_as_an_lru_list(ops, capacities):
    """Free KV blocks come and go with the running sequences; the cache follows them, least recent first."""
    cache, reference = PrefixCache(capacities[0]), ReferenceLru(capacities[0])
    prompts: list[tuple] = [()]
    fresh = 0
    for step, (is_use, base, keep, new, _) in enumerate(ops):
        parent = prompts[base % len(prompts)]
        prompt = parent[: round(keep * len(parent))] + tuple(range(fresh, fresh + new))
        fresh += new
        prompts.append(prompt)
        before = len(cache)
        capacity = capacities[step % len(capacities)]
        cache.fit(capacity)
        reference.fit(capacity)
        assert cache.evicted >= 0 and len(cache) == min(before, capacity)
        if is_use:
            assert cache.use_leading(prompt) == reference.use_leading(prompt)
        else:
            cache.remember(prompt)
            reference.remember(prompt)
        assert set(cache.nodes) == set(reference.keys)


def test_fitting_to_nothing_empties_the_cache_and_its_holders():
    holders: dict = {}
    cache = PrefixCache(10, holders, 1)
    cache.remember((1, 2, 3))
    cache.remember((1, 4))
    cache.remember((5,))
    cache.fit(0)
    assert len(cache) == 0 and holders == {} and cache.evicted == 5
    cache.fit(10)
    cache.remember((1, 2))
    assert cache.leading((1, 2, 3)) == 2
