"""Tests for gis.locate: the point→cell locator against geopandas.sjoin."""

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from gis.grid import build_block_grid, build_square_grid
from gis.locate import CellLocator, locate_cells


def reference(lon, lat, cells, predicate="within"):
    """sjoin answer with the locator's rule: lowest cell index, -1 when none."""
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    j = gpd.sjoin(pts, cells[["geometry"]].reset_index(drop=True), predicate=predicate)
    out = np.full(len(lon), -1)
    best = j["index_right"].groupby(level=0).min()
    out[best.index.to_numpy()] = best.to_numpy()
    return out


def random_points(bounds, n, seed):
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds
    pad = 0.0005
    return rng.uniform(minx - pad, maxx + pad, n), rng.uniform(miny - pad, maxy + pad, n)


@pytest.fixture(scope="module")
def boundary():
    # A pentagon so that the square grid has clipped cells along slanted edges.
    from shapely.geometry import Polygon

    return Polygon(
        [(117.20, 28.30), (117.215, 28.298), (117.222, 28.31), (117.21, 28.318), (117.198, 28.31)]
    )


def test_square_grid_uses_lattice_and_matches_sjoin(boundary):
    cells = build_square_grid(boundary, size_m=100)
    loc = CellLocator(cells)
    assert loc.strategy == "lattice"
    lon, lat = random_points(boundary.bounds, 200_000, 1)
    assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells))


def test_block_grid_uses_raster_and_matches_sjoin(boundary):
    from shapely.geometry import LineString

    roads = gpd.GeoDataFrame(
        {"highway": ["primary", "residential", "tertiary"]},
        geometry=[
            LineString([(117.19, 28.305), (117.23, 28.306)]),
            LineString([(117.205, 28.29), (117.207, 28.33)]),
            LineString([(117.19, 28.299), (117.23, 28.315)]),
        ],
        crs=4326,
    )
    cells = build_block_grid(boundary, roads=roads, target_area_m2=20_000)
    loc = CellLocator(cells)
    assert loc.strategy == "raster"
    lon, lat = random_points(boundary.bounds, 200_000, 2)
    assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells))


def test_edges_and_corners_follow_lowest_index_rule():
    step = 0.001
    cells = gpd.GeoDataFrame(
        geometry=[
            box(117.2 + i * step, 28.3 + j * step, 117.2 + (i + 1) * step, 28.3 + (j + 1) * step)
            for j in range(3)
            for i in range(3)
        ],
        crs=4326,
    )
    # Shuffle so that the lowest index is not simply the south-west cell.
    cells = cells.iloc[[4, 8, 0, 2, 6, 1, 3, 5, 7]].reset_index(drop=True)
    xs = 117.2 + step * np.array([1, 1, 2, 0, 3, 1.5, 0.5, 3.0001])
    ys = 28.3 + step * np.array([1, 1.5, 2, 0, 3, 0, 3, 1])
    got = CellLocator(cells).locate(xs, ys)
    want = reference(xs, ys, cells, predicate="intersects")
    assert np.array_equal(got, want)
    assert got[-1] == -1
    # Square grid of boxes exactly aligned to lon/lat is also located right.
    assert locate_cells(xs, ys, cells).tolist() == got.tolist()


def test_locate_one_and_nan():
    cells = gpd.GeoDataFrame(geometry=[box(117.2, 28.3, 117.21, 28.31)], crs=4326)
    loc = CellLocator(cells)
    assert loc.locate_one(117.205, 28.305) == 0
    assert loc.locate_one(117.3, 28.305) is None
    assert loc.locate([np.nan], [28.3]).tolist() == [-1]


def test_overlapping_cells_take_lowest_index():
    cells = gpd.GeoDataFrame(
        geometry=[box(117.2, 28.3, 117.21, 28.31), box(117.205, 28.3, 117.215, 28.31)],
        crs=4326,
    )
    lon, lat = random_points(cells.total_bounds, 50_000, 3)
    assert np.array_equal(CellLocator(cells).locate(lon, lat), reference(lon, lat, cells))
