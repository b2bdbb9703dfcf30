"""Event skipping: a run of decode-only iterations priced at once, and its bookkeeping.

When a server's iteration would decode only, nothing can join or leave before the next
sequence finishes (or the KV cache fills, or a sequence reaches a sliding window), so the run
of identical iterations up to there is priced at once (``hetsim.perf.decode_run``) and the
server sleeps until its end. A request that arrives meanwhile cuts the run at the iteration
boundary that follows (``DecodeRun.cut``). This module decides how long a run may be and
prices it; the server (``hetsim.sim.llm_server``) schedules iterations, keeps KV blocks and
token gaps, and calls these at a run's start, cut and end.

Speculating, every iteration takes a burst of tokens per decoder, the same for the decoders of
one acceptance rate (``SpeculativeDecodeSet``), and the run is priced iteration by iteration,
each with its bursts, as the per-iteration reference prices them.

Typed for mypyc (``HETSIM_COMPILE``): plain attributes, no ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hetsim.perf.decode_run import AffineDecodeRun, ArrayDecodeRun
from hetsim.perf.llm import LlmReplica
from hetsim.perf.speculative import SpeculativeSteps
from hetsim.perf.step_pricing import StepPricer
from hetsim.sim.decode_set import DecodeSet, SpeculativeDecodeSet

if TYPE_CHECKING:
    from hetsim.sim.llm_server import SeqState

StepTimes = AffineDecodeRun | ArrayDecodeRun


class DecodeRun:
    """A run in flight: its step times, the iterations it takes (``done``: all of ``steps``
    unless a newcomer cut it) and when it began."""

    __slots__ = ("done", "start_s", "steps", "times")

    def __init__(self, times: StepTimes, steps: int, start_s: float) -> None:
        self.times, self.steps, self.done, self.start_s = times, steps, steps, start_s

    def end_s(self) -> float:
        """When the run's last iteration (``done``) ends."""
        return self.start_s + self.times.end_s(self.done)

    def cut(self, now: float) -> float:
        """A request arrived at ``now``: stop at the end of the iteration in flight; returns
        the seconds until then."""
        self.done = self.times.steps_by(now - self.start_s, self.steps)
        remaining = self.end_s() - now
        return remaining if remaining > 0 else 0.0

    def later_blocks(self, decode: DecodeSet) -> int:
        """KV blocks of the iterations after the first, which the run kept free when it was
        priced and its members take at its end (the first iteration's are taken at its start)."""
        return decode.run_blocks(self.done) if self.done > 1 else 0


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
    decode: SpeculativeDecodeSet, spec: SpeculativeSteps, free_blocks: int, max_skip: int
) -> tuple[ArrayDecodeRun, int]:
    """(iteration times, iterations) of a run of speculative iterations from the decode set's
    iteration on, priced one by one (each group of members takes its own bursts): it stops
    where a member finishes, where the KV blocks of the next iteration are not free, where a
    member reaches a sliding window, or at ``max_skip`` iterations. The first iteration's
    blocks are taken."""
    groups = [klass for klass in range(len(decode.sets)) if decode.sets[klass].n]
    remaining = [decode.sets[klass].min_remaining() for klass in groups]
    window_in = [decode.sets[klass].steps_before_window() if decode.sets[klass].unsaturated else 1 << 62 for klass in groups]
    seen = [decode.sets[klass].seen() for klass in groups]
    first_blocks = [decode.sets[klass].blocks_to_advance(decode.tokens_within(klass, 1)) for klass in groups]
    n, attention_groups = decode.n, len(decode.windows)
    times: list[float] = []
    advanced = [0] * len(groups)
    while True:
        keys = [0.0] * attention_groups
        for member, member_seen in enumerate(seen):
            for group in range(attention_groups):
                base, slope = member_seen[group]
                keys[group] += base + slope * advanced[member]
        times.append(spec.iteration_s(n, keys, []))
        steps = len(times)
        stop = steps >= max_skip
        for member, klass in enumerate(groups):
            advanced[member] = decode.tokens_within(klass, steps)
            if advanced[member] >= remaining[member] or advanced[member] >= window_in[member]:
                stop = True
        if stop:
            break
        need = 0
        for member, klass in enumerate(groups):
            need += decode.sets[klass].blocks_to_advance(decode.tokens_within(klass, steps + 1)) - first_blocks[member]
        if need > free_blocks:
            break
    return ArrayDecodeRun(np.array(times)), len(times)
