"""The opt-in compiled (mypyc) build gives exactly the results of the pure-Python package.

Builds the compiled package of this checkout with ``benchmarks/compiled_build.py`` (about a
minute the first time, reused while the sources are unchanged; needs a C compiler), then runs
``hetsim simulate --json --out`` on shipped scenarios twice, each in a fresh interpreter: on the
checkout's pure sources and on the compiled build. The summaries (less the wall time) and every
record table must be identical, and each run must have imported the build it was meant to.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location("compiled_build", REPO / "benchmarks" / "compiled_build.py")
assert _spec is not None and _spec.loader is not None
compiled_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compiled_build)

# Runs the CLI (argv after -c), then writes which file each loaded hetsim module came from.
_DRIVER = """
import json, os, sys
from hetsim.cli import main
try:
    main()
finally:
    loaded = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
              if name.startswith("hetsim")}
    with open(os.environ["HETSIM_TEST_LOADED"], "w") as file:
        json.dump(loaded, file)
"""


def _c_compiler() -> str | None:
    named = os.environ.get("CC", "").split()
    return next(filter(None, (shutil.which(name) for name in [*named[:1], "cc", "gcc"])), None)


@pytest.fixture(scope="module")
def build_dir() -> Path:
    if _c_compiler() is None:
        pytest.skip("no C compiler (cc, gcc or $CC) found: the compiled (mypyc) build cannot be made")
    return compiled_build.build_compiled(REPO)


def _simulate(pythonpath: Path, scenario: Path, out: Path) -> tuple[dict, dict[str, str]]:
    """(summary, module name -> file) of ``hetsim simulate`` with ``pythonpath`` first on PYTHONPATH."""
    out.mkdir()
    env = compiled_build.pythonpath_env(pythonpath)
    env["HETSIM_TEST_LOADED"] = str(out / "loaded.json")
    cli = ["simulate", "--scenario", str(scenario), "--json", "--out", str(out / "records")]
    result = subprocess.run(
        [sys.executable, "-c", _DRIVER, *cli],
        cwd=out,  # not the checkout: its sources must come only from PYTHONPATH
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), json.loads((out / "loaded.json").read_text())


@pytest.mark.parametrize("scenario", ["azure-conv-h100.yaml", "voice-agent-hetero.yaml"])
def test_compiled_build_gives_identical_results(build_dir: Path, scenario: str, tmp_path: Path) -> None:
    path = REPO / "scenarios" / scenario
    pure, pure_loaded = _simulate(REPO, path, tmp_path / "pure")
    compiled, compiled_loaded = _simulate(build_dir, path, tmp_path / "compiled")

    for name in compiled_build.compiled_modules(REPO):
        pure_file, compiled_file = Path(pure_loaded[name]), Path(compiled_loaded[name])
        assert pure_file.resolve() == (REPO / (name.replace(".", "/") + ".py")).resolve()
        assert compiled_file.suffix in (".so", ".pyd"), f"{name} ran from {compiled_file}, not a compiled module"
        assert compiled_file.resolve().is_relative_to(build_dir.resolve())

    for summary in (pure, compiled):  # the wall time varies, and the records went to different folders
        assert summary["run"].pop("wall_s") > 0
        summary["run"]["written"] = sorted(Path(written).name for written in summary["run"]["written"])
    assert compiled == pure
    tables = sorted(path.name for path in (tmp_path / "pure" / "records").glob("*.parquet"))
    assert "llm_calls.parquet" in tables
    assert sorted(path.name for path in (tmp_path / "compiled" / "records").glob("*.parquet")) == tables
    for table in tables:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "compiled" / "records" / table),
            pd.read_parquet(tmp_path / "pure" / "records" / table),
            check_exact=True,
            obj=table,
        )
