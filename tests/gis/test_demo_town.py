"""Check the committed synthetic demo county seat (layers/demo) and its generator."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import pytest
from openpyxl import load_workbook
from shapely.geometry import Point

from gis.crs import to_metric, utm_crs_for
from gis.demo_town.data import POI_TYPES, SOURCES, read_categories

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "layers" / "demo"
TRUTH = ROOT / "tests" / "fixtures" / "demo_workbook_truth.csv"
WORKBOOK = DEMO / "州级交叉检查反馈问题清单.xlsx"
GEOJSON = ("boundary", "river", "roads", "subdistricts", "communities", "pois", "addresses")


@pytest.fixture(scope="module")
def layers() -> dict[str, gpd.GeoDataFrame]:
    return {name: gpd.read_file(DEMO / f"{name}.geojson") for name in GEOJSON}


@pytest.fixture(scope="module")
def crs(layers):
    return to_metric(layers["boundary"]).crs


@pytest.fixture(scope="module")
def boundary_m(layers, crs):
    return layers["boundary"].to_crs(crs).geometry.iloc[0]


@pytest.fixture(scope="module")
def units() -> list[dict]:
    with open(DEMO / "units.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_county_json_is_in_yunnan_with_its_utm_zone():
    county = json.loads((DEMO / "county.json").read_text(encoding="utf-8"))
    assert county["county_code"] == "532599"
    assert county["county_code"].startswith("53")
    lon, lat = county["center"]
    assert 103 <= lon < 104 and 22 <= lat < 24
    assert county["utm_epsg"] == utm_crs_for(lon, lat).to_epsg()
    assert county["county_name"].endswith("县") and county["seat_name"].endswith("镇")


def test_boundary_is_one_irregular_polygon_of_town_size(layers, boundary_m):
    gdf = layers["boundary"]
    assert len(gdf) == 1 and gdf.crs.to_epsg() == 4326
    assert gdf["kind"].iloc[0] == "builtup" and gdf["name"].iloc[0]
    assert boundary_m.geom_type == "Polygon" and boundary_m.is_valid
    assert 15e6 <= boundary_m.area <= 25e6
    # A valley town fills much less of its rotated bounding rectangle than a block would.
    assert boundary_m.area / boundary_m.minimum_rotated_rectangle.area < 0.85


def test_river_is_a_named_meandering_water_surface(layers, crs, boundary_m):
    river = layers["river"].to_crs(crs)
    water = river[river["kind"] == "water"].geometry.union_all()
    center = river[river["kind"] == "centerline"].geometry.iloc[0]
    assert set(layers["river"]["name"]) == {"南溪河"}
    inside = center.intersection(boundary_m)
    assert inside.length > 5000
    width = water.intersection(boundary_m).area / inside.length
    assert 30 <= width <= 60
    # Meandering: the river is clearly longer than the straight line between its ends.
    ends = center.boundary.geoms
    assert center.length > 1.1 * ends[0].distance(ends[1])


def test_roads_have_many_named_streets_with_osm_values(layers):
    roads = layers["roads"]
    assert set(roads.geom_type) == {"LineString"}
    assert roads["name"].notna().all() and (roads["name"].str.len() > 1).all()
    assert roads["name"].nunique() >= 150
    allowed = {
        "primary",
        "secondary",
        "tertiary",
        "residential",
        "living_street",
        "service",
        "footway",
        "steps",
    }
    assert set(roads["highway"]) <= allowed
    assert {"primary", "secondary", "tertiary", "residential"} <= set(roads["highway"])
    assert set(roads["oneway"]) == {"yes", "no"}
    assert set(roads["bridge"]) == {"yes", "no"}
    assert {"人民路", "建设路", "解放路", "滨河路"} <= set(roads["name"])
    lanes = roads["name"][roads["name"].str.endswith(("巷", "坡"))].nunique()
    assert lanes >= 60


def test_roads_form_one_network_meeting_at_shared_vertices(layers):
    roads = layers["roads"]
    graph = nx.Graph()
    for geom in roads.geometry:
        graph.add_edge(geom.coords[0], geom.coords[-1])
    assert nx.number_connected_components(graph) == 1
    # Junctions are shared endpoints: no road crosses another in the middle of a segment.
    tree = roads.sindex
    left, right = tree.query(roads.geometry, predicate="crosses")
    assert len([1 for a, b in zip(left, right, strict=True) if a < b]) == 0


def test_bridges_cross_the_river_and_roads_stay_in_town(layers, crs, boundary_m):
    roads = layers["roads"].to_crs(crs)
    river = layers["river"].to_crs(crs)
    water = river[river["kind"] == "water"].geometry.union_all()
    bridges = roads[roads["bridge"] == "yes"]
    assert bridges["name"].nunique() >= 4
    assert all(water.buffer(1).contains(g) for g in bridges.geometry)
    others = roads[roads["bridge"] == "no"]
    assert all(water.intersection(g).length < 1.0 for g in others.geometry)
    assert all(boundary_m.buffer(0.5).contains(g) for g in roads.geometry)


def test_subdistricts_and_communities_partition_the_boundary(layers, crs, boundary_m):
    subs = layers["subdistricts"].to_crs(crs)
    coms = layers["communities"].to_crs(crs)
    assert len(subs) == 2 and set(subs["code"]) == {"001", "002"}
    assert subs["name"].str.endswith("街道").any() and subs["name"].str.endswith("镇").any()
    assert 8 <= len(coms) <= 12
    assert coms["name"].str.endswith("社区").all()
    assert not coms.duplicated(["subdistrict_code", "code"]).any()
    assert coms["code"].str.fullmatch(r"\d{3}").all()
    for frame in (subs, coms):
        union = frame.geometry.union_all()
        # 7-decimal rounding moves vertices by ~1 cm along ~25 km of edges.
        assert union.symmetric_difference(boundary_m).area < 20.0
        assert abs(frame.area.sum() - boundary_m.area) < 20.0  # no overlaps
    by_code = dict(zip(subs["code"], subs.geometry, strict=True))
    for geom, sub in zip(coms.geometry, coms["subdistrict_code"], strict=True):
        assert geom.difference(by_code[sub]).area < 20.0


def test_pois_are_named_typed_beside_roads_and_dry(layers, crs, boundary_m):
    pois = layers["pois"].to_crs(crs)
    roads = layers["roads"].to_crs(crs)
    river = layers["river"].to_crs(crs)
    water = river[river["kind"] == "water"].geometry.union_all()
    assert len(pois) >= 400 and pois["name"].is_unique
    assert set(pois["type"]) == set(POI_TYPES)
    counts = pois["type"].value_counts()
    assert counts["口岸"] == 1 and 3 <= counts["农贸市场"] <= 5 and counts["餐饮"] >= 100
    assert pois["address"].str.fullmatch(r".+\d+号").all()
    assert all(boundary_m.contains(p) and not water.contains(p) for p in pois.geometry)
    distance = roads.sindex.nearest(pois.geometry, return_distance=True)[1]
    assert distance.min() >= 3 and distance.max() <= 20
    coms = layers["communities"].to_crs(crs)
    for p, sub, com in zip(
        pois.geometry, pois["subdistrict_code"], pois["community_code"], strict=True
    ):
        match = coms[(coms["subdistrict_code"] == sub) & (coms["code"] == com)]
        assert match.geometry.iloc[0].contains(p)


def test_door_plates_number_odd_and_even_sides_along_the_street(layers, crs):
    plates = layers["addresses"].to_crs(crs)
    roads = layers["roads"].to_crs(crs)
    assert len(plates) > 1000
    assert "解放路" in set(plates["street"])
    for street in ("人民路", "解放路", "南溪大道"):
        mine = plates[plates["street"] == street].sort_values("number")
        line = roads[roads["name"] == street].geometry.union_all()
        for parity in (0, 1):
            side = mine[mine["number"] % 2 == parity]
            assert len(side) > 10
            assert side["number"].is_unique
            # Numbers grow with distance from the street's first plate.
            first = side.geometry.iloc[0]
            far = [first.distance(p) for p in side.geometry.iloc[:20]]
            assert far == sorted(far)
        assert mine.geometry.distance(line).max() < 12


def test_units_cover_every_community_twice(layers, units):
    assert 25 <= len(units) <= 35
    assert {u["kind"] for u in units} == {"department", "subdistrict", "community", "company"}
    names = {u["name"] for u in units}
    for needed in ("县住房和城乡建设局", "县综合行政执法局", "县市场监督管理局", "县卫生健康局"):
        assert needed in names
    codes = {
        f"{s}-{c}"
        for s, c in zip(
            layers["communities"]["subdistrict_code"], layers["communities"]["code"], strict=True
        )
    }
    served: dict[str, int] = {}
    for unit in units:
        assert len(unit["phone"]) == 11 and unit["phone"].startswith("138")
        for code in filter(None, unit["communities"].split(";")):
            assert code in codes
            served[code] = served.get(code, 0) + 1
        if unit["kind"] == "department":
            assert 1 <= len(unit["communities"].split(";")) <= 2
    assert set(served) == codes and min(served.values()) >= 2
    market = next(u for u in units if u["name"] == "县市场监督管理局")
    assert "0601" in market["functional_categories"].split(";")


def test_categories_table(units):
    with open(ROOT / "layers" / "categories.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    level1 = [r for r in rows if r["level"] == "1"]
    level2 = [r for r in rows if r["level"] == "2"]
    assert [r["code"] for r in level1] == [f"{i:02d}" for i in range(1, 9)]
    assert level1[2]["name"] == "市容环境卫生" and level1[7]["name"] == "病媒生物预防控制"
    assert 35 <= len(level2) <= 45
    unit_names = {u["name"] for u in units}
    for row in level2:
        assert row["parent"] == row["code"][:2] and len(row["code"]) == 4
        assert 3 <= int(row["deadline_days"]) <= 15
        assert 0.5 <= float(row["points"]) <= 2
        assert row["functional_unit"] == "" or row["functional_unit"] in unit_names
    assert {"主次干道", "背街小巷", "公厕", "农贸市场"} <= {r["name"] for r in level2}


def test_truth_matches_workbook_and_lies_in_town(boundary_m, crs):
    with open(TRUTH, encoding="utf-8", newline="") as handle:
        truth = list(csv.DictReader(handle))
    rows = list(load_workbook(WORKBOOK).active.iter_rows(min_row=3, values_only=True))
    assert len(truth) == 126
    forms = {t["address_form"] for t in truth}
    assert forms == {"intersection", "poi", "house_number", "segment", "road", "none"}
    unplaceable = [t for t in truth if t["address_form"] == "none"]
    assert 3 <= len(unplaceable) <= 5 and all(t["lon"] == "" for t in unplaceable)
    codes = {c["code"] for c in read_categories()}
    to_m = gpd.GeoSeries([], crs="EPSG:4326").to_crs(crs).crs
    for t, row in zip(truth, rows, strict=True):
        assert int(t["seq"]) == row[0] and t["category_code"] in codes
        if t["address_form"] == "none":
            continue
        point = gpd.GeoSeries([Point(float(t["lon"]), float(t["lat"]))], crs=4326).to_crs(to_m)
        assert boundary_m.buffer(20).contains(point.iloc[0])
        if row[9] == "坐标来源:GPS":
            assert abs(row[7] - float(t["lon"])) < 1e-5 and abs(row[8] - float(t["lat"])) < 1e-5
        if row[9] == "坐标来源:高德":  # GCJ-02 is offset by hundreds of metres
            assert abs(row[7] - float(t["lon"])) > 1e-3


def test_history_has_varied_outcomes():
    history = json.loads((DEMO / "history.json").read_text(encoding="utf-8"))
    assert 250 <= len(history) <= 400
    assert len({h["ref"] for h in history}) == len(history)
    codes = {c["code"] for c in read_categories()}
    finals = {}
    for h in history:
        assert h["category_code"] in codes and h["source"] in SOURCES
        reported = dt.datetime.fromisoformat(h["reported_at"])
        assert dt.datetime(2026, 8, 1) <= reported <= dt.datetime(2026, 12, 1)
        times = [dt.datetime.fromisoformat(e["at"]) for e in h["events"]]
        assert times == sorted(times) and all(t > reported for t in times)
        final = h["events"][-1]["action"] if h["events"] else "reported"
        finals[final] = finals.get(final, 0) + 1
    assert finals.get("verify_ok", 0) > len(history) / 2
    for action in ("reject", "submit", "start"):
        assert finals.get(action, 0) > 0, action
    assert sum(any(e["action"] == "verify_fail" for e in h["events"]) for h in history) >= 10
    weekdays = sum(dt.datetime.fromisoformat(h["reported_at"]).weekday() < 5 for h in history)
    assert weekdays / len(history) > 0.9


def test_demo_is_small_enough():
    total = sum(p.stat().st_size for p in DEMO.iterdir())
    assert total < 10 * 1024 * 1024
    assert "SYNTHETIC" in (DEMO / "README.md").read_text(encoding="utf-8")


def test_generator_reads_the_category_table_from_layers(tmp_path):
    with open(ROOT / "layers" / "categories.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = read_categories()
    assert [c["code"] for c in table] == [r["code"] for r in rows]
    for c, r in zip(table, rows, strict=True):
        assert c["deadline_days"] == int(r["deadline_days"]) and c["points"] == float(r["points"])
        assert (c["name"], c["functional_unit"]) == (r["name"], r["functional_unit"])
    short = tmp_path / "short.csv"
    short.write_text("code,name,points\n01,x,1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="deadline_days"):
        read_categories(short)
