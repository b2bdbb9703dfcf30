"""Render a whole report in memory: validated tables in, HTML + Markdown + PNGs + CSV frames out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hetsim.report._style import figure_png
from hetsim.report.figures import build_figures
from hetsim.report.frames import ReportMeta, prepare
from hetsim.report.html import build_html
from hetsim.report.markdown import build_markdown, figure_path

HTML_NAME = "report.html"
MARKDOWN_NAME = "summary.md"


@dataclass(frozen=True)
class RenderedReport:
    """Everything a report consists of, ready to be written by ``hetsim.io.reports``.

    Attributes:
        html: the self-contained page (``report.html``).
        markdown: the summary (``summary.md``), which links ``figures/<name>.png``.
        figures: figure name -> PNG bytes.
        tables: CSV stem -> the validated input table (``fleets``, ``placement``, ``sensitivity``).
    """

    html: str
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """Relative path -> content of every non-CSV file of the report."""
        files = {HTML_NAME: self.html.encode("utf-8"), MARKDOWN_NAME: self.markdown.encode("utf-8")}
        return files | {figure_path(name): png for name, png in self.figures.items()}


def render_report(
    fleets: pd.DataFrame,
    placement: pd.DataFrame,
    sensitivity: pd.DataFrame,
    meta: Mapping[str, Any] | ReportMeta | None = None,
    extras: Mapping[str, pd.DataFrame] | None = None,
) -> RenderedReport:
    """Validate the tables (see :mod:`hetsim.report.frames`), draw every figure once and build
    the HTML page and the Markdown summary from the same outline; ``extras``: a plan's
    procurement tables (bill of materials, workloads, robustness)."""
    data = prepare(fleets, placement, sensitivity, meta, extras)
    pngs = {name: figure_png(figure) for name, figure in build_figures(data).items()}
    return RenderedReport(
        html=build_html(data, pngs),
        markdown=build_markdown(data, pngs),
        figures=pngs,
        tables={"fleets": data.fleets, "placement": data.placement, "sensitivity": data.sensitivity, **data.extras},
    )
