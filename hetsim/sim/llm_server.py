"""One LLM replica as a vLLM-style server: continuous batching with iteration-level
scheduling, chunked prefill under a token budget, paged KV memory with admission control and
preemption, and prefix caching.

Speed by design: when a step is decode-only and nothing can join or leave before the next
sequence finishes (or the KV cache fills), the server prices the whole run of identical
iterations at once (``LlmReplica.decode_run_times``) and sleeps until its end, waking early
only if a new request arrives, in which case it stops at the iteration boundary that follows.
Events therefore grow with batch membership changes, not with tokens. ``max_skip=1`` turns
the shortcut off, which is the per-iteration reference the tests compare against.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from hetsim.perf.llm import LlmReplica
from hetsim.perf.transformer import SequenceWork
from hetsim.specs.plan import LlmStage, Preemption


@dataclass(slots=True)
class LlmCall:
    """One LLM request as the server sees it."""

    call_id: int
    prompt_tokens: int
    output_tokens: int
    prefix_keys: tuple = ()  # prefix-block keys; equal keys = reusable KV
    prefix_block_tokens: int = 16
    arrival_s: float = 0.0
    prefilled_elsewhere: bool = False  # arrives at a decode pool with its KV transferred in


@dataclass(slots=True)
class SeqState:
    """Mutable state of one call inside a server."""

    call: LlmCall
    prefill_target: int
    prefilled: int = 0
    generated: int = 0
    kv_tokens: int = 0
    blocks: int = 0
    admitted_s: float = math.nan
    first_token_s: float = math.nan
    last_token_s: float = math.nan
    max_gap_s: float = 0.0
    cached_tokens: int = 0
    preemptions: int = 0
    swapped: bool = False
    is_running: bool = False

    @property
    def in_decode(self) -> bool:
        return self.prefilled >= self.prefill_target and self.generated < self.call.output_tokens

    @property
    def remaining(self) -> int:
        return self.call.output_tokens - self.generated


@dataclass
class ServerStats:
    busy_s: float = 0.0
    steps: int = 0
    events: int = 0
    batch_size_time: float = 0.0  # integral of running batch size over busy time
    kv_samples: list[tuple[float, int]] = field(default_factory=list)


Done = Callable[[SeqState, str], None]


class LlmServer:
    """A replica process; ``submit`` a call, ``on_done(state, reason)`` is called when it leaves."""

    def __init__(
        self,
        env: simpy.Environment,
        replica: LlmReplica,
        stage: LlmStage,
        on_done: Done,
        *,
        prefix_caching: bool = True,
        preemption: Preemption = Preemption.RECOMPUTE,
        swap_bandwidth_bytes_per_s: float = 25e9,
        max_skip: int = 1_000_000,
    ) -> None:
        self.env, self.replica, self.stage, self.on_done = env, replica, stage, on_done
        self.prefix_caching, self.preemption = prefix_caching, preemption
        self.swap_bandwidth = swap_bandwidth_bytes_per_s
        self.max_skip = max_skip
        limits = replica.limits
        self.block = limits.kv_block_tokens
        self.total_blocks = replica.kv_capacity_tokens // self.block
        self.free_blocks = self.total_blocks
        self.waiting: deque[SeqState] = deque()
        self.running: list[SeqState] = []
        self.cache: OrderedDict = OrderedDict()  # prefix key -> None, LRU order
        self.cache_capacity_keys = max(1, replica.kv_capacity_tokens // 16)
        self.stats = ServerStats()
        self._wakeup = env.event()
        self._pending_swap_s = 0.0
        env.process(self._run())

    # ---- interface --------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def cached_prefix_blocks(self, keys: tuple) -> int:
        """Leading prefix keys already cached here (for prefix-aware routing)."""
        hits = 0
        for key in keys:
            if key not in self.cache:
                break
            hits += 1
        return hits

    def submit(self, call: LlmCall) -> None:
        """Queue a call; it is dropped at once if it can never fit in this replica."""
        need = call.prompt_tokens + call.output_tokens
        if need > self.replica.arch.max_context_tokens:
            self.on_done(
                SeqState(call, call.prompt_tokens), f"exceeds context of {self.replica.arch.max_context_tokens}"
            )
            return
        if math.ceil(need / self.block) > self.total_blocks:
            self.on_done(
                SeqState(call, call.prompt_tokens),
                f"needs {need} KV tokens, replica holds {self.total_blocks * self.block}",
            )
            return
        state = SeqState(call, call.prompt_tokens)
        if call.prefilled_elsewhere:
            state.prefilled = state.kv_tokens = call.prompt_tokens
            state.generated = 1
            state.first_token_s = state.last_token_s = self.env.now
        self.waiting.append(state)
        if not self._wakeup.triggered:
            self._wakeup.succeed()

    # ---- scheduling -------------------------------------------------------------------------

    def _blocks_for(self, state: SeqState, extra_tokens: int) -> int:
        return max(0, math.ceil((state.kv_tokens + extra_tokens) / self.block) - state.blocks)

    def _grant(self, state: SeqState, extra_tokens: int) -> bool:
        need = self._blocks_for(state, extra_tokens)
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        state.blocks += need
        return True

    def _preempt(self, victim: SeqState) -> None:
        self.running.remove(victim)
        victim.is_running = False
        self.free_blocks += victim.blocks
        victim.blocks = 0
        victim.preemptions += 1
        if self.preemption == Preemption.SWAP:
            victim.swapped = True  # KV kept in host memory; it pays a swap-in when resumed
        else:
            victim.prefill_target = victim.call.prompt_tokens + victim.generated
            victim.prefilled = victim.kv_tokens = 0
        self.waiting.appendleft(victim)

    def _schedule(self) -> list[tuple[SeqState, int]]:
        """One iteration: decodes first, then prefill chunks, then admissions (vLLM V1 order)."""
        budget = self.replica.limits.max_batch_tokens
        plan: list[tuple[SeqState, int]] = []
        block, free = self.block, self.free_blocks
        for state in tuple(self.running):
            if not state.is_running:
                continue  # preempted below while making room
            take = 1 if state.prefilled >= state.prefill_target else min(state.prefill_target - state.prefilled, budget)
            if take <= 0:
                continue
            need = -(-(state.kv_tokens + take) // block) - state.blocks  # ceil division
            if need <= free:  # fast path: no preemption needed
                if need > 0:
                    free -= need
                    state.blocks += need
                plan.append((state, take))
                budget -= take
                continue
            self.free_blocks = free
            while not self._grant(state, take):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is state:
                    break
            free = self.free_blocks
            if state.is_running:
                plan.append((state, take))
                budget -= take
        self.free_blocks = free
        while self.waiting and budget > 0 and len(self.running) < self.replica.limits.max_num_seqs:
            take = self._admit(self.waiting[0], budget)
            if take is None:
                break
            plan.append((self.running[-1], take))
            budget -= take
        return plan

    def _admit(self, state: SeqState, budget: int) -> int | None:
        """Admit the head of the queue if its KV fits; returns the tokens it computes this step.

        A fresh or recomputing call first takes its cached prefix; a swapped-out call needs its
        KV back (and pays the swap-in); a call prefilled elsewhere needs blocks for its prompt.
        """
        if self.prefix_caching and state.prefilled == 0 and not state.call.prefilled_elsewhere:
            self._apply_prefix_cache(state)
        take = 1 if state.in_decode else min(state.prefill_target - state.prefilled, budget)
        if not self._grant(state, take):
            if state.prefilled == state.cached_tokens and not state.swapped and not state.call.prefilled_elsewhere:
                state.prefilled = state.kv_tokens = 0  # the cache hit is re-checked next time
            return None
        if state.swapped:
            self._pending_swap_s += state.kv_tokens * self.replica.kv_bytes_per_token_per_device / self.swap_bandwidth
            state.swapped = False
        self.waiting.popleft()
        self.running.append(state)
        state.is_running = True
        if math.isnan(state.admitted_s):
            state.admitted_s = self.env.now
        return take

    def _apply_prefix_cache(self, state: SeqState) -> None:
        keys = state.call.prefix_keys
        hits = self.cached_prefix_blocks(keys)
        for key in keys[:hits]:
            self.cache.move_to_end(key)
        cached = min(hits * state.call.prefix_block_tokens, state.prefill_target - 1)
        state.cached_tokens = max(state.cached_tokens, cached)
        state.prefilled = state.kv_tokens = max(cached, 0)

    def _remember_prefix(self, state: SeqState) -> None:
        if not self.prefix_caching:
            return
        for key in state.call.prefix_keys:
            self.cache[key] = None
            self.cache.move_to_end(key)
        while len(self.cache) > self.cache_capacity_keys:
            self.cache.popitem(last=False)

    # ---- the process ------------------------------------------------------------------------

    def _run(self):  # SimPy process
        env = self.env
        while True:
            plan = self._schedule()
            if not plan:
                self._wakeup = env.event()
                yield self._wakeup
                continue
            self.stats.kv_samples.append((env.now, self.total_blocks - self.free_blocks))
            if self._is_decode_run(plan):
                yield from self._decode_run(plan)
            else:
                yield from self._single_step(plan)

    def _is_decode_run(self, plan: list[tuple[SeqState, int]]) -> bool:
        return self.max_skip > 1 and self._pending_swap_s == 0 and all(s.in_decode and take == 1 for s, take in plan)

    def _single_step(self, plan: list[tuple[SeqState, int]]):
        batch = [SequenceWork(take, state.kv_tokens) for state, take in plan]
        seconds = self.replica.step_seconds(batch) + self._pending_swap_s
        self._pending_swap_s = 0.0
        self.stats.events += 1
        yield self.env.timeout(seconds)
        self._account(len(plan), seconds, 1)
        now = self.env.now
        for state, take in plan:
            state.kv_tokens += take
            if state.in_decode:
                self._emit_tokens(state, 1, seconds, now)
            else:
                state.prefilled += take
                if state.prefilled >= state.prefill_target:
                    self._remember_prefix(state)
                    if self.stage == LlmStage.PREFILL:
                        self._emit_first(state, now)
                        self._finish(state, "prefilled")
                        continue
                    self._emit_tokens(state, 1, seconds, now)
        self._finish_completed()

    def _decode_run(self, plan: list[tuple[SeqState, int]]):
        states = [state for state, _ in plan]
        steps = min(self.max_skip, min(s.remaining for s in states), self._steps_until_kv_full(states))
        times = self.replica.decode_run_times([s.kv_tokens for s in states], steps)
        ends = np.cumsum(times)
        start = self.env.now
        # _steps_until_kv_full guaranteed the blocks for `steps`; only an arrival cuts the run short.
        self._wakeup = self.env.event()
        self.stats.events += 1
        yield self.env.timeout(float(ends[-1])) | self._wakeup
        done = steps
        if self.env.now - start < ends[-1]:  # an arrival: finish the iteration in flight
            elapsed = self.env.now - start
            done = int(np.searchsorted(ends, elapsed, side="right")) + 1
            done = min(done, steps)
            remaining = start + float(ends[done - 1]) - self.env.now
            if remaining > 0:
                yield self.env.timeout(remaining)
        for state in states:
            self._grant(state, done)
            state.kv_tokens += done
            self._emit_tokens(state, done, float(times[:done].max()), start + float(ends[done - 1]))
        self._account(len(states), float(ends[done - 1]), done)
        self._finish_completed()

    def _steps_until_kv_full(self, states: list[SeqState]) -> int:
        """Most decode steps all ``states`` can take before the free blocks run out (>= 1)."""
        free = self.free_blocks
        if free >= sum(math.ceil((s.kv_tokens + s.remaining) / self.block) - s.blocks for s in states):
            return 1 << 30
        low, high = 1, max(s.remaining for s in states)
        while low < high:
            mid = (low + high + 1) // 2
            need = sum(max(0, math.ceil((s.kv_tokens + mid) / self.block) - s.blocks) for s in states)
            low, high = (mid, high) if need <= free else (low, mid - 1)
        return low

    # ---- bookkeeping ------------------------------------------------------------------------

    def _account(self, batch_size: int, seconds: float, steps: int) -> None:
        self.stats.busy_s += seconds
        self.stats.steps += steps
        self.stats.batch_size_time += batch_size * seconds

    def _emit_first(self, state: SeqState, now: float) -> None:
        if math.isnan(state.first_token_s):
            state.first_token_s = now
        state.last_token_s = now

    def _emit_tokens(self, state: SeqState, count: int, max_step_s: float, end: float) -> None:
        if state.generated == 0:
            state.first_token_s = end
            state.generated = 1
            state.last_token_s = end
            count -= 1
        if count > 0:
            state.max_gap_s = max(state.max_gap_s, max_step_s)
            state.generated += count
            state.last_token_s = end

    def _finish_completed(self) -> None:
        for state in [s for s in self.running if s.generated >= s.call.output_tokens]:
            self._finish(state, "completed")

    def _finish(self, state: SeqState, reason: str) -> None:
        self.running.remove(state)
        state.is_running = False
        self.free_blocks += state.blocks
        state.blocks = 0
        self.on_done(state, reason)
