"""Replay an agent trace against a plan: sessions walk their step graphs over the fleet.

A step starts when all its parents have finished (a root step at its trace arrival time).
LLM steps go to their model's pool (aggregated), or to a prefill pool, across the KV link,
then to a decode pool (disaggregated). Non-LLM steps queue FCFS on a replica of the pool that
serves their model or node type; external steps are pure delays that use no resource.

SimPy processes of your own can issue LLM calls too (``Simulation.llm_call``, returning an
event; ``hetsim.sim.process``): agents written as SimPy code against the same servers.

Speed: every step is driven by timers of the environment's calendar with native callbacks
(``hetsim.sim.calendar``: in SimPy's order, merged with its events; no process per step), the
trace is held as flat typed arrays indexed by step position, and records are appended
column-wise (``hetsim.sim.records``), so a step costs a few microseconds and a few dozen bytes.
"""

from __future__ import annotations

import gc
import math
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import simpy

from hetsim.errors import ScenarioError
from hetsim.sim.autoscale import Autoscaler
from hetsim.sim.calendar import Handler, run_until_empty
from hetsim.sim.environment import Environment
from hetsim.sim.kv_link import KvLinks
from hetsim.sim.llm_server import LlmCall, LlmServer, SeqState
from hetsim.sim.policies import Policy, RouterState, policy
from hetsim.sim.process import LlmCallRecord, prompt_keys
from hetsim.sim.records import ADAPTER_COLUMNS, SCALING_COLUMNS, Recorder
from hetsim.sim.trace_tables import SYNTHETIC_PREFIX_BLOCK_TOKENS, TraceTables, build_tables, int_array

__all__ = [
    "SYNTHETIC_PREFIX_BLOCK_TOKENS",
    "LlmRoute",
    "ServiceTime",
    "SimConfig",
    "Simulation",
    "WorkPool",
    "WorkQueue",
    "build_tables",
]

# Constants are Final: compiled, they are inlined (a plain module global is a dict lookup).
# How a step is served, by node type:
_LLM: Final = 0
_EXTERNAL: Final = 1
_WORK: Final = 2


@dataclass
class LlmRoute:
    """Where an LLM model's calls go: aggregated pools, or prefill pools -> link -> decode pools.

    A stage is usually one pool; when several pools (on different devices) share it, their
    replicas are one list here, ``server_pools`` and ``server_local`` name each replica's pool
    and its index there (records are kept per pool), and the router weighs them."""

    pool: str
    servers: list[LlmServer]
    policy_name: str
    decode_pool: str | None = None
    decode_servers: list[LlmServer] = field(default_factory=list)
    kv_links: KvLinks | None = None  # disaggregated: the prefill replicas' links to the decode pool
    state: RouterState = field(default_factory=RouterState)
    decode_state: RouterState = field(default_factory=RouterState)
    request_overhead_s: float = 0.0  # the engine's API latency before a call reaches a scheduler
    decode_policy_name: str | None = None  # the decode pool's own routing (disaggregated routes)
    server_pools: list[str] = field(default_factory=list)  # per replica: its pool (default: ``pool``)
    server_local: list[int] = field(default_factory=list)  # per replica: its index in its pool
    decode_server_pools: list[str] = field(default_factory=list)
    decode_server_local: list[int] = field(default_factory=list)
    completed_codes: dict[tuple[int, int], int] = field(default_factory=dict)  # (replica, decode replica) -> code

    policy: Policy = field(init=False, repr=False)  # resolved when built: an unknown name fails early
    decode_policy: Policy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.policy = policy(self.policy_name)
        self.decode_policy = policy(self.decode_policy_name or self.policy_name)
        if not self.server_pools:
            self.server_pools = [self.pool] * len(self.servers)
            self.server_local = list(range(len(self.servers)))

    def set_decode(self, pool: str, servers: list[LlmServer], pools: list[str] | None = None,
                   local: list[int] | None = None) -> None:  # fmt: skip
        """The decode replicas of a disaggregated route (``pools``/``local``: as ``server_pools``)."""
        self.decode_pool, self.decode_servers = pool, servers
        self.decode_server_pools = pools if pools is not None else [pool] * len(servers)
        self.decode_server_local = local if local is not None else list(range(len(servers)))


class WorkQueue:
    """One non-LLM replica: ``capacity`` slots served first come, first served."""

    __slots__ = ("_loads", "_slot", "busy", "capacity", "waiting")

    def __init__(self, capacity: int, router: RouterState) -> None:
        """``router``: the pool's routing state, where this queue keeps its load."""
        self.capacity, self.busy = capacity, 0
        self._loads, self._slot = router.loads, router.register()  # busy + waiting, what routers read
        self.waiting: deque[int] = deque()

    @property
    def outstanding(self) -> int:
        return self._loads[self._slot]

    def add_outstanding(self, change: int) -> None:
        self._loads[self._slot] += change


class ServiceTime:
    """Seconds a non-LLM step holds a slot: what the trace measured (``duration_s``, 0 where
    it has none) unless a model serves the step or it is a retrieval on a modelled index;
    those are priced by ``modelled`` (the performance models, interpreted). A native class,
    compiled, so that the common case (a tool call) costs no interpreted call."""

    def __init__(
        self,
        models: list[str | None],
        node_types: array,
        durations: array,
        modelled: Callable[[int], float],
        modelled_node_type: int = -1,
    ) -> None:
        """``modelled_node_type``: the node type code priced by ``modelled`` (-1: none)."""
        self.models, self.node_types, self.durations = models, node_types, durations
        self.modelled, self.modelled_node_type = modelled, modelled_node_type

    def seconds(self, n: int) -> float:
        if not self.models[n] and self.node_types[n] != self.modelled_node_type:
            duration: float = self.durations[n]
            return 0.0 if math.isnan(duration) else duration
        return self.modelled(n)


@dataclass
class WorkPool:
    """Non-LLM replicas: FCFS queues of ``concurrency`` slots each, with a service-time model."""

    name: str
    queues: list[WorkQueue]
    service_s: ServiceTime
    policy_name: str
    state: RouterState = field(default_factory=RouterState)
    busy_s: list[float] = field(default_factory=list)

    policy: Policy = field(init=False, repr=False)  # resolved when built: an unknown name fails early

    def __post_init__(self) -> None:
        self.policy = policy(self.policy_name)


class _ProcessCall:
    """An LLM call a SimPy process issued, until it finishes."""

    __slots__ = ("acceptance_rate", "adapter", "event", "issued_s", "keys", "model", "output_tokens", "prompt_tokens",
                 "route")  # fmt: skip

    def __init__(self, event: simpy.Event, model: str, route: LlmRoute, prompt_tokens: int, output_tokens: int,
                 keys: tuple, issued_s: float, adapter: str | None, acceptance_rate: float) -> None:  # fmt: skip
        self.event, self.model, self.route, self.keys, self.issued_s = event, model, route, keys, issued_s
        self.prompt_tokens, self.output_tokens, self.adapter = prompt_tokens, output_tokens, adapter
        self.acceptance_rate = acceptance_rate


@dataclass
class SimConfig:
    """Run options: ``max_skip=1`` disables decode-run skipping (the naive reference)."""

    max_skip: int = 1_000_000
    horizon_s: float | None = None


class Simulation:
    """One run: servers and pools built by the caller (``hetsim.sim.build``), a trace, records.

    Its events are handlers on the calendar (``Arrivals``, ``DelayEnd``, ``WorkEnd``,
    ``KvTransferEnd``, ``Submit``): each calls the method that handles it."""

    def __init__(self, env: Environment, tables: TraceTables, config: SimConfig) -> None:
        self.env, self.tables, self.config = env, tables, config
        self.calendar = env.calendar
        self.recorder = Recorder()
        self.llm_routes: dict[str, LlmRoute] = {}
        self.work_pools: dict[str, WorkPool] = {}  # by pool name
        self.work_for: dict[str, str] = {}  # model name or node type -> pool name
        f = tables.frame
        size = len(f)
        self._remaining: list[int] = np.asarray(tables.parent_counts, dtype=np.int64).tolist()  # small ints
        self._ready_s = array("d", [math.nan]) * size
        codes, names = tables.node_type_codes, tables.node_type_names
        self._node_type_names = names
        self._node_type_code = int_array(codes)
        kinds = {"llm": _LLM, "external": _EXTERNAL}
        self._kind = bytes(np.array([kinds.get(t, _WORK) for t in names] or [0], dtype=np.uint8)[codes])
        self._model = [m if isinstance(m, str) else None for m in f["model"].tolist()]
        self._input = array("q", f["input_tokens"].to_numpy(dtype=np.int64).tobytes())
        self._output = array("q", f["output_tokens"].to_numpy(dtype=np.int64).tobytes())
        self._duration = array("d", f["duration_s"].to_numpy(dtype=float, na_value=np.nan).tobytes())
        adapters = f["adapter"].tolist() if "adapter" in f.columns else [None] * size
        self._adapter: list[str | None] = [a if isinstance(a, str) else None for a in adapters]
        rates = f["acceptance_rate"] if "acceptance_rate" in f.columns else pd.Series(np.nan, index=f.index)
        self._acceptance = array("d", rates.to_numpy(dtype=float, na_value=np.nan).tobytes())  # NaN: the pool's
        self._work_pool_cache: dict[tuple[str | None, int], WorkPool | None] = {}
        self._handoffs: dict[int, tuple[SeqState, float, float]] = {}  # disaggregated: prefill state, KV transfer s, wait
        self._in_service: dict[int, tuple[WorkPool, int, float]] = {}  # step -> (pool, queue, service s)
        self._completed_codes: dict[str, int] = {}  # pool -> step code of (pool, completed)
        # Calls of SimPy processes are numbered after the trace's steps (n >= _size).
        self._size: int = size
        self._process_calls: dict[int, _ProcessCall] = {}
        self._next_process_call: int = size
        self.process_calls: list[LlmCallRecord] = []  # their records, in the order they finished
        self.autoscaler: Autoscaler | None = None  # set by the builder when a pool autoscales
        self._ttft_cursor = 0  # llm_calls rows read for the autoscaler's recent TTFTs
        self._recent_ttft: dict[str, list[float]] = {}
        self._arrivals, self._delay_end, self._work_end = Arrivals(self), DelayEnd(self), WorkEnd(self)
        self._kv_transfer_end, self._submit = KvTransferEnd(self), Submit(self)

    # ---- driving ----------------------------------------------------------------------------

    def run(self) -> None:
        """Run to the end of the trace (or the horizon). The cyclic garbage collector is held
        off meanwhile: the run allocates millions of short-lived acyclic objects (events,
        states), and collections scanning the long-lived trace and records would cost a
        third of the run while freeing nothing."""
        self._arrival = array("d", self.tables.frame["arrival_s"].to_numpy(dtype=float).tobytes())
        self._next_root = 0
        self.calendar.at(self.env.now, self._arrivals, 0)
        if self.autoscaler is not None:
            self.autoscaler.start(self.env.now)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            if self.config.horizon_s is not None:
                self.env.run(until=self.config.horizon_s)
            else:
                run_until_empty(self.env, self.calendar)
        finally:
            if was_enabled:
                gc.enable()

    def on_arrivals(self, due: int, now: float) -> None:
        """The trace's next root is due (``due`` 1; 0 for the first look at the trace)."""
        if due:  # the root whose arrival this timer waited for
            self._next_root += 1
            self._start(self.tables.roots[self._next_root - 1], now)
        self._schedule_arrivals(now)

    def on_delay_end(self, n: int, start_s: float, now: float) -> None:
        """Step ``n``'s fixed delay (an external call's duration), begun at ``start_s``, ended."""
        self._finish_coded(n, self._completed_code(""), -1, start_s, now)

    def _schedule_arrivals(self, now: float) -> None:
        """Start the roots due now, then sleep until the next one."""
        roots, arrival = self.tables.roots, self._arrival
        while self._next_root < len(roots):
            n: int = roots[self._next_root]
            delay: float = arrival[n] - now
            if delay > 0:
                self.calendar.at(now + delay, self._arrivals, 1)  # now + delay: a timeout's sum
                return
            self._next_root += 1
            self._start(n, now)

    # Handlers read the clock once (``now``) and hand it down: a step's start can start others.

    def _start(self, n: int, now: float) -> None:
        self._ready_s[n] = now
        kind = self._kind[n]
        if kind == _LLM:
            self._start_llm(n, now)
        elif kind == _EXTERNAL:
            duration: float = self._duration[n]  # typed: an array's items are Any to mypyc
            if math.isnan(duration) or duration < 0:
                self._finish_step(n, "", -1, now, now, "dropped", "external step has no duration_s")
                return
            self.calendar.at(now + duration, self._delay_end, n, now)
        else:
            self._serve_work(n, now)

    def _node_type(self, n: int) -> str:
        return self._node_type_names[self._node_type_code[n]]

    def _finish_step(
        self, n: int, pool: str, replica: int, start_s: float, now: float, status: str, reason: str = ""
    ) -> None:
        self._finish_coded(n, self.recorder.step_codes.code((pool, status, reason)), replica, start_s, now)

    def _completed_code(self, pool: str) -> int:
        """The step code of (pool, completed) (the hot case, looked up by the pool name alone)."""
        code = self._completed_codes.get(pool)
        if code is None:
            code = self._completed_codes[pool] = self.recorder.step_codes.code((pool, "completed", ""))
        return code

    def _finish_coded(self, n: int, code: int, replica: int, start_s: float, now: float) -> None:
        """Record step ``n`` (``code``: its pool, status and reason) and start the children it frees."""
        steps = self.recorder.steps
        steps.ints.extend((n, code, replica))
        steps.floats.extend((start_s, now))
        remaining, child_list, start = self._remaining, self.tables.child_list, self.tables.child_start
        first: int = start[n]  # typed, so that the loop and the indexing compile native
        stop: int = start[n + 1]
        for index in range(first, stop):
            child: int = child_list[index]
            left = remaining[child] - 1
            remaining[child] = left
            if left == 0:
                self._start(child, now)

    # ---- non-LLM work -----------------------------------------------------------------------

    def _work_pool_for(self, n: int) -> WorkPool | None:
        key = (self._model[n], self._node_type_code[n])
        if key not in self._work_pool_cache:
            model, node_type = self._model[n], self._node_type(n)
            name = self.work_for.get(model) if isinstance(model, str) else None
            name = name or self.work_for.get(node_type)
            self._work_pool_cache[key] = self.work_pools.get(name) if name else None
        return self._work_pool_cache[key]

    def _serve_work(self, n: int, now: float) -> None:
        pool = self._work_pool_for(n)
        if pool is None:  # checked before the run; kept as a guard for partial plans
            self._finish_step(n, "", -1, now, now, "dropped", f"no pool serves {self._node_type(n)}")
            return
        index = pool.policy(pool.queues, (), pool.state, -1)
        queue = pool.queues[index]
        queue.add_outstanding(1)
        if queue.busy < queue.capacity:
            self._begin_work(pool, index, n, now)
        else:
            queue.waiting.append(n)

    def _begin_work(self, pool: WorkPool, index: int, n: int, now: float) -> None:
        pool.queues[index].busy += 1
        seconds = pool.service_s.seconds(n)
        self._in_service[n] = (pool, index, seconds)
        self.calendar.at(now + seconds, self._work_end, n, now)

    def on_work_end(self, n: int, start: float, now: float) -> None:
        pool, index, seconds = self._in_service.pop(n)
        pool.busy_s[index] += seconds
        queue = pool.queues[index]
        queue.busy -= 1
        queue.add_outstanding(-1)
        if queue.waiting:  # the slot goes to the longest waiter before anything new can claim it
            self._begin_work(pool, index, queue.waiting.popleft(), now)
        self._finish_coded(n, self._completed_code(pool.name), index, start, now)

    # ---- LLM calls --------------------------------------------------------------------------

    def _start_llm(self, n: int, now: float) -> None:
        route = self.llm_routes.get(self._model[n])  # type: ignore[arg-type]
        if route is None:
            self._finish_step(n, "", -1, now, now, "dropped", f"no pool serves model {self._model[n]}")
            return
        overhead: float = route.request_overhead_s
        if overhead > 0.0:  # the call reaches a scheduler after the engine's API latency
            self.calendar.at(now + overhead, self._submit, n)
            return
        self.on_submit(n, now)

    def on_submit(self, n: int, now: float) -> None:
        if n >= self._size:
            self._submit_process_call(n, now)
            return
        route = self._route_of(n)
        keys, shared = self.tables.prefix_keys.of(n)
        adapter = self._adapter[n]
        route.state.adapter = adapter  # what adapter-affinity routing reads
        index = route.policy(route.servers, keys, route.state, shared)
        prompt: int = self._input[n]
        output: int = self._output[n]
        call = LlmCall(
            n,
            max(prompt, 1),
            max(output, 1),
            keys,
            self.tables.prefix_block_tokens,
            now,
            False,
            index,
            math.nan,
            adapter,
            self._acceptance[n],
        )
        route.servers[index].submit(call, now)

    def _route_of(self, n: int) -> LlmRoute:
        if n >= self._size:
            return self._process_calls[n].route
        return self.llm_routes[self._model[n]]  # type: ignore[index]  # an LLM step's model has a route

    def on_llm_done(self, state: SeqState, reason: str, now: float) -> None:
        """Called by a server when a call leaves it (completed, prefilled, or dropped) at ``now``."""
        n, route = state.call.call_id, self._route_of(state.call.call_id)
        if reason == "prefilled":
            # paper Eq. (1)-(3): the prompt's KV bytes over the link, after those queued on it
            links = route.kv_links
            assert links is not None  # a prefill pool has its links
            transfer, wait = links.send(state.call.replica, state.call.prompt_tokens, now)
            self._handoffs[n] = (state, transfer, wait)
            self.calendar.at(now + transfer, self._kv_transfer_end, n)
            return
        self._record_llm(n, state, route, state.call.replica, reason, now)

    def on_kv_transfer_end(self, n: int, now: float) -> None:
        route, (prefill, _, _) = self._route_of(n), self._handoffs[n]
        route.decode_state.adapter = prefill.call.adapter
        decode_index = route.decode_policy(route.decode_servers, (), route.decode_state, -1)
        call = LlmCall(
            n,
            prefill.call.prompt_tokens,
            prefill.call.output_tokens,
            arrival_s=now,
            prefilled_elsewhere=True,
            replica=decode_index,
            last_token_s=prefill.last_token_s,
            adapter=prefill.call.adapter,
            acceptance_rate=prefill.call.acceptance_rate,
        )
        route.decode_servers[decode_index].submit(call, now)

    def on_decode_done(self, state: SeqState, reason: str, now: float) -> None:
        n = state.call.call_id
        prefill, transfer_s, wait_s = self._handoffs.pop(n)
        merged = SeqState(prefill.call, prefill.prefill_target)
        merged.admitted_s, merged.first_token_s = prefill.admitted_s, prefill.first_token_s
        merged.cached_tokens, merged.preemptions = prefill.cached_tokens, prefill.preemptions + state.preemptions
        # the decode pool timed the second token's gap from the first (the hand-off is a stall)
        merged.max_gap_s, merged.stall_s = state.max_gap_s, state.stall_s
        merged.last_token_s = state.last_token_s
        self._record_llm(
            n, merged, self._route_of(n), prefill.call.replica, reason, now, state.call.replica, transfer_s, wait_s
        )

    def _record_llm(
        self,
        n: int,
        state: SeqState,
        route: LlmRoute,
        index: int,
        reason: str,
        now: float,
        decode_index: int = -1,
        transfer_s: float = 0.0,
        wait_s: float = 0.0,
    ) -> None:
        if n >= self._size:
            self._finish_process_call(n, state, index, reason, now, decode_index, transfer_s)
            return
        completed = reason == "completed"
        rows = self.recorder.llm_calls
        pool: str = route.server_pools[index]
        local: int = route.server_local[index]
        decode_local = -1
        decode_pool = ""
        if decode_index >= 0:
            decode_pool = route.decode_server_pools[decode_index]
            decode_local = route.decode_server_local[decode_index]
        if completed:
            key = (index, decode_index)
            code = route.completed_codes.get(key, -1)
            if code < 0:
                code = route.completed_codes[key] = self.recorder.llm_codes.code(
                    (pool, decode_pool, "completed", "")
                )
        else:
            code = self.recorder.llm_codes.code((pool, decode_pool, "dropped", reason))
        rows.ints.extend((n, code, local, decode_local, state.cached_tokens, state.preemptions))
        done_s = state.last_token_s if completed else now
        rows.floats.extend((state.admitted_s, state.first_token_s, done_s, transfer_s, wait_s, state.max_gap_s, state.stall_s))
        if completed:
            self._finish_coded(n, self._completed_code(pool), local, state.admitted_s, now)
        else:
            self._finish_step(n, pool, local, state.admitted_s, now, "dropped", reason)

    # ---- LLM calls of SimPy processes ---------------------------------------------------------

    def llm_call(
        self, model: str, prompt_tokens: int, output_tokens: int, continues: LlmCallRecord | None = None,
        adapter: Any = None,  # str | None, checked below (compiled, an annotation would refuse others with a TypeError)
        acceptance_rate: Any = None,  # float | None, checked below
    ) -> simpy.Event:
        """Issue an LLM call now, from a SimPy process; the event succeeds with its
        ``LlmCallRecord`` when the call is over (completed or dropped). ``continues``: a call
        whose prompt and output begin this prompt (its blocks may be in a prefix cache);
        ``adapter``: the LoRA adapter it names, on a pool that serves adapters (it waits for its
        adapter's load where a replica does not hold it; adapter-affinity routing prefers one
        that does); ``acceptance_rate``: the per-token acceptance of its speculative drafts on a
        speculating pool (None: the pool's ``llm.speculation.acceptance_rate``)."""
        route = self.llm_routes.get(model)
        if route is None:
            served = ", ".join(sorted(self.llm_routes)) or "none"
            raise ScenarioError(f"llm_call: model: expected a model the plan serves ({served}), got {model!r}")
        for field_name, tokens in (("prompt_tokens", prompt_tokens), ("output_tokens", output_tokens)):
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
                raise ScenarioError(f"llm_call: {field_name}: expected a whole number of tokens >= 1, got {tokens!r}")
        if adapter is not None:
            if not isinstance(adapter, str) or not adapter:
                raise ScenarioError(f"llm_call: adapter: expected an adapter's name (a non-empty string), got {adapter!r}")
            if any(server.lora is None for server in route.servers):
                raise ScenarioError(f"llm_call: adapter: expected {model} served with LoRA (a pool's llm.lora), "
                                    f"got a call naming {adapter!r} on a pool without it")  # fmt: skip
        if acceptance_rate is not None and (
            isinstance(acceptance_rate, bool) or not isinstance(acceptance_rate, int | float) or not 0 <= acceptance_rate <= 1
        ):
            raise ScenarioError(f"llm_call: acceptance_rate: expected a number in [0, 1] or None, got {acceptance_rate!r}")
        n = self._next_process_call
        self._next_process_call = n + 1
        now = float(self.env.now)
        keys = prompt_keys(n, prompt_tokens, self.tables.prefix_block_tokens, continues)
        event = simpy.Event(self.env)
        self._process_calls[n] = _ProcessCall(
            event, model, route, prompt_tokens, output_tokens, keys, now, adapter,
            math.nan if acceptance_rate is None else float(acceptance_rate),
        )  # fmt: skip
        overhead: float = route.request_overhead_s
        if overhead > 0.0:
            self.calendar.at(now + overhead, self._submit, n)
        else:
            self._submit_process_call(n, now)
        return event

    def _submit_process_call(self, n: int, now: float) -> None:
        pending = self._process_calls[n]
        route = pending.route
        route.state.adapter = pending.adapter  # what adapter-affinity routing reads
        index = route.policy(route.servers, pending.keys, route.state, -1)
        call = LlmCall(n, pending.prompt_tokens, pending.output_tokens, pending.keys, self.tables.prefix_block_tokens,
                       now, False, index, math.nan, pending.adapter, pending.acceptance_rate)  # fmt: skip
        route.servers[index].submit(call, now)

    def _finish_process_call(
        self, n: int, state: SeqState, index: int, reason: str, now: float, decode_index: int, transfer_s: float
    ) -> None:
        pending = self._process_calls.pop(n)
        route = pending.route
        completed = reason == "completed"
        lora = route.servers[index].lora
        loaded, waited_s = lora.calls.get(n, (0, 0.0)) if lora is not None else (0, 0.0)
        record = LlmCallRecord(
            n, pending.model, route.server_pools[index], route.server_local[index],
            route.decode_server_pools[decode_index] if decode_index >= 0 else "",
            route.decode_server_local[decode_index] if decode_index >= 0 else -1,
            pending.prompt_tokens, pending.output_tokens, state.cached_tokens, state.preemptions, pending.issued_s,
            state.admitted_s, state.first_token_s, state.last_token_s if completed else now, transfer_s,
            state.max_gap_s, "completed" if completed else "dropped", "" if completed else reason, pending.keys,
            pending.adapter, bool(loaded), waited_s,
        )  # fmt: skip
        self.process_calls.append(record)
        pending.event.succeed(record)

    # ---- what the autoscaler reads -------------------------------------------------------------

    def work_left(self, autoscaler_timers: int) -> bool:
        """Whether anything is left to happen besides the autoscaler's ``autoscaler_timers``
        timers: a root to arrive, a timer or a SimPy event."""
        return (self._next_root < len(self.tables.roots) or len(self.calendar) > autoscaler_timers
                or bool(self.env._queue))  # fmt: skip

    def recent_ttft(self, pool: str) -> tuple[float, ...]:
        """TTFTs of the calls first served by ``pool`` that finished since its last look (read
        from the records appended since then)."""
        rows = self.recorder.llm_calls
        rows.ints.flush()
        rows.floats.flush()
        width_i: int = len(rows.int_fields)
        width_f: int = len(rows.float_fields)
        ints: Any = rows.ints.values  # typed arrays whose item type mypyc cannot see (a Column's typecode)
        floats: Any = rows.floats.values
        codes = self.recorder.llm_codes.values
        total: int = len(ints) // width_i
        for row in range(self._ttft_cursor, total):
            code: int = ints[row * width_i + 1]
            n: int = ints[row * width_i]
            key = codes[code]
            if key[2] == "completed" and n < self._size:
                first_token: float = floats[row * width_f + 1]
                ready: float = self._ready_s[n]
                self._recent_ttft.setdefault(key[0], []).append(first_token - ready)
        self._ttft_cursor = total
        return tuple(self._recent_ttft.pop(pool, ()))

    # ---- results ----------------------------------------------------------------------------

    def _add_adapter_frames(self, frames: dict[str, pd.DataFrame]) -> None:
        """With LoRA pools: each call's adapter, whether it loaded it and how long it waited
        (columns of ``llm_calls``), and each replica's adapter counters (``adapters``)."""
        rows: list[tuple[str, int, int, int, int, float]] = []
        waits: dict[int, tuple[int, float]] = {}
        for route in self.llm_routes.values():
            groups = [(route.server_pools, route.server_local, route.servers),
                      (route.decode_server_pools, route.decode_server_local, route.decode_servers)]  # fmt: skip
            for pools, locals_, servers in groups:
                for position, server in enumerate(servers):
                    lora = server.lora
                    if lora is None:
                        continue
                    stats = lora.stats
                    rows.append((pools[position], locals_[position], stats.loads, stats.cpu_misses, stats.evictions,
                                 stats.load_busy_s))  # fmt: skip
                    for call_id, (loaded, wait_s) in lora.calls.items():
                        before = waits.get(call_id, (0, 0.0))
                        waits[call_id] = (max(before[0], loaded), before[1] + wait_s)
        if not rows:
            return
        calls = frames["llm_calls"]
        trace = self.tables.frame
        steps = pd.MultiIndex.from_arrays([trace["session_id"].astype(str), trace["step_id"].astype(np.int64)])
        positions = steps.get_indexer(pd.MultiIndex.from_arrays([calls["session_id"].astype(str),
                                                                 calls["step_id"].astype(np.int64)])).tolist()  # fmt: skip
        calls["adapter"] = pd.Series([self._adapter[p] for p in positions], dtype=object, index=calls.index)
        calls["adapter_loaded"] = np.array([waits.get(p, (0, 0.0))[0] for p in positions], dtype=np.int64)
        calls["adapter_wait_s"] = np.array([waits.get(p, (0, 0.0))[1] for p in positions], dtype=float)
        frames["adapters"] = pd.DataFrame(rows, columns=list(ADAPTER_COLUMNS))

    def frames(self) -> dict[str, pd.DataFrame]:
        """Record the replicas' counters and return every record as a DataFrame."""
        recorder = self.recorder
        recorder.replicas.clear()
        recorder.kv_parts.clear()
        recorder.gap_parts.clear()
        recorder.links.clear()
        for route in self.llm_routes.values():
            groups = [(route.server_pools, route.server_local, route.servers)]
            if route.decode_pool:
                groups.append((route.decode_server_pools, route.decode_server_local, route.decode_servers))
            links = route.kv_links
            if links is not None:
                for index in range(len(links.busy_s)):
                    recorder.links.append((route.server_pools[index], route.server_local[index], links.transfers[index],
                                           links.bytes[index], links.busy_s[index], links.wait_s[index]))  # fmt: skip
            for pools, locals_, servers in groups:
                for position, server in enumerate(servers):
                    pool, index = pools[position], locals_[position]
                    stats = server.stats
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
                            int(stats.kv_used.numpy().max(initial=0)),
                        )
                    )
                    recorder.kv_parts.append((pool, index, stats.kv_times, stats.kv_used))
                    recorder.gap_parts.append((pool, index, *server.gaps.arrays()))
        for work in self.work_pools.values():
            for index, busy in enumerate(work.busy_s):
                capacity = work.queues[index].capacity
                recorder.replicas.append((work.name, index, "", 1, busy / capacity, 0, 0, float("nan"), 0, 0))
        frames = recorder.frames(self.tables.frame, np.frombuffer(self._ready_s, dtype=np.float64))
        self._add_adapter_frames(frames)
        frames["scaling"] = pd.DataFrame(self.autoscaler.rows if self.autoscaler is not None else [],
                                         columns=list(SCALING_COLUMNS))  # fmt: skip
        frames["meta"] = pd.DataFrame([{"end_s": self.env.now, "steps_in_trace": len(self.tables.frame)}])
        return frames


class SimulationEvent(Handler):
    """A kind of event of a run (a subclass per kind: its ``fire`` calls the method that handles it)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim


class Arrivals(SimulationEvent):
    """The trace's next root arrives (``arg`` 1), or the first look at the trace (0)."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.sim.on_arrivals(arg, now)


class DelayEnd(SimulationEvent):
    """Step ``arg``'s fixed delay, begun at ``x``, ends."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.sim.on_delay_end(arg, x, now)


class WorkEnd(SimulationEvent):
    """Step ``arg``'s service on a work pool, begun at ``x``, ends."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.sim.on_work_end(arg, x, now)


class KvTransferEnd(SimulationEvent):
    """Call ``arg``'s KV cache reached its decode pool."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.sim.on_kv_transfer_end(arg, now)


class Submit(SimulationEvent):
    """Call ``arg`` passed its engine's API and reaches the scheduler."""

    def fire(self, arg: int, x: float, now: float) -> None:
        self.sim.on_submit(arg, now)
