"""Figures of the paper reproduction, in the style of arXiv 2507.19635 Figs. 8 and 9: TCO benefit
of each prefill::decode pair over the baseline pair, grouped by pair, one bar per model variant,
one panel per SLA, dashed baseline at 1.0. Data in (flat frames), ``Figure`` out; never saved
or shown here.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hetsim.report import _style as style

INFEASIBLE_MARK = "x"


def pair_text(pair: str) -> str:
    """A pair or device key as the paper writes it: 'b200::gaudi3' -> 'B200::Gaudi3'."""
    names = {"h100": "H100", "b200": "B200", "gaudi3": "Gaudi3", "a100": "A100", "mi300x": "MI300X"}
    return "::".join(names.get(part, part) for part in pair.split("::"))


def _panel(ax, table: pd.DataFrame, pairs: Sequence[str], variants: Sequence[str], title: str) -> None:
    """Grouped bars: one group per pair, one bar per variant; an 'x' marks an infeasible bar."""
    width = 0.8 / max(len(variants), 1)
    x = np.arange(len(pairs))
    for index, variant in enumerate(variants):
        values = [table.get((pair, variant), math.nan) for pair in pairs]
        offset = x - 0.4 + width * (index + 0.5)
        heights = [0.0 if math.isnan(v) else v for v in values]
        color = style.PALETTE[index % len(style.PALETTE)]
        ax.bar(offset, heights, width * 0.92, color=color, label=variant)
        for position, value in zip(offset, values, strict=True):
            if math.isnan(value):
                ax.plot(position, 0.05, INFEASIBLE_MARK, color="#555555", markersize=5)
            else:
                ax.annotate(f"{value:.2f}", (position, value), xytext=(0, 1.5), textcoords="offset points",
                            ha="center", va="bottom", fontsize=style.FONT_SIZE - 3.5, rotation=90)  # fmt: skip
    ax.axhline(1.0, color="#333333", linestyle="--", linewidth=1.0)
    ax.set_xticks(x, [pair_text(p) for p in pairs], rotation=25, ha="right", fontsize=style.FONT_SIZE - 0.5)
    ax.set_title(style.plain(title), fontsize=style.FONT_SIZE + 0.5)
    ax.set_ylabel("TCO benefit vs baseline (x)", fontsize=style.FONT_SIZE)
    style.style_axes(ax, grid_axis="y")


def benefit_figure(
    pairs: pd.DataFrame,
    pair_order: Sequence[str],
    variant_order: Sequence[str],
    slas: Sequence[tuple[str, str]],
    title: str,
) -> Figure:
    """Fig. 8/9-style bars for one input set and one request shape.

    Args:
        pairs: rows with columns ``pair``, ``variant``, ``sla`` and ``tco_benefit`` (NaN = infeasible).
        pair_order: pairs to draw, left to right (the baseline included draws at 1.0).
        variant_order: model variants, one bar each, in legend order.
        slas: (name, label) of each panel, top to bottom.
        title: figure title (what inputs and shape it shows).
    """
    figure = style.new_figure(10.0, 3.1 * len(slas) + 0.9)
    axes = figure.subplots(len(slas), 1, sharey=True, squeeze=False)[:, 0]
    top = max(float(pairs.tco_benefit.max(skipna=True)) if len(pairs) else 1.0, 1.0)
    for ax, (sla, label) in zip(axes, slas, strict=True):
        mine = pairs[pairs.sla == sla].set_index(["pair", "variant"]).tco_benefit.to_dict()
        _panel(ax, mine, pair_order, variant_order, label)
        ax.set_ylim(0, top * 1.22)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(variant_order), fontsize=style.FONT_SIZE)
    figure.suptitle(style.plain(textwrap.fill(title, 110)), fontsize=style.FONT_SIZE + 1.5)
    return figure


def pair_matrix_figure(
    pairs: pd.DataFrame, devices: Sequence[str], panels: Sequence[tuple[str, str, str]], title: str
) -> Figure:
    """Every prefill x decode pair as a heat map: geometric mean of the benefit over the model
    variants, one panel per (shape, SLA); '*' marks a mean over the feasible variants only, a
    blank cell has none.

    Args:
        pairs: rows with ``prefill``, ``decode``, ``shape``, ``sla``, ``tco_benefit``.
        devices: row and column order.
        panels: (shape, sla, label) per panel.
        title: figure title.
    """
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    figure = style.new_figure(4.6 * columns + 0.8, 4.0 * rows + 0.6)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    names = [pair_text(d) for d in devices]
    image = None
    for ax, (shape, sla, label) in zip(axes, panels, strict=False):
        mine = pairs[(pairs["shape"] == shape) & (pairs.sla == sla)]
        grid = np.full((len(devices), len(devices)), np.nan)
        partial = np.zeros_like(grid, dtype=bool)
        for (prefill, decode), group in mine.groupby(["prefill", "decode"]):
            values = group.tco_benefit.to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            if len(finite):
                grid[devices.index(prefill), devices.index(decode)] = float(np.exp(np.log(finite).mean()))
                partial[devices.index(prefill), devices.index(decode)] = len(finite) < len(values)
        top = max(2.5, float(np.nanmax(grid))) if np.isfinite(grid).any() else 2.5
        image = ax.imshow(grid, cmap="viridis", vmin=0.5, vmax=top)
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                text = f"{value:.2f}" + ("*" if partial[i, j] else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=style.FONT_SIZE - 1,
                        color="white" if value < 1.6 else "black")  # fmt: skip
        ax.set_xticks(range(len(devices)), names, rotation=30, ha="right", fontsize=style.FONT_SIZE - 1)
        ax.set_yticks(range(len(devices)), names, fontsize=style.FONT_SIZE - 1)
        ax.set_xlabel("decode device", fontsize=style.FONT_SIZE)
        ax.set_ylabel("prefill device", fontsize=style.FONT_SIZE)
        ax.set_title(style.plain(label), fontsize=style.FONT_SIZE)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if image is not None:
        figure.colorbar(
            image, ax=list(axes[: len(panels)]), shrink=0.8, label="TCO benefit (geometric mean over models)"
        )
    note = "; * = some model variants cannot meet the SLA on that pair (mean over the others)"
    figure.suptitle(style.plain(textwrap.fill(title + note, 100)), fontsize=style.FONT_SIZE + 1.5)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes (rendered in memory)."""
    return style.figure_png(figure)
