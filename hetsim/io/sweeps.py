"""Write a sweep's results: one row per point and the spread across seeds, as CSV, Parquet and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.io.json_text import json_safe


def write_sweep(out: Path, points: pd.DataFrame, by_scenario: pd.DataFrame, report: dict[str, Any]) -> list[Path]:
    """``points.{csv,parquet}``, ``by_scenario.{csv,parquet}`` and ``sweep.json`` (``report``) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("points", points), ("by_scenario", by_scenario)):
        for path in (out / f"{name}.csv", out / f"{name}.parquet"):
            if path.suffix == ".csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            written.append(path)
    path = out / "sweep.json"
    path.write_text(json.dumps(json_safe(report), indent=2), encoding="utf-8")
    return [*written, path]
