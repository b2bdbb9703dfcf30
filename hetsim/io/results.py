"""Write simulation records (Parquet) and summaries (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hetsim.io.json_text import json_safe


def write_results(out: Path, frames: dict[str, pd.DataFrame], summary: dict[str, Any]) -> list[Path]:
    """One Parquet file per record table plus ``summary.json``; with LLM calls, also the
    field's formats: ``requests.csv`` (one row per request) and ``metrics.prom`` (vLLM's
    Prometheus metrics, see ``hetsim.metrics.prometheus``). Returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        written.append(path)
    calls = frames.get("llm_calls")
    if calls is not None and {"arrival_s", "first_token_s", "done_s", "status", "model", "pool"} <= set(calls.columns):
        from hetsim.metrics.gaps import gap_frame
        from hetsim.metrics.prometheus import exposition, requests_table

        requests_table(calls).to_csv(out / "requests.csv", index=False)
        (out / "metrics.prom").write_text(exposition(calls, gap_frame(frames)), encoding="utf-8")
        written += [out / "requests.csv", out / "metrics.prom"]
    path = out / "summary.json"
    path.write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    written.append(path)
    return written
