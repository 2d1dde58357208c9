"""Benchmark gis.osm.read_osm against GDAL's OSM driver (via pyogrio) on the same files.

Run from the repository root:  .venv/bin/python bench/bench_osm_import.py [--quick]

Inputs:
- the Guixi export (../shared/data/osm/guixi/guixi.osm.gz), read in place;
- a synthetic county seat written to a temporary .osm.pbf (``--blocks N``: an N×N
  street lattice with 4 buildings and a named POI per block), to see how both scale.

Baseline: pyogrio.read_dataframe on the GDAL OSM driver's ``points``, ``lines`` and
``multipolygons`` layers (what a project without pyosmium would do). GDAL cannot read
.osm.gz, so the baseline reads a decompressed temporary copy and the decompression time
is not charged to it. read_osm does strictly more work (typed POIs, oneway rules,
warnings), so the baseline is a floor to compare with, not an equivalent.

Target: the Guixi export in under 5 s.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import osmium  # noqa: E402
import pyogrio  # noqa: E402

from gis.osm import read_osm  # noqa: E402

GUIXI = ROOT.parent / "shared/data/osm/guixi/guixi.osm.gz"
GDAL_LAYERS = ("points", "lines", "multipolygons")


def time_it(func, *, repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def read_gdal(path: Path) -> dict[str, int]:
    counts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layer in GDAL_LAYERS:
            counts[layer] = len(pyogrio.read_dataframe(path, layer=layer))
    return counts


def write_synthetic(path: Path, *, blocks: int) -> None:
    """Write an N×N street lattice (100 m blocks) with buildings and POIs as .osm.pbf."""
    step = 0.001
    lon0, lat0 = 117.0, 28.0
    writer = osmium.SimpleWriter(str(path))
    try:
        node_id = 1
        grid: dict[tuple[int, int], int] = {}
        for j in range(blocks + 1):
            for i in range(blocks + 1):
                grid[i, j] = node_id
                writer.add_node(
                    osmium.osm.mutable.Node(
                        id=node_id, location=(lon0 + i * step, lat0 + j * step), version=1
                    )
                )
                node_id += 1
        building_nodes = []
        for j in range(blocks):
            for i in range(blocks):
                for b in range(4):
                    bx = lon0 + i * step + 0.0002 + (b % 2) * 0.0004
                    by = lat0 + j * step + 0.0002 + (b // 2) * 0.0004
                    ring = []
                    for dx, dy in ((0, 0), (0.0002, 0), (0.0002, 0.0002), (0, 0.0002)):
                        writer.add_node(
                            osmium.osm.mutable.Node(
                                id=node_id, location=(bx + dx, by + dy), version=1
                            )
                        )
                        ring.append(node_id)
                        node_id += 1
                    building_nodes.append(ring + [ring[0]])
                # ids must ascend through the file: GDAL's OSM driver relies on it
                writer.add_node(
                    osmium.osm.mutable.Node(
                        id=node_id,
                        location=(lon0 + (i + 0.5) * step, lat0 + (j + 0.5) * step),
                        tags={"amenity": "restaurant", "name": f"小吃店{node_id}"},
                        version=1,
                    )
                )
                node_id += 1
        way_id = 1
        for k in range(blocks + 1):
            for refs, name in (
                ([grid[k, j] for j in range(blocks + 1)], f"南北{k}路"),
                ([grid[i, k] for i in range(blocks + 1)], f"东西{k}路"),
            ):
                writer.add_way(
                    osmium.osm.mutable.Way(
                        id=way_id,
                        nodes=refs,
                        tags={"highway": "residential", "name": name},
                        version=1,
                    )
                )
                way_id += 1
        for ring in building_nodes:
            writer.add_way(
                osmium.osm.mutable.Way(id=way_id, nodes=ring, tags={"building": "yes"}, version=1)
            )
            way_id += 1
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, small lattice")
    parser.add_argument("--blocks", type=int, default=None, help="synthetic lattice size")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    blocks = args.blocks or (40 if args.quick else 120)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-osm-") as tmp:
        inputs = []
        if GUIXI.is_file():
            plain = Path(tmp) / "guixi.osm"
            with gzip.open(GUIXI, "rb") as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            inputs.append(("Guixi export (.osm.gz)", GUIXI, plain))
        else:
            print(f"skipping Guixi: {GUIXI} not found")
        synthetic = Path(tmp) / f"synthetic_{blocks}x{blocks}.osm.pbf"
        write_synthetic(synthetic, blocks=blocks)
        synthetic_xml = synthetic.with_name(synthetic.name.replace(".pbf", ""))
        with osmium.SimpleWriter(str(synthetic_xml)) as writer:
            for obj in osmium.FileProcessor(str(synthetic)):
                writer.add(obj)
        inputs.append((f"synthetic {blocks}x{blocks} blocks (.osm)", synthetic_xml, synthetic_xml))
        inputs.append((f"synthetic {blocks}x{blocks} blocks (.pbf)", synthetic, synthetic))

        for label, ours_path, gdal_path in inputs:
            size_kb = ours_path.stat().st_size / 1024
            t_ours, layers = time_it(lambda p=ours_path: read_osm(p), repeat=repeat)
            try:
                t_gdal, counts = time_it(lambda p=gdal_path: read_gdal(p), repeat=repeat)
            except Exception as exc:  # GDAL's PBF reader rejects some valid files
                t_gdal, counts = float("nan"), {"error": str(exc)[:60]}
            ours_counts = {k: len(layers[k]) for k in layers}
            rows.append((label, size_kb, t_ours, t_gdal, ours_counts, counts))

    print()
    print(f"{'input':<34} {'size KB':>8} {'read_osm s':>11} {'GDAL OSM s':>11} {'ratio':>6}")
    print("-" * 74)
    for label, size_kb, t_ours, t_gdal, _, _ in rows:
        print(
            f"{label:<34} {size_kb:>8.0f} {t_ours:>11.3f} {t_gdal:>11.3f} {t_ours / t_gdal:>6.2f}"
        )
    print()
    for label, _, _, _, ours, gdal in rows:
        print(f"{label}: read_osm {ours}")
        print(f"{' ' * len(label)}  GDAL     {gdal}")
    guixi = [r for r in rows if r[0].startswith("Guixi")]
    if guixi:
        verdict = "OK" if guixi[0][2] < 5.0 else "TOO SLOW"
        print(f"\ntarget: Guixi import < 5 s -> {guixi[0][2]:.3f} s {verdict}")


if __name__ == "__main__":
    main()
