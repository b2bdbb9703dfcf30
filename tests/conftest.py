"""Shared fixtures: a seeded RNG, a tiny self-contained device, the shipped catalogs, a read-only folder."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetsim.io.models import load_models
from hetsim.specs.hardware import AcceleratorSpec

REPO = Path(__file__).resolve().parents[1]

needs_ctrl_c = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
    reason="SIGINT is ignored in this test process (started in the background by a shell without job control, or "
    "under nohup): Ctrl-C cannot reach it, and hetsim leaves an ignored Ctrl-C ignored; run the tests in the foreground",
)


def make_device(
    bf16_tflops: float = 1000.0, bandwidth_tbs: float = 3.0, memory_gb: float = 80.0, **extra: object
) -> AcceleratorSpec:
    """A test accelerator with round numbers (not a real product)."""
    data = {
        "schema_version": 1,
        "name": "testgpu",
        "display_name": "Test GPU",
        "vendor": "test",
        "kind": "gpu",
        "year": 2024,
        "sources": {"t": "test fixture"},
        "compute": {
            "bf16": {"value": bf16_tflops, "unit": "TFLOP/s", "source": "t"},
            "fp8": {"value": 2 * bf16_tflops, "unit": "TFLOP/s", "source": "t"},
            "fp32": {"value": bf16_tflops / 10, "unit": "TFLOP/s", "source": "t"},
        },
        "memory": {
            "capacity": {"value": memory_gb, "unit": "GB", "source": "t"},
            "bandwidth": {"value": bandwidth_tbs, "unit": "TB/s", "source": "t"},
        },
        "scale_up": {
            "link": "testlink",
            "bandwidth": {"value": 450, "unit": "GB/s", "source": "t"},
            "latency": {"value": 3, "unit": "us", "source": "t"},
            "domain_size": 8,
        },
        "power": {
            "tdp": {"value": 700, "unit": "W", "source": "t"},
            "idle": {"value": 100, "unit": "W", "source": "t"},
        },
        "price": {"purchase": {"value": 25000, "unit": "USD", "source": "t"}},
    }
    data.update(extra)
    return AcceleratorSpec.model_validate(data)


def write_fleet(folder: Path, name: str, catalog: list[dict], demand: list[dict], options: dict, *, tco: str = "enterprise",
                **extra: object) -> Path:  # fmt: skip
    """A fleet file ``folder/fleet.yaml`` (schema 1) for planner tests: ``extra`` adds fields
    such as ``inventory``."""
    data = {"schema_version": 1, "name": name, "tco": tco, **extra, "catalog": catalog, "demand": demand,
            "options": options}  # fmt: skip
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture
def test_device() -> AcceleratorSpec:
    return make_device()


@pytest.fixture(scope="session")
def model_catalog():
    return load_models(REPO / "models")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may create files in (its sub-folder ``mine``, made before, stays writable):
    mode 555, or, as root (whom modes do not stop), immutable (chattr +i)."""
    folder = tmp_path / "read-only"
    (folder / "mine").mkdir(parents=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root where chattr +i is unavailable: no folder can be made read-only")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)
