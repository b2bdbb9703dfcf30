"""Tool calls a workload defines are executed for real by ``hetsim run``'s runtime: a command as
a subprocess, an HTTP request to a server; a failing tool fails its session with the reason."""

from __future__ import annotations

import asyncio
import http.server
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from hetsim.api.workloads import load as load_workload
from hetsim.errors import WorkloadError
from hetsim.exec.client import make_client
from hetsim.exec.prompts import PromptBuilder
from hetsim.exec.router import Router
from hetsim.exec.runtime import AgentRuntime, RuntimeSettings, WorkPoolRun
from hetsim.specs.workload import ToolRun

ROOT = Path(__file__).resolve().parents[2]


def trace(steps: list[tuple[str, int, str, str, tuple[int, ...]]]) -> pd.DataFrame:
    rows = [{"session_id": s, "step_id": i, "arrival_s": 0.0, "node": node, "node_type": kind, "parents": parents, "model": None,
             "input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cached_prefix_tokens": None, "prefix_hash_ids": (),
             "duration_s": 0.01, "units": None, "branch": None} for s, i, node, kind, parents in steps]  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["cached_prefix_tokens"] = frame["cached_prefix_tokens"].astype("Int64")
    return frame


def run_runtime(frame: pd.DataFrame, tools: dict[str, ToolRun]) -> AgentRuntime:
    pools = {"tools": WorkPoolRun("tools", Router("tools", "least-outstanding", ["local"]), [asyncio.Semaphore(4)])}

    async def main(runtime: AgentRuntime) -> None:
        pools["tools"].slots = [asyncio.Semaphore(4)]  # made in this loop
        async with make_client() as client:
            await runtime.run(client)

    runtime = AgentRuntime(frame, {}, pools, {"tool": "tools"}, PromptBuilder(frame, 1000), RuntimeSettings(), tool_runs=tools)
    asyncio.run(main(runtime))
    return runtime


@pytest.fixture()
def server():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet: the tests read ``hits``, not the server's log."""

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def test_commands_and_requests_run_for_real(server) -> None:
    url, hits = server
    frame = trace([("s0", 0, "lookup", "tool", ()), ("s0", 1, "api", "external", (0,)), ("s0", 2, "lookup", "tool", (1,))])
    sleep = ToolRun(command=(sys.executable, "-c", "import time; time.sleep(0.2)"))
    runtime = run_runtime(frame, {"lookup": sleep, "api": ToolRun(url=f"{url}/ok")})
    steps = runtime.recorder.frames()["steps"]
    assert (steps.status == "completed").all() and hits == ["/ok"]
    lookups = steps[steps.node == "lookup"]
    assert ((lookups.end_s - lookups.start_s) >= 0.2).all()  # the subprocess's own time, not the trace's 0.01 s
    assert runtime.sessions() == {"s0": "completed"}


def test_a_failing_tool_fails_its_session_with_the_reason(server) -> None:
    url, _ = server
    frame = trace([("s0", 0, "broken", "tool", ()), ("s0", 1, "lookup", "tool", (0,)),
                   ("s1", 0, "api", "external", ()), ("s1", 1, "lookup", "tool", (0,))])  # fmt: skip
    broken = ToolRun(command=(sys.executable, "-c", "import sys; print('no such order', file=sys.stderr); sys.exit(3)"))
    runtime = run_runtime(frame, {"broken": broken, "api": ToolRun(url=f"{url}/down")})
    steps = runtime.recorder.frames()["steps"].set_index(["session_id", "step_id"])
    assert steps.loc[("s0", 0), "status"] == "failed"
    assert "exited with code 3: no such order" in steps.loc[("s0", 0), "reason"]
    assert steps.loc[("s0", 1), "status"] == "cancelled"
    assert "HTTP 503" in steps.loc[("s1", 0), "reason"]
    assert set(runtime.sessions().values()) == {"failed: step 0 failed"}


def test_a_tool_definition_needs_exactly_one_action() -> None:
    with pytest.raises(ValueError, match="exactly one of 'command' or 'url'"):
        ToolRun()
    with pytest.raises(ValueError):
        ToolRun(command=("true",), url="http://127.0.0.1:1/")


def test_the_shipped_tool_workload_says_what_to_run() -> None:
    spec = load_workload(str(ROOT / "scenarios/exec/workload-tools.yaml"))
    assert spec.nodes["tool"].run is not None and spec.nodes["tool"].run.command
    with pytest.raises(WorkloadError):
        load_workload(str(ROOT / "scenarios/exec/plan.yaml"))


def test_a_step_with_an_unknown_parent_is_one_line_before_anything_runs() -> None:
    from hetsim.errors import ScenarioError

    frame = trace([("s0", 0, "lookup", "tool", ()), ("s0", 1, "lookup", "tool", (7,))])
    with pytest.raises(ScenarioError, match="session 's0' step 1 has unknown parent 7"):
        AgentRuntime(frame, {}, {}, {"tool": "tools"}, PromptBuilder(frame, 1000), RuntimeSettings())
