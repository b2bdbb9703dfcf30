"""The robustness figure of a plan's report: new spend against each input moved, with the
points where the purchase flips."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hetsim.report import _style as style


def robustness_figure(robustness: pd.DataFrame) -> Figure:
    """One panel per input moved (prices per vendor, energy, demand): the new spend ($/h) of the
    re-solved plan at each factor, hollow where the purchase differs from the plan's, a red
    cross where no fleet is feasible, and a dashed line at each bisected flip point."""
    scanned = robustness[robustness["dimension"] != "step times"]
    base = scanned[scanned["kind"] == "base"]
    dimensions = [d for d in dict.fromkeys(scanned["dimension"]) if d != "base"]
    columns = min(3, max(len(dimensions), 1))
    rows = math.ceil(len(dimensions) / columns) or 1
    figure = style.new_figure(4.2 * columns, 3.0 * rows + 0.6)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    base_spend = float(base["new_spend_usd_per_h"].iloc[0]) if len(base) else math.nan
    for ax, dimension in zip(axes, dimensions, strict=False):
        rows_of = scanned[scanned["dimension"] == dimension]
        cases = pd.concat([base.assign(dimension=dimension), rows_of[rows_of["kind"] == "case"]]).sort_values("factor")
        feasible = cases["feasible"].astype(bool).to_numpy()
        x, y = cases["factor"].to_numpy(dtype=float), cases["new_spend_usd_per_h"].to_numpy(dtype=float)
        changed = cases["placement_changed"].astype(bool).to_numpy()
        ax.plot(x[feasible], y[feasible], color=style.PALETTE[0], linewidth=1.2, zorder=1)
        ax.scatter(x[feasible & ~changed], y[feasible & ~changed], color=style.PALETTE[0], s=28, zorder=2,
                   label="same purchase")  # fmt: skip
        ax.scatter(x[feasible & changed], y[feasible & changed], facecolors="white", edgecolors=style.PALETTE[1],
                   s=36, zorder=3, label="purchase changes")  # fmt: skip
        top = np.nanmax(y) if np.isfinite(y).any() else base_spend
        ax.scatter(x[~feasible], np.full((~feasible).sum(), top), marker="x", color=style.MISSED, s=40, zorder=3,
                   label="infeasible")  # fmt: skip
        for _, flip in rows_of[rows_of["kind"] == "flip"].iterrows():
            ax.axvline(flip["factor"], color=style.MISSED, linestyle="--", linewidth=1.0)
            ax.annotate(f"flips at x{flip['factor']:.2f}", (flip["factor"], 0.98), xycoords=("data", "axes fraction"),
                        ha="left", va="top", fontsize=8, color=style.MISSED, rotation=90)  # fmt: skip
        ax.axvline(1.0, color="#8c959f", linewidth=0.8, linestyle=":")
        ax.set_title(style.plain(dimension), fontsize=10)
        ax.set_xlabel("factor on the plan's value")
        ax.set_ylabel("new spend $/h")
        ax.yaxis.set_major_formatter(style.MoneyFormatter())
        style.style_axes(ax, "y")
    for ax in axes[len(dimensions):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    figure.legend(list(unique.values()), list(unique.keys()), loc="outside upper center", ncols=len(unique))
    return figure
