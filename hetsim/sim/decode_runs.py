"""Event skipping: a run of decode-only iterations priced at once, and its bookkeeping.

When a server's iteration would decode only, nothing can join or leave before the next
sequence finishes (or the KV cache fills, or a sequence reaches a sliding window), so the run
of identical iterations up to there is priced at once (``hetsim.perf.decode_run``) and the
server sleeps until its end. A request that arrives meanwhile cuts the run at the iteration
boundary that follows (``DecodeRun.cut``). This module decides how long a run may be and
prices it; the server (``hetsim.sim.llm_server``) schedules iterations, keeps KV blocks and
token gaps, and calls these at a run's start, cut and end.

Speculating, every iteration takes a burst of tokens per decoder (``SpeculativeSteps.burst``)
and the run is priced iteration by iteration, each with its own burst, as the per-iteration
reference prices them.

Typed for mypyc (``HETSIM_COMPILE``): plain attributes, no ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hetsim.perf.decode_run import AffineDecodeRun, ArrayDecodeRun
from hetsim.perf.llm import LlmReplica
from hetsim.perf.speculative import SpeculativeSteps
from hetsim.perf.step_pricing import StepPricer
from hetsim.sim.decode_set import DecodeSet

if TYPE_CHECKING:
    from hetsim.sim.llm_server import SeqState

StepTimes = AffineDecodeRun | ArrayDecodeRun


class DecodeRun:
    """A run in flight: its step times, the iterations it takes (``done``: all of ``steps``
    unless a newcomer cut it), when it began, and the tokens each member has taken after
    each iteration (``tokens[i]``, speculating; None: one token an iteration)."""

    __slots__ = ("done", "start_s", "steps", "times", "tokens")

    def __init__(self, times: StepTimes, steps: int, start_s: float, tokens: list[int] | None = None) -> None:
        self.times, self.steps, self.done, self.start_s = times, steps, steps, start_s
        self.tokens: list[int] | None = tokens

    def end_s(self) -> float:
        """When the run's last iteration (``done``) ends."""
        return self.start_s + self.times.end_s(self.done)

    def cut(self, now: float) -> float:
        """A request arrived at ``now``: stop at the end of the iteration in flight; returns
        the seconds until then."""
        self.done = self.times.steps_by(now - self.start_s, self.steps)
        remaining = self.end_s() - now
        return remaining if remaining > 0 else 0.0

    def tokens_taken(self) -> int:
        """Tokens every member took by the end of the run (its iterations' bursts)."""
        tokens = self.tokens
        return self.done if tokens is None else tokens[self.done]

    def later_blocks(self, decode: DecodeSet) -> int:
        """KV blocks of the iterations after the first, which the run kept free when it was
        priced and its members take at its end (the first iteration's are taken at its start)."""
        done, tokens = self.done, self.tokens
        if done <= 1:
            return 0
        if tokens is None:
            return decode.run_blocks(done)
        return decode.blocks_to_advance(tokens[done]) - decode.blocks_to_advance(tokens[1])


def plain_run(
    decode: DecodeSet,
    pricer: StepPricer,
    replica: LlmReplica,
    running: list[SeqState],
    free_blocks: int,
    max_skip: int,
    block: int,
) -> tuple[StepTimes, int, bool]:
    """(step times, iterations, whether priced step by step) of a run of one-token decode
    iterations: until the first member finishes, the KV blocks run out, a member reaches a
    sliding window (then step by step), or ``max_skip``. Closed form (``affine_decode_run``)
    where the device's efficiencies are flat; else each step priced by the replica.
    ``running``: the server's running sequences, in order (the decoding ones are read when
    the run is priced step by step)."""
    steps = decode.min_remaining()
    if steps > max_skip:
        steps = max_skip
    n = decode.n
    if ((steps - 1) // block + 1) * n > free_blocks and decode.run_blocks(steps) > free_blocks:
        # the KV cache may fill first (the cheap bound says when it cannot)
        steps = decode.steps_until_full(free_blocks)
    if not decode.unsaturated or steps <= decode.steps_before_window():
        affine = pricer.affine_decode_run(n, decode.seen())
        if affine is not None:
            return affine, steps, False
    contexts = decode.contexts([state for state in running if state.token >= 0])
    return ArrayDecodeRun(replica.decode_run_times(contexts, steps)), steps, True


def speculative_run(
    decode: DecodeSet, spec: SpeculativeSteps, free_blocks: int, max_skip: int, iteration: int, first_burst: int
) -> tuple[ArrayDecodeRun, list[int]]:
    """(iteration times, tokens per member after each iteration) of a run of speculative
    iterations from the replica's ``iteration`` on: it stops where a member finishes, where
    the KV blocks of the next burst are not free, where a member reaches a sliding window, or
    at ``max_skip`` iterations. The first iteration's blocks (``first_burst``) are taken."""
    n, remaining = decode.n, decode.min_remaining()
    affine_for = decode.steps_before_window() if decode.unsaturated else 1 << 62
    seen = decode.seen()
    first_blocks = decode.blocks_to_advance(first_burst)
    times: list[float] = []
    tokens = [0]
    advanced, burst = 0, first_burst
    while True:
        times.append(spec.iteration_s(n, [keys + slope * advanced for keys, slope in seen], []))
        advanced += burst
        tokens.append(advanced)
        iteration += 1
        if advanced >= remaining or len(times) >= max_skip or advanced >= affine_for:
            break
        burst = spec.burst(iteration)
        if decode.blocks_to_advance(advanced + burst) - first_blocks > free_blocks:
            break
    return ArrayDecodeRun(np.array(times)), tokens
