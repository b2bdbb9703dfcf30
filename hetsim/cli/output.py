"""Rendering helpers shared by commands: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def print_json(data: Any) -> None:
    """Print ``data`` as JSON (NaN and infinities become null)."""
    typer.echo(json.dumps(_clean(data), indent=2, sort_keys=False))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> None:
    """Print a rich table; cells are rendered with ``str``."""
    table = Table(title=title, caption=caption or None, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(width=max(120, Console().width)).print(table)


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits; None becomes an empty cell."""
    if value is None:
        return ""
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
        rows.append((
            f"SLA {name.upper()} {point} <= {fmt(item['objective_s'])} s",
            f"{item['attained']:.1%} within",
            f"{'met' if item['met'] else 'MISSED'}: {point} {fmt(item['value_at_percentile_s'])} s of {item['measure']}",
        ))  # fmt: skip
    return rows
