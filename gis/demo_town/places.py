"""Places of the demo town: door plates (门牌) along the main streets, and the named POIs.

``Streets`` numbers the doors of a street (odd on the left of its direction, even on the
right, ``DOOR_SPACING`` metres of frontage each); ``place_pois`` puts every market,
school, shop, toilet, estate and office beside a street, clear of the roads and the water.
"""

from __future__ import annotations

import math

import cn2an
import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

from gis.demo_town.data import POOLS
from gis.demo_town.geometry import Valley

DOOR_SPACING = 15.0  # metres of frontage per door plate on each side of a street


class Streets:
    """Named streets: their reference lines (for numbering) and final geometry."""

    def __init__(self, roads_m: gpd.GeoDataFrame, refs: dict[str, LineString]) -> None:
        self.refs = refs
        self.geoms = {name: unary_union(list(g.geometry)) for name, g in roads_m.groupby("name")}
        self.highway = roads_m.groupby("name")["highway"].first().to_dict()
        self.tree = shapely.STRtree(list(roads_m.geometry))
        self.roads_m = roads_m

    def number_at(self, name: str, point: Point) -> int:
        """Return the door number of a point beside a street (odd left, even right)."""
        ref = self.refs[name]
        d = ref.project(point)
        index = int(d // DOOR_SPACING)
        a = ref.interpolate(max(0.0, d - 1))
        b = ref.interpolate(min(ref.length, d + 1))
        cross = (b.x - a.x) * (point.y - a.y) - (b.y - a.y) * (point.x - a.x)
        return 2 * index + 1 if cross > 0 else 2 * index + 2

    def plate_point(self, name: str, number: int, *, offset: float = 10.0) -> Point:
        """Return where door ``number`` of a street stands, ``offset`` metres off its line."""
        ref = self.refs[name]
        index = (number - 1) // 2
        d = (index + 0.5) * DOOR_SPACING
        a = ref.interpolate(max(0.0, d - 1))
        b = ref.interpolate(min(ref.length, d + 1))
        dx, dy = b.x - a.x, b.y - a.y
        norm = math.hypot(dx, dy) or 1.0
        sign = 1.0 if number % 2 == 1 else -1.0
        mid = ref.interpolate(d)
        return Point(mid.x - sign * dy / norm * offset, mid.y + sign * dx / norm * offset)


def _clear_spot(
    point: Point, *, streets: Streets, inner: Polygon, water_zone: Polygon, min_gap: float = 5.0
) -> bool:
    if not inner.contains(point) or water_zone.contains(point):
        return False
    near = streets.tree.query(point, predicate="dwithin", distance=min_gap)
    return len(near) == 0


def build_addresses(streets: Streets, *, inner: Polygon, water_zone: Polygon) -> list[dict]:
    """Return the door plates of every primary/secondary/tertiary street (``street, number``)."""
    rows = []
    plated = sorted(
        n for n, h in streets.highway.items() if h in ("primary", "secondary", "tertiary")
    )
    for name in plated:
        ref = streets.refs[name]
        built = streets.geoms[name]
        count = int(ref.length // DOOR_SPACING)
        for index in range(count):
            on_ref = ref.interpolate((index + 0.5) * DOOR_SPACING)
            if built.distance(on_ref) > 1.0:
                continue
            for number in (2 * index + 1, 2 * index + 2):
                p = streets.plate_point(name, number)
                if _clear_spot(p, streets=streets, inner=inner, water_zone=water_zone):
                    rows.append({"street": name, "number": number, "geometry": p})
    return rows


def _poi_names(rng: np.random.Generator) -> list[tuple[str, str, dict]]:
    """Return (name, type, placement hints) for every POI."""
    surnames, foods, hotel_words = POOLS["surnames"], POOLS["foods"], POOLS["hotel_words"]
    out: list[tuple[str, str, dict]] = []
    for name, side, s in POOLS["markets"]:
        out.append((name, "农贸市场", {"side": side, "s": s}))
    for name, side, s in POOLS["stations"]:
        out.append((name, "车站", {"side": side, "s": s}))
    out.append(("云岭口岸", "口岸", {"side": "R", "s": -4250.0}))
    for i, name in enumerate(POOLS["schools"]):
        out.append((name, "学校", {"side": "L" if i % 3 else "R"}))
    for name in POOLS["hospitals"]:
        out.append((name, "医院", {"side": "L", "s": float(rng.uniform(-1500, 1500))}))
    clinics = [f"{c}诊所" for c in rng.choice(list(surnames), 12, replace=False)]
    clinics += [f"{c}社区卫生服务站" for c in POOLS["health_stations"]]
    out += [(c, "诊所", {}) for c in clinics]
    used: set[str] = set()
    patterns = POOLS["food_patterns"]
    while len(used) < 160:
        pattern = patterns[int(rng.integers(len(patterns)))]
        name = pattern.format(
            s=surnames[int(rng.integers(len(surnames)))], f=foods[int(rng.integers(len(foods)))]
        )
        if name not in used:
            used.add(name)
            out.append((name, "餐饮", {"old_town": True}))
    hotels: set[str] = set()
    kinds = POOLS["hotel_kinds"]
    while len(hotels) < 22:
        name = (
            hotel_words[int(rng.integers(len(hotel_words)))]
            + kinds[int(rng.integers(len(kinds)))]
        )
        if name not in hotels:
            hotels.add(name)
            out.append((name, "宾馆", {}))
    out += [(f"第{cn2an.an2cn(i + 1)}公厕", "公厕", {}) for i in range(32)]
    for i, word in enumerate(("城北", "城南", "城东", "城西")):
        out.append(
            (
                f"{word}垃圾中转站",
                "垃圾中转站",
                {"side": "L" if i % 2 == 0 else "R", "s": (3400.0, -3400.0, 2000.0, -2600.0)[i]},
            )
        )
    out += [(f"{i + 1}号垃圾收集点", "垃圾收集点", {}) for i in range(34)]
    out += [(f"{s}工地", "建筑工地", {}) for s in POOLS["construction_sites"]]
    out += [(e, "居民小区", {}) for e in POOLS["estates"]]
    out += [(v, "城中村", {"edge": True}) for v in POOLS["villages"]]
    places: set[str] = set()
    public = POOLS["public_places"]
    while len(places) < 52:
        name = (
            hotel_words[int(rng.integers(len(hotel_words)))]
            + public[int(rng.integers(len(public)))]
        )
        if name not in places:
            places.add(name)
            out.append((name, "公共场所", {"old_town": True}))
    offices = (
        *POOLS["offices_before_departments"],
        *POOLS["departments"],
        *POOLS["offices_after_departments"],
    )
    out += [(o, "机关单位", {"side": "L", "s": float(rng.uniform(-2000, 1500))}) for o in offices]
    out += [(p, "公园广场", {}) for p in POOLS["parks"]]
    return out


def place_pois(
    rng: np.random.Generator,
    streets: Streets,
    roads_m: gpd.GeoDataFrame,
    *,
    inner: Polygon,
    water_zone: Polygon,
    valley: Valley,
) -> list[dict]:
    """Place every named POI beside a street, clear of the roads, the water and each other.

    Returns
    -------
    list of dict
        ``name, type, address, street, number, geometry`` (UTM metres); a POI's address
        is the door number of where it stands.

    Raises
    ------
    RuntimeError
        If a POI finds no free spot in 200 attempts.
    """
    lengths = roads_m.geometry.length.to_numpy()
    highways = roads_m["highway"].to_numpy()
    weight = lengths * np.select(
        [
            np.isin(highways, ["primary", "secondary"]),
            highways == "tertiary",
            np.isin(highways, ["residential", "living_street"]),
        ],
        [3.0, 2.0, 1.0],
        0.0,
    )
    old_town = (roads_m["side"].eq("L") & roads_m["s_mid"].between(-2300, 900)).to_numpy()
    names = roads_m["name"].to_numpy()
    rows: list[dict] = []
    taken = shapely.STRtree([Point(0, 0)])
    placed: list[Point] = []
    seg_tree = shapely.STRtree(list(roads_m.geometry))
    for name, poi_type, hint in _poi_names(rng):
        w = weight.copy()
        if hint.get("old_town"):
            w = w * np.where(old_town, 4.0, 1.0)
        if hint.get("edge"):
            w = lengths * np.isin(highways, ["residential", "steps", "footway"])
        target = None
        if "s" in hint:
            n = 250.0 if hint["side"] == "L" else -300.0
            target = Point(valley.to_xy([hint["s"]], [n])[0])
        elif "side" in hint:
            w = w * np.where(roads_m["side"].eq(hint["side"]).to_numpy(), 1.0, 0.2)
        for _attempt in range(200):
            if target is not None:
                jitter = Point(
                    target.x + rng.normal(0, 40 + 10 * _attempt),
                    target.y + rng.normal(0, 40 + 10 * _attempt),
                )
                i = int(seg_tree.nearest(jitter))
            else:
                i = int(rng.choice(len(w), p=w / w.sum()))
            seg = roads_m.geometry.iloc[i]
            if highways[i] in ("steps", "footway") and not hint.get("edge"):
                continue
            d = float(rng.uniform(0.15, 0.85)) * seg.length
            a, b = seg.interpolate(max(0, d - 1)), seg.interpolate(min(seg.length, d + 1))
            dx, dy = b.x - a.x, b.y - a.y
            norm = math.hypot(dx, dy) or 1.0
            side = 1.0 if rng.random() < 0.5 else -1.0
            off = float(rng.uniform(9, 14))
            mid = seg.interpolate(d)
            p = Point(mid.x - side * dy / norm * off, mid.y + side * dx / norm * off)
            if not _clear_spot(p, streets=streets, inner=inner, water_zone=water_zone):
                continue
            if placed and taken.query(p, predicate="dwithin", distance=8).size:
                continue
            street = str(names[i])
            number = streets.number_at(street, p)
            rows.append(
                {
                    "name": name,
                    "type": poi_type,
                    "address": f"{street}{number}号",
                    "street": street,
                    "number": number,
                    "geometry": p,
                }
            )
            placed.append(p)
            taken = shapely.STRtree(placed)
            break
        else:
            msg = f"无法为 {name} 找到位置"
            raise RuntimeError(msg)
    return rows
