"""Replay an agent trace against a plan: sessions walk their step graphs over the fleet.

A step starts when all its parents have finished (a root step at its trace arrival time).
LLM steps go to their model's pool (aggregated), or to a prefill pool, across the KV link,
then to a decode pool (disaggregated). Non-LLM steps queue FCFS on a replica of the pool that
serves their model or node type; external steps are pure delays that use no resource.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy

from hetsim.errors import ScenarioError
from hetsim.sim.llm_server import LlmCall, LlmServer, SeqState
from hetsim.sim.policies import RouterState, policy
from hetsim.sim.records import Recorder

SYNTHETIC_PREFIX_BLOCK_TOKENS = 256
"""Block size of prefix keys made from ``cached_prefix_tokens`` (traces without hash ids)."""


@dataclass
class LlmRoute:
    """Where an LLM model's calls go: one aggregated pool, or prefill -> link -> decode."""

    pool: str
    servers: list[LlmServer]
    policy_name: str
    decode_pool: str | None = None
    decode_servers: list[LlmServer] = field(default_factory=list)
    kv_bytes_per_token: float = 0.0
    link_bandwidth_bytes_per_s: float = 0.0
    link_latency_s: float = 0.0
    state: RouterState = field(default_factory=RouterState)
    decode_state: RouterState = field(default_factory=RouterState)

    def kv_transfer_s(self, tokens: int) -> float:
        """Paper Eq. (1)-(3): KV bytes of the prompt over the prefill->decode link, plus latency."""
        return self.link_latency_s + tokens * self.kv_bytes_per_token / self.link_bandwidth_bytes_per_s


@dataclass
class WorkPool:
    """Non-LLM replicas: FCFS queues of ``concurrency`` slots each, with a service-time model."""

    name: str
    resources: list[simpy.Resource]
    service_s: Callable[[int], float]  # step index -> seconds
    policy_name: str
    state: RouterState = field(default_factory=RouterState)
    busy_s: list[float] = field(default_factory=list)

    @property
    def outstanding_view(self) -> list:
        return [_ResourceView(r) for r in self.resources]


class _ResourceView:
    def __init__(self, resource: simpy.Resource) -> None:
        self.resource = resource

    @property
    def outstanding(self) -> int:
        return self.resource.count + len(self.resource.queue)

    def cached_prefix_blocks(self, keys: tuple) -> int:
        return 0


@dataclass
class TraceTables:
    """The trace as column arrays, indexed by global step position."""

    frame: pd.DataFrame
    children: list[list[int]]
    parent_counts: np.ndarray
    roots: list[int]
    prefix_keys: list[tuple]
    prefix_block_tokens: int


def build_tables(trace: pd.DataFrame, block_size_tokens: int | None) -> TraceTables:
    """Index the steps, link parents to children, and derive prefix keys per LLM step."""
    frame = trace.reset_index(drop=True)
    sessions = frame["session_id"].tolist()  # plain lists: per-row access to Arrow columns is slow
    step_ids = frame["step_id"].tolist()
    position = {key: n for n, key in enumerate(zip(sessions, step_ids, strict=True))}
    children: list[list[int]] = [[] for _ in range(len(frame))]
    counts = np.zeros(len(frame), dtype=np.int64)
    for n, (session, parents) in enumerate(zip(sessions, frame["parents"].tolist(), strict=True)):
        for parent in parents:
            key = (session, parent)
            if key not in position:
                raise ScenarioError(f"trace: session {session!r} step {step_ids[n]} has unknown parent {parent}")
            children[position[key]].append(n)
            counts[n] += 1
    arrival = frame["arrival_s"].to_numpy(dtype=float)
    roots = sorted((n for n in range(len(frame)) if counts[n] == 0), key=lambda n: (arrival[n], n))
    keys, block = _prefix_keys(frame, block_size_tokens)
    return TraceTables(frame, children, counts, roots, keys, block)


def _prefix_keys(frame: pd.DataFrame, block_size_tokens: int | None) -> tuple[list[tuple], int]:
    hashes = frame["prefix_hash_ids"].tolist()
    if block_size_tokens and any(len(h) for h in hashes):
        return [tuple(h) for h in hashes], block_size_tokens
    block = SYNTHETIC_PREFIX_BLOCK_TOKENS
    keys: list[tuple] = []
    last: dict[str, tuple] = {}
    cached = frame["cached_prefix_tokens"].to_numpy(dtype=float, na_value=np.nan)
    sessions = frame["session_id"].tolist()
    # Only sessions in which some call reuses a whole block need keys (most public traces: none).
    reusing = {sessions[n] for n in np.flatnonzero(np.nan_to_num(cached) >= block)}
    columns = zip(sessions, frame["input_tokens"].tolist(), frame["node_type"].astype(str).tolist(), strict=True)
    for n, (session, tokens, node_type) in enumerate(columns):
        if node_type != "llm" or session not in reusing:
            keys.append(())
            continue
        shared = 0 if math.isnan(cached[n]) else int(cached[n]) // block
        previous = last.get(session, ())
        own = tuple((session, n, b) for b in range(min(shared, len(previous)), math.ceil(tokens / block)))
        keys.append(previous[: min(shared, len(previous))] + own)
        last[session] = keys[-1]
    return keys, block


@dataclass
class SimConfig:
    """Run options: ``max_skip=1`` disables decode-run skipping (the naive reference)."""

    max_skip: int = 1_000_000
    horizon_s: float | None = None


class Simulation:
    """One run: servers and pools built by the caller (``hetsim.sim.build``), a trace, records."""

    def __init__(self, env: simpy.Environment, tables: TraceTables, config: SimConfig) -> None:
        self.env, self.tables, self.config = env, tables, config
        self.recorder = Recorder()
        self.llm_routes: dict[str, LlmRoute] = {}
        self.work_pools: dict[str, WorkPool] = {}  # by pool name
        self.work_for: dict[str, str] = {}  # model name or node type -> pool name
        self._remaining = tables.parent_counts.copy()
        self._ready_s = np.full(len(tables.frame), np.nan)
        self._llm_meta: dict[int, tuple] = {}
        f = tables.frame
        self._session = f["session_id"].tolist()
        self._step_id = f["step_id"].tolist()
        self._node = f["node"].tolist()
        self._node_type = f["node_type"].astype(str).tolist()
        self._model = [m if isinstance(m, str) else None for m in f["model"].tolist()]
        self._input = f["input_tokens"].tolist()
        self._output = f["output_tokens"].tolist()
        self._duration = f["duration_s"].to_numpy(dtype=float, na_value=np.nan)

    # ---- driving ----------------------------------------------------------------------------

    def run(self) -> None:
        self.env.process(self._arrivals())
        if self.config.horizon_s is not None:
            self.env.run(until=self.config.horizon_s)
        else:
            self.env.run()

    def _arrivals(self):
        arrival = self.tables.frame["arrival_s"].to_numpy(dtype=float)
        for n in self.tables.roots:
            delay = arrival[n] - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            self._start(n)

    def _start(self, n: int) -> None:
        self._ready_s[n] = self.env.now
        node_type = self._node_type[n]
        if node_type == "llm":
            self._start_llm(n)
        elif node_type == "external":
            duration = self._duration[n]
            if math.isnan(duration) or duration < 0:
                self._finish_step(n, "", -1, self.env.now, "dropped", "external step has no duration_s")
                return
            self.env.process(self._delay(n, duration))
        else:
            self.env.process(self._serve_work(n))

    def _finish_step(self, n: int, pool: str, replica: int, start_s: float, status: str, reason: str = "") -> None:
        self.recorder.steps.append(
            (
                self._session[n],
                int(self._step_id[n]),
                self._node[n],
                self._node_type[n],
                pool,
                replica,
                float(self._ready_s[n]),
                start_s,
                self.env.now,
                status,
                reason,
            )
        )
        for child in self.tables.children[n]:
            self._remaining[child] -= 1
            if self._remaining[child] == 0:
                self._start(child)

    def _delay(self, n: int, duration: float):
        start = self.env.now
        yield self.env.timeout(duration)
        self._finish_step(n, "", -1, start, "completed")

    # ---- non-LLM work -----------------------------------------------------------------------

    def _work_pool_for(self, n: int) -> WorkPool | None:
        model = self._model[n]
        name = self.work_for.get(model) if isinstance(model, str) else None
        name = name or self.work_for.get(self._node_type[n])
        return self.work_pools.get(name) if name else None

    def _serve_work(self, n: int):
        pool = self._work_pool_for(n)
        if pool is None:  # checked before the run; kept as a guard for partial plans
            self._finish_step(n, "", -1, self.env.now, "dropped", f"no pool serves {self._node_type[n]}")
            return
        index = policy(pool.policy_name)(pool.outstanding_view, (), pool.state)
        resource = pool.resources[index]
        with resource.request() as slot:
            yield slot
            start = self.env.now
            seconds = pool.service_s(n)
            yield self.env.timeout(seconds)
            pool.busy_s[index] += seconds
        self._finish_step(n, pool.name, index, start, "completed")

    # ---- LLM calls --------------------------------------------------------------------------

    def _start_llm(self, n: int) -> None:
        route = self.llm_routes.get(self._model[n])
        if route is None:
            self._finish_step(n, "", -1, self.env.now, "dropped", f"no pool serves model {self._model[n]}")
            return
        keys = self.tables.prefix_keys[n]
        call = LlmCall(
            call_id=n,
            prompt_tokens=max(int(self._input[n]), 1),
            output_tokens=max(int(self._output[n]), 1),
            prefix_keys=keys,
            prefix_block_tokens=self.tables.prefix_block_tokens,
            arrival_s=self.env.now,
        )
        index = policy(route.policy_name)(route.servers, keys, route.state)
        self._llm_meta[n] = (route, index)
        route.servers[index].submit(call)

    def on_llm_done(self, state: SeqState, reason: str) -> None:
        """Called by a server when a call leaves it (completed, prefilled, or dropped)."""
        n = state.call.call_id
        route, index = self._llm_meta[n]
        if reason == "prefilled":
            transfer = route.kv_transfer_s(state.call.prompt_tokens)
            self.env.process(self._to_decode(n, state, route, index, transfer))
            return
        self._record_llm(n, state, route, index, reason)

    def _to_decode(self, n: int, prefill: SeqState, route: LlmRoute, index: int, transfer_s: float):
        yield self.env.timeout(transfer_s)
        call = LlmCall(
            n, prefill.call.prompt_tokens, prefill.call.output_tokens, arrival_s=self.env.now, prefilled_elsewhere=True
        )
        decode_index = policy(route.policy_name)(route.decode_servers, (), route.decode_state)
        self._llm_meta[n] = (route, index, prefill, decode_index, transfer_s)
        route.decode_servers[decode_index].submit(call)

    def on_decode_done(self, state: SeqState, reason: str) -> None:
        n = state.call.call_id
        route, index, prefill, decode_index, transfer_s = self._llm_meta[n]
        merged = SeqState(prefill.call, prefill.prefill_target)
        merged.admitted_s, merged.first_token_s = prefill.admitted_s, prefill.first_token_s
        merged.cached_tokens, merged.preemptions = prefill.cached_tokens, prefill.preemptions + state.preemptions
        merged.max_gap_s = max(
            state.max_gap_s, state.first_token_s - prefill.first_token_s if reason == "completed" else 0.0
        )
        merged.last_token_s = state.last_token_s
        self._record_llm(n, merged, route, index, reason, decode_index, transfer_s)

    def _record_llm(self, n, state, route, index, reason, decode_index=-1, transfer_s=0.0) -> None:
        completed = reason == "completed"
        done_s = state.last_token_s if completed else self.env.now
        self.recorder.llm_calls.append(
            (
                self._session[n],
                int(self._step_id[n]),
                self._model[n],
                route.pool,
                index,
                route.decode_pool or "",
                decode_index,
                float(self._ready_s[n]),
                state.admitted_s,
                state.first_token_s,
                done_s,
                int(self._input[n]),
                state.cached_tokens,
                int(self._output[n]),
                state.preemptions,
                transfer_s,
                state.max_gap_s,
                "completed" if completed else "dropped",
                "" if completed else reason,
            )
        )
        self._finish_step(
            n, route.pool, index, state.admitted_s, "completed" if completed else "dropped", "" if completed else reason
        )

    # ---- results ----------------------------------------------------------------------------

    def frames(self) -> dict[str, pd.DataFrame]:
        """Record the replicas' counters and return every record as a DataFrame."""
        recorder = self.recorder
        recorder.replicas.clear()
        recorder.kv_samples.clear()
        for route in self.llm_routes.values():
            groups = [(route.pool, route.servers)]
            if route.decode_pool:
                groups.append((route.decode_pool, route.decode_servers))
            for pool, servers in groups:
                for index, server in enumerate(servers):
                    stats = server.stats
                    peak = max((used for _, used in stats.kv_samples), default=0)
                    mean_batch = stats.batch_size_time / stats.busy_s if stats.busy_s else 0.0
                    recorder.replicas.append(
                        (
                            pool,
                            index,
                            server.replica.perf.device.name,
                            server.replica.devices,
                            stats.busy_s,
                            stats.steps,
                            stats.events,
                            mean_batch,
                            server.total_blocks,
                            peak,
                        )
                    )
                    recorder.kv_samples.extend((pool, index, t, used) for t, used in stats.kv_samples)
        for pool in self.work_pools.values():
            for index, busy in enumerate(pool.busy_s):
                capacity = pool.resources[index].capacity
                recorder.replicas.append((pool.name, index, "", 1, busy / capacity, 0, 0, float("nan"), 0, 0))
        frames = recorder.frames()
        frames["meta"] = pd.DataFrame([{"end_s": self.env.now, "steps_in_trace": len(self.tables.frame)}])
        return frames
