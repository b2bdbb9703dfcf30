"""The Ray actor that owns one replica's engine process.

The actor starts the engine in its constructor and watches it: when the engine dies (a crash,
an OOM kill, the fault injection of ``kill_engine``), the actor exits its own process, so Ray
restarts the actor (``max_restarts``), and the new actor starts a new engine. The driver
learns the new endpoint by calling ``ready`` again (calls wait while the actor restarts).

This module does not import Ray: ``hetsim.exec.cluster`` wraps the class with ``ray.remote``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineLaunch
from hetsim.exec.engine_process import EngineProcess, last_log_line

_WATCH_S = 0.25


class EngineReplica:
    """One engine, started at construction; a failed start is reported by ``ready``, not
    raised, so the driver can name the pool and the engine's last log line."""

    def __init__(self, launch: EngineLaunch, host: str = "127.0.0.1") -> None:
        """``host``: the address the engine binds; ``auto``: this node's address in the Ray cluster."""
        self.launch = launch
        if host == "auto":
            import ray  # only inside a Ray worker

            host = ray.util.get_node_ip_address()
        self.engine = EngineProcess(launch, host)
        self.error: str | None = None
        self._stopping = False
        self.started_at = time.time()
        try:
            self.engine.start()
        except ExecutorError as exc:
            self.error = str(exc)
            return
        threading.Thread(target=self._watch, name="engine-watch", daemon=True).start()

    def _watch(self) -> None:
        while not self._stopping:
            if not self.engine.alive() and not self._stopping:
                os._exit(1)  # the engine died: end this actor so that Ray restarts it with a new engine
            time.sleep(_WATCH_S)

    def ready(self) -> dict[str, Any]:
        """Where the engine listens, how long it took to start, or why it did not."""
        return {
            "url": None if self.error else self.engine.url,
            "error": self.error,
            "startup_s": self.engine.startup_s,
            "pid": self.engine.process.pid if self.engine.process else None,
            "started_at": self.started_at,
            "actor_pid": os.getpid(),
        }

    def kill_engine(self) -> None:
        """Fault injection: SIGKILL the engine (the watcher then ends this actor)."""
        self.engine.kill()

    def stop(self) -> None:
        self._stopping = True
        self.engine.stop()

    def log_tail(self) -> str:
        return last_log_line(Path(self.launch.log_path))
