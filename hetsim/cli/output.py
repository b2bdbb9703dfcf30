"""Rendering helpers shared by commands: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hetsim.io.json_text import json_safe

TABLE_MAX_WIDTH = 160
"""Columns a table may widen the output to (a pipe is 80 wide) so that its names print whole."""
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def print_json(data: Any) -> None:
    """Print ``data`` as JSON (NaN and infinities become null)."""
    typer.echo(json.dumps(json_safe(data), indent=2, sort_keys=False))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> None:
    """Print a rich table; cells, title and caption are plain text (``str``, no markup).
    Nothing is cut: the first column (the names) keeps each name on one line, no word of
    another column is split, and a cell longer than its column wraps whole."""
    table = Table(title=escape(title), caption=escape(caption) or None, show_lines=False)
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    for index, column in enumerate(columns):
        texts = [row[index] for row in cells if index < len(row)]
        if index == 0:
            table.add_column(column, overflow="fold", no_wrap=True, min_width=max(map(len, [column, *texts])))
        else:
            words = [len(word) for text in texts for word in text.split()]
            table.add_column(column, overflow="fold", min_width=max(words, default=1))
    for row in cells:
        table.add_row(*map(escape, row))  # plain text: a "[1]" or "[bold]" in a cell prints as written
    # as wide as the table needs, up to TABLE_MAX_WIDTH (beyond it, cells wrap between words)
    natural = sum(max(map(len, [c, *(r[i] for r in cells if i < len(r))])) + 3 for i, c in enumerate(columns)) + 1
    Console(width=max(120, Console().width, min(natural, TABLE_MAX_WIDTH))).print(table)


def usd(value: float | None) -> str:
    """Dollars in plain units ($1,234, $12.5, $0.123), never scientific notation."""
    from hetsim.report.format import usd as report_usd  # pure: the report's own formatting

    return report_usd(value)


def usd_per_h(value: float | None) -> str:
    from hetsim.report.format import usd_per_h as report_usd_per_h

    return report_usd_per_h(value)


def seconds(value: float | None) -> str:
    """A duration in ms below one second, else s."""
    from hetsim.report.format import seconds as report_seconds

    return report_seconds(value)


def percent(value: float | None) -> str:
    from hetsim.report.format import percent as report_percent

    return report_percent(value)


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits; None becomes an empty cell, NaN (no
    value: nothing to take a percentile of) 'n/a', an infinity '∞' (never reached)."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    return f"{value:.{digits}g}"


def sla_rows(sla: dict | None) -> list[tuple[str, str, str]]:
    """One row per objective: its percentile, the share attained, the value at that
    percentile, what it measures, and whether it was met."""
    rows = []
    for name in ("ttft", "tbt", "e2e"):
        item = (sla or {}).get(name)
        if item is None:
            continue
        point = f"p{item['percentile']:g}"
        misses = item.get("misses", 0)
        at = item["value_at_percentile_s"]
        value = f"not reached ({misses} misses: dropped or unfinished)" if at == math.inf else f"{fmt(at)} s"
        counted = f"; {misses} dropped or unfinished counted as misses" if misses else ""
        rows.append((
            f"SLA {name.upper()} {point} <= {fmt(item['objective_s'])} s",
            f"{item['attained']:.1%} within",
            f"{'met' if item['met'] else 'MISSED'}: {point} {value} of {item['measure']}{counted}",
        ))  # fmt: skip
    return rows


def exact(value: float) -> str:
    """A profile's number as written, in plain digits with separators ("262,000", "0.0000025",
    "30.24"): no rounding, no scientific notation."""
    text = f"{Decimal(repr(float(value))):,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
