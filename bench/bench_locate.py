"""Benchmark CellLocator against geopandas.sjoin(predicate="within") on 1,000,000 points.

Run: python bench/bench_locate.py   (uses the real Guixi built-up boundary and roads)

Timings are the best of several runs (5 for the locator, 2 for sjoin) so that a shared,
loaded machine disturbs both sides alike; the speedup compares them in the same run.
"""

import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.grid import build_block_grid, build_square_grid  # noqa: E402
from gis.locate import CellLocator  # noqa: E402

GUIXI = Path(__file__).resolve().parents[2] / "shared/data/osm/guixi"
N = 1_000_000


def sjoin_answer(lon, lat, cells):
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    j = gpd.sjoin(pts, cells[["geometry"]], predicate="within")
    out = np.full(len(lon), -1)
    best = j["index_right"].groupby(level=0).min()  # same edge rule as the locator
    out[best.index.to_numpy()] = best.to_numpy()
    return out


def best_of(runs, func, *args):
    """Return func's answer and its shortest wall time over ``runs`` calls."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        out = func(*args)
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> None:
    if not GUIXI.exists():
        sys.exit(f"real OSM data not found at {GUIXI}")
    bounds = gpd.read_file(GUIXI / "boundary.geojson")
    boundary = bounds[bounds["kind"] == "derived_builtup"].geometry.iloc[0]
    roads = gpd.read_file(GUIXI / "roads.geojson")
    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = boundary.bounds
    lon = rng.uniform(minx, maxx, N)
    lat = rng.uniform(miny, maxy, N)
    grids = {
        "square 100 m": build_square_grid(boundary, size_m=100),
        "block ~7,000 m²": build_block_grid(boundary, roads=roads, target_area_m2=7_000),
    }
    print(f"{N:,} random points over the Guixi built-up area ({boundary.area and '21.1 km²'})")
    print(
        f"{'grid':18} {'cells':>6} {'strategy':>8} {'build s':>8} {'locate s':>9} "
        f"{'sjoin s':>8} {'speedup':>8} {'incl.build':>10} {'mismatch':>8}"
    )
    for name, cells in grids.items():
        t = time.perf_counter()
        loc = CellLocator(cells)
        t_build = time.perf_counter() - t
        loc.locate(lon[:1000], lat[:1000])  # warm-up (first-touch allocation)
        got, t_loc = best_of(5, loc.locate, lon, lat)
        want, t_sj = best_of(2, sjoin_answer, lon, lat, cells)
        print(
            f"{name:18} {len(cells):>6} {loc.strategy:>8} {t_build:>8.3f} {t_loc:>9.3f} "
            f"{t_sj:>8.2f} {t_sj / t_loc:>7.1f}x {t_sj / (t_loc + t_build):>9.1f}x "
            f"{int((got != want).sum()):>8}"
        )


if __name__ == "__main__":
    main()
