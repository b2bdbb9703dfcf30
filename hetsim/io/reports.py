"""Write a rendered report: the HTML page, the Markdown summary, figure PNGs and CSV tables.

Takes plain mappings (``hetsim.io`` and ``hetsim.report`` are independent adapters and never
import each other); ``hetsim.api.report`` renders with ``hetsim.report`` and writes with this.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pandas as pd

from hetsim.errors import ScenarioError


def _target(out_dir: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise ScenarioError(f"report file {relative!r}: expected a path inside the report folder")
    return out_dir.joinpath(*path.parts)


def write_report(out_dir: Path, files: Mapping[str, bytes | str], tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write ``files`` (relative path -> content) and one ``<name>.csv`` per table under
    ``out_dir``, creating folders as needed; returns the paths written, in order."""
    out_dir = Path(out_dir)
    written = []
    for relative, content in files.items():
        path = _target(out_dir, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        written.append(path)
    for name, table in tables.items():
        path = _target(out_dir, f"{name}.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        written.append(path)
    return written
