"""A replica's prefix cache: KV blocks kept after a call, reused by later calls that share
the prompt's leading blocks (vLLM's automatic prefix caching), evicted least recently used.

vLLM frees a finished request's blocks in reverse order, so a prompt's tail is evicted before
its head and the cached blocks stay closed under prefixes: a block is cached only if every
block before it in its prompt is. Keys must be chained like vLLM's block hashes (equal keys
mean equal prefixes up to and including that block; ``hetsim.sim.trace_tables`` makes them
so). That lets this cache answer and update in O(log blocks) per call instead of visiting
every block of a long agent prompt:

* the cached prefix of a prompt is found by binary search (membership is monotone along it);
* a use touches only the deepest cached block: an ancestor's recency is the latest touch in
  its subtree, and only leaves can be least recent, so leaves sit in a heap of touch times
  (stale entries skipped) and a parent becomes a leaf, with its subtree's recency, when its
  last child is evicted.

The eviction order equals an LRU list in which every use moves the prompt's cached blocks to
the most recent end, tail first (``tests/sim/test_prefix_cache.py`` checks it against one).

Replicas of one pool may share a ``holders`` dict: first block -> bitmask of the replicas
whose cache holds it, kept exact as blocks come and go, so a prefix-aware router looks up
the few replicas worth scoring instead of asking every replica.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush


class _Node:
    """A cached block: its parent block's key (None for a first block), how many cached blocks
    extend it, and its last touch (for a leaf; an inner node's is refreshed when it becomes one)."""

    __slots__ = ("children", "parent", "touch")

    def __init__(self, parent: object, children: int, touch: int) -> None:
        self.parent, self.children, self.touch = parent, children, touch


class PrefixCache:
    """At most ``capacity`` blocks; ``nodes`` maps a cached key to its node (see above)."""

    __slots__ = ("_bit", "_clock", "_heap", "capacity", "holders", "nodes")

    def __init__(self, capacity: int, holders: dict[object, int] | None = None, bit: int = 0) -> None:
        """``holders``: the pool's first block -> replicas bitmask this cache keeps its ``bit`` in."""
        self.capacity = capacity
        self.nodes: dict[object, _Node] = {}
        self._heap: list[tuple[int, object]] = []  # (touch, key) of leaves; an entry is stale when the node changed since
        self._clock = 0
        self.holders: dict[object, int] = {} if holders is None else holders
        self._bit = bit

    def __len__(self) -> int:
        return len(self.nodes)

    def leading(self, keys: tuple) -> int:
        """How many leading ``keys`` are cached."""
        nodes = self.nodes
        if not keys or keys[0] not in nodes:  # the common answer, for every replica but one
            return 0
        high = len(keys)
        if keys[high - 1] in nodes:
            return high
        low, high = 1, high - 1  # keys[low - 1] is cached, keys[high] is not
        while low < high:
            mid = (low + high + 1) >> 1
            if keys[mid - 1] in nodes:
                low = mid
            else:
                high = mid - 1
        return low

    def use_leading(self, keys: tuple, hint: int = -1) -> int:
        """Mark the cached leading ``keys`` most recently used; how many there are (``hint``:
        see ``remember``)."""
        hits = self._leading_checked(keys, hint)
        if hits:
            self._touch(keys[hits - 1])
        return hits

    def remember(self, keys: tuple, hint: int = -1) -> None:
        """Cache ``keys`` as the most recently used, evicting the least recent blocks.

        ``hint``: what ``leading(keys)`` said earlier (say, when the call was admitted); checked
        with two lookups (the cache is prefix-closed), searched again if blocks came or went."""
        nodes = self.nodes
        count = len(keys)
        hits = self._leading_checked(keys, hint)
        if hits == count:
            if count:
                self._touch(keys[-1])
            return
        self._clock = clock = self._clock + 1
        parent = keys[hits - 1] if hits else None
        if parent is not None:
            nodes[parent].children += 1
        elif self._bit:  # a new first block
            self.holders[keys[0]] = self.holders.get(keys[0], 0) | self._bit
        for index in range(hits, count - 1):
            key = keys[index]
            nodes[key] = _Node(parent, 1, clock)
            parent = key
        nodes[keys[-1]] = _Node(parent, 0, clock)
        heap = self._heap
        heappush(heap, (clock, keys[-1]))
        if len(nodes) > self.capacity:
            self._evict()
        elif len(heap) > 2 * len(nodes) + 64:
            self._compact()

    def _leading_checked(self, keys: tuple, hint: int) -> int:
        """``leading(keys)``, taking ``hint`` when two lookups confirm it."""
        nodes, count = self.nodes, len(keys)
        if (
            0 <= hint <= count
            and (hint == 0 or keys[hint - 1] in nodes)
            and (hint == count or keys[hint] not in nodes)
        ):
            return hint
        return self.leading(keys)

    def _touch(self, key: object) -> None:
        node = self.nodes[key]
        self._clock = clock = self._clock + 1
        node.touch = clock
        if not node.children:
            heap = self._heap
            heappush(heap, (clock, key))
            if len(heap) > 2 * len(self.nodes) + 64:  # drop stale entries now and then
                self._compact()

    def _evict(self) -> None:
        nodes, heap, capacity = self.nodes, self._heap, self.capacity
        while len(nodes) > capacity:
            touched, key = heappop(heap)
            node = nodes.get(key)
            if node is None or node.children or node.touch != touched:
                continue  # stale: evicted, grown a child, or touched since
            while True:  # up the chain while the parent becomes the least recent leaf
                del nodes[key]
                if node.parent is None:
                    self._forget_first(key)
                    break
                key = node.parent
                node = nodes[key]
                node.children -= 1
                if node.children:
                    break
                if touched > node.touch:  # a leaf now, as recent as the latest touch below it
                    node.touch = touched
                touched = node.touch
                if len(nodes) <= capacity or (heap and heap[0][0] < touched):
                    heappush(heap, (touched, key))
                    break

    def _forget_first(self, key: object) -> None:
        if self._bit:
            rest = self.holders[key] & ~self._bit
            if rest:
                self.holders[key] = rest
            else:
                del self.holders[key]

    def _compact(self) -> None:
        self._heap = heap = [(node.touch, key) for key, node in self.nodes.items() if not node.children]
        heapify(heap)
