"""Report figures: one builder per chart, flat DataFrame in, ``matplotlib.figure.Figure`` out.

Builders never save or show; :func:`hetsim.report._style.figure_png` renders a figure to PNG
bytes in memory and ``hetsim.io`` writes files. Every builder draws fleets in the report order
(:func:`hetsim.report.tables.fleet_order`) so the charts read together.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, PercentFormatter

from hetsim.report import _style as style
from hetsim.report import format as fmt
from hetsim.report.frames import COST_COMPONENTS, ReportData
from hetsim.report.tables import (
    case_order,
    fleet_order,
    pareto_front,
    placement_pivot,
    pool_label,
    stage_label,
    tco_breakdown,
)

NINES_MAX = 0.9999  # the SLA axis ends at four nines; 100% is drawn there


def _nines(share: np.ndarray) -> np.ndarray:
    """Nines scale: 90% -> 1, 99% -> 2, 99.9% -> 3, so shares near the target stay apart."""
    return -np.log10(1.0 - np.clip(share, 0.0, NINES_MAX))


def _from_nines(nines: np.ndarray) -> np.ndarray:
    return 1.0 - np.power(10.0, -np.asarray(nines, dtype=float))


def _wrap(name: str, width: int) -> str:
    return textwrap.fill(name, width)


def _fleet_labels(fleets: pd.DataFrame) -> list[str]:
    labels = []
    for name, status in fleets[["fleet", "status"]].itertuples(index=False):
        text = style.plain(_wrap(name, 28))
        labels.append(f"{text}\n(infeasible)" if status == "infeasible" else text)
    return labels


def _rows_height(labels: Sequence[str], per_line_in: float = 0.16) -> float:
    """Figure height giving every bar row room for its (possibly wrapped) label."""
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    return style.rows_height(len(labels), per_row_in=max(0.32, 0.18 + per_line_in * lines))


def _in_order(fleets: pd.DataFrame) -> pd.DataFrame:
    return fleets.set_index("fleet").loc[fleet_order(fleets)].reset_index()


def _colors(fleets: pd.DataFrame) -> list[str]:
    columns = ["status", "sla_met", "sla_attainment"]
    return [style.status_color(s, m, a) for s, m, a in fleets[columns].itertuples(index=False)]


def _status_legend(figure: Figure, colors: Sequence[str], extra: Sequence[object] = ()) -> None:
    """Legend of the fleet outcomes present in ``colors``, plus ``extra`` handles."""
    handles = [Patch(color=color, label=label) for color, label in style.STATUS_LABELS.items() if color in colors]
    handles += list(extra)
    figure.legend(handles=handles, loc="outside upper center", ncols=max(len(handles), 1))


def _bar_values(ax: Axes, y: np.ndarray, values: np.ndarray, texts: Sequence[str], offset_pt: float = 4.0) -> None:
    """Write each bar's value just past its end (at the axis where the value is missing)."""
    for yi, value, text in zip(y, values, texts, strict=True):
        ax.annotate(style.plain(text), (0.0 if np.isnan(value) else value, yi), xytext=(offset_pt, 0),
                    textcoords="offset points", va="center", fontsize=style.FONT_SIZE - 0.5)  # fmt: skip


def tco_breakdown_figure(fleets: pd.DataFrame) -> Figure:
    """Stacked $/h bars per fleet by cost component, the total at the end of each bar and the
    planner's prediction as a diamond."""
    table = tco_breakdown(fleets)
    ordered = _in_order(fleets)
    figure = style.new_figure(10.0, _rows_height(_fleet_labels(ordered)))
    ax = figure.add_subplot()
    y = np.arange(len(table))
    left = np.zeros(len(table))
    for component in COST_COMPONENTS:
        values = table[f"{component}_usd_per_h"].fillna(0.0).to_numpy()
        if values.any():
            ax.barh(y, values, left=left, height=0.6, color=style.COMPONENT_COLORS[component], label=component)
            left += values
    totals = table["total_usd_per_h"].to_numpy()
    predicted = ordered["predicted_total_usd_per_h"].to_numpy()
    if np.isfinite(predicted).any():
        ax.scatter(predicted, y, marker="D", s=28, color="black", zorder=3, label="planner prediction")
    span = np.nanmax(np.concatenate([left, totals, predicted, [1e-9]]))
    ends = np.fmax(np.fmax(left, np.nan_to_num(totals)), np.nan_to_num(predicted))
    _bar_values(ax, y, ends, [fmt.usd_per_h(t) if np.isfinite(t) else "no plan" for t in totals], offset_pt=7.0)
    ax.set_yticks(y, _fleet_labels(ordered))
    ax.invert_yaxis()
    ax.set_xlim(0, span * 1.18)
    ax.xaxis.set_major_formatter(style.MoneyFormatter())
    ax.set_xlabel("Total cost of ownership ($ per hour)")
    ax.set_title("TCO breakdown per fleet")
    style.style_axes(ax)
    handles, _labels = ax.get_legend_handles_labels()
    if handles:
        figure.legend(handles=handles, loc="outside upper center", ncols=len(handles))
    return figure


def unit_cost_figure(fleets: pd.DataFrame) -> Figure:
    """$ per 1M tokens and $ per session, side by side, coloured by SLA outcome."""
    ordered = _in_order(fleets)
    figure = style.new_figure(10.0, _rows_height(_fleet_labels(ordered)))
    axes = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(ordered))
    colors = _colors(ordered)
    panels = (("usd_per_million_tokens", "$ per 1M tokens"), ("usd_per_session", "$ per session"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        values = ordered[column].to_numpy()
        ax.barh(y, np.nan_to_num(values), height=0.6, color=colors)
        span = max(np.nanmax(np.append(values, 1e-9)), 1e-9)
        _bar_values(ax, y, values, [fmt.usd(v) if np.isfinite(v) else "n/a" for v in values])
        ax.set_xlim(0, span * 1.2)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # half-width panels: few, long money labels
        ax.xaxis.set_major_formatter(style.MoneyFormatter())
        ax.set_xlabel(style.plain(label))
        ax.set_title(style.plain(label))
        style.style_axes(ax)
    axes[0].set_yticks(y, _fleet_labels(ordered))
    axes[0].invert_yaxis()
    _status_legend(figure, colors)
    return figure


def _maybe_log(ax: Axes, values: np.ndarray, axis: str) -> None:
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) and finite.max() / finite.min() > 30:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def pareto_figure(fleets: pd.DataFrame, e2e_objective_s: float | None = None) -> Figure:
    """$ per 1M tokens against p99 session latency; the Pareto front is drawn as a staircase and
    its fleets are named in bold."""
    points = fleets[fleets["status"] != "infeasible"].dropna(subset=["usd_per_million_tokens", "session_e2e_p99_s"])
    figure = style.new_figure(10.0, 6.0)
    ax = figure.add_subplot()
    front = pareto_front(points, "usd_per_million_tokens", "session_e2e_p99_s")
    colors = _colors(points)
    x, y = points["session_e2e_p99_s"].to_numpy(), points["usd_per_million_tokens"].to_numpy()
    on_front = points.index.isin(front.index)
    ax.scatter(x, y, s=np.where(on_front, 90, 50), c=colors, edgecolors=np.where(on_front, "black", "white"), zorder=3)
    if len(front) > 1:
        ax.step(front["session_e2e_p99_s"], front["usd_per_million_tokens"], where="post", color="black",
                linestyle="--", linewidth=1.0, zorder=2)  # fmt: skip
    if e2e_objective_s is not None:
        ax.axvline(e2e_objective_s, color=style.MISSED, linestyle=":", linewidth=1.2)
    _maybe_log(ax, x, "x")
    _maybe_log(ax, y, "y")
    ax.margins(x=0.15, y=0.12)
    ax.yaxis.set_major_formatter(style.MoneyFormatter())
    ax.set_xlabel("p99 session end-to-end latency (s)")
    ax.set_ylabel(style.plain("$ per 1M tokens"))
    ax.set_title("Cost vs p99 latency (lower left is better)")
    style.style_axes(ax, "both")
    if len(points):
        style.label_points(ax, x, y, [style.plain(f) for f in points["fleet"]], on_front.tolist())
    extra = [Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="white", label="Pareto front")]
    if e2e_objective_s is not None:
        extra.append(
            Line2D([], [], color=style.MISSED, linestyle=":", label=f"objective {fmt.seconds(e2e_objective_s)}")
        )
    _status_legend(figure, colors, extra)
    return figure


def _nines_label(share: float, _position: int | None = None) -> str:
    return "100%" if share >= NINES_MAX else f"{100.0 * share:.4g}%"


def sla_figure(fleets: pd.DataFrame, target: float = 0.99) -> Figure:
    """SLA attainment per fleet (minimum over objectives) on a nines scale (90%, 99%, 99.9%
    equally spaced) with the target as a vertical line."""
    ordered = _in_order(fleets)
    figure = style.new_figure(10.0, _rows_height(_fleet_labels(ordered)))
    ax = figure.add_subplot()
    ax.set_xscale("function", functions=(_nines, _from_nines))
    y = np.arange(len(ordered))
    values = ordered["sla_attainment"].to_numpy()
    colors = _colors(ordered)
    ax.barh(y, np.clip(np.nan_to_num(values), 0.0, NINES_MAX), height=0.6, color=colors)
    texts = [
        _nines_label(v) if np.isfinite(v) else ("infeasible" if status == "infeasible" else "not simulated")
        for v, status in zip(values, ordered["status"], strict=True)
    ]
    _bar_values(ax, y, np.clip(values, 0.0, NINES_MAX), texts)
    ax.axvline(target, color="black", linestyle="--", linewidth=1.0)
    ax.text(
        target, 1.01, f"target {_nines_label(target)}", transform=ax.get_xaxis_transform(), ha="center", va="bottom"
    )
    ax.set_yticks(y, _fleet_labels(ordered))
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0 - (1.0 - NINES_MAX) / 4)  # room after a 100% bar for its label
    ax.xaxis.set_major_locator(FixedLocator([0.0, 0.5, 0.9, 0.99, 0.999, NINES_MAX]))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.xaxis.set_major_formatter(FuncFormatter(_nines_label))
    ax.set_xlabel("Share of calls / sessions within the SLA, lowest objective (nines scale)")
    ax.set_title("SLA attainment", pad=18)
    style.style_axes(ax)
    _status_legend(figure, colors)
    return figure


def _device_colors(placement: pd.DataFrame) -> dict[str, str]:
    devices = list(dict.fromkeys(placement["device"]))
    return {device: style.PALETTE[i % len(style.PALETTE)] for i, device in enumerate(devices)}


def _device_legend(figure: Figure, colors: dict[str, str]) -> None:
    handles = [Patch(color=color, label=device) for device, color in colors.items()]
    figure.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 6), title="device")


def _utilization_rows(placement: pd.DataFrame, order: Sequence[str]) -> tuple[list[str], list[int], pd.DataFrame]:
    labels, headers, rows = [], [], []
    for fleet in order:
        pools = placement[placement["fleet"] == fleet]
        if pools.empty:
            continue
        headers.append(len(labels))
        labels.append(style.plain(fleet))
        for _, pool in pools.iterrows():
            label = f"{pool['pool']}  ({pool_label(pool['devices'], pool['device'], pool['tp'], pool['pp'], pool.get('serving'))})"
            labels.append(style.plain(label))
            rows.append(pool.to_frame().T.assign(_row=len(labels) - 1))
    return labels, headers, pd.concat(rows) if rows else placement.assign(_row=[])


def utilization_figure(placement: pd.DataFrame, order: Sequence[str] | None = None) -> Figure:
    """Simulated busy share of every pool, grouped under its fleet, coloured by device."""
    order = list(order) if order is not None else list(dict.fromkeys(placement["fleet"]))
    labels, headers, rows = _utilization_rows(placement, order)
    colors = _device_colors(placement)
    figure = style.new_figure(10.0, style.rows_height(len(labels), per_row_in=0.27))
    ax = figure.add_subplot()
    values = pd.to_numeric(rows["utilization"]).to_numpy(dtype=float)
    positions = rows["_row"].to_numpy(dtype=float)
    ax.barh(positions, np.nan_to_num(values), height=0.65, color=[colors[d] for d in rows["device"]])
    _bar_values(ax, positions, values, [fmt.percent(v, 0) if np.isfinite(v) else "not simulated" for v in values])
    ax.set_yticks(np.arange(len(labels)), labels)
    for index in headers:
        ax.get_yticklabels()[index].set_fontweight("bold")
    ax.set_ylim(len(labels) - 0.5, -0.7)
    ax.set_xlim(0, max(1.0, np.nanmax(np.append(values, 0.0))) * 1.12)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel("Utilization (busy share of the simulated run)")
    ax.set_title("Utilization per pool")
    style.style_axes(ax)
    _device_legend(figure, colors)
    return figure


def _fit_cell_texts(ax: Axes, texts: Sequence[object], cell_width_px: float) -> None:
    """Shrink any cell text wider than its cell (never below 6 pt)."""
    renderer = ax.figure.canvas.get_renderer()
    for text in texts:
        width = text.get_window_extent(renderer).width
        if width > 0.92 * cell_width_px:
            text.set_fontsize(max(6.0, text.get_fontsize() * 0.92 * cell_width_px / width))


def placement_figure(placement: pd.DataFrame, order: Sequence[str] | None = None) -> Figure:
    """Stages (rows) x fleets (columns): which devices, how many, serve each stage."""
    order = list(order) if order is not None else list(dict.fromkeys(placement["fleet"]))
    pivot = placement_pivot(placement, order)
    colors = _device_colors(placement)
    device_of = placement.assign(stage=stage_label(placement)).groupby(["stage", "fleet"])["device"].first()
    n_rows, n_cols = pivot.shape
    figure = style.new_figure(float(np.clip(3.2 + 1.35 * n_cols, 8.0, 18.0)), max(2.8, 1.8 + 0.55 * n_rows))
    ax = figure.add_subplot()
    texts = []
    for row, stage in enumerate(pivot.index):
        for col, fleet in enumerate(pivot.columns):
            cell = pivot.loc[stage, fleet]
            if not cell:
                continue
            color = colors[device_of.loc[(stage, fleet)]]
            ax.add_patch(Rectangle((col - 0.47, row - 0.45), 0.94, 0.9, facecolor=color, alpha=0.25, edgecolor=color))
            label = style.plain(cell.replace(" + ", "\n"))
            texts.append(ax.text(col, row, label, ha="center", va="center", fontsize=style.FONT_SIZE - 0.5))
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.xaxis.tick_top()
    ax.set_xticks(range(n_cols), [style.plain(_wrap(f, 24)) for f in pivot.columns], rotation=25, ha="left",
                  va="bottom", rotation_mode="anchor")  # fmt: skip
    ax.set_yticks(range(n_rows), [style.plain(_wrap(s, 34)) for s in pivot.index])
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("Placement: devices serving each stage")
    figure.canvas.draw()
    _fit_cell_texts(ax, texts, ax.get_window_extent().width / max(n_cols, 1))
    _device_legend(figure, colors)
    return figure


def sensitivity_figure(sensitivity: pd.DataFrame, order: Sequence[str] | None = None) -> Figure:
    """$/h and $ per 1M tokens of each fleet under each case (grouped bars); an infeasible case
    is marked with a red cross instead of a bar."""
    order = list(order) if order is not None else list(dict.fromkeys(sensitivity["fleet"]))
    order = [f for f in order if f in set(sensitivity["fleet"])]
    cases = case_order(sensitivity["case"])
    figure = style.new_figure(float(np.clip(3.0 + 1.1 * len(order), 8.0, 16.0)), 7.0)
    axes = figure.subplots(2, 1, sharex=True)
    width = 0.8 / max(len(cases), 1)
    x = np.arange(len(order))
    table = sensitivity.set_index(["fleet", "case"])
    panels = (("total_usd_per_h", "$ per hour"), ("usd_per_million_tokens", "$ per 1M tokens"))
    for ax, (column, label) in zip(axes, panels, strict=True):
        for i, case in enumerate(cases):
            rows = table.reindex([(fleet, case) for fleet in order])
            feasible = rows["feasible"].fillna(False).astype(bool).to_numpy()
            values = np.where(feasible, rows[column].to_numpy(dtype=float), np.nan)
            offset = x + (i - (len(cases) - 1) / 2) * width
            ax.bar(
                offset,
                np.nan_to_num(values),
                width=width * 0.95,
                color=style.PALETTE[i % len(style.PALETTE)],
                label=case,
            )
            missing = rows[column].notna().to_numpy() | rows["feasible"].notna().to_numpy()
            crosses = offset[~feasible & missing]
            ax.scatter(crosses, np.zeros(len(crosses)), marker="x", color=style.MISSED, s=40, zorder=3, clip_on=False)
        ax.yaxis.set_major_formatter(style.MoneyFormatter())
        ax.set_ylabel(style.plain(label))
        style.style_axes(ax, "y")
    axes[0].set_title("Sensitivity: prices ±30% and doubled demand")
    axes[1].set_xticks(x, [style.plain(_wrap(f, 26)) for f in order], rotation=20, ha="right", rotation_mode="anchor")
    handles, _labels = axes[0].get_legend_handles_labels()
    if not sensitivity["feasible"].all():
        handles.append(Line2D([], [], marker="x", color=style.MISSED, linestyle="none", label="infeasible"))
    figure.legend(handles=handles, loc="outside upper center", ncols=len(handles))
    return figure


FIGURE_TITLES = {
    "tco_breakdown": "TCO breakdown per fleet ($/h)",
    "unit_costs": "$ per 1M tokens and $ per session",
    "cost_vs_latency": "Cost vs p99 session latency, with the Pareto front",
    "sla_attainment": "SLA attainment",
    "utilization": "Utilization per pool",
    "placement": "Placement: which stage runs where",
    "sensitivity": "Sensitivity to prices and demand",
}
# Figures only a plan's report has (drawn from its procurement tables).
PLAN_FIGURE_TITLES = {"robustness": "New spend as each input moves, with the points where the purchase flips"}
ALL_FIGURE_TITLES = FIGURE_TITLES | PLAN_FIGURE_TITLES


def build_figures(data: ReportData) -> dict[str, Figure]:
    """Every report figure that has data, keyed by the names in :data:`FIGURE_TITLES`.

    Left out: placement, utilization and sensitivity without rows; the cost/latency chart, the
    SLA chart and the utilization chart when nothing was simulated (all values NaN).
    """
    fleets, placement, order = data.fleets, data.placement, fleet_order(data.fleets)
    feasible = fleets[fleets["status"] != "infeasible"]
    figures = {
        "tco_breakdown": tco_breakdown_figure(fleets),
        "unit_costs": unit_cost_figure(fleets),
    }
    if feasible[["usd_per_million_tokens", "session_e2e_p99_s"]].notna().all(axis=1).any():
        figures["cost_vs_latency"] = pareto_figure(fleets, data.meta.e2e_objective_s)
    if fleets["sla_attainment"].notna().any():
        figures["sla_attainment"] = sla_figure(fleets, data.meta.sla_target)
    if placement["utilization"].notna().any():
        figures["utilization"] = utilization_figure(placement, order)
    if len(placement):
        figures["placement"] = placement_figure(placement, order)
    if len(data.sensitivity):
        figures["sensitivity"] = sensitivity_figure(data.sensitivity, order)
    if "robustness" in data.extras and len(data.extras["robustness"]):
        from hetsim.report.procurement_figures import robustness_figure

        figures["robustness"] = robustness_figure(data.extras["robustness"])
    return figures
