"""Session arrival times for each arrival process; every function takes a numpy Generator.

Times are seconds from the trace start, sorted, all inside ``[0, duration_s)``.
"""

from __future__ import annotations

import math

import numpy as np

from hetsim.errors import WorkloadError
from hetsim.specs.workload import AnyArrival, ClosedLoopArrival, DiurnalArrival, GammaArrival, PoissonArrival
from hetsim.workload.sampling import sample

MAX_SESSIONS = 5_000_000
"""Refuse to synthesize more sessions than this in one trace (memory: about 1 KB per step)."""


def arrival_times(process: AnyArrival, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Session start times of ``process`` over ``duration_s`` seconds."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise WorkloadError(f"duration: expected a positive number of seconds, got {duration_s}")
    expected = process.mean_rate_per_s * duration_s
    if expected > MAX_SESSIONS:
        raise WorkloadError(
            f"duration: about {expected:,.0f} sessions at {process.mean_rate_per_s:g}/s; expected at most "
            f"{MAX_SESSIONS:,} per trace (shorten the duration or lower the rate)"
        )
    if isinstance(process, PoissonArrival):
        return poisson_times(process.rate_per_s, duration_s, rng)
    if isinstance(process, GammaArrival):
        return gamma_times(process.rate_per_s, process.cv, duration_s, rng)
    if isinstance(process, DiurnalArrival):
        return diurnal_times(process, duration_s, rng)
    return closed_loop_times(process, duration_s, rng)


def poisson_times(rate_per_s: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """A homogeneous Poisson process: a Poisson count, then uniform sorted times."""
    count = rng.poisson(rate_per_s * duration_s)
    return np.sort(rng.uniform(0.0, duration_s, count))


def gamma_times(rate_per_s: float, cv: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """A renewal process with gamma inter-arrival times of mean 1/rate and coefficient of variation cv."""
    shape = 1.0 / cv**2
    scale = 1.0 / (rate_per_s * shape)
    return _renewal(lambda n: rng.gamma(shape, scale, n), rate_per_s, cv, duration_s)


def _renewal(draw: object, rate_per_s: float, cv: float, duration_s: float) -> np.ndarray:
    expected = rate_per_s * duration_s
    chunk = int(expected + 6 * cv * math.sqrt(expected) + 16)
    gaps = [draw(chunk)]  # type: ignore[operator]
    total = float(gaps[0].sum())
    while total < duration_s:
        gaps.append(draw(chunk))  # type: ignore[operator]
        total += float(gaps[-1].sum())
    times = np.cumsum(np.concatenate(gaps))
    return times[times < duration_s]


def diurnal_times(process: DiurnalArrival, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals with rate mean*(1 + a cos(2 pi (t - peak_at)/period)), by thinning."""
    peak = process.mean_rate_per_s * (1 + process.amplitude)
    candidates = poisson_times(peak, duration_s, rng)
    phase = 2 * np.pi * (candidates - process.peak_at_s) / process.period_s
    keep = rng.uniform(0.0, 1.0, candidates.size) * (1 + process.amplitude) < 1 + process.amplitude * np.cos(phase)
    return candidates[keep]


def closed_loop_times(process: ClosedLoopArrival, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Each user starts a session, thinks, starts the next: open-loop starts with think-time gaps.

    A synthesized trace cannot know how long sessions take (that needs the simulator), so
    consecutive sessions of one user are separated by the think time alone; the simulator
    honours the closed loop itself from the workload spec.
    """
    mean_think = process.think_time_s.mean
    chunk = int(duration_s / mean_think * 1.1 + 8)
    starts = rng.uniform(0.0, mean_think, process.users)
    times = [_user_times(float(start), process, duration_s, chunk, rng) for start in starts]
    return np.sort(np.concatenate(times))


def _user_times(
    start: float, process: ClosedLoopArrival, duration_s: float, chunk: int, rng: np.random.Generator
) -> np.ndarray:
    parts, last = [np.array([start])], start
    while last < duration_s:
        parts.append(last + np.cumsum(sample(process.think_time_s, rng, chunk)))
        last = float(parts[-1][-1])
    times = np.concatenate(parts)
    return times[times < duration_s]


def with_rate(process: AnyArrival, rate_per_s: float) -> AnyArrival:
    """The same process with its mean session rate set to ``rate_per_s``."""
    if not math.isfinite(rate_per_s) or rate_per_s <= 0:
        raise WorkloadError(f"rate: expected a positive number of sessions per second, got {rate_per_s}")
    if isinstance(process, PoissonArrival | GammaArrival):
        return process.model_copy(update={"rate_per_s": rate_per_s})
    if isinstance(process, DiurnalArrival):
        return process.model_copy(update={"mean_rate_per_s": rate_per_s})
    raise WorkloadError("rate: a closed-loop arrival process has no rate; change its users or think_time_s instead")
