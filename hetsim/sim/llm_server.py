"""One LLM replica as a vLLM-style server: continuous batching with iteration-level
scheduling, paged KV memory with admission control and preemption, and prefix caching.

Scheduling and bookkeeping are apart: what each iteration computes is decided by the replica's
``Scheduler`` (``hetsim.sim.scheduler``: vLLM's chunked prefill by default, prefill-first,
decode-priority, or your own), through the primitives below (``allocate``, ``admit_waiting``,
``schedule_preempting``); the server keeps the KV blocks, the prefix cache, the timing, the
token gaps and the event skipping, whatever the policy. Decoding sequences that a scheduler
holds back for an iteration (prefill-first) wait it out: their next token's gap counts it.

Speed by design:

* Event skipping: when a step is decode-only, nothing can join or leave before the next
  sequence finishes (or the KV cache fills), so the server prices the whole run of identical
  iterations at once (``hetsim.sim.decode_runs``) and sleeps until its end. A request that
  arrives meanwhile cuts the run at the iteration boundary that follows. Events grow with
  batch membership changes, not with tokens. ``max_skip=1`` turns the shortcut off: the
  per-iteration reference the tests compare against.
* No per-sequence work per iteration: decoding sequences live in a ``DecodeSet`` that
  advances them all in O(1); only sequences that join, leave or prefill are visited. A
  scheduling pass that must preempt brings every member up to date and runs the plain
  vLLM algorithm.
* Timers, not a SimPy process: each iteration is one timer of the environment's calendar
  (``hetsim.sim.calendar``: SimPy's order, native callbacks); a cut run leaves its stale end
  timer behind, which is ignored (its ticket is not the current one).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from hetsim.perf.llm import LlmReplica
from hetsim.perf.speculative import SpeculativeSteps
from hetsim.sim.calendar import Handler
from hetsim.sim.decode_runs import DecodeRun, plain_run, speculative_run
from hetsim.sim.decode_set import DecodeSet, SpeculativeDecodeSet
from hetsim.sim.environment import Environment
from hetsim.sim.lora import AdapterSlots
from hetsim.sim.policies import RouterState
from hetsim.sim.prefix_cache import PrefixCache
from hetsim.sim.records import Column
from hetsim.sim.scheduler import ChunkedPrefill, ExternalScheduler, Scheduler
from hetsim.sim.token_gaps import TokenGaps
from hetsim.specs.plan import LlmStage, Preemption

_NAN: Final = math.nan


class LlmCall:
    """One LLM request as the server sees it.

    ``prefix_keys``: prefix-block keys (equal keys = reusable KV); ``prefilled_elsewhere``: it
    arrives at a decode pool with its KV transferred in, its first token emitted at
    ``last_token_s`` (the next token's gap runs from there); ``replica``: the submitter's index
    of the server it went to (untouched here); ``adapter``: the LoRA adapter it names (None: the
    base model; ``hetsim.sim.lora``); ``acceptance_rate``: the per-token acceptance of its
    speculative drafts on a speculating replica (NaN: the replica's own rate). A plain class
    with ``__init__`` rather than a dataclass: compiled, a dataclass's generated ``__init__``
    stays interpreted (6x slower)."""

    __slots__ = (
        "acceptance_rate",
        "adapter",
        "arrival_s",
        "call_id",
        "last_token_s",
        "output_tokens",
        "prefilled_elsewhere",
        "prefix_block_tokens",
        "prefix_keys",
        "prompt_tokens",
        "replica",
    )

    def __init__(
        self,
        call_id: int,
        prompt_tokens: int,
        output_tokens: int,
        prefix_keys: tuple = (),
        prefix_block_tokens: int = 16,
        arrival_s: float = 0.0,
        prefilled_elsewhere: bool = False,
        replica: int = -1,
        last_token_s: float = _NAN,
        adapter: str | None = None,
        acceptance_rate: float = _NAN,
    ) -> None:
        self.call_id, self.prompt_tokens, self.output_tokens = call_id, prompt_tokens, output_tokens
        self.adapter, self.acceptance_rate = adapter, acceptance_rate
        self.prefix_keys, self.prefix_block_tokens = prefix_keys, prefix_block_tokens
        self.arrival_s, self.prefilled_elsewhere, self.replica = arrival_s, prefilled_elsewhere, replica
        self.last_token_s = last_token_s


class SeqState:
    """Mutable state of one call inside a server (a ``DecodeSet`` member's KV, token, block,
    last-token and gap fields are current only after it leaves or is materialized). Equality is
    identity (list.remove/index must not compare fields); a plain class, as ``LlmCall``."""

    __slots__ = (
        "admitted_s",
        "blocks",
        "burst_class",
        "cached_tokens",
        "call",
        "first_token_s",
        "gen_offset",
        "generated",
        "is_running",
        "is_unsaturated",
        "joined_at",
        "kv_offset",
        "kv_tokens",
        "last_token_s",
        "max_gap_s",
        "preemptions",
        "prefill_target",
        "prefilled",
        "prefix_hits",
        "stall_s",
        "swapped",
        "token",
    )

    def __init__(
        self, call: LlmCall, prefill_target: int, prefilled: int = 0, generated: int = 0, kv_tokens: int = 0
    ) -> None:
        self.call, self.prefill_target = call, prefill_target
        self.prefilled, self.generated, self.kv_tokens = prefilled, generated, kv_tokens
        self.blocks = 0
        self.admitted_s = self.first_token_s = self.last_token_s = _NAN
        self.max_gap_s = 0.0
        self.stall_s = 0.0  # the longest gap that spanned a preemption or a hand-off from a prefill pool
        self.cached_tokens = 0
        self.prefix_hits = -1  # cached leading prefix blocks when last admitted (-1: not looked up)
        self.preemptions = 0
        self.swapped = self.is_running = False
        # DecodeSet bookkeeping (token -1: not a member)
        self.token = -1
        self.kv_offset = self.gen_offset = self.joined_at = 0
        self.burst_class = 0  # its group of a speculating server's decoders (``SpeculativeDecodeSet``)
        self.is_unsaturated = False

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
    stepwise_runs: int = 0  # decode runs priced step by step (no closed form: curves, or a window reached)
    batch_size_time: float = 0.0  # integral of running batch size over busy time
    kv_times: Column = field(default_factory=lambda: Column("d"))  # KV blocks in use at each iteration start
    kv_used: Column = field(default_factory=lambda: Column("q"))


Done = Callable[[SeqState, str, float], None]  # (state, reason, now)

Chunk = tuple[SeqState, int]

# Server states: what a submit has to do (BUSY: inside the server's own event; it schedules next).
# (Final: compiled, they are inlined; a plain module global is a dict lookup.)
_IDLE: Final = 0
_WAKING: Final = 1
_BUSY: Final = 2
_STEP: Final = 3
_RUN: Final = 4
_CUT: Final = 5


class LlmServer:
    """A replica; ``submit`` a call, ``on_done(state, reason, now)`` is called when it leaves.

    Its events (``Wake``, ``StepEnd``, ``RunEnd``) take the clock from their timer (``now``)
    and hand it down, instead of reading ``env.now``, a property whose getter is interpreted
    Python. Each timer carries a ticket: only the latest one set is current (a newcomer cuts a
    decode run short by setting a new one)."""

    def __init__(
        self,
        env: Environment,
        replica: LlmReplica,
        stage: LlmStage,
        on_done: Done,
        *,
        prefix_block_tokens: int,
        prefix_caching: bool = True,
        preemption: Preemption = Preemption.RECOMPUTE,
        swap_bandwidth_bytes_per_s: float = 25e9,
        max_skip: int = 1_000_000,
        router: RouterState | None = None,
        scheduler: Scheduler | None = None,
        speculation: SpeculativeSteps | None = None,
    ) -> None:
        """``router``: the pool's routing state, where this replica keeps its load and its
        prefix cache the first blocks it holds (a replica of its own without one);
        ``scheduler``: its iteration scheduler (vLLM's chunked prefill when none);
        ``speculation``: its speculative decoding (each decoder then takes a burst of tokens
        per iteration, ``SpeculativeSteps.burst``)."""
        self.env, self.replica, self.stage, self.on_done = env, replica, stage, on_done
        self._prefill_only = stage == LlmStage.PREFILL  # compared once: an enum lookup is generic
        self._calendar = env.calendar
        self.prefix_caching, self.preemption = prefix_caching, preemption
        self.swap_bandwidth = swap_bandwidth_bytes_per_s
        self.max_skip = max_skip
        limits = replica.limits
        self.block = limits.kv_block_tokens
        self.max_batch_tokens, self.max_num_seqs = limits.max_batch_tokens, limits.max_num_seqs
        self.total_blocks = replica.kv_capacity_tokens // self.block
        # Speculative decoding: the queries each decoder computes in an iteration (what it takes
        # of a token budget); the decoders' bursts are their decode set's (``burst_of``).
        self._spec = speculation
        self.decode_queries = 1 if speculation is None else speculation.queries
        self._max_context = replica.arch.max_context_tokens
        self.free_blocks = self.total_blocks
        self.waiting: deque[SeqState] = deque()
        self.running: list[SeqState] = []
        router = RouterState() if router is None else router
        self._loads, self._slot = router.loads, router.register()  # waiting + running, what routers read
        self._token_loads = router.token_loads  # their tokens (``_tokens_of``), for token-weighted routing
        self.prefilling: list[SeqState] = []  # running, not in decode; in running order
        self.pricer = replica.pricer
        windows = tuple(window for _, window in replica._attention_params[3])
        self._spec_decode: SpeculativeDecodeSet | None = None
        if speculation is None:
            self.decode = DecodeSet(self.block, windows)
        else:
            spec = speculation.speculation
            self.decode = self._spec_decode = SpeculativeDecodeSet(self.block, windows, spec.tokens, spec.acceptance_rate)
        # The prefix cache holds as many blocks (of the trace's prefix-key size) as the KV memory
        # has free (``_fit_cache``): blocks of running sequences take precedence.
        self._prefix_block_tokens = prefix_block_tokens
        self.cache = PrefixCache(
            max(1, replica.kv_capacity_tokens // prefix_block_tokens), router.holders, 1 << self._slot
        )
        router.caches[self._slot] = self.cache
        self.stats = ServerStats()
        self.gaps = TokenGaps(len(replica._attention_params[3]))
        # Members whose next token's gap is not the decode set's: joined after a stall (a
        # preemption, a hand-off), or while the decoders were held (``_paused_s``). Each is
        # (state, extra, is_stall): its gap is extra + the iteration's gap (pause included).
        self._stalled: list[tuple[SeqState, float, bool]] = []
        self._paused_s = 0.0  # seconds the decoders have been held since their last token
        self._decoding = True  # whether the iteration in flight advances the decoders
        self.decode_blocks_taken = False  # set by the primitives that take the decoders' blocks
        self.scheduler: Scheduler = ChunkedPrefill() if scheduler is None else scheduler
        # whether decode runs may be priced at once while calls wait (see hetsim.sim.scheduler)
        self._runs_while_waiting = not isinstance(scheduler, ExternalScheduler) or scheduler.runs_while_waiting
        # Speculating, a decode iteration's blocks change with its burst (more or fewer tokens
        # each), so a queued call that did not fit may fit at the next iteration: no runs while
        # calls wait (the promise above holds only when every iteration takes one token).
        if speculation is not None:
            self._runs_while_waiting = False
        self._pending_swap_s = 0.0
        self._state = _IDLE
        self._ticket = 0  # of the timer that is current (older ones went stale)
        self._chunks: list[Chunk] = []
        self._step_s = 0.0
        self._batch = 0
        self._run: DecodeRun | None = None  # the decode run in flight (event skipping)
        self.lora: AdapterSlots | None = None  # the replica's LoRA adapters (set by the builder)
        self._wake, self._step_end, self._run_end = Wake(self), StepEnd(self), RunEnd(self)

    # ---- interface --------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Calls queued or running here."""
        return self._loads[self._slot]

    def submit(self, call: LlmCall, now: float) -> None:
        """Queue a call (``now``: the clock); it is dropped at once if it can never fit in
        this replica."""
        need = call.prompt_tokens + call.output_tokens
        if need > self._max_context:
            self.on_done(SeqState(call, call.prompt_tokens), f"exceeds context of {self._max_context}", now)
            return
        if -(-need // self.block) > self.total_blocks:
            self.on_done(
                SeqState(call, call.prompt_tokens),
                f"needs {need} KV tokens, replica holds {self.total_blocks * self.block}",
                now,
            )
            return
        state = SeqState(call, call.prompt_tokens)
        if self._spec_decode is not None:
            state.burst_class = self._spec_decode.class_of(call.acceptance_rate)
        self._loads[self._slot] += 1
        self._token_loads[self._slot] += self._tokens_of(call)
        if call.prefilled_elsewhere:
            state.prefilled = state.kv_tokens = call.prompt_tokens
            state.generated = 1
            state.first_token_s = state.last_token_s = now
            if not math.isnan(call.last_token_s):  # the first token left the prefill pool then
                state.last_token_s = call.last_token_s
        if self.lora is not None and call.adapter is not None and self.lora.hold(state, now):
            return  # it waits for its adapter's slot, then ``enqueue``
        self.enqueue(state, now)

    def enqueue(self, state: SeqState, now: float) -> None:
        """Queue a submitted call that may be scheduled now (its adapter, if any, in a slot)."""
        self.waiting.append(state)
        if self._state == _IDLE:  # wake at this instant, after whatever else happens now
            self._state = _WAKING
            self._at(now, 0.0, self._wake)
        elif self._state == _RUN:
            self._cut_run(now)

    # ---- events -------------------------------------------------------------------------------

    def _at(self, now: float, delay: float, handler: Handler) -> None:
        """Fire ``handler`` after ``delay`` (``now``: the clock) as the current timer (its
        ticket, the timer's ``arg``, is the latest)."""
        self._ticket += 1
        self._calendar.at(now + delay, handler, self._ticket)  # now + delay: a timeout's sum

    def on_wake(self, ticket: int, now: float) -> None:
        """An idle server woke for a queued call."""
        if ticket == self._ticket:
            self._state = _BUSY
            self._next_iteration(now)

    def on_step_end(self, ticket: int, now: float) -> None:
        """The iteration in flight (``_start_step``) ended."""
        if ticket == self._ticket:
            self._on_step_end(now)

    def on_run_end(self, ticket: int, now: float) -> None:
        """A decode run (``_start_run``) ended, or the iteration at which a newcomer cut it."""
        if ticket == self._ticket:  # else a run end that a newcomer cut short
            self._on_run_end(now)

    def _next_iteration(self, now: float) -> None:
        """Schedule the next iteration and start it (or go idle); ``now``: the clock, read once
        per event."""
        decode = self.decode
        decoding = True
        if self.waiting or self.prefilling:
            chunks, decoding = self.scheduler.schedule(self, now)
        elif not decode.n:
            self._state = _IDLE
            return
        else:  # the common case: only decoding sequences, each takes one more KV token (a burst: more)
            if self._spec_decode is None:
                need = decode.by_phase[-decode.t % self.block]  # decode.next_blocks(), inlined
            else:
                need = decode.next_blocks()
            if need <= self.free_blocks:
                self.free_blocks -= need
                chunks = []
            else:
                chunks, decoding = self.scheduler.schedule(self, now)
        if not chunks and (not decoding or not decode.n):
            self._state = _IDLE
            return
        stats = self.stats
        stats.kv_times.append(now)
        stats.kv_used.append(self.total_blocks - self.free_blocks)
        if (
            not chunks
            and self.max_skip > 1
            and self._pending_swap_s == 0
            and self._paused_s == 0  # after a hold, one step first: it carries the held decoders' wait
            and (self._runs_while_waiting or not self.waiting)
        ):
            self._start_run(now)
        else:
            self._start_step(chunks, decoding, now)

    # ---- primitives of a scheduler (hetsim.sim.scheduler) --------------------------------------

    def allocate(self, chunks: list[Chunk], decoding: bool) -> bool:
        """Take the KV blocks of ``chunks`` and, when ``decoding``, of one more token (a burst,
        speculating) of every decoding sequence; False (nothing taken) when they are not all free."""
        decode, block = self.decode, self.block
        need = decode.next_blocks() if decoding and decode.n else 0
        for state, take in chunks:
            need += -(-(state.kv_tokens + take) // block) - state.blocks
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        for state, take in chunks:
            state.blocks = -(-(state.kv_tokens + take) // block)
        self.decode_blocks_taken = decoding
        return True

    def admit_waiting(self, chunks: list[Chunk], budget: int, now: float, whole: bool, reserve_blocks: int) -> int:
        """Admit queued calls in order while ``budget`` tokens, sequence slots and KV blocks
        (beyond ``reserve_blocks``) last; a prefill joins ``chunks``, chunked to the budget
        left unless ``whole`` (a whole prompt, alone when it exceeds the budget), a call ready
        to decode (prefilled elsewhere, swapped out) joins the decoding sequences. Returns the
        budget left."""
        waiting, running, decode = self.waiting, self.running, self.decode
        while waiting and budget > 0 and len(running) < self.max_num_seqs:
            state = waiting[0]
            limit = budget if chunks or not whole else max(budget, self._max_context)
            take = self._admit(state, limit, now, whole, reserve_blocks)
            if not take:
                break
            if state.prefilled >= state.prefill_target:  # decode-ready: prefilled elsewhere or swapped
                decode.add(state)
                # its next token's gap runs from its previous one: the wait is a stall
                self._stalled.append((state, now - state.last_token_s - self._paused_s, True))
            else:
                self.prefilling.append(state)
                chunks.append((state, take))
            budget -= take
        return budget

    def schedule_preempting(self, budget: int, decode_first: bool) -> tuple[int, list[Chunk]]:
        """The scheduling loop sequence by sequence in running order (decoding sequences first
        when ``decode_first``), each taking its token or its prefill chunk of ``budget`` and
        preempting from the back of the running list when KV blocks run out (vLLM's order).
        Returns (budget left, prefill chunks); the decoding sequences that stay advance."""
        decode = self.decode
        for state in self.running:
            if state.token >= 0:
                decode.remove(state)
        plan: list[Chunk] = []
        order = tuple(self.running)
        if decode_first:
            order = tuple(
                [s for s in order if s.prefilled >= s.prefill_target]
                + [s for s in order if s.prefilled < s.prefill_target]
            )
        for state in order:
            if not state.is_running:
                continue  # preempted below while making room
            take = decode.burst_of(state) if state.prefilled >= state.prefill_target else min(state.prefill_target - state.prefilled, budget)
            if take <= 0:
                continue
            while not self._grant(state, take, 0):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is state:
                    break
            if state.is_running:
                plan.append((state, take))
                budget -= take
        chunks = []
        for state, take in plan:
            if state.prefilled >= state.prefill_target:
                decode.add(state)
            else:
                chunks.append((state, take))
        self.prefilling = [state for state in self.running if state.token < 0]
        self.decode_blocks_taken = True
        return budget, chunks

    def _grant(self, state: SeqState, extra_tokens: int, reserve_blocks: int) -> bool:
        need = max(0, -(-(state.kv_tokens + extra_tokens) // self.block) - state.blocks)
        if need > self.free_blocks - reserve_blocks:
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

    def _admit(self, state: SeqState, budget: int, now: float, whole: bool, reserve_blocks: int) -> int:
        """Admit the head of the queue if its tokens fit ``budget`` and its KV the free blocks
        beyond ``reserve_blocks``; returns the tokens it computes this step (0: not admitted).

        A fresh or recomputing call first takes its cached prefix; a swapped-out call needs its
        KV back (and pays the swap-in); a call prefilled elsewhere needs blocks for its prompt.
        """
        if self.prefix_caching and state.prefilled == 0 and not state.call.prefilled_elsewhere:
            self._apply_prefix_cache(state)
        if state.prefilled >= state.prefill_target:  # in decode (a queued call has tokens left)
            take = self.decode.burst_of(state)
        elif whole:
            take = state.prefill_target - state.prefilled
        else:
            take = min(state.prefill_target - state.prefilled, budget)
        if take > budget or not self._grant(state, take, reserve_blocks):
            if state.prefilled == state.cached_tokens and not state.swapped and not state.call.prefilled_elsewhere:
                state.prefilled = state.kv_tokens = 0  # the cache hit is re-checked next time
            return 0
        if state.swapped:
            self._pending_swap_s += state.kv_tokens * self.replica.kv_bytes_per_token_per_device / self.swap_bandwidth
            state.swapped = False
        if self.prefix_caching:
            self._fit_cache()  # the blocks just taken come out of the cache's room
        self.waiting.popleft()
        self.running.append(state)
        state.is_running = True
        if math.isnan(state.admitted_s):
            state.admitted_s = now
        return take

    def _fit_cache(self) -> None:
        """Bound the prefix cache by the free KV blocks (in the trace's prefix-block size),
        evicting its least recent blocks. Called where memory is taken at moments event skipping
        and the per-iteration reference share (an admission, a prefill's end), so the two see the
        same cache; a decode step's new blocks are counted at the next of them."""
        self.cache.fit(self.free_blocks * self.block // self._prefix_block_tokens)

    def _apply_prefix_cache(self, state: SeqState) -> None:
        keys = state.call.prefix_keys
        cache = self.cache
        hint = cache.probed_hits if keys is cache.probed_keys else -1  # checked by the cache
        state.prefix_hits = hits = cache.use_leading(keys, hint)
        cached = min(hits * state.call.prefix_block_tokens, state.prefill_target - 1)
        state.cached_tokens = max(state.cached_tokens, cached)
        state.prefilled = state.kv_tokens = max(cached, 0)

    def _remember_prefix(self, state: SeqState) -> None:
        if self.prefix_caching:
            self._fit_cache()
            self.cache.remember(state.call.prefix_keys, state.prefix_hits)

    # ---- one iteration (prefill chunks, perhaps with decodes) ---------------------------------

    def _start_step(self, chunks: list[Chunk], decoding: bool, now: float) -> None:
        """Price and start one iteration: ``chunks`` and, when ``decoding``, a token of every
        decoding sequence."""
        decode = self.decode
        batch = [(take, state.kv_tokens) for state, take in chunks]
        decodes = decode.n if decoding else 0
        seen = decode.keys_seen() if decoding else []
        if self._spec is None:
            seconds = self.pricer.step_seconds_of(decodes, seen, batch)
        else:
            seconds = self._spec.iteration_s(decodes, seen, batch)
        seconds += self._pending_swap_s
        if self.lora is not None:  # the adapter kernels of the step's LoRA tokens
            seconds += self.lora.step_s(self, chunks, decoding)
        self._pending_swap_s = 0.0
        self.stats.events += 1
        self._chunks, self._step_s, self._batch = chunks, seconds, decodes + len(chunks)
        self._decoding = decoding
        self._state = _STEP
        self._at(now, seconds, self._step_end)

    def _on_step_end(self, now: float) -> None:
        seconds, decode, stats = self._step_s, self.decode, self.stats
        self._state = _BUSY
        stats.busy_s += seconds
        stats.steps += 1
        stats.batch_size_time += self._batch * seconds
        if self._decoding:
            completed = self._advance_one(seconds, now)
        else:  # the decoders were held: their next token's gap grows by the step
            completed = []
            if decode.n:
                self._paused_s += seconds
        for state, take in self._chunks:
            state.kv_tokens += take
            state.prefilled += take
            if state.prefilled < state.prefill_target:
                continue
            self._remember_prefix(state)
            self.prefilling.remove(state)
            if self._prefill_only:
                self._emit_first(state, now)
                self._finish(state, "prefilled", now)
                continue
            self._emit_token(state, now)
            if state.generated >= state.call.output_tokens:
                completed.append(state)
            else:
                decode.add(state)
                if self._paused_s:  # it joins held decoders: its gap runs from its first token
                    self._stalled.append((state, -self._paused_s, False))
        if completed:
            self._finish_all(completed, now)
        self._next_iteration(now)

    def _advance_one(self, seconds: float, now: float) -> list[SeqState]:
        """Every decoding sequence took a token in a step of ``seconds`` ending ``now``; returns
        those that finished. After a hold, the gap of the decoders that were held is the hold
        plus the step; those that joined meanwhile have theirs recorded apart (``_stalled``)
        and skip this iteration in the decode set's record of the longest gap."""
        decode, paused = self.decode, self._paused_s
        if not paused:
            self._record_gaps(seconds, decode.n)
            return decode.advance(1, seconds, now)
        joined = [entry[0] for entry in self._stalled if entry[0].token >= 0]
        gap_s = paused + seconds
        self._record_gaps(gap_s, decode.n)
        completed = decode.advance(1, gap_s, now)
        for state in joined:
            state.joined_at = decode.iterations_recorded
            state.last_token_s = now
        self._paused_s = 0.0
        return completed

    # ---- a run of decode-only iterations (hetsim.sim.decode_runs) ------------------------------

    def _start_run(self, now: float) -> None:
        """Price the decode-only iterations up to the next membership change at once and sleep
        until their end; the first iteration's KV blocks are taken."""
        decode, spec, spec_decode = self.decode, self._spec, self._spec_decode
        if spec is None or spec_decode is None:  # set together: both or neither
            times, steps, stepwise = plain_run(
                decode, self.pricer, self.replica, self.running, self.free_blocks, self.max_skip, self.block
            )
            if stepwise:
                self.stats.stepwise_runs += 1
        else:
            times, steps = speculative_run(spec_decode, spec, self.free_blocks, self.max_skip)
        if self.lora is not None:  # each iteration's adapter kernels, as _start_step adds them
            times = times.plus_s(self.lora.step_s(self, [], True))
        self._run = DecodeRun(times, steps, now)
        self.stats.events += 1
        self._state = _RUN
        self._at(now, times.end_s(steps), self._run_end)

    def _cut_run(self, now: float) -> None:
        """A request arrived (``now``): stop at the end of the iteration in flight."""
        run = self._run
        assert run is not None  # in state _RUN
        self._state = _CUT
        self._at(now, run.cut(now), self._run_end)

    def _on_run_end(self, now: float) -> None:
        run, decode, stats = self._run, self.decode, self.stats
        assert run is not None  # in state _RUN or _CUT
        self._state = _BUSY
        done, times = run.done, run.times
        self.free_blocks -= run.later_blocks(decode)  # kept free when the run was priced; taken now
        elapsed = times.end_s(done)
        stats.busy_s += elapsed
        stats.steps += done
        stats.batch_size_time += decode.n * elapsed
        if self._stalled:  # the first step's gap of a member that joined after a stall is longer
            self._record_gaps(times.step_s(0), decode.n)
            self.gaps.add_run(times, 1, done, decode.n)
        else:
            self.gaps.add_run(times, 0, done, decode.n)
        completed = decode.advance(done, times.max_step_s(done), run.start_s + elapsed)
        if completed:
            self._finish_all(completed, now)
        self._next_iteration(now)

    # ---- bookkeeping ------------------------------------------------------------------------

    def _tokens_of(self, call: LlmCall) -> int:
        """The tokens a call brings to this replica, as token-weighted routing counts them: its
        prompt and its output (one token on a prefill replica)."""
        return call.prompt_tokens + (1 if self._prefill_only else call.output_tokens)

    def _emit_first(self, state: SeqState, now: float) -> None:
        if math.isnan(state.first_token_s):
            state.first_token_s = now
        state.last_token_s = now

    def _emit_token(self, state: SeqState, end: float) -> None:
        """A prefill (or its recomputation after a preemption) ends with a token at ``end``."""
        if state.generated == 0:
            state.first_token_s = end
        else:  # recomputed: the gap since its previous token spans the preemption
            gap = end - state.last_token_s
            self.gaps.add(gap, 1)
            state.max_gap_s = max(state.max_gap_s, gap)
            state.stall_s = max(state.stall_s, gap)
        state.generated += 1
        state.last_token_s = end

    def _record_gaps(self, step_s: float, members: int) -> None:
        """The gaps of one iteration of ``step_s`` for the ``members`` of the decode batch; those
        that joined after a stall waited it too, those that joined during a hold waited less
        (``_stalled``; one that left the batch before this token has none)."""
        stalled = self._stalled
        if not stalled:
            self.gaps.add(step_s, members)
            return
        apart = 0
        for entry in stalled:
            if entry[0].token >= 0:
                apart += 1
        self.gaps.add(step_s, members - apart)
        for state, extra_s, is_stall in stalled:
            if state.token < 0:
                continue
            gap = extra_s + step_s
            self.gaps.add(gap, 1)
            state.max_gap_s = max(state.max_gap_s, gap)
            if is_stall:
                state.stall_s = max(state.stall_s, gap)
        stalled.clear()

    def _finish_all(self, completed: list[SeqState], now: float) -> None:
        """Completed sequences leave in running order."""
        if len(completed) > 1:
            completed.sort(key=self.running.index)
        for state in completed:
            self._finish(state, "completed", now)

    def _finish(self, state: SeqState, reason: str, now: float) -> None:
        if state.token >= 0:
            self.decode.remove(state)
        self.running.remove(state)
        self._loads[self._slot] -= 1
        self._token_loads[self._slot] -= self._tokens_of(state.call)
        state.is_running = False
        self.free_blocks += state.blocks
        state.blocks = 0
        if self.lora is not None and state.call.adapter is not None:
            self.lora.release(state, now)
        self.on_done(state, reason, now)


class ServerEvent(Handler):
    """A kind of event of a server (a subclass per kind: its ``fire`` calls the method that handles it)."""

    def __init__(self, server: LlmServer) -> None:
        self.server = server


class Wake(ServerEvent):
    """An idle server's wake-up for a queued call."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.server.on_wake(arg, now)


class StepEnd(ServerEvent):
    """The end of a server's iteration."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.server.on_step_end(arg, now)


class RunEnd(ServerEvent):
    """The end of a server's decode run."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.server.on_run_end(arg, now)
