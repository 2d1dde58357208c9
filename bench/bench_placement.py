"""Benchmark bulk placement of a large coordinate list (issue 4 target: 100,000 rows < 20 s).

Run: python bench/bench_placement.py [--n 100000] [--sample 2000] [--keep DIR]

Seeds the demo county seat (layers/demo) into a temporary SQLite database, generates
N coordinate rows over its grid as a CSV (writing 100,000 rows with openpyxl alone takes
longer than the import, so the list is a CSV; the reader is the same one .xlsx uses
after the cells are read), and times ``importer.import_file`` end to end — read, parse,
convert GCJ-02, locate, route, dedupe, find neighbours, insert, commit — through the bulk
path. In the same run the per-row path (``create_issue`` per row) imports the first
``--sample`` rows into a copy of the same seeded database and is extrapolated to N; the
bulk path imports the same sample into another copy, and the stored cells, units,
deadlines and recurrence flags of the two are compared (mismatches must be 0).

The hostile case of issue #13 runs in the same comparison: N rows sitting at
``--points`` spots (default 5), through the bulk path, each import in its own forked
process so that its peak resident memory (``ru_maxrss``) is its own. Before the duplicate
search was bounded, 5,000 rows at one spot took 2.9 GB and 10,000 took 10.9 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Category, Cell, GridLayer, Issue, IssueEvent, User  # noqa: E402
from app.services.imports.rows import WORKBOOK_HEADER  # noqa: E402

HEADERS = list(WORKBOOK_HEADER)
TARGET_S = 20.0


def make_app(url: str, tmp: Path):
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "TESTING": True,
            "SECRET_KEY": "bench",
            "RATELIMIT_ENABLED": False,
            "PHOTO_DIR": str(tmp / "photos"),
        }
    )


def seed(path: Path, tmp: Path) -> None:
    from flask_migrate import upgrade

    from app.services.ops.seed import seed_demo

    app = make_app(f"sqlite:///{path}", tmp)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        seed_demo(db.session, ROOT / "layers" / "demo", county_code="532599", log=lambda *_: None)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def generate(path: Path, n: int, world: dict, *, seed: int = 4) -> None:
    """N rows: 90 % WGS-84 points, 9.5 % GCJ-02 (高德), 0.5 % an address only."""
    from gis.crs import wgs84_to_gcj02

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = world["bbox"]
    lon = rng.uniform(minx, maxx, n)
    lat = rng.uniform(miny, maxy, n)
    kind = rng.random(n)
    glon, glat = wgs84_to_gcj02(lon, lat)
    cats = world["categories"]
    cat = rng.integers(0, len(cats), n)
    day = rng.integers(0, 200, n)
    deadline_kind = rng.integers(0, 4, n)
    roads = world["roads"]
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for i in range(n):
            found = np.datetime64("2026-03-01") + int(day[i])
            deadline = ("", "7个工作日", "立行立改", "5")[deadline_kind[i]]
            if kind[i] < 0.005:
                place, x, y, remark = f"{roads[i % len(roads)]}", "", "", ""
            elif kind[i] < 0.10:
                place, x, y, remark = "", f"{glon[i]:.6f}", f"{glat[i]:.6f}", "高德取点"
            else:
                place, x, y, remark = "", f"{lon[i]:.6f}", f"{lat[i]:.6f}", ""
            writer.writerow(
                [
                    i + 1,
                    f"第{i + 1}处 路面垃圾",
                    place,
                    cats[cat[i]],
                    "",
                    str(found),
                    deadline,
                    x,
                    y,
                    remark,
                ]
            )


def generate_clustered(path: Path, n: int, world: dict, *, points: int, seed: int = 5) -> None:
    """N rows of one category at a handful of points (a hostile or careless list)."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = world["bbox"]
    spots = np.column_stack(
        [rng.uniform(minx + 0.2 * (maxx - minx), maxx - 0.2 * (maxx - minx), points),
         rng.uniform(miny + 0.2 * (maxy - miny), maxy - 0.2 * (maxy - miny), points)]
    )
    category = world["categories"][0]
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for i in range(n):
            x, y = spots[i % points]
            writer.writerow(
                [i + 1, f"第{i + 1}条 同一地点", "", category, "", "2026-10-28", "", f"{x:.6f}",
                 f"{y:.6f}", ""]
            )


def _child(queue, db_path: Path, tmp: Path, csv_path: Path, bulk) -> None:
    run = timed_import(db_path, tmp, csv_path, bulk=bulk)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"total": run["total"], "read": run["read"], "summary": run["result"].summary(),
               "added": run["added"], "peak_mb": peak_kb / 1024})


def isolated_import(db_path: Path, tmp: Path, csv_path: Path, *, bulk) -> dict:
    """``timed_import`` in a forked process; adds the process's peak RSS in MB."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, db_path, tmp, csv_path, bulk))
    child.start()
    out = queue.get()
    child.join()
    return out


def demo_world(path: Path, tmp: Path) -> dict:
    app = make_app(f"sqlite:///{path}", tmp)
    with app.app_context():
        grid = db.session.execute(select(GridLayer).where(GridLayer.is_active.is_(True))).scalar()
        bbox = db.session.execute(
            select(
                func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx), func.max(Cell.maxy)
            ).where(Cell.grid_id == grid.id)
        ).one()
        cats = list(
            db.session.execute(
                select(Category.name).where(Category.level == 2).order_by(Category.code)
            ).scalars()
        )
        db.session.remove()
        db.engine.dispose()
    roads = json.loads((ROOT / "layers" / "demo" / "roads.geojson").read_text("utf-8"))
    names = sorted({f["properties"].get("name") for f in roads["features"]} - {None, ""})
    return {"bbox": tuple(bbox), "categories": cats, "roads": names}


def timed_import(db_path: Path, tmp: Path, csv_path: Path, *, bulk: bool | None) -> dict:
    """Import a list into a database copy; return times and the stored placement."""
    from app.services.core.cache import reset_caches
    from app.services.core.tabular import read_table
    from app.services.imports.sheet import import_file

    # Cold caches for every run: the locator and the geocoder are built inside the timing,
    # as in a fresh `flask import-issues` process.
    reset_caches()
    app = make_app(f"sqlite:///{db_path}", tmp)
    with app.app_context():
        admin = db.session.execute(select(User).where(User.role == "admin")).scalar()
        before = db.session.execute(select(func.count(Issue.id))).scalar()
        t0 = time.perf_counter()
        _, result = import_file(
            db.session, admin, csv_path, source="县级督查", skip_errors=True, bulk=bulk
        )
        db.session.commit()
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        read_table(csv_path)
        read = time.perf_counter() - t0
        stored = (
            {
                ref: (cell, unit, deadline, recur is not None, needs)
                for ref, cell, unit, deadline, recur, needs in db.session.execute(
                    select(
                        Issue.external_ref,
                        Issue.cell_id,
                        Issue.unit_id,
                        Issue.deadline,
                        Issue.recurrence_of_id,
                        Issue.needs_placement,
                    ).where(Issue.id.in_(result.issue_ids[:20_000]))
                ).all()
            }
            if len(result.issue_ids) <= 20_000
            else {}
        )
        after = db.session.execute(select(func.count(Issue.id))).scalar()
        events = db.session.execute(select(func.count(IssueEvent.id))).scalar()
        db.session.remove()
        db.engine.dispose()
    return {
        "total": total,
        "read": read,
        "result": result,
        "stored": stored,
        "added": after - before,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="keep the databases and CSV in this folder")
    parser.add_argument("--points", type=int, default=5, help="spots of the clustered list")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench_placement_"))
    tmp.mkdir(parents=True, exist_ok=True)
    seeded = tmp / "seeded.db"
    if not seeded.exists():
        t0 = time.perf_counter()
        seed(seeded, tmp)
        print(f"seeded the demo county seat in {time.perf_counter() - t0:.1f} s")
    world = demo_world(seeded, tmp)
    big, small = tmp / f"list_{args.n}.csv", tmp / f"list_{args.sample}.csv"
    t0 = time.perf_counter()
    generate(big, args.n, world)
    generate(small, args.sample, world)
    print(
        f"generated {args.n:,} + {args.sample:,} rows as CSV in "
        f"{time.perf_counter() - t0:.1f} s ({big.stat().st_size / 1e6:.1f} MB; not timed)"
    )

    copies = {}
    for name in ("bulk_big", "bulk_small", "rows_small"):
        copies[name] = tmp / f"{name}.db"
        shutil.copyfile(seeded, copies[name])
    clustered = tmp / f"clustered_{args.n}.csv"
    generate_clustered(clustered, args.n, world, points=args.points)
    for name in ("iso_spread", "iso_clustered"):
        copies[name] = tmp / f"{name}.db"
        shutil.copyfile(seeded, copies[name])
    iso_spread = isolated_import(copies["iso_spread"], tmp, big, bulk=True)
    iso_clustered = isolated_import(copies["iso_clustered"], tmp, clustered, bulk=True)
    rows = timed_import(copies["rows_small"], tmp, small, bulk=False)
    fast_small = timed_import(copies["bulk_small"], tmp, small, bulk=True)
    fast = timed_import(copies["bulk_big"], tmp, big, bulk=None)

    mismatch = sum(fast_small["stored"].get(ref) != value for ref, value in rows["stored"].items())
    per_row_big = rows["total"] * args.n / args.sample
    print()
    print(f"{'run':38} {'rows':>8} {'total s':>8} {'read s':>7} {'rows/s':>9}  summary")
    for label, run, n in (
        ("bulk path (import_file, auto)", fast, args.n),
        ("bulk path, sample", fast_small, args.sample),
        ("per-row path (create_issue), sample", rows, args.sample),
    ):
        print(
            f"{label:38} {n:>8,} {run['total']:>8.2f} {run['read']:>7.2f} "
            f"{n / run['total']:>9,.0f}  {run['result'].summary()}"
        )
    print(f"{'per-row path, extrapolated':38} {args.n:>8,} {per_row_big:>8.1f}")
    print()
    print(
        f"speed-up: {per_row_big / fast['total']:.0f}×; stored rows {fast['added']:,}; "
        f"sample mismatches (cell, unit, deadline, recurrence, queued): {mismatch}"
    )
    print()
    print(f"{'own process, bulk path':38} {'rows':>8} {'total s':>8} {'peak MB':>8}  summary")
    for label, run in (
        ("spread over the town", iso_spread),
        (f"clustered at {args.points} points", iso_clustered),
    ):
        print(
            f"{label:38} {args.n:>8,} {run['total']:>8.2f} {run['peak_mb']:>8.0f}  "
            f"{run['summary']}"
        )
    verdict = "met" if fast["total"] < TARGET_S else "NOT met"
    print(
        f"target: {args.n:,} rows < {TARGET_S:.0f} s on SQLite: {verdict} ({fast['total']:.1f} s)"
    )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
