"""Planner and procurement reports: figures, tables, a self-contained HTML page and a Markdown
summary, all built from flat DataFrames (schemas in :mod:`hetsim.report.frames`).

The only package that imports matplotlib, and only when a report is rendered: the names below
load lazily, so the plain-pandas modules (``format``, ``tables``, ``procurement``) serve the
CLI without it. Nothing here touches the filesystem: ``hetsim.io.reports.write_report``
writes what :func:`render_report` returns.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RenderedReport": "hetsim.report.build",
    "render_report": "hetsim.report.build",
    "ReportData": "hetsim.report.frames",
    "ReportMeta": "hetsim.report.frames",
    "prepare": "hetsim.report.frames",
    "pareto_front": "hetsim.report.tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hetsim.report' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
