"""The server-side SVG charts: bars proportional to their values, zero and empty data drawn
without dividing by zero, long and hostile labels cut and escaped, every number in the table."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ccm.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    """The figure as XML (the SVG namespace added, as a browser assumes it inside HTML)."""
    return ET.fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def table_rows(markup: str) -> list[list[str]]:
    table = parsed(markup).find("table")
    assert table is not None
    return [[cell.text or "" for cell in row] for row in table.iter("tr")][1:]


def test_bar_lengths_are_proportional_to_the_values():
    bars = charts.horizontal_bars([("sent", 100), ("opened", 50), ("clicked", 10)])
    assert bars[0].width == pytest.approx(2 * bars[1].width)
    assert bars[1].width == pytest.approx(5 * bars[2].width)
    assert bars[0].width == pytest.approx(charts.WIDTH - 190 - 70)  # the largest fills the plot
    assert [bar.y for bar in bars] == sorted(bar.y for bar in bars)  # in the order given


def test_all_zero_values_draw_empty_bars_and_keep_the_numbers():
    bars = charts.horizontal_bars([("sent", 0), ("opened", 0)])
    assert [bar.width for bar in bars] == [0.0, 0.0]
    markup = charts.bar_chart("Funnel", [("sent", 0), ("opened", 0)], desc="none yet")
    assert table_rows(markup) == [["sent", "0"], ["opened", "0"]]


def test_no_data_says_so_instead_of_drawing():
    for markup in (
        charts.bar_chart("Skip reasons", [], desc="d"),
        charts.grouped_bar_chart("By channel", [], {}, desc="d"),
        charts.time_series("Over time", [], {}, desc="d"),
    ):
        assert "<svg" not in markup
        assert "no data yet" in markup


def test_the_svg_is_an_image_with_a_title_and_a_description():
    root = parsed(charts.bar_chart("Skip reasons", [("no_consent", 3)], desc="Why messages were skipped"))
    svg = root.find(f"{SVG}svg")
    assert svg is not None and svg.get("role") == "img"
    assert svg.findtext(f"{SVG}title") == "Skip reasons"
    assert svg.findtext(f"{SVG}desc") == "Why messages were skipped"
    labelled = (svg.get("aria-labelledby") or "").split()
    assert [el.get("id") for el in (svg.find(f"{SVG}title"), svg.find(f"{SVG}desc"))] == labelled


def test_long_labels_are_cut_in_the_picture_and_whole_in_the_table():
    label = "quiet_hours_in_the_recipients_time_zone_until_morning"
    markup = charts.bar_chart("Skip reasons", [(label, 7)], desc="d")
    texts = [el.text for el in parsed(markup).iter(f"{SVG}text")]
    assert charts.short(label) in texts and len(charts.short(label)) == charts.LABEL_CHARS
    assert table_rows(markup) == [[label, "7"]]


def test_labels_are_escaped():
    markup = charts.grouped_bar_chart("By variant", ['<script>alert("x")</script>'], {"sent": [1]}, desc="d")
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    parsed(markup)  # still well-formed


def test_grouped_columns_share_one_scale_across_series_and_groups():
    columns = charts.grouped_columns(["email", "sms"], {"sent": [40, 20], "opened": [10, 0]})
    height = {(c.group, c.series): c.height for c in columns}
    assert height[("email", "sent")] == pytest.approx(charts.PLOT_HEIGHT)
    assert height[("sms", "sent")] == pytest.approx(charts.PLOT_HEIGHT / 2)
    assert height[("email", "opened")] == pytest.approx(charts.PLOT_HEIGHT / 4)
    assert height[("sms", "opened")] == 0
    assert all(c.y + c.height == pytest.approx(charts.PLOT_HEIGHT) for c in columns)  # on the baseline
    lefts = sorted(c.x for c in columns)
    assert all(b - a >= columns[0].width - 1e-9 for a, b in zip(lefts, lefts[1:], strict=False))  # no overlap


def test_each_series_has_its_own_colour_class():
    markup = charts.grouped_bar_chart("By channel", ["email"], {"sent": [3], "opened": [1]}, desc="d")
    assert set(re.findall(r'class="(series-\d)"', markup)) == {"series-0", "series-1"}
    assert "style=" not in markup


def test_a_time_series_puts_the_peak_at_the_top_and_zero_on_the_baseline():
    points = charts.series_points([0, 5, 10], top=10)
    assert [y for _, y in points] == [charts.PLOT_HEIGHT, charts.PLOT_HEIGHT / 2, 0]
    assert points[0][0] < points[1][0] < points[2][0]
    markup = charts.time_series(
        "Messages", ["12-01", "12-02", "12-03"], {"sent": [0, 5, 10], "failed": [1, 0, 0]}, desc="d"
    )
    assert table_rows(markup) == [["12-01", "0", "1"], ["12-02", "5", "0"], ["12-03", "10", "0"]]
    assert len(parsed(markup).findall(f".//{SVG}polyline")) == 2


def test_a_time_series_of_one_point_and_of_zeros_draws():
    markup = charts.time_series("Messages", ["12-01"], {"sent": [0]}, desc="d")
    assert parsed(markup).find(f".//{SVG}polyline") is not None
