"""The command line starts light (issue 18 item 7): ``hetsim --help`` imports no command module
and no heavy library, and a command imports its own module only. Checked by the modules a fresh
interpreter holds after the command; the wall-clock figures are benchmarks/startup.py's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hetsim.cli import COMMANDS, load_command

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "networkx", "ortools", "simpy", "matplotlib", "pyarrow", "scipy")
RUN = """
import os, sys
from hetsim.__main__ import main  # the program's entry point, as the hetsim script runs it
sys.argv = ["hetsim", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
with open(os.environ["HETSIM_TEST_MODULES"], "w") as file:
    file.write("\\n".join(sorted(sys.modules)))
"""


def modules_after(tmp_path: Path, *args: str) -> set[str]:
    """The modules imported by ``hetsim ARGS`` in a fresh interpreter."""
    listing = tmp_path / "modules.txt"
    env = {**os.environ, "HETSIM_TEST_MODULES": str(listing)}
    done = subprocess.run([sys.executable, "-c", RUN, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(listing.read_text().split())


def command_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith("hetsim.cli.") and m.removeprefix("hetsim.cli.") in {e.module for e in COMMANDS}}


def test_help_imports_no_command_module_and_no_heavy_library(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "--help")
    assert command_modules(modules) == set()
    assert {m for m in modules if m.split(".")[0] in (*HEAVY, "pydantic") or m.startswith("hetsim.api")} == set()


def test_hardware_list_imports_its_own_command_and_no_heavy_library(tmp_path: Path) -> None:
    modules = modules_after(tmp_path, "hardware", "list", "--kind", "links")
    assert command_modules(modules) == {"hetsim.cli.hardware"}
    assert {m for m in modules if m.split(".")[0] in HEAVY} == set()


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_each_help_line_is_its_commands_own_help(entry) -> None:
    """``hetsim --help`` shows the table's line without loading the command: it must say what the
    command's own help says."""
    command = load_command(entry)
    assert command.name == entry.name
    assert " ".join((command.help or "").split("\n\n")[0].split()) == entry.help
