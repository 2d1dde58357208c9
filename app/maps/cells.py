"""Cells as map layers: the one open-problem density scale, unit colours, a unit's own cells.

The home map and the monthly report colour cells with the same classes
(:data:`DENSITY_BINS`, :data:`DENSITY_COLOURS`) and the same legend; the browser script
(static/js/density-map.js) is handed the same classes for the cells it draws on canvas.
"""

from __future__ import annotations

import hashlib
import json

import folium
from branca.colormap import StepColormap

from app.maps.base import (
    D3_LOCAL,
    ROAD_COLOUR,
    Bounds,
    MapParts,
    MapScript,
    add_boundary,
    add_roads,
    add_water,
    create_base_map,
    create_map,
    load_density_script,
    render_map,
)
from app.maps.problems import add_remote_problems

# Open-problem density classes (problems per cell); colour-blind-safe yellow→red.
DENSITY_BINS = [0, 1, 2, 4, 7, 1000]
DENSITY_COLOURS = ["#e8f5e9", "#fee08b", "#fdae61", "#f46d43", "#a50026"]
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


def create_density_colormap(*, caption: str = "未销号问题数 / 网格") -> StepColormap:
    """Create the density legend, its d3 pointed at the local copy.

    Parameters
    ----------
    caption
        The legend's title (what is counted per cell).

    Returns
    -------
    StepColormap
        The legend of :data:`DENSITY_BINS` in :data:`DENSITY_COLOURS`, shown up to 10.
    """
    cmap = StepColormap(DENSITY_COLOURS, index=DENSITY_BINS[:-1] + [10], vmin=0, vmax=10,
                        caption=caption)
    cmap.default_js = [("d3", D3_LOCAL)]
    return cmap


def pick_density_colour(count: int) -> str:
    """Return the fill for a cell with ``count`` problems (the legend's classes)."""
    for upper, colour in zip(DENSITY_BINS[1:], DENSITY_COLOURS, strict=True):
        if count < upper:
            return colour
    return DENSITY_COLOURS[-1]


def pick_unit_colour(name: str | None) -> str:
    """Return a unit's fill: stable per name, pale grey for 未分配."""
    if not name or name == "未分配":
        return "#eeeeee"
    digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()
    return UNIT_COLOURS[digest[0] % len(UNIT_COLOURS)]


def add_remote_density(m: folium.Map, *, cells_url: str, counts_url: str, fit: bool = True,
                       name: str = "责任网格 (问题密度)") -> None:
    """Add cells fetched as compact GeoJSON and drawn on canvas, coloured by open counts.

    The page stays small however many cells the county has; the data comes gzip-compressed
    and cached from /map (app/views/mapdata.py).

    Parameters
    ----------
    m
        The map to draw on.
    cells_url, counts_url
        Where the browser fetches the cells and the open counts per cell.
    fit
        Whether the map zooms to the cells once they are drawn.
    name
        The layer's name in the layer control.
    """
    group = folium.FeatureGroup(name=name).add_to(m)
    create_density_colormap().add_to(m)
    load_density_script(m)
    options = {"cellsUrl": cells_url, "countsUrl": counts_url, "bins": DENSITY_BINS,
               "colours": DENSITY_COLOURS, "fit": fit}
    MapScript(
        f"SaniGrid.loadDensity(Object.assign({json.dumps(options)}, "
        f"{{map: {m.get_name()}, group: {group.get_name()}}}));"
    ).add_to(m)


def build_density_map(bounds: Bounds | None, *, cells_url: str, counts_url: str,
                      problems_url: str, boundary_fc: dict | None = None,
                      water_fc: dict | None = None, roads_fc: dict | None = None) -> MapParts:
    """Build the home map: cells by open-problem density and the problems, over the base.

    Parameters
    ----------
    bounds
        The extent the user may see.
    cells_url, counts_url, problems_url
        Where the browser fetches the cells, the counts and the problem points (with the
        page's filters in their query strings).
    boundary_fc, water_fc, roads_fc
        The county's base layers as GeoJSON, each optional.

    Returns
    -------
    MapParts
        The rendered map.
    """
    m = create_map(bounds=bounds)
    add_boundary(m, boundary_fc)
    add_water(m, water_fc)
    add_remote_density(m, cells_url=cells_url, counts_url=counts_url, fit=False)
    add_roads(m, roads_fc, colour=ROAD_COLOUR, weight=1.4)
    add_remote_problems(m, url=problems_url)
    return render_map(m)


def build_month_density_map(cells_fc: dict, bounds: Bounds | None) -> MapParts:
    """Build the monthly report's map: the month's problems per cell, in the density classes.

    Parameters
    ----------
    cells_fc
        Cells with ``code``, ``unit`` and ``open`` (the month's problem count) properties.
    bounds
        The extent to show.

    Returns
    -------
    MapParts
        The rendered map, with the legend when there are cells.
    """
    m = create_map(bounds=bounds)
    if cells_fc["features"]:
        folium.GeoJson(
            cells_fc,
            name="本月问题密度",
            style_function=lambda f: {
                "fillColor": pick_density_colour(f["properties"]["open"]),
                "color": "#555555",
                "weight": 0.5,
                "fillOpacity": 0.7,
            },
            tooltip=folium.GeoJsonTooltip(
                fields=["code", "unit", "open"], aliases=["网格编码", "责任单位", "本月问题数"]
            ),
        ).add_to(m)
        create_density_colormap(caption="本月发现问题数 / 网格").add_to(m)
    return render_map(m)


def build_assign_map(cells_fc: dict, bounds: Bounds | None, *, boundary_fc: dict | None = None,
                     roads_fc: dict | None = None) -> tuple[MapParts, str]:
    """Build the assignment map: cells coloured by unit, clickable to pick.

    Parameters
    ----------
    cells_fc
        Cells with ``code`` and ``unit`` properties.
    bounds
        The extent to show.
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    tuple of (MapParts, str)
        The rendered map and the JS name of the clickable cell layer.
    """
    m = create_base_map(bounds, boundary_fc=boundary_fc, roads_fc=roads_fc)
    layer = folium.GeoJson(
        cells_fc,
        name="网格 (点击选择)",
        style_function=lambda f: {
            "color": "#555555",
            "weight": 0.7,
            "fillOpacity": 0.6,
            "fillColor": pick_unit_colour(f["properties"].get("unit")),
        },
        tooltip=folium.GeoJsonTooltip(fields=["code", "unit"], aliases=["网格编码", "责任单位"]),
    ).add_to(m)
    return render_map(m), layer.get_name()


def build_unit_area_map(cells_fc: dict, bounds: Bounds | None, *,
                        boundary_fc: dict | None = None,
                        roads_fc: dict | None = None) -> MapParts:
    """Build a unit's 责任片区 map: its own cells over the county's boundary and roads.

    Parameters
    ----------
    cells_fc
        The unit's cells with ``code`` and ``area_m2`` properties.
    bounds
        The extent to show.
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    MapParts
        The rendered map.
    """
    m = create_base_map(bounds, boundary_fc=boundary_fc, roads_fc=roads_fc)
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
    return render_map(m)
