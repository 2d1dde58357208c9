"""Benchmark build_block_grid against a naive baseline (plain polygonize, no merge/split).

Run: python bench/bench_grid.py
"""

import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.check import check_grid  # noqa: E402
from gis.crs import to_metric  # noqa: E402
from gis.grid import build_block_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GUIXI = ROOT.parent / "shared/data/osm/guixi"
DEMO = ROOT / "layers/demo"


def naive(boundary, roads):
    """Polygonize the roads and the boundary outline; keep faces inside the boundary."""
    lines = list(roads.geometry) + [boundary.boundary]
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(lines))))
    inside = shapely.contains(boundary, shapely.point_on_surface(faces))
    return gpd.GeoDataFrame(geometry=faces[inside], crs=4326)


def describe(cells, boundary, seconds):
    area = to_metric(cells).area.to_numpy()
    report = check_grid(cells, boundary=boundary)
    errors = sum(f.level == "error" for f in report.findings)
    return (
        f"{seconds:>7.2f} {len(cells):>6} {np.median(area):>9.0f} "
        f"{(area < 2_500).sum():>7} {(area > 25_000).sum():>7} {errors:>7}"
    )


def run(name, boundary, roads, **layers):
    t = time.perf_counter()
    base = naive(boundary, roads)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    cells = build_block_grid(boundary, roads=roads, target_area_m2=10_000, **layers)
    t_grid = time.perf_counter() - t
    print(f"{name + ' naive':28} {describe(base, boundary, t_base)}")
    print(f"{name + ' build_block_grid':28} {describe(cells, boundary, t_grid)}")


def main() -> None:
    print(
        f"{'run':28} {'seconds':>7} {'cells':>6} {'median m²':>9} {'<2500':>7} "
        f"{'>25000':>7} {'errors':>7}"
    )
    if GUIXI.exists():
        b = gpd.read_file(GUIXI / "boundary.geojson")
        boundary = b[b["kind"] == "derived_builtup"].geometry.iloc[0]
        run("guixi", boundary, gpd.read_file(GUIXI / "roads.geojson"))
    needed = ["boundary", "roads", "river", "communities"]
    if all((DEMO / f"{n}.geojson").exists() for n in needed):
        layers = {n: gpd.read_file(DEMO / f"{n}.geojson") for n in needed}
        boundary = shapely.union_all(layers["boundary"].geometry.to_numpy())
        run(
            "demo",
            boundary,
            layers["roads"],
            barriers=layers["river"],
            communities=layers["communities"],
        )
    else:
        print("demo town layers not found in layers/demo/: skipped")


if __name__ == "__main__":
    main()
