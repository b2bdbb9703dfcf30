"""Synthesize canonical agent traces from a workload spec (pure; seeded; deterministic).

``synthesize`` draws session start times from the arrival process, then expands each
session by walking the workload graph: branch edges by probability, loop edges by the loop
count, parallel edges as sibling branches (shared parent) that meet at a join step (several
parents). LLM calls with a ``context`` grow one conversation, so later calls carry the
earlier context as their cached prefix.

Conventions of the output (also written into ``TraceMeta.extra``):

* every step's ``arrival_s`` is its session's start; a step starts once its parents finish,
  which only the simulator can tell;
* ``reasoning_tokens`` are decoded in addition to ``output_tokens`` and are not carried in
  the conversation context;
* ``units`` is in the unit named per node in ``extra['node_units']`` (audio seconds, CPU
  seconds, documents, ...).

Sampling is vectorised: each distribution draws blocks of values from its own stream, so a
trace depends only on the spec, the arrival process, the duration and the seed.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetsim.errors import WorkloadError
from hetsim.specs.distribution import ConstantDist, UniformDist
from hetsim.specs.workload import AnyArrival, AnyNode, WorkloadSpec
from hetsim.specs.workload_graph import Outgoing, fanout_joins, outgoing, resolve_entry
from hetsim.workload import nodes as node_makers
from hetsim.workload.arrivals import arrival_times, with_rate
from hetsim.workload.sampling import Draw, make_stream
from hetsim.workload.trace import TraceMeta, TraceStep

MAX_STEPS_PER_SESSION = 1_000_000


@dataclass(frozen=True)
class SyntheticTrace:
    """A synthesized trace: its metadata and its steps in session, then issue order."""

    meta: TraceMeta
    steps: list[TraceStep]


@dataclass(frozen=True)
class _Choice:
    targets: tuple[str, ...]
    cumulative: tuple[float, ...]


@dataclass(frozen=True)
class _Route:
    """What to do at one node: make its step, then fan out, loop or branch."""

    make: node_makers.StepMaker
    parallel: tuple[tuple[str, Draw], ...]
    loop_count: Draw | None
    loop_choice: _Choice | None
    choice: _Choice | None


class _Walker:
    """Walks one session at a time through the compiled graph, appending steps."""

    def __init__(self, spec: WorkloadSpec, rng: np.random.Generator) -> None:
        self.uniform = make_stream(UniformDist(dist="uniform", low=0.0, high=1.0), rng)
        self.entry = resolve_entry(spec)
        self.joins = frozenset(j for j in fanout_joins(spec).values() if j is not None)
        self.routes = {
            name: _route(name, node, out, rng)
            for (name, node), out in zip(spec.nodes.items(), outgoing(spec).values(), strict=True)
        }
        self.session_id, self.arrival_s, self._first = "", 0.0, 0
        self.steps: list[TraceStep] = []
        self.contexts: dict[tuple[str, str | None], int] = {}
        self.adapters: dict[str, str] = {}
        self._counters: dict[tuple[str, str | None], int] = {}

    def session(self, session_id: str, arrival_s: float, steps: list[TraceStep]) -> None:
        """Append the steps of one session to ``steps``."""
        self.session_id, self.arrival_s, self.steps, self._first = session_id, arrival_s, steps, len(steps)
        self.contexts, self._counters = {}, {}
        self.adapters: dict[str, str] = {}  # node -> the LoRA adapter this session's calls of it name
        self._walk(self.entry, (), None, 0)

    def _walk(
        self, current: str, parents: tuple[int, ...], branch: str | None, depth: int
    ) -> tuple[tuple[int, ...], str | None]:
        """Walk from ``current``; return the last step ids and the join node reached (if in a branch)."""
        steps, routes = self.steps, self.routes
        while True:
            route = routes[current]
            step_id = len(steps) - self._first
            if step_id >= MAX_STEPS_PER_SESSION:
                raise WorkloadError(f"session {self.session_id}: more than {MAX_STEPS_PER_SESSION:,} steps")
            steps.append(route.make(self, step_id, parents, branch))
            if route.parallel:
                tails, join = self._fan_out(route, step_id, branch, depth)
                if join is None:
                    return tails, None
                current, parents = join, tails
                continue
            following = self._next(current, route, branch)
            if following is None:
                return (step_id,), None
            if depth and following in self.joins:
                return (step_id,), following
            current, parents = following, (step_id,)

    def _fan_out(
        self, route: _Route, step_id: int, branch: str | None, depth: int
    ) -> tuple[tuple[int, ...], str | None]:
        tails: list[int] = []
        join: str | None = None
        for target, copies in route.parallel:
            for copy in range(copies()):
                if target in self.joins:  # a branch with no work of its own
                    tails.append(step_id)
                    join = target
                    continue
                label = f"{branch}/{target}#{copy}" if branch else f"{target}#{copy}"
                ends, reached = self._walk(target, (step_id,), label, depth + 1)
                tails.extend(ends)
                join = join or reached
        return tuple(dict.fromkeys(tails)), join

    def _next(self, node: str, route: _Route, branch: str | None) -> str | None:
        if route.loop_count is not None:
            key = (node, branch)
            remaining = self._counters.get(key)
            if remaining is None:
                remaining = route.loop_count()
            if remaining > 0:
                self._counters[key] = remaining - 1
                return self._choose(route.loop_choice)  # type: ignore[arg-type]
            self._counters.pop(key, None)
        return None if route.choice is None else self._choose(route.choice)

    def _choose(self, choice: _Choice) -> str:
        if len(choice.targets) == 1:
            return choice.targets[0]
        index = bisect_right(choice.cumulative, self.uniform())
        return choice.targets[min(index, len(choice.targets) - 1)]


def _route(name: str, node: AnyNode, out: Outgoing, rng: np.random.Generator) -> _Route:
    make = node_makers.compile_node(name, node, rng)
    loop = out.loop
    loop_count = make_stream(loop.iterations, rng, True, 0, loop.max_iterations) if loop is not None else None
    parallel = tuple(
        (e.to, make_stream(e.copies or ConstantDist(value=1), rng, True, 1, e.max_copies)) for _, e in out.parallel
    )
    return _Route(make, parallel, loop_count, _choice(out.loops), _choice(out.branches))


def _choice(edges: tuple[tuple[int, Any], ...]) -> _Choice | None:
    if not edges:
        return None
    probabilities = np.array([1.0 if e.probability is None else e.probability for _, e in edges])
    return _Choice(tuple(e.to for _, e in edges), tuple(np.cumsum(probabilities / probabilities.sum()).tolist()))


def expand_sessions(spec: WorkloadSpec, start_times: np.ndarray, rng: np.random.Generator) -> list[TraceStep]:
    """The steps of one session per start time; session ids are ``s000000``, ``s000001``, ..."""
    walker = _Walker(spec, rng)
    width = max(6, len(str(max(len(start_times) - 1, 0))))
    steps: list[TraceStep] = []
    for index, start in enumerate(np.asarray(start_times, dtype=float).tolist()):
        walker.session(f"s{index:0{width}d}", start, steps)
    return steps


def synthesize(spec: WorkloadSpec, duration_s: float, seed: int, rate_per_s: float | None = None) -> SyntheticTrace:
    """A trace of ``spec`` over ``duration_s`` seconds; ``rate_per_s`` overrides the mean arrival rate.

    The same spec, duration, rate and seed always give the same trace: arrivals and session
    contents use two independent streams spawned from ``seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise WorkloadError(f"seed: expected an integer >= 0, got {seed!r}")
    arrival = spec.arrival if rate_per_s is None else with_rate(spec.arrival, rate_per_s)
    arrival_seed, session_seed = np.random.SeedSequence(int(seed)).spawn(2)
    starts = arrival_times(arrival, duration_s, np.random.default_rng(arrival_seed))
    steps = expand_sessions(spec, starts, np.random.default_rng(session_seed))
    return SyntheticTrace(meta=_meta(spec, arrival, duration_s, int(seed), len(starts), len(steps)), steps=steps)


def _meta(
    spec: WorkloadSpec, arrival: AnyArrival, duration_s: float, seed: int, sessions: int, steps: int
) -> TraceMeta:
    return TraceMeta(
        source=f"synthetic: hetsim workload '{spec.name}'",
        format="synthetic",
        license="n/a (synthetic)",
        token_count_method="sampled from the workload spec's distributions",
        extra={
            "workload": spec.name,
            "rate_per_s": arrival.mean_rate_per_s,
            "arrival": arrival.model_dump(mode="json", exclude_none=True),
            "duration_s": duration_s,
            "seed": seed,
            "sessions": sessions,
            "steps": steps,
            "node_units": node_makers.node_units(spec),
            "step_arrival": "session start; a step starts when its parents finish",
            "reasoning_in_output": False,
        },
    )
