"""Wall-clock timing of one benchmark op, robust to a noisy shared machine.

The strategy: an op is timed in several *rounds* spread over the whole sweep (so a burst of
load from another process hits one round of an op, not all of them). Inside a round the op
runs back to back until ``block_s`` has passed (at least once), and the round's median is
kept. The reported time is the minimum of the round medians: the median rejects outliers
inside a round, the minimum rejects rounds that ran while the machine was busy. An op whose
two best rounds disagree by more than ``agreement`` is not trusted yet and gets extra rounds
(up to ``max_rounds``): with two threads on two cores, one busy core can stall every
parallel region of a small op, so a single clean round is not enough evidence.

A round is *clean* when the scheduler kept the process's threads waiting for a CPU for less
than ``max_wait_share`` of the round (Linux ``/proc/self/task/*/schedstat`` run delay). Only
clean rounds count while any exists; after an unclean round the sweep pauses (``QuietWaiter``)
to let the other process finish, within a fixed budget, and records what it saw.

Nothing here imports torch; the op is any callable taking the call index (ops rotate their
operands with it so that each call reads memory that is not in cache).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

OpCall = Callable[[int], object]


@dataclass(frozen=True)
class TimingPolicy:
    """How long and how often each op is timed.

    Attributes:
        rounds: passes over the whole sweep; the result is the minimum of the round medians.
        max_rounds: extra passes, over unconfirmed ops only, stop here.
        agreement: the two best round medians must agree within this fraction.
        long_op_s: ops slower than this need one clean round only.
        block_s: minimum time spent timing an op inside one round (it runs at least once).
        max_repeats: cap on calls per round (for tiny ops).
        warmup_below_s: ops faster than this get one untimed call at the start of every round;
            slower ones only in their first round (their caches and kernels stay warm).
        max_wait_share: a round whose threads waited for a CPU longer than this share of it
            is unclean (another process had the cores).
        quiet_budget_s: total time the sweep may pause for the machine to become quiet.
    """

    rounds: int = 2
    max_rounds: int = 4
    agreement: float = 0.08
    long_op_s: float = 0.25
    block_s: float = 0.03
    max_repeats: int = 50
    warmup_below_s: float = 0.05
    max_wait_share: float = 0.05
    quiet_budget_s: float = 30.0


@dataclass
class OpTiming:
    """Samples of one op, per round, with each round's scheduler wait share."""

    rounds: list[list[float]] = field(default_factory=list)
    wait_shares: list[float] = field(default_factory=list)
    is_clean: list[bool] = field(default_factory=list)
    calls: int = 0

    def _medians(self) -> list[float]:
        """Medians of the clean rounds, or of all rounds when none was clean."""
        chosen = [r for r, clean in zip(self.rounds, self.is_clean, strict=True) if clean] or self.rounds
        return sorted(statistics.median(samples) for samples in chosen)

    @property
    def seconds(self) -> float:
        """Minimum over (clean) rounds of the round median."""
        return self._medians()[0]

    @property
    def seconds_median(self) -> float:
        """Median over every sample of every round (for spread diagnostics)."""
        return statistics.median(s for samples in self.rounds for s in samples)

    @property
    def spread(self) -> float:
        """Largest (clean) round median over the smallest, minus one (0 = perfectly repeatable)."""
        medians = self._medians()
        return medians[-1] / medians[0] - 1.0

    @property
    def samples(self) -> int:
        return sum(len(samples) for samples in self.rounds)

    @property
    def clean_rounds(self) -> int:
        return sum(self.is_clean)

    def is_confirmed(self, policy: TimingPolicy) -> bool:
        """Two clean rounds whose best medians agree, or one clean round of a long op.

        A call longer than ``policy.long_op_s`` spans many scheduler time slices, so one
        clean (unpreempted) round is already an average; repeating it costs seconds.
        """
        medians = self._medians()
        if self.clean_rounds >= 1 and medians[0] >= policy.long_op_s:
            return True
        return self.clean_rounds >= 2 and medians[1] <= medians[0] * (1.0 + policy.agreement)


def scheduler_wait_ns() -> int:
    """Total time this process's threads have spent runnable but waiting for a CPU (0 if unknown)."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat", encoding="ascii") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended, or no schedstat: count nothing
    return total


def time_round(call: OpCall, timing: OpTiming, policy: TimingPolicy) -> bool:
    """Run one round of ``call``, append its samples to ``timing``; True when it was clean."""
    previous = timing.seconds if timing.rounds else 0.0
    if not timing.rounds or previous < policy.warmup_below_s:
        call(timing.calls)
        timing.calls += 1
    samples: list[float] = []
    spent = 0.0
    wait_before, started = scheduler_wait_ns(), time.perf_counter_ns()
    while not samples or (spent < policy.block_s and len(samples) < policy.max_repeats):
        start = time.perf_counter_ns()
        call(timing.calls)
        elapsed = (time.perf_counter_ns() - start) * 1e-9
        timing.calls += 1
        samples.append(elapsed)
        spent += elapsed
    wall_ns = max(time.perf_counter_ns() - started, 1)
    share = (scheduler_wait_ns() - wait_before) / wall_ns
    timing.rounds.append(samples)
    timing.wait_shares.append(round(share, 4))
    timing.is_clean.append(share <= policy.max_wait_share)
    return timing.is_clean[-1]


@dataclass
class QuietWaiter:
    """Pauses after unclean rounds (exponential backoff) within a total budget."""

    budget_s: float
    waited_s: float = 0.0
    _streak: int = 0

    def after_round(self, was_clean: bool) -> None:
        """Record a round; after an unclean one, sleep a little if the budget allows."""
        if was_clean:
            self._streak = 0
            return
        pause = min(0.1 * 2**self._streak, 2.0, self.budget_s - self.waited_s)
        self._streak += 1
        if pause > 0:
            time.sleep(pause)
            self.waited_s += pause
