"""Trend charts for the monthly report as inline SVG drawn on the server.

No chart library and no script: the SVG prints, works offline and on a phone (it scales
with ``viewBox``), and the numbers are in the markup for screen readers and tests.
"""

from __future__ import annotations

from markupsafe import Markup, escape

# Eight distinguishable colours, one per level-1 category (ColorBrewer Dark2 + grey).
SERIES_COLOURS = [
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
    "#1f78b4",
    "#b15928",
]


def _short_month(month: str) -> str:
    year, mon = month.split("-")
    return f"{int(mon)}月" if mon != "01" else f"{year}年1月"


def line_chart(
    months: list[str], series: dict[str, dict[str, float]], *, title: str, unit_label: str = "件"
) -> Markup:
    """One line per series over the months, with axis ticks and a legend."""
    width, height = 720, 300
    left, right, top, bottom = 44, 190, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for s in series.values() for v in s.values()] + [1])
    step = max(1, -(-peak // 5))
    y_max = step * 5
    n = max(len(months) - 1, 1)

    def x(i: int) -> float:
        return left + (plot_w * i / n if len(months) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    parts = [
        f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for k in range(6):
        value = step * k
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" class="tick" '
            f'text-anchor="end">{value:g}</text>'
        )
    for i, month in enumerate(months):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 18}" class="tick" '
            f'text-anchor="middle">{escape(_short_month(month))}</text>'
        )
    for index, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = [(x(i), y(values.get(m, 0))) for i, m in enumerate(months)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(name)}</title></polyline>'
        )
        for (px, py), m in zip(points, months, strict=True):
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)} {escape(m)}: {values.get(m, 0):g}"
                f"{escape(unit_label)}</title></circle>"
            )
        ly = top + 14 * index
        parts.append(
            f'<rect x="{width - right + 14}" y="{ly}" width="12" height="4" '
            f'fill="{colour}"/><text x="{width - right + 30}" y="{ly + 6}" '
            f'class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def score_colour(score: float | None) -> str:
    if score is None:
        return "#f4f4f4"
    if score >= 95:
        return "#c7e9c0"
    if score >= 90:
        return "#fff7bc"
    if score >= 80:
        return "#fdae6b"
    return "#e6550d"


def score_heatmap(
    months: list[str], scores: dict[str, dict[str, float]], order: list[str], *, title: str
) -> Markup:
    """Rows of units (in this month's order), a coloured cell with the score per month."""
    label_w, cell_w, cell_h, top = 210, 62, 20, 44
    width = label_w + cell_w * len(months) + 8
    height = top + cell_h * len(order) + 8
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'class="chart heat" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for j, month in enumerate(months):
        parts.append(
            f'<text x="{label_w + cell_w * j + cell_w / 2}" y="{top - 8}" '
            f'class="tick" text-anchor="middle">{escape(_short_month(month))}</text>'
        )
    for i, name in enumerate(order):
        yy = top + cell_h * i
        parts.append(
            f'<text x="{label_w - 6}" y="{yy + 14}" class="tick" '
            f'text-anchor="end">{escape(name)}</text>'
        )
        for j, month in enumerate(months):
            value = scores.get(name, {}).get(month)
            text = "" if value is None else f"{value:.1f}"
            dark = value is not None and value < 80
            parts.append(
                f'<rect x="{label_w + cell_w * j}" y="{yy}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" fill="{score_colour(value)}"><title>{escape(name)} '
                f"{escape(month)}: {text or '无'}</title></rect>"
                f'<text x="{label_w + cell_w * j + cell_w / 2 - 1}" y="{yy + 14}" '
                f'class="cellval{" dark" if dark else ""}" text-anchor="middle">{text}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
