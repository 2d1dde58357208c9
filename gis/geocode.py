"""Offline geocoding of Chinese addresses against the county's own layers.

Inspection lists name places by roads, crossings, door plates and landmarks. The
county has no online geocoder it may rely on (and online ones answer in GCJ-02), so
:class:`Geocoder` indexes the county's roads, POIs, communities and door plates once,
in the local UTM zone, and then answers many queries fast.

Confidence of each method (before the name-match factor below)
--------------------------------------------------------------
The app treats a result below 0.6 as 待定位 (queued for manual placement).

============================  ==========  =============================================
method                        confidence  placed at
============================  ==========  =============================================
``intersection`` + corner     0.92        15 m into the named corner's block, along the
                                          bisector of the two roads there
``intersection`` + side       0.80        15 m along the road arm on that side
``intersection``              0.80        2 m off the crossing into the block that holds
                                          the north-east direction (deterministic, so
                                          the point is not on a cell edge)
``house_number`` exact        0.95        the door plate
``house_number`` interpolated 0.85 / 0.70 between the nearest plates of the same parity
                                          (0.70 when they are > 20 numbers apart)
``house_number`` extrapolated 0.60 / 0.45 beyond the last plate (0.45 when > 6 away)
``segment``                   0.82        midway along the road between its crossings
``poi`` (内, 门 or nothing)   0.90 / 0.85 the POI; a gate moves it toward that side
``poi`` (旁, 门口, 对面 ...)  0.72        the POI (the problem is *near* it); for an
                                          area, 2 m inside its edge facing the nearest
                                          named road (后面/后门: the far edge)
``alias``                     as ``poi``  a POI or road reached through an alias
``community``                 0.50        a point inside the community polygon
``road``                      0.45        the middle of the road (no door plates)
``road`` (short lane)         0.62        the middle of a road shorter than 300 m,
                                          named alone ("营盘巷", "海棠坡沿线")
``none``                      0           nothing (lon/lat None)
============================  ==========  =============================================

A POI mapped as an area (a polygon, or a point with a ``footprint`` WKT column as
:func:`gis.osm.read_osm` and the stored ``pois`` layer carry it) is placed like a
named building footprint: a plain name at a point inside it, a gate or side
(北门, 东侧) 2 m inside the edge on that side, 对面/门口/旁 2 m inside the edge that
faces the nearest named road within 120 m, 后面 the opposite edge. Without a road
that near, 对面/后面 stay at the point inside.

Each fuzzy name match multiplies the confidence by ``0.75 + 0.25 * (score - 60) / 40``
(exact names: 1); when two names tie, the result is multiplied by 0.6 and both are
listed as candidates, so a tie always falls below 0.6.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from rapidfuzz import fuzz, process
from shapely.geometry import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from gis.address import (
    ADDRESS_FIELDS,
    NUMBER_FIELDS,
    STREET_FIELDS,
    ParsedAddress,
    door_plate_fields,
    normalize_address,
    parse_address,
    split_road_suffix,
)
from gis.crs import WGS84, utm_crs_for
from gis.errors import LayerReadError

__all__ = ["CONFIDENCE", "GeocodeResult", "Geocoder", "geocode_address"]

CONFIDENCE: dict[str, float] = {
    "intersection_corner": 0.92,
    "intersection_side": 0.80,
    "intersection": 0.80,
    "house_exact": 0.95,
    "house_interpolated": 0.85,
    "house_interpolated_far": 0.70,
    "house_extrapolated": 0.60,
    "house_extrapolated_far": 0.45,
    "segment": 0.82,
    "poi": 0.90,
    "poi_gate": 0.85,
    "poi_near": 0.72,
    "community": 0.50,
    "road": 0.45,
    "short_road": 0.62,
}
QUEUE_BELOW = 0.6
# Layer fields holding other names of a road or place (OSM keys; 别名/俗称 of county layers).
ALIAS_FIELDS = ("short_name", "alt_name", "old_name", "official_name", "loc_name", "别名", "俗称")
# Roads whose centre lines pass within this distance are taken to meet (digitising gaps).
MAX_GAP_M = 30.0
# Crossings of the same pair of roads closer than this are one crossing (dual carriageways).
CLUSTER_M = 40.0
CORNER_OFFSET_M = 15.0
CENTRE_OFFSET_M = 2.0
GATE_OFFSET_M = 10.0
# A lane this short is one place: its middle stands for all of it (背街小巷 problems).
SHORT_ROAD_M = 300.0
MIN_ROAD_SCORE = 60.0
MIN_POI_SCORE = 72.0
TIE_MARGIN = 2.0
TIE_FACTOR = 0.6

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
_EDGE_PARTS = _FRONT_PARTS | _BACK_PARTS
# The road an area faces is the nearest named road at most this far from its edge.
FRONT_MAX_M = 120.0
# Roads this much farther than the nearest still count as near (a block between
# two streets); the one nearer to the area's centre then decides.
FRONT_TIE_M = 5.0
EDGE_INSET_M = 2.0


@dataclass
class GeocodeResult:
    """The answer for one address.

    Attributes
    ----------
    lon, lat : float or None
        WGS-84 degrees; None when unresolved.
    method : str
        ``"intersection"``, ``"house_number"``, ``"segment"``, ``"poi"``, ``"alias"``,
        ``"community"``, ``"road"`` or ``"none"``.
    confidence : float
        0..1; the app queues results below 0.6 for manual placement.
    candidates : list of dict
        Up to 5 ``{name, kind, lon, lat, score}``, best first.
    normalized : str
        The normalised address text.
    message : str
        Why it failed, or what was assumed (Chinese).
    """

    lon: float | None
    lat: float | None
    method: str
    confidence: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    normalized: str = ""
    message: str = ""

    @property
    def placed(self) -> bool:
        """Whether the point is good enough to place without a person (≥ 0.6)."""
        return self.lon is not None and self.confidence >= QUEUE_BELOW


@dataclass
class _Match:
    name: str
    score: float
    via_alias: bool = False
    tied: list[str] = field(default_factory=list)

    @property
    def factor(self) -> float:
        base = 1.0 if self.score >= 100 else 0.75 + 0.25 * (self.score - 60.0) / 40.0
        return base * (TIE_FACTOR if self.tied else 1.0)


def _name_key(name: Any) -> str:
    return normalize_address(str(name)) if name is not None else ""


def _light_key(name: Any) -> str:
    """Return a layer name as written, only unified in width and blanks."""
    return "".join(unicodedata.normalize("NFKC", str(name)).split()) if name is not None else ""


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


def _merged_parts(geom: BaseGeometry) -> list[LineString]:
    merged = shapely.line_merge(geom) if isinstance(geom, MultiLineString) else geom
    if isinstance(merged, LineString):
        return [merged]
    return [g for g in getattr(merged, "geoms", []) if isinstance(g, LineString)]


class Geocoder:
    """An index of the county's named roads, POIs, communities and door plates.

    Build it once with :meth:`from_layers`, then call :meth:`geocode_address` for
    each address; name matches and road crossings are cached between calls.
    """

    def __init__(
        self,
        *,
        crs: CRS,
        roads: dict[str, BaseGeometry],
        pois: dict[str, BaseGeometry],
        communities: dict[str, BaseGeometry],
        plates: dict[str, tuple[np.ndarray, np.ndarray]],
        aliases: Mapping[str, str],
        strip_prefixes: Sequence[str] = (),
    ) -> None:
        self.crs = crs
        self.roads = roads
        self.pois = pois
        self.communities = communities
        self.plates = plates
        self.strip_prefixes = tuple(strip_prefixes)
        self._to_wgs = Transformer.from_crs(crs, WGS84, always_xy=True)
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            self._aliases[_name_key(alias)] = _name_key(target)
        # Lookup tables per kind: the names fuzzy matching runs over.
        self._names = {
            "road": list(roads),
            "poi": list(pois),
            "community": list(communities),
            "street": list(plates),
        }
        self._road_cores = [split_road_suffix(n)[0] for n in self._names["road"]]
        self._match_cache: dict[tuple[str, str], _Match | None] = {}
        self._cross_cache: dict[tuple[str, str], list[Point]] = {}
        self._mid_cache: dict[str, Point] = {}
        self._front_cache: dict[str, tuple[float, str] | None] = {}
        self._place_cache: dict[tuple[str, str | None], tuple[Point, float, str]] = {}
        self._road_tree: tuple[list[str], shapely.STRtree] | None = None

    @classmethod
    def from_layers(
        cls,
        *,
        roads: gpd.GeoDataFrame,
        pois: gpd.GeoDataFrame | None = None,
        communities: gpd.GeoDataFrame | None = None,
        addresses: gpd.GeoDataFrame | None = None,
        buildings: gpd.GeoDataFrame | None = None,
        aliases: Mapping[str, str] | None = None,
        strip_prefixes: Sequence[str] = (),
    ) -> Geocoder:
        """Index the county's layers for geocoding.

        Parameters
        ----------
        roads : GeoDataFrame
            Lines with a ``name`` column; a road may be many rows of one name.
        pois : GeoDataFrame, optional
            Points or polygons with ``name`` (and optionally ``type``). A
            ``footprint`` column (WKT in the layer's CRS, as :func:`gis.osm.read_osm`
            writes it) replaces a point by the area it stands for.
        communities : GeoDataFrame, optional
            Polygons with ``name``.
        addresses : GeoDataFrame, optional
            Door plates: points (or building polygons) with ``street`` and ``number``,
            or any fields :func:`gis.address.door_plate_fields` reads (``addr:street``
            / ``addr:housenumber``, 街路巷名 / 门牌号, one 地址 field).
        buildings : GeoDataFrame, optional
            Building footprints: a named one is a place ("XX大厦后面") unless a POI
            has that name already; one with a street and number is a door plate.
        aliases : mapping, optional
            Alias → canonical road or POI name ("一中" → "第一中学"). The layers' own
            ``alt_name``, ``old_name``, ``short_name``, ``official_name`` and
            ``loc_name`` fields are aliases too; this mapping wins over them.
        strip_prefixes : sequence of str
            Prefixes stripped from every address (e.g. the town's own name).

        Returns
        -------
        Geocoder

        Raises
        ------
        LayerReadError
            When a layer lacks a CRS or a required column, or a door-plate layer has
            no street and number fields.
        """
        _check_layer(roads, "道路", ("name",))
        crs = utm_crs_for(*_centre_wgs84(roads))
        road_geoms = _group_geoms(roads.to_crs(crs), "name", lines=True)
        poi_geoms: dict[str, BaseGeometry] = {}
        if pois is not None and len(pois):
            _check_layer(pois, "兴趣点", ("name",))
            poi_geoms = _group_geoms(_with_footprints(pois).to_crs(crs), "name", lines=False)
        if buildings is not None and len(buildings) and "name" in buildings.columns:
            _check_layer(buildings, "建筑", ("name",))
            named = buildings[buildings["name"].notna()]
            for name, geom in _group_geoms(named.to_crs(crs), "name", lines=False).items():
                known = poi_geoms.get(name)
                # A POI point inside its own footprint: the footprint places its gates.
                if known is None or (known.geom_type == "Point" and geom.buffer(5).contains(known)):
                    poi_geoms[name] = geom
        community_geoms: dict[str, BaseGeometry] = {}
        if communities is not None and len(communities):
            _check_layer(communities, "社区", ("name",))
            community_geoms = _group_geoms(communities.to_crs(crs), "name", lines=False)
        plate_frames = []
        if addresses is not None and len(addresses):
            _check_layer(addresses, "门牌", ())
            frame = _plate_frame(addresses.to_crs(crs))
            if frame.empty:
                msg = (
                    "门牌图层没有可用的街路巷名和门牌号 (字段应为 street/number、"
                    "addr:street/addr:housenumber、街路巷名/门牌号，或一个“地址”字段如 人民路23号)"
                )
                raise LayerReadError(msg)
            plate_frames.append(frame)
        for extra in (buildings, pois):
            if extra is not None and len(extra) and extra.crs is not None:
                frame = _plate_frame(extra.to_crs(crs))
                if not frame.empty:
                    plate_frames.append(frame)
        plates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if plate_frames:
            plates = _index_plates(gpd.GeoDataFrame(gpd.pd.concat(plate_frames), crs=crs))
        # POI names are also known without the county prefix ("XX县第一中学" → "第一中学").
        for name in list(poi_geoms):
            key = _name_key(name)
            poi_geoms.setdefault(key, poi_geoms[name])
        layer_aliases: dict[str, str] = {}
        for frame in (roads, pois, buildings):
            layer_aliases.update(_layer_aliases(frame, known={*poi_geoms, *road_geoms}))
        return cls(
            crs=crs,
            roads=road_geoms,
            pois=poi_geoms,
            communities=community_geoms,
            plates=plates,
            aliases={**layer_aliases, **(aliases or {})},
            strip_prefixes=strip_prefixes,
        )

    # ------------------------------------------------------------------ matching

    def match_name(self, query: str, *, kind: str) -> _Match | None:
        """Return the best known name of a kind for a query, or None below the cut-off."""
        key = (query, kind)
        if key not in self._match_cache:
            self._match_cache[key] = self._match_uncached(query, kind)
        return self._match_cache[key]

    def _match_uncached(self, query: str, kind: str) -> _Match | None:
        names = self._names[kind]
        if not query or not names:
            return None
        table = self._table(kind)
        if query in table:
            return _Match(query, 100.0)
        target = self._aliases.get(query)
        if target is not None and target in table:
            return _Match(target, 100.0, via_alias=True)
        if kind in ("road", "street"):
            scored = self._score_roads(query, names)
        else:
            hits = process.extract(
                query, names, scorer=fuzz.WRatio, limit=5, score_cutoff=MIN_POI_SCORE
            )
            scored = [(name, float(score)) for name, score, _ in hits]
        if not scored:
            return None
        best_name, best = scored[0]
        # Two keys of one place (raw and normalised POI names) are not a tie.
        tied = [
            n for n, s in scored[1:] if best - s <= TIE_MARGIN and table[n] is not table[best_name]
        ]
        return _Match(best_name, best, tied=tied)

    def _score_roads(self, query: str, names: list[str]) -> list[tuple[str, float]]:
        core, suffix = split_road_suffix(query)
        full = process.extract(query, names, scorer=fuzz.ratio, limit=5, score_cutoff=40)
        scores: dict[str, float] = {name: float(score) for name, score, _ in full}
        cores = self._road_cores if names is self._names["road"] else None
        if cores is None:
            cores = [split_road_suffix(n)[0] for n in names]
        for _, score, idx in process.extract(core, cores, scorer=fuzz.ratio, limit=5):
            name = names[idx]
            other = split_road_suffix(name)[1]
            # A missing suffix ("人民") costs little, a different one ("人民街") more.
            if not suffix:
                value = score * 0.95
            elif suffix == other:
                value = score
            else:
                value = score * 0.85
            if len(core) < 2 and score < 100:
                continue
            scores[name] = max(scores.get(name, 0.0), float(value))
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(n, s) for n, s in ranked if s >= MIN_ROAD_SCORE][:5]

    def _table(self, kind: str) -> Mapping[str, Any]:
        return {
            "road": self.roads,
            "poi": self.pois,
            "community": self.communities,
            "street": self.plates,
        }[kind]

    # ------------------------------------------------------------------ geometry

    def _wgs(self, point: Point | np.ndarray) -> tuple[float, float]:
        x, y = (point.x, point.y) if isinstance(point, Point) else (point[0], point[1])
        lon, lat = self._to_wgs.transform(x, y)
        return round(float(lon), 7), round(float(lat), 7)

    def _crossings(self, a: str, b: str) -> list[Point]:
        key = (a, b) if a <= b else (b, a)
        if key not in self._cross_cache:
            ga, gb = self.roads[a], self.roads[b]
            points = _points_of(ga.intersection(gb))
            if not points and ga.distance(gb) <= MAX_GAP_M:
                pa, pb = nearest_points(ga, gb)
                points = [Point((pa.x + pb.x) / 2, (pa.y + pb.y) / 2)]
            self._cross_cache[key] = _cluster(points)
        return self._cross_cache[key]

    def _rays(self, centre: Point, names: Sequence[str]) -> list[float]:
        """Return azimuths (degrees) of the road arms leaving a crossing."""
        ring = centre.buffer(12.0, quad_segs=16).exterior
        azimuths: list[float] = []
        for name in names:
            for p in _points_of(self.roads[name].intersection(ring)):
                az = math.degrees(math.atan2(p.x - centre.x, p.y - centre.y)) % 360.0
                azimuths.append(az)
        return sorted(azimuths)

    def _corner_point(self, centre: Point, names: Sequence[str], corner: str) -> Point:
        """Place a point in the block of a crossing that the compass direction points into."""
        want = _AZIMUTH.get(corner, 45.0)
        rays = self._rays(centre, names)
        if len(corner) == 1 and rays:
            # A side (东/西/南/北) is an arm of the crossing: go along the nearest arm.
            az = min(rays, key=lambda r: abs((r - want + 180.0) % 360.0 - 180.0))
            return Point(*(np.array(centre.coords[0]) + CORNER_OFFSET_M * _unit(az)))
        return self._sector_point(centre, rays, want, CORNER_OFFSET_M)

    @staticmethod
    def _sector_point(centre: Point, rays: list[float], want: float, dist: float) -> Point:
        bisector = want
        if len(rays) >= 2:
            for i, start in enumerate(rays):
                end = rays[(i + 1) % len(rays)]
                width = (end - start) % 360.0 or 360.0
                if (want - start) % 360.0 <= width:
                    bisector = (start + width / 2.0) % 360.0
                    break
        return Point(*(np.array(centre.coords[0]) + dist * _unit(bisector)))

    def _road_middle(self, name: str) -> Point:
        if name not in self._mid_cache:
            parts = _merged_parts(self.roads[name])
            if parts:
                longest = max(parts, key=lambda g: g.length)
                self._mid_cache[name] = longest.interpolate(0.5, normalized=True)
            else:
                self._mid_cache[name] = self.roads[name].representative_point()
        return self._mid_cache[name]

    def _place_at(self, name: str, part: str | None) -> tuple[Point, float, str]:
        """Place a part of a known POI ("北门", "对面" ...), cached per name and part."""
        key = (name, part)
        if key not in self._place_cache:
            geom = self.pois[name]
            front = self._front_of(name, geom) if part in _EDGE_PARTS else None
            self._place_cache[key] = _place_at_poi(geom, part, front)
        return self._place_cache[key]

    def _front_of(self, name: str, geom: BaseGeometry) -> tuple[float, str] | None:
        """Return (azimuth from the area's inner point to the road it faces, road name).

        None for a point POI or an area with no named road within ``FRONT_MAX_M``.
        """
        if geom.area <= 0:
            return None
        if name not in self._front_cache:
            self._front_cache[name] = self._front_uncached(geom)
        return self._front_cache[name]

    def _front_uncached(self, geom: BaseGeometry) -> tuple[float, str] | None:
        if self._road_tree is None:
            names = list(self.roads)
            self._road_tree = (names, shapely.STRtree([self.roads[n] for n in names]))
        names, tree = self._road_tree
        near = tree.query(geom, predicate="dwithin", distance=FRONT_MAX_M)
        if not len(near):
            return None
        anchor = _anchor(geom)
        ranked = sorted((geom.distance(self.roads[names[i]]), names[i]) for i in near)
        closest = ranked[0][0]
        tied = [n for d, n in ranked if d - closest <= FRONT_TIE_M]
        road = min(tied, key=lambda n: (anchor.distance(self.roads[n]), n))
        foot = nearest_points(anchor, self.roads[road])[1]
        dx, dy = foot.x - anchor.x, foot.y - anchor.y
        if math.hypot(dx, dy) < 1e-6:
            return None
        return math.degrees(math.atan2(dx, dy)) % 360.0, road

    # ------------------------------------------------------------------ answers

    def geocode_address(self, text: str) -> GeocodeResult:
        """Geocode one address against the county's layers.

        Parameters
        ----------
        text : str
            The address as written in a problem list.

        Returns
        -------
        GeocodeResult
            Never raises for bad text: unresolvable addresses come back with
            ``method="none"``, ``confidence=0`` and a message saying why.
        """
        norm = normalize_address(text or "", strip_prefixes=self.strip_prefixes)
        parsed = parse_address(norm)
        parsed = ParsedAddress(**{**parsed.__dict__, "raw": str(text), "normalized": norm})
        handler = {
            "intersection": self._geocode_intersection,
            "segment": self._geocode_segment,
            "house_number": self._geocode_house,
            "road": self._geocode_road,
            "poi": self._geocode_place,
        }.get(parsed.kind)
        if handler is None:
            return _none(norm, f"地址“{text}”没有可定位的道路、门牌或地名，需人工定位")
        result = handler(parsed)
        result.confidence = round(max(0.0, min(1.0, result.confidence)), 3)
        result.candidates = result.candidates[:5]
        return result

    def _split_pair(self, text: str) -> tuple[_Match, _Match] | None:
        """Split "人民建设" into two known road names, trying every split point."""
        best: tuple[float, _Match, _Match] | None = None
        for i in range(2, len(text) - 1):
            ma = self.match_name(text[:i], kind="road")
            mb = self.match_name(text[i:], kind="road")
            if ma and mb and ma.name != mb.name:
                score = min(ma.score, mb.score)
                if best is None or score > best[0]:
                    best = (score, ma, mb)
        return None if best is None else (best[1], best[2])

    def _geocode_intersection(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        pair: tuple[_Match, _Match] | None = None
        if parsed.road and parsed.cross_road:
            ma = self.match_name(parsed.road, kind="road")
            mb = self.match_name(parsed.cross_road, kind="road")
            if ma and mb and ma.name != mb.name:
                pair = (ma, mb)
        if pair is None:
            pair = self._split_pair((parsed.road or "") + (parsed.cross_road or ""))
        if pair is None:
            known = self.match_name(parsed.road or "", kind="road")
            if known is not None:
                # "人民路口" names one road only: the road is all we know.
                return self._road_result(known, norm, note=f"只识别出一条道路“{known.name}”")
            return _none(norm, f"未找到交叉口的道路“{parsed.road}”“{parsed.cross_road}”")
        ma, mb = pair
        crossings = self._crossings(ma.name, mb.name)
        if not crossings:
            result = self._road_result(ma, norm, note=f"“{ma.name}”与“{mb.name}”不相交")
            result.confidence = min(result.confidence, 0.3)
            return result
        centre = crossings[0]
        names = (ma.name, mb.name)
        if parsed.corner:
            point = self._corner_point(centre, names, parsed.corner)
            key = "intersection_corner" if len(parsed.corner) == 2 else "intersection_side"
            note = f"{ma.name}与{mb.name}交叉口{parsed.corner}"
        else:
            rays = self._rays(centre, names)
            point = self._sector_point(centre, rays, 45.0, CENTRE_OFFSET_M)
            key = "intersection"
            note = f"{ma.name}与{mb.name}交叉口，未注明方位，取交叉口东北侧 {CENTRE_OFFSET_M:g} 米"
        confidence = CONFIDENCE[key] * ma.factor * mb.factor
        if len(crossings) > 1:
            confidence *= 0.7
            note += f"；两路有 {len(crossings)} 处相交，取第一处"
        lon, lat = self._wgs(point)
        candidates = [_cand(f"{ma.name}/{mb.name}", "intersection", lon, lat, confidence)]
        for other in crossings[1:]:
            candidates.append(
                _cand(f"{ma.name}/{mb.name}", "intersection", *self._wgs(other), confidence * 0.9)
            )
        for tied in ma.tied + mb.tied:
            candidates.append(_cand(tied, "road", *self._wgs(self._road_middle(tied)), 0.0))
        if ma.tied or mb.tied:
            note += "；道路名有多个相近匹配：" + "、".join(ma.tied + mb.tied)
        return GeocodeResult(lon, lat, "intersection", confidence, candidates, norm, note)

    def _geocode_segment(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        road = self.match_name(parsed.road or "", kind="road")
        if road is None:
            return _none(norm, f"未找到路段所在道路“{parsed.road}”")
        ends: list[Point] = []
        factor = road.factor
        for end in (parsed.from_road, parsed.to_road):
            match = self.match_name(end or "", kind="road")
            if match is None or match.name == road.name:
                continue
            crossings = self._crossings(road.name, match.name)
            if crossings:
                ends.append(crossings[0])
                factor *= match.factor
        if len(ends) < 2:
            result = self._road_result(road, norm, note="路段起止道路未能全部找到")
            if ends:
                result.lon, result.lat = self._wgs(ends[0])
                result.confidence = 0.5 * factor
                result.method = "segment"
            return result
        parts = _merged_parts(self.roads[road.name])
        part = min(parts, key=lambda g: g.distance(ends[0]) + g.distance(ends[1]))
        d0, d1 = part.project(ends[0]), part.project(ends[1])
        point = part.interpolate((d0 + d1) / 2.0)
        confidence = CONFIDENCE["segment"] * factor
        lon, lat = self._wgs(point)
        note = f"{road.name}（{parsed.from_road}至{parsed.to_road}段）中点"
        return GeocodeResult(
            lon,
            lat,
            "segment",
            confidence,
            [_cand(road.name, "segment", lon, lat, confidence)],
            norm,
            note,
        )

    def _geocode_house(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        street = self.match_name(parsed.road or "", kind="street")
        road = self.match_name(parsed.road or "", kind="road")
        if street is None or (road is not None and road.score > street.score):
            # Door plates filed under a spelling the roads layer does not use still count.
            street = self.match_name(road.name, kind="street") if road else street
        number = parsed.number or 0
        if street is not None and street.name in self.plates:
            numbers, xy = self.plates[street.name]
            point, key, note = _place_number(numbers, xy, number)
            if point is not None:
                confidence = CONFIDENCE[key] * street.factor
                lon, lat = self._wgs(point)
                return GeocodeResult(
                    lon,
                    lat,
                    "house_number",
                    confidence,
                    [_cand(f"{street.name}{number}号", "house_number", lon, lat, confidence)],
                    norm,
                    note,
                )
        if road is None:
            # "XX大厦3号楼" or a shop sign with a number: try it as a place name.
            place = self._geocode_place(
                ParsedAddress(kind="poi", raw=parsed.raw, normalized=norm, poi=norm)
            )
            if place.method != "none":
                return place
            return _none(norm, f"未找到门牌所在道路“{parsed.road}”")
        return self._road_result(road, norm, note=f"“{road.name}”没有门牌数据，取道路中点")

    def _geocode_road(self, parsed: ParsedAddress) -> GeocodeResult:
        road = self.match_name(parsed.road or "", kind="road")
        if road is None:
            # "老街" may be an alias or a place rather than a road.
            return self._geocode_place(
                ParsedAddress(
                    kind="poi", raw=parsed.raw, normalized=parsed.normalized, poi=parsed.road
                )
            )
        return self._road_result(
            road, parsed.normalized, note=f"只给出道路“{road.name}”，取中点", whole=True
        )

    def _road_result(
        self, road: _Match, norm: str, *, note: str, whole: bool = False
    ) -> GeocodeResult:
        """Answer with the road's middle; ``whole`` when the address names only the road."""
        point = self._road_middle(road.name)
        short = whole and self.roads[road.name].length <= SHORT_ROAD_M
        confidence = CONFIDENCE["short_road" if short else "road"] * road.factor
        if short:
            note += f"（道路短于 {SHORT_ROAD_M:g} 米）"
        lon, lat = self._wgs(point)
        candidates = [_cand(road.name, "road", lon, lat, confidence)]
        for tied in road.tied:
            candidates.append(_cand(tied, "road", *self._wgs(self._road_middle(tied)), 0.0))
        method = "alias" if road.via_alias else "road"
        return GeocodeResult(lon, lat, method, confidence, candidates, norm, note)

    def _geocode_place(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        query = parsed.poi or ""
        options: list[tuple[float, str, _Match]] = []
        for kind in ("poi", "community"):
            match = self.match_name(query, kind=kind)
            if match is not None:
                options.append((match.score, kind, match))
        if not options:
            road = self.match_name(query, kind="road")
            if road is not None:
                return self._road_result(road, norm, note=f"按道路“{road.name}”取中点")
            return _none(norm, f"未找到地点“{query}”，需人工定位")
        # Prefer a POI over a community on equal scores: POIs are the smaller places.
        options.sort(key=lambda o: (-o[0], o[1] != "poi"))
        _, kind, match = options[0]
        part = parsed.poi_part
        if kind == "community":
            geom = self.communities[match.name]
            point = geom.representative_point()
            confidence = CONFIDENCE["community"] * match.factor
            method, note = "community", f"按社区“{match.name}”范围内一点定位"
        else:
            point, confidence, note = self._place_at(match.name, part)
            confidence *= match.factor
            note = f"{match.name}{part or ''}：{note}"
            method = "alias" if match.via_alias else "poi"
        lon, lat = self._wgs(point)
        candidates = [_cand(match.name, kind, lon, lat, confidence)]
        for _, other_kind, other in options[1:]:
            table = self.pois if other_kind == "poi" else self.communities
            candidates.append(
                _cand(other.name, other_kind, *self._wgs(_anchor(table[other.name])), 0.0)
            )
        for tied in match.tied:
            table = self.pois if kind == "poi" else self.communities
            candidates.append(_cand(tied, kind, *self._wgs(_anchor(table[tied])), 0.0))
        if match.tied:
            note += "；名称有多个相近匹配：" + "、".join(match.tied)
        return GeocodeResult(lon, lat, method, confidence, candidates, norm, note)


def geocode_address(text: str, *, geocoder: Geocoder) -> GeocodeResult:
    """Geocode one address with a prepared :class:`Geocoder` (see its method)."""
    return geocoder.geocode_address(text)


# ---------------------------------------------------------------------- helpers


def _none(norm: str, message: str) -> GeocodeResult:
    return GeocodeResult(None, None, "none", 0.0, [], norm, message)


def _cand(name: str, kind: str, lon: float, lat: float, score: float) -> dict[str, Any]:
    return {"name": name, "kind": kind, "lon": lon, "lat": lat, "score": round(score, 3)}


def _anchor(geom: BaseGeometry) -> Point:
    return geom if isinstance(geom, Point) else geom.representative_point()


def _edge_point(geom: BaseGeometry, anchor: Point, azimuth: float) -> Point | None:
    """Walk from a point inside an area toward ``azimuth`` to its outer edge; 2 m short."""
    direction = _unit(azimuth)
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon"]
    if not parts:
        return None
    # Outer rings only: a courtyard (a multipolygon's inner ring) is not the area's edge.
    rings = shapely.MultiLineString([p.exterior for p in parts])
    far = np.array(anchor.coords[0]) + direction * 10_000.0
    points = _points_of(LineString([anchor.coords[0], far]).intersection(rings))
    if not points:
        return None
    edge = min(points, key=anchor.distance)
    return Point(*(np.array(edge.coords[0]) - direction * EDGE_INSET_M))


def _place_at_poi(
    geom: BaseGeometry, part: str | None, front: tuple[float, str] | None = None
) -> tuple[Point, float, str]:
    """Place a part of a place ("北门", "对面" ...); ``front`` is what :meth:`_front_of` gives."""
    anchor = _anchor(geom)
    side = _GATES.get(part or "")
    if side is not None:
        if geom.area > 0:
            # Walk from the centre to the polygon's edge on that side: the gate is there.
            edge = _edge_point(geom, anchor, _AZIMUTH[side])
            if edge is not None:
                return edge, CONFIDENCE["poi_gate"], f"{side}侧边界处"
        direction = _unit(_AZIMUTH[side])
        moved = np.array(anchor.coords[0]) + direction * GATE_OFFSET_M
        return Point(*moved), CONFIDENCE["poi_gate"], f"向{side}偏移 {GATE_OFFSET_M:g} 米"
    if part in _NEAR_PARTS:
        if front is not None and part in _EDGE_PARTS:
            azimuth, road = front
            back = part in _BACK_PARTS
            edge = _edge_point(geom, anchor, (azimuth + 180.0) % 360.0 if back else azimuth)
            if edge is not None:
                where = f"背向{road}一侧" if back else f"临{road}一侧"
                return edge, CONFIDENCE["poi_near"], f"问题在其附近，取{where}边界处"
        return anchor, CONFIDENCE["poi_near"], "问题在其附近，取该地点"
    return anchor, CONFIDENCE["poi"], "取该地点"


def _place_number(
    numbers: np.ndarray, xy: np.ndarray, number: int
) -> tuple[np.ndarray | None, str, str]:
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


def _check_layer(gdf: gpd.GeoDataFrame, label: str, columns: Sequence[str]) -> None:
    if gdf.crs is None:
        msg = f"{label}图层没有坐标参考系 (CRS)"
        raise LayerReadError(msg)
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        msg = f"{label}图层缺少字段: {', '.join(missing)}"
        raise LayerReadError(msg)


def _centre_wgs84(gdf: gpd.GeoDataFrame) -> tuple[float, float]:
    minx, miny, maxx, maxy = gdf.to_crs(WGS84).total_bounds
    if not np.all(np.isfinite([minx, miny, maxx, maxy])):
        msg = "道路图层为空或没有有效几何"
        raise LayerReadError(msg)
    return (minx + maxx) / 2.0, (miny + maxy) / 2.0


def _group_geoms(gdf: gpd.GeoDataFrame, column: str, *, lines: bool) -> dict[str, BaseGeometry]:
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    out: dict[str, BaseGeometry] = {}
    # Roads are keyed like queries are normalised; places as written (the normalised
    # spelling is added as a second key by the caller).
    key = _name_key if lines else _light_key
    for name, group in gdf.groupby(gdf[column].map(key)):
        if not name or name in ("nan", "None"):
            continue
        geoms = list(group.geometry)
        if lines:
            geoms = [g for g in geoms if g.geom_type in ("LineString", "MultiLineString")]
            if not geoms:
                continue
        elif len(geoms) > 1:
            # A place mapped twice, as a point and as its area: the area is the place.
            areas = [g for g in geoms if g.area > 0]
            if areas:
                whole = shapely.unary_union(areas).buffer(5)
                geoms = [g for g in geoms if g.area > 0 or not whole.contains(g)]
        out[name] = geoms[0] if len(geoms) == 1 else shapely.unary_union(geoms)
    return out


def _with_footprints(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return a POI layer with each point that has a ``footprint`` replaced by that area.

    A footprint that does not parse or is not a polygon is ignored (the point stays).
    """
    if "footprint" not in gdf.columns:
        return gdf
    texts = gdf["footprint"].to_numpy(dtype=object)
    has = np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)
    if not has.any():
        return gdf
    areas = np.full(len(gdf), None, dtype=object)
    areas[has] = shapely.from_wkt(texts[has], on_invalid="ignore")
    polygonal = np.array(
        [
            a is not None and a.geom_type in ("Polygon", "MultiPolygon") and not a.is_empty
            for a in areas
        ],
        dtype=bool,
    )
    if not polygonal.any():
        return gdf
    fixed = areas[polygonal]
    invalid = ~shapely.is_valid(fixed)
    if invalid.any():
        fixed[invalid] = shapely.make_valid(fixed[invalid])
    geoms = gdf.geometry.to_numpy().copy()
    geoms[polygonal] = fixed
    return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))


def _plate_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the door plates of a layer as ``street``/``number`` points (same CRS)."""
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    present = [c for c in (*STREET_FIELDS, *NUMBER_FIELDS, *ADDRESS_FIELDS) if c in columns]
    if not present:
        return gpd.GeoDataFrame({"street": [], "number": []}, geometry=[], crs=gdf.crs)
    if "street" in columns and "number" in columns:
        # The project's own door-plate form (the demo's, an OSM import's): no parsing.
        numbers = gpd.pd.to_numeric(gdf["number"], errors="coerce")
        if numbers.notna().all() and gdf["street"].notna().all():
            points = gdf.geometry.where(gdf.geom_type == "Point", gdf.representative_point())
            return gpd.GeoDataFrame(
                {"street": gdf["street"].to_numpy(), "number": numbers.to_numpy()},
                geometry=points.to_numpy(),
                crs=gdf.crs,
            )
    # Only rows with a value in one of the fields are worth a look (POIs, buildings).
    gdf = gdf[gdf[present].notna().any(axis=1)]
    streets, numbers, geoms = [], [], []
    for record, geom in zip(gdf[columns].to_dict("records"), gdf.geometry, strict=True):
        plate = door_plate_fields(record)
        if plate is not None:
            streets.append(plate[0])
            numbers.append(plate[1])
            geoms.append(geom if isinstance(geom, Point) else geom.representative_point())
    return gpd.GeoDataFrame({"street": streets, "number": numbers}, geometry=geoms, crs=gdf.crs)


def _layer_aliases(gdf: gpd.GeoDataFrame | None, *, known: set[str]) -> dict[str, str]:
    """Return alias → name from a layer's ``alt_name``-like fields (own names excluded)."""
    if gdf is None or not len(gdf) or "name" not in gdf.columns:
        return {}
    fields = [c for c in ALIAS_FIELDS if c in gdf.columns]
    out: dict[str, str] = {}
    for field_name in fields:
        for name, value in zip(gdf["name"], gdf[field_name], strict=True):
            if name is None or value is None or name != name or value != value:
                continue
            # One field may hold several names: "二中;实验中学".
            for alias in str(value).replace("；", ";").split(";"):
                alias = _light_key(alias)
                if alias and alias not in known and _name_key(alias) not in known:
                    out.setdefault(alias, str(name))
    return out


def _index_plates(gdf: gpd.GeoDataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    numbers = gpd.pd.to_numeric(gdf["number"], errors="coerce")
    gdf = gdf[numbers.notna()].assign(number=numbers[numbers.notna()].astype(int))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for street, group in gdf.groupby(gdf["street"].map(_name_key)):
        if not street:
            continue
        points = group.geometry.representative_point()
        xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
        out[street] = (group["number"].to_numpy(dtype=int), xy)
    return out
