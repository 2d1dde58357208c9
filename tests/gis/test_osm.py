"""Reading OSM extracts: hand-made files for each rule, then the real Guixi export."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import geopandas as gpd
import osmium
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from gis.crs import WGS84, to_metric
from gis.errors import GridBuildError, LayerReadError
from gis.osm import OsmLayers, derive_builtup_boundary, read_osm

GUIXI = Path(__file__).parents[2].parent / "shared/data/osm/guixi"
needs_guixi = pytest.mark.skipif(
    not (GUIXI / "guixi.osm.gz").is_file(),
    reason=f"real OSM extract not found at {GUIXI} (shared data not mounted)",
)

# ------------------------------------------------------------------ a hand-made town

LON0, LAT0 = 117.2200, 28.3000
STEP = 0.001


def _node_xml(nid: int, lon: float, lat: float, tags: dict[str, str] | None = None) -> str:
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items())
    return f'<node id="{nid}" version="1" lat="{lat:.7f}" lon="{lon:.7f}">{inner}</node>'


def _way_xml(wid: int, refs: list[int], tags: dict[str, str]) -> str:
    nds = "".join(f'<nd ref="{r}"/>' for r in refs)
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<way id="{wid}" version="1">{nds}{inner}</way>'


def _relation_xml(rid: int, members: list[tuple[str, int, str]], tags: dict[str, str]) -> str:
    mem = "".join(f'<member type="{t}" ref="{r}" role="{role}"/>' for t, r, role in members)
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<relation id="{rid}" version="1">{mem}{inner}</relation>'


def _town_xml() -> str:
    """A 6×6 lattice of nodes, streets, buildings, POIs and two relations."""
    nodes = []
    nid = {}
    n = 1
    for j in range(6):
        for i in range(6):
            nid[i, j] = n
            nodes.append(_node_xml(n, LON0 + i * STEP, LAT0 + j * STEP))
            n += 1
    pois = [
        _node_xml(
            100, LON0 + 0.0005, LAT0 + 0.0005, {"amenity": "marketplace", "name": "城东农贸市场"}
        ),
        _node_xml(101, LON0 + 0.0015, LAT0 + 0.0005, {"amenity": "toilets"}),  # unnamed
        _node_xml(
            102,
            LON0 + 0.0025,
            LAT0 + 0.0005,
            {"amenity": "toilets", "name": "南门公厕", "addr:street": "建设路"},
        ),
        _node_xml(103, LON0 + 0.0035, LAT0 + 0.0005, {"shop": "bakery", "name": "好利来"}),
        _node_xml(104, LON0 + 0.0045, LAT0 + 0.0005, {"place": "village", "name": "柏里村"}),
        _node_xml(105, LON0 + 0.0045, LAT0 + 0.0015, {"name": "只有名字的点"}),
    ]
    ways = [
        # 建设路: west→east along j=0, two-way
        _way_xml(
            1,
            [nid[i, 0] for i in range(6)],
            {"highway": "primary", "name": "建设路", "lanes": "4", "ref": "S206"},
        ),
        # 信州路: oneway=-1 drawn south→north, so traffic goes north→south
        _way_xml(
            2,
            [nid[2, j] for j in range(6)],
            {"highway": "secondary", "name": "信州路", "oneway": "-1"},
        ),
        # an unnamed service road, a bridge
        _way_xml(3, [nid[0, 1], nid[0, 2], nid[0, 3]], {"highway": "service", "bridge": "yes"}),
        # a roundabout without an explicit oneway tag
        _way_xml(
            4,
            [nid[4, 4], nid[5, 4], nid[5, 5], nid[4, 5], nid[4, 4]],
            {"highway": "tertiary", "junction": "roundabout"},
        ),
        # a building
        _way_xml(
            10,
            [nid[3, 1], nid[4, 1], nid[4, 2], nid[3, 2], nid[3, 1]],
            {"building": "apartments", "building:levels": "6", "name": "滨江小区1栋"},
        ),
        # a named hospital drawn as an area: becomes a POI inside it
        _way_xml(
            11,
            [nid[0, 4], nid[1, 4], nid[1, 5], nid[0, 5], nid[0, 4]],
            {"amenity": "hospital", "name": "贵溪市人民医院"},
        ),
        # a river line and a pond
        _way_xml(12, [nid[5, 0], nid[5, 1], nid[5, 2]], {"waterway": "river", "name": "信江"}),
        _way_xml(13, [nid[1, 1], nid[2, 1], nid[2, 2], nid[1, 1]], {"natural": "water"}),
        # outer ring of a sub-district boundary, split in two ways
        _way_xml(20, [nid[0, 0], nid[5, 0], nid[5, 5]], {"boundary": "administrative"}),
        _way_xml(21, [nid[5, 5], nid[0, 5], nid[0, 0]], {"boundary": "administrative"}),
    ]
    relations = [
        _relation_xml(
            500,
            [("way", 20, "outer"), ("way", 21, "outer")],
            {
                "type": "boundary",
                "boundary": "administrative",
                "admin_level": "8",
                "name": "东门街道",
            },
        ),
        # cut by the export: way 999 is not in the file
        _relation_xml(
            501,
            [("way", 20, "outer"), ("way", 999, "outer")],
            {
                "type": "boundary",
                "boundary": "administrative",
                "admin_level": "6",
                "name": "贵溪市",
            },
        ),
        _relation_xml(
            502,
            [("way", 10, "outer")],
            {"type": "multipolygon", "building": "school", "name": "二中教学楼"},
        ),
    ]
    body = "\n".join(nodes + pois + ways + relations)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
        f'<bounds minlat="{LAT0}" minlon="{LON0}" maxlat="{LAT0 + 0.005}" '
        f'maxlon="{LON0 + 0.005}"/>\n{body}\n</osm>\n'
    )


@pytest.fixture
def town_osm(tmp_path) -> Path:
    path = tmp_path / "town.osm"
    path.write_text(_town_xml(), encoding="utf-8")
    return path


@pytest.fixture
def town(town_osm) -> OsmLayers:
    return read_osm(town_osm)


def test_layers_present_in_wgs84(town):
    assert set(town.keys()) == {"boundary", "roads", "pois", "buildings", "water", "addresses"}
    for name in town:
        assert town[name].crs.equals(WGS84), name
    assert town.bounds == pytest.approx((LON0, LAT0, LON0 + 0.005, LAT0 + 0.005))


def test_roads_keep_unnamed_and_normalise_oneway(town):
    roads = town["roads"].set_index("osm_id")
    assert set(roads.index) == {"way/1", "way/2", "way/3", "way/4"}
    assert pd.isna(roads.loc["way/3", "name"])
    assert bool(roads.loc["way/3", "bridge"]) is True
    assert bool(roads.loc["way/1", "bridge"]) is False
    assert roads.loc["way/1", "oneway"] == "no"
    assert roads.loc["way/1", "lanes"] == 4
    assert roads.loc["way/1", "ref"] == "S206"
    assert roads.loc["way/4", "oneway"] == "yes"  # roundabout implies one-way
    # oneway=-1: geometry reversed so the direction of travel is the line's direction
    xinzhou = roads.loc["way/2"]
    assert xinzhou["oneway"] == "yes"
    first, last = xinzhou.geometry.coords[0], xinzhou.geometry.coords[-1]
    assert first[1] > last[1]
    assert set(roads["oneway"]) <= {"yes", "no"}
    assert all(isinstance(g, LineString) for g in roads.geometry)


def test_pois_are_named_typed_and_from_areas(town):
    pois = town["pois"].set_index("name")
    assert "只有名字的点" not in pois.index  # a name alone is not a POI
    assert len(town["pois"]) == len(pois)  # no duplicates
    assert pois.loc["城东农贸市场", "type"] == "农贸市场"
    assert pois.loc["城东农贸市场", "osm_tag"] == "amenity=marketplace"
    assert pois.loc["南门公厕", "type"] == "公厕"
    assert pois.loc["南门公厕", "addr_street"] == "建设路"
    assert pois.loc["好利来", "type"] == "其他"
    assert pois.loc["柏里村", "type"] == "城中村"
    hospital = pois.loc["贵溪市人民医院"]
    assert hospital["type"] == "医院"
    assert hospital["osm_type"] == "way"
    assert hospital["osm_id"] == "way/11"
    ward = box(LON0, LAT0 + 4 * STEP, LON0 + STEP, LAT0 + 5 * STEP)
    assert isinstance(hospital.geometry, Point)
    assert ward.contains(hospital.geometry)
    # unnamed toilets are dropped: the project cannot name them in a problem report
    assert (town["pois"]["type"] == "公厕").sum() == 1


def test_buildings_from_ways_and_relations(town):
    buildings = town["buildings"].set_index("osm_id")
    assert set(buildings.index) == {"way/10", "relation/502"}
    assert buildings.loc["way/10", "levels"] == 6
    assert buildings.loc["way/10", "building"] == "apartments"
    footprint = buildings.loc["way/10"].geometry
    assert isinstance(footprint, Polygon) and footprint.is_valid
    expected = box(LON0 + 3 * STEP, LAT0 + STEP, LON0 + 4 * STEP, LAT0 + 2 * STEP)
    assert footprint.symmetric_difference(expected).area < 1e-12


def test_boundary_assembled_and_incomplete_relation_warned(town):
    boundary = town["boundary"]
    assert list(boundary["name"]) == ["东门街道"]
    assert boundary["admin_level"].iloc[0] == 8
    outline = boundary.geometry.iloc[0]
    assert isinstance(outline, Polygon)
    expected = box(LON0, LAT0, LON0 + 5 * STEP, LAT0 + 5 * STEP)
    assert outline.symmetric_difference(expected).area < 1e-12
    assert any("relation/501" in w and "贵溪市" in w for w in town.warnings)
    assert not any("relation/500" in w for w in town.warnings)


def test_water_lines_and_areas(town):
    water = town["water"].set_index("osm_id")
    assert water.loc["way/12", "name"] == "信江"
    assert water.loc["way/12"].geometry.geom_type == "LineString"
    assert water.loc["way/13"].geometry.geom_type == "Polygon"
    assert water.loc["way/13", "osm_tag"] == "natural=water"


@pytest.mark.parametrize("suffix", [".osm.gz", ".osm.bz2", ".osm.pbf"])
def test_compressed_and_pbf_give_the_same_layers(tmp_path, town_osm, town, suffix):
    target = tmp_path / f"copy{suffix}"
    if suffix == ".osm.gz":
        target.write_bytes(gzip.compress(town_osm.read_bytes()))
    elif suffix == ".osm.bz2":
        target.write_bytes(bz2.compress(town_osm.read_bytes()))
    else:
        writer = osmium.SimpleWriter(str(target))
        try:
            for obj in osmium.FileProcessor(str(town_osm)):
                writer.add(obj)
        finally:
            writer.close()
    other = read_osm(target)
    for name in town:
        left = town[name].sort_values("osm_id").reset_index(drop=True)
        right = other[name].sort_values("osm_id").reset_index(drop=True)
        assert list(left["osm_id"]) == list(right["osm_id"]), name
        assert left.geometry.geom_equals_exact(right.geometry, 1e-7).all(), name


def test_missing_bad_and_empty_files(tmp_path):
    with pytest.raises(LayerReadError, match="nothing.osm"):
        read_osm(tmp_path / "nothing.osm")
    csv = tmp_path / "roads.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(LayerReadError, match="roads.csv"):
        read_osm(csv)
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm><node id='1' lat='x'", encoding="utf-8")
    with pytest.raises(LayerReadError, match="broken.osm"):
        read_osm(broken)
    empty = tmp_path / "empty.osm"
    empty.write_text('<?xml version="1.0"?><osm version="0.6"></osm>', encoding="utf-8")
    layers = read_osm(empty)
    assert all(layers[name].empty for name in layers)
    assert "name" in layers["roads"].columns


# --------------------------------------------------------- derive_builtup_boundary


def _street_grid(origin_lon: float, origin_lat: float, n: int, step: float) -> list[LineString]:
    lines = []
    for k in range(n + 1):
        lines.append(
            LineString(
                [
                    (origin_lon + k * step, origin_lat),
                    (origin_lon + k * step, origin_lat + n * step),
                ]
            )
        )
        lines.append(
            LineString(
                [
                    (origin_lon, origin_lat + k * step),
                    (origin_lon + n * step, origin_lat + k * step),
                ]
            )
        )
    return lines


def test_builtup_keeps_largest_part_and_closes_small_holes():
    # a 2 km town of 200 m blocks and a small hamlet 5 km away
    town_lines = _street_grid(LON0, LAT0, 10, 0.002)
    hamlet = _street_grid(LON0 + 0.05, LAT0, 1, 0.002)
    roads = gpd.GeoDataFrame(geometry=town_lines + hamlet, crs=WGS84)
    outline = derive_builtup_boundary(roads, None, buffer_m=80)
    assert isinstance(outline, Polygon) and outline.is_valid
    assert not outline.intersects(box(LON0 + 0.049, LAT0 - 0.001, LON0 + 0.053, LAT0 + 0.003))
    # 200 m blocks are closed by an 80 m buffer: no holes left inside the town
    assert len(outline.interiors) == 0
    assert outline.contains(Point(LON0 + 0.011, LAT0 + 0.011))


def test_builtup_keeps_large_holes():
    ring = [
        LineString(
            [
                (LON0, LAT0),
                (LON0 + 0.02, LAT0),
                (LON0 + 0.02, LAT0 + 0.02),
                (LON0, LAT0 + 0.02),
                (LON0, LAT0),
            ]
        )
    ]
    roads = gpd.GeoDataFrame(geometry=ring, crs=WGS84)
    outline = derive_builtup_boundary(roads, None, buffer_m=50, max_hole_m2=200_000)
    assert len(outline.interiors) == 1  # a 2 km × 2 km field stays open
    filled = derive_builtup_boundary(roads, None, buffer_m=50, max_hole_m2=10_000_000)
    assert len(filled.interiors) == 0


def test_builtup_needs_geometry():
    empty = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)
    with pytest.raises(GridBuildError):
        derive_builtup_boundary(empty, None)


# ------------------------------------------------------------------ the real extract


# ------------------------------------------------------------------ addresses and other names

FIRST_DAY = Path(__file__).parents[1] / "fixtures" / "first_day_town.osm"


@pytest.fixture(scope="module")
def first_day() -> OsmLayers:
    return read_osm(FIRST_DAY)


def test_door_plates_from_buildings_and_nodes(first_day):
    plates = first_day["addresses"]
    assert plates.crs.equals(WGS84)
    got = {(row.street, int(row.number), row.osm_id) for row in plates.itertuples()}
    # The building's plate sits inside its footprint; "25号" is read as 25.
    assert got == {("人民路", 23, "way/200"), ("人民路", 25, "node/14")}
    building = first_day["buildings"].set_index("osm_id").loc["way/200"].geometry
    plate = plates.set_index("osm_id").loc["way/200"].geometry
    assert plate.geom_type == "Point" and building.contains(plate)


def test_unnamed_door_plate_is_not_a_poi(first_day):
    assert "node/14" not in set(first_day["pois"]["osm_id"])
    assert "way/200" not in set(first_day["pois"]["osm_id"])


def test_pois_carry_their_other_names(first_day):
    pois = first_day["pois"].set_index("name")
    assert pois.loc["信江实验中学", "alt_name"] == "第二中学"
    assert pois.loc["信江实验中学", "type"] == "学校"
    assert pois.loc["城东农贸综合市场", "short_name"] == "东市"
    roads = first_day["roads"].set_index("name")
    assert roads.loc["人民路", "alt_name"] == "人民大道"


def test_named_building_without_other_tags_is_a_landmark(first_day):
    pois = first_day["pois"].set_index("name")
    assert pois.loc["金茂大厦", "type"] == "建筑"
    assert pois.loc["金茂大厦", "osm_tag"] == "building=commercial"
    # The unnamed shop is a building, not a place.
    assert len(first_day["buildings"]) == 2


@pytest.mark.parametrize(
    ("text", "number"),
    [("23", 23), ("23号", 23), ("23-1", 23), ("二十三号", 23), ("东侧", None), (None, None)],
)
def test_parse_house_number(text, number):
    from gis.osm import parse_house_number

    assert parse_house_number(text) == number


# ------------------------------------------------------------------ places mapped as areas

AREAS = Path(__file__).parents[1] / "fixtures" / "landmark_areas_town.osm"


@pytest.fixture(scope="module")
def areas() -> OsmLayers:
    return read_osm(AREAS)


def test_area_pois_stay_points_and_carry_their_outline(areas):
    assert areas.warnings == []
    pois = areas["pois"].set_index("osm_id")
    assert set(pois.geom_type) == {"Point"}
    school = pois.loc["way/300"]
    outline = shapely.from_wkt(school["footprint"])
    assert outline.equals(box(117.2060, 28.3053, 117.2090, 28.3075))
    assert outline.contains(school.geometry)
    park = pois.loc["way/700"]
    assert park["type"] == "公园广场"
    assert shapely.from_wkt(park["footprint"]).equals(box(117.2010, 28.3065, 117.2040, 28.3095))
    # A node has no outline; a building-free export has no buildings.
    assert pd.isna(pois.loc["node/24", "footprint"])
    assert len(areas["buildings"]) == 0


def test_multipolygon_market_outline_keeps_its_courtyard(areas):
    market = areas["pois"].set_index("osm_id").loc["relation/900"]
    assert market["type"] == "农贸市场" and market["osm_type"] == "relation"
    outline = shapely.from_wkt(market["footprint"])
    courtyard = box(117.2075, 28.3020, 117.2085, 28.3030)
    assert outline.geom_type == "Polygon" and len(outline.interiors) == 1
    assert outline.symmetric_difference(
        box(117.2060, 28.3010, 117.2100, 28.3045).difference(courtyard)
    ).area < 1e-12
    # The point stands inside the market, not in the courtyard.
    assert outline.contains(market.geometry)


def test_first_day_school_area_has_its_outline_and_the_node_market_none(first_day):
    pois = first_day["pois"].set_index("name")
    outline = shapely.from_wkt(pois.loc["信江实验中学", "footprint"])
    assert outline.equals(box(117.2060, 28.3010, 117.2090, 28.3040))
    assert pd.isna(pois.loc["城东农贸综合市场", "footprint"])


@pytest.mark.slow
@needs_guixi
def test_guixi_counts_what_the_export_carries(guixi):
    """What the real export gives the geocoder (it maps no door plates or other names)."""
    counts = {name: len(guixi[name]) for name in guixi}
    assert counts["roads"] >= 176
    assert counts["pois"] >= 13
    assert counts["buildings"] >= 165
    # The export carries no addr:housenumber and no alt_name/short_name: nothing invented.
    assert counts["addresses"] == 0
    pois = guixi["pois"]
    assert pois[["alt_name", "short_name", "old_name"]].isna().all().all()
    assert {"贵溪五中", "贵溪市实验中学", "贵溪市第四中学", "贵溪市第九中学"} <= set(pois["name"])


@pytest.fixture(scope="module")
def guixi() -> OsmLayers:
    if not (GUIXI / "guixi.osm.gz").is_file():
        pytest.skip(f"real OSM extract not found at {GUIXI}")
    return read_osm(GUIXI / "guixi.osm.gz")


def _reference(name: str) -> gpd.GeoDataFrame:
    return gpd.read_file(GUIXI / f"{name}.geojson")


@needs_guixi
def test_guixi_named_roads_all_found(guixi):
    expected = set(_reference("roads")["name"].dropna())
    found = set(guixi["roads"]["name"].dropna())
    assert len(expected) >= 30
    assert expected <= found
    # unnamed roads are kept: the reference has 181 clipped pieces, 59 of them named
    assert guixi["roads"]["name"].isna().sum() > 100
    assert set(_reference("roads")["osm_id"]) <= set(guixi["roads"]["osm_id"])


@needs_guixi
def test_guixi_pois_all_found(guixi):
    ref = _reference("pois")
    pois = guixi["pois"].set_index("osm_id")
    for _, row in ref.iterrows():
        assert row["osm_id"] in pois.index, row["name"]
        got = pois.loc[row["osm_id"]]
        assert got["name"] == row["name"]
        assert got["osm_tag"] == row["osm_tag"]
        assert got.geometry.distance(row.geometry) < 0.002  # same place (areas: inside)
    types = dict(zip(guixi["pois"]["name"], guixi["pois"]["type"], strict=True))
    assert types["贵溪五中"] == "学校"
    assert types["贵溪市人民政府"] == "机关单位"
    assert types["早闲公园"] == "公园广场"


@needs_guixi
def test_guixi_buildings_all_found(guixi):
    ref = _reference("buildings")
    buildings = guixi["buildings"].set_index("osm_id")
    assert set(ref["osm_id"]) <= set(buildings.index)
    assert len(buildings) >= 165
    assert buildings.geometry.is_valid.all()
    sample = ref.iloc[0]
    assert (
        buildings.loc[sample["osm_id"]].geometry.symmetric_difference(sample.geometry).area < 1e-10
    )


@needs_guixi
def test_guixi_dongmen_boundary(guixi):
    boundary = guixi["boundary"]
    dongmen = boundary[(boundary["name"] == "东门街道") & (boundary["admin_level"] == 8)]
    assert len(dongmen) == 1
    geom = dongmen.geometry.iloc[0]
    assert geom.geom_type in ("Polygon", "MultiPolygon") and geom.is_valid
    ref = _reference("boundary")
    ref_geom = ref.loc[ref["kind"] == "admin_level_8"].geometry.iloc[0]
    overlap = shapely.intersection(geom, ref_geom).area / shapely.union(geom, ref_geom).area
    assert overlap > 0.999
    # the other sub-districts are cut by the export and reported, not fatal
    assert any("贵溪市" in w for w in guixi.warnings)


@needs_guixi
def test_guixi_builtup_covers_most_roads(guixi):
    outline = derive_builtup_boundary(guixi["roads"], guixi["buildings"])
    assert isinstance(outline, Polygon) and outline.is_valid
    study = box(*guixi.bounds)
    roads = guixi["roads"].clip(study)
    metric = to_metric(roads)
    inside = to_metric(gpd.GeoDataFrame(geometry=[outline], crs=WGS84)).geometry.iloc[0]
    share = metric.geometry.intersection(inside).length.sum() / metric.geometry.length.sum()
    assert share > 0.8
    buildings = guixi["buildings"]
    assert buildings.geometry.representative_point().within(outline).mean() > 0.85
    # a hull, not the whole export rectangle
    area_km2 = to_metric(gpd.GeoDataFrame(geometry=[outline], crs=WGS84)).area.iloc[0] / 1e6
    assert 2 < area_km2 < 40


@needs_guixi
def test_guixi_reference_files_are_what_we_think():
    # guards the assertions above against a changed shared data set
    pois = json.loads((GUIXI / "pois.geojson").read_text(encoding="utf-8"))
    assert len(pois["features"]) == 7
