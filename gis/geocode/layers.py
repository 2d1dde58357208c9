"""Layer preparation: the county's layers as the geocoder's name → geometry tables.

``index_layers`` checks each layer, moves it to the local UTM zone, groups rows by
name (roads keyed like queries are normalised, places as written), replaces POI points
by their ``footprint`` areas, collects the door plates of every layer that has them and
reads the layers' own alias fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from gis.address import ADDRESS_FIELDS, NUMBER_FIELDS, STREET_FIELDS, door_plate_fields
from gis.crs import WGS84, utm_crs_for
from gis.errors import LayerReadError
from gis.geocode.names import light_key, name_key

# Layer fields holding other names of a road or place (OSM keys; 别名/俗称 of county layers).
ALIAS_FIELDS = ("short_name", "alt_name", "old_name", "official_name", "loc_name", "别名", "俗称")


@dataclass(frozen=True)
class IndexedLayers:
    """The tables a :class:`gis.geocode.geocoder.Geocoder` is built from.

    Attributes
    ----------
    crs : pyproj.CRS
        The local UTM zone every geometry is in.
    roads, pois, communities : dict of str to BaseGeometry
        One (merged) geometry per name.
    plates : dict of str to (ndarray, ndarray)
        Street key → (door numbers, their x/y points).
    aliases : dict of str to str
        Alias → name, from the layers' ``alt_name``-like fields.
    """

    crs: CRS
    roads: dict[str, BaseGeometry]
    pois: dict[str, BaseGeometry]
    communities: dict[str, BaseGeometry]
    plates: dict[str, tuple[np.ndarray, np.ndarray]]
    aliases: dict[str, str]


def index_layers(
    *,
    roads: gpd.GeoDataFrame,
    pois: gpd.GeoDataFrame | None = None,
    communities: gpd.GeoDataFrame | None = None,
    addresses: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
) -> IndexedLayers:
    """Index the county's layers (see :meth:`gis.geocode.geocoder.Geocoder.from_layers`).

    Parameters
    ----------
    roads : GeoDataFrame
        Lines with a ``name`` column.
    pois, communities, addresses, buildings : GeoDataFrame, optional
        As :meth:`~gis.geocode.geocoder.Geocoder.from_layers` takes them.

    Returns
    -------
    IndexedLayers

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
        key = name_key(name)
        poi_geoms.setdefault(key, poi_geoms[name])
    layer_aliases: dict[str, str] = {}
    for frame in (roads, pois, buildings):
        layer_aliases.update(_layer_aliases(frame, known={*poi_geoms, *road_geoms}))
    return IndexedLayers(
        crs=crs,
        roads=road_geoms,
        pois=poi_geoms,
        communities=community_geoms,
        plates=plates,
        aliases=layer_aliases,
    )


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
    key = name_key if lines else light_key
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
                alias = light_key(alias)
                if alias and alias not in known and name_key(alias) not in known:
                    out.setdefault(alias, str(name))
    return out


def _index_plates(gdf: gpd.GeoDataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    numbers = gpd.pd.to_numeric(gdf["number"], errors="coerce")
    gdf = gdf[numbers.notna()].assign(number=numbers[numbers.notna()].astype(int))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for street, group in gdf.groupby(gdf["street"].map(name_key)):
        if not street:
            continue
        points = group.geometry.representative_point()
        xy = np.column_stack([points.x.to_numpy(), points.y.to_numpy()])
        out[street] = (group["number"].to_numpy(dtype=int), xy)
    return out
