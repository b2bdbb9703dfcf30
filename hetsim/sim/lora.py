"""One replica's LoRA adapters: its GPU slots, the loads that fill them, the host-memory cache.

vLLM's multi-LoRA semantics (``vllm/lora/worker_manager.py``, ``LRUCacheWorkerLoRAManager``;
``vllm/v1/core/sched/scheduler.py``): a replica has ``max_loras`` GPU slots and the calls it
runs name at most that many distinct adapters at once; a call whose adapter is in no slot
has it copied in (its bytes over the host link, ``load_s``) into a free slot or the least
recently used one that no call here uses, before the call may be scheduled; when every slot
is held by calls here, the call waits until one is let go. Loads run one at a time (one
copy stream). Adapters also stay in host memory, ``max_cpu_loras`` of them (LRU); one not
there is first read from storage (``storage_s``, when the plan gives its bandwidth).

Here a call holds its adapter's slot from its arrival at the replica to its departure (queued
calls hold theirs too: a conservative reading of vLLM, which lets a queued call's adapter be
evicted until the call is scheduled). The server hands a call here on ``submit``
(``hold``: False when its adapter is in a slot already, so it queues at once) and back on
leaving (``release``); a call that waited is queued by ``LlmServer.enqueue`` when its load
ends, at a timer: the server sees it as an arrival, so event skipping cuts its decode runs
there exactly as the per-iteration reference steps through them.

Each step's LoRA tokens pay the adapter kernels (``hetsim.perf.lora.LoraKernels``): priced
from the decoders and prefill chunks of the step, identical for every step of a decode run
(its members are fixed), so a run adds it per step to its closed form.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hetsim.perf.lora import LoraKernels
from hetsim.sim.calendar import CallbackHandler
from hetsim.sim.policies import RouterState

if TYPE_CHECKING:
    from hetsim.sim.llm_server import Chunk, LlmServer, SeqState


@dataclass
class AdapterStats:
    """A replica's adapter counters: loads into GPU slots, of them those missing from host
    memory, evictions from a slot, and the seconds its copy stream was busy."""

    loads: int = 0
    cpu_misses: int = 0
    evictions: int = 0
    load_busy_s: float = 0.0


class AdapterSlots:
    """The adapters of one replica (see the module docstring)."""

    def __init__(
        self,
        server: LlmServer,
        kernels: LoraKernels,
        *,
        max_loras: int,
        cpu_loras: int,
        load_s: float,
        storage_s: float,
        router: RouterState,
    ) -> None:
        """``load_s``: seconds to copy one adapter into a slot; ``storage_s``: to read one
        missing from host memory first; ``router``: the pool's routing state, where this
        replica marks the adapters it holds (``adapter_holders``, a bit per replica)."""
        self.server, self.kernels = server, kernels
        self.max_loras, self.cpu_loras = max_loras, cpu_loras
        self.load_s, self.storage_s = load_s, storage_s
        self._holders, self._bit = router.adapter_holders, 1 << server._slot
        self.pins: OrderedDict[str, int] = OrderedDict()  # adapter in a slot -> calls here using it; LRU first
        self._loading: dict[str, list[SeqState]] = {}  # adapter being copied in -> calls waiting for it
        self._load_order: deque[str] = deque()  # loads in flight, in the order they end
        self._blocked: deque[SeqState] = deque()  # calls waiting for a slot, first come first served
        self._host: OrderedDict[str, None] = OrderedDict()  # adapters in host memory; LRU first
        self._loader_free_s = 0.0
        self._since: dict[int, float] = {}  # call -> when it began waiting
        self.calls: dict[int, tuple[int, float]] = {}  # call -> (1 if it loaded its adapter, seconds it waited)
        self.stats = AdapterStats()
        self._load_end = CallbackHandler(self._on_load_end)

    # ---- a call arrives and leaves --------------------------------------------------------------

    def hold(self, state: SeqState, now: float) -> bool:
        """Take the slot of ``state``'s adapter for it; True when the call must wait (a load,
        or a slot), False when it may queue now."""
        adapter = state.call.adapter
        assert adapter is not None  # the server hands over only calls that name one
        if adapter in self.pins:
            if not self._pin(adapter, state):
                return False
            self._since[state.call.call_id] = now
            return True
        self._since[state.call.call_id] = now
        if self._room():
            self._load(adapter, state, now)
        else:
            self._blocked.append(state)
        return True

    def release(self, state: SeqState, now: float) -> None:
        """``state`` left the replica: its adapter's slot may go to a waiting call."""
        adapter = state.call.adapter
        assert adapter is not None
        self.pins[adapter] -= 1
        if self._blocked and self.pins[adapter] == 0:
            self._unblock(now)

    # ---- slots and loads ------------------------------------------------------------------------

    def _pin(self, adapter: str, state: SeqState) -> bool:
        """``state`` uses ``adapter``, already in a slot or being copied in; True when it must
        wait for that copy to end."""
        self.pins[adapter] += 1
        self.pins.move_to_end(adapter)
        waiting = self._loading.get(adapter)
        if waiting is None:
            return False
        waiting.append(state)
        return True

    def _room(self) -> bool:
        """Whether a slot is free, evicting the least recently used adapter no call here uses."""
        pins = self.pins
        if len(pins) < self.max_loras:
            return True
        for adapter, count in pins.items():
            if count == 0 and adapter not in self._loading:
                del pins[adapter]
                self._holders[adapter] = self._holders.get(adapter, 0) & ~self._bit
                self.stats.evictions += 1
                return True
        return False

    def _load(self, adapter: str, state: SeqState, now: float) -> None:
        """Copy ``adapter`` into a slot for ``state`` after the loads before it (one stream)."""
        self.pins[adapter] = 1
        self._loading[adapter] = [state]
        self._holders[adapter] = self._holders.get(adapter, 0) | self._bit
        seconds = self.load_s
        host = self._host
        if adapter in host:
            host.move_to_end(adapter)
        else:
            self.stats.cpu_misses += 1
            seconds += self.storage_s
            host[adapter] = None
            if len(host) > self.cpu_loras:
                host.popitem(last=False)
        start = now if now > self._loader_free_s else self._loader_free_s
        self._loader_free_s = end = start + seconds
        self.stats.loads += 1
        self.stats.load_busy_s += seconds
        self.calls[state.call.call_id] = (1, 0.0)
        self._load_order.append(adapter)
        self.server._calendar.at(end, self._load_end)

    def _on_load_end(self, arg: int, x: float, now: float) -> None:
        """The oldest load in flight ended: its calls queue at the server."""
        adapter = self._load_order.popleft()
        for state in self._loading.pop(adapter):
            call_id = state.call.call_id
            loaded = self.calls.get(call_id, (0, 0.0))[0]
            self.calls[call_id] = (loaded, now - self._since.pop(call_id))
            self.server.enqueue(state, now)

    def _unblock(self, now: float) -> None:
        """Calls waiting for a slot, in order: those whose adapter is now in one join it, the
        others load theirs while slots can be made free."""
        blocked, self._blocked = self._blocked, deque()
        for state in blocked:
            adapter = state.call.adapter
            assert adapter is not None
            if adapter in self.pins:
                if not self._pin(adapter, state):
                    call_id = state.call.call_id
                    self.calls[call_id] = (0, now - self._since.pop(call_id))
                    self.server.enqueue(state, now)
            elif self._room():
                self._load(adapter, state, now)
            else:
                self._blocked.append(state)

    # ---- pricing ----------------------------------------------------------------------------------

    def step_s(self, server: LlmServer, chunks: list[Chunk], decoding: bool) -> float:
        """Seconds the adapter kernels add to a step of ``chunks`` and, when ``decoding``, a
        token of every decoding sequence of ``server`` (its ``decode_queries``: k + 1 when it
        verifies k speculative drafts)."""
        tokens = 0
        adapters: set[str] = set()
        if decoding:
            queries = server.decode_queries
            for state in server.running:
                adapter = state.call.adapter
                if state.token >= 0 and adapter is not None:
                    tokens += queries
                    adapters.add(adapter)
        for state, take in chunks:
            adapter = state.call.adapter
            if adapter is not None:
                tokens += take
                adapters.add(adapter)
        return self.kernels.step_s(tokens, len(adapters))
