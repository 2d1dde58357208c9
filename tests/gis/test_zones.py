"""Tests for gis.zones and the zone coding in gis.coding: 片区 where no community is mapped."""

import geopandas as gpd
import numpy as np
from shapely.geometry import LineString, Polygon, box

from gis.coding import code_grid
from gis.crs import WGS84
from gis.grid import build_square_grid
from gis.zones import major_road_lines, split_points

# A 3 km x 2.5 km town near Guixi, in its UTM zone (EPSG:32650).
UTM = "EPSG:32650"
X0, Y0 = 500_000.0, 3_130_000.0


def to_wgs(geoms) -> gpd.GeoSeries:
    return gpd.GeoSeries(geoms, crs=UTM).to_crs(WGS84)


def town(step: float = 50.0) -> tuple[gpd.GeoDataFrame, object]:
    """3,000 square cells of 50 m over a 3,000 m x 2,500 m town."""
    boundary = to_wgs([box(X0, Y0, X0 + 3000, Y0 + 2500)]).iloc[0]
    return build_square_grid(boundary, size_m=step), boundary


def cross_and_river() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    roads = gpd.GeoDataFrame(
        {"highway": ["primary", "secondary", "residential", "residential"]},
        geometry=to_wgs(
            [
                LineString([(X0 - 100, Y0 + 1250), (X0 + 3100, Y0 + 1250)]),  # east-west
                LineString([(X0 + 1500, Y0 - 100), (X0 + 1500, Y0 + 2600)]),  # north-south
                LineString([(X0 + 400, Y0 - 100), (X0 + 400, Y0 + 2600)]),  # small street
                LineString([(X0 - 100, Y0 + 600), (X0 + 3100, Y0 + 600)]),
            ]
        ).to_numpy(),
        crs=WGS84,
    )
    river = gpd.GeoDataFrame(
        {"kind": ["water"]},
        geometry=to_wgs(
            [Polygon([(X0 + 2200, Y0 - 100), (X0 + 2260, Y0 - 100),
                      (X0 + 2260, Y0 + 2600), (X0 + 2200, Y0 + 2600)])]
        ).to_numpy(),
        crs=WGS84,
    )
    return roads, river


def metric_points(cells: gpd.GeoDataFrame) -> np.ndarray:
    pts = cells.geometry.to_crs(UTM).representative_point()
    return np.column_stack([pts.x.to_numpy() - X0, pts.y.to_numpy() - Y0])


def test_zones_follow_the_cross_of_roads_and_the_river():
    cells, _ = town()
    assert len(cells) == 3000
    roads, river = cross_and_river()
    coded, zones = code_grid(
        cells, county_code="360681", subdistricts=None, communities=None,
        roads=roads, water=river, rest_name="城区",
    )
    # Roads cut the town into 2 x 3 blocks (the river is a third north-south line).
    assert len(zones) >= 4
    assert zones["provisional"].all()
    assert (zones["cell_count"] < 999).all()
    assert zones["cell_count"].sum() == 3000
    assert coded["code"].is_unique
    assert coded["code"].str.fullmatch(r"360681\d{9}").all()
    assert not (coded["subdistrict_code"] == "000").any()
    assert not (coded["community_code"] == "000").any()
    assert set(coded["subdistrict_code"]) == {"001"}
    assert zones["name"].str.fullmatch(r"城区 第\d+片区").all()
    # No zone straddles a major road or the river: each zone's cells lie on one side.
    xy = metric_points(coded)
    for _, members in coded.groupby("community_code").groups.items():
        pts = xy[coded.index.get_indexer(members)]
        for line, axis in ((1250, 1), (1500, 0), (2230, 0)):
            side = pts[:, axis] < line
            assert side.all() or (~side).all(), (line, axis)
    # The small residential streets do not cut zones: the block west of 1500 m and north
    # of 1250 m is one zone (its 30 x 25 = 750 cells stay under the split share).
    nw = (xy[:, 0] < 1500) & (xy[:, 1] > 1250)
    assert coded.loc[nw, "community_code"].nunique() == 1


def test_serials_run_west_to_east_north_to_south_inside_a_zone():
    cells, _ = town()
    roads, river = cross_and_river()
    coded, _ = code_grid(cells, county_code="360681", subdistricts=None, communities=None,
                         roads=roads, water=river)
    xy = metric_points(coded)
    zone = coded["community_code"] == coded["community_code"].iloc[0]
    sub = coded[zone].assign(x=xy[zone.to_numpy(), 0], y=xy[zone.to_numpy(), 1])
    sub = sub.sort_values("serial")
    first, second = sub.iloc[0], sub.iloc[1]
    assert first["serial"] == "001"
    assert abs(first["y"] - sub["y"].max()) < 1  # north row first
    assert second["x"] > first["x"]  # then eastwards


def test_an_oversized_block_is_split_under_the_limit():
    cells, _ = town()
    # No roads at all: 3,000 cells in one block must still be coded, in parts < 999.
    coded, zones = code_grid(cells, county_code="360681", subdistricts=None, communities=None)
    assert len(zones) >= 4
    assert (zones["cell_count"] < 999).all()
    assert coded["code"].is_unique


def test_real_communities_keep_their_codes_and_zones_come_after():
    cells, _ = town()
    roads, river = cross_and_river()
    west = to_wgs([box(X0 - 10, Y0 - 10, X0 + 1000, Y0 + 2000)])
    comms = gpd.GeoDataFrame(
        {"code": ["003"], "name": ["东门社区"], "subdistrict_code": ["004"]},
        geometry=west.to_numpy(), crs=WGS84,
    )
    subs = gpd.GeoDataFrame(
        {"code": ["004"], "name": ["东门街道"]},
        geometry=to_wgs([box(X0 - 10, Y0 - 10, X0 + 2000, Y0 + 2510)]).to_numpy(), crs=WGS84,
    )
    coded, zones = code_grid(cells, county_code="360681", subdistricts=subs, communities=comms,
                             roads=roads, water=river, rest_name="城区")
    real = zones[~zones["provisional"]]
    assert real[["subdistrict_code", "community_code", "name"]].values.tolist() == [
        ["004", "003", "东门社区"]
    ]
    assert real["cell_count"].iloc[0] == 20 * 40
    prov = zones[zones["provisional"]]
    # East of 东门街道 lies the rest: sub-district 005 "城区"; 东门街道's own uncovered
    # part (north of 2000 m, east of 1000 m) gets zones numbered after its community 003.
    assert set(prov["subdistrict_code"]) == {"004", "005"}
    dongmen = prov[prov["subdistrict_code"] == "004"]
    assert (dongmen["community_code"].astype(int) > 3).all()
    assert dongmen["name"].str.startswith("东门街道 第").all()
    assert (prov[prov["subdistrict_code"] == "005"]["subdistrict_name"] == "城区").all()
    assert coded["code"].is_unique
    assert not coded["code"].str[6:12].str.contains("000").any()


def test_a_stray_sliver_joins_its_neighbour_instead_of_becoming_a_zone():
    cells, _ = town(step=100.0)
    comm = to_wgs([box(X0, Y0, X0 + 2950, Y0 + 2500)])  # misses the last 50 m column half
    comms = gpd.GeoDataFrame({"code": ["001"], "name": ["西门社区"], "subdistrict_code": ["001"]},
                             geometry=comm.to_numpy(), crs=WGS84)
    subs = gpd.GeoDataFrame({"code": ["001"], "name": ["云岭镇"]},
                            geometry=to_wgs([box(X0, Y0, X0 + 2950, Y0 + 2500)]).to_numpy(),
                            crs=WGS84)
    # One extra cell east of everything: no polygon covers it at all.
    extra = to_wgs([box(X0 + 3000, Y0, X0 + 3100, Y0 + 100)]).iloc[0]
    cells = gpd.GeoDataFrame(geometry=[*cells.geometry, extra], crs=WGS84)
    coded, zones = code_grid(cells, county_code="360681", subdistricts=subs, communities=comms)
    assert zones[["subdistrict_code", "community_code"]].values.tolist() == [["001", "001"]]
    assert not zones["provisional"].any()
    assert coded["code"].is_unique


def test_major_roads_fall_back_to_the_widest_classes_present():
    roads = gpd.GeoDataFrame(
        {"highway": ["residential", "service", "unclassified", "footway"]},
        geometry=[LineString([(0, 0), (1, 0)])] * 4, crs=UTM,
    )
    assert len(major_road_lines(roads)) == 2  # unclassified + residential
    roads.loc[1, "highway"] = "tertiary"
    assert len(major_road_lines(roads)) == 1


def test_split_points_makes_near_equal_parts():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 3000, 2500), rng.uniform(0, 1000, 2500)
    parts = split_points(x, y, max_cells=999)
    counts = np.bincount(parts)
    assert len(counts) == 4 and counts.max() - counts.min() <= 1


def test_check_grid_refuses_a_000_slot():
    from gis.check import check_grid

    cells, _ = town(step=500.0)
    cells["code"] = [f"360681001{'000' if k == 0 else '001'}{k + 1:03d}" for k in range(len(cells))]
    report = check_grid(cells, county_code="360681")
    bad = [f for f in report.findings if f.kind == "malformed_code"]
    assert len(bad) == 1 and "社区段为 000" in bad[0].message and not report.ok
