"""Autoscaling: pools whose replicas start and stop during a run.

A scaled pool is built with its ``max_replicas`` replicas; each is *off*, *starting*, *serving*
or *draining*. Every ``interval_s`` the pool's policy looks at a :class:`PoolObservation` and
says how many replicas the pool needs; the autoscaler clamps that to [min, max], starts the
missing ones at once (each serves after its cold start: provisioning, engine start, weight
loading) and stops surplus ones only when the last ``scale_down_window_s`` of answers all wanted
fewer (Kubernetes' HPA stabilisation window). A stopping replica first drops a starting one,
then drains a serving one: it takes no new calls and is off at the first look after its last
call left; nothing is dropped. A replica costs from the moment it starts until it is off.

Routers never see a replica that is not serving: its load in the pool's ``RouterState`` carries
``OFFLINE_LOAD`` (``hetsim.sim.policies``), so every load-reading policy passes it over and
round-robin skips it; a policy of your own that picks one is an error.

Policies are functions ``(PoolObservation) -> replicas wanted`` (or classes of them, one
instance per pool), registered by name or given by dotted path, as routing policies are.
Transitions are recorded as rows (time, pool, replica, state): the ``scaling`` frame, from which
replicas over time, replica-hours, cold starts and the calls that waited on one are derived
(``hetsim.metrics.scaling``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from hetsim.errors import ScenarioError
from hetsim.sim.calendar import CallbackHandler
from hetsim.sim.extensions import find_extension
from hetsim.sim.policies import OFFLINE_LOAD, RouterState
from hetsim.specs.plan import AutoscaleSpec

OFF: Final = 0
STARTING: Final = 1
SERVING: Final = 2
DRAINING: Final = 3
STATE_NAMES: Final = ("off", "starting", "serving", "draining")
BILLED_STATES: Final = ("starting", "serving", "draining")  # a replica costs money in these

_REPLICA_BITS: Final = 20  # a READY timer's arg: pool index << 20 | replica

DEFAULT_TARGET_UTILIZATION: Final = 0.7
"""target-utilization's set point when the plan gives none (assumed: the middle of the 50-80%
CPU targets Kubernetes' HPA walkthrough and cloud autoscalers suggest)."""
UTILIZATION_TOLERANCE: Final = 0.1
"""No change while busy share / target is within 1 +- this (Kubernetes HPA's default tolerance)."""
DEFAULT_OUTSTANDING_PER_REPLICA: Final = 8.0
"""queue-length's set point when the plan gives none (assumed)."""
SLA_QUANTILE: Final = 0.9
"""sla-headroom compares this quantile of the recent TTFTs with the objective."""


@dataclass(frozen=True)
class PoolObservation:
    """What a policy sees of one pool at one look (``now_s``), over the last ``interval_s``."""

    pool: str
    now_s: float
    interval_s: float
    serving: int
    starting: int
    draining: int
    min_replicas: int
    max_replicas: int
    busy_share: float  # mean busy share of the serving replicas over the interval
    occupancy: (
        float  # decode or aggregated LLM replicas: mean of max(KV blocks used, running / max_num_seqs) now; else NaN
    )
    outstanding: int  # calls queued or running on the serving replicas
    waiting: int  # of those, queued (not yet admitted)
    recent_ttft_s: tuple[float, ...]  # TTFTs of the pool's calls that finished in the interval (first stage only)
    target: float | None
    headroom: float

    @property
    def utilization(self) -> float:
        """How full the serving replicas are: their occupancy where it is defined (a decode or
        aggregated LLM replica batches continuously, so it is busy whenever one call runs: its
        KV memory and batch slots say how full it is, as vLLM's KV-cache usage metric does),
        else their busy share (a prefill replica, a non-LLM replica)."""
        return self.busy_share if math.isnan(self.occupancy) else self.occupancy


AutoscalePolicy = Callable[[PoolObservation], int]


def target_utilization(seen: PoolObservation) -> int:
    """Kubernetes HPA's rule: ceil(serving x utilisation / target), unchanged within the tolerance."""
    target = seen.target or DEFAULT_TARGET_UTILIZATION
    ratio = seen.utilization / target
    if abs(ratio - 1.0) <= UTILIZATION_TOLERANCE:
        return seen.serving + seen.starting
    return math.ceil(seen.serving * ratio - 1e-9)


def queue_length(seen: PoolObservation) -> int:
    """As many replicas as keep ``target`` calls outstanding on each (Knative's concurrency rule)."""
    target = seen.target or DEFAULT_OUTSTANDING_PER_REPLICA
    return math.ceil(seen.outstanding / target - 1e-9)


def sla_headroom(seen: PoolObservation) -> int:
    """Keep the recent TTFTs' 90th percentile below (1 - headroom) x the objective (``target``):
    above it, add replicas in proportion to the excess; below half of it, or with no calls and an
    empty queue, one fewer."""
    assert seen.target is not None  # the spec requires it for this policy
    limit = (1.0 - seen.headroom) * seen.target
    up = seen.serving + seen.starting
    if not seen.recent_ttft_s:
        return up if seen.outstanding else up - 1
    recent = float(np.quantile(np.asarray(seen.recent_ttft_s), SLA_QUANTILE))
    if recent > limit:
        return up + max(1, math.ceil(seen.serving * (recent / limit - 1.0)))
    return up - 1 if recent < 0.5 * limit else up


POLICIES: dict[str, AutoscalePolicy] = {
    "target-utilization": target_utilization,
    "queue-length": queue_length,
    "sla-headroom": sla_headroom,
}


def autoscale_policy(name: str) -> AutoscalePolicy:
    """The policy a plan names: a shipped one, or yours by dotted path (a class is instantiated
    here, one per pool); the answers of yours are checked."""
    found = find_extension(name, POLICIES, "autoscale.policy", "autoscale policy",
                           "a function (PoolObservation) -> replicas or a class of them")  # fmt: skip
    if name in POLICIES:
        return POLICIES[name]
    return _checked(found() if isinstance(found, type) else found, name)  # type: ignore[arg-type]


def _checked(function: Callable[[PoolObservation], object], name: str) -> AutoscalePolicy:
    def policy(seen: PoolObservation) -> int:
        wanted = function(seen)
        if isinstance(wanted, bool) or not isinstance(wanted, int | np.integer):
            raise ScenarioError(f"autoscale policy {name!r}: expected a whole number of replicas, got {wanted!r:.40}")
        return int(wanted)

    return policy


@dataclass
class ScaledPool:
    """One autoscaled pool: its replicas' routing slots and counters, their states, its policy.

    ``busy_s(i)``: seconds replica ``i`` has been busy so far; ``waiting(i)``: calls queued there;
    ``occupancy(i)``: how full replica ``i`` is now (None: not defined for this pool, whose
    busy share is its utilisation); ``cold_start_s``: seconds from a start to serving
    (``cold_start_parts`` names the parts)."""

    name: str
    spec: AutoscaleSpec
    router: RouterState
    slots: list[int]
    busy_s: Callable[[int], float]
    waiting: Callable[[int], int]
    cold_start_s: float
    cold_start_parts: dict[str, float]
    initial: int
    occupancy: Callable[[int], float] | None = None
    first_stage: bool = False  # its calls' TTFT is its own (aggregated or prefill): sla-headroom can read it
    policy: AutoscalePolicy = field(init=False)
    states: list[int] = field(init=False)
    ready_at: list[float] = field(init=False)
    last_busy: list[float] = field(init=False)
    wanted: deque = field(init=False)  # (time, replicas wanted) over the scale-down window

    def __post_init__(self) -> None:
        self.policy = autoscale_policy(self.spec.policy)
        size = len(self.slots)
        self.states = [SERVING if i < self.initial else OFF for i in range(size)]
        self.ready_at = [math.nan] * size
        self.last_busy = [0.0] * size
        self.wanted = deque()
        for index in range(self.initial, size):
            self.set_routable(index, False)

    def count(self, state: int) -> int:
        return self.states.count(state)

    def set_routable(self, index: int, routable: bool) -> None:
        """Put replica ``index`` back into (or take it out of) its routers' choice."""
        change = -OFFLINE_LOAD if routable else OFFLINE_LOAD
        slot = self.slots[index]
        self.router.loads[slot] += change
        self.router.token_loads[slot] += change

    def outstanding(self, index: int) -> int:
        load = self.router.loads[self.slots[index]]
        return load - OFFLINE_LOAD if self.states[index] != SERVING else load


class Autoscaler:
    """Looks at every scaled pool each ``interval_s`` (per pool) and starts or stops replicas;
    ``rows`` are the transitions (time, pool, replica, state)."""

    def __init__(self, calendar, pools: Sequence[ScaledPool], work_left: Callable[[int], bool],
                 recent_ttft: Callable[[str], tuple[float, ...]]) -> None:  # fmt: skip
        """``work_left(n)``: whether anything besides the autoscaler's ``n`` pending looks is left
        to happen (its looks stop when not); ``recent_ttft(pool)``: TTFTs of the pool's calls
        finished since its last look."""
        self.calendar, self.pools = calendar, list(pools)
        self.work_left, self.recent_ttft = work_left, recent_ttft
        self._look_due, self._replica_ready = CallbackHandler(self._on_look), CallbackHandler(self._on_ready)
        self.rows: list[tuple[float, str, int, str]] = []
        self._looks = 0  # looks on the calendar

    def start(self, now: float) -> None:
        for position, pool in enumerate(self.pools):
            for index, state in enumerate(pool.states):
                self.rows.append((now, pool.name, index, STATE_NAMES[state]))
            self._arm(position, now)

    def _arm(self, position: int, now: float) -> None:
        self._looks += 1
        self.calendar.at(now + self.pools[position].spec.interval_s, self._look_due, position)

    def _on_ready(self, arg: int, x: float, now: float) -> None:
        """A replica started at ``x`` is ready (``arg``: pool position << 20 | replica)."""
        self._ready(self.pools[arg >> _REPLICA_BITS], arg & ((1 << _REPLICA_BITS) - 1), x, now)

    def _on_look(self, position: int, x: float, now: float) -> None:
        """Pool ``position``'s look is due."""
        self._looks -= 1
        self._look(position, now)
        if self.work_left(self._looks):
            self._arm(position, now)

    def _set(self, pool: ScaledPool, index: int, state: int, now: float) -> None:
        was = pool.states[index]
        if (was == SERVING) != (state == SERVING):
            pool.set_routable(index, state == SERVING)
        pool.states[index] = state
        self.rows.append((now, pool.name, index, STATE_NAMES[state]))

    def _ready(self, pool: ScaledPool, index: int, due: float, now: float) -> None:
        if pool.states[index] == STARTING and pool.ready_at[index] == due:  # not stopped meanwhile
            self._set(pool, index, SERVING, now)

    def _look(self, position: int, now: float) -> None:
        pool = self.pools[position]
        for index, state in enumerate(pool.states):  # a drained replica stops
            if state == DRAINING and pool.outstanding(index) == 0:
                self._set(pool, index, OFF, now)
        wanted = self._clamped(pool, pool.policy(self._observe(pool, now)))
        window = pool.wanted
        window.append((now, wanted))
        while window and window[0][0] < now - pool.spec.scale_down_window_s:
            window.popleft()
        up = pool.count(SERVING) + pool.count(STARTING)
        if wanted > up:
            self._start(position, wanted - up, now)
            return
        settled = max(w for _, w in window)  # fewer only when the whole window wanted fewer
        if settled < up:
            self._stop(pool, up - settled, now)

    def _clamped(self, pool: ScaledPool, wanted: int) -> int:
        return min(max(wanted, pool.spec.min_replicas), pool.spec.max_replicas)

    def _observe(self, pool: ScaledPool, now: float) -> PoolObservation:
        interval = pool.spec.interval_s
        serving = [i for i, s in enumerate(pool.states) if s == SERVING]
        busy = 0.0
        for index, state in enumerate(pool.states):
            total = pool.busy_s(index)
            if state == SERVING:
                busy += min(max(total - pool.last_busy[index], 0.0) / interval, 1.0)
            pool.last_busy[index] = total
        occupancy = math.nan
        if pool.occupancy is not None and serving:
            occupancy = sum(pool.occupancy(i) for i in serving) / len(serving)
        return PoolObservation(
            pool.name, now, interval, len(serving), pool.count(STARTING), pool.count(DRAINING),
            pool.spec.min_replicas, pool.spec.max_replicas, busy / len(serving) if serving else 0.0, occupancy,
            sum(pool.outstanding(i) for i in serving), sum(pool.waiting(i) for i in serving),
            self.recent_ttft(pool.name) if pool.first_stage else (), pool.spec.target, pool.spec.headroom,
        )  # fmt: skip

    def _start(self, position: int, count: int, now: float) -> None:
        pool = self.pools[position]
        for index, state in enumerate(pool.states):
            if count == 0:
                return
            if state == OFF:
                due = now + pool.cold_start_s
                pool.ready_at[index] = due
                self._set(pool, index, STARTING, now)
                self.calendar.at(due, self._replica_ready, position << _REPLICA_BITS | index, due)
                count -= 1

    def _stop(self, pool: ScaledPool, count: int, now: float) -> None:
        """Drop starting replicas first (the latest started), then drain the serving replicas
        with the fewest calls (the highest index on ties)."""
        starting = sorted((i for i, s in enumerate(pool.states) if s == STARTING), key=lambda i: -pool.ready_at[i])
        for index in starting[:count]:
            self._set(pool, index, OFF, now)
        count -= min(count, len(starting))
        serving = sorted(
            (i for i, s in enumerate(pool.states) if s == SERVING), key=lambda i: (pool.outstanding(i), -i)
        )
        for index in serving[:count]:
            self._set(pool, index, DRAINING, now)
