"""Sweeps on Ray: the same rows as a local sweep; without ray installed, a one-line hint to install it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from hetsim.api.sweep import SweepRequest, sweep
from hetsim.errors import ExecutorError
from hetsim.exec.ray_sweep import INSTALL_HINT, map_on_ray

ROOT = Path(__file__).resolve().parents[2]
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'hetsim[exec]')")


def tiny_scenario(folder: Path) -> Path:
    """A 20 s synthetic voice-agent scenario (~0.1 s a point)."""
    path = folder / "voice.yaml"
    path.write_text(
        "schema_version: 1\nname: voice\n"
        f"plan: {ROOT / 'scenarios/plans/voice-agent-hetero.yaml'}\n"
        "trace: {workload: voice-agent, duration_s: 20}\n"
    )
    return path


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ExecutorError, match=r"^the Ray executor needs the exec extra: pip install 'hetsim\[exec\]'$"):
        next(map_on_ray(abs, [1], "local"))
    assert INSTALL_HINT.startswith("the Ray executor")


@pytest.fixture(autouse=True)
def _no_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a private instance needs no token


@pytest.mark.ray
@needs_ray
def test_a_ray_sweep_started_here_gives_the_rows_of_a_local_sweep(tmp_path: Path) -> None:
    """2 CPUs and a 100 MB object store; the instance the sweep starts, it stops."""
    import ray

    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\nplan: missing.yaml\ntrace: {workload: voice-agent, duration_s: 5}\n")
    request = SweepRequest((tiny_scenario(tmp_path), bad), (0, 1), workers=1)
    local = sweep(request).points
    on_ray = sweep(SweepRequest(request.scenarios, request.seeds, workers=2, ray_address="local",
                                object_store_bytes=100 * 1024**2))
    assert on_ray.run["executor"] == "ray" and on_ray.failed == 2 and not ray.is_initialized()
    assert on_ray.points["error"].iloc[2].endswith("cannot read file (No such file or directory)")
    pd.testing.assert_frame_equal(on_ray.points.drop(columns="wall_s"), local.drop(columns="wall_s"))


@pytest.mark.ray
@needs_ray
def test_a_task_that_raises_is_an_error_outcome() -> None:
    def parse_int(text: str) -> int:  # nested, so cloudpickle ships it by value (tests/ is not on workers' path)
        return int(text)

    outcomes = sorted(map_on_ray(parse_int, ["1", "x"], "local", num_cpus=2, object_store_bytes=100 * 1024**2),
                      key=lambda o: o.index)
    assert outcomes[0].value == 1 and outcomes[0].error is None
    assert outcomes[1].error is not None and outcomes[1].error.startswith("ValueError: invalid literal for int()")


@pytest.mark.ray
@needs_ray
def test_a_task_whose_worker_is_killed_is_run_again(tmp_path: Path) -> None:
    def killed_once(item: tuple[int, str]) -> int:  # nested: shipped by value
        import os
        import signal
        from pathlib import Path

        value, marker = item
        if value == 2 and not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies, as under the OOM killer
        return value

    marker = str(tmp_path / "killed")
    outcomes = sorted(map_on_ray(killed_once, [(v, marker) for v in (1, 2, 3)], "local", num_cpus=2,
                                 object_store_bytes=100 * 1024**2), key=lambda o: o.index)  # fmt: skip
    assert Path(marker).exists()
    assert [(o.value, o.error) for o in outcomes] == [(1, None), (2, None), (3, None)]
