"""Tests for gis.routing on hand-built street grids and on the real Guixi roads."""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point

from gis.errors import CoordinateError, RoutingError
from gis.routing.export import route_to_gpx, route_to_kml
from gis.routing.graph import RoadGraph, build_road_graph
from gis.routing.plan import plan_route, split_route
from gis.routing.search import distance_matrix
from gis.routing.snap import SNAP_WARN_M, snap_points
from gis.routing.tour import solve_tour

GUIXI = Path(__file__).parents[2].parent / "shared/data/osm/guixi"
CHINESE = re.compile(r"[\u4e00-\u9fff]")

# A 4 x 4 street grid near 103.5 E, 22.8 N with ~200 m blocks. Each street is ONE line
# from end to end with no vertex at the crossings, so junctions must come from noding.
LON0, LAT0 = 103.5, 22.8
DLON, DLAT = 0.002, 0.0018
XS = [LON0 + i * DLON for i in range(4)]
YS = [LAT0 + j * DLAT for j in range(4)]


def _grid_roads(*, oneway_row: int | None = 1, extra: list[dict] | None = None):
    rows = []
    for j, y in enumerate(YS):
        rows.append(
            {
                "name": f"东西路{j}",
                "highway": "residential",
                # The one-way row runs west → east only (digitised west → east).
                "oneway": "yes" if j == oneway_row else None,
                "geometry": LineString([(XS[0], y), (XS[-1], y)]),
            }
        )
    for i, x in enumerate(XS):
        rows.append(
            {
                "name": f"南北路{i}",
                "highway": "residential",
                "oneway": None,
                "geometry": LineString([(x, YS[0]), (x, YS[-1])]),
            }
        )
    rows.extend(extra or [])
    return gpd.GeoDataFrame(rows, crs="EPSG:4326")


@pytest.fixture(scope="module")
def roads() -> gpd.GeoDataFrame:
    return _grid_roads()


@pytest.fixture(scope="module")
def walk_graph(roads) -> RoadGraph:
    return build_road_graph(roads, mode="walk")


@pytest.fixture(scope="module")
def drive_graph(roads) -> RoadGraph:
    return build_road_graph(roads, mode="drive")


def _max_offroad_m(graph: RoadGraph, roads: gpd.GeoDataFrame, legs) -> float:
    """Largest distance (m) from any leg vertex to the nearest road line."""
    metric = roads.to_crs(graph.crs)
    road_union = shapely.union_all(metric.geometry.values)
    worst = 0.0
    for leg in legs:
        lon, lat = np.array(leg.coords).T
        x, y = graph.project(lon, lat)
        d = shapely.distance(road_union, shapely.points(x, y))
        worst = max(worst, float(np.max(d)))
    return worst


def _leg_metric_length(graph: RoadGraph, leg: LineString) -> float:
    lon, lat = np.array(leg.coords).T
    x, y = graph.project(lon, lat)
    return float(LineString(np.column_stack([x, y])).length)


def _random_grid_stops(n: int, seed: int) -> list[tuple[float, float]]:
    """Random points ON the grid streets (so snapping distance is ~0)."""
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(n):
        if rng.random() < 0.5:
            pts.append((float(rng.uniform(XS[0], XS[-1])), float(rng.choice(YS))))
        else:
            pts.append((float(rng.choice(XS)), float(rng.uniform(YS[0], YS[-1]))))
    return pts


# ------------------------------------------------------------------ graph building


def test_grid_is_noded_at_crossings_without_shared_vertices(walk_graph):
    # 4 x 4 crossings; each of 8 streets cut into 3 blocks.
    assert walk_graph.n_nodes == 16
    assert walk_graph.n_edges == 24
    assert walk_graph.graph.number_of_edges() == 24
    assert walk_graph.dropped["edges"] == 0
    lengths = [d["weight"] for _, _, d in walk_graph.graph.edges(data=True)]
    assert min(lengths) > 150 and max(lengths) < 260


def test_drive_graph_is_directed_and_oneway_row_has_single_direction(drive_graph):
    g = drive_graph.graph
    assert g.is_directed()
    # 24 pieces; 3 one-way pieces give one arc, 21 two-way pieces give two.
    assert g.number_of_edges() == 3 + 2 * 21
    assert int((drive_graph.edge_fwd ^ drive_graph.edge_bwd).sum()) == 3


def test_drive_excludes_footways_but_walk_keeps_them():
    foot = {
        "name": "步道",
        "highway": "footway",
        "oneway": None,
        "geometry": LineString([(XS[0], YS[0]), (XS[-1], YS[-1])]),
    }
    roads = _grid_roads(extra=[foot])
    walk = build_road_graph(roads, mode="walk")
    drive = build_road_graph(roads, mode="drive")
    assert walk.edge_length.sum() > drive.edge_length.sum() + 700
    assert drive.n_edges == 24


def test_largest_component_kept_and_drop_reported():
    island = {
        "name": "孤路",
        "highway": "residential",
        "oneway": None,
        "geometry": LineString([(XS[0] + 0.03, YS[0]), (XS[0] + 0.031, YS[0])]),
    }
    graph = build_road_graph(_grid_roads(extra=[island]), mode="walk")
    assert graph.n_edges == 24
    assert graph.dropped["edges"] == 1
    assert graph.dropped["components"] == 1
    assert 90 < graph.dropped["length_m"] < 115


def test_oneway_minus_one_is_reverse_only():
    roads = _grid_roads(oneway_row=None)
    roads.loc[1, "oneway"] = "-1"  # row 1 now runs east → west only
    graph = build_road_graph(roads, mode="drive")
    west, east = (XS[0] + 0.0002, YS[1]), (XS[-1] - 0.0002, YS[1])
    m = distance_matrix(graph, snap_points(graph, [west[0], east[0]], [west[1], east[1]]))
    straight = m[1, 0]
    assert straight == pytest.approx(_span_m(graph, west, east), rel=0.01)
    assert m[0, 1] > straight + 300


def _span_m(graph: RoadGraph, a, b) -> float:
    x, y = graph.project([a[0], b[0]], [a[1], b[1]])
    return math.hypot(x[1] - x[0], y[1] - y[0])


def test_empty_or_unusable_roads_raise_chinese_error():
    empty = gpd.GeoDataFrame({"highway": [], "geometry": []}, crs="EPSG:4326")
    with pytest.raises(RoutingError, match=CHINESE):
        build_road_graph(empty, mode="walk")
    steps_only = gpd.GeoDataFrame(
        {"highway": ["steps"], "geometry": [LineString([(LON0, LAT0), (LON0 + 0.001, LAT0)])]},
        crs="EPSG:4326",
    )
    with pytest.raises(RoutingError, match="驾车"):
        build_road_graph(steps_only, mode="drive")


# ------------------------------------------------------------------ snapping, matrix


def test_snap_to_middle_of_edge_not_to_node(walk_graph):
    # 30 m north of the middle of the first block of the bottom street.
    mid_lon = (XS[0] + XS[1]) / 2
    lat = YS[0] + 30 / 111_000
    (snap,) = snap_points(walk_graph, [mid_lon], [lat])
    edge_len = walk_graph.edge_length[snap.edge]
    assert snap.distance_m == pytest.approx(30, abs=1.0)
    assert snap.offset_m == pytest.approx(edge_len / 2, abs=2.0)
    assert snap.snapped_lat == pytest.approx(YS[0], abs=1e-6)
    assert snap.snapped_lon == pytest.approx(mid_lon, abs=1e-6)
    assert not snap.far


def test_far_stop_is_flagged_not_dropped(walk_graph):
    far = (XS[1] + 0.0003, YS[-1] + 500 / 111_000)  # ~500 m north of the top street
    stops = [(XS[0], YS[0]), far, (XS[2], YS[1])]
    snaps = snap_points(walk_graph, [p[0] for p in stops], [p[1] for p in stops])
    assert [s.far for s in snaps] == [False, True, False]
    assert snaps[1].distance_m > SNAP_WARN_M
    route = plan_route(walk_graph, stops)
    assert sorted(route.order) == [0, 1, 2]
    assert route.far_stops == [1]
    assert any("300" in w for w in route.warnings)


def test_distance_matrix_same_edge_and_symmetry(walk_graph, drive_graph):
    y = YS[2]
    a, b = (XS[0] + 0.0005, y), (XS[0] + 0.0015, y)  # same block, 100 m apart
    for graph in (walk_graph, drive_graph):
        m = distance_matrix(graph, snap_points(graph, [a[0], b[0]], [a[1], b[1]]))
        assert m[0, 1] == pytest.approx(_span_m(graph, a, b), rel=1e-3)
        assert m[0, 0] == 0
    stops = _random_grid_stops(12, seed=3)
    snaps = snap_points(walk_graph, [p[0] for p in stops], [p[1] for p in stops])
    m = distance_matrix(walk_graph, snaps)
    assert np.allclose(m, m.T, atol=1e-6)
    # Network distance is never shorter than the straight line.
    x, yy = walk_graph.project([p[0] for p in stops], [p[1] for p in stops])
    straight = np.hypot(x[:, None] - x[None], yy[:, None] - yy[None])
    assert (m >= straight - 0.5).all()


def test_snap_rejects_bad_coordinates(walk_graph):
    with pytest.raises(CoordinateError, match="第 2 个"):
        snap_points(walk_graph, [LON0, float("nan")], [LAT0, LAT0])


# ------------------------------------------------------------------ routes


def test_legs_follow_roads_and_lengths_add_up(walk_graph, roads):
    stops = _random_grid_stops(15, seed=1)
    route = plan_route(walk_graph, stops, start=(XS[0], YS[0]))
    assert sorted(route.order) == list(range(15))
    assert len(route.legs) == 16
    assert _max_offroad_m(walk_graph, roads, route.legs) < 0.5
    metric = [_leg_metric_length(walk_graph, leg) for leg in route.legs]
    assert np.allclose(metric, route.leg_lengths_m, atol=0.5)
    assert route.length_m == pytest.approx(sum(route.leg_lengths_m))
    # Consecutive legs join up: each ends where the next begins.
    for a, b in itertools.pairwise(route.legs):
        assert Point(a.coords[-1]).distance(Point(b.coords[0])) < 1e-7


def test_leg_starts_and_ends_at_projections_mid_edge(walk_graph):
    a = ((XS[0] + XS[1]) / 2, YS[0] + 20 / 111_000)  # 20 m off the middle of a block
    b = (XS[2] + 25 / 102_600, (YS[1] + YS[2]) / 2)  # 25 m off a vertical street
    route = plan_route(walk_graph, [a, b], return_to_start=False)
    (leg,) = route.legs
    first, last = Point(leg.coords[0]), Point(leg.coords[-1])
    sa, sb = route.snaps
    ends = {(round(sa.snapped_lon, 7), round(sa.snapped_lat, 7))}
    ends.add((round(sb.snapped_lon, 7), round(sb.snapped_lat, 7)))
    got = {(round(first.x, 7), round(first.y, 7)), (round(last.x, 7), round(last.y, 7))}
    assert got == ends
    # From the middle of the first block you go 100 m to the corner, not 200 m around.
    assert route.length_m == pytest.approx(
        _span_m(walk_graph, (sa.snapped_lon, sa.snapped_lat), (XS[1], YS[0]))
        + _span_m(walk_graph, (XS[1], YS[0]), (XS[2], YS[0]))
        + _span_m(walk_graph, (XS[2], YS[0]), (sb.snapped_lon, sb.snapped_lat)),
        rel=0.01,
    )


def test_drive_goes_around_one_way_street(walk_graph, drive_graph, roads):
    east, west = (XS[2] + 0.0005, YS[1]), (XS[1] - 0.0005, YS[1])
    direct = _span_m(drive_graph, east, west)
    walk = plan_route(walk_graph, [west], start=east, return_to_start=False)
    drive = plan_route(drive_graph, [west], start=east, return_to_start=False)
    assert walk.length_m == pytest.approx(direct, rel=0.01)
    assert drive.length_m > direct + 2 * 150  # must leave row 1 and come back round
    assert _max_offroad_m(drive_graph, roads, drive.legs) < 0.5
    # The driven leg never runs westward along the one-way row.
    coords = np.array(drive.legs[0].coords)
    on_row = np.abs(coords[:, 1] - YS[1]) < 1e-7
    for (x0, y0), (x1, y1) in itertools.pairwise(coords):
        if abs(y0 - YS[1]) < 1e-7 and abs(y1 - YS[1]) < 1e-7:
            assert x1 >= x0 - 1e-9
    assert on_row.any()
    # With the flow it is the short way.
    back = plan_route(drive_graph, [east], start=west, return_to_start=False)
    assert back.length_m == pytest.approx(direct, rel=0.01)


def test_open_and_closed_routes(walk_graph):
    stops = _random_grid_stops(10, seed=7)
    start = (XS[0], YS[0])
    closed = plan_route(walk_graph, stops, start=start)
    open_ = plan_route(walk_graph, stops, start=start, return_to_start=False)
    end = (XS[-1], YS[-1])
    to_end = plan_route(walk_graph, stops, start=start, end=end)
    for r in (closed, open_, to_end):
        assert sorted(r.order) == list(range(10))
        assert Point(r.legs[0].coords[0]).distance(Point(start)) < 1e-6
    assert len(closed.legs) == 11 and closed.closed
    assert Point(closed.legs[-1].coords[-1]).distance(Point(start)) < 1e-6
    assert len(open_.legs) == 10 and not open_.closed
    assert Point(open_.legs[-1].coords[-1]).distance(Point(stops[open_.order[-1]])) < 1e-6
    assert len(to_end.legs) == 11
    assert Point(to_end.legs[-1].coords[-1]).distance(Point(end)) < 1e-6
    assert open_.length_m <= closed.length_m + 1e-6
    # Without a start the route is a tour over the stops themselves.
    free = plan_route(walk_graph, stops)
    assert len(free.legs) == 10
    free_open = plan_route(walk_graph, stops, return_to_start=False)
    assert len(free_open.legs) == 9
    assert free_open.length_m <= free.length_m + 1e-6


def test_est_minutes_uses_mode_speed_and_dwell(walk_graph, drive_graph):
    stops = _random_grid_stops(5, seed=2)
    walk = plan_route(walk_graph, stops)
    assert walk.est_minutes == pytest.approx(walk.length_m / 75.0 + 3 * 5)
    drive = plan_route(drive_graph, stops, dwell_min=0)
    assert drive.est_minutes == pytest.approx(drive.length_m / (25_000 / 60))


def test_to_geojson_serialises_legs(walk_graph):
    route = plan_route(walk_graph, _random_grid_stops(4, seed=5), start=(XS[0], YS[0]))
    fc = json.loads(json.dumps(route.to_geojson()))
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == len(route.legs)
    assert fc["features"][0]["properties"]["from"] == "start"
    assert fc["features"][-1]["properties"]["to"] == "start"
    assert all(f["geometry"]["type"] == "LineString" for f in fc["features"])


def test_empty_stops_raise_chinese_error(walk_graph):
    with pytest.raises(RoutingError, match="没有巡查点"):
        plan_route(walk_graph, [])


def test_unreachable_stop_raises_naming_it():
    island = {
        "name": "孤路",
        "highway": "residential",
        "oneway": None,
        "geometry": LineString([(XS[0] + 0.03, YS[0]), (XS[0] + 0.032, YS[0])]),
    }
    graph = build_road_graph(_grid_roads(extra=[island]), mode="walk", keep_largest=False)
    stops = [(XS[0], YS[0]), (XS[1], YS[1]), (XS[0] + 0.031, YS[0])]
    with pytest.raises(RoutingError, match="第 3 个巡查点"):
        plan_route(graph, stops)


def test_bad_start_coordinate_raises(walk_graph):
    with pytest.raises(CoordinateError, match="起点"):
        plan_route(walk_graph, [(XS[0], YS[0])], start=("东", 22.8))


# ------------------------------------------------------------------ solve_tour


def _tour_len(m: np.ndarray, tour: list[int], *, closed: bool = True) -> float:
    total = sum(m[a, b] for a, b in itertools.pairwise(tour))
    return float(total + (m[tour[-1], tour[0]] if closed else 0.0))


def _nn_len(m: np.ndarray, start: int = 0) -> float:
    n = len(m)
    left, cur, tour = set(range(n)) - {start}, start, [start]
    while left:
        cur = min(left, key=lambda j, c=cur: m[c, j])
        left.remove(cur)
        tour.append(cur)
    return _tour_len(m, tour)


def _euclid(n: int, seed: int) -> np.ndarray:
    pts = np.random.default_rng(seed).random((n, 2)) * 1000
    return np.linalg.norm(pts[:, None] - pts[None], axis=2)


@pytest.mark.parametrize("seed", range(4))
def test_solve_tour_never_worse_than_nearest_neighbour(seed):
    m = _euclid(40, seed)
    tour = solve_tour(m, time_limit_s=0.3, seed=seed)
    assert sorted(tour) == list(range(40)) and tour[0] == 0
    assert _tour_len(m, tour) <= _nn_len(m) + 1e-6
    # Asymmetric variant (one-way streets make road matrices asymmetric).
    rng = np.random.default_rng(100 + seed)
    a = m * rng.uniform(1.0, 1.4, m.shape)
    tour = solve_tour(a, start=5, time_limit_s=0.3, seed=seed)
    assert sorted(tour) == list(range(40)) and tour[0] == 5
    assert _tour_len(a, tour) <= _nn_len(a, 5) + 1e-6


def _brute(m: np.ndarray, start: int, end: int | None) -> float:
    n = len(m)
    mids = [i for i in range(n) if i not in (start, end)]
    best = math.inf
    for perm in itertools.permutations(mids):
        tour = [start, *perm] + ([end] if end is not None else [])
        best = min(best, _tour_len(m, tour, closed=end is None))
    return best


@pytest.mark.parametrize("seed", range(3))
def test_solve_tour_matches_brute_force_on_eight_points(seed):
    m = _euclid(8, seed)
    tour = solve_tour(m, seed=seed)
    assert _tour_len(m, tour) == pytest.approx(_brute(m, 0, None))
    # Asymmetric, open path with a fixed end.
    a = m * np.random.default_rng(seed).uniform(1.0, 1.5, m.shape)
    path = solve_tour(a, start=2, end=6, seed=seed)
    assert path[0] == 2 and path[-1] == 6 and sorted(path) == list(range(8))
    assert _tour_len(a, path, closed=False) == pytest.approx(_brute(a, 2, 6))


def test_solve_tour_matches_brute_force_on_nine_points_asymmetric():
    m = _euclid(9, 11) * np.random.default_rng(11).uniform(1.0, 1.3, (9, 9))
    tour = solve_tour(m, start=3, seed=1)
    assert tour[0] == 3
    assert _tour_len(m, tour) == pytest.approx(_brute(m, 3, None))


def test_solve_tour_small_and_bad_inputs():
    assert solve_tour(np.zeros((1, 1))) == [0]
    assert solve_tour(np.array([[0, 1], [1, 0]]), start=1) == [1, 0]
    with pytest.raises(RoutingError, match=CHINESE):
        solve_tour(np.zeros((0, 0)))
    with pytest.raises(RoutingError, match="方阵"):
        solve_tour(np.zeros((2, 3)))
    m = _euclid(5, 0)
    m[1, 3] = np.inf
    with pytest.raises(RoutingError, match="第 2 个点到第 4 个点"):
        solve_tour(m)


# ------------------------------------------------------------------ split_route


def test_split_route_covers_every_stop_once_and_balances(walk_graph):
    stops = _random_grid_stops(36, seed=4)
    start = (XS[1], YS[1])
    routes = split_route(walk_graph, stops, n_inspectors=3, start=start, time_limit_s=3)
    assert len(routes) == 3
    seen = sorted(i for r in routes for i in r.order)
    assert seen == list(range(36))
    lengths = [r.length_m for r in routes]
    assert min(lengths) > 0
    assert max(lengths) / min(lengths) < 1.6
    # Balancing is not bought by a silly total: below 3 x the single best tour.
    single = plan_route(walk_graph, stops, start=start)
    assert max(lengths) < single.length_m
    assert sum(lengths) < 3 * single.length_m
    for r in routes:
        assert Point(r.legs[0].coords[0]).distance(Point(start)) < 1e-6


def test_split_route_more_inspectors_than_stops(walk_graph):
    stops = _random_grid_stops(2, seed=9)
    routes = split_route(walk_graph, stops, n_inspectors=4, start=(XS[0], YS[0]))
    assert len(routes) == 4
    assert sorted(i for r in routes for i in r.order) == [0, 1]
    with pytest.raises(RoutingError, match="巡查员"):
        split_route(walk_graph, stops, n_inspectors=0)


# ------------------------------------------------------------------ export


def test_gpx_is_valid_and_numbered(walk_graph):
    stops = _random_grid_stops(6, seed=6)
    route = plan_route(walk_graph, stops, start=(XS[0], YS[0]))
    names = [f"问题{i} <卫生&死角>" for i in range(6)]
    text = route_to_gpx(route, name="东门街道 巡查", stop_names=names)
    root = ET.fromstring(text.encode("utf-8"))
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    assert root.tag == "{http://www.topografix.com/GPX/1/1}gpx"
    assert root.get("version") == "1.1"
    wpts = root.findall("g:wpt", ns)
    assert len(wpts) == 6 + 1  # stops + start
    labels = [w.find("g:name", ns).text for w in wpts[1:]]
    assert labels == [f"{k}. {names[i]}" for k, i in enumerate(route.order, start=1)]
    segs = root.findall("g:trk/g:trkseg", ns)
    assert len(segs) == len(route.legs)
    pt = segs[0].find("g:trkpt", ns)
    assert float(pt.get("lon")) == pytest.approx(XS[0], abs=1e-6)


def test_kml_is_valid(walk_graph):
    route = plan_route(walk_graph, _random_grid_stops(5, seed=8))
    text = route_to_kml(route, name="巡查 & 复核")
    root = ET.fromstring(text.encode("utf-8"))
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    marks = root.findall("k:Document/k:Placemark", ns)
    points = [m for m in marks if m.find("k:Point", ns) is not None]
    lines = [m for m in marks if m.find("k:LineString", ns) is not None]
    assert len(points) == 5 and len(lines) == len(route.legs)
    lon, lat, _ = points[0].find("k:Point/k:coordinates", ns).text.split(",")
    first = route.stops[route.order[0]]
    assert float(lon) == pytest.approx(first[0]) and float(lat) == pytest.approx(first[1])
    with pytest.raises(RoutingError, match="stop_names"):
        route_to_kml(route, name="x", stop_names=["只有一个"])


# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def guixi_roads() -> gpd.GeoDataFrame:
    path = GUIXI / "roads.geojson"
    if not path.exists():
        pytest.skip(f"Guixi OSM extract not found at {path}")
    return gpd.read_file(path)


def test_guixi_drive_route_follows_roads(guixi_roads):
    graph = build_road_graph(guixi_roads, mode="drive")
    assert graph.graph.is_directed()
    total = graph.edge_length.sum() + graph.dropped["length_m"]
    assert graph.edge_length.sum() > 0.8 * total
    rng = np.random.default_rng(20)
    minx, miny, maxx, maxy = guixi_roads.total_bounds
    stops = [(rng.uniform(minx, maxx), rng.uniform(miny, maxy)) for _ in range(20)]
    route = plan_route(graph, stops, start=stops[0])
    assert sorted(route.order) == list(range(20))
    assert len(route.legs) == 21
    assert _max_offroad_m(graph, guixi_roads, route.legs) < 0.5
    metric = [_leg_metric_length(graph, leg) for leg in route.legs]
    assert np.allclose(metric, route.leg_lengths_m, atol=1.0)
    # One-way streets make the drive matrix asymmetric here.
    snaps = route.snaps
    m = distance_matrix(graph, snaps)
    assert not np.allclose(m, m.T)
