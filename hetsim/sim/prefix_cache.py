"""A replica's prefix cache: KV blocks kept after a call, reused by later calls that share
the prompt's leading blocks (vLLM's automatic prefix caching), evicted least recently used."""

from __future__ import annotations

from collections import OrderedDict
from itertools import takewhile


class PrefixCache:
    """Block keys in LRU order (``keys``: key -> None, oldest first), at most ``capacity``."""

    __slots__ = ("capacity", "keys")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys: OrderedDict = OrderedDict()

    def leading(self, keys: tuple) -> int:
        """How many leading ``keys`` are cached."""
        cache = self.keys
        if not keys or keys[0] not in cache:  # the common answer, for every replica but one
            return 0
        return len(tuple(takewhile(cache.__contains__, keys)))

    def use_leading(self, keys: tuple) -> int:
        """Mark the cached leading ``keys`` most recently used, in order; how many there are."""
        cache, hits = self.keys, 0
        move = cache.move_to_end
        for key in keys:
            if key not in cache:
                break
            move(key)
            hits += 1
        return hits

    def remember(self, keys: tuple) -> None:
        """Cache ``keys`` as the most recently used, in order, evicting the least recent."""
        cache = self.keys
        move = cache.move_to_end
        for key in keys:
            if key in cache:
                move(key)
            else:
                cache[key] = None
        while len(cache) > self.capacity:
            cache.popitem(last=False)
