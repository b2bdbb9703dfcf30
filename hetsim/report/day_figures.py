"""The day plan's figure: the demand curve over the day with the capacity under it, and the nodes
held each hour by how they are paid for (owned or bought, rented on demand, spot and its spares)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hetsim.report import _style as style

KINDS = (("owned + bought", "owned", 0), ("rented on demand", "rented", 1), ("spot", "spot", 2),
         ("spot spares", "spot_spares", 4))  # fmt: skip


def day_figure(hours: Sequence[dict[str, Any]], fleet: str) -> Figure:
    """Top: sessions/s each hour (the demand, a step line) over the sessions/s the hour's
    placement sustains (the shaded capacity). Bottom: nodes held each hour, stacked by kind.
    ``hours``: the day plan's hour rows (``hetsim.api.day.hour_rows``)."""
    figure = style.new_figure(8.0, 5.4)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    x = np.arange(len(hours) + 1, dtype=float)
    demand = np.array([r["sessions_per_s"] for r in hours], dtype=float)
    capacity = np.array([np.nan if r["capacity_sessions_per_s"] is None else r["capacity_sessions_per_s"] for r in hours])
    top.fill_between(x, np.append(capacity, capacity[-1]), step="post", color=style.PALETTE[4], alpha=0.35,
                     linewidth=0, label="capacity the placement sustains")  # fmt: skip
    top.step(x, np.append(demand, demand[-1]), where="post", color=style.PALETTE[0], linewidth=1.6, label="demand")
    top.set_ylabel("sessions/s")
    top.set_title(f"Demand over the day and the capacity under it (fleet {fleet})", loc="left")
    top.legend(loc="upper left", frameon=False)
    style.style_axes(top, "y")
    counts = {key: np.array([_owned(r) if key == "owned" else sum(r.get(key, {}).values()) for r in hours], dtype=float)
              for _, key, _ in KINDS}  # fmt: skip
    base = np.zeros(len(hours))
    for label, key, colour in KINDS:
        if counts[key].any():
            bottom.bar(x[:-1] + 0.5, counts[key], bottom=base, width=0.85, color=style.PALETTE[colour], label=label)
            base += counts[key]
    bottom.set_ylim(0, max(float(base.max()), 1.0) * 1.45)  # room above the bars for the legend
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))  # whole nodes
    bottom.set_ylabel("nodes held")
    bottom.set_xlabel("hour of day")
    bottom.set_xticks(np.arange(0, len(hours) + 1, 3))
    bottom.set_xlim(0, len(hours))
    bottom.legend(loc="upper left", frameon=False, ncols=2)
    style.style_axes(bottom, "y")
    return figure


def _owned(row: dict[str, Any]) -> int:
    return sum(row.get("inventory", {}).values()) + sum(row.get("bought", {}).values())
