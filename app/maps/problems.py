"""Problems on the map: the clustered markers of the home map, one problem, a batch, the picker."""

from __future__ import annotations

import json

import folium
from folium import plugins

from app.maps.base import (
    CLUSTER_CSS,
    CLUSTER_JS,
    Bounds,
    MapParts,
    MapScript,
    add_area,
    add_boundary,
    add_roads,
    create_map,
    geometry_bounds,
    load_density_script,
    pad_bounds,
    render_map,
)

STATUS_COLOURS = {
    "reported": "#6a3d9a",
    "dispatched": "#1f78b4",
    "rectifying": "#ff7f00",
    "submitted": "#33a02c",
    "closed": "#999999",
}
PROBLEM_COLOUR = "#b71c1c"
PALE_ROAD = "#8a8a8a"


def add_remote_problems(m: folium.Map, *, url: str, name: str = "问题点位") -> None:
    """Add problem markers fetched from /map/issues.geojson into a marker cluster.

    Parameters
    ----------
    m
        The map to draw on.
    url
        Where the browser fetches the points (with the page's filters).
    name
        The layer's name in the layer control.
    """
    cluster = plugins.MarkerCluster(name=name, options={"maxClusterRadius": 40,
                                                        "chunkedLoading": True})
    cluster.default_js = list(CLUSTER_JS)
    cluster.default_css = list(CLUSTER_CSS)
    cluster.add_to(m)
    load_density_script(m)
    MapScript(
        f"SaniGrid.loadIssues({{url: {json.dumps(url)}, colours: {json.dumps(STATUS_COLOURS)}, "
        f"cluster: {cluster.get_name()}}});"
    ).add_to(m)


def build_picker_map(layers: dict) -> MapParts:
    """Build a small map of the visible cells (and roads) to click a point on.

    Parameters
    ----------
    layers
        ``{"cells": FeatureCollection, "bounds": Bounds, "roads": FeatureCollection | None}``
        as the issues service's ``picker_layers`` gives them.

    Returns
    -------
    MapParts
        The rendered map; the page's script handles the clicks.
    """
    m = create_map(bounds=layers["bounds"])
    if layers["cells"]["features"]:
        add_area(m, layers["cells"], name="责任网格", colour="#555555", weight=0.8)
    add_roads(m, layers.get("roads"), colour=PALE_ROAD, weight=1.2)
    return render_map(m)


def build_problem_map(*, lon: float | None, lat: float | None, label: str,
                      cell_feature: dict | None = None) -> MapParts | None:
    """Build a problem's detail map: its point over its cell, about 60 m around.

    Parameters
    ----------
    lon, lat
        The problem's WGS-84 position; None for one not placed yet (待定位).
    label
        The marker's tooltip.
    cell_feature
        The cell as a GeoJSON Feature with a ``code`` property, or None (outside the grid).

    Returns
    -------
    MapParts or None
        The rendered map, or None when the problem has no position.
    """
    if lon is None or lat is None:
        return None
    if cell_feature is not None:
        minx, miny, maxx, maxy = geometry_bounds(cell_feature["geometry"])
    else:
        minx, miny, maxx, maxy = lon, lat, lon, lat
    pad = 0.0006  # about 60 m around the cell: close enough to see the street
    m = create_map(bounds=pad_bounds([(min(minx, lon), min(miny, lat)),
                                      (max(maxx, lon), max(maxy, lat))], pad=pad))
    if cell_feature is not None:
        add_area(
            m,
            {"type": "FeatureCollection", "features": [cell_feature]},
            name=f"网格 {cell_feature['properties']['code']}",
            colour="#1f78b4",
            fill="#a6cee3",
            weight=2,
        )
    folium.CircleMarker(
        [lat, lon],
        radius=8,
        color="#ffffff",
        weight=2,
        fill=True,
        fill_color=PROBLEM_COLOUR,
        fill_opacity=0.95,
        tooltip=label,
    ).add_to(m)
    return render_map(m)


def build_batch_map(points: list[dict], *, boundary_fc: dict | None = None,
                    roads_fc: dict | None = None) -> MapParts | None:
    """Build a feedback batch's map: its placed problems coloured by status.

    Parameters
    ----------
    points
        One dict per placed problem: ``lon``, ``lat``, ``status`` and ``label`` (tooltip).
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    MapParts or None
        The rendered map, or None when no problem of the batch is placed.
    """
    bounds: Bounds | None = pad_bounds(((p["lon"], p["lat"]) for p in points), pad=0.002)
    if bounds is None:
        return None
    m = create_map(bounds=bounds)
    add_boundary(m, boundary_fc)
    add_roads(m, roads_fc, colour=PALE_ROAD, weight=1.2)
    group = folium.FeatureGroup(name="本批次问题").add_to(m)
    for point in points:
        colour = STATUS_COLOURS.get(point["status"], "#999999")
        folium.CircleMarker(
            [point["lat"], point["lon"]], radius=6, color="#ffffff", weight=1.5, fill=True,
            fill_color=colour, fill_opacity=0.95, tooltip=point["label"],
        ).add_to(group)
    return render_map(m)
