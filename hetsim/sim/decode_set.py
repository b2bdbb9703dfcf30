"""The decoding sequences of one server, advanced together without visiting each one.

Every running sequence in decode gains the same tokens (and KV tokens) per server iteration:
one, or, speculating, a burst of accepted tokens, the same for the calls of one acceptance rate
(a speculating server keeps a set per rate: ``SpeculativeDecodeSet``); only joining or leaving
the batch changes that (``t`` below counts those tokens, not iterations). So with ``t``, the
tokens every member took since the set began, a member's KV tokens are ``t + kv_offset`` and its generated tokens
``t + gen_offset``, and it finishes when ``t`` reaches ``output_tokens - gen_offset``. The set
keeps what the server asks about as running sums and heaps, so an iteration or a run of
``k`` iterations costs O(1) (O(log n) per member that finishes), not O(batch):

* the keys attention reads (``sum(min(kv + 1, window))`` per attention group);
* the paged-KV blocks members need to advance ``k`` steps (one per member every
  ``block`` tokens, at a phase set by ``kv_offset mod block``);
* the fewest steps until a member finishes (a heap of finishing iterations);
* each member's worst token gap: a decreasing stack of per-iteration step times answers
  "longest step since this member joined" by binary search.

A member's own fields (``kv_tokens``, ``generated``, ``blocks``, ``last_token_s``,
``max_gap_s``) are brought up to date (``materialize``) when it leaves, and whenever the
server needs them all (a scheduling pass that must preempt). Between iterations a member
holds ``ceil(kv_tokens / block)`` KV blocks.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Final

from hetsim.perf.speculative import burst_tokens
from hetsim.perf.speculative import expected_tokens as expected_yield

if TYPE_CHECKING:
    from hetsim.sim.llm_server import SeqState


class DecodeSet:
    """Running decode sequences of one server (see module docstring)."""

    def __init__(self, block_tokens: int, windows: tuple[int | None, ...]) -> None:
        """``windows``: the sliding window of each attention group (None: full attention)."""
        windowed = {w for w in windows if w is not None}
        if len(windowed) > 1:
            raise ValueError(f"decode set: expected at most one sliding window, got {sorted(windowed)}")
        self.block = block_tokens
        self.windows = windows
        self.window = windowed.pop() if windowed else None
        self.t = 0  # tokens every member has taken since the set began (iterations without speculation)
        self.n = 0
        self.kv_offset_sum = 0
        # Members by kv_offset mod block, written twice over (index r and r + block) so that any
        # cyclic run of phases is one slice.
        self.by_phase = [0] * (2 * block_tokens)
        self._finishing: list[tuple[int, int, SeqState]] = []  # (finishing t, token, state)
        self._tokens = itertools.count()
        # Sliding-window attention: members whose kv + 1 is still below the window.
        self.unsaturated = 0
        self.unsaturated_offset_sum = 0
        self._saturating: list[tuple[int, int, SeqState]] = []  # (t it reaches the window, token, state)
        # Step times since the oldest member joined: indices increase, values strictly decrease.
        self._gap_index: list[int] = []
        self._gap_value: list[float] = []
        self.iterations_recorded = 0
        self.last_emit_s = math.nan

    # ---- membership -----------------------------------------------------------------------

    def add(self, state: SeqState) -> None:
        """Join with ``state``'s current fields (its KV blocks for them already held)."""
        t = self.t
        offset = state.kv_tokens - t
        state.kv_offset, state.gen_offset = offset, state.generated - t
        state.token = token = next(self._tokens)
        state.joined_at = self.iterations_recorded
        heappush(self._finishing, (state.call.output_tokens - state.gen_offset, token, state))
        phase = offset % self.block
        self.by_phase[phase] += 1
        self.by_phase[phase + self.block] += 1
        self.n += 1
        self.kv_offset_sum += offset
        window = self.window
        state.is_unsaturated = window is not None and state.kv_tokens + 1 < window
        if state.is_unsaturated:
            self.unsaturated += 1
            self.unsaturated_offset_sum += offset
            heappush(self._saturating, (window - 1 - offset, token, state))  # type: ignore[operator]

    def remove(self, state: SeqState) -> None:
        """Leave, with ``state``'s fields brought up to date (``materialize``)."""
        t, offset, block = self.t, state.kv_offset, self.block
        state.kv_tokens = kv = t + offset
        generated = t + state.gen_offset
        output = state.call.output_tokens
        state.generated = generated if generated <= output else output  # a speculative burst may pass the end
        state.blocks = -(-kv // block)
        if self.iterations_recorded > state.joined_at:
            self._catch_up(state)
        phase = offset % block
        by_phase = self.by_phase
        by_phase[phase] -= 1
        by_phase[phase + block] -= 1
        self.n -= 1
        self.kv_offset_sum -= offset
        if state.is_unsaturated:
            self.unsaturated -= 1
            self.unsaturated_offset_sum -= offset
            state.is_unsaturated = False
        state.token = -1
        if not self.n:  # nobody left to ask about earlier steps
            self._gap_index.clear()
            self._gap_value.clear()

    def materialize(self, state: SeqState) -> None:
        """Write the member's current KV tokens, tokens, blocks, last token time and gap."""
        state.kv_tokens = kv = self.t + state.kv_offset
        state.generated = self.t + state.gen_offset
        state.blocks = -(-kv // self.block)
        if self.iterations_recorded > state.joined_at:
            self._catch_up(state)

    def _catch_up(self, state: SeqState) -> None:
        """The member's last token time and worst gap over the iterations since it joined."""
        state.last_token_s = self.last_emit_s
        position = bisect_left(self._gap_index, state.joined_at)
        if position < len(self._gap_value) and self._gap_value[position] > state.max_gap_s:
            state.max_gap_s = self._gap_value[position]
        state.joined_at = self.iterations_recorded

    # ---- iterations -----------------------------------------------------------------------

    def advance(self, steps: int, max_step_s: float, end_s: float) -> list[SeqState]:
        """Every member emitted ``steps`` tokens, the last at ``end_s``; the longest step took
        ``max_step_s``. Returns the members that thereby finished (in no particular order)."""
        self.t = t = self.t + steps
        self.last_emit_s = end_s
        index, value = self._gap_index, self._gap_value
        while value and value[-1] <= max_step_s:
            value.pop()
            index.pop()
        index.append(self.iterations_recorded)
        value.append(max_step_s)
        self.iterations_recorded += 1
        if self._saturating:
            self._saturate()
        heap, done = self._finishing, []
        while heap and heap[0][0] <= t:
            _, token, state = heappop(heap)
            if state.token == token:
                done.append(state)
        return done

    def _saturate(self) -> None:
        """Members whose attention now reaches the window read a constant number of keys."""
        heap, t = self._saturating, self.t
        while heap and heap[0][0] <= t:
            _, token, state = heappop(heap)
            if state.token == token:
                self.unsaturated -= 1
                self.unsaturated_offset_sum -= state.kv_offset
                state.is_unsaturated = False

    def min_remaining(self) -> int:
        """Fewest tokens any member still has to generate (members present)."""
        heap = self._finishing
        while heap[0][2].token != heap[0][1]:  # drop entries of members that left
            heappop(heap)
        return heap[0][0] - self.t

    # ---- what the server prices and allocates ---------------------------------------------

    def seen(self) -> list[tuple[float, int]]:
        """Per attention group (no window first): (keys the members' attention reads at the
        next step, how many more each further step), as ``LlmReplica.affine_decode_run`` takes."""
        n, t, u = self.n, self.t, self.unsaturated
        full = (float(n * (t + 1) + self.kv_offset_sum), n)
        if self.window is None:
            return [full] * len(self.windows)
        windowed = (float((n - u) * self.window + u * (t + 1) + self.unsaturated_offset_sum), u)
        return [full if window is None else windowed for window in self.windows]

    def keys_seen(self) -> list[float]:
        """Per attention group: keys the members' attention reads at the next step."""
        n = self.n
        if not n:
            return []
        if self.window is None:
            return [float(n * (self.t + 1) + self.kv_offset_sum)] * len(self.windows)
        return [keys for keys, _ in self.seen()]

    def steps_before_window(self) -> int:
        """Steps during which no member's attention reaches the window (the keys stay affine)."""
        heap = self._saturating
        while heap and heap[0][2].token != heap[0][1]:
            heappop(heap)
        return heap[0][0] - self.t + 1 if heap else 1 << 62

    def run_blocks(self, steps: int) -> int:
        """Blocks to take after ``steps`` steps beyond those the first step needed:
        ``blocks_to_advance(steps) - blocks_to_advance(1)``."""
        block = self.block
        full, partial = divmod(steps - 1, block)
        first = -self.t % block + block
        by_phase = self.by_phase
        return full * self.n + _phase_sum(by_phase, first - partial, first)

    def blocks_to_advance(self, steps: int) -> int:
        """KV blocks the members need, beyond what they hold between iterations, to compute
        ``steps`` more tokens each: a member at KV ``kv`` needs one whenever ``kv % block``
        is 0 before a step, so members of phase ``(-t - j) % block`` need one at step j of
        every cycle of ``block`` steps."""
        block = self.block
        if steps == 1:
            return self.by_phase[-self.t % block]
        full, partial = divmod(steps - 1, block)
        first = -self.t % block + block  # phases first, first - 1, ..., first - partial
        return full * self.n + _phase_sum(self.by_phase, first - partial, first + 1)

    def steps_until_full(self, free_blocks: int) -> int:
        """Most steps (>= 1) the members can take, once they hold their first step's blocks,
        before ``free_blocks`` more run out: the largest k with
        ``blocks_to_advance(k) - blocks_to_advance(1) <= free_blocks``."""
        budget = free_blocks + self.blocks_to_advance(1)
        full, rest = divmod(budget, self.n)
        by_phase, block = self.by_phase, self.block
        first = -self.t % block + block
        needed = 0
        for j in range(block):  # blocks needed within the first j + 1 steps of the last cycle
            needed += by_phase[first - j]
            if needed > rest:
                return full * block + j
        raise AssertionError("unreachable: a whole cycle needs n blocks, more than the rest")

    def contexts(self, members: list[SeqState]) -> list[int]:
        """KV tokens of ``members`` now (for pricing a run step by step)."""
        t = self.t
        return [t + state.kv_offset for state in members]

    # ---- what a speculating server asks (one token an iteration here) -------------------------

    def next_blocks(self) -> int:
        """KV blocks the members need for the coming iteration."""
        return self.by_phase[-self.t % self.block]

    def burst_of(self, state: SeqState) -> int:
        """Tokens ``state`` takes in the coming iteration (member or not)."""
        return 1

    def class_of(self, acceptance_rate: float) -> int:
        """The burst class of a call whose drafts are accepted at ``acceptance_rate`` (NaN: the
        replica's own rate); one class without speculation."""
        return 0


class SpeculativeDecodeSet(DecodeSet):
    """The decoding sequences of a speculating server: members grouped by how many tokens an
    iteration yields them on average (``E``, from their call's acceptance rate), a
    ``DecodeSet`` per group.

    In the replica's decoding iteration ``i`` a member of yield ``E`` emits
    ``floor((i + 1) E) - floor(i E)`` tokens (``hetsim.perf.speculative.SpeculativeSteps``:
    E tokens per iteration on average, as bursts of floor(E) or ceil(E)), so the members of a
    group advance together and the group's set keeps its O(1) sums in tokens, while the
    iterations (this set's ``advance``, ``run_blocks``) are the replica's. Every group's set
    advances at every iteration (an empty one only counts it), so their iteration records
    agree. The base class's own fields stay empty: every member lives in its group's set.
    """

    def __init__(self, block_tokens: int, windows: tuple[int | None, ...], proposed: int, acceptance_rate: float) -> None:
        super().__init__(block_tokens, windows)
        self.proposed, self.acceptance_rate = proposed, acceptance_rate
        self.iteration = 0  # the replica's iterations that decoded
        self.sets: list[DecodeSet] = []
        self.yields: list[float] = []
        self._class_of_yield: dict[float, int] = {}
        self.class_of(acceptance_rate)  # class 0: the replica's own rate

    def class_of(self, acceptance_rate: float) -> int:
        rate = self.acceptance_rate if math.isnan(acceptance_rate) else acceptance_rate
        e = expected_yield(self.proposed, rate)
        index = self._class_of_yield.get(e, -1)
        if index < 0:
            index = len(self.sets)
            self._class_of_yield[e] = index
            member_set = DecodeSet(self.block, self.windows)
            member_set.iterations_recorded = self.iterations_recorded
            self.sets.append(member_set)
            self.yields.append(e)
        return index

    def tokens_within(self, klass: int, iterations: int) -> int:
        """Tokens a member of ``klass`` takes in the next ``iterations`` iterations."""
        return burst_tokens(self.yields[klass], self.iteration, iterations)

    def burst_of(self, state: SeqState) -> int:
        return self.tokens_within(state.burst_class, 1)

    # ---- membership -----------------------------------------------------------------------

    def add(self, state: SeqState) -> None:
        self.sets[state.burst_class].add(state)
        self.n += 1

    def remove(self, state: SeqState) -> None:
        self.sets[state.burst_class].remove(state)
        self.n -= 1

    def materialize(self, state: SeqState) -> None:
        self.sets[state.burst_class].materialize(state)

    # ---- iterations -----------------------------------------------------------------------

    def advance(self, steps: int, max_step_s: float, end_s: float) -> list[SeqState]:
        """``steps`` iterations ended (each group's members took their bursts), the last at
        ``end_s``, the longest taking ``max_step_s``; returns the members that finished."""
        done: list[SeqState] = []
        for klass in range(len(self.sets)):
            member_set = self.sets[klass]
            tokens = self.tokens_within(klass, steps) if self.n else steps
            if member_set.n:
                done.extend(member_set.advance(tokens, max_step_s, end_s))
            else:  # nobody to record gaps for: count the iteration only
                member_set.t += tokens
                member_set.iterations_recorded += 1
                member_set.last_emit_s = end_s
        if self.n:
            self.iteration += steps
        self.iterations_recorded += 1
        self.last_emit_s = end_s
        return done

    def keys_seen(self) -> list[float]:
        if not self.n:
            return []
        keys = [0.0] * len(self.windows)
        for member_set in self.sets:
            if member_set.n:
                for group, seen in enumerate(member_set.keys_seen()):
                    keys[group] += seen
        return keys

    def next_blocks(self) -> int:
        total = 0
        for klass in range(len(self.sets)):
            member_set = self.sets[klass]
            if member_set.n:
                total += member_set.blocks_to_advance(self.tokens_within(klass, 1))
        return total

    def run_blocks(self, steps: int) -> int:
        """Blocks the members take in ``steps`` iterations beyond those of the first."""
        total = 0
        for klass in range(len(self.sets)):
            member_set = self.sets[klass]
            if member_set.n:
                total += member_set.blocks_to_advance(self.tokens_within(klass, steps))
                total -= member_set.blocks_to_advance(self.tokens_within(klass, 1))
        return total

    def contexts(self, members: list[SeqState]) -> list[int]:
        return [self.sets[state.burst_class].t + state.kv_offset for state in members]

    # Counts in tokens have no meaning across groups of different bursts: ask a group's set.

    def min_remaining(self) -> int:
        raise TypeError(_PER_GROUP)

    def seen(self) -> list[tuple[float, int]]:
        raise TypeError(_PER_GROUP)

    def steps_before_window(self) -> int:
        raise TypeError(_PER_GROUP)

    def blocks_to_advance(self, steps: int) -> int:
        raise TypeError(_PER_GROUP)

    def steps_until_full(self, free_blocks: int) -> int:
        raise TypeError(_PER_GROUP)


_PER_GROUP: Final = "speculating decoders advance in groups of their own bursts: ask a group's set (SpeculativeDecodeSet.sets)"


def _phase_sum(by_phase: list[int], start: int, stop: int) -> int:
    """``sum(by_phase[start:stop])`` as a loop (compiled: no slice, no generic ``sum``)."""
    total = 0
    for index in range(start, stop):
        total += by_phase[index]
    return total
