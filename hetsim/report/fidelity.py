"""The fidelity report: simulated against measured, as figures and one self-contained HTML page."""

from __future__ import annotations

import base64
from html import escape

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hetsim.metrics.fidelity import Comparison
from hetsim.report._style import figure_png, new_figure, style_axes
from hetsim.report.html import CSS

MEASURED, SIMULATED = "#0072B2", "#D55E00"
_LABELS = {"ttft_s": "time to first token", "tbt_mean_s": "mean time between tokens", "e2e_s": "call end-to-end",
           "tbt_max_s": "worst gap between tokens",
           "output_tokens_per_s": "output tokens per second"}  # fmt: skip


def cdf_figure(measured: pd.DataFrame, simulated: pd.DataFrame) -> Figure:
    """CDFs of TTFT, TBT and E2E, measured and simulated, on one row."""
    figure = new_figure(11.0, 3.4)
    axes = figure.subplots(1, 3)
    for ax, metric in zip(axes, ("ttft_s", "tbt_mean_s", "e2e_s"), strict=True):
        for frame, color, name in ((measured, MEASURED, "measured"), (simulated, SIMULATED, "simulated")):
            values = np.sort(frame.loc[frame.status == "completed", metric].dropna().to_numpy() * 1e3)
            if values.size:
                ax.step(values, np.arange(1, values.size + 1) / values.size, where="post", color=color, label=name)
        ax.set_xlabel(f"{_LABELS[metric]} (ms)")
        ax.set_ylabel("share of calls")
        style_axes(ax, "both")
    axes[0].legend(frameon=False, loc="lower right")
    return figure


def scatter_figure(calls: pd.DataFrame) -> Figure:
    """Each call's simulated against measured end-to-end time."""
    figure = new_figure(5.2, 4.6)
    ax = figure.subplots()
    m, s = calls["e2e_s_measured"].to_numpy() * 1e3, calls["e2e_s_simulated"].to_numpy() * 1e3
    ax.scatter(m, s, s=10, alpha=0.6, color=MEASURED, linewidths=0)
    if m.size:
        top = float(max(m.max(), s.max()))
        ax.plot([0, top], [0, top], color="#57606a", linewidth=1, linestyle="--", label="simulated = measured")
        ax.legend(frameon=False, loc="upper left")
    ax.set_xlabel("measured call end-to-end (ms)")
    ax.set_ylabel("simulated call end-to-end (ms)")
    style_axes(ax, "both")
    return figure


def batch_figure(samples: pd.DataFrame, simulated_mean_batch: dict[str, float]) -> Figure:
    """Running requests per replica over time (engine metrics, sampled), with the simulator's
    time-weighted mean running batch of each pool as a dashed line."""
    figure = new_figure(11.0, 3.2)
    ax = figure.subplots()
    for (pool, replica), group in samples.groupby(["pool", "replica"], sort=True):
        ax.plot(group["time_s"], group["running"], linewidth=1, label=f"{pool}[{replica}] measured")
    for pool, mean in simulated_mean_batch.items():
        ax.axhline(mean, color=SIMULATED, linestyle="--", linewidth=1, label=f"{pool} simulated mean (busy time)")
    ax.set_xlabel("time since the first arrival (s)")
    ax.set_ylabel("running requests")
    ax.legend(frameon=False, fontsize=8, ncols=3)
    style_axes(ax, "both")
    return figure


def _img(figure: Figure, alt: str) -> str:
    data = base64.b64encode(figure_png(figure)).decode("ascii")
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{escape(alt)}</figcaption></figure>'


def _table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ("pool", "metric", "percentile", "measured", "simulated", "error"))
    body = []
    for row in table.itertuples(index=False):
        scale, unit = (1.0, "") if row.metric == "output_tokens_per_s" else (1e3, " ms")
        cells = [row.pool, _LABELS.get(row.metric, row.metric), row.percentile,
                 f"{row.measured * scale:.2f}{unit}", f"{row.simulated * scale:.2f}{unit}",
                 "n/a" if pd.isna(row.rel_error) else f"{row.rel_error:+.1%}"]  # fmt: skip
        body.append("<tr>" + "".join(f'<td class="num">{escape(str(c))}</td>' if i > 2 else f"<td>{escape(str(c))}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")  # fmt: skip
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def fidelity_html(title: str, comparison: Comparison, context: dict[str, str], figures: dict[str, Figure]) -> str:
    """The page: verdict, what ran, the error table, the figures."""
    facts = "".join(f"<li><strong>{escape(k)}</strong>: {escape(v)}</li>" for k, v in context.items())
    components = comparison.components * 1e3
    component_rows = "".join(
        f"<tr><td>{escape(side)}</td>" + "".join(f'<td class="num">{components.loc[side, c]:.2f} ms</td>' for c in components.columns) + "</tr>"
        for side in components.index
    )
    component_table = ('<div class="table-wrap"><table><thead><tr><th>side</th>'
                       + "".join(f"<th>{escape(c.replace('_', ' '))} (mean)</th>" for c in components.columns)
                       + f"</tr></thead><tbody>{component_rows}</tbody></table></div>")  # fmt: skip
    images = "".join(_img(figure, alt) for alt, figure in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head>
<body><header><h1>{escape(title)}</h1><p class="meta">hetsim fidelity: the same arrivals executed on real engines and simulated</p></header>
<section id="summary"><h2>Verdict</h2><p>{escape(comparison.verdict)}</p><ul>{facts}</ul></section>
<section><h2>Errors by metric and percentile</h2><p>Relative error = (simulated - measured) / measured; negative: the simulator is optimistic.</p>
{_table(comparison.table)}</section>
<section><h2>Where the time goes</h2>{component_table}</section>
<section><h2>Figures</h2>{images}</section>
<footer>Measured records, simulated records and this table are in the same folder (Parquet and fidelity.csv).</footer>
</body></html>"""
