"""Benchmark gis.routing.tour.solve_tour against OR-Tools guided local search on the SAME matrix.

Run from the repository root:  .venv/bin/python bench/bench_routing.py [--quick]

Networks: the Guixi OSM extract (../shared/data/osm/guixi/roads.geojson) and the demo
town (layers/demo/roads.geojson) when present. For each network and mode, random seeded
stops inside the road extent are snapped to the network; the road distance matrix is
built with gis.routing.search.distance_matrix and rounded to whole metres, and both solvers
order the same closed tour from stop 0.

Targets: 50 stops within 2 % of OR-Tools and < 1 s; 200 stops within 3 % and < 5 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.routing.graph import build_road_graph  # noqa: E402
from gis.routing.search import distance_matrix  # noqa: E402
from gis.routing.snap import snap_points  # noqa: E402
from gis.routing.tour import solve_tour  # noqa: E402

GUIXI = ROOT.parent / "shared/data/osm/guixi/roads.geojson"
DEMO = ROOT / "layers/demo/roads.geojson"
TARGETS = {50: (2.0, 1.0), 200: (3.0, 5.0)}


def solve_ortools(matrix: np.ndarray, *, seconds: int) -> list[int]:
    """Closed tour from node 0 with PATH_CHEAPEST_ARC + GUIDED_LOCAL_SEARCH."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(matrix)
    data = matrix.astype(np.int64).tolist()
    manager = pywrapcp.RoutingIndexManager(n, 1, 0)
    routing = pywrapcp.RoutingModel(manager)

    def cost(i: int, j: int) -> int:
        return data[manager.IndexToNode(i)][manager.IndexToNode(j)]

    cb = routing.RegisterTransitCallback(cost)
    routing.SetArcCostEvaluatorOfAllVehicles(cb)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.seconds = seconds
    sol = routing.SolveWithParameters(params)
    index = routing.Start(0)
    tour = []
    while not routing.IsEnd(index):
        tour.append(manager.IndexToNode(index))
        index = sol.Value(routing.NextVar(index))
    return tour


def tour_length(matrix: np.ndarray, tour: list[int]) -> float:
    return float(sum(matrix[tour[i - 1], tour[i]] for i in range(len(tour))))


def random_stops(roads: gpd.GeoDataFrame, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = roads.to_crs(4326).total_bounds
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="OR-Tools 3 s/10 s instead of 10/30")
    ap.add_argument("--seeds", type=int, default=2, help="instances per size")
    args = ap.parse_args()
    ort_s = {50: 3, 200: 10} if args.quick else {50: 10, 200: 30}

    networks = []
    if GUIXI.exists():
        networks.append(("guixi", gpd.read_file(GUIXI)))
    else:
        print(f"skip guixi: {GUIXI} not found")
    if DEMO.exists():
        networks.append(("demo", gpd.read_file(DEMO)))
    else:
        print(f"skip demo: {DEMO} not found")

    rows = []
    for net_name, roads in networks:
        for mode in ("walk", "drive"):
            t0 = time.perf_counter()
            graph = build_road_graph(roads, mode=mode)
            t_graph = time.perf_counter() - t0
            print(f"{net_name}/{mode}: {graph} built in {t_graph:.2f} s")
            for n, (gap_max, time_max) in TARGETS.items():
                for seed in range(args.seeds):
                    lon, lat = random_stops(roads, n, seed)
                    snaps = snap_points(graph, lon, lat)
                    t0 = time.perf_counter()
                    matrix = np.rint(distance_matrix(graph, snaps))
                    t_matrix = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    ours = solve_tour(matrix, seed=seed)
                    t_ours = time.perf_counter() - t0
                    ort = solve_ortools(matrix, seconds=ort_s[n])
                    l_ours, l_ort = tour_length(matrix, ours), tour_length(matrix, ort)
                    gap = 100.0 * (l_ours - l_ort) / l_ort
                    ok = gap <= gap_max and t_ours < time_max
                    rows.append((net_name, mode, n, seed, t_matrix, l_ort, l_ours, gap, t_ours, ok))
                    print(
                        f"  n={n} seed={seed}: ours {l_ours:.0f} m in {t_ours:.2f} s, "
                        f"OR-Tools GLS {ort_s[n]} s {l_ort:.0f} m, gap {gap:+.2f} %"
                    )

    print()
    head = (
        f"{'network':8} {'mode':5} {'n':>4} {'seed':>4} {'matrix s':>8} {'OR-Tools m':>11} "
        f"{'ours m':>9} {'gap %':>7} {'ours s':>7}  target"
    )
    print(head)
    print("-" * len(head))
    for net, mode, n, seed, tm, lo, lu, gap, tu, ok in rows:
        gmax, tmax = TARGETS[n]
        print(
            f"{net:8} {mode:5} {n:>4} {seed:>4} {tm:>8.2f} {lo:>11.0f} {lu:>9.0f} {gap:>+7.2f} "
            f"{tu:>7.2f}  {'met' if ok else 'MISSED'} (<= {gmax} %, < {tmax} s)"
        )
    missed = sum(1 for r in rows if not r[-1])
    print(f"\n{len(rows) - missed}/{len(rows)} instances meet their target")


if __name__ == "__main__":
    main()
