"""Ctrl-C at any point of ``hetsim plan``, ``simulate --out`` and ``sweep --out`` (real processes, SIGINT
sent after a progress message or a file appears, then after several delays): the command says
"interrupted" in one line and exits 130, without a traceback, and its output holds either the
previous complete output or the new complete one, never a mix. A sweep keeps its finished points
beside ``--out``; a sweep whose worker is killed runs that worker's point again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd
import pytest

from hetsim.io.outputs import MANIFEST, verify_folder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "scenarios" / "fleet.yaml"
AZURE = ROOT / "scenarios" / "azure-conv-h100.yaml"
VOICE = ROOT / "scenarios" / "voice-agent-hetero.yaml"


class Command:
    """A ``hetsim`` process whose stderr (the progress display, forced on) is collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, new_session: bool = False) -> None:
        env = os.environ | {"FORCE_COLOR": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        self.process = subprocess.Popen([sys.executable, "-m", "hetsim", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=new_session)  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.readers = [threading.Thread(target=_read, args=(pipe, chunks), daemon=True)
                        for pipe, chunks in ((self.process.stdout, self.out), (self.process.stderr, self.err))]  # fmt: skip
        for reader in self.readers:
            reader.start()

    @property
    def stderr(self) -> str:
        return b"".join(self.err).decode("utf-8", errors="replace")

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 120.0) -> bool:
        """Poll ``condition`` every millisecond; False when the process ended (or time ran out) first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.process.poll() is not None:
                return condition()
            time.sleep(0.001)
        return False

    def interrupt(self, delay_s: float, group: bool = False) -> None:
        """SIGINT after ``delay_s`` (to the whole process group, as a terminal's Ctrl-C, with ``group``)."""
        time.sleep(delay_s)
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signal.SIGINT)
            else:
                self.process.send_signal(signal.SIGINT)

    def finish(self, timeout_s: float = 120.0) -> tuple[int, str, str]:
        """Exit status, stdout and stderr, once the process ended."""
        code = self.process.wait(timeout_s)
        for reader in self.readers:
            reader.join(timeout_s)
        return code, b"".join(self.out).decode("utf-8", errors="replace"), self.stderr


def _read(pipe: IO[bytes], chunks: list[bytes]) -> None:
    while chunk := os.read(pipe.fileno(), 65536):
        chunks.append(chunk)


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "hetsim", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def staging_beside(target: Path) -> Callable[[], bool]:
    """True once the staging folder of ``target`` exists (the output is being written)."""
    return lambda: any(target.parent.glob(f".{target.name}.partial-*"))


def staged_file(target: Path, name: str) -> Callable[[], bool]:
    """True once ``name`` has been written into the staging folder of ``target``."""
    return lambda: any(target.parent.glob(f".{target.name}.partial-*/{name}"))


def said(command: Command, text: str) -> Callable[[], bool]:
    return lambda: text in command.stderr


def loading_libraries(command: Command) -> Callable[[], bool]:
    """True once the process has mapped pydantic-core (Linux /proc; elsewhere at once): it is
    loading the command line, after hetsim's Ctrl-C handler is in. A signal before the program's
    first line gets Python's own start-up behaviour, which no program can change; on a loaded
    machine start-up alone can take longer than a fixed delay."""
    maps = Path(f"/proc/{command.process.pid}/maps")

    def loaded() -> bool:
        try:
            return "pydantic_core" in maps.read_text()
        except OSError:  # no /proc here, or the process already ended
            return True

    return loaded


def assert_whole(folder: Path) -> dict:
    """The folder holds one complete output: exactly the files its manifest lists, each as listed,
    and nothing half-written beside it or in it."""
    manifest = verify_folder(folder)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert present == {*manifest["files"], MANIFEST}, f"files not in the manifest: {present ^ {*manifest['files'], MANIFEST}}"
    assert manifest["complete"] is True
    leftovers = [p.name for p in [*folder.parent.iterdir(), *folder.iterdir()] if ".partial-" in p.name or ".old-" in p.name]
    assert leftovers == []
    return manifest


def voice(folder: Path, duration_s: int) -> Path:
    path = folder / f"voice{duration_s}.yaml"
    path.write_text(
        "schema_version: 1\nname: voice\n"
        f"plan: {ROOT / 'scenarios/plans/voice-agent-hetero.yaml'}\n"
        f"trace: {{workload: voice-agent, duration_s: {duration_s}, seed: 7}}\n"
        "sla: {ttft_s: 0.25, tbt_s: 0.02}\n"
    )
    return path


def assert_interrupted(code: int, stderr: str, work_done: bool = False) -> None:
    """Exit 130 and one line saying so, no traceback. ``work_done``: the signal may also have come
    after the command finished (its output written and shown); then it exits 0."""
    assert "Traceback" not in stderr, stderr[-3000:]
    if code == 130:
        assert "hetsim: interrupted" in stderr, stderr[-2000:]
        return
    assert work_done and code == 0, (code, stderr[-2000:])


# ---- hetsim plan -----------------------------------------------------------------------------

PLAN_POINTS = [  # (label, what is awaited: a progress message or a staged file, then the delay)
    ("loading", "libraries loading", 0.0),
    ("measuring demand", "measuring demand", 0.0),
    ("solving", "solving", 0.0),
    ("solving, later", "solving", 0.4),
    ("writing", "writing plan and report", 0.0),
    ("staging folder made", "staging", 0.0),
    ("manifest written into staging", "staged manifest", 0.0),
    ("moving in", "staging", 0.005),
    ("moving in, later", "staging", 0.01),
]


@dataclass
class Stopped:
    """One interrupted ``hetsim plan``: where it ran, whether its marker came, how it ended."""

    cwd: Path
    reached: bool
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def plans_stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stopped]:
    """Each point of PLAN_POINTS in its own working folder holding a complete previous plan (planned
    without verification), all run at once (a plan of the shipped fleet takes a while)."""
    first = tmp_path_factory.mktemp("plan-previous")
    run(["plan", "--fleet", str(FLEET), "--no-verify"], first)
    assert assert_whole(first / "reports" / "default")["inputs"]["options"]["verify"] is False
    folders = {}
    for label, _, _ in PLAN_POINTS:
        folders[label] = tmp_path_factory.mktemp("plan")
        shutil.copytree(first / "reports", folders[label] / "reports")
    with ThreadPoolExecutor(len(PLAN_POINTS)) as pool:
        stopped = pool.map(lambda point: _stop_plan(folders[point[0]], point[1], point[2]), PLAN_POINTS)
        return {label: result for (label, _, _), result in zip(PLAN_POINTS, stopped, strict=True)}


def _stop_plan(cwd: Path, marker: str | None, delay_s: float) -> Stopped:
    folder = cwd / "reports" / "default"
    command = Command(["plan", "--fleet", str(FLEET)], cwd)
    conditions = {None: lambda: True, "staging": staging_beside(folder), "staged manifest": staged_file(folder, MANIFEST),
                  "libraries loading": loading_libraries(command)}  # fmt: skip
    reached = command.wait_for(conditions[marker] if marker in conditions else said(command, marker), timeout_s=600)
    command.interrupt(delay_s)
    return Stopped(cwd, reached, *command.finish(timeout_s=600))


@pytest.mark.parametrize(("label", "marker", "delay_s"), PLAN_POINTS, ids=[p[0] for p in PLAN_POINTS])
def test_ctrl_c_during_plan_leaves_the_previous_plan_or_the_new_one(plans_stopped: dict[str, Stopped], label: str,
                                                                   marker: str | None, delay_s: float) -> None:  # fmt: skip
    stopped = plans_stopped[label]
    writing = marker in ("writing plan and report", "staging", "staged manifest") or not stopped.reached
    assert_interrupted(stopped.code, stopped.stderr, work_done=writing)
    if stopped.code == 130:
        assert stopped.stdout == ""  # the plan's table is shown only once its files are in
    manifest = assert_whole(stopped.cwd / "reports" / "default")
    if not writing:
        assert manifest["inputs"]["options"]["verify"] is False  # stopped long before: the previous plan stays
    if stopped.code != 130:
        assert manifest["inputs"]["options"]["verify"] is True  # finished: the new plan is in


# ---- hetsim simulate --out -------------------------------------------------------------------

SIMULATE_POINTS = [
    ("starting", "libraries loading", 0.0),
    ("simulating", None, 0.7),
    ("staging folder made", "staging", 0.0),
    ("summary written into staging", "staged summary", 0.0),
    ("manifest written into staging", "staged manifest", 0.0),
    ("moving in", "staging", 0.005),
    ("moving in, later", "staging", 0.02),
]


@pytest.mark.parametrize(("label", "marker", "delay_s"), SIMULATE_POINTS, ids=[p[0] for p in SIMULATE_POINTS])
def test_ctrl_c_during_simulate_leaves_the_previous_records_or_the_new_ones(tmp_path: Path, label: str,
                                                                             marker: str | None, delay_s: float) -> None:  # fmt: skip
    out = tmp_path / "records"
    run(["simulate", "--scenario", str(VOICE), "--out", str(out), "--json"], tmp_path)
    previous = assert_whole(out)
    # A timed point (no marker) needs a run that is still simulating when the signal comes: the
    # shipped Azure scenario finishes in under a second on a fast machine, so it gets a long one.
    new = AZURE if marker is not None else voice(tmp_path, 20_000)  # several seconds of simulation
    command = Command(["simulate", "--scenario", str(new), "--out", str(out), "--json"], tmp_path)
    conditions = {None: lambda: True, "staging": staging_beside(out), "staged summary": staged_file(out, "summary.json"),
                  "staged manifest": staged_file(out, MANIFEST), "libraries loading": loading_libraries(command)}  # fmt: skip
    command.wait_for(conditions[marker])
    command.interrupt(delay_s)
    code, _, stderr = command.finish()
    assert_interrupted(code, stderr, work_done=marker is not None)
    manifest = assert_whole(out)
    scenario = manifest["inputs"]["files"]["scenario"]["path"]
    if scenario == str(VOICE):
        assert manifest == previous  # the previous records, as they were
    else:
        assert scenario == str(new)  # the new ones, whole
    if marker is None:
        assert scenario == str(VOICE)  # stopped while simulating: the previous records stay
    if code != 130:
        assert scenario == str(new)  # finished: the new records are in


# ---- hetsim sweep --out ----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("delay_s", [0.0, 0.3])
def test_ctrl_c_during_a_sweep_keeps_the_finished_points_beside_the_previous_sweep(tmp_path: Path, workers: int,
                                                                                   delay_s: float) -> None:  # fmt: skip
    out = tmp_path / "sweep"
    run(["sweep", str(voice(tmp_path, 20)), "--seeds", "0", "-w", "1", "--out", str(out)], tmp_path)
    previous = assert_whole(out)
    scenario = voice(tmp_path, 600)  # about half a second a point
    command = Command(["sweep", str(scenario), "--seeds", "0..11", "-w", str(workers), "--out", str(out)], tmp_path,
                      new_session=True)  # fmt: skip
    assert command.wait_for(said(command, "voice seed"))  # the first point finished
    command.interrupt(delay_s, group=True)  # as a terminal's Ctrl-C: every process of the group
    code, stdout, stderr = command.finish()
    assert code == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert assert_whole(out)["inputs"]["sha256"] == previous["inputs"]["sha256"]  # the previous sweep stays
    kept = tmp_path / "sweep.incomplete"
    assert kept.is_dir(), stderr[-3000:]
    manifest = verify_folder(kept)
    points = pd.read_parquet(kept / "points.parquet")
    assert manifest["complete"] is False and 1 <= len(points) < 12 and (points["status"] == "ok").all()
    assert f"hetsim: interrupted; {len(points)} of 12 points finished, kept in {kept} (marked incomplete)" in stderr
    assert "INCOMPLETE (interrupted)" in stdout  # the finished points are shown too


def test_a_sweep_whose_worker_is_killed_runs_its_point_again(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    # about two seconds a point, so both workers are still busy with their first when one is killed
    command = Command(["sweep", str(voice(tmp_path, 3000)), "--seeds", "0..5", "-w", "2", "--out", str(out)], tmp_path)
    assert command.wait_for(lambda: len(_workers(command.process.pid)) == 2)
    time.sleep(1.0)
    os.kill(_workers(command.process.pid)[0], signal.SIGKILL)
    code, _, stderr = command.finish()
    assert code == 0, stderr[-3000:]
    points = pd.read_parquet(out / "points.parquet")
    assert len(points) == 6 and (points["status"] == "ok").all()
    assert assert_whole(out)["complete"] is True


def _workers(pid: int) -> list[int]:
    """The sweep's worker processes (spawned children running multiprocessing's spawn_main)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in children.read_text().split() if children.exists() else []:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            continue
    return found
