"""Fixtures for workload tests: a writer of workload YAMLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def write_workload(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a workload dict to a YAML file and return its path."""

    def write(data: dict[str, Any], name: str = "workload.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
