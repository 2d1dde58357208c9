"""Grid check maps: cells with their zones (片区, 片区(临时)), office-held cells, the findings."""

from __future__ import annotations

import folium
from markupsafe import escape

from app.maps.base import Bounds, MapParts, create_base_map, render_map

LEVEL_COLOURS = {"error": "#c62828", "warning": "#f9a825"}
PROVISIONAL_COLOUR = "#ef6c00"
HELD_FILL = "#ffcc80"
CELL_ALIASES = {
    "code": "网格编码",
    "zone": "社区/片区",
    "unit": "责任单位",
    "held_label": "分配",
    "area_m2": "面积 (平方米)",
}


def add_findings(m: folium.Map, findings: list[dict]) -> None:
    """Add the grid check's located findings as numbered markers coloured by level.

    Parameters
    ----------
    m
        The map to draw on.
    findings
        The check's findings: ``level``, ``label``, ``message`` and optionally
        ``location`` ``(lon, lat)``; those without a location are left out.
    """
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
            popup=folium.Popup(str(escape(finding["message"])), max_width=300),
        ).add_to(group)


def build_preview_map(
    cells_fc: dict,
    bounds: Bounds | None,
    *,
    findings: list[dict] | None = None,
    boundary_fc: dict | None = None,
    roads_fc: dict | None = None,
) -> MapParts:
    """Build a map of candidate or stored grid outlines plus the check's finding locations.

    Parameters
    ----------
    cells_fc
        The cells (``code`` and optionally ``unit``, ``area_m2``); may be empty, as for an
        upload that failed its check.
    bounds
        The extent to show.
    findings
        The check's findings (see :func:`add_findings`).
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    MapParts
        The rendered map.
    """
    m = create_base_map(bounds, boundary_fc=boundary_fc, roads_fc=roads_fc)
    fields = [
        f
        for f in ("code", "unit", "area_m2")
        if cells_fc["features"] and f in cells_fc["features"][0]["properties"]
    ]
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
            tooltip=folium.GeoJsonTooltip(fields=fields,
                                          aliases=[CELL_ALIASES[f] for f in fields]),
        ).add_to(m)
    add_findings(m, findings or [])
    return render_map(m)


def _zone_style(feature: dict) -> dict:
    props = feature["properties"]
    provisional = bool(props.get("provisional"))
    return {
        "color": PROVISIONAL_COLOUR if provisional else "#b71c1c",
        "weight": 1.0 if provisional else 0.8,
        "dashArray": "4 3" if provisional else None,
        "fillColor": HELD_FILL if props.get("held") else "#ffcdd2",
        "fillOpacity": 0.55 if props.get("held") else 0.25,
    }


def build_zone_map(
    cells_fc: dict,
    bounds: Bounds | None,
    *,
    findings: list[dict] | None = None,
    boundary_fc: dict | None = None,
    roads_fc: dict | None = None,
) -> MapParts:
    """Build the grid report / preview map: cells with their zone, 片区(临时), held cells.

    片区(临时) cells are outlined dashed orange and cells the sub-district office holds
    (属地兜底) are filled orange; the check's findings are marked over them.

    Parameters
    ----------
    cells_fc
        Cells whose features carry ``code`` and optionally ``unit``, ``area_m2``, ``zone``
        (the zone's name, with "片区(临时)" for a provisional one), ``provisional`` and
        ``held`` (no unit given yet: the sub-district office holds the cell). A
        ``held_label`` property is added to each feature for the tooltip.
    bounds
        The extent to show.
    findings
        The check's findings (see :func:`add_findings`).
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    MapParts
        The rendered map.
    """
    m = create_base_map(bounds, boundary_fc=boundary_fc, roads_fc=roads_fc)
    features = cells_fc["features"]
    present = features[0]["properties"] if features else {}
    fields = [f for f in CELL_ALIASES if f in present]
    for feature in features:
        props = feature["properties"]
        if "held" in props:
            props["held_label"] = "未分配, 由属地街道兜底" if props["held"] else "已分配"
    if "held" in present:
        fields = [f for f in CELL_ALIASES if f in present or f == "held_label"]
    if features:
        folium.GeoJson(
            cells_fc,
            name="网格 (橙色虚线: 片区(临时); 橙色填充: 未分配, 属地兜底)",
            style_function=_zone_style,
            highlight_function=lambda f: {"weight": 2.5, "color": "#000000"},
            tooltip=folium.GeoJsonTooltip(fields=fields,
                                          aliases=[CELL_ALIASES[f] for f in fields]),
        ).add_to(m)
    add_findings(m, findings or [])
    return render_map(m)
