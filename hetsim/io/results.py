"""Write simulation records (Parquet) and summaries (JSON)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_results(out: Path, frames: dict[str, pd.DataFrame], summary: dict[str, Any]) -> list[Path]:
    """One Parquet file per record table plus ``summary.json``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
    path = out / "summary.json"
    path.write_text(json.dumps(_json_safe(summary), indent=2), encoding="utf-8")
    written.append(path)
    return written
