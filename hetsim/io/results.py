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

        write_csv(requests_table(calls), out / "requests.csv")
        (out / "metrics.prom").write_text(exposition(calls, gap_frame(frames)), encoding="utf-8")
        written += [out / "requests.csv", out / "metrics.prom"]
    path = out / "summary.json"
    path.write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    written.append(path)
    return written


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV (RFC 4180: a header, text quoted) through Arrow's writer: five times
    pandas' ``to_csv`` on a 20,000-row request table (0.03 s against 0.16 s), which is a tenth
    of a whole ``hetsim simulate --out`` of the Azure trace."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
