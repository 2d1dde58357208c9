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


# --------------------------------------------------------------------------- lattice
def edge_points(cells, seed, n=20_000):
    """Vertices and edge midpoints of the cells, nudged by 0 to ~1 m in lon/lat.

    These are the points the lattice margin and the raster's edge band exist for.
    """
    import shapely

    xy = shapely.get_coordinates(cells.geometry.boundary.to_numpy())
    mids = (xy[1:] + xy[:-1]) / 2
    base = np.concatenate([xy, mids])
    rng = np.random.default_rng(seed)
    pick = base[rng.integers(0, len(base), n)]
    scale = np.array([0.0, 1e-12, 1e-10, 1e-9, 1e-8, 3e-8, 1e-7, 1e-6, 1e-5])
    off = rng.choice(scale, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    pts = pick + off
    return pts[:, 0], pts[:, 1]


def test_square_grid_points_on_and_near_edges_follow_rule(boundary):
    cells = build_square_grid(boundary, size_m=100)
    loc = CellLocator(cells)
    assert loc.strategy == "lattice"
    lon, lat = edge_points(cells, 4)
    got = loc.locate(lon, lat)
    assert np.array_equal(got, reference(lon, lat, cells, predicate="intersects"))
    # Exact vertices lie on cell boundaries: they must be answered, never dropped.
    import shapely

    xy = shapely.get_coordinates(cells.geometry.to_numpy())
    assert (loc.locate(xy[:, 0], xy[:, 1]) >= 0).all()


def test_square_grid_margin_is_small_and_rim_is_outside(boundary):
    cells = build_square_grid(boundary, size_m=100)
    loc = CellLocator(cells)
    # The second-order terms matter: a plain affine map misses by ~6e-3 of a square.
    assert 0 < loc._margin < 1e-3
    table = loc._table
    rim = np.concatenate([table[0], table[-1], table[:, 0], table[:, -1]])
    assert (rim == -1).all()
    assert (table >= 0).sum() > 0.5 * len(cells)


@pytest.mark.parametrize("size_m", [50, 100, 250])
def test_square_grid_shuffled_matches_sjoin(boundary, size_m):
    cells = build_square_grid(boundary, size_m=size_m)
    cells = cells.sample(frac=1, random_state=size_m).reset_index(drop=True)
    loc = CellLocator(cells)
    assert loc.strategy == "lattice"
    lon, lat = random_points(boundary.bounds, 100_000, size_m)
    assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells))


def test_square_grid_with_overlapping_extra_cell(boundary):
    cells = build_square_grid(boundary, size_m=100)
    c = cells.geometry.iloc[len(cells) // 2].centroid
    extra = gpd.GeoDataFrame(geometry=[c.buffer(0.0012)], crs=4326)
    both = gpd.GeoDataFrame(
        geometry=list(extra.geometry) + list(cells.geometry), crs=4326
    )  # the blob comes first, so it wins wherever it overlaps
    loc = CellLocator(both)
    assert loc.strategy == "lattice"
    lon, lat = random_points(boundary.bounds, 100_000, 5)
    got = loc.locate(lon, lat)
    assert np.array_equal(got, reference(lon, lat, both))
    assert (got == 0).sum() > 100


@pytest.mark.parametrize("kind", ["square", "boxes"])
def test_nan_inf_and_far_points_are_outside(boundary, kind):
    if kind == "square":
        cells = build_square_grid(boundary, size_m=100)
    else:
        cells = gpd.GeoDataFrame(
            geometry=[box(117.2, 28.3, 117.21, 28.31), box(117.21, 28.3, 117.22, 28.305)],
            crs=4326,
        )
    loc = CellLocator(cells)
    inside = cells.geometry.iloc[0].representative_point()
    lon = [np.nan, inside.x, np.nan, np.inf, -np.inf, inside.x, 0.0, 180.0, -180.0, inside.x]
    lat = [inside.y, np.nan, np.nan, inside.y, inside.y, np.inf, 0.0, 90.0, -90.0, inside.y]
    got = loc.locate(lon, lat)
    assert got[:-1].tolist() == [-1] * 9
    assert got[-1] == 0


def test_multipolygon_cell_is_located_exactly():
    from shapely.geometry import MultiPolygon

    two = MultiPolygon([box(117.2, 28.3, 117.205, 28.305), box(117.21, 28.31, 117.215, 28.315)])
    cells = gpd.GeoDataFrame(
        geometry=[box(117.205, 28.3, 117.21, 28.31), two, box(117.2, 28.305, 117.205, 28.315)],
        crs=4326,
    )
    loc = CellLocator(cells, pixels_per_cell=8)
    lon, lat = random_points(cells.total_bounds, 100_000, 6)
    assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells))
    elon, elat = edge_points(cells, 7, n=5_000)
    want = reference(elon, elat, cells, predicate="intersects")
    assert np.array_equal(loc.locate(elon, elat), want)


def test_block_grid_points_on_and_near_edges_follow_rule(boundary):
    cells = gpd.GeoDataFrame(
        geometry=[
            box(117.2, 28.3, 117.207, 28.31),
            box(117.207, 28.3, 117.222, 28.304),
            box(117.207, 28.304, 117.222, 28.318),
            box(117.198, 28.31, 117.207, 28.318),
        ],
        crs=4326,
    ).rotate(7, origin=(117.21, 28.31))
    cells = gpd.GeoDataFrame(geometry=cells, crs=4326)
    loc = CellLocator(cells)
    assert loc.strategy == "raster"
    lon, lat = edge_points(cells, 8)
    assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells, predicate="intersects"))


def test_empty_grid_gives_outside():
    cells = gpd.GeoDataFrame(geometry=[], crs=4326)
    assert CellLocator(cells).locate([117.2, np.nan], [28.3, 28.3]).tolist() == [-1, -1]


@pytest.mark.slow
def test_square_grids_anywhere_in_china_match_sjoin():
    """Different latitudes and UTM zones: the fitted map and its margin must hold."""
    from shapely.geometry import Polygon

    rng = np.random.default_rng(9)
    for lon0, lat0 in [(75.9, 39.5), (104.06, 30.67), (126.6, 45.75), (110.3, 20.0)]:
        ring = [(lon0 + 0.03 * np.cos(t), lat0 + 0.025 * np.sin(t)) for t in np.linspace(0, 6, 9)]
        poly = Polygon(ring)
        size = float(rng.choice([60, 100, 200]))
        cells = build_square_grid(poly, size_m=size)
        loc = CellLocator(cells)
        assert loc.strategy == "lattice", (lon0, lat0)
        lon, lat = random_points(poly.bounds, 100_000, int(lon0))
        assert np.array_equal(loc.locate(lon, lat), reference(lon, lat, cells)), (lon0, lat0)
        elon, elat = edge_points(cells, int(lat0), n=10_000)
        want = reference(elon, elat, cells, predicate="intersects")
        assert np.array_equal(loc.locate(elon, elat), want), (lon0, lat0)
