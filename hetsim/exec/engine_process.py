"""One serving-engine process: started on a free port, waited for until ``/health`` answers,
stopped (or killed) with its whole process group. Standard library only: it runs inside a Ray
actor and in tests alike."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineLaunch

_POLL_S = 0.5


def _child_setup(affinity: tuple[int, ...]):
    """What the engine's process does between fork and exec (Linux): confine itself to its
    cores, and ask for SIGKILL when the process that started it (a Ray actor) dies, so a killed
    actor never leaves an orphan engine holding cores and memory."""

    def setup() -> None:  # pragma: no cover - runs in the child
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if affinity:
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setaffinity(0, affinity)

    return setup


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the engine binds it a moment later; a race another
    process could win, reported then as a start failure naming the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def last_log_line(path: Path, lines: int = 200) -> str:
    """The most telling line of an engine's log: the last one naming an error, else the last
    non-empty one."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            tail = [line.strip() for line in deque(handle, maxlen=lines) if line.strip()]
    except OSError:
        return "(no log)"
    for line in reversed(tail):
        if any(word in line for word in ("Error", "error:", "ERROR", "Exception", "No module named")):
            return line[-400:]
    return tail[-1][-400:] if tail else "(empty log)"


class EngineProcess:
    """A running engine. ``start`` blocks until it is healthy or raises ExecutorError."""

    def __init__(self, launch: EngineLaunch, host: str = "127.0.0.1") -> None:
        self.launch, self.host = launch, host
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = float("nan")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        log_path = Path(self.launch.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        started = time.monotonic()
        with log_path.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.launch.command(self.host, self.port),
                    env=os.environ | self.launch.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stop() reaches the engine's workers too
                    preexec_fn=_child_setup(self.launch.cpu_affinity) if sys.platform == "linux" else None,
                    cwd=log_path.parent,
                )
            except OSError as exc:
                raise ExecutorError(f"pool {self.launch.pool!r}: cannot start the engine ({self.launch.argv[0]}): {exc}") from None
        self._wait_healthy(started)
        self.startup_s = time.monotonic() - started

    def _wait_healthy(self, started: float) -> None:
        deadline = started + self.launch.startup_timeout_s
        while True:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise ExecutorError(
                    f"pool {self.launch.pool!r}: the engine of replica {self.launch.replica} exited (code {code}) "
                    f"before it was ready; its last log line: {last_log_line(Path(self.launch.log_path))}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ExecutorError(
                    f"pool {self.launch.pool!r}: the engine of replica {self.launch.replica} was not ready after "
                    f"{self.launch.startup_timeout_s:.0f} s; its last log line: {last_log_line(Path(self.launch.log_path))}"
                )
            time.sleep(_POLL_S)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the engine's process group (fault injection: no chance to clean up)."""
        self._signal(signal.SIGKILL)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``grace_s``."""
        if self.process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=grace_s)

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
