"""Tests for gis.grid: square, H3 and street-block grids built over hand-made layers."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, box

from gis.check import check_grid
from gis.coding import code_cells
from gis.crs import to_metric, utm_crs_for_geom
from gis.errors import GridBuildError
from gis.grid import build_block_grid, build_h3_grid, build_square_grid

GUIXI = Path(__file__).parents[2].parent / "shared/data/osm/guixi"
LON0, LAT0 = 117.22, 28.30


def metric_box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A WGS-84 polygon that is the box (x0, y0, x1, y1) metres from (LON0, LAT0)."""
    crs = utm_crs_for_geom(Point(LON0, LAT0))
    origin = gpd.GeoSeries([Point(LON0, LAT0)], crs=4326).to_crs(crs).iloc[0]
    b = box(origin.x + x0, origin.y + y0, origin.x + x1, origin.y + y1)
    return gpd.GeoSeries([b], crs=crs).to_crs(4326).iloc[0]


def metric_lines(lines: list[list[tuple[float, float]]], **cols) -> gpd.GeoDataFrame:
    crs = utm_crs_for_geom(Point(LON0, LAT0))
    origin = gpd.GeoSeries([Point(LON0, LAT0)], crs=4326).to_crs(crs).iloc[0]
    geoms = [LineString([(origin.x + x, origin.y + y) for x, y in ln]) for ln in lines]
    return gpd.GeoDataFrame(cols, geometry=geoms, crs=crs).to_crs(4326)


@pytest.fixture
def boundary() -> shapely.Polygon:
    return metric_box(0, 0, 300, 300)


@pytest.fixture
def roads_3x3() -> gpd.GeoDataFrame:
    """Two N-S and two E-W roads making a 3x3 block pattern of 100 m blocks."""
    lines = [
        [(100, -20), (100, 320)],
        [(200, -20), (200, 320)],
        [(-20, 100), (320, 100)],
        [(-20, 200), (320, 200)],
    ]
    return metric_lines(lines, highway=["primary", "residential", "secondary", "tertiary"])


def assert_exact_cover(cells: gpd.GeoDataFrame, boundary: shapely.Polygon) -> None:
    report = check_grid(cells, boundary=boundary, tolerance_m2=0.5)
    assert report.ok, [f.message for f in report.findings]
    assert cells.is_valid.all()
    m = to_metric(cells)
    b = to_metric(gpd.GeoDataFrame(geometry=[boundary], crs=4326)).area.iloc[0]
    assert m.area.sum() == pytest.approx(b, rel=1e-6)


def test_square_grid_covers_boundary_and_merges_slivers(boundary):
    # 250 m squares on a lattice aligned to multiples of 250 m leave clipped pieces.
    cells = build_square_grid(boundary, size_m=50)
    assert_exact_cover(cells, boundary)
    areas = to_metric(cells).area
    assert areas.min() >= 0.1 * 50 * 50 - 1e-6
    assert areas.max() <= 2 * 50 * 50 + 1e-6
    assert set(cells.geom_type) == {"Polygon"}


def test_square_grid_rejects_bad_size(boundary):
    with pytest.raises(GridBuildError, match="边长"):
        build_square_grid(boundary, size_m=0)


def test_square_grid_on_concave_boundary():
    # An L-shaped boundary: a notch cuts squares into separate pieces.
    outer = metric_box(0, 0, 400, 400)
    notch = metric_box(130, 130, 400, 400)
    shape = outer.difference(notch)
    cells = build_square_grid(shape, size_m=100)
    assert_exact_cover(cells, shape)


def test_h3_grid_covers_boundary(boundary):
    cells = build_h3_grid(boundary, resolution=10)
    assert_exact_cover(cells, boundary)
    assert cells["h3"].is_unique
    import h3

    assert all(h3.is_valid_cell(c) for c in cells["h3"])


def test_block_grid_3x3(boundary, roads_3x3):
    cells = build_block_grid(boundary, roads=roads_3x3, target_area_m2=10_000)
    assert len(cells) == 9
    assert_exact_cover(cells, boundary)
    areas = to_metric(cells).area.to_numpy()
    assert np.allclose(areas, 10_000, rtol=1e-6)


def test_block_grid_merges_sliver_but_not_across_major_road(boundary, roads_3x3):
    # A residential lane 10 m from the west edge makes a 10x100 m sliver in each
    # western block: it must merge with its eastern neighbour across the lane.
    lane = metric_lines([[(10, -20), (10, 320)]], highway=["residential"])
    roads = gpd.GeoDataFrame(pd_concat([roads_3x3, lane]), geometry="geometry", crs=4326)
    cells = build_block_grid(boundary, roads=roads, target_area_m2=10_000)
    assert len(cells) == 9
    assert_exact_cover(cells, boundary)
    # A sliver along the primary road at x=100 cannot merge across it.
    side = metric_lines([[(95, -20), (95, 320)]], highway=["primary"])
    roads2 = gpd.GeoDataFrame(pd_concat([roads_3x3, side]), geometry="geometry", crs=4326)
    cells2 = build_block_grid(boundary, roads=roads2, target_area_m2=10_000)
    assert_exact_cover(cells2, boundary)
    assert_no_major_road_inside(cells2, roads2)


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def assert_no_major_road_inside(cells: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> None:
    crs = utm_crs_for_geom(shapely.box(*cells.total_bounds))
    major = roads[roads["highway"].isin(["primary", "secondary", "tertiary"])].to_crs(crs)
    lines = shapely.union_all(major.geometry.to_numpy())
    inner = cells.to_crs(crs).buffer(-0.5)
    inside = shapely.length(shapely.intersection(inner.to_numpy(), lines))
    assert inside.max() < 1.0, f"major road runs {inside.max():.1f} m inside a cell"


def test_block_grid_splits_large_blocks(boundary):
    # No roads at all: one 90,000 m² block must be split to parts near 10,000 m².
    roads = metric_lines([[(-50, -50), (-40, -50)]], highway=["residential"])
    cells = build_block_grid(boundary, roads=roads, target_area_m2=10_000)
    assert_exact_cover(cells, boundary)
    areas = to_metric(cells).area
    assert 7 <= len(cells) <= 11
    assert areas.max() <= 25_000
    assert areas.min() >= 2_500


def test_block_grid_respects_communities_and_river(boundary, roads_3x3):
    # Two communities split at x=150 (inside the middle column of blocks).
    crs = utm_crs_for_geom(Point(LON0, LAT0))
    west = metric_box(-10, -10, 150, 310)
    east = metric_box(150, -10, 310, 310)
    communities = gpd.GeoDataFrame(
        {"code": ["001", "002"], "subdistrict_code": ["001", "001"]},
        geometry=[west, east],
        crs=4326,
    )
    river = gpd.GeoDataFrame(geometry=[metric_box(-10, 140, 310, 160)], crs=4326)
    cells = build_block_grid(boundary, roads=roads_3x3, communities=communities, barriers=river)
    assert_exact_cover(cells, boundary)
    report = check_grid(cells, boundary=boundary, communities=communities, tolerance_m2=0.5)
    assert report.ok, [f.message for f in report.findings]
    assert (cells["kind"] == "water").sum() >= 2
    assert set(cells["community"].dropna()) == {"001", "002"}
    assert crs is not None


def test_block_grid_handles_gaps_and_duplicates(boundary):
    # Roads stopping 3 m short of each other, duplicated lines, and a road running
    # past the boundary: the blocks still close.
    lines = [
        [(100, 3), (100, 297)],
        [(100, 3), (100, 297)],
        [(-20, 150), (97, 150)],
        [(103, 150), (400, 150)],
    ]
    roads = metric_lines(lines, highway=["residential"] * 4)
    cells = build_block_grid(boundary, roads=roads, target_area_m2=15_000)
    assert_exact_cover(cells, boundary)
    assert len(cells) == 4


def test_block_grid_dead_end_major_road_cuts_block(boundary):
    # A primary road that stops in the middle of the area must not run inside a cell.
    roads = metric_lines([[(150, -20), (150, 180)]], highway=["primary"])
    cells = build_block_grid(boundary, roads=roads, target_area_m2=45_000)
    assert_exact_cover(cells, boundary)
    assert_no_major_road_inside(cells, roads)


@pytest.mark.slow
def test_block_grid_on_guixi():
    if not (GUIXI / "roads.geojson").exists():
        pytest.skip(f"real OSM data not found at {GUIXI}")
    roads = gpd.read_file(GUIXI / "roads.geojson")
    bounds = gpd.read_file(GUIXI / "boundary.geojson")
    boundary = bounds[bounds["kind"] == "derived_builtup"].geometry.iloc[0]
    # Four made-up communities (quadrants): a code holds at most 999 cells each.
    minx, miny, maxx, maxy = boundary.bounds
    mx, my = (minx + maxx) / 2, (miny + maxy) / 2
    quads = [
        box(minx, my, mx, maxy),
        box(mx, my, maxx, maxy),
        box(minx, miny, mx, my),
        box(mx, miny, maxx, my),
    ]
    communities = gpd.GeoDataFrame(
        {"code": ["001", "002", "003", "004"], "subdistrict_code": ["001"] * 4},
        geometry=[q.intersection(boundary) for q in quads],
        crs=4326,
    )
    cells = build_block_grid(boundary, roads=roads, communities=communities, target_area_m2=10_000)
    assert 1000 < len(cells) < 4000
    report = check_grid(cells, boundary=boundary, communities=communities)
    assert report.ok, [f.message for f in report.findings[:5]]
    assert_no_major_road_inside(cells, roads)
    coded = code_cells(cells, county_code="360681", subdistricts=None, communities=communities)
    assert coded["code"].is_unique
    assert coded["code"].str.fullmatch(r"\d{15}").all()
