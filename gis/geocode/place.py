"""Placement rules: where on the ground a matched address lands (local UTM metres).

Crossings of two roads and the block a corner (东北角) or side (东侧) points into, the
middle of a road, a POI's gates and the edge of an area that faces (or turns its back
on) its road, and door numbers interpolated between the plates of one street side.
The confidence of each rule is in :data:`gis.geocode.result.CONFIDENCE`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from gis.geocode.result import CONFIDENCE

# Roads whose centre lines pass within this distance are taken to meet (digitising gaps).
MAX_GAP_M = 30.0
# Crossings of the same pair of roads closer than this are one crossing (dual carriageways).
CLUSTER_M = 40.0
CORNER_OFFSET_M = 15.0
CENTRE_OFFSET_M = 2.0
GATE_OFFSET_M = 10.0
# A lane this short is one place: its middle stands for all of it (背街小巷 problems).
SHORT_ROAD_M = 300.0
# The road an area faces is the nearest named road at most this far from its edge.
FRONT_MAX_M = 120.0
# Roads this much farther than the nearest still count as near (a block between
# two streets); the one nearer to the area's centre then decides.
FRONT_TIE_M = 5.0
EDGE_INSET_M = 2.0

_AZIMUTH = {"北": 0.0, "东北": 45.0, "东": 90.0, "东南": 135.0, "南": 180.0, "西南": 225.0}
_AZIMUTH |= {"西": 270.0, "西北": 315.0}
_GATES = {"北门": "北", "南门": "南", "东门": "东", "西门": "西"}
_GATES |= {"北门口": "北", "南门口": "南", "东门口": "东", "西门口": "西"}
_GATES |= {"北侧": "北", "南侧": "南", "东侧": "东", "西侧": "西"}
_NEAR_PARTS = {"旁", "旁边", "门口", "门前", "对面", "附近", "周边", "周围", "外", "前", "后"}
_NEAR_PARTS |= {"后面", "后侧", "大门口", "门口处", "后门", "正门", "大门"}
# Near parts that name an edge of an area: the one facing its road, or the far one.
_FRONT_PARTS = {"旁", "旁边", "门口", "门前", "对面", "外", "前"}
_FRONT_PARTS |= {"大门口", "门口处", "正门", "大门"}
_BACK_PARTS = {"后", "后面", "后侧", "后门"}
EDGE_PARTS = _FRONT_PARTS | _BACK_PARTS


def _unit(azimuth_deg: float) -> np.ndarray:
    rad = math.radians(azimuth_deg)
    return np.array([math.sin(rad), math.cos(rad)])


def _points_of(geom: BaseGeometry) -> list[Point]:
    """Return the points a road intersection consists of (overlaps give their centre)."""
    if geom.is_empty:
        return []
    if isinstance(geom, Point):
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for part in geom.geoms for p in _points_of(part)]
    return [geom.centroid]


def _cluster(points: list[Point]) -> list[Point]:
    clusters: list[list[Point]] = []
    for point in points:
        for group in clusters:
            if group[0].distance(point) <= CLUSTER_M:
                group.append(point)
                break
        else:
            clusters.append([point])
    clusters.sort(key=len, reverse=True)
    return [shapely.MultiPoint(group).centroid for group in clusters]


# ------------------------------------------------------------------ roads and crossings


def crossings(ga: BaseGeometry, gb: BaseGeometry) -> list[Point]:
    """Return where two roads cross, the best-supported crossing first.

    Parameters
    ----------
    ga, gb : BaseGeometry
        The two roads' lines.

    Returns
    -------
    list of Point
        One point per crossing (dual carriageways within ``CLUSTER_M`` are one); two
        roads that pass within ``MAX_GAP_M`` without touching meet halfway. Empty when
        they never meet.
    """
    points = _points_of(ga.intersection(gb))
    if not points and ga.distance(gb) <= MAX_GAP_M:
        pa, pb = nearest_points(ga, gb)
        points = [Point((pa.x + pb.x) / 2, (pa.y + pb.y) / 2)]
    return _cluster(points)


def arm_azimuths(centre: Point, roads: Sequence[BaseGeometry]) -> list[float]:
    """Return azimuths (degrees, sorted) of the road arms leaving a crossing."""
    ring = centre.buffer(12.0, quad_segs=16).exterior
    azimuths: list[float] = []
    for road in roads:
        for p in _points_of(road.intersection(ring)):
            az = math.degrees(math.atan2(p.x - centre.x, p.y - centre.y)) % 360.0
            azimuths.append(az)
    return sorted(azimuths)


def corner_point(centre: Point, rays: list[float], corner: str) -> Point:
    """Place a point in the block of a crossing that the compass direction points into.

    Parameters
    ----------
    centre : Point
        The crossing.
    rays : list of float
        Its arms, as :func:`arm_azimuths` gives them.
    corner : str
        A corner ("东北") or a side ("东"): a side goes ``CORNER_OFFSET_M`` along the
        nearest arm, a corner as far along the bisector of its block.

    Returns
    -------
    Point
    """
    want = _AZIMUTH.get(corner, 45.0)
    if len(corner) == 1 and rays:
        # A side (东/西/南/北) is an arm of the crossing: go along the nearest arm.
        az = min(rays, key=lambda r: abs((r - want + 180.0) % 360.0 - 180.0))
        return Point(*(np.array(centre.coords[0]) + CORNER_OFFSET_M * _unit(az)))
    return sector_point(centre, rays, want, CORNER_OFFSET_M)


def sector_point(centre: Point, rays: list[float], want: float, dist: float) -> Point:
    """Return the point ``dist`` metres along the bisector of the block holding ``want``."""
    bisector = want
    if len(rays) >= 2:
        for i, start in enumerate(rays):
            end = rays[(i + 1) % len(rays)]
            width = (end - start) % 360.0 or 360.0
            if (want - start) % 360.0 <= width:
                bisector = (start + width / 2.0) % 360.0
                break
    return Point(*(np.array(centre.coords[0]) + dist * _unit(bisector)))


def merged_parts(geom: BaseGeometry) -> list[LineString]:
    """Return a road's lines merged into as few connected parts as they form."""
    merged = shapely.line_merge(geom) if isinstance(geom, MultiLineString) else geom
    if isinstance(merged, LineString):
        return [merged]
    return [g for g in getattr(merged, "geoms", []) if isinstance(g, LineString)]


def road_middle(geom: BaseGeometry) -> Point:
    """Return the middle of a road's longest connected part."""
    parts = merged_parts(geom)
    if parts:
        longest = max(parts, key=lambda g: g.length)
        return longest.interpolate(0.5, normalized=True)
    return geom.representative_point()


# ------------------------------------------------------------------ places


def anchor(geom: BaseGeometry) -> Point:
    """Return the point that stands for a place (itself, or a point inside its area)."""
    return geom if isinstance(geom, Point) else geom.representative_point()


def facing_road(
    geom: BaseGeometry,
    roads: Mapping[str, BaseGeometry],
    names: list[str],
    tree: shapely.STRtree,
) -> tuple[float, str] | None:
    """Return (azimuth from the area's inner point to the road it faces, road name).

    Parameters
    ----------
    geom : BaseGeometry
        The area.
    roads : mapping
        Road name → line.
    names, tree : list of str, shapely.STRtree
        The road names and a tree over their lines, in that order.

    Returns
    -------
    tuple of (float, str) or None
        None when no named road is within ``FRONT_MAX_M``.
    """
    near = tree.query(geom, predicate="dwithin", distance=FRONT_MAX_M)
    if not len(near):
        return None
    inner = anchor(geom)
    ranked = sorted((geom.distance(roads[names[i]]), names[i]) for i in near)
    closest = ranked[0][0]
    tied = [n for d, n in ranked if d - closest <= FRONT_TIE_M]
    road = min(tied, key=lambda n: (inner.distance(roads[n]), n))
    foot = nearest_points(inner, roads[road])[1]
    dx, dy = foot.x - inner.x, foot.y - inner.y
    if math.hypot(dx, dy) < 1e-6:
        return None
    return math.degrees(math.atan2(dx, dy)) % 360.0, road


def _edge_point(geom: BaseGeometry, inner: Point, azimuth: float) -> Point | None:
    """Walk from a point inside an area toward ``azimuth`` to its outer edge; 2 m short."""
    direction = _unit(azimuth)
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon"]
    if not parts:
        return None
    # Outer rings only: a courtyard (a multipolygon's inner ring) is not the area's edge.
    rings = shapely.MultiLineString([p.exterior for p in parts])
    far = np.array(inner.coords[0]) + direction * 10_000.0
    points = _points_of(LineString([inner.coords[0], far]).intersection(rings))
    if not points:
        return None
    edge = min(points, key=inner.distance)
    return Point(*(np.array(edge.coords[0]) - direction * EDGE_INSET_M))


def place_at_poi(
    geom: BaseGeometry, part: str | None, front: tuple[float, str] | None = None
) -> tuple[Point, float, str]:
    """Place a part of a place ("北门", "对面" ...).

    Parameters
    ----------
    geom : BaseGeometry
        The place (a point or an area).
    part : str or None
        The part the address names.
    front : tuple of (float, str), optional
        What :func:`facing_road` gives for the area (for the ``EDGE_PARTS``).

    Returns
    -------
    tuple of (Point, float, str)
        The point, the method's confidence and a note (Chinese).
    """
    inner = anchor(geom)
    side = _GATES.get(part or "")
    if side is not None:
        if geom.area > 0:
            # Walk from the centre to the polygon's edge on that side: the gate is there.
            edge = _edge_point(geom, inner, _AZIMUTH[side])
            if edge is not None:
                return edge, CONFIDENCE["poi_gate"], f"{side}侧边界处"
        direction = _unit(_AZIMUTH[side])
        moved = np.array(inner.coords[0]) + direction * GATE_OFFSET_M
        return Point(*moved), CONFIDENCE["poi_gate"], f"向{side}偏移 {GATE_OFFSET_M:g} 米"
    if part in _NEAR_PARTS:
        if front is not None and part in EDGE_PARTS:
            azimuth, road = front
            back = part in _BACK_PARTS
            edge = _edge_point(geom, inner, (azimuth + 180.0) % 360.0 if back else azimuth)
            if edge is not None:
                where = f"背向{road}一侧" if back else f"临{road}一侧"
                return edge, CONFIDENCE["poi_near"], f"问题在其附近，取{where}边界处"
        return inner, CONFIDENCE["poi_near"], "问题在其附近，取该地点"
    return inner, CONFIDENCE["poi"], "取该地点"


# ------------------------------------------------------------------ house numbers


def place_number(
    numbers: np.ndarray, xy: np.ndarray, number: int
) -> tuple[np.ndarray | None, str, str]:
    """Place a door number among a street's plates.

    Parameters
    ----------
    numbers : ndarray of int
        The street's plate numbers.
    xy : ndarray, shape (n, 2)
        Their points.
    number : int
        The number wanted.

    Returns
    -------
    tuple of (ndarray or None, str, str)
        The point (None when the street has no plates), the ``CONFIDENCE`` key
        (exact, interpolated between the nearest plates of the same parity, or
        extrapolated at most 60 m beyond them) and a note (Chinese).
    """
    exact = np.flatnonzero(numbers == number)
    if exact.size:
        return xy[exact[0]], "house_exact", f"门牌 {number} 号"
    same = numbers % 2 == number % 2
    # Odd and even numbers run on opposite sides of the street: keep to one side.
    nums, pts = (numbers[same], xy[same]) if same.any() else (numbers, xy)
    if nums.size == 0:
        return None, "", ""
    lower = np.flatnonzero(nums < number)
    upper = np.flatnonzero(nums > number)
    if lower.size and upper.size:
        lo = lower[np.argmax(nums[lower])]
        hi = upper[np.argmin(nums[upper])]
        t = (number - nums[lo]) / (nums[hi] - nums[lo])
        point = pts[lo] + t * (pts[hi] - pts[lo])
        key = "house_interpolated" if nums[hi] - nums[lo] <= 20 else "house_interpolated_far"
        return point, key, f"在 {nums[lo]} 号与 {nums[hi]} 号之间插值"
    side = lower if lower.size else upper
    order = side[np.argsort(np.abs(nums[side] - number))]
    near = order[0]
    gap = abs(int(nums[near]) - number)
    key = "house_extrapolated" if gap <= 6 else "house_extrapolated_far"
    if order.size >= 2 and nums[order[1]] != nums[near]:
        step = (pts[near] - pts[order[1]]) / (nums[near] - nums[order[1]])
        # Do not run off far beyond the known plates: at most 60 m.
        shift = step * (number - nums[near])
        length = float(np.hypot(*shift))
        if length > 60.0:
            shift *= 60.0 / length
        return pts[near] + shift, key, f"由 {nums[near]} 号外推"
    return pts[near], key, f"取最近的 {nums[near]} 号"
