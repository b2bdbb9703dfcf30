"""Iteration schedulers of an LLM replica: which sequences compute how many tokens next.

A scheduler decides one iteration's batch of an ``LlmServer``; the server keeps everything
else (KV bookkeeping, prefix caching, preemption mechanics, timing, and event skipping). The
policies real engines use:

* ``chunked-prefill`` (the default; vLLM V1): every decoding sequence takes a token; prefills
  already running take chunks of the token budget in running order (a prefill ahead of
  decoders is served before them), then queued calls are admitted, the last one chunked to
  what is left. vllm-project/vllm ``vllm/v1/core/sched/scheduler.py`` (``Scheduler.schedule``).
* ``prefill-first`` (vLLM V0 without chunked prefill; SGLang's order, "run prefill first"):
  while queued calls can be admitted (whole prompts, first come first served, within the token
  budget, keeping 1% of the KV blocks free as V0's watermark), the iteration is a prefill-only
  batch and decoding sequences wait; otherwise every decoding sequence takes a token. A prompt
  longer than the budget runs alone (V0 raises its budget to the model length without
  chunking). vllm-project/vllm ``vllm/core/scheduler.py`` (``_schedule_default``:
  "Don't schedule decodes if prefills are scheduled"); sgl-project/sglang
  ``python/sglang/srt/managers/scheduler.py`` (``get_next_batch_to_run``).
* ``decode-priority`` (Sarathi-Serve's stall-free batching; vLLM V0 with chunked prefill):
  every decoding sequence takes its token first, then running prefills and admissions share
  what is left of a small per-iteration token budget (the pool's ``llm.token_budget``, default
  ``DECODE_PRIORITY_TOKEN_BUDGET``, and never more than ``max_batch_tokens``), so an iteration
  stays short and a long prompt never holds decodes back: lower token gaps, later first tokens.
  vllm-project/vllm ``vllm/core/scheduler.py`` (``_schedule_chunked_prefill``: "1. schedule as
  many decoding requests as possible"); Agrawal et al., Taming Throughput-Latency Tradeoff in
  LLM Inference with Sarathi-Serve, OSDI 2024 (the token budget).

**The contract.** ``schedule(server, now)`` returns ``(chunks, decoding)``: the prefill chunks
``(state, tokens)`` of this iteration and whether every decoding sequence takes one token in
it. It takes the KV blocks of what it schedules through the server's primitives:
``server.allocate(chunks, decoding)``, ``server.admit_waiting(...)`` and
``server.schedule_preempting(budget, decode_first)``. The server calls it only when a call waits or prefills,
or when decoding sequences need KV blocks that are not free; with nothing waiting or
prefilling, every policy lets each decoding sequence take one token per iteration, which is
what lets the server price runs of such iterations at once (event skipping). The built-in
policies admit first come, first served, so a pass that admits nothing would admit nothing at
the decode-only iterations that follow until a call arrives or leaves or KV blocks run short
(the head of the queue waits for memory, a sequence slot or budget): the server runs them at
once meanwhile. Yours is asked at every iteration while calls wait, unless it sets
``runs_while_waiting = True`` to say it keeps that promise too. A scheduler that schedules
nothing leaves the server idle until the next call arrives.

**Your own.** A pool's ``scheduler`` may be a dotted path ``package.module:Name``: an object
whose ``schedule(server, now)`` keeps the contract, or a class (or function) that makes one;
hetsim makes one per replica and checks what it returns (``ExternalScheduler``). Compose with
the built-in ones (hold one and call its ``schedule``) rather than subclassing them: in the
compiled build they are native classes, which interpreted code cannot subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hetsim.errors import ScenarioError

if TYPE_CHECKING:
    from hetsim.sim.llm_server import Chunk, LlmServer

DECODE_PRIORITY_TOKEN_BUDGET = 512
"""Tokens a decode-priority iteration computes at most, decodes included (assumed: a strict
token-gap budget; Sarathi-Serve picks its budget from the TBT target, 512 to 2048 tokens)."""
WATERMARK_SHARE = 0.01
"""KV blocks a prefill-first admission leaves free (vLLM V0's ``watermark`` default), so that
a decode step right after does not have to preempt what was just admitted."""


class Scheduler:
    """One replica's iteration scheduler (see the module docstring for the contract)."""

    def schedule(self, server: LlmServer, now: float) -> tuple[list[Chunk], bool]:
        raise NotImplementedError(f"{type(self).__name__} does not say how it schedules an iteration")


class ChunkedPrefill(Scheduler):
    """vLLM V1: decoders and running prefills in running order, then admissions, chunked."""

    def schedule(self, server: LlmServer, now: float) -> tuple[list[Chunk], bool]:
        decode = server.decode
        budget = server.max_batch_tokens
        chunks: list[Chunk] = []
        if server.prefilling:
            running, used = server.running, 0
            for position, state in enumerate(server.prefilling):
                ahead = (running.index(state) - position) * server.decode_queries  # decoders before it
                take = min(state.prefill_target - state.prefilled, budget - ahead - used)
                if take > 0:
                    chunks.append((state, take))
                    used += take
            budget -= used
        if server.allocate(chunks, True):
            budget -= decode.n * server.decode_queries
        else:
            budget, chunks = server.schedule_preempting(server.max_batch_tokens, False)
        server.admit_waiting(chunks, budget, now, False, 0)
        return chunks, True


class DecodePriority(Scheduler):
    """Sarathi-Serve: every decoder first, then prefills within what is left of the token budget."""

    def __init__(self, token_budget: int = DECODE_PRIORITY_TOKEN_BUDGET) -> None:
        self.token_budget = token_budget

    def schedule(self, server: LlmServer, now: float) -> tuple[list[Chunk], bool]:
        limit = min(self.token_budget, server.max_batch_tokens)
        budget = limit - server.decode.n * server.decode_queries
        chunks: list[Chunk] = []
        used = 0
        for state in server.prefilling:
            take = min(state.prefill_target - state.prefilled, budget - used)
            if take <= 0:
                break
            chunks.append((state, take))
            used += take
        if server.allocate(chunks, True):
            budget -= used
        else:
            budget, chunks = server.schedule_preempting(limit, True)
        server.admit_waiting(chunks, budget, now, False, 0)
        return chunks, True


class PrefillFirst(Scheduler):
    """vLLM V0 default / SGLang order: a batch of whole prompts whenever one can be admitted,
    decoding sequences waiting meanwhile; otherwise a decode iteration."""

    def schedule(self, server: LlmServer, now: float) -> tuple[list[Chunk], bool]:
        chunks: list[Chunk] = []
        reserve = int(server.total_blocks * WATERMARK_SHARE)
        server.admit_waiting(chunks, server.max_batch_tokens, now, True, reserve)
        if chunks:
            return chunks, False
        if not server.allocate(chunks, True):
            _, chunks = server.schedule_preempting(server.max_batch_tokens, False)
        return chunks, True


class ExternalScheduler(Scheduler):
    """A user's scheduler (a dotted path), its answers checked: each chunk a prefilling
    sequence of the replica with its KV blocks taken, and the decoders' blocks taken when they
    advance. A native class, so that the compiled server calls it like the built-in ones."""

    def __init__(self, user: object, name: str) -> None:
        self.user, self.name = user, name
        self.runs_while_waiting = getattr(user, "runs_while_waiting", False) is True

    def schedule(self, server: LlmServer, now: float) -> tuple[list[Chunk], bool]:
        server.decode_blocks_taken = False
        result = self.user.schedule(server, now)  # type: ignore[attr-defined]
        if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[0], list):
            raise ScenarioError(
                f"scheduler {self.name!r}: schedule() must return (chunks, decoding), a list and a bool; got {result!r:.80}"
            )
        given: list[object] = result[0]
        chunks: list[Chunk] = []
        block = server.block
        for chunk in given:
            if (
                not isinstance(chunk, tuple)
                or len(chunk) != 2
                or type(chunk[1]) is not int
                or chunk[0] not in server.prefilling
            ):
                raise ScenarioError(
                    f"scheduler {self.name!r}: chunks: expected (state, tokens) pairs of this replica's prefilling "
                    f"sequences, got {chunk!r:.80}"
                )
            state, take = chunk
            left = state.prefill_target - state.prefilled
            if not 1 <= take <= left or state.blocks * block < state.kv_tokens + take:
                raise ScenarioError(
                    f"scheduler {self.name!r}: chunk of call {state.call.call_id}: expected 1 to {left} tokens with their "
                    f"KV blocks taken (server.allocate); got {take} tokens, {state.blocks} blocks for "
                    f"{state.kv_tokens + take} KV tokens"
                )
            chunks.append((state, take))
        decoding = bool(result[1])
        if decoding and server.decode.n and not server.decode_blocks_taken:
            raise ScenarioError(
                f"scheduler {self.name!r}: decoding sequences advance without their KV blocks: take them with "
                "server.allocate(chunks, True) or server.schedule_preempting(...)"
            )
        return chunks, decoding


SCHEDULERS: dict[str, Callable[[], Scheduler]] = {
    "chunked-prefill": ChunkedPrefill,
    "prefill-first": PrefillFirst,
    "decode-priority": DecodePriority,
}
"""The built-in schedulers by the name a plan gives them (``llm.scheduler``)."""
