"""The geocoder: one index of the county's layers answering many addresses.

:class:`Geocoder` is built once (:meth:`Geocoder.from_layers`, see
:mod:`gis.geocode.layers`), matches names with :class:`gis.geocode.names.NameIndex`,
places with the rules of :mod:`gis.geocode.place` (caching crossings, road middles and
POI parts between calls) and answers with a :class:`gis.geocode.result.GeocodeResult`.
The method table is in the package docstring (:mod:`gis.geocode`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from gis.address import ParsedAddress, normalize_address, parse_address
from gis.crs import WGS84
from gis.geocode.layers import index_layers
from gis.geocode.names import Match, NameIndex, name_key
from gis.geocode.place import (
    CENTRE_OFFSET_M,
    EDGE_PARTS,
    SHORT_ROAD_M,
    anchor,
    arm_azimuths,
    corner_point,
    crossings,
    facing_road,
    merged_parts,
    place_at_poi,
    place_number,
    road_middle,
    sector_point,
)
from gis.geocode.result import CONFIDENCE, GeocodeResult, candidate, no_result


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
        keyed = {name_key(alias): name_key(target) for alias, target in (aliases or {}).items()}
        tables = {"road": roads, "poi": pois, "community": communities, "street": plates}
        self._names = NameIndex(tables, keyed)
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
        layers = index_layers(
            roads=roads, pois=pois, communities=communities, addresses=addresses, buildings=buildings
        )
        return cls(
            crs=layers.crs,
            roads=layers.roads,
            pois=layers.pois,
            communities=layers.communities,
            plates=layers.plates,
            aliases={**layers.aliases, **(aliases or {})},
            strip_prefixes=strip_prefixes,
        )

    # ------------------------------------------------------------------ matching

    def match_name(self, query: str, *, kind: str) -> Match | None:
        """Return the best known name of a kind for a query, or None below the cut-off."""
        return self._names.match(query, kind=kind)

    # ------------------------------------------------------------------ geometry

    def _wgs(self, point: Point | np.ndarray) -> tuple[float, float]:
        x, y = (point.x, point.y) if isinstance(point, Point) else (point[0], point[1])
        lon, lat = self._to_wgs.transform(x, y)
        return round(float(lon), 7), round(float(lat), 7)

    def _crossings(self, a: str, b: str) -> list[Point]:
        key = (a, b) if a <= b else (b, a)
        if key not in self._cross_cache:
            self._cross_cache[key] = crossings(self.roads[a], self.roads[b])
        return self._cross_cache[key]

    def _rays(self, centre: Point, names: Sequence[str]) -> list[float]:
        """Return azimuths (degrees) of the road arms leaving a crossing."""
        return arm_azimuths(centre, [self.roads[name] for name in names])

    def _road_middle(self, name: str) -> Point:
        if name not in self._mid_cache:
            self._mid_cache[name] = road_middle(self.roads[name])
        return self._mid_cache[name]

    def _place_at(self, name: str, part: str | None) -> tuple[Point, float, str]:
        """Place a part of a known POI ("北门", "对面" ...), cached per name and part."""
        key = (name, part)
        if key not in self._place_cache:
            geom = self.pois[name]
            front = self._front_of(name, geom) if part in EDGE_PARTS else None
            self._place_cache[key] = place_at_poi(geom, part, front)
        return self._place_cache[key]

    def _front_of(self, name: str, geom: BaseGeometry) -> tuple[float, str] | None:
        """Return (azimuth from the area's inner point to the road it faces, road name).

        None for a point POI or an area with no named road within ``FRONT_MAX_M``.
        """
        if geom.area <= 0:
            return None
        if name not in self._front_cache:
            if self._road_tree is None:
                names = list(self.roads)
                self._road_tree = (names, shapely.STRtree([self.roads[n] for n in names]))
            self._front_cache[name] = facing_road(geom, self.roads, *self._road_tree)
        return self._front_cache[name]

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
            return no_result(norm, f"地址“{text}”没有可定位的道路、门牌或地名，需人工定位")
        result = handler(parsed)
        result.confidence = round(max(0.0, min(1.0, result.confidence)), 3)
        result.candidates = result.candidates[:5]
        return result

    def _split_pair(self, text: str) -> tuple[Match, Match] | None:
        """Split "人民建设" into two known road names, trying every split point."""
        best: tuple[float, Match, Match] | None = None
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
        pair: tuple[Match, Match] | None = None
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
            return no_result(norm, f"未找到交叉口的道路“{parsed.road}”“{parsed.cross_road}”")
        ma, mb = pair
        crossings = self._crossings(ma.name, mb.name)
        if not crossings:
            result = self._road_result(ma, norm, note=f"“{ma.name}”与“{mb.name}”不相交")
            result.confidence = min(result.confidence, 0.3)
            return result
        centre = crossings[0]
        names = (ma.name, mb.name)
        if parsed.corner:
            point = corner_point(centre, self._rays(centre, names), parsed.corner)
            key = "intersection_corner" if len(parsed.corner) == 2 else "intersection_side"
            note = f"{ma.name}与{mb.name}交叉口{parsed.corner}"
        else:
            rays = self._rays(centre, names)
            point = sector_point(centre, rays, 45.0, CENTRE_OFFSET_M)
            key = "intersection"
            note = f"{ma.name}与{mb.name}交叉口，未注明方位，取交叉口东北侧 {CENTRE_OFFSET_M:g} 米"
        confidence = CONFIDENCE[key] * ma.factor * mb.factor
        if len(crossings) > 1:
            confidence *= 0.7
            note += f"；两路有 {len(crossings)} 处相交，取第一处"
        lon, lat = self._wgs(point)
        candidates = [candidate(f"{ma.name}/{mb.name}", "intersection", lon, lat, confidence)]
        for other in crossings[1:]:
            candidates.append(
                candidate(f"{ma.name}/{mb.name}", "intersection", *self._wgs(other), confidence * 0.9)
            )
        for tied in ma.tied + mb.tied:
            candidates.append(candidate(tied, "road", *self._wgs(self._road_middle(tied)), 0.0))
        if ma.tied or mb.tied:
            note += "；道路名有多个相近匹配：" + "、".join(ma.tied + mb.tied)
        return GeocodeResult(lon, lat, "intersection", confidence, candidates, norm, note)

    def _geocode_segment(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        road = self.match_name(parsed.road or "", kind="road")
        if road is None:
            return no_result(norm, f"未找到路段所在道路“{parsed.road}”")
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
        parts = merged_parts(self.roads[road.name])
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
            [candidate(road.name, "segment", lon, lat, confidence)],
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
            point, key, note = place_number(numbers, xy, number)
            if point is not None:
                confidence = CONFIDENCE[key] * street.factor
                lon, lat = self._wgs(point)
                return GeocodeResult(
                    lon,
                    lat,
                    "house_number",
                    confidence,
                    [candidate(f"{street.name}{number}号", "house_number", lon, lat, confidence)],
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
            return no_result(norm, f"未找到门牌所在道路“{parsed.road}”")
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
        self, road: Match, norm: str, *, note: str, whole: bool = False
    ) -> GeocodeResult:
        """Answer with the road's middle; ``whole`` when the address names only the road."""
        point = self._road_middle(road.name)
        short = whole and self.roads[road.name].length <= SHORT_ROAD_M
        confidence = CONFIDENCE["short_road" if short else "road"] * road.factor
        if short:
            note += f"（道路短于 {SHORT_ROAD_M:g} 米）"
        lon, lat = self._wgs(point)
        candidates = [candidate(road.name, "road", lon, lat, confidence)]
        for tied in road.tied:
            candidates.append(candidate(tied, "road", *self._wgs(self._road_middle(tied)), 0.0))
        method = "alias" if road.via_alias else "road"
        return GeocodeResult(lon, lat, method, confidence, candidates, norm, note)

    def _geocode_place(self, parsed: ParsedAddress) -> GeocodeResult:
        norm = parsed.normalized
        query = parsed.poi or ""
        options: list[tuple[float, str, Match]] = []
        for kind in ("poi", "community"):
            match = self.match_name(query, kind=kind)
            if match is not None:
                options.append((match.score, kind, match))
        if not options:
            road = self.match_name(query, kind="road")
            if road is not None:
                return self._road_result(road, norm, note=f"按道路“{road.name}”取中点")
            return no_result(norm, f"未找到地点“{query}”，需人工定位")
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
        candidates = [candidate(match.name, kind, lon, lat, confidence)]
        for _, other_kind, other in options[1:]:
            table = self.pois if other_kind == "poi" else self.communities
            candidates.append(
                candidate(other.name, other_kind, *self._wgs(anchor(table[other.name])), 0.0)
            )
        for tied in match.tied:
            table = self.pois if kind == "poi" else self.communities
            candidates.append(candidate(tied, kind, *self._wgs(anchor(table[tied])), 0.0))
        if match.tied:
            note += "；名称有多个相近匹配：" + "、".join(match.tied)
        return GeocodeResult(lon, lat, method, confidence, candidates, norm, note)


def geocode_address(text: str, *, geocoder: Geocoder) -> GeocodeResult:
    """Geocode one address with a prepared :class:`Geocoder` (see its method)."""
    return geocoder.geocode_address(text)

