"""The engines behind a plan's LLM pools: replicas started as Ray actors (``vllm`` backend), or
endpoints somebody else runs (``openai`` backend).

Each replica is a Ray actor that owns one engine process (``hetsim.exec.replica_actor``); it
asks Ray for the replica's devices (GPUs, or CPU cores for vLLM's CPU build), so Ray places it
on a node that has them. A replica whose engine dies is restarted by Ray; ``recover`` waits for
its new endpoint.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineLaunch
from hetsim.exec.ray_sweep import connect, import_ray
from hetsim.exec.replica_actor import EngineReplica

MAX_RESTARTS = 3
"""Restarts Ray gives a replica whose engine died, per run."""


@dataclass
class Replica:
    """One serving replica as the driver sees it."""

    pool: str
    index: int
    url: str | None
    served_model: str
    startup_s: float = float("nan")
    actor: Any = None
    restarts: int = 0
    """Times its engine came back after it was lost (Ray restarted the actor, a new engine answered)."""
    lost: int = 0
    """Times the runtime found its engine gone."""
    reconnects: int = 0
    """Times a call lost its connection while the engine lived on (same process answered): the
    replica went back into rotation without a restart, and the loss is not counted."""
    engine_pid: int | None = None


@dataclass
class EngineCluster:
    """Replicas by pool; ``stop`` ends what this cluster started (engines, actors, Ray)."""

    replicas: dict[str, list[Replica]]
    backend: str
    started_ray: bool = False
    stages: dict[str, list[Any]] = field(default_factory=dict)
    """Non-LLM pools' replicas (Ray actors running the models' networks), by pool."""

    # ---- construction --------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        launches: Mapping[str, Sequence[EngineLaunch]],
        address: str,
        device_kind: str,
        devices_per_replica: Mapping[str, int],
        cpus_per_replica: int = 1,
    ) -> EngineCluster:
        """Start every replica as a Ray actor and wait until each engine answers (or one fails:
        then everything started is stopped and the first failure raised, naming its pool)."""
        ray = import_ray()
        # A local Ray offers at least every replica's cores, so that actors are never left pending.
        cpus = sum(len(v) for v in launches.values()) * cpus_per_replica if device_kind == "cpu" else 0
        started = connect(address, num_cpus=max(cpus, os.cpu_count() or 1) if cpus else None)
        cluster = cls({}, "vllm", started_ray=started)
        host = "127.0.0.1" if address == "local" else "auto"
        try:
            for pool, pool_launches in launches.items():
                options = _actor_options(device_kind, devices_per_replica[pool], cpus_per_replica)
                actor_class = ray.remote(**options)(EngineReplica)
                cluster.replicas[pool] = [
                    Replica(pool, launch.replica, None, launch.served_model_name, actor=actor_class.remote(launch, host))
                    for launch in pool_launches
                ]
            cluster._await_ready(ray, max(launch.startup_timeout_s for v in launches.values() for launch in v))
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @classmethod
    def attach(cls, urls: Mapping[str, Sequence[str]], served_models: Mapping[str, str]) -> EngineCluster:
        """Endpoints that are already running: nothing is started, nothing will be stopped."""
        return cls(
            {pool: [Replica(pool, i, url.rstrip("/"), served_models[pool]) for i, url in enumerate(pool_urls)] for pool, pool_urls in urls.items()},
            "openai",
        )

    def _await_ready(self, ray: Any, timeout_s: float) -> None:
        everyone = [r for pool in self.replicas.values() for r in pool]
        refs = [r.actor.ready.remote() for r in everyone]
        try:
            answers = ray.get(refs, timeout=timeout_s + 30)
        except ray.exceptions.GetTimeoutError:
            raise ExecutorError(f"engines: not all {len(everyone)} replicas were ready within {timeout_s + 30:.0f} s") from None
        except ray.exceptions.RayActorError as exc:
            raise ExecutorError(f"engines: a replica's actor died while starting: {str(exc).splitlines()[0]}") from None
        for replica, answer in zip(everyone, answers, strict=True):
            if answer["error"]:
                raise ExecutorError(answer["error"])
            replica.url, replica.startup_s, replica.engine_pid = answer["url"], answer["startup_s"], answer["pid"]

    def start_stages(self, pools: Mapping[str, tuple[dict[str, Any], int, int]], address: str, seed: int) -> None:
        """Start each non-LLM model pool's replicas: ``pools`` maps a pool to (networks by
        model, replicas, concurrency). A replica reserves ``concurrency`` CPUs and serves that
        many steps at once (one torch thread each)."""
        if not pools:
            return
        ray = import_ray()
        needed = sum(replicas * concurrency for _, replicas, concurrency in pools.values())
        self.started_ray = connect(address, num_cpus=max(needed, os.cpu_count() or 1)) or self.started_ray
        from hetsim.bench.stage_models import StageWorker  # torch: only where non-LLM stages run

        for pool, (networks, replicas, concurrency) in pools.items():
            worker = ray.remote(num_cpus=concurrency, max_concurrency=concurrency, max_restarts=MAX_RESTARTS)(StageWorker)
            self.stages[pool] = [worker.remote(networks, seed) for _ in range(replicas)]
        try:
            ray.get([actor.ready.remote() for actors in self.stages.values() for actor in actors], timeout=300)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            raise ExecutorError(f"non-LLM pools: a replica did not start: {str(exc).splitlines()[0]}") from None

    async def serve_stage(self, pool: str, index: int, model: str, units: float) -> dict[str, float]:
        """Run one non-LLM step on replica ``index`` of ``pool``."""
        return await self.stages[pool][index].run.remote(model, units)

    # ---- during the run ------------------------------------------------------------------

    def all(self) -> list[Replica]:
        return [r for pool in self.replicas.values() for r in pool]

    def kill_engine(self, pool: str, index: int) -> None:
        """Fault injection: kill the engine of one replica (Ray restarts its actor)."""
        replica = self._replica(pool, index)
        if replica.actor is None:
            raise ExecutorError(f"kill {pool}:{index}: the {self.backend} backend runs no engines of its own to kill")
        import_ray().get(replica.actor.kill_engine.options(max_task_retries=0).remote(), timeout=30)

    async def recover(self, pool: str, index: int) -> str | None:
        """Wait until Ray has restarted the replica's actor and its new engine is up; its URL,
        or None when it cannot come back (restarts exhausted, start failed, no actor)."""
        replica = self._replica(pool, index)
        if replica.actor is None:
            replica.lost += 1
            return None
        ray = import_ray()
        try:
            answer = await replica.actor.ready.remote()
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
            replica.lost += 1
            return None
        if answer["error"]:
            replica.lost += 1
            return None
        if answer["pid"] is not None and answer["pid"] == replica.engine_pid:
            replica.reconnects += 1  # a dropped connection (an overloaded host), not a dead engine
            return replica.url
        replica.lost += 1
        replica.restarts += 1
        replica.url, replica.startup_s, replica.engine_pid = answer["url"], answer["startup_s"], answer["pid"]
        return replica.url

    def _replica(self, pool: str, index: int) -> Replica:
        replicas = self.replicas.get(pool, [])
        if not 0 <= index < len(replicas):
            raise ExecutorError(f"replica {pool}:{index}: expected a pool of {sorted(self.replicas)} and an index below {len(replicas)}")
        return replicas[index]

    # ---- the end ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the engines, end the actors, and Ray when this cluster started it. Safe to call
        twice and after a failed start."""
        actors = [r.actor for r in self.all() if r.actor is not None]
        stage_actors = [a for pool in self.stages.values() for a in pool]
        self.stages = {}
        if stage_actors:
            ray = import_ray()
            for actor in stage_actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
        if actors:
            ray = import_ray()
            with contextlib.suppress(Exception):  # a dead actor has nothing left to stop
                ray.get([a.stop.remote() for a in actors], timeout=60)
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
            for replica in self.all():
                replica.actor = None
        if self.started_ray:
            ray = import_ray()
            ray.shutdown()
            self.started_ray = False


def _actor_options(device_kind: str, devices: int, cpus: int) -> dict[str, Any]:
    """What Ray reserves for one replica: its GPUs (tp x pp) or its CPU cores."""
    options: dict[str, Any] = {"max_restarts": MAX_RESTARTS, "max_task_retries": -1}
    if device_kind == "cuda":
        return options | {"num_gpus": devices, "num_cpus": 1}
    return options | {"num_cpus": cpus * devices}

