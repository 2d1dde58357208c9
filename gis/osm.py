"""Read a county's OpenStreetMap extract into the project's layers.

One streaming pass of pyosmium (node locations kept in memory, areas assembled by
libosmium's multipolygon manager) turns an ``.osm``, ``.osm.gz``, ``.osm.bz2`` or
``.osm.pbf`` file into GeoDataFrames in EPSG:4326:

- ``roads``: every ``highway=*`` way, named or not (the router and the grid builder
  need the whole network);
- ``pois``: named nodes and named areas with a tag of interest, typed with the
  project's vocabulary (学校, 医院, 农贸市场 ...);
- ``buildings``: ``building=*`` closed ways and multipolygon relations;
- ``boundary``: ``boundary=administrative`` relations assembled into polygons;
- ``water``: river/lake polygons and waterway lines;
- ``addresses``: door plates, one point per object with ``addr:street`` and
  ``addr:housenumber`` (nodes, and buildings or areas at a point inside them), in the
  ``street``/``number`` form of the county's own door-plate layer.

POIs carry their ``alt_name``, ``old_name``, ``short_name`` and ``official_name`` so
the geocoder can reach a place by any name people use; named buildings without a tag
of interest (大厦, 商场 ...) are POIs of type 建筑.

A POI mapped as an area (a school, market or park drawn as a closed way or a
multipolygon) stays a point in ``pois`` (a point inside the area, which the rest of
the project expects), and its polygon travels in the ``footprint`` column as WKT
(WGS-84, 7 decimals), so the geocoder can put "XX中学北门" or "XX市场东侧" on the
right edge of the area. Nodes have no footprint (None).

An export from openstreetmap.org cuts relations at its bounds: a relation whose member
ways are missing cannot be closed into a polygon. Such relations are skipped and named
in :attr:`OsmLayers.warnings` rather than failing the whole import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from osmium.filter import KeyFilter
from shapely.geometry import MultiPolygon, Polygon

from gis.address import normalize_address
from gis.crs import WGS84, utm_crs_for_geom
from gis.errors import GridBuildError, LayerReadError

LAYER_NAMES = ("boundary", "roads", "pois", "buildings", "water", "addresses")

ROAD_COLUMNS = [
    "osm_id",
    "name",
    "highway",
    "ref",
    "oneway",
    "lanes",
    "bridge",
    "alt_name",
    "old_name",
]
# Other names of one object, in the order a person is likely to use them.
ALIAS_KEYS = ("short_name", "alt_name", "old_name", "official_name", "loc_name")
POI_COLUMNS = [
    "osm_id",
    "osm_type",
    "name",
    "type",
    "osm_tag",
    "addr_street",
    "addr_housenumber",
    *ALIAS_KEYS,
    "footprint",
]
BUILDING_COLUMNS = ["osm_id", "name", "building", "levels", *ALIAS_KEYS]
ADDRESS_COLUMNS = ["osm_id", "street", "number", "housenumber", "name"]
BOUNDARY_COLUMNS = ["osm_id", "name", "admin_level"]
WATER_COLUMNS = ["osm_id", "name", "water", "osm_tag"]

_SUFFIXES = (".osm", ".osm.gz", ".osm.bz2", ".osm.pbf", ".pbf", ".o5m")

# Keys that make an object interesting at all; everything else is dropped in C++ by
# the KeyFilter before Python sees it, which keeps big county extracts fast.
_KEYS = (
    "highway",
    "building",
    "boundary",
    "name",
    "natural",
    "waterway",
    "water",
    "landuse",
    # Door plates on unnamed nodes and buildings ("人民路23号").
    "addr:housenumber",
)

# (key, value) -> project POI type. Value None matches any value of the key.
# Order matters: the first tag of an object found here decides its type.
_POI_RULES: list[tuple[str, str | None, str]] = [
    ("amenity", "marketplace", "农贸市场"),
    ("amenity", "school", "学校"),
    ("amenity", "kindergarten", "学校"),
    ("amenity", "college", "学校"),
    ("amenity", "university", "学校"),
    ("amenity", "hospital", "医院"),
    ("healthcare", "hospital", "医院"),
    ("amenity", "clinic", "诊所"),
    ("amenity", "doctors", "诊所"),
    ("amenity", "dentist", "诊所"),
    ("amenity", "pharmacy", "诊所"),
    ("healthcare", None, "诊所"),
    ("amenity", "restaurant", "餐饮"),
    ("amenity", "fast_food", "餐饮"),
    ("amenity", "cafe", "餐饮"),
    ("amenity", "food_court", "餐饮"),
    ("amenity", "bar", "餐饮"),
    ("tourism", "hotel", "宾馆"),
    ("tourism", "guest_house", "宾馆"),
    ("tourism", "motel", "宾馆"),
    ("tourism", "hostel", "宾馆"),
    ("amenity", "toilets", "公厕"),
    ("amenity", "waste_transfer_station", "垃圾中转站"),
    ("amenity", "waste_disposal", "垃圾收集点"),
    ("amenity", "recycling", "垃圾收集点"),
    ("landuse", "construction", "建筑工地"),
    ("amenity", "bus_station", "车站"),
    ("railway", "station", "车站"),
    ("public_transport", "station", "车站"),
    ("barrier", "border_control", "口岸"),
    ("amenity", "border_control", "口岸"),
    ("landuse", "residential", "居民小区"),
    ("place", "neighbourhood", "居民小区"),
    ("place", "village", "城中村"),
    ("place", "hamlet", "城中村"),
    ("amenity", "cinema", "公共场所"),
    ("amenity", "theatre", "公共场所"),
    ("amenity", "internet_cafe", "公共场所"),
    ("amenity", "karaoke_box", "公共场所"),
    ("amenity", "nightclub", "公共场所"),
    ("amenity", "public_bath", "公共场所"),
    ("amenity", "library", "公共场所"),
    ("leisure", "sports_centre", "公共场所"),
    ("leisure", "swimming_pool", "公共场所"),
    ("leisure", "fitness_centre", "公共场所"),
    ("shop", "hairdresser", "公共场所"),
    ("shop", "beauty", "公共场所"),
    ("shop", "massage", "公共场所"),
    ("office", "government", "机关单位"),
    ("amenity", "townhall", "机关单位"),
    ("amenity", "police", "机关单位"),
    ("amenity", "courthouse", "机关单位"),
    ("leisure", "park", "公园广场"),
    ("place", "square", "公园广场"),
    ("amenity", "parking", "其他"),
]
_POI_LOOKUP = {(k, v): t for k, v, t in _POI_RULES}
# Keys whose other values still make a named object a POI (typed 其他).
_POI_OTHER_KEYS = ("amenity", "shop", "tourism", "leisure", "office", "craft", "healthcare")

_WATER_AREA = {("natural", "water"), ("water", None), ("waterway", "riverbank")}
_WATER_LINES = {"river", "stream", "canal", "drain", "ditch"}


@dataclass
class OsmLayers:
    """The layers read from one OSM file, plus what had to be skipped.

    Attributes
    ----------
    layers : dict of str to GeoDataFrame
        ``boundary``, ``roads``, ``pois``, ``buildings`` and ``water``, all EPSG:4326.
        Every key is present; a layer the file has nothing for is an empty frame
        with the documented columns.
    warnings : list of str
        One Chinese sentence per object that was skipped (relation cut by the export
        bounds, way with missing node locations ...).
    bounds : tuple of float or None
        ``(minlon, minlat, maxlon, maxlat)`` from the file header, if it has one.
    """

    layers: dict[str, gpd.GeoDataFrame]
    warnings: list[str] = field(default_factory=list)
    bounds: tuple[float, float, float, float] | None = None

    def __getitem__(self, key: str) -> gpd.GeoDataFrame:
        return self.layers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.layers

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def keys(self):
        """Return the layer names (with ``__getitem__`` this makes ``dict(layers)`` work)."""
        return self.layers.keys()


def read_osm(path: str | Path) -> OsmLayers:
    """Read an OpenStreetMap file into the project's layers.

    Parameters
    ----------
    path : str or Path
        An ``.osm``, ``.osm.gz``, ``.osm.bz2`` or ``.osm.pbf`` file.

    Returns
    -------
    OsmLayers
        Mapping-like: ``read_osm(p)["roads"]`` is the roads GeoDataFrame. Skipped
        objects are listed in ``.warnings``.

    Raises
    ------
    LayerReadError
        If the file is missing, has an unknown suffix or cannot be parsed.

    Notes
    -----
    ``oneway`` is normalised to ``"yes"``/``"no"``: ``oneway=-1`` ways are reversed so
    that their direction of travel is the geometry's direction; motorways and
    roundabouts are one-way unless tagged otherwise.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"找不到 OSM 文件: {path}"
        raise LayerReadError(msg)
    if not path.name.lower().endswith(_SUFFIXES):
        msg = f"不是 OSM 文件 (应为 .osm / .osm.gz / .osm.bz2 / .osm.pbf): {path.name}"
        raise LayerReadError(msg)

    rows: dict[str, list[dict]] = {name: [] for name in LAYER_NAMES}
    warnings: list[str] = []
    wanted_relations: dict[int, str] = {}
    assembled_relations: set[int] = set()
    wkb = osmium.geom.WKBFactory()

    try:
        processor = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_areas()
            # POI-only keys are not in _KEYS: unnamed POIs are dropped anyway.
            .with_filter(KeyFilter(*_KEYS))
        )
        for obj in processor:
            if obj.is_area():
                _take_area(obj, wkb, rows, warnings, assembled_relations)
            elif obj.is_way():
                _take_way(obj, wkb, rows, warnings)
            elif obj.is_node():
                _take_node(obj, wkb, rows)
            elif obj.is_relation():
                label = _relation_interest(obj.tags)
                if label:
                    wanted_relations[obj.id] = label
        bounds = _read_bounds(path)
    except (RuntimeError, ValueError, OSError) as exc:
        # libosmium reports parse errors as RuntimeError with an English message.
        msg = f"无法解析 OSM 文件 {path.name}: {exc}"
        raise LayerReadError(msg) from exc

    for rel_id, label in sorted(wanted_relations.items()):
        if rel_id not in assembled_relations:
            warnings.append(f"关系 relation/{rel_id} ({label}) 成员不完整或无法闭合，已跳过")

    layers = {
        "boundary": _frame(rows["boundary"], BOUNDARY_COLUMNS),
        "roads": _frame(rows["roads"], ROAD_COLUMNS),
        "pois": _frame(rows["pois"], POI_COLUMNS),
        "buildings": _frame(rows["buildings"], BUILDING_COLUMNS),
        "water": _frame(rows["water"], WATER_COLUMNS),
        "addresses": _frame(rows["addresses"], ADDRESS_COLUMNS),
    }
    layers["roads"]["lanes"] = layers["roads"]["lanes"].astype("Int64")
    layers["buildings"]["levels"] = layers["buildings"]["levels"].astype("Int64")
    layers["addresses"]["number"] = layers["addresses"]["number"].astype("Int64")
    if not layers["boundary"].empty:
        layers["boundary"]["admin_level"] = layers["boundary"]["admin_level"].astype("Int64")
    return OsmLayers(layers=layers, warnings=warnings, bounds=bounds)


def derive_builtup_boundary(
    roads: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame | None = None,
    *,
    buffer_m: float = 80.0,
    shrink_m: float | None = None,
    max_hole_m2: float = 200_000.0,
) -> Polygon:
    """Derive a built-up outline from roads and buildings (not an official boundary).

    OSM rarely maps a town's built-up limit, so the outline is approximated: every
    road and building is buffered by ``buffer_m`` in the local UTM zone, the buffers
    are unioned, shrunk back by ``shrink_m`` (a morphological closing that bridges
    gaps between parallel streets), holes smaller than ``max_hole_m2`` are filled and
    the largest connected part is kept.

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines in any CRS with a CRS set.
    buildings : GeoDataFrame, optional
        Building footprints; may be None or empty.
    buffer_m : float
        Outward buffer in metres.
    shrink_m : float, optional
        Inward buffer after the union; defaults to half of ``buffer_m``.
    max_hole_m2 : float
        Holes smaller than this (m²) are closed; larger ones (a lake, a big field)
        stay open.

    Returns
    -------
    Polygon
        A valid polygon in EPSG:4326.

    Raises
    ------
    GridBuildError
        If there is no geometry to derive an outline from.
    """
    frames = [f for f in (roads, buildings) if f is not None and not f.empty]
    if not frames:
        msg = "没有道路或建筑，无法推导建成区范围"
        raise GridBuildError(msg)
    geoms = []
    for frame in frames:
        if frame.crs is None:
            msg = "道路/建筑图层没有坐标参考系 (CRS)，无法推导建成区范围"
            raise GridBuildError(msg)
        geoms.extend(frame.to_crs(WGS84).geometry.dropna().tolist())
    utm = utm_crs_for_geom(shapely.box(*shapely.total_bounds(np.asarray(geoms, dtype=object))))
    metric = gpd.GeoSeries(geoms, crs=WGS84).to_crs(utm)
    metric = metric[~metric.is_empty]
    shrink = buffer_m / 2 if shrink_m is None else shrink_m

    grown = shapely.union_all(shapely.buffer(metric.values, buffer_m, quad_segs=4))
    closed = shapely.buffer(grown, -shrink, quad_segs=4) if shrink > 0 else grown
    parts = [p for p in getattr(closed, "geoms", [closed]) if isinstance(p, Polygon)]
    if not parts:
        msg = "建成区推导结果为空 (缓冲距离过小?)"
        raise GridBuildError(msg)
    largest = max(parts, key=lambda p: p.area)
    holes = [ring for ring in largest.interiors if Polygon(ring).area >= max_hole_m2]
    outline = shapely.make_valid(Polygon(largest.exterior, holes))
    if isinstance(outline, MultiPolygon):
        outline = max(outline.geoms, key=lambda p: p.area)
    result = gpd.GeoSeries([outline], crs=utm).to_crs(WGS84).iloc[0]
    return shapely.make_valid(result) if not result.is_valid else result


# --------------------------------------------------------------------------- internals


def _read_bounds(path: Path) -> tuple[float, float, float, float] | None:
    reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
    try:
        box = reader.header().box()
    finally:
        reader.close()
    if not box.valid():
        return None
    return (
        box.bottom_left.lon,
        box.bottom_left.lat,
        box.top_right.lon,
        box.top_right.lat,
    )


def _frame(rows: list[dict], columns: list[str]) -> gpd.GeoDataFrame:
    if not rows:
        return gpd.GeoDataFrame(
            {c: [] for c in columns}, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84
        )
    frame = pd.DataFrame(rows)
    geoms, areas = _finish_geometries(frame)
    if "footprint" in columns:
        frame["footprint"] = _footprints(frame, areas)
    gdf = gpd.GeoDataFrame(frame[columns], geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    return gdf


def _finish_geometries(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Turn the collected WKB into shapely geometries, all rows at once.

    Parsing, repairing and unwrapping per object from Python dominated the import time
    of a large county, so rows carry WKB plus flags and the work is vectorised here.
    Returns the layer's geometries and, for rows flagged ``point``, the repaired
    area each point was taken from (the other rows hold the same geometry).
    """
    # WKBFactory hands out hex; decoding it in Python first is 2-3x faster for GEOS.
    geoms = shapely.from_wkb(np.array([bytes.fromhex(h) for h in frame["wkb"]], dtype=object))
    reverse = frame["reverse"].to_numpy(dtype=bool) if "reverse" in frame else None
    if reverse is not None and reverse.any():
        geoms[reverse] = shapely.reverse(geoms[reverse])
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    invalid = polygonal & ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    # A single-part area is stored as a Polygon, which is what shapefiles and the grid
    # builder expect; true multipolygons stay MultiPolygon.
    single = (shapely.get_type_id(geoms) == 6) & (shapely.get_num_geometries(geoms) == 1)
    if single.any():
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    areas = geoms.copy()
    if "point" in frame:
        point = frame["point"].to_numpy(dtype=bool)
        if point.any():
            geoms[point] = shapely.point_on_surface(geoms[point])
    return geoms, areas


def _footprints(frame: pd.DataFrame, areas: np.ndarray) -> list[str | None]:
    """Return the WKT outline of every row that is a point taken from an area."""
    out: list[str | None] = [None] * len(frame)
    if "point" not in frame:
        return out
    point = frame["point"].to_numpy(dtype=bool)
    polygonal = np.isin(shapely.get_type_id(areas), (3, 6)) & ~shapely.is_empty(areas)
    rows = np.flatnonzero(point & polygonal)
    if rows.size:
        texts = shapely.to_wkt(areas[rows], rounding_precision=7, trim=True)
        for i, text in zip(rows, texts, strict=True):
            out[int(i)] = str(text)
    return out


def _tag(tags, key: str) -> str | None:
    value = tags.get(key)
    return value if value not in (None, "") else None


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    # "3;4" or "3.5" appear in OSM; the first number is good enough for lanes/levels.
    match = re.search(r"\d+", value)
    return int(match.group()) if match else None


def _oneway(tags) -> tuple[str, bool]:
    """Return ("yes"|"no", reverse_geometry)."""
    raw = (_tag(tags, "oneway") or "").lower()
    if raw in ("-1", "reverse"):
        return "yes", True
    if raw in ("yes", "true", "1"):
        return "yes", False
    if raw in ("no", "false", "0"):
        return "no", False
    implied = tags.get("highway") in ("motorway", "motorway_link") or tags.get("junction") in (
        "roundabout",
        "circular",
    )
    return ("yes" if implied else "no"), False


def _take_way(way, wkb, rows: dict[str, list[dict]], warnings: list[str]) -> None:
    tags = way.tags
    highway = _tag(tags, "highway")
    waterway = _tag(tags, "waterway")
    if highway is None and waterway not in _WATER_LINES:
        return
    try:
        geom = wkb.create_linestring(way)
    except (osmium.InvalidLocationError, RuntimeError):
        warnings.append(f"way/{way.id} 的节点坐标缺失或重复，无法成线，已跳过")
        return
    name = _tag(tags, "name")
    if highway is not None:
        oneway, reverse = _oneway(tags)
        bridge = _tag(tags, "bridge")
        rows["roads"].append(
            {
                "osm_id": f"way/{way.id}",
                "name": name,
                "highway": highway,
                "ref": _tag(tags, "ref"),
                "oneway": oneway,
                "lanes": _parse_int(_tag(tags, "lanes")),
                "bridge": bridge is not None and bridge != "no",
                "alt_name": _tag(tags, "alt_name"),
                "old_name": _tag(tags, "old_name"),
                "wkb": geom,
                "reverse": reverse,
            }
        )
    if waterway in _WATER_LINES:
        rows["water"].append(
            {
                "osm_id": f"way/{way.id}",
                "name": name,
                "water": waterway,
                "osm_tag": f"waterway={waterway}",
                "wkb": geom,
            }
        )


def _take_node(node, wkb, rows: dict[str, list[dict]]) -> None:
    tags = node.tags
    loc = node.location
    if not loc.valid():
        return
    name = _tag(tags, "name")
    osm_id = f"node/{node.id}"
    plate = _address_row(tags, osm_id, name)
    poi = _poi_type(tags) if name is not None else None
    if plate is None and poi is None:
        return
    point = wkb.create_point(loc)
    if plate is not None:
        rows["addresses"].append({**plate, "wkb": point, "point": False})
    if poi is not None:
        rows["pois"].append(
            {
                "osm_id": osm_id,
                "osm_type": "node",
                "name": name,
                "type": poi[0],
                "osm_tag": poi[1],
                **_poi_extras(tags),
                "wkb": point,
                "point": False,
            }
        )


def _take_area(area, wkb, rows, warnings: list[str], assembled: set[int]) -> None:
    tags = area.tags
    osm_type = "way" if area.from_way() else "relation"
    osm_id = f"{osm_type}/{area.orig_id()}"
    if osm_type == "relation":
        assembled.add(area.orig_id())
    try:
        geom = wkb.create_multipolygon(area)
    except (osmium.InvalidLocationError, RuntimeError):
        warnings.append(f"{osm_id} 无法组成面，已跳过")
        return
    name = _tag(tags, "name")

    if _tag(tags, "boundary") == "administrative" and osm_type == "relation":
        rows["boundary"].append(
            {
                "osm_id": osm_id,
                "name": name,
                "admin_level": _parse_int(_tag(tags, "admin_level")),
                "wkb": geom,
            }
        )
    building = _tag(tags, "building")
    if building is not None and building != "no":
        rows["buildings"].append(
            {
                "osm_id": osm_id,
                "name": name,
                "building": building,
                "levels": _parse_int(_tag(tags, "building:levels")),
                **{key: _tag(tags, key) for key in ALIAS_KEYS},
                "wkb": geom,
            }
        )
    water_tag = _water_area_tag(tags)
    if water_tag is not None:
        rows["water"].append(
            {
                "osm_id": osm_id,
                "name": name,
                "water": water_tag.split("=", 1)[1],
                "osm_tag": water_tag,
                "wkb": geom,
            }
        )
    plate = _address_row(tags, osm_id, name)
    if plate is not None:
        rows["addresses"].append({**plate, "wkb": geom, "point": True})
    if name is not None:
        poi = _poi_type(tags)
        if poi is None and building is not None and building != "no":
            # A named building is a landmark ("XX大厦后面") even with no other tag.
            poi = ("建筑", f"building={building}")
        if poi is not None:
            rows["pois"].append(
                {
                    "osm_id": osm_id,
                    "osm_type": osm_type,
                    "name": name,
                    "type": poi[0],
                    "osm_tag": poi[1],
                    **_poi_extras(tags),
                    "wkb": geom,
                    "point": True,
                }
            )


def _poi_extras(tags) -> dict[str, str | None]:
    extras = {
        "addr_street": _tag(tags, "addr:street"),
        "addr_housenumber": _tag(tags, "addr:housenumber"),
    }
    extras.update({key: _tag(tags, key) for key in ALIAS_KEYS})
    return extras


def _address_row(tags, osm_id: str, name: str | None) -> dict | None:
    """Return a door-plate row for an object with a street and a house number."""
    street = _tag(tags, "addr:street")
    housenumber = _tag(tags, "addr:housenumber")
    if street is None or housenumber is None:
        return None
    number = parse_house_number(housenumber)
    if number is None:
        return None
    return {
        "osm_id": osm_id,
        "street": street.strip(),
        "number": number,
        "housenumber": housenumber,
        "name": name,
    }


def parse_house_number(text: str | None) -> int | None:
    """Return the door number of an ``addr:housenumber`` ("23", "23号", "23-1", "二十三号").

    Parameters
    ----------
    text : str or None
        The tag's value as mapped.

    Returns
    -------
    int or None
        The first number; None when the value has none ("东侧").
    """
    if text is None:
        return None
    value = normalize_address(str(text))
    match = re.search(r"\d+", value)
    return int(match.group()) if match else None


def _water_area_tag(tags) -> str | None:
    for key, value in _WATER_AREA:
        found = _tag(tags, key)
        if found is not None and (value is None or found == value):
            # water=river on a natural=water area names the kind more precisely.
            water = _tag(tags, "water")
            return f"water={water}" if water else f"{key}={found}"
    return None


def _poi_type(tags) -> tuple[str, str] | None:
    """Return (project type, "key=value") for a tagged object, or None if not a POI."""
    for key, value, kind in _POI_RULES:
        found = _tag(tags, key)
        if found is not None and (value is None or found == value):
            return kind, f"{key}={found}"
    for key in _POI_OTHER_KEYS:
        found = _tag(tags, key)
        if found is not None and found != "no":
            return "其他", f"{key}={found}"
    return None


def _relation_interest(tags) -> str | None:
    """Name a relation whose polygon we would use, for the warning if it is incomplete."""
    if tags.get("type") not in ("multipolygon", "boundary"):
        return None
    name = _tag(tags, "name") or "无名"
    if _tag(tags, "boundary") == "administrative":
        return f"行政区划 {name}, admin_level={_tag(tags, 'admin_level')}"
    if _tag(tags, "building"):
        return f"建筑 {name}"
    if _water_area_tag(tags):
        return f"水体 {name}"
    if _poi_type(tags) and _tag(tags, "name"):
        return f"兴趣点 {name}"
    return None
