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
  its subtree, and only leaves can be least recent. Touched blocks sit in a doubly linked
  list in touch order (each touch unlinks and appends, O(1)); eviction takes the head. A
  block that reaches the head while it still has children is unlinked (its subtree is more
  recent); when its last child is evicted it becomes the least recent leaf, at the head, with
  its subtree's recency, unless a later touch of its own put it further back already.

The eviction order equals an LRU list in which every use moves the prompt's cached blocks to
the most recent end, tail first (``tests/sim/test_prefix_cache.py`` checks it against one).

The cache lives in the replica's KV memory: its blocks are those no running sequence holds, so
its capacity follows the free KV blocks (``fit``, which the server calls before each lookup
and each insertion). Running sequences take precedence: an allocation never waits for the
cache; the least recent cached blocks are evicted to make room instead (``evicted`` counts
them).

Replicas of one pool may share a ``holders`` dict: first block -> bitmask of the replicas
whose cache holds it, kept exact as blocks come and go, so a prefix-aware router looks up
the few replicas worth scoring instead of asking every replica.
"""

from __future__ import annotations


class _Node:
    """A cached block: its key, its parent block's node (None for a first block), how many
    cached blocks extend it, and its neighbours in the touch-ordered list (``prev`` is None
    when it is not linked)."""

    __slots__ = ("children", "key", "next", "parent", "prev")

    def __init__(self, key: object, parent: _Node | None, children: int) -> None:
        self.key, self.parent, self.children = key, parent, children
        self.prev: _Node | None = None
        self.next: _Node | None = None


class PrefixCache:
    """At most ``capacity`` blocks; ``nodes`` maps a cached key to its node (see above)."""

    __slots__ = ("_bit", "_list", "capacity", "evicted", "holders", "nodes", "probed_hits", "probed_keys")

    def __init__(self, capacity: int, holders: dict[object, int] | None = None, bit: int = 0) -> None:
        """``holders``: the pool's first block -> replicas bitmask this cache keeps its ``bit`` in."""
        self.capacity = capacity
        self.evicted = 0  # blocks evicted so far
        self.nodes: dict[object, _Node] = {}
        self._list = _Node(None, None, 0)  # the sentinel of the touch-ordered list: next is the head
        self._list.prev = self._list.next = self._list
        self.holders: dict[object, int] = {} if holders is None else holders
        self._bit = bit
        self.probed_keys: tuple = ()  # the latest prompt a router asked about (``probe``), and its answer
        self.probed_hits = -1

    def __len__(self) -> int:
        return len(self.nodes)

    def fit(self, capacity: int) -> None:
        """Hold at most ``capacity`` blocks from now on, evicting the least recent beyond it."""
        self.capacity = capacity
        if len(self.nodes) > capacity:
            self._evict()

    def leading(self, keys: tuple, hint: int = -1) -> int:
        """How many leading ``keys`` are cached. ``hint``: a guess (say, what an earlier lookup
        said, or how much of the prompt its session's previous call shared), taken when two
        lookups confirm it (the cache is prefix-closed); -1: none."""
        nodes, count = self.nodes, len(keys)
        if 0 <= hint <= count and (hint == 0 or keys[hint - 1] in nodes) and (hint == count or keys[hint] not in nodes):
            return hint
        return self._search(keys)

    def probe(self, keys: tuple, hint: int = -1) -> int:
        """``leading``, remembered as ``probed_keys`` and ``probed_hits``: a router asks before
        it sends a call, and the admission of that call takes the answer as its hint."""
        hits = self.leading(keys, hint)
        self.probed_keys, self.probed_hits = keys, hits
        return hits

    def _search(self, keys: tuple) -> int:
        """``leading`` by binary search."""
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
        see ``leading``)."""
        hits = self.leading(keys, hint)
        if hits:
            self._touch(self.nodes[keys[hits - 1]])
        return hits

    def remember(self, keys: tuple, hint: int = -1) -> None:
        """Cache ``keys`` as the most recently used, evicting the least recent blocks.

        ``hint``: what ``leading(keys)`` said earlier (say, when the call was admitted), checked
        (see ``leading``)."""
        nodes = self.nodes
        count = len(keys)
        hits = self.leading(keys, hint)
        if hits == count:
            if count:
                self._touch(nodes[keys[count - 1]])
            return
        parent = nodes[keys[hits - 1]] if hits else None
        if parent is not None:
            parent.children += 1
        elif self._bit:  # a new first block
            self.holders[keys[0]] = self.holders.get(keys[0], 0) | self._bit
        for index in range(hits, count - 1):
            key = keys[index]
            parent = nodes[key] = _Node(key, parent, 1)
        key = keys[count - 1]
        leaf = nodes[key] = _Node(key, parent, 0)
        self._append(leaf)
        if len(nodes) > self.capacity:
            self._evict()

    def _touch(self, node: _Node) -> None:
        if node.prev is not None:
            self._unlink(node)
        self._append(node)

    def _append(self, node: _Node) -> None:
        """Link ``node`` as the most recent."""
        end = self._list
        last = end.prev
        assert last is not None  # the list is circular
        node.prev, node.next = last, end
        last.next = end.prev = node

    def _unlink(self, node: _Node) -> None:
        before, after = node.prev, node.next
        assert before is not None and after is not None  # linked
        before.next, after.prev = after, before
        node.prev = node.next = None

    def _evict(self) -> None:
        nodes, capacity, end = self.nodes, self.capacity, self._list
        while len(nodes) > capacity:
            node = end.next
            assert node is not None and node is not end  # over capacity: some block is linked
            self._unlink(node)
            if node.children:
                continue  # its subtree is more recent; it returns as a leaf when that is gone
            del nodes[node.key]
            self.evicted += 1
            parent = node.parent
            if parent is None:
                self._forget_first(node.key)
                continue
            parent.children -= 1
            if not parent.children and parent.prev is None:
                # a leaf now, as recent as the latest touch below it: the least recent block
                after = end.next
                assert after is not None
                parent.prev, parent.next = end, after
                end.next = after.prev = parent

    def _forget_first(self, key: object) -> None:
        if self._bit:
            rest = self.holders[key] & ~self._bit
            if rest:
                self.holders[key] = rest
            else:
                del self.holders[key]
