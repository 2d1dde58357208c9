"""Snapping: put each stop on the nearest road edge (not the nearest junction).

A stop in the middle of a long street is reached there; a stop farther than
``SNAP_WARN_M`` from every road is kept and flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from gis.errors import CoordinateError
from gis.routing.graph import RoadGraph

#: A stop farther than this from every road is flagged (kept, not dropped).
SNAP_WARN_M = 300.0


@dataclass(frozen=True)
class Snap:
    """Where one stop joins the road network.

    Attributes
    ----------
    lon, lat : float
        The stop as given (WGS-84).
    edge : int
        Edge id in the ``RoadGraph``.
    offset_m : float
        Distance along the edge from its ``edge_u`` node to the projection.
    distance_m : float
        Straight-line distance from the stop to the road.
    snapped_lon, snapped_lat : float
        The projection on the road (WGS-84).
    far : bool
        True when ``distance_m`` exceeds ``SNAP_WARN_M`` (300 m): the stop is kept but
        the inspector should be told it is off the road network.
    """

    lon: float
    lat: float
    edge: int
    offset_m: float
    distance_m: float
    snapped_lon: float
    snapped_lat: float
    far: bool


def snap_points(graph: RoadGraph, lon: Sequence[float], lat: Sequence[float]) -> list[Snap]:
    """Snap each point to the nearest road edge.

    Parameters
    ----------
    graph : RoadGraph
    lon, lat : sequence of float
        WGS-84 degrees, same length.

    Returns
    -------
    list of Snap
        One per point, in input order; points farther than 300 m are flagged ``far``.

    Raises
    ------
    CoordinateError
        If a coordinate is not a finite number in range (names the point's index).
    """
    lon_a = np.atleast_1d(np.asarray(lon, dtype=float))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=float))
    if lon_a.shape != lat_a.shape:
        msg = f"经度与纬度个数不一致: {lon_a.size} 个经度, {lat_a.size} 个纬度"
        raise CoordinateError(msg)
    for i, (x, y) in enumerate(zip(lon_a, lat_a, strict=True)):
        if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
            msg = f"第 {i + 1} 个巡查点坐标无效: 经度 {x}, 纬度 {y}"
            raise CoordinateError(msg)
    if lon_a.size == 0:
        return []
    x, y = graph.project(lon_a, lat_a)
    pts = shapely.points(x, y)
    (pi, ei), dist = graph.tree.query_nearest(pts, all_matches=False, return_distance=True)
    order = np.argsort(pi)
    ei, dist = ei[order], dist[order]
    lines = np.asarray(graph.edge_geoms, dtype=object)[ei]
    offsets = shapely.line_locate_point(lines, pts)
    proj = shapely.line_interpolate_point(lines, offsets)
    slon, slat = graph.unproject(shapely.get_x(proj), shapely.get_y(proj))
    return [
        Snap(
            lon=float(lon_a[i]),
            lat=float(lat_a[i]),
            edge=int(ei[i]),
            offset_m=float(offsets[i]),
            distance_m=float(dist[i]),
            snapped_lon=float(slon[i]),
            snapped_lat=float(slat[i]),
            far=bool(dist[i] > SNAP_WARN_M),
        )
        for i in range(lon_a.size)
    ]
