"""Benchmark: geocode 10,000 mixed addresses with gis.geocode vs a naive baseline.

Run: ``python bench/bench_geocode.py [--n 10000] [--seed 7]``

The town is synthetic (a 20 × 20 grid of named streets 150 m apart near lon 103.5,
lat 22.8, with POIs and door plates), so the true point of every generated address
is known. The baseline does what a first attempt would: per query, one
``rapidfuzz.process.extractOne`` over all road and POI names for each name in the
address, then selects that road's rows from the GeoDataFrame and intersects/unions
them again. Both use the same parser, so the table isolates the index and the caches.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import geopandas as gpd
import shapely
from pyproj import Transformer
from rapidfuzz import fuzz, process
from shapely.geometry import LineString, Point, box

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.address import parse_address  # noqa: E402
from gis.geocode.geocoder import Geocoder  # noqa: E402

UTM = "EPSG:32648"
SPACING = 150.0
N_ROADS = 20
_TO_UTM = Transformer.from_crs(4326, UTM, always_xy=True)
_TO_WGS = Transformer.from_crs(UTM, 4326, always_xy=True)
X0, Y0 = _TO_UTM.transform(103.5, 22.8)
EW = [
    f"{a}{b}路"
    for a, b in zip("东西南北中新老和平安永兴", "华康宁阳山河泰福明庆乐春", strict=False)
]
EW += [f"{a}兴街" for a in "金银铜铁锦绣文武"]
NS = [f"{a}{b}大道" for a, b in zip("青红白黄紫绿蓝丹朱碧", "云霞松柏竹梅兰菊桂枫", strict=False)]
NS += [f"{a}{b}巷" for a, b in zip("上下前后左右东西南北", "塘坝井桥湾岭坡岗园林", strict=False)]


def build_town() -> dict[str, gpd.GeoDataFrame]:
    names, geoms = [], []
    extent = SPACING * (N_ROADS - 1)
    for i, name in enumerate(EW[:N_ROADS]):
        y = i * SPACING
        # Each street is digitised in pieces, as real layers are.
        for k in range(N_ROADS - 1):
            names.append(name)
            geoms.append(LineString([(k * SPACING, y), ((k + 1) * SPACING, y)]))
    for j, name in enumerate(NS[:N_ROADS]):
        x = j * SPACING
        names.append(name)
        geoms.append(LineString([(x, 0), (x, extent)]))
    pois, poi_geoms = [], []
    for k in range(60):
        i, j = k % (N_ROADS - 1), (k * 7) % (N_ROADS - 1)
        cx, cy = (j + 0.5) * SPACING, (i + 0.5) * SPACING
        pois.append({"name": f"第{k + 1}号{'市场学校医院小区'[2 * (k % 4) : 2 * (k % 4) + 2]}"})
        poi_geoms.append(box(cx - 30, cy - 30, cx + 30, cy + 30))
    plates, plate_geoms = [], []
    for name in EW[:N_ROADS]:
        y = EW.index(name) * SPACING
        for n in range(1, 200):
            if n % 5 == 0:  # every fifth plate missing: interpolation gets exercised
                continue
            plates.append({"street": name, "number": n})
            plate_geoms.append(Point(10 + 7 * n, y + (8 if n % 2 else -8)))

    def gdf(rows: list[dict], gs: list) -> gpd.GeoDataFrame:
        moved = [shapely.affinity.translate(g, X0, Y0) for g in gs]
        return gpd.GeoDataFrame(rows, geometry=moved, crs=UTM).to_crs(4326)

    return {
        "roads": gdf([{"name": n} for n in names], geoms),
        "pois": gdf(pois, poi_geoms),
        "addresses": gdf(plates, plate_geoms),
    }


def make_queries(n: int, seed: int) -> list[tuple[str, tuple[float, float]]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        form = rnd.random()
        i, j = rnd.randrange(N_ROADS), rnd.randrange(N_ROADS)
        a, b = EW[i], NS[j]
        if form < 0.4:
            corner = rnd.choice(["东北角", "西南角", ""])
            sign = {"东北角": (1, 1), "西南角": (-1, -1), "": (0, 0)}[corner]
            d = 15 / math.sqrt(2)
            text = rnd.choice(["{a}与{b}交叉口{c}", "{a}{b}路口{c}", "{a}和{b}交汇处{c}"])
            truth = (j * SPACING + sign[0] * d, i * SPACING + sign[1] * d)
            out.append((text.format(a=a, b=b, c=corner), truth))
        elif form < 0.7:
            number = rnd.randrange(1, 200)
            truth = (10 + 7 * number, i * SPACING + (8 if number % 2 else -8))
            out.append((f"{a}{number}号", truth))
        elif form < 0.9:
            k = rnd.randrange(60)
            ki, kj = k % (N_ROADS - 1), (k * 7) % (N_ROADS - 1)
            name = f"第{k + 1}号{'市场学校医院小区'[2 * (k % 4) : 2 * (k % 4) + 2]}"
            out.append(
                (
                    f"{name}{rnd.choice(['内', '旁', '门口', ''])}",
                    ((kj + 0.5) * SPACING, (ki + 0.5) * SPACING),
                )
            )
        else:
            # A typo in one road name: one character replaced.
            typo = a[0] + "x" + a[2:] if len(a) > 2 else a
            out.append((f"{typo}与{b}交叉口", (j * SPACING, i * SPACING)))
    return out


class NaiveGeocoder:
    """Per query: extractOne over all names, then select and union the rows again."""

    def __init__(
        self, *, roads: gpd.GeoDataFrame, pois: gpd.GeoDataFrame, addresses: gpd.GeoDataFrame
    ) -> None:
        self.roads = roads.to_crs(UTM)
        self.pois = pois.to_crs(UTM)
        self.addresses = addresses.to_crs(UTM)
        self.names = sorted(set(self.roads["name"]) | set(self.pois["name"]))

    def geocode(self, text: str) -> tuple[float, float] | None:
        parsed = parse_address(text)
        if parsed.kind == "intersection" and parsed.cross_road:
            a = process.extractOne(parsed.road, self.names, scorer=fuzz.WRatio)[0]
            b = process.extractOne(parsed.cross_road, self.names, scorer=fuzz.WRatio)[0]
            ga = self.roads[self.roads["name"] == a].union_all()
            gb = self.roads[self.roads["name"] == b].union_all()
            hit = ga.intersection(gb)
            point = hit.centroid if not hit.is_empty else None
        elif parsed.kind == "house_number":
            a = process.extractOne(parsed.road, self.names, scorer=fuzz.WRatio)[0]
            rows = self.addresses[
                (self.addresses["street"] == a) & (self.addresses["number"] == parsed.number)
            ]
            road = self.roads[self.roads["name"] == a].union_all()
            point = rows.geometry.iloc[0] if len(rows) else road.interpolate(0.5, normalized=True)
        elif parsed.kind == "poi":
            a = process.extractOne(parsed.poi, self.names, scorer=fuzz.WRatio)[0]
            rows = self.pois[self.pois["name"] == a]
            point = rows.geometry.iloc[0].centroid if len(rows) else None
        else:
            point = None
        if point is None or point.is_empty:
            return None
        return (point.x - X0, point.y - Y0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    town = build_town()
    queries = make_queries(args.n, args.seed)

    rows = []
    t0 = time.perf_counter()
    geocoder = Geocoder.from_layers(**town)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = [geocoder.geocode_address(text) for text, _ in queries]
    run = time.perf_counter() - t0
    good = placed = 0
    for (_, (tx, ty)), r in zip(queries, results, strict=True):
        if r.lon is None:
            continue
        x, y = _TO_UTM.transform(r.lon, r.lat)
        ok = math.hypot(x - X0 - tx, y - Y0 - ty) <= 40
        good += ok
        placed += r.confidence >= 0.6
    rows.append(("gis.geocode.Geocoder", build, run, good, placed))

    t0 = time.perf_counter()
    naive = NaiveGeocoder(**town)
    build_n = time.perf_counter() - t0
    # The baseline is slow: time a sample and scale, so the run stays short.
    sample = queries[: min(len(queries), 1000)]
    t0 = time.perf_counter()
    naive_results = [naive.geocode(text) for text, _ in sample]
    run_n = (time.perf_counter() - t0) * len(queries) / len(sample)
    good_n = (
        sum(
            p is not None and math.hypot(p[0] - tx, p[1] - ty) <= 40
            for (_, (tx, ty)), p in zip(sample, naive_results, strict=True)
        )
        * len(queries)
        / len(sample)
    )
    rows.append(("naive extractOne + union (scaled)", build_n, run_n, int(good_n), None))

    n = len(queries)
    print(
        f"{n} addresses; synthetic town of {2 * N_ROADS} roads, 60 POIs, "
        f"{len(town['addresses'])} door plates"
    )
    print(f"{'method':36} {'build s':>8} {'run s':>8} {'µs/addr':>9} {'≤40 m':>7} {'conf≥0.6':>9}")
    for name, b, r, g, p in rows:
        conf = f"{p / n:9.1%}" if p is not None else f"{'-':>9}"
        print(f"{name:36} {b:8.2f} {r:8.2f} {r / n * 1e6:9.0f} {g / n:7.1%} {conf}")
    print(f"speed-up: {rows[1][2] / rows[0][2]:.1f}×")
    bench_demo(args.n)


def bench_demo(n: int) -> None:
    """Time the demo county's own problem list, cold and then repeated to ``n`` addresses."""
    root = Path(__file__).resolve().parents[1] / "layers/demo"
    book = root / "州级交叉检查反馈问题清单.xlsx"
    if not book.exists():
        print(f"(no demo layers at {root}: demo table skipped)")
        return
    import openpyxl

    rows = list(
        openpyxl.load_workbook(book, read_only=True).worksheets[0].iter_rows(values_only=True)
    )
    at = next(i for i, r in enumerate(rows) if "问题地点" in r)
    col = rows[at].index("问题地点")
    texts = [str(r[col] or "") for r in rows[at + 1 :] if r[0] is not None]
    t0 = time.perf_counter()
    layers = {
        k: gpd.read_file(root / f"{k}.geojson")
        for k in ("roads", "pois", "communities", "addresses")
    }
    read = time.perf_counter() - t0
    t0 = time.perf_counter()
    geocoder = Geocoder.from_layers(**layers)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold = [geocoder.geocode_address(t) for t in texts]
    cold_s = time.perf_counter() - t0
    reps = (texts * (n // len(texts) + 1))[:n]
    t0 = time.perf_counter()
    for t in reps:
        geocoder.geocode_address(t)
    warm_s = time.perf_counter() - t0
    placed = sum(r.confidence >= 0.6 for r in cold)
    print()
    print(
        f"demo county: {len(layers['roads'])} road rows, {len(layers['pois'])} POIs, "
        f"{len(layers['addresses'])} door plates; read {read:.2f} s, index {build:.2f} s"
    )
    print(f"{'run':36} {'addresses':>9} {'s':>8} {'µs/addr':>9} {'conf≥0.6':>9}")
    print(
        f"{'workbook, cold caches':36} {len(texts):9d} {cold_s:8.3f} "
        f"{cold_s / len(texts) * 1e6:9.0f} {placed / len(texts):9.1%}"
    )
    print(
        f"{'workbook repeated, warm caches':36} {n:9d} {warm_s:8.3f} {warm_s / n * 1e6:9.0f} {'-':>9}"
    )


if __name__ == "__main__":
    main()
