"""Generate the demo county seat: run every stage with one seeded generator.

The demo town (云岭县县城, in 云岭镇) lies in a valley that runs south-west to north-east
along a meandering river (南溪河). ``geometry`` draws its boundary, river, streets and
communities in a valley frame; ``places`` numbers the door plates and places the POIs;
``units`` invents the responsible units; ``problems`` writes the cross-inspection workbook
and months of history. ``generate_demo_town`` runs them in order and maps everything to
WGS-84.

Nothing here is real: the county, its streets, units and problems are invented. Every
random choice comes from one seeded generator, so the same call gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import Point
from shapely.ops import substring

from gis.crs import utm_crs_for
from gis.demo_town.data import (
    COUNTY_CODE,
    COUNTY_NAME,
    PREFECTURE,
    PROVINCE,
    RIVER_NAME,
    SEAT_NAME,
    read_categories,
)
from gis.demo_town.geometry import (
    CENTER_LAT,
    CENTER_LON,
    NamePool,
    Valley,
    build_boundary,
    build_partition,
    build_river,
    draw_streets,
    node_streets,
)
from gis.demo_town.places import Streets, build_addresses, place_pois
from gis.demo_town.problems import Places, build_history, build_workbook
from gis.demo_town.units import build_units

SEED = int(COUNTY_CODE)


@dataclass
class DemoTown:
    """Everything the demo county seat consists of (GeoDataFrames in EPSG:4326).

    ``workbook_rows`` are tuples in the column order of the standard problem workbook
    (问题清单): seq, description, place, category, unit, found, deadline, lon, lat, note.
    The header itself belongs to the importer, which writes and reads the sheet.
    """

    county: dict
    boundary: gpd.GeoDataFrame
    river: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    subdistricts: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    addresses: gpd.GeoDataFrame
    units: list[dict]
    workbook_title: str
    workbook_rows: list[tuple]
    truth: list[dict]
    history: list[dict]
    extra: dict = field(default_factory=dict)


def _round_geom(geom):
    return shapely.transform(geom, lambda c: np.round(c, 7))


def _frame(rows: list[dict], *, to_wgs) -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=None)
    geoms = [_round_geom(shapely.transform(g, to_wgs)) for g in gdf.geometry]
    return gpd.GeoDataFrame(gdf.drop(columns="geometry"), geometry=geoms, crs="EPSG:4326")


def generate_demo_town(
    *, county_code: str = COUNTY_CODE, seed: int = SEED, categories_path: Path | None = None
) -> DemoTown:
    """Generate the synthetic demo county seat.

    Parameters
    ----------
    county_code : str
        Six-digit GB/T 2260 county code written into ``county.json`` and the
        sub-district records. The default ``532599`` is fictitious (53 云南, 25 红河州).
    seed : int
        Seed of the one random generator; the same seed gives the same town.
    categories_path : Path, optional
        The category table (see ``read_categories``); defaults to ``layers/categories.csv``.

    Returns
    -------
    DemoTown
        Layers as GeoDataFrames in EPSG:4326 (coordinates rounded to 7 decimals),
        units, the cross-inspection workbook rows with their truth, and
        months of problem history.
    """
    if not (len(county_code) == 6 and county_code.isdigit()):
        msg = f"县级行政区划代码应为 6 位数字: {county_code!r}"
        raise ValueError(msg)
    categories = read_categories(categories_path)
    rng = np.random.default_rng(seed)
    utm = utm_crs_for(CENTER_LON, CENTER_LAT)
    fwd = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    inv = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    e0, n0 = fwd.transform(CENTER_LON, CENTER_LAT)
    valley = Valley(e0=e0, n0=n0)

    def to_wgs(coords: np.ndarray) -> np.ndarray:
        x, y = inv.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def to_lonlat(p: Point) -> tuple[float, float]:
        x, y = inv.transform(p.x, p.y)
        return round(float(x), 7), round(float(y), 7)

    boundary = build_boundary(valley, rng)
    river_line, water = build_river(valley)
    pool = NamePool(rng)
    sources, majors, _levels = draw_streets(valley, rng, pool)
    segments, _ = node_streets(sources, boundary=boundary, water=water)

    rows, refs = [], {}
    for seg, idx in segments:
        src = sources[idx]
        d = src.line.project(seg.interpolate(0.5, normalized=True))
        name, highway = src.name_at(d)
        bridge = "yes" if water.contains(seg.interpolate(0.5, normalized=True)) else "no"
        rows.append(
            {
                "name": name,
                "highway": highway,
                "oneway": src.oneway,
                "bridge": bridge,
                "side": src.side,
                "s_mid": src.s_mid,
                "geometry": seg,
            }
        )
    for src in sources:
        start = 0.0
        for end, name, _hw in src.names:
            if name not in refs:
                refs[name] = substring(src.line, start, end)
            start = end
    roads_m = gpd.GeoDataFrame(rows, geometry="geometry")
    # Sort for a stable, readable file: by street, then along the valley.
    roads_m["_along"] = [valley.along(g.centroid.x, g.centroid.y) for g in roads_m.geometry]
    roads_m = roads_m.sort_values(["name", "_along"], kind="stable").reset_index(drop=True)
    streets = Streets(roads_m, refs)

    inner = boundary.buffer(-3.0)
    water_zone = water.buffer(8.0)
    plates = build_addresses(streets, inner=inner, water_zone=water_zone)
    pois = place_pois(rng, streets, roads_m, inner=inner, water_zone=water_zone, valley=valley)

    sub_rows, com_rows = build_partition(boundary, river_line, majors, valley, county_code)
    com_tree = shapely.STRtree([c["geometry"] for c in com_rows])

    def locate_community(p: Point) -> dict | None:
        hits = com_tree.query(p, predicate="intersects")
        return com_rows[int(min(hits))] if len(hits) else None

    for poi in pois:
        com = locate_community(poi["geometry"])
        poi["subdistrict_code"] = com["subdistrict_code"]
        poi["community_code"] = com["code"]
    units = build_units(rng, com_rows, categories)
    places = Places(streets, pois, plates)
    wb_rows, truth = build_workbook(
        rng,
        places,
        to_lonlat=to_lonlat,
        locate_community=locate_community,
        units=units,
        categories=categories,
    )
    history = build_history(rng, places, to_lonlat=to_lonlat, categories=categories)

    center_lon, center_lat = to_lonlat(boundary.centroid)
    county = {
        "county_code": county_code,
        "county_name": COUNTY_NAME,
        "seat_name": SEAT_NAME,
        "province": PROVINCE,
        "prefecture": PREFECTURE,
        "center": [center_lon, center_lat],
        "utm_epsg": int(utm.to_epsg()),
        "synthetic": True,
    }

    river_rows = [
        {"name": RIVER_NAME, "kind": "water", "geometry": water},
        {"name": RIVER_NAME, "kind": "centerline", "geometry": river_line},
    ]
    road_out = roads_m[["name", "highway", "oneway", "bridge", "geometry"]].to_dict("records")
    poi_out = [
        {
            k: p[k]
            for k in ("name", "type", "address", "subdistrict_code", "community_code", "geometry")
        }
        for p in pois
    ]
    plates_sorted = sorted(plates, key=lambda r: (r["street"], r["number"]))
    return DemoTown(
        county=county,
        boundary=_frame(
            [{"name": f"{COUNTY_NAME}县城建成区", "kind": "builtup", "geometry": boundary}],
            to_wgs=to_wgs,
        ),
        river=_frame(river_rows, to_wgs=to_wgs),
        roads=_frame(road_out, to_wgs=to_wgs),
        subdistricts=_frame(sub_rows, to_wgs=to_wgs),
        communities=_frame(com_rows, to_wgs=to_wgs),
        pois=_frame(poi_out, to_wgs=to_wgs),
        addresses=_frame(plates_sorted, to_wgs=to_wgs),
        units=units,
        workbook_title=f"{COUNTY_NAME}2026年10-11月州级交叉检查反馈问题清单",
        workbook_rows=wb_rows,
        truth=truth,
        history=history,
    )
