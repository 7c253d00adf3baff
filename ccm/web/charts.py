"""Charts drawn on the server as SVG: readable without JavaScript, and to screen readers.

Each function returns a ``<figure>``: an ``<svg role="img">`` with a ``<title>`` and a ``<desc>``,
then a table of the same numbers (visually hidden, read by screen readers instead of the picture).
Colours come from the ``series-<n>`` classes of ``app.css`` (the CSP allows no inline style), and
every label is escaped. Geometry is in SVG user units; the SVG scales to the width of its box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
ROW = 28
"""Height of a bar's row (horizontal bar chart)."""
LABEL_CHARS = 24
"""Longer labels are cut to this many characters in the picture (the table holds them whole)."""
SERIES = 6
"""Distinct series colours in app.css (``series-0`` … ``series-5``); more repeat them."""
PLOT_HEIGHT = 200
MAX_COLUMN = 36
"""The widest a column is drawn (a chart of one group would otherwise be a wall)."""
DOTS = 31
"""A time series of this many points or fewer marks each point (one point draws no line)."""
AXIS = 40
"""Room below (and left of) a plot for its axis labels."""


@dataclass(frozen=True)
class Bar:
    """One drawn bar, for tests: where it is, how long, and what it stands for."""

    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def horizontal_bars(items: Sequence[tuple[str, float]], *, label_width: float = 190) -> list[Bar]:
    """One bar a row, its length proportional to its value (the largest fills the plot)."""
    top = max((value for _, value in items), default=0)
    plot = WIDTH - label_width - 70
    return [
        Bar(label, value, label_width, index * ROW + 4, plot * value / top if top > 0 else 0.0, ROW - 8)
        for index, (label, value) in enumerate(items)
    ]


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, desc: str, unit: str = "messages") -> Markup:
    """A horizontal bar chart of ``(label, value)`` pairs, in the order given (a funnel, reasons)."""
    if not items:
        return _empty(title)
    bars = horizontal_bars(items)
    height = len(bars) * ROW
    shapes = [
        f'<g class="series-0"><title>{escape(bar.label)}: {number(bar.value)} {escape(unit)}</title>'
        f'<text class="chart-label" x="{bar.x - 8}" y="{bar.y + bar.height - 5}" text-anchor="end">'
        f"{escape(short(bar.label))}</text>"
        f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width:.1f}" height="{bar.height}"/>'
        f'<text class="chart-value" x="{bar.x + bar.width + 6:.1f}" y="{bar.y + bar.height - 5}">'
        f"{number(bar.value)}</text></g>"
        for bar in bars
    ]
    rows = [(label, [value]) for label, value in items]
    return _figure(title, desc, height, shapes, _table(title, "", [unit], rows))


@dataclass(frozen=True)
class Column:
    """One drawn column of a grouped or time chart, for tests."""

    group: str
    series: str
    value: float
    x: float
    y: float
    width: float
    height: float


def grouped_columns(groups: Sequence[str], values: Mapping[str, Sequence[float]]) -> list[Column]:
    """Columns side by side in each group, one per series; heights share one scale."""
    top = max((value for series in values.values() for value in series), default=0)
    slot = (WIDTH - AXIS) / max(len(groups), 1)
    width = min(slot * 0.8 / max(len(values), 1), MAX_COLUMN)
    columns = []
    for g, group in enumerate(groups):
        for s, (name, series) in enumerate(values.items()):
            value = series[g] if g < len(series) else 0
            height = PLOT_HEIGHT * value / top if top > 0 else 0.0
            x = AXIS + g * slot + (slot - width * len(values)) / 2 + s * width
            columns.append(Column(group, name, value, x, PLOT_HEIGHT - height, width, height))
    return columns


def grouped_bar_chart(title: str, groups: Sequence[str], values: Mapping[str, Sequence[float]], *, desc: str) -> Markup:
    """Columns for each group (a channel, a variant), one per series (sent, opened …)."""
    if not groups or not values:
        return _empty(title)
    shapes = [
        f'<rect class="series-{list(values).index(c.series) % SERIES}" x="{c.x:.1f}" y="{c.y:.1f}" '
        f'width="{c.width:.1f}" height="{c.height:.1f}"><title>{escape(c.group)}, {escape(c.series)}: '
        f"{number(c.value)}</title></rect>"
        for c in grouped_columns(groups, values)
    ]
    slot = (WIDTH - AXIS) / len(groups)
    shapes += [
        f'<text class="chart-label" x="{AXIS + (g + 0.5) * slot:.1f}" y="{PLOT_HEIGHT + 18}" '
        f'text-anchor="middle">{escape(short(group, 14))}</text>'
        for g, group in enumerate(groups)
    ]
    shapes.append(_legend(list(values), PLOT_HEIGHT + 34))
    rows = [
        (group, [series[g] if g < len(series) else 0 for series in values.values()]) for g, group in enumerate(groups)
    ]
    return _figure(title, desc, PLOT_HEIGHT + 52, shapes, _table(title, "", list(values), rows))


def series_points(values: Sequence[float], top: float) -> list[tuple[float, float]]:
    """The points of one line: evenly spaced across the plot, heights on the shared scale."""
    step = (WIDTH - AXIS - 10) / max(len(values) - 1, 1)
    return [(AXIS + i * step, PLOT_HEIGHT - (PLOT_HEIGHT * v / top if top > 0 else 0.0)) for i, v in enumerate(values)]


def time_series(title: str, times: Sequence[str], values: Mapping[str, Sequence[float]], *, desc: str) -> Markup:
    """Lines (with a light area below each) of several series over the same times (days, hours)."""
    if not times or not values:
        return _empty(title)
    top = max((value for series in values.values() for value in series), default=0)
    shapes = [
        f'<line class="chart-axis" x1="{AXIS}" y1="{PLOT_HEIGHT}" x2="{WIDTH - 10}" y2="{PLOT_HEIGHT}"/>',
        f'<text class="chart-value" x="{AXIS - 6}" y="12" text-anchor="end">{number(top)}</text>',
    ]
    for s, (name, series) in enumerate(values.items()):
        points = series_points(series, top)
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        area = f"{points[0][0]:.1f},{PLOT_HEIGHT} {line} {points[-1][0]:.1f},{PLOT_HEIGHT}"
        shapes.append(
            f'<g class="series-{s % SERIES}"><title>{escape(name)}</title>'
            f'<polygon class="chart-area" points="{area}"/><polyline class="chart-line" points="{line}"/>'
            + ("".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in points) if len(points) <= DOTS else "")
            + "</g>"
        )
    last = len(times) - 1
    for index in sorted({0, len(times) // 2, last}):
        x = series_points(list(range(len(times))), 1)[index][0]
        anchor = "start" if index == 0 else "end" if index == last else "middle"
        shapes.append(
            f'<text class="chart-label" x="{x:.1f}" y="{PLOT_HEIGHT + 18}" text-anchor="{anchor}">'
            f"{escape(short(times[index], 16))}</text>"
        )
    shapes.append(_legend(list(values), PLOT_HEIGHT + 34))
    rows = [(time, [series[t] if t < len(series) else 0 for series in values.values()]) for t, time in enumerate(times)]
    return _figure(title, desc, PLOT_HEIGHT + 52, shapes, _table(title, "", list(values), rows))


def _legend(names: Sequence[str], y: float) -> str:
    step = (WIDTH - AXIS) / max(len(names), 1)
    return "".join(
        f'<g class="series-{i % SERIES}"><rect x="{AXIS + i * step:.1f}" y="{y}" width="12" height="12"/>'
        f'<text class="chart-label" x="{AXIS + i * step + 16:.1f}" y="{y + 11}">{escape(short(name, 18))}</text></g>'
        for i, name in enumerate(names)
    )


def _figure(title: str, desc: str, height: float, shapes: Sequence[str], table: str) -> Markup:
    slug = "".join(c if c.isalnum() else "-" for c in title.lower())[:40]
    return Markup(
        f'<figure class="chart"><svg role="img" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'aria-labelledby="chart-{slug}-t chart-{slug}-d" preserveAspectRatio="xMinYMin meet">'
        f'<title id="chart-{slug}-t">{escape(title)}</title><desc id="chart-{slug}-d">{escape(desc)}</desc>'
        f"{''.join(shapes)}</svg>{table}</figure>"
    )


def _table(title: str, corner: str, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[float]]]) -> str:
    head = "".join(f'<th scope="col">{escape(column)}</th>' for column in columns)
    body = "".join(
        f'<tr><th scope="row">{escape(label)}</th>{"".join(f"<td>{number(v)}</td>" for v in values)}</tr>'
        for label, values in rows
    )
    return (
        f'<table class="visually-hidden"><caption>{escape(title)}</caption>'
        f"<thead><tr><td>{escape(corner)}</td>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _empty(title: str) -> Markup:
    return Markup(f'<figure class="chart chart-empty"><figcaption>{escape(title)}: no data yet.</figcaption></figure>')
