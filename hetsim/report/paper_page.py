"""The paper-reproduction report: a Markdown summary and a self-contained HTML page with the
claim table, the Fig. 8/9-style figures, the choices made for the paper's unknowns and the
inputs used. Returns file contents (relative path -> text or bytes); writing is ``hetsim.io``'s.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd
from matplotlib.figure import Figure

from hetsim.report.paper_figures import figure_png

CLAIM_HEADERS = {
    "id": "ID", "claim": "Paper's claim", "source": "Source", "ours_paper": "Ours, Table 5 inputs",
    "ours_datasheet": "Ours, datasheet inputs", "verdict_paper": "Verdict (Table 5)",
    "verdict_datasheet": "Verdict (datasheet)", "why": "Why / what moves it (computed)",
    "commentary": "Commentary (typed; no verdict reads it)", "test": "Test",
}  # fmt: skip
LISTS = ("Summary", "Provenance")  # sections whose paragraphs render as bullet lists
CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2328; max-width: 1400px;
       margin: 0 auto; padding: 24px 32px 48px; line-height: 1.45; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 12px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
td.agree { background: #e6f4ea; } td.partly { background: #fff5d6; } td.disagree { background: #fde7e9; }
figure { margin: 16px 0; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption, .meta { color: #57606a; font-size: 0.9em; }
"""


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured pipe table."""
    lines = [
        "| " + " | ".join(_cell(c) for c in table.columns) + " |",
        "| " + " | ".join("---" for _ in table.columns) + " |",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def html_table(table: pd.DataFrame, verdict_columns: Sequence[str] = ()) -> str:
    """An HTML table; cells of ``verdict_columns`` are coloured by their verdict."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, row, strict=True):
            css = f' class="{escape(str(value))}"' if column in verdict_columns else ""
            cells.append(f"<td{css}>{escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def claim_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claim frame with readable headers, in display order."""
    return claims[list(CLAIM_HEADERS)].rename(columns=CLAIM_HEADERS)


def _summary(claims: pd.DataFrame) -> list[str]:
    counts = claims.verdict_paper.value_counts()
    lines = ["Verdicts with the paper's Table 5 inputs: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + "."]
    for row in claims.itertuples():
        if row.verdict_paper in ("partly", "disagree"):
            lines.append(f"**{row.id}** ({row.verdict_paper}): {row.claim} - ours: {row.ours_paper}")
    return lines


def _sections(
    frames: Mapping[str, pd.DataFrame], meta: Mapping[str, object]
) -> list[tuple[str, list[str], list[tuple[str, pd.DataFrame]]]]:
    """(title, paragraphs, tables) of every text section, in page order."""
    choices = pd.DataFrame(meta.get("choices", []), columns=["Unknown in the paper", "Our choice"])
    link = frames["link_bandwidth"].round({"kv_gb": 3, "egress_gbps": 1, "ingress_gbps": 1})
    placement = frames["placement"]
    sections = [
        ("Summary", _summary(frames["claims"]), []),
        ("Claim table", ["Each claim of the paper, our number with each input set, agree or not, and why. Counts are "
                         "over cases (model x precision x SLA per request shape); sensitivity input sets and a relaxed "
                         "TBT show what moves each count. Verdicts and the 'why' column are computed from the frames "
                         "below; the commentary column is typed context (method, the paper's words, unknowns) that no "
                         "verdict reads."], [("Claims", claim_table(frames["claims"]))]),
        ("Choices for the paper's unknowns", ["paper.md section 6 lists what the paper leaves open; each gets a choice "
                                              "(scenarios/paper/README.md explains them)."], [("Choices", choices)]),
        ("Device inputs", ["Numbers each input set uses; derived numbers say so in fp8_source."],
         [("Inputs", frames["inputs"].round(4))]),
        ("KV link bandwidth (E6)", ["Eq. (1)/(2) at batch 1, TTFT 250 ms, TBT 20 ms."], [("Link bandwidth", link)]),
    ]  # fmt: skip
    sections.append(("Provenance", list(meta.get("provenance", [])), []))
    if len(placement):
        columns = ["rate_per_s", "stage", "device", "device_kind", "replicas", "devices", "nodes_bought"]
        sections.append(("Voice-agent placement (E11)", ["The planner's placement at each session rate."],
                         [("Placement", placement[columns])]))  # fmt: skip
    return sections


def build_markdown(frames: Mapping[str, pd.DataFrame], meta: Mapping[str, object], figures: Mapping[str, str]) -> str:
    """The Markdown summary; ``figures`` maps figure name -> caption (PNGs under ``figures/``)."""
    lines = [f"# {meta['title']}", "", f"_{meta['subtitle']}_", "", "Full page: [report.html](report.html)", ""]
    for title, paragraphs, tables in _sections(frames, meta):
        lines += [f"## {title}", ""]
        lines += [(f"- {p}" if title in LISTS else p) for p in paragraphs] + [""]
        for caption, table in tables:
            lines += [f"**{caption}**", "", markdown_table(table), ""]
        if title == "Claim table":
            lines += ["## Figures", ""]
            lines += [f"![{caption}](figures/{name}.png)\n\n_{caption}_\n" for name, caption in figures.items()]
    return "\n".join(lines).rstrip() + "\n"


def build_html(
    frames: Mapping[str, pd.DataFrame], meta: Mapping[str, object], figures: Mapping[str, tuple[str, bytes]]
) -> str:
    """The self-contained page; ``figures`` maps name -> (caption, PNG bytes)."""
    parts = [f"<h1>{escape(str(meta['title']))}</h1>", f"<p class='meta'>{escape(str(meta['subtitle']))}</p>"]
    for title, paragraphs, tables in _sections(frames, meta):
        parts.append(f"<h2>{escape(title)}</h2>")
        tag = "li" if title in LISTS else "p"
        items = "".join(f"<{tag}>{escape(p).replace('**', '')}</{tag}>" for p in paragraphs)
        parts.append(f"<ul>{items}</ul>" if tag == "li" else items)
        for _, table in tables:
            parts.append(html_table(table, ("Verdict (Table 5)", "Verdict (datasheet)")))
        if title == "Claim table":
            parts.append("<h2>Figures</h2>")
            for caption, png in figures.values():
                data = base64.b64encode(png).decode("ascii")
                parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{escape(caption)}'>"
                             f"<figcaption>{escape(caption)}</figcaption></figure>")  # fmt: skip
    body = "\n".join(parts)
    head = f"<meta charset='utf-8'><title>{escape(str(meta['title']))}</title><style>{CSS}</style>"
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>\n"


def render_paper_report(
    frames: Mapping[str, pd.DataFrame], meta: Mapping[str, object], figures: Mapping[str, tuple[str, Figure]]
) -> dict[str, bytes | str]:
    """Files of the report: ``report.md``, ``report.html``, ``claims.md`` and ``figures/<name>.png``."""
    pngs = {name: (caption, figure_png(figure)) for name, (caption, figure) in figures.items()}
    files: dict[str, bytes | str] = {f"figures/{name}.png": png for name, (_, png) in pngs.items()}
    files["report.md"] = build_markdown(frames, meta, {name: caption for name, (caption, _) in pngs.items()})
    files["report.html"] = build_html(frames, meta, pngs)
    files["claims.md"] = f"# {meta['title']}: claim table\n\n" + markdown_table(claim_table(frames["claims"])) + "\n"
    return files
