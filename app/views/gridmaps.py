"""Folium maps for the grid and 责任片区 pages, built with the one map builder (app.maps)."""

from __future__ import annotations

import hashlib

import folium

from app.maps import MapParts, add_area, add_lines, new_map, render_parts

PICK_COLOUR = "#1565c0"
# Qualitative palette (ColorBrewer Set3/Paired) so neighbouring units read apart.
UNIT_COLOURS = [
    "#8dd3c7",
    "#ffffb3",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#fdb462",
    "#b3de69",
    "#fccde5",
    "#bc80bd",
    "#ccebc5",
    "#ffed6f",
    "#a6cee3",
    "#b2df8a",
    "#fdbf6f",
]
LEVEL_COLOURS = {"error": "#c62828", "warning": "#f9a825"}


def unit_colour(name: str | None) -> str:
    if not name or name == "未分配":
        return "#eeeeee"
    digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()
    return UNIT_COLOURS[digest[0] % len(UNIT_COLOURS)]


def _base(bounds, boundary_fc: dict | None, roads_fc: dict | None) -> folium.Map:
    m = new_map(bounds=bounds)
    if boundary_fc:
        add_area(m, boundary_fc, name="建成区边界", colour="#333333", weight=2.5, dash="6 4")
    if roads_fc:
        add_lines(m, roads_fc, name="道路", colour="#7a7a7a", weight=1.2, show=False)
    return m


def preview_map(
    cells_fc: dict,
    bounds,
    *,
    findings: list[dict] | None = None,
    boundary_fc: dict | None = None,
    roads_fc: dict | None = None,
) -> MapParts:
    """Candidate or stored grid outlines plus the check's finding locations."""
    m = _base(bounds, boundary_fc, roads_fc)
    fields = [
        f
        for f in ("code", "unit", "area_m2")
        if cells_fc["features"] and f in cells_fc["features"][0]["properties"]
    ]
    aliases = {"code": "网格编码", "unit": "责任单位", "area_m2": "面积 (平方米)"}
    if cells_fc["features"]:
        folium.GeoJson(
            cells_fc,
            name="网格",
            style_function=lambda f: {
                "color": "#b71c1c",
                "weight": 0.8,
                "fillColor": "#ffcdd2",
                "fillOpacity": 0.25,
            },
            highlight_function=lambda f: {"weight": 2.5, "color": "#000000"},
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[aliases[f] for f in fields]),
        ).add_to(m)
    add_findings(m, findings or [])
    return render_parts(m)


def add_findings(m: folium.Map, findings: list[dict]) -> None:
    located = [f for f in findings if f.get("location")]
    if not located:
        return
    group = folium.FeatureGroup(name="检查发现").add_to(m)
    for number, finding in enumerate(located, start=1):
        lon, lat = finding["location"]
        colour = LEVEL_COLOURS.get(finding["level"], "#333333")
        folium.CircleMarker(
            [lat, lon],
            radius=8,
            color="#ffffff",
            weight=1.5,
            fill=True,
            fill_color=colour,
            fill_opacity=0.95,
            tooltip=f"{number}. {finding['label']}",
            popup=folium.Popup(_esc(finding["message"]), max_width=300),
        ).add_to(group)


def _esc(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def assign_map(
    cells_fc: dict, bounds, *, boundary_fc: dict | None = None, roads_fc: dict | None = None
) -> tuple[MapParts, str]:
    """Cells coloured by unit; returns the parts and the JS name of the clickable layer."""
    m = _base(bounds, boundary_fc, roads_fc)
    layer = folium.GeoJson(
        cells_fc,
        name="网格 (点击选择)",
        style_function=lambda f: {
            "color": "#555555",
            "weight": 0.7,
            "fillOpacity": 0.6,
            "fillColor": unit_colour(f["properties"].get("unit")),
        },
        tooltip=folium.GeoJsonTooltip(fields=["code", "unit"], aliases=["网格编码", "责任单位"]),
    ).add_to(m)
    return render_parts(m), layer.get_name()


def area_map(
    cells_fc: dict, bounds, *, boundary_fc: dict | None = None, roads_fc: dict | None = None
) -> MapParts:
    """A unit's own cells over the county's boundary and roads."""
    m = _base(bounds, boundary_fc, roads_fc)
    if cells_fc["features"]:
        folium.GeoJson(
            cells_fc,
            name="本单位责任网格",
            style_function=lambda f: {
                "color": "#0d47a1",
                "weight": 1,
                "fillColor": "#64b5f6",
                "fillOpacity": 0.45,
            },
            tooltip=folium.GeoJsonTooltip(
                fields=["code", "area_m2"], aliases=["网格编码", "面积 (平方米)"]
            ),
        ).add_to(m)
    return render_parts(m)
