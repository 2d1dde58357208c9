"""Patrol routes on the map: the planning map to click on, a route's legs, start and stops."""

from __future__ import annotations

import folium

from app.maps.base import (
    Bounds,
    MapParts,
    add_boundary,
    add_roads,
    create_map,
    pad_bounds,
    render_map,
)

ROUTE_COLOUR = "#d32f2f"
START_COLOUR = "#1b5e20"


def build_plan_map(bounds: Bounds | None, *, boundary_fc: dict | None = None,
                   roads_fc: dict | None = None) -> MapParts:
    """Build the planning map: the roads to click places, the start or the end on.

    Parameters
    ----------
    bounds
        The extent the planner may see.
    boundary_fc, roads_fc
        The base layers, each optional.

    Returns
    -------
    MapParts
        The rendered map.
    """
    # Roads only: with the cells too the page weighs megabytes on an inspector's phone.
    m = create_map(bounds=bounds)
    add_boundary(m, boundary_fc, weight=2)
    add_roads(m, roads_fc, colour="#8a8a8a", weight=1.2)
    return render_map(m)


def add_route(group: folium.FeatureGroup, legs_fc: dict | None) -> None:
    """Draw a route's legs (LineStrings with ``leg`` and ``length_m``) into ``group``."""
    for f in (legs_fc or {}).get("features", []):
        folium.PolyLine(
            [(lat, lon) for lon, lat, *_ in f["geometry"]["coordinates"]],
            color=ROUTE_COLOUR,
            weight=4,
            opacity=0.85,
            tooltip=f"第 {f['properties'].get('leg')} 段 · "
            f"{f['properties'].get('length_m', 0):.0f} 米",
        ).add_to(group)


def add_start(group: folium.FeatureGroup, start: tuple[float, float] | list[float]) -> None:
    """Mark the route's start ``(lon, lat)`` in ``group``."""
    folium.CircleMarker(
        [start[1], start[0]],
        radius=8,
        color="#ffffff",
        weight=2,
        fill=True,
        fill_color=START_COLOUR,
        fill_opacity=1,
        tooltip="起点",
    ).add_to(group)


def add_stops(group: folium.FeatureGroup, stops: list[dict]) -> None:
    """Mark the stops (``lon``, ``lat``, ``seq``, ``address``) with their numbers in ``group``."""
    for stop in stops:
        folium.Marker(
            [stop["lat"], stop["lon"]],
            icon=folium.DivIcon(
                html=f'<div class="patrol-num">{stop["seq"]}</div>',
                icon_size=(24, 24),
                icon_anchor=(12, 12),
            ),
            tooltip=f"{stop['seq']}. {stop['address']}",
        ).add_to(group)


def build_route_map(legs_fc: dict | None, *, start: tuple[float, float] | list[float] | None,
                    stops: list[dict], roads_fc: dict | None = None) -> MapParts:
    """Build a patrol's map: its route, start and numbered stops over pale roads.

    Parameters
    ----------
    legs_fc
        The route's legs as a GeoJSON FeatureCollection (None before routing).
    start
        The start ``(lon, lat)``, or None.
    stops
        The stops in order, each ``lon``, ``lat``, ``seq`` and ``address``.
    roads_fc
        The roads layer, optional.

    Returns
    -------
    MapParts
        The rendered map, fitted to the route and stops.
    """
    features = (legs_fc or {}).get("features", [])
    coords = [c for f in features for c in f["geometry"]["coordinates"]]
    coords += [(s["lon"], s["lat"]) for s in stops]
    m = create_map(bounds=pad_bounds(coords, pad=0.001))
    add_roads(m, roads_fc, colour="#b0b0b0", weight=1.2)
    route = folium.FeatureGroup(name="巡查路线")
    add_route(route, legs_fc)
    if start:
        add_start(route, start)
    add_stops(route, stops)
    route.add_to(m)
    return render_map(m)
