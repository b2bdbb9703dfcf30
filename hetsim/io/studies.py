"""Read pair-study files (``scenarios/paper/study.yaml``)."""

from __future__ import annotations

from pathlib import Path

from hetsim.errors import ScenarioError
from hetsim.io.catalog import repo_root
from hetsim.io.yamlfile import load_spec
from hetsim.specs.study import PairStudySpec


def default_study_path(name: str = "paper") -> Path:
    """The shipped study ``scenarios/<name>/study.yaml``."""
    return repo_root() / "scenarios" / name / "study.yaml"


def load_study(path: Path) -> PairStudySpec:
    """Load and validate a study file; problems raise ``ScenarioError`` in one line."""
    return load_spec(path, PairStudySpec, ScenarioError)
