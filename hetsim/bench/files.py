"""Write benchmark results: host device profile, calibration YAML and raw rows CSV.

The layout under ``out_dir`` mirrors ``hardware_profiles/`` (``accelerators/<device>.yaml``,
``calibration/<device>.yaml`` and ``.csv``), so ``--out hardware_profiles`` installs them.
Shared by every benchmark backend (CPU now, GPU later).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hetsim.specs.calibration import CalibrationSpec
from hetsim.specs.hardware import AcceleratorSpec


def write_bench_outputs(
    out_dir: Path, device: AcceleratorSpec, calibration: CalibrationSpec, rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
) -> tuple[Path, Path]:
    """Write the three files; returns (calibration YAML path, device profile YAML path)."""
    device_path = out_dir / "accelerators" / f"{device.name}.yaml"
    calibration_path = out_dir / "calibration" / f"{calibration.device}.yaml"
    _write_yaml(device_path, device.model_dump(mode="json", exclude_defaults=True))
    _write_yaml(calibration_path, calibration.model_dump(mode="json", exclude_defaults=True))
    write_rows_csv(calibration_path.with_suffix(".csv"), rows, columns)
    return calibration_path, device_path


def write_rows_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Raw measurement rows, one per op; empty cells where a column does not apply."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if value is None else value) for key, value in row.items()})


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
