"""One run of ``hetsim reproduce paper`` (about 20 s) shared by every test of this folder that
reads its report: its JSON, folder and CSV frames."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hetsim.cli import app

FRAMES = ("pairs", "stages", "inputs", "link_bandwidth", "tp_scaling", "placement", "nonllm_unit_cost", "claims")


@pytest.fixture(scope="session")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, dict[str, pd.DataFrame]]:
    """``hetsim reproduce paper --json --report DIR`` once; its JSON, folder and CSV frames."""
    folder = tmp_path_factory.mktemp("paper")
    result = CliRunner().invoke(app, ["reproduce", "paper", "--json", "--report", str(folder)])
    assert result.exit_code == 0, result.output
    frames = {name: pd.read_csv(folder / f"{name}.csv") for name in FRAMES}
    return json.loads(result.stdout), folder, frames


@pytest.fixture
def paper_frames(paper_run) -> dict[str, pd.DataFrame]:
    """A copy of the run's frames, free to move."""
    return {name: frame.copy() for name, frame in paper_run[2].items()}
