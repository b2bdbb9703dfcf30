"""The report package: figures, tables, HTML, Markdown and the files written for a report."""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from report_builders import SAMPLE_META, sample_frames

from hetsim.errors import ScenarioError
from hetsim.io.reports import write_report
from hetsim.report import format as fmt
from hetsim.report import pareto_front, prepare, render_report
from hetsim.report._style import figure_png
from hetsim.report.figures import FIGURE_TITLES, build_figures
from hetsim.report.frames import FLEET_COLUMNS, PLACEMENT_COLUMNS, SENSITIVITY_COLUMNS
from hetsim.report.headline import find_headline, summary_sentences
from hetsim.report.html import build_html
from hetsim.report.markdown import build_markdown
from hetsim.report.tables import fleet_order, placement_pivot, ranked_fleets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


@pytest.fixture(scope="module")
def rendered():
    """One full report of eight fleets (one infeasible, one missing the SLA), rendered once."""
    return render_report(*sample_frames(8), SAMPLE_META)


def _drawn_texts(figure: Figure) -> list[Text]:
    """Texts that are actually drawn: tick labels outside the view limits exist but are not."""
    figure.canvas.draw()
    ticks, keep = set(), []
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(high))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update({id(tick.label1), id(tick.label2)})
                if low - slack <= tick.get_loc() <= high + slack:
                    keep += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    keep += [t for t in figure.findobj(Text) if id(t) not in ticks and t.get_visible()]
    return [t for t in keep if t.get_text().strip()]


def _overlaps(figure: Figure) -> list[tuple[str, str]]:
    renderer = figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(figure) if t.get_rotation() == 0]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]


def _outside(figure: Figure) -> list[str]:
    renderer = figure.canvas.get_renderer()
    frame = figure.bbox.padded(2)
    return [t.get_text() for t in _drawn_texts(figure) if not frame.contains(*t.get_window_extent(renderer).min)
            or not frame.contains(*t.get_window_extent(renderer).max)]  # fmt: skip


def _first(frames, n_fleets):
    """The frames restricted to the first ``n_fleets`` fleets of the fleets table."""
    keep = set(frames[0]["fleet"].iloc[:n_fleets])
    return tuple(frame[frame["fleet"].isin(keep)].reset_index(drop=True) for frame in frames)


# --- figures -----------------------------------------------------------------------------


@pytest.mark.parametrize("n_fleets", [3, 8])
def test_every_figure_builds_as_a_figure(n_fleets):
    figures = build_figures(prepare(*sample_frames(n_fleets), SAMPLE_META))
    assert set(figures) == set(FIGURE_TITLES)
    assert all(isinstance(figure, Figure) for figure in figures.values())


@pytest.mark.parametrize(("n_fleets", "long_names", "cost_scale"), [(8, False, 1.0), (8, True, 1.0), (1, False, 1e-3)])
def test_figure_texts_neither_overlap_nor_leave_the_figure(n_fleets, long_names, cost_scale):
    fleets, placement, sensitivity = _first(sample_frames(8), n_fleets)
    money = [c for c in fleets.columns if "usd" in c]
    fleets[money] *= cost_scale  # tiny dollar amounts make long tick labels
    if long_names:
        rename = {name: f"{name}-with-a-rather-long-name" for name in fleets["fleet"]}
        fleets, placement, sensitivity = (
            f.assign(fleet=f["fleet"].map(rename)) for f in (fleets, placement, sensitivity)
        )
    for name, figure in build_figures(prepare(fleets, placement, sensitivity, SAMPLE_META)).items():
        assert _overlaps(figure) == [], name
        assert _outside(figure) == [], name


def test_report_figures_are_rendered_as_png(rendered):
    assert set(rendered.figures) == set(FIGURE_TITLES)
    assert all(png.startswith(PNG_MAGIC) and len(png) > 10_000 for png in rendered.figures.values())


def test_report_package_never_imports_pyplot():
    code = (
        "import sys; sys.path.insert(0, 'tests/report'); from report_builders import sample_frames;"
        "from hetsim.report import prepare; from hetsim.report.figures import build_figures;"
        "build_figures(prepare(*sample_frames(3)));"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- tables ------------------------------------------------------------------------------


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    frame = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "cost": [10.0, 5.0, 6.0, 1.0, 5.0, 0.5, 1.0, 7.0],
            "latency": [1.0, 2.0, 3.0, 4.0, 2.0, math.nan, 5.0, 1.0],
        }
    )
    # c is beaten by b; g ties d on cost but is slower; h ties a on latency but is cheaper, so
    # it beats a; f has no latency; b and e are the same point and both stay.
    front = pareto_front(frame, "cost", "latency")
    assert front["name"].tolist() == ["h", "b", "e", "d"]
    assert list(front.columns) == list(frame.columns)


def test_pareto_front_of_nothing_is_empty():
    frame = pd.DataFrame({"cost": [math.nan], "latency": [1.0]})
    assert pareto_front(frame, "cost", "latency").empty


def test_fleets_are_ordered_sla_met_cheapest_first_then_missed_then_infeasible():
    data = prepare(*sample_frames(8))
    order = fleet_order(data.fleets)
    assert order[0] == "gaudi3-pod"
    assert order[-2:] == ["l40s-only", "l4-edge"]
    assert ranked_fleets(data.fleets)["rank"].tolist() == list(range(1, 9))


def test_placement_pivot_names_device_count_and_parallelism():
    data = prepare(*sample_frames(3))
    pivot = placement_pivot(data.placement, fleet_order(data.fleets))
    assert pivot.loc["coding-agent / llm:llama-3-70b:decode", "8x-h100-sxm"] == "12× h100-sxm TP4"
    assert "l4-edge" not in pivot.columns  # no plan, no pools


# --- summary -----------------------------------------------------------------------------


def test_summary_names_the_cheapest_fleet_meeting_the_sla_and_why_others_miss():
    data = prepare(*sample_frames(8), SAMPLE_META)
    headline = find_headline(data)
    assert (headline.best, headline.baseline) == ("gaudi3-pod", "b200-2node")
    assert headline.missed == ("l40s-only",) and headline.infeasible == ("l4-edge",)
    text = " ".join(summary_sentences(data, headline))
    assert "TBT p99 120 ms exceeds" in text and "140 GB of weights" in text


def test_summary_of_an_unsimulated_single_fleet_says_the_sla_was_not_checked():
    fleets, placement, sensitivity = sample_frames(3)
    fleets = fleets.iloc[[0]].assign(sla_met=False, sla_attainment=math.nan)
    keep = set(fleets["fleet"])
    data = prepare(fleets, placement[placement.fleet.isin(keep)], sensitivity[sensitivity.fleet.isin(keep)])
    text = " ".join(summary_sentences(data))
    assert "not checked in simulation" in text and "meets the SLA" not in text


# --- HTML and Markdown -------------------------------------------------------------------


class _Checker(HTMLParser):
    """Records unclosed/mismatched tags, image sources and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag in ("script", "link", "iframe") or str(attributes.get("src", "")).startswith(("http:", "https:", "//")):
            self.external.append(tag)
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_well_formed_self_contained_and_states_the_headline(rendered):
    checker = _Checker()
    checker.feed(rendered.html)
    checker.close()
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert checker.errors == [] and checker.stack == []
    assert checker.external == []
    assert len(checker.images) == len(FIGURE_TITLES)
    for source in checker.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    text = " ".join(checker.text)
    best = prepare(*sample_frames(8)).fleets.set_index("fleet").loc["gaudi3-pod"]
    for expected in (fmt.usd_per_h(best["total_usd_per_h"]), f"{fmt.usd(best['usd_per_million_tokens'])} per 1M tokens",
                     "gaudi3-pod", "b200-2node", "59% lower per hour", "two-agents-peak", "2025-06-01", "enterprise",
                     "seed 7"):  # fmt: skip
        assert expected in text, expected


def test_html_escapes_names_from_the_tables():
    fleets, placement, sensitivity = sample_frames(3)
    fleets.loc[fleets["status"] == "infeasible", "note"] = "<script>alert(1)</script> & more"
    html = build_html(prepare(fleets, placement, sensitivity), {})
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_markdown_has_the_tables_and_links_every_figure(rendered):
    markdown = rendered.markdown
    assert markdown.startswith("# Fleet plan: coding + voice agents")
    assert "| # | Fleet | Plan status |" in markdown
    assert "| Fleet | base | prices -30% | prices +30% | demand x2 |" in markdown
    for fleet in prepare(*sample_frames(8)).fleets["fleet"]:
        assert f"| {fleet} |" in markdown
    for name in FIGURE_TITLES:
        assert f"(figures/{name}.png)" in markdown


def test_rendering_is_deterministic(rendered):
    data = prepare(*sample_frames(8), SAMPLE_META)
    figure = build_figures(data)["cost_vs_latency"]
    assert figure_png(figure) == rendered.figures["cost_vs_latency"]
    assert build_markdown(data, rendered.figures) == rendered.markdown


def test_charts_without_simulated_data_are_left_out_and_say_so():
    fleets, placement, sensitivity = _first(sample_frames(3), 1)
    fleets = fleets.assign(sla_met=False, sla_attainment=math.nan, session_e2e_p99_s=math.nan)
    data = prepare(fleets, placement.assign(utilization=math.nan), sensitivity)
    figures = build_figures(data)
    assert set(figures) == {"tco_breakdown", "unit_costs", "placement", "sensitivity"}
    assert build_markdown(data, figures).count("The chart is left out") == 3


def test_empty_placement_and_sensitivity_leave_their_sections_out():
    fleets, placement, sensitivity = sample_frames(3)
    data = prepare(fleets, placement.iloc[0:0], sensitivity.iloc[0:0])
    figures = build_figures(data)
    assert set(figures) == {"tco_breakdown", "unit_costs", "cost_vs_latency", "sla_attainment"}
    html = build_html(data, {name: b"" for name in figures})
    assert 'id="cost"' in html and 'id="placement"' not in html and 'id="sensitivity"' not in html


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column"),
    [("fleets", "usd_per_session"), ("fleets", "sla_met"), ("placement", "utilization"), ("sensitivity", "feasible")],
)
def test_a_missing_column_is_named(table, column):
    frames = dict(zip(("fleets", "placement", "sensitivity"), sample_frames(3), strict=True))
    frames[table] = frames[table].drop(columns=[column])
    with pytest.raises(ScenarioError, match=rf"'{table}': missing column\(s\) '{column}'"):
        prepare(frames["fleets"], frames["placement"], frames["sensitivity"])


def test_documented_columns_are_the_required_ones():
    fleets, placement, sensitivity = sample_frames(3)
    assert set(FLEET_COLUMNS) <= set(fleets.columns) and len(FLEET_COLUMNS) == 17
    assert tuple(placement.columns) == PLACEMENT_COLUMNS
    assert tuple(sensitivity.columns) == SENSITIVITY_COLUMNS


def test_bad_values_are_reported_with_their_column():
    fleets, placement, sensitivity = sample_frames(3)
    with pytest.raises(ScenarioError, match="column 'status' expects optimal, feasible, infeasible, got unknown"):
        prepare(fleets.assign(status="unknown"), placement, sensitivity)
    with pytest.raises(ScenarioError, match="column 'ttft_p99_s' must be numeric"):
        prepare(fleets.assign(ttft_p99_s="fast"), placement, sensitivity)
    with pytest.raises(ScenarioError, match="fleet\\(s\\) ghost are not in the 'fleets' table"):
        prepare(fleets, placement.assign(fleet="ghost"), sensitivity)
    with pytest.raises(ScenarioError, match="appear more than once"):
        prepare(pd.concat([fleets, fleets.iloc[[0]]]), placement, sensitivity)


def test_unknown_meta_key_lists_the_valid_ones():
    with pytest.raises(ScenarioError, match="unknown key\\(s\\) colour; expected any of title, scenario, date"):
        prepare(*sample_frames(3), {"colour": "red"})


# --- files -------------------------------------------------------------------------------


def test_write_report_writes_every_file(rendered, tmp_path):
    written = write_report(tmp_path / "report", rendered.files(), rendered.tables)
    names = sorted(str(p.relative_to(tmp_path / "report")) for p in written)
    expected = ["fleets.csv", "placement.csv", "report.html", "sensitivity.csv", "summary.md"]
    assert names == sorted(expected + [f"figures/{name}.png" for name in FIGURE_TITLES])
    assert all(p.stat().st_size > 0 for p in written)
    assert len(pd.read_csv(tmp_path / "report" / "fleets.csv")) == 8
    assert (tmp_path / "report" / "figures" / "placement.png").read_bytes().startswith(PNG_MAGIC)


def test_write_report_refuses_paths_outside_the_folder(tmp_path):
    with pytest.raises(ScenarioError, match="inside the report folder"):
        write_report(tmp_path, {"../escape.html": "x"}, {})


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(rendered, tmp_path):
    import matplotlib.image

    page = tmp_path / "report.html"
    page.write_text(rendered.html, encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (4000, 1280)
    assert pixels.std() > 0.05  # text, tables and figures, not a blank page
    assert (pixels[:, :, :3].max(axis=2) - pixels[:, :, :3].min(axis=2)).max() > 0.3  # colour: figures rendered
