"""The agent runtime: a trace's sessions walk their step graphs against real pools.

Semantics are the simulator's (``hetsim.sim.engine``): a root step starts at its trace arrival
time, any other step when all its parents have finished. LLM steps are streamed to a replica
of their model's pool chosen by the pool's router; tools and code execution hold a slot of
their pool's replica (``concurrency`` slots each) for the trace's duration (drawn from the
workload's distributions when synthesized: the workloads define no real command to run);
retrieval is a real vector search on a generated index; external steps (a human, a remote
API) are waits that use no pool.

Faults: a call whose replica cannot be reached or drops the stream is retried from the start
on a healthy replica (at most ``max_retries`` times) and counted as retried; the failed
replica leaves the rotation until its restarted engine answers. A session whose step fails
ends there: the step is recorded as failed with its reason and the steps it never reached
as cancelled, so every session ends completed or failed, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from hetsim.exec.client import EngineRejected, EngineUnavailable, monotonic_clock, request_body, stream_completion
from hetsim.exec.engine_metrics import MetricsLog
from hetsim.exec.prompts import FIRST_TOKEN_ID, PromptBuilder, block_keys
from hetsim.exec.records import ExecRecorder, max_gap_s
from hetsim.exec.router import Router, RouteSlot
from hetsim.sim.trace_tables import build_tables
from hetsim.specs.workload import ToolRun

SAMPLE_INTERVAL_S = 2.0
"""Seconds between samples of the engines' metrics: each scrape costs the engine's server several ms
of the core it shares with the engine (on a CPU), so sampling faster perturbs what it measures."""


@dataclass
class LlmPoolRun:
    """An LLM pool as the runtime drives it."""

    pool: str
    served_model: str
    router: Router
    max_context_tokens: int
    recover: Callable[[int], Awaitable[str | None]]
    """Waits until the replica with this index is back; its new URL, or None."""
    prefix_block_tokens: int = 16


@dataclass
class VectorIndex:
    """A flat inner-product index of unit vectors (random, seeded): a real top-k search."""

    matrix: np.ndarray
    top_k: int = 10

    @classmethod
    def generate(cls, vectors: int, dimension: int, seed: int) -> VectorIndex:
        rng = np.random.default_rng(seed)
        matrix = rng.standard_normal((vectors, dimension), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        return cls(matrix)

    def search(self, query_seed: int) -> np.ndarray:
        query = np.random.default_rng(query_seed).standard_normal(self.matrix.shape[1], dtype=np.float32)
        scores = self.matrix @ query
        k = min(self.top_k, len(scores))
        top = np.argpartition(scores, -k)[-k:]
        return top[np.argsort(scores[top])[::-1]]


@dataclass
class WorkPoolRun:
    """A non-LLM pool: replicas of ``concurrency`` slots each, routed like the simulator's."""

    pool: str
    router: Router
    slots: list[asyncio.Semaphore]
    index: VectorIndex | None = None
    serve: Callable[[int, str, float], Awaitable[dict[str, float]]] | None = None
    """Runs a model step (model, amount in the model's unit) on a replica: real work."""


@dataclass
class Progress:
    """Counters a progress display reads while the run goes."""

    sessions_total: int = 0
    sessions_completed: int = 0
    sessions_failed: int = 0
    calls_in_flight: int = 0
    calls_completed: int = 0
    calls_failed: int = 0
    retries: int = 0
    output_tokens: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fault:
    """Kill the engine of ``pool`` replica ``replica`` at ``at_s`` seconds into the run."""

    at_s: float
    pool: str
    replica: int


@dataclass
class RuntimeSettings:
    seed: int = 0
    max_retries: int = 3
    recovery_wait_s: float = 300.0
    """How long a call waits for any replica of its pool to be healthy before it fails."""
    faults: tuple[Fault, ...] = ()


class AgentRuntime:
    """Runs ``trace`` (a canonical step frame) against the pools; ``run`` returns when every
    session has ended, or raises CancelledError after recording what was in flight."""

    def __init__(
        self,
        trace: pd.DataFrame,
        llm_pools: dict[str, LlmPoolRun],
        work_pools: dict[str, WorkPoolRun],
        work_for: dict[str, str],
        prompts: PromptBuilder,
        settings: RuntimeSettings,
        kill: Callable[[str, int], None] | None = None,
        amounts: dict[int, float] | None = None,
        tool_runs: dict[str, ToolRun] | None = None,
    ) -> None:
        """``amounts``: per model step (row), its input in the model's unit (audio seconds, tokens);
        ``tool_runs``: workload nodes whose tool calls are executed (a command or an HTTP request)
        instead of waiting the trace's duration."""
        self.trace = trace.reset_index(drop=True)
        self.llm_pools, self.work_pools, self.work_for = llm_pools, work_pools, work_for
        self.prompts, self.settings, self.kill = prompts, settings, kill
        self.amounts = amounts or {}
        self.tool_runs = tool_runs or {}
        self.recorder, self.metrics, self.progress = ExecRecorder(), MetricsLog(), Progress()
        self._rows = _Rows(self.trace)
        self._remaining = self._rows.parent_counts.copy()
        self._session_steps_left: dict[str, int] = defaultdict(int)
        for session in self._rows.session:
            self._session_steps_left[session] += 1
        self._failed_sessions: dict[str, str] = {}
        self._running: dict[str, int] = defaultdict(int)  # steps of each session running now
        self._started = np.zeros(len(self.trace), dtype=bool)
        self._ready_s = np.full(len(self.trace), math.nan)
        self._tasks: set[asyncio.Task] = set()
        self._in_flight: dict[int, tuple[str, int, float]] = {}  # row -> (pool, replica, start_s)
        self._done = asyncio.Event()
        self._recovering: set[tuple[str, int]] = set()
        self.progress.sessions_total = len(self._session_steps_left)
        self.interrupted = False
        self.clock: Callable[[], float] = lambda: 0.0

    # ---- the run ---------------------------------------------------------------------------

    async def run(self, client: httpx.AsyncClient) -> None:
        """Warm the engines up, then replay the trace on a clock that starts at zero."""
        self.client = client
        if not len(self.trace):
            return
        await self._warm_up()
        self.clock = monotonic_clock(time.perf_counter())
        helpers = [asyncio.create_task(self._sampler())]
        helpers += [asyncio.create_task(self._inject(fault)) for fault in self.settings.faults]
        try:
            await self._arrivals()
            await self._done.wait()
        except asyncio.CancelledError:
            self.interrupted = True
            await self._cancel_all()
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._sample_all()  # the final page of every engine
            self._record_unreached()

    async def _warm_up(self) -> None:
        """Two short calls per replica before the clock starts, not recorded: a fresh engine's
        first requests pay one-time costs (lazy initialisation of its serving path) that
        serving benchmarks leave out the same way."""
        rng = np.random.default_rng(self.settings.seed + 104729)
        for pool in self.llm_pools.values():
            for slot in pool.router.slots:
                for length in (16, 256):
                    prompt = rng.integers(FIRST_TOKEN_ID, self.prompts.vocab, size=length).tolist()
                    body = request_body(pool.served_model, prompt, 8, self.settings.seed)
                    with contextlib.suppress(EngineUnavailable, EngineRejected):
                        await stream_completion(self.client, slot.url or "", body, self.clock)

    async def _arrivals(self) -> None:
        arrival = self._rows.arrival_s
        for n in self._rows.roots:
            delay = arrival[n] - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._start(n)

    def _start(self, n: int) -> None:
        self._started[n] = True
        self._ready_s[n] = self.clock()
        self._running[self._rows.session[n]] += 1
        task = asyncio.create_task(self._run_step(n))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_step(self, n: int) -> None:
        kind = self._rows.node_type[n]
        if kind == "llm":
            ok = await self._llm_step(n)
        elif kind == "external":
            ok = await self._external_step(n)
        else:
            ok = await self._work_step(n)
        self._finish(n, ok)

    def _finish(self, n: int, ok: bool) -> None:
        session = self._rows.session[n]
        self._session_steps_left[session] -= 1
        self._running[session] -= 1
        if ok and session not in self._failed_sessions:
            for child in self._rows.children[n]:
                self._remaining[child] -= 1
                if self._remaining[child] == 0:
                    self._start(child)
        elif not ok and session not in self._failed_sessions:
            self._failed_sessions[session] = f"step {self._rows.step_id[n]} failed"
        if self._session_ended(session):
            if session in self._failed_sessions:
                self.progress.sessions_failed += 1
            else:
                self.progress.sessions_completed += 1
            if self.progress.sessions_completed + self.progress.sessions_failed == self.progress.sessions_total:
                self._done.set()

    def _session_ended(self, session: str) -> bool:
        """A session ends when all its steps have finished, or it failed and none still runs."""
        if session in self._failed_sessions:
            return self._running[session] == 0
        return self._session_steps_left[session] == 0

    # ---- LLM steps -------------------------------------------------------------------------

    async def _llm_step(self, n: int) -> bool:
        rows, ready = self._rows, float(self._ready_s[n])
        pool = self.llm_pools.get(rows.model[n] or "")
        if pool is None:
            self._record_call_failure(n, "", -1, ready, f"no pool serves model {rows.model[n]!r}", 0)
            return False
        prompt = self.prompts.array(n)
        output = max(int(rows.output_tokens[n]), 1)
        if len(prompt) + output > pool.max_context_tokens:
            reason = f"prompt {len(prompt)} + output {output} tokens exceed the replica's context of {pool.max_context_tokens}"
            self._record_call_failure(n, pool.pool, -1, ready, reason, 0)
            return False
        keys = block_keys(prompt, pool.prefix_block_tokens)
        body = request_body(pool.served_model, prompt.tolist(), output, self.settings.seed)
        retries = 0
        while True:
            slot = await pool.router.acquire(keys, self.settings.recovery_wait_s)
            if slot is None:
                reason = f"no replica of pool {pool.pool!r} was healthy for {self.settings.recovery_wait_s:.0f} s"
                self._record_call_failure(n, pool.pool, -1, ready, reason, retries)
                return False
            generation = slot.generation
            self._in_flight[n] = (pool.pool, slot.index, self.clock())
            self.progress.calls_in_flight += 1
            try:
                result = await stream_completion(self.client, slot.url or "", body, self.clock)
            except EngineUnavailable as exc:
                self._lost_replica(pool, slot, generation, str(exc))
                retries += 1
                self.progress.retries += 1
                if retries > self.settings.max_retries:
                    self._record_call_failure(n, pool.pool, slot.index, ready, f"gave up after {retries} attempts: {exc}", retries - 1)
                    return False
                continue
            except EngineRejected as exc:
                self._record_call_failure(n, pool.pool, slot.index, ready, f"engine refused the call: {exc}", retries)
                return False
            finally:
                self._in_flight.pop(n, None)
                self.progress.calls_in_flight -= 1
                pool.router.release(slot)
            return self._record_call(n, pool, slot.index, ready, result, len(prompt), output, retries)

    def _record_call(self, n, pool: LlmPoolRun, replica, ready, result, prompt_len, output, retries) -> bool:
        rows, times = self._rows, result.token_times_s
        received = result.completion_tokens if result.completion_tokens >= 0 else len(times)
        served = result.prompt_tokens if result.prompt_tokens >= 0 else prompt_len
        complete = bool(times) and received == output and served == prompt_len
        reason = "" if complete else f"asked {prompt_len} in / {output} out, engine served {served} in / {received} out"
        first, last = (times[0], times[-1]) if times else (math.nan, math.nan)
        self.recorder.call((
            rows.session[n], rows.step_id[n], rows.model[n], pool.pool, replica, "", -1, ready, result.sent_s, first, last,
            prompt_len, max(result.cached_tokens, 0), output, 0, 0.0, max_gap_s(times),
            "completed" if complete else "failed", reason, retries, served, received,
        ))  # fmt: skip
        self.recorder.tokens(rows.session[n], rows.step_id[n], times)
        self._step_record(n, pool.pool, replica, result.sent_s, last if complete else self.clock(), "completed" if complete else "failed", reason)
        if complete:
            self.progress.calls_completed += 1
            self.progress.output_tokens += received
        else:
            self.progress.calls_failed += 1
        return complete

    def _record_call_failure(self, n: int, pool: str, replica: int, ready: float, reason: str, retries: int) -> None:
        rows, now = self._rows, self.clock()
        self.recorder.call((
            rows.session[n], rows.step_id[n], rows.model[n], pool, replica, "", -1, ready, math.nan, math.nan, now,
            int(rows.input_tokens[n]), 0, int(rows.output_tokens[n]), 0, 0.0, math.nan, "failed", reason, retries, 0, 0,
        ))  # fmt: skip
        self._step_record(n, pool, replica, ready, now, "failed", reason)
        self.progress.calls_failed += 1
        self._error(f"{rows.session[n]} step {rows.step_id[n]}: {reason}")

    def _lost_replica(self, pool: LlmPoolRun, slot: RouteSlot, generation: int, why: str) -> None:
        if not pool.router.mark_down(slot, generation):
            return
        self._error(f"{pool.pool}[{slot.index}] lost: {why}; retrying its calls elsewhere")
        key = (pool.pool, slot.index)
        if key in self._recovering:
            return
        self._recovering.add(key)

        async def recover() -> None:
            try:
                url = await pool.recover(slot.index)
            finally:
                self._recovering.discard(key)
            if url is not None:
                pool.router.mark_up(slot, url)
            else:
                self._error(f"{pool.pool}[{slot.index}] did not come back")

        task = asyncio.create_task(recover())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- other steps -----------------------------------------------------------------------

    async def _external_step(self, n: int) -> bool:
        duration = float(self._rows.duration_s[n])
        ready = float(self._ready_s[n])
        tool = self.tool_runs.get(self._rows.node[n])
        if tool is not None:  # a remote API or a human stand-in the workload says how to call
            self._in_flight[n] = ("", -1, ready)
            failure = await self._execute(tool)
            self._in_flight.pop(n, None)
            self._step_record(n, "", -1, ready, self.clock(), "failed" if failure else "completed", failure or "")
            return failure is None
        if not math.isfinite(duration) or duration < 0:
            self._step_record(n, "", -1, ready, ready, "failed", "external step has no duration_s")
            return False
        await asyncio.sleep(duration)
        self._step_record(n, "", -1, ready, self.clock(), "completed")
        return True

    async def _work_step(self, n: int) -> bool:
        rows, ready = self._rows, float(self._ready_s[n])
        name = self.work_for.get(rows.model[n] or "") or self.work_for.get(rows.node_type[n])
        pool = self.work_pools.get(name or "")
        if pool is None:
            self._step_record(n, "", -1, ready, ready, "failed", f"no pool serves {rows.node_type[n]}")
            return False
        slot = await pool.router.acquire((), 0.0)
        assert slot is not None  # local work replicas never go down
        try:
            async with pool.slots[slot.index]:
                start = self.clock()
                self._in_flight[n] = (pool.pool, slot.index, start)
                model = rows.model[n]
                if pool.serve is not None and model is not None:
                    await pool.serve(slot.index, model, self.amounts.get(n, 1.0))
                elif rows.node[n] in self.tool_runs:
                    failure = await self._execute(self.tool_runs[rows.node[n]])
                    if failure is not None:
                        self._in_flight.pop(n, None)
                        self._step_record(n, pool.pool, slot.index, start, self.clock(), "failed", failure)
                        return False
                elif pool.index is not None and rows.node_type[n] == "retrieval":
                    query_seed = zlib.crc32(f"{self.settings.seed}/{rows.session[n]}/{rows.step_id[n]}".encode())
                    await asyncio.to_thread(pool.index.search, query_seed)
                else:
                    duration = float(rows.duration_s[n])
                    await asyncio.sleep(duration if math.isfinite(duration) and duration > 0 else 0.0)
                self._in_flight.pop(n, None)
                self._step_record(n, pool.pool, slot.index, start, self.clock(), "completed")
        finally:
            pool.router.release(slot)
        return True

    async def _execute(self, tool: ToolRun) -> str | None:
        """Run a tool call for real; None when it succeeded, else why it failed (one line)."""
        if tool.command is not None:
            return await _run_command(tool.command, tool.timeout_s)
        assert tool.url is not None
        try:
            response = await self.client.request(tool.method, tool.url, timeout=tool.timeout_s)
        except httpx.HTTPError as exc:
            return f"tool request {tool.method} {tool.url} failed: {type(exc).__name__}: {exc}"
        if response.status_code >= 400:
            return f"tool request {tool.method} {tool.url} answered HTTP {response.status_code}"
        return None

    def _step_record(self, n: int, pool: str, replica: int, start: float, end: float, status: str, reason: str = "") -> None:
        rows = self._rows
        self.recorder.step(rows.session[n], int(rows.step_id[n]), rows.node[n], rows.node_type[n], pool, replica,
                           float(self._ready_s[n]), start, end, status, reason)  # fmt: skip

    # ---- faults, sampling, the end -----------------------------------------------------------

    async def _inject(self, fault: Fault) -> None:
        await asyncio.sleep(max(fault.at_s - self.clock(), 0.0))
        if self.kill is not None:
            self._error(f"fault injected: killing the engine of {fault.pool}[{fault.replica}] at {self.clock():.1f} s")
            await asyncio.to_thread(self.kill, fault.pool, fault.replica)

    async def _sampler(self) -> None:
        while True:
            await self._sample_all()
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    async def _sample_all(self) -> None:
        now = self.clock()
        await asyncio.gather(*(
            self.metrics.scrape(self.client, pool.pool, slot.index, slot.url, now)
            for pool in self.llm_pools.values() for slot in pool.router.slots if slot.url
        ))  # fmt: skip

    async def _cancel_all(self) -> None:
        now = self.clock()
        for n, (pool, replica, start) in list(self._in_flight.items()):
            self._step_record(n, pool, replica, start, now, "interrupted", "the run was interrupted")
            if self._rows.node_type[n] == "llm":
                rows = self._rows
                self.recorder.call((
                    rows.session[n], rows.step_id[n], rows.model[n], pool, replica, "", -1, float(self._ready_s[n]), start,
                    math.nan, now, int(rows.input_tokens[n]), 0, int(rows.output_tokens[n]), 0, 0.0, math.nan,
                    "interrupted", "the run was interrupted", 0, 0, 0,
                ))  # fmt: skip
        self._in_flight.clear()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _record_unreached(self) -> None:
        """Steps that never started: cancelled (their session failed) or interrupted."""
        rows = self._rows
        recorded = {(s[0], s[1]) for s in self.recorder.steps}
        for n in np.flatnonzero(~self._started):
            session = rows.session[n]
            if (session, int(rows.step_id[n])) in recorded:
                continue
            if session in self._failed_sessions:
                status, reason = "cancelled", f"session ended: {self._failed_sessions[session]}"
            else:
                status, reason = "interrupted", "the run ended before this step started"
            self.recorder.step(session, int(rows.step_id[n]), rows.node[n], rows.node_type[n], "", -1,
                               math.nan, math.nan, math.nan, status, reason)  # fmt: skip

    def _error(self, message: str) -> None:
        self.progress.errors.append(message)

    def sessions(self) -> dict[str, str]:
        """Each session's end: 'completed', 'failed: reason' or 'unfinished'."""
        result = {}
        for session, left in self._session_steps_left.items():
            if session in self._failed_sessions:
                result[session] = f"failed: {self._failed_sessions[session]}"
            else:
                result[session] = "completed" if left == 0 else "unfinished"
        return result


async def _run_command(command: tuple[str, ...], timeout_s: float) -> str | None:
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        return f"tool command {command[0]!r} cannot start: {exc}"
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"tool command {command[0]!r} ran past its {timeout_s:g} s timeout"
    if process.returncode:
        lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        return f"tool command {command[0]!r} exited with code {process.returncode}" + (f": {lines[-1][:200]}" if lines else "")
    return None


class _Rows:
    """The trace as plain per-row lists, and the step graph (children by row, parent counts,
    roots by arrival) from the simulator's trace tables."""

    def __init__(self, trace: pd.DataFrame) -> None:
        self.session = trace["session_id"].astype(str).tolist()
        self.step_id = trace["step_id"].astype(np.int64).tolist()
        self.node = trace["node"].astype(str).tolist()
        self.node_type = trace["node_type"].astype(str).tolist()
        self.model = [m if isinstance(m, str) else None for m in trace["model"].tolist()]
        self.input_tokens = trace["input_tokens"].to_numpy(dtype=np.int64)
        self.output_tokens = trace["output_tokens"].to_numpy(dtype=np.int64)
        self.duration_s = trace["duration_s"].to_numpy(dtype=float, na_value=np.nan)
        self.arrival_s = trace["arrival_s"].to_numpy(dtype=float)
        # The step graph as the simulator indexes it (checked there: an unknown parent is one line).
        tables = build_tables(trace, None)
        starts, children = tables.child_start, tables.child_list
        self.children = [list(children[starts[n] : starts[n + 1]]) for n in range(len(trace))]
        self.parent_counts = np.asarray(tables.parent_counts, dtype=np.int64)
        self.roots = list(tables.roots)  # by arrival, row order on ties
