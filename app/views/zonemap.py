"""The grid report / preview map with zones: 片区(临时) outlined, office-held cells marked."""

from __future__ import annotations

import folium

from app.maps import MapParts, render_parts
from app.views.gridmaps import _base, add_findings

PROVISIONAL_COLOUR = "#ef6c00"
HELD_FILL = "#ffcc80"


def zone_map(
    cells_fc: dict,
    bounds,
    *,
    findings: list[dict] | None = None,
    boundary_fc: dict | None = None,
    roads_fc: dict | None = None,
) -> MapParts:
    """Cells with their zone in the tooltip; 片区(临时) dashed orange, held cells filled.

    ``cells_fc`` features carry ``code`` and optionally ``unit``, ``area_m2``, ``zone``
    (the zone's name, with "片区(临时)" for a provisional one), ``provisional`` and
    ``held`` (no unit given yet: the sub-district office holds the cell).
    """
    m = _base(bounds, boundary_fc, roads_fc)
    features = cells_fc["features"]
    aliases = {
        "code": "网格编码",
        "zone": "社区/片区",
        "unit": "责任单位",
        "held_label": "分配",
        "area_m2": "面积 (平方米)",
    }
    present = features[0]["properties"] if features else {}
    fields = [f for f in aliases if f in present]
    for feature in features:
        props = feature["properties"]
        if "held" in props:
            props["held_label"] = "未分配, 由属地街道兜底" if props["held"] else "已分配"
    if "held" in present:
        fields = [f for f in aliases if f in present or f == "held_label"]

    def style(feature: dict) -> dict:
        props = feature["properties"]
        provisional = bool(props.get("provisional"))
        return {
            "color": PROVISIONAL_COLOUR if provisional else "#b71c1c",
            "weight": 1.0 if provisional else 0.8,
            "dashArray": "4 3" if provisional else None,
            "fillColor": HELD_FILL if props.get("held") else "#ffcdd2",
            "fillOpacity": 0.55 if props.get("held") else 0.25,
        }

    if features:
        folium.GeoJson(
            cells_fc,
            name="网格 (橙色虚线: 片区(临时); 橙色填充: 未分配, 属地兜底)",
            style_function=style,
            highlight_function=lambda f: {"weight": 2.5, "color": "#000000"},
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[aliases[f] for f in fields]),
        ).add_to(m)
    add_findings(m, findings or [])
    return render_parts(m)
