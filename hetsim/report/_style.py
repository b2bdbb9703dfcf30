"""Shared look of the report figures: colours, figure creation, PNG rendering, label placement.

Figures are plain ``matplotlib.figure.Figure`` objects with an Agg canvas attached; pyplot (and
its global figure registry and backend switch) is never used.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import Formatter

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
COMPONENT_COLORS = {
    "capex": "#0072B2",
    "power": "#E69F00",
    "hosting": "#009E73",
    "networking": "#CC79A7",
    "rental": "#56B4E9",
}
MET, MISSED, UNVERIFIED, INFEASIBLE = "#0072B2", "#D55E00", "#56B4E9", "#9E9E9E"
STATUS_LABELS = {MET: "meets SLA", MISSED: "misses SLA", UNVERIFIED: "SLA not simulated", INFEASIBLE: "infeasible"}
FONT_SIZE = 9.0
DPI = 110


def plain(text: str) -> str:
    """Text matplotlib shows literally: a pair of ``$`` would otherwise start math mode."""
    return text.replace("$", r"\$")


class MoneyFormatter(Formatter):
    """Dollar tick labels with as few decimals as the tick spacing needs (``$0``, ``$25``, ``$0.05``)."""

    def __init__(self) -> None:
        self.decimals = 0

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        # The fewest decimals (up to 4) that print every tick exactly: $2.5 stays $2.5, $25 is $25.
        finite = [float(v) for v in values if np.isfinite(v)]
        self.decimals = next(
            (d for d in range(5) if all(abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)) for v in finite)), 4
        )
        return [self(value) for value in values]

    def __call__(self, value: float, position: int | None = None) -> str:
        return plain(f"${value:,.{self.decimals}f}")


def new_figure(width_in: float, height_in: float) -> Figure:
    """An empty figure with an Agg canvas and constrained layout."""
    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def style_axes(ax: Axes, grid_axis: str = "x") -> None:
    """Light grid behind the data, no top/right spines."""
    ax.set_axisbelow(True)
    ax.grid(axis=grid_axis, color="#dddddd", linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def status_color(status: str, sla_met: bool, attainment: float = 0.0) -> str:
    """Colour of a fleet by outcome: meets the SLA, misses it, was not simulated (no attainment
    figure), or has no feasible plan."""
    if status == "infeasible":
        return INFEASIBLE
    if sla_met:
        return MET
    return UNVERIFIED if np.isnan(attainment) else MISSED


def rows_height(rows: int, per_row_in: float = 0.32, extra_in: float = 1.2) -> float:
    """Figure height that gives every bar row room for its label."""
    return max(2.6, extra_in + per_row_in * rows)


def figure_png(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (rendered in memory)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _spread(positions: np.ndarray, gap: float) -> np.ndarray:
    """Move sorted positions apart until neighbours are ``gap`` apart, keeping their mean."""
    placed = positions.copy()
    for _ in range(50):
        moved = False
        for i in range(1, len(placed)):
            overlap = gap - (placed[i] - placed[i - 1])
            if overlap > 1e-9:
                placed[i - 1] -= overlap / 2
                placed[i] += overlap / 2
                moved = True
        if not moved:
            break
    return placed


def _text_widths(ax: Axes, labels: Sequence[str], bold: np.ndarray) -> np.ndarray:
    renderer = ax.figure.canvas.get_renderer()
    widths = []
    for label, is_bold in zip(labels, bold, strict=True):
        font = FontProperties(size=FONT_SIZE - 0.5, weight="bold" if is_bold else "normal")
        widths.append(renderer.get_text_width_height_descent(label, font, ismath=False)[0])
    return np.asarray(widths, dtype=float)


def label_points(
    ax: Axes, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], on_front: Sequence[bool]
) -> None:
    """Name each point without labels overlapping.

    Pareto-front points are labelled below-left in bold: nothing lies below-left of the front, and
    its staircase runs right of each point. Other points are labelled to the right. A label that
    would leave the axes goes to the other side. Labels on one side are pushed apart vertically,
    with a leader line when they moved.
    """
    ax.figure.canvas.draw()  # fixes the data -> pixel transform the placement relies on
    front = np.asarray(on_front, dtype=bool)
    pixels = ax.transData.transform(np.column_stack([xs, ys]))
    box = ax.get_window_extent()
    to_points = 72.0 / ax.figure.dpi
    offset = 8.0 / to_points
    widths = _text_widths(ax, labels, front)
    fits_left = pixels[:, 0] - offset - widths >= box.x0
    fits_right = pixels[:, 0] + offset + widths <= box.x1
    left = np.where(front, fits_left | ~fits_right, ~fits_right & fits_left)
    drop = np.where(front, -9.0 / to_points, 0.0)  # front labels sit a little lower
    gap = FONT_SIZE * 1.4 / to_points
    for side in (False, True):
        members = np.flatnonzero(left == side)
        members = members[np.argsort(pixels[members, 1] + drop[members])]
        targets = _spread(pixels[members, 1] + drop[members], gap)
        for index, target_y in zip(members, targets, strict=True):
            dy = (target_y - pixels[index, 1]) * to_points
            moved = abs(target_y - pixels[index, 1] - drop[index]) > 2.0 / to_points
            ax.annotate(
                labels[index], (xs[index], ys[index]), xytext=(-8.0 if side else 8.0, dy), textcoords="offset points",
                ha="right" if side else "left", va="center", fontsize=FONT_SIZE - 0.5,
                fontweight="bold" if front[index] else "normal",
                arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6} if moved else None,
            )  # fmt: skip
