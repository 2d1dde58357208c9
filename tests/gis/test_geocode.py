"""Tests for gis.geocode: a hand-built small town near lon 103.5, lat 22.8.

The town is drawn in metres (UTM 48N, origin at the 人民路/建设路 crossing) and
stored in WGS-84, like real layers:

    人民路   east-west, y = 0, x -500..500, in two pieces split at x = 0
    建设路   north-south, x = 0, y -500..500
    解放路   north-south, x = 300, y -500..500
    文化街   east-west, y = 300, x -500..500
    人民街   east-west, y = -400, x -500..500 (a near-namesake of 人民路)
    学府路   north-south, x = -200, y 320..500: stops 20 m short of 文化街
    滨河路   north-south, x = 900, far from everything
    三道巷   from (-300, 0) to (-300, -200): a T-junction on 人民路
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import geopandas as gpd
import pytest
from pyproj import Transformer
from shapely.geometry import LineString, Point, box

from gis.errors import LayerReadError
from gis.geocode.geocoder import Geocoder, geocode_address
from gis.geocode.result import QUEUE_BELOW, GeocodeResult

UTM = "EPSG:32648"
ORIGIN_LON, ORIGIN_LAT = 103.5, 22.8
_TO_UTM = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
_TO_WGS = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
X0, Y0 = _TO_UTM.transform(ORIGIN_LON, ORIGIN_LAT)


def _gdf(rows: list[dict], geoms: list) -> gpd.GeoDataFrame:
    """Build a WGS-84 layer from geometries drawn in local metres."""
    from shapely import affinity

    moved = [affinity.translate(g, xoff=X0, yoff=Y0) for g in geoms]
    return gpd.GeoDataFrame(rows, geometry=moved, crs=UTM).to_crs("EPSG:4326")


def _metres(lon: float, lat: float) -> tuple[float, float]:
    """Return a WGS-84 point in the town's local metres."""
    x, y = _TO_UTM.transform(lon, lat)
    return x - X0, y - Y0


def _dist(result: GeocodeResult, x: float, y: float) -> float:
    assert result.lon is not None and result.lat is not None, result
    rx, ry = _metres(result.lon, result.lat)
    return math.hypot(rx - x, ry - y)


ROADS = [
    ("人民路", LineString([(-500, 0), (0, 0)])),
    ("人民路", LineString([(0, 0), (500, 0)])),
    ("建设路", LineString([(0, -500), (0, 500)])),
    ("解放路", LineString([(300, -500), (300, 500)])),
    ("文化街", LineString([(-500, 300), (500, 300)])),
    ("人民街", LineString([(-500, -400), (500, -400)])),
    ("学府路", LineString([(-200, 320), (-200, 500)])),
    ("滨河路", LineString([(900, -500), (900, 500)])),
    ("三道巷", LineString([(-300, 0), (-300, -200)])),
]
POIS = [
    ("城东农贸市场", "market", box(350, 50, 450, 150)),
    ("红河县第一中学", "school", Point(-150, 150)),
    ("县人民医院", "hospital", Point(150, -150)),
    ("阳光小区", "residential", box(-450, -150, -350, -50)),
    ("客运站", "station", Point(150, 150)),
]
PLATE_X = {n: -450 + 40 * (n // 2) for n in range(1, 41)}


@pytest.fixture(scope="module")
def town() -> dict[str, gpd.GeoDataFrame]:
    roads = _gdf([{"name": n} for n, _ in ROADS], [g for _, g in ROADS])
    pois = _gdf([{"name": n, "type": t} for n, t, _ in POIS], [g for _, _, g in POIS])
    communities = _gdf([{"name": "城南社区"}], [box(-500, -500, 500, -200)])
    # 人民路 door plates: odd numbers on the north side, even on the south; 11..19 missing.
    numbers = [n for n in range(1, 41) if not 11 <= n <= 19]
    addresses = _gdf(
        [{"street": "人民路", "number": n} for n in numbers],
        [Point(PLATE_X[n], 10 if n % 2 else -10) for n in numbers],
    )
    return {"roads": roads, "pois": pois, "communities": communities, "addresses": addresses}


@pytest.fixture(scope="module")
def geocoder(town: dict[str, gpd.GeoDataFrame]) -> Geocoder:
    return Geocoder.from_layers(
        **town, aliases={"一中": "红河县第一中学", "老车站": "客运站"}, strip_prefixes=("城关镇",)
    )


# ------------------------------------------------------------------ intersections


@pytest.mark.parametrize(
    "text",
    [
        "人民路与建设路交叉口东北角",
        "云南省红河州红河县人民路和建设路交叉口东北角",
        "人民路建设路路口东北角",
        "人民路/建设路口东北角",
        "人民路与建设路十字路口东北侧",
        "人民路与建设路交汇处(东北角)",
        "城关镇人民路与建设路交叉口东北角",
    ],
)
def test_intersection_corner_lands_in_that_block(geocoder: Geocoder, text: str) -> None:
    result = geocoder.geocode_address(text)
    assert result.method == "intersection"
    assert result.confidence >= 0.9
    x, y = _metres(result.lon, result.lat)
    assert x > 5 and y > 5, (text, x, y)
    assert _dist(result, 0, 0) == pytest.approx(15, abs=1)


@pytest.mark.parametrize(
    ("corner", "sx", "sy"), [("东北", 1, 1), ("西北", -1, 1), ("东南", 1, -1), ("西南", -1, -1)]
)
def test_each_corner_goes_to_its_own_quadrant(
    geocoder: Geocoder, corner: str, sx: int, sy: int
) -> None:
    result = geocoder.geocode_address(f"解放路与文化街交叉口{corner}角")
    x, y = _metres(result.lon, result.lat)
    assert (x - 300) * sx > 5 and (y - 300) * sy > 5


def test_intersection_without_corner_is_near_crossing_and_less_sure(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("人民路和建设路交叉口")
    assert result.method == "intersection"
    assert QUEUE_BELOW <= result.confidence < 0.9
    assert _dist(result, 0, 0) < 3
    # Deterministic: the same answer twice, off both centre lines.
    again = geocoder.geocode_address("人民路和建设路交叉口")
    assert (again.lon, again.lat) == (result.lon, result.lat)
    x, y = _metres(result.lon, result.lat)
    assert abs(x) > 0.5 and abs(y) > 0.5


def test_intersection_side_goes_along_that_arm(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("人民路与建设路交叉口南侧")
    x, y = _metres(result.lon, result.lat)
    assert abs(x) < 1 and y == pytest.approx(-15, abs=1)


def test_t_junction_and_gap_between_roads(geocoder: Geocoder) -> None:
    t_junction = geocoder.geocode_address("人民路与三道巷交叉口西南角")
    x, y = _metres(t_junction.lon, t_junction.lat)
    assert x < -300 and y < 0 and _dist(t_junction, -300, 0) < 20
    # 学府路 stops 20 m short of 文化街: still taken as meeting them.
    gap = geocoder.geocode_address("学府路与文化街交叉口")
    assert gap.method == "intersection"
    assert _dist(gap, -200, 310) < 12


def test_roads_that_never_meet_are_not_an_intersection(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("滨河路与建设路交叉口")
    assert result.confidence < QUEUE_BELOW
    assert "不相交" in result.message


def test_typo_and_missing_suffix_still_find_intersection(geocoder: Geocoder) -> None:
    typo = geocoder.geocode_address("人明路与建设路交叉口东北角")
    assert typo.method == "intersection"
    assert _dist(typo, 10.6, 10.6) < 2
    assert QUEUE_BELOW <= typo.confidence < 0.9
    bare = geocoder.geocode_address("人民路与建设交叉口")
    assert bare.method == "intersection" and _dist(bare, 0, 0) < 3
    glued = geocoder.geocode_address("解放文化交叉口")
    assert glued.method == "intersection" and _dist(glued, 300, 300) < 3


def test_tied_names_lower_confidence_and_list_both(geocoder: Geocoder) -> None:
    # "人民" is as much 人民路 as 人民街.
    result = geocoder.geocode_address("人民与解放路交叉口东北角")
    assert result.confidence < QUEUE_BELOW
    names = {c["name"] for c in result.candidates}
    assert any("人民路" in n for n in names) and any("人民街" in n for n in names)


# ------------------------------------------------------------------ house numbers


def test_exact_door_plate(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("人民路23号(门前)")
    assert result.method == "house_number"
    assert result.confidence >= 0.9
    assert _dist(result, PLATE_X[23], 10) < 0.5


def test_chinese_and_full_width_numbers(geocoder: Geocoder) -> None:
    for text in ("人民路二十三号", "人民路２３号", "人民路 23 号门口"):
        assert _dist(geocoder.geocode_address(text), PLATE_X[23], 10) < 0.5, text


def test_missing_number_interpolates_on_same_side(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("人民路15号")
    assert result.method == "house_number"
    assert QUEUE_BELOW <= result.confidence < 0.95
    # Between 9 and 21 on the odd (north) side, at the right fraction.
    expected_x = PLATE_X[9] + (PLATE_X[21] - PLATE_X[9]) * (15 - 9) / (21 - 9)
    assert _dist(result, expected_x, 10) < 1


def test_number_beyond_plates_is_extrapolated_with_less_confidence(geocoder: Geocoder) -> None:
    near = geocoder.geocode_address("人民路41号")
    far = geocoder.geocode_address("人民路99号")
    assert near.method == far.method == "house_number"
    assert near.confidence > far.confidence
    assert _metres(near.lon, near.lat)[0] > PLATE_X[39]


def test_house_number_without_plates_is_road_middle(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("解放路8号")
    assert result.method == "road"
    assert result.confidence <= 0.5
    assert _dist(result, 300, 0) < 1


# ------------------------------------------------------------------ segments and roads


@pytest.mark.parametrize("text", ["人民路(建设路至解放路段)", "人民路建设路至解放路段"])
def test_segment_midpoint(geocoder: Geocoder, text: str) -> None:
    result = geocoder.geocode_address(text)
    assert result.method == "segment"
    assert result.confidence >= QUEUE_BELOW
    assert _dist(result, 150, 0) < 1


@pytest.mark.parametrize("text", ["解放路", "解放路中段", "解放路沿线"])
def test_plain_road_is_middle_and_queued(geocoder: Geocoder, text: str) -> None:
    result = geocoder.geocode_address(text)
    assert result.method == "road"
    assert result.confidence < QUEUE_BELOW
    assert _dist(result, 300, 0) < 1


def test_short_lane_named_alone_is_placed(geocoder: Geocoder) -> None:
    # 三道巷 is 200 m long: its middle stands for the whole lane.
    lane = geocoder.geocode_address("三道巷沿线")
    assert lane.method == "road" and lane.confidence >= QUEUE_BELOW
    assert _dist(lane, -300, -100) < 1
    # A door plate on it without plate data is still only a guess.
    assert geocoder.geocode_address("三道巷5号").confidence < QUEUE_BELOW


# ------------------------------------------------------------------ places


def test_poi_inside_and_near(geocoder: Geocoder) -> None:
    inside = geocoder.geocode_address("城东农贸市场内")
    near = geocoder.geocode_address("县人民医院对面")
    assert inside.method == near.method == "poi"
    assert _dist(inside, 400, 100) < 1
    assert _dist(near, 150, -150) < 1
    assert inside.confidence > near.confidence >= QUEUE_BELOW


def test_poi_gate_moves_toward_that_side(geocoder: Geocoder) -> None:
    north = geocoder.geocode_address("阳光小区北门")
    x, y = _metres(north.lon, north.lat)
    assert abs(x + 400) < 1 and -60 < y < -50  # just inside the northern edge
    school = geocoder.geocode_address("第一中学东门")  # a point POI: moved a few metres
    x, y = _metres(school.lon, school.lat)
    assert 0 < x + 150 <= 20 and abs(y - 150) < 1


def test_poi_without_county_prefix_and_fuzzy(geocoder: Geocoder) -> None:
    assert _dist(geocoder.geocode_address("第一中学旁"), -150, 150) < 1
    assert _dist(geocoder.geocode_address("农贸市场内"), 400, 100) < 1


def test_alias(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("老车站门口")
    assert result.method == "alias"
    assert _dist(result, 150, 150) < 1
    assert _dist(geocoder.geocode_address("一中北门"), -150, 160) < 1


def test_community_is_low_confidence(geocoder: Geocoder) -> None:
    result = geocoder.geocode_address("城南社区")
    assert result.method == "community"
    assert result.confidence < QUEUE_BELOW
    x, y = _metres(result.lon, result.lat)
    assert -500 < x < 500 and -500 < y < -200


@pytest.mark.parametrize(
    "text", ["县城区域内多处", "档案资料不全", "", "   ", "？？？", "某某某某某某", "12345"]
)
def test_unresolvable_text_is_none(geocoder: Geocoder, text: str) -> None:
    result = geocode_address(text, geocoder=geocoder)
    assert result.method == "none"
    assert result.confidence == 0
    assert result.lon is None and result.lat is None
    assert result.message


def test_candidates_are_sorted_and_bounded(geocoder: Geocoder) -> None:
    for text in ("人民与解放路交叉口东北角", "城东农贸市场内", "人民路23号"):
        cands = geocoder.geocode_address(text).candidates
        assert 1 <= len(cands) <= 5
        assert [c["score"] for c in cands] == sorted((c["score"] for c in cands), reverse=True)
        assert {"name", "kind", "lon", "lat", "score"} <= set(cands[0])


def test_layer_without_crs_or_name_is_refused() -> None:
    roads = gpd.GeoDataFrame({"name": ["人民路"]}, geometry=[LineString([(0, 0), (1, 1)])])
    with pytest.raises(LayerReadError, match="坐标参考系"):
        Geocoder.from_layers(roads=roads)
    unnamed = gpd.GeoDataFrame(
        {"kind": ["x"]}, geometry=[LineString([(103.5, 22.8), (103.6, 22.8)])], crs=4326
    )
    with pytest.raises(LayerReadError, match="name"):
        Geocoder.from_layers(roads=unnamed)


# ------------------------------------------------------------------ real data

GUIXI = Path(__file__).parents[2].parent / "shared/data/osm/guixi"


@pytest.fixture(scope="module")
def guixi() -> Geocoder:
    path = GUIXI / "roads.geojson"
    if not path.exists():
        pytest.skip(f"没有贵溪 OSM 数据: {path}")
    roads = gpd.read_file(path)
    roads = roads[roads["name"].notna()]
    pois = gpd.read_file(GUIXI / "pois.geojson")
    return Geocoder.from_layers(roads=roads, pois=pois, strip_prefixes=("贵溪市",))


def test_guixi_intersections_on_real_roads(guixi: Geocoder) -> None:
    roads = gpd.read_file(GUIXI / "roads.geojson").to_crs(guixi.crs)
    placed = 0
    for a, b in [("建设路", "信州路"), ("雄石路", "站前路"), ("北大街", "南大街")]:
        ga = roads[roads["name"] == a].union_all()
        gb = roads[roads["name"] == b].union_all()
        result = guixi.geocode_address(f"江西省鹰潭市贵溪市{a}与{b}交叉口东北角")
        # Both names are recognised whether or not the roads meet.
        assert "未找到" not in result.message, result
        if ga.distance(gb) > 30:
            assert result.confidence < QUEUE_BELOW
            continue
        placed += 1
        assert result.method == "intersection"
        ux, uy = Transformer.from_crs(4326, guixi.crs, always_xy=True).transform(
            result.lon, result.lat
        )
        here = Point(ux, uy)
        # Within 20 m of both roads and about 15 m from where they meet.
        assert here.distance(ga) < 20 and here.distance(gb) < 20
    assert placed >= 1


def test_guixi_poi_and_road(guixi: Geocoder) -> None:
    school = guixi.geocode_address("贵溪市实验中学门口")
    assert school.method == "poi" and school.confidence >= QUEUE_BELOW
    assert school.lon == pytest.approx(117.24264, abs=1e-4)
    assert guixi.geocode_address("雄石路沿线").method == "road"


# ------------------------------------------------------------------ demo workbook

DEMO = Path(__file__).parents[2] / "layers/demo"
TRUTH = Path(__file__).parents[1] / "fixtures/demo_workbook_truth.csv"
WORKBOOK = DEMO / "州级交叉检查反馈问题清单.xlsx"


def _read_workbook(path: Path) -> list[dict[str, str]]:
    openpyxl = pytest.importorskip("openpyxl")
    sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header_at = next(
        i for i, row in enumerate(rows) if any(str(c or "").strip() == "问题地点" for c in row)
    )
    header = [str(c or "").strip() for c in rows[header_at]]
    out = []
    for row in rows[header_at + 1 :]:
        record = {
            h: ("" if v is None else str(v).strip()) for h, v in zip(header, row, strict=False)
        }
        if record.get("序号"):
            out.append(record)
    return out


def _truth_rows(path: Path) -> dict[str, tuple[float, float] | None]:
    """Return 序号 → true (lon, lat), or None for a row that has no place."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, tuple[float, float] | None] = {}
    for row in rows:
        key = str(row.get("seq") or row.get("序号") or row.get("id") or "").strip()
        lon = (row.get("lon") or row.get("经度") or "").strip()
        lat = (row.get("lat") or row.get("纬度") or "").strip()
        flag = str(row.get("placeable", row.get("可定位", "1"))).strip().lower()
        unplaceable = flag in ("0", "false", "no", "否", "") or not lon or not lat
        out[key] = None if unplaceable else (float(lon), float(lat))
    return out


@pytest.fixture(scope="module")
def demo_geocoder() -> Geocoder:
    needed = [DEMO / "roads.geojson", WORKBOOK, TRUTH]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        pytest.skip(f"演示数据尚未生成 (缺少 {', '.join(missing)})")
    layers = {}
    for kind, file in [
        ("pois", "pois.geojson"),
        ("communities", "communities.geojson"),
        ("addresses", "addresses.geojson"),
    ]:
        if (DEMO / file).exists():
            layers[kind] = gpd.read_file(DEMO / file)
    county = DEMO / "county.json"
    prefixes = []
    if county.exists():
        info = json.loads(county.read_text(encoding="utf-8"))
        prefixes = [info[k] for k in ("seat_name",) if info.get(k)]
    return Geocoder.from_layers(
        roads=gpd.read_file(DEMO / "roads.geojson"), **layers, strip_prefixes=prefixes
    )


def test_demo_workbook_places_95_percent_within_40_m(demo_geocoder: Geocoder) -> None:
    truth = _truth_rows(TRUTH)
    rows = _read_workbook(WORKBOOK)
    to_utm = Transformer.from_crs(4326, demo_geocoder.crs, always_xy=True)
    good, placeable, misses, false_places = 0, 0, [], []
    for row in rows:
        key = row["序号"].removesuffix(".0")
        if key not in truth:
            continue
        result = demo_geocoder.geocode_address(row["问题地点"])
        expected = truth[key]
        if expected is None:
            if result.confidence >= QUEUE_BELOW:
                false_places.append((key, row["问题地点"], result.method, result.confidence))
            continue
        placeable += 1
        if result.lon is not None and result.confidence >= QUEUE_BELOW:
            ex, ey = to_utm.transform(*expected)
            rx, ry = to_utm.transform(result.lon, result.lat)
            if math.hypot(ex - rx, ey - ry) <= 40:
                good += 1
                continue
        misses.append((key, row["问题地点"], result.method, result.confidence, result.message))
    assert placeable > 0
    assert good / placeable >= 0.95, misses
    assert not false_places, false_places


# ------------------------------------------------------------------ what an OSM export carries

FIRST_DAY = Path(__file__).parents[1] / "fixtures" / "first_day_town.osm"


@pytest.fixture(scope="module")
def osm_geocoder() -> Geocoder:
    from gis.osm import read_osm

    osm = read_osm(FIRST_DAY)
    return Geocoder.from_layers(
        roads=osm["roads"],
        pois=osm["pois"],
        buildings=osm["buildings"],
        addresses=osm["addresses"],
        aliases={"老市场": "城东农贸综合市场"},
    )


def _apart(geocoder: Geocoder, result: GeocodeResult, lon: float, lat: float) -> float:
    to_utm = Transformer.from_crs(4326, geocoder.crs, always_xy=True)
    ax, ay = to_utm.transform(result.lon, result.lat)
    bx, by = to_utm.transform(lon, lat)
    return math.hypot(ax - bx, ay - by)


def test_osm_door_plate_on_a_building_places_its_number(osm_geocoder: Geocoder) -> None:
    result = osm_geocoder.geocode_address("人民路23号门前")
    assert result.method == "house_number"
    assert result.confidence == pytest.approx(0.95)
    assert result.placed
    # The plate is the shop's footprint (117.2019..117.2021, 28.3051..28.3053).
    assert _apart(osm_geocoder, result, 117.2020, 28.3052) < 15


def test_osm_plates_interpolate_like_the_demo_plates(osm_geocoder: Geocoder) -> None:
    result = osm_geocoder.geocode_address("人民路二十五号")
    assert result.method == "house_number" and result.confidence == pytest.approx(0.95)
    assert _apart(osm_geocoder, result, 117.2024, 28.30515) < 2


def test_named_school_area_and_its_alt_name(osm_geocoder: Geocoder) -> None:
    by_name = osm_geocoder.geocode_address("信江实验中学对面")
    assert by_name.method == "poi" and by_name.confidence == pytest.approx(0.72)
    by_alias = osm_geocoder.geocode_address("第二中学对面")
    assert by_alias.method == "alias"
    assert by_alias.confidence == pytest.approx(0.72)
    assert (by_alias.lon, by_alias.lat) == (by_name.lon, by_name.lat)
    # Inside the school's polygon (117.206..117.209, 28.301..28.304).
    assert 117.206 < by_alias.lon < 117.209 and 28.301 < by_alias.lat < 28.304


def test_short_name_of_a_node_and_the_admin_alias_both_apply(osm_geocoder: Geocoder) -> None:
    short = osm_geocoder.geocode_address("东市内")
    admin = osm_geocoder.geocode_address("老市场门口")
    assert short.method == admin.method == "alias"
    assert short.placed and admin.placed
    assert (short.lon, short.lat) == (admin.lon, admin.lat) == (117.207, 28.306)


def test_named_building_is_a_landmark(osm_geocoder: Geocoder) -> None:
    result = osm_geocoder.geocode_address("金茂大厦后面")
    assert result.method == "poi" and result.confidence == pytest.approx(0.72)
    assert 117.201 < result.lon < 117.203 and 28.307 < result.lat < 28.3085


def test_road_alt_name_reaches_the_crossing(osm_geocoder: Geocoder) -> None:
    result = osm_geocoder.geocode_address("人民大道与建设路交叉口东北角")
    assert result.method == "intersection" and result.confidence == pytest.approx(0.92)
    assert _apart(osm_geocoder, result, 117.2050, 28.3050) < 20


def test_unknown_place_is_still_queued(osm_geocoder: Geocoder) -> None:
    result = osm_geocoder.geocode_address("二中")
    assert not result.placed


def test_admin_alias_wins_over_a_layer_alias() -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    pois = _gdf(
        [{"name": "第一中学", "alt_name": "一中"}, {"name": "实验小学"}],
        [Point(100, 50), Point(-100, -50)],
    )
    geocoder = Geocoder.from_layers(roads=roads, pois=pois, aliases={"一中": "实验小学"})
    result = geocoder.geocode_address("一中门口")
    assert result.candidates[0]["name"] == "实验小学"


@pytest.mark.parametrize(
    ("fields", "geom_kind"),
    [
        ({"街路巷名": "人民路", "门牌号": "23号"}, "point"),
        ({"addr:street": "人民路", "addr:housenumber": "23"}, "point"),
        ({"地址": "某某县人民路23号"}, "point"),
        ({"JLX": "人民路", "MPH": 23.0}, "polygon"),
    ],
)
def test_county_address_layer_with_its_own_field_names(fields: dict, geom_kind: str) -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    geom = Point(120, 12) if geom_kind == "point" else box(110, 5, 130, 20)
    plates = _gdf([fields, {**fields}], [geom, geom])
    plates = plates.iloc[:1]
    geocoder = Geocoder.from_layers(roads=roads, addresses=plates)
    result = geocoder.geocode_address("人民路23号")
    assert result.method == "house_number" and result.confidence == pytest.approx(0.95)
    x, y = _TO_UTM.transform(result.lon, result.lat)
    assert math.hypot(x - X0 - 120, y - Y0 - 12) < 6


def test_address_layer_without_street_and_number_fields_is_refused() -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    plates = _gdf([{"备注": "x"}], [Point(0, 10)])
    with pytest.raises(LayerReadError, match="街路巷名/门牌号"):
        Geocoder.from_layers(roads=roads, addresses=plates)


def test_buildings_with_plates_feed_the_geocoder() -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    buildings = _gdf(
        [{"name": None, "addr_street": "人民路", "addr_housenumber": "8"},
         {"name": "财富大厦", "addr_street": None, "addr_housenumber": None}],
        [box(50, 5, 70, 25), box(-200, 30, -150, 80)],
    )
    geocoder = Geocoder.from_layers(roads=roads, buildings=buildings)
    plate = geocoder.geocode_address("人民路8号")
    assert plate.method == "house_number" and plate.confidence == pytest.approx(0.95)
    tower = geocoder.geocode_address("财富大厦北门")
    assert tower.method == "poi" and tower.placed


def test_gate_of_a_named_building_is_on_its_footprint(osm_geocoder: Geocoder) -> None:
    # The tower's POI is a point, its footprint 117.201..117.203 × 28.3070..28.3085.
    result = osm_geocoder.geocode_address("金茂大厦北门")
    assert result.method == "poi" and result.confidence == pytest.approx(0.85)
    assert "北侧边界处" in result.message
    assert 28.3083 < result.lat < 28.3085


# ------------------------------------------------------------------ places mapped as areas

AREAS = Path(__file__).parents[1] / "fixtures" / "landmark_areas_town.osm"
SCHOOL = box(117.2060, 28.3053, 117.2090, 28.3075)
MARKET = box(117.2060, 28.3010, 117.2100, 28.3045)
COURTYARD = box(117.2075, 28.3020, 117.2085, 28.3030)
PARK = box(117.2010, 28.3065, 117.2040, 28.3095)


@pytest.fixture(scope="module")
def areas_osm():
    from gis.osm import read_osm

    return read_osm(AREAS)


@pytest.fixture(scope="module")
def areas_geocoder(areas_osm) -> Geocoder:
    return Geocoder.from_layers(
        roads=areas_osm["roads"], pois=areas_osm["pois"], buildings=areas_osm["buildings"]
    )


def _edge_m(geocoder: Geocoder, result: GeocodeResult, edge: LineString) -> float:
    """Metres (UTM) from a result to an edge given in lon/lat."""
    assert result.lon is not None, result
    to_utm = Transformer.from_crs(4326, geocoder.crs, always_xy=True)
    here = Point(*to_utm.transform(result.lon, result.lat))
    line = LineString([to_utm.transform(x, y) for x, y in edge.coords])
    return here.distance(line)


def _side(area, side: str) -> LineString:
    minx, miny, maxx, maxy = area.bounds
    return {
        "北": LineString([(minx, maxy), (maxx, maxy)]),
        "南": LineString([(minx, miny), (maxx, miny)]),
        "东": LineString([(maxx, miny), (maxx, maxy)]),
        "西": LineString([(minx, miny), (minx, maxy)]),
    }[side]


def _inside(result: GeocodeResult, area) -> bool:
    return area.contains(Point(result.lon, result.lat))


def test_school_area_gate_lands_on_its_north_edge(areas_geocoder: Geocoder) -> None:
    gate = areas_geocoder.geocode_address("城关中学北门")
    assert gate.method == "poi" and gate.confidence == pytest.approx(0.85)
    assert _inside(gate, SCHOOL)
    assert 1.5 < _edge_m(areas_geocoder, gate, _side(SCHOOL, "北")) < 2.5
    # The same gate through the area's alt_name.
    alias = areas_geocoder.geocode_address("一中北门")
    assert alias.method == "alias" and alias.confidence == pytest.approx(0.85)
    assert (alias.lon, alias.lat) == (gate.lon, gate.lat)


def test_school_area_opposite_is_its_edge_facing_the_road(areas_geocoder: Geocoder) -> None:
    # 人民路 is 33 m south of the school, 建设路 98 m west: 对面 is across 人民路.
    result = areas_geocoder.geocode_address("城关中学对面")
    assert result.method == "poi" and result.confidence == pytest.approx(0.72)
    assert _inside(result, SCHOOL)
    assert 1.5 < _edge_m(areas_geocoder, result, _side(SCHOOL, "南")) < 2.5
    assert "人民路" in result.message
    behind = areas_geocoder.geocode_address("城关中学后面")
    assert behind.confidence == pytest.approx(0.72)
    assert 1.5 < _edge_m(areas_geocoder, behind, _side(SCHOOL, "北")) < 2.5


def test_plain_name_of_an_area_is_inside_it_not_at_the_node(areas_geocoder: Geocoder) -> None:
    # The school is mapped twice (a node and the area): the area is the place.
    result = areas_geocoder.geocode_address("城关中学")
    assert result.method == "poi" and result.confidence == pytest.approx(0.90)
    assert _inside(result, SCHOOL)
    assert _edge_m(areas_geocoder, result, LineString(SCHOOL.exterior.coords)) > 10


def test_multipolygon_market_sides(areas_geocoder: Geocoder) -> None:
    east = areas_geocoder.geocode_address("城南农贸市场东侧")
    assert east.method == "poi" and east.confidence == pytest.approx(0.85)
    assert _inside(east, MARKET.difference(COURTYARD))
    assert 1.5 < _edge_m(areas_geocoder, east, _side(MARKET, "东")) < 2.5
    # The way west crosses the courtyard: the gate is on the outer edge, not the inner one.
    west = areas_geocoder.geocode_address("城南农贸市场西门")
    assert 1.5 < _edge_m(areas_geocoder, west, _side(MARKET, "西")) < 2.5
    # 人民路 is 55 m north of the market: 后面 is its south edge.
    behind = areas_geocoder.geocode_address("城南农贸市场后面")
    assert behind.confidence == pytest.approx(0.72)
    assert 1.5 < _edge_m(areas_geocoder, behind, _side(MARKET, "南")) < 2.5
    plain = areas_geocoder.geocode_address("城南农贸市场")
    assert _inside(plain, MARKET.difference(COURTYARD))


def test_park_area_opposite_faces_the_nearer_road(areas_geocoder: Geocoder) -> None:
    # 建设路 is 98 m east of the park, 人民路 166 m south.
    result = areas_geocoder.geocode_address("人民公园对面")
    assert result.method == "poi" and result.confidence == pytest.approx(0.72)
    assert 1.5 < _edge_m(areas_geocoder, result, _side(PARK, "东")) < 2.5
    assert "建设路" in result.message
    # 附近 names no side of it: the point inside stays.
    near = areas_geocoder.geocode_address("人民公园附近")
    assert near.confidence == pytest.approx(0.72)
    assert _edge_m(areas_geocoder, near, LineString(PARK.exterior.coords)) > 10


def test_area_far_from_every_road_keeps_its_inner_point() -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    pois = _gdf([{"name": "森林公园"}], [box(-100, 300, 100, 500)])
    geocoder = Geocoder.from_layers(roads=roads, pois=pois)
    opposite = geocoder.geocode_address("森林公园对面")
    assert opposite.confidence == pytest.approx(0.72)
    x, y = _metres(opposite.lon, opposite.lat)
    assert -100 < x < 100 and 310 < y < 490


def test_county_polygon_pois_place_like_the_osm_areas(
    areas_osm, areas_geocoder: Geocoder
) -> None:
    # A county's own POI layer drawn as polygons, no footprint column, no OSM tags.
    county = gpd.GeoDataFrame(
        {"name": ["城关中学", "城南农贸市场", "人民公园"], "type": ["学校", "农贸市场", "公园广场"]},
        geometry=[SCHOOL, MARKET.difference(COURTYARD), PARK],
        crs=4326,
    )
    geocoder = Geocoder.from_layers(roads=areas_osm["roads"], pois=county)
    for text in ("城关中学北门", "城关中学对面", "城南农贸市场东侧", "城南农贸市场后面", "人民公园对面"):
        ours, osm = geocoder.geocode_address(text), areas_geocoder.geocode_address(text)
        assert ours.confidence == osm.confidence, text
        assert _apart(geocoder, ours, osm.lon, osm.lat) < 0.5, text


def test_bad_footprint_text_keeps_the_point() -> None:
    roads = _gdf([{"name": "人民路"}], [LineString([(-500, 0), (500, 0)])])
    pois = _gdf(
        [{"name": "实验小学", "footprint": "POLYGON ((broken"},
         {"name": "客运站", "footprint": "POINT (1 2)"}],
        [Point(100, 50), Point(-100, 50)],
    )
    geocoder = Geocoder.from_layers(roads=roads, pois=pois)
    assert _dist(geocoder.geocode_address("实验小学门口"), 100, 50) < 1
    assert _dist(geocoder.geocode_address("客运站门口"), -100, 50) < 1
