"""The Markdown summary: the same outline as the HTML page, figures referenced as PNG files
(``figures/<name>.png`` next to the summary). Returns a string; writing is ``hetsim.io``'s job."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from hetsim.report.figures import ALL_FIGURE_TITLES as FIGURE_TITLES
from hetsim.report.format import looks_numeric
from hetsim.report.frames import ReportData
from hetsim.report.outline import Section, report_sections

FIGURE_DIR = "figures"


def figure_path(name: str) -> str:
    """Where a figure's PNG lives, relative to the report."""
    return f"{FIGURE_DIR}/{name}.png"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table_markdown(table: pd.DataFrame) -> str:
    """A display table as a GitHub-flavoured pipe table; numeric-looking columns right-aligned."""
    header = "| " + " | ".join(_cell(c) for c in table.columns) + " |"
    aligns = []
    for column in table.columns:
        numeric = len(table) > 0 and all(looks_numeric(str(v)) for v in table[column])
        aligns.append("---:" if numeric else "---")
    rule = "| " + " | ".join(aligns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _section_markdown(section: Section) -> Iterable[str]:
    yield f"## {section.title}"
    yield ""
    if section.text:
        yield "\n".join(f"- {t}" for t in section.text) if section.as_list else "\n\n".join(section.text)
        yield ""
    for name in section.figures:
        yield f"![{FIGURE_TITLES.get(name, name)}]({figure_path(name)})"
        yield ""
    for caption, table in section.tables:
        if len(table):
            yield f"**{caption}**"
            yield ""
            yield table_markdown(table)
            yield ""


def build_markdown(data: ReportData, figures: Iterable[str]) -> str:
    """The Markdown summary; ``figures`` names the figures written under :data:`FIGURE_DIR`."""
    meta = data.meta
    subtitle = " · ".join(
        p for p in (meta.scenario and f"Scenario {meta.scenario}", meta.date, f"hetsim {meta.version}") if p
    )
    lines = [f"# {meta.title}", "", f"_{subtitle}_", "", "Full report with all figures: [report.html](report.html)", ""]
    for section in report_sections(data, set(figures)):
        lines.extend(_section_markdown(section))
    return "\n".join(lines).rstrip() + "\n"
