"""Planner and procurement reports: figures, tables, a self-contained HTML page and a Markdown
summary, all built from flat DataFrames (schemas in :mod:`hetsim.report.frames`).

The only package that imports matplotlib. Nothing here touches the filesystem:
``hetsim.io.reports.write_report`` writes what :func:`render_report` returns.
"""

from hetsim.report.build import RenderedReport, render_report
from hetsim.report.frames import ReportData, ReportMeta, prepare
from hetsim.report.tables import pareto_front

__all__ = ["RenderedReport", "ReportData", "ReportMeta", "pareto_front", "prepare", "render_report"]
