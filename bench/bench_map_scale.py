"""Map page at county scale: 30,000 cells and 100,000 problems, in headless Chromium.

    python bench/bench_map_scale.py [--cells-side 173] [--issues 100000] [--skip-demo]

Builds a synthetic county in a fresh PostgreSQL database (DATABASE_URL's server, default
postgresql://root@127.0.0.1:5432): a ~300 km² square boundary cut into a 100 m square
grid by ``gis.grid.build_square_grid`` and coded by ``gis.coding.code_cells`` (4
sub-districts, 36 communities), 60 units, 100,000 problems bulk-inserted at random points
(60 % open) with a report event each. Serves it with gunicorn on 127.0.0.1, signs in
through the real login form in /usr/bin/chromium (Playwright) and loads "/":

* first paint of the cells: from navigation start to the frame after
  ``window.SaniGrid.cells`` exists (the canvas layer is on the map);
* bytes transferred for /map/cells.geojson (encoded, gzip) and its server time.

Each page is loaded cold (the worker builds its cached payload) and warm (a new browser
context, so nothing comes from the browser cache). The demo town (``seed-demo``) is
measured the same way. Prints the table against the targets: 30k map < 2 s and
cells < 1 MB; demo town < 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pg import drop_database, flask, make_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent
PASSWORD = "bench12345"
CENTRE = (103.50, 23.37)  # a county seat in the south-west, as the demo's
TARGETS = {"scale": (2.0, 1_000_000), "demo": (0.5, None)}

PAINT_JS = """() => new Promise(resolve => {
  const tick = () => {
    if (window.SaniGrid && window.SaniGrid.cells) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now())));
    } else { setTimeout(tick, 5); }
  };
  tick();
})"""


def build_county(url: str, *, side: int, n_issues: int, seed: int = 7) -> dict:
    """Fill the database with a synthetic county; return sizes and build times."""
    import geopandas as gpd
    import numpy as np
    from shapely.geometry import box

    from app import create_app
    from app.extensions import db
    from app.models import Category, Cell, Issue, IssueEvent, Unit, User
    from app.services.core.passwords import hash_password
    from app.services.grids.cells import activate_grid, locate_points, store_grid
    from gis.coding import code_cells
    from gis.grid import build_square_grid

    rng = np.random.default_rng(seed)
    times: dict[str, float] = {}
    half_x = side * 100 / 2 / (111_320 * np.cos(np.radians(CENTRE[1])))
    half_y = side * 100 / 2 / 110_574
    minx, miny = CENTRE[0] - half_x, CENTRE[1] - half_y
    maxx, maxy = CENTRE[0] + half_x, CENTRE[1] + half_y
    boundary = box(minx, miny, maxx, maxy)

    t = time.perf_counter()
    cells = build_square_grid(boundary, size_m=100.0)
    times["build_grid_s"] = time.perf_counter() - t
    xs, ys = np.linspace(minx, maxx, 7), np.linspace(miny, maxy, 7)
    communities, subdistricts = [], []
    for r in range(6):
        for c in range(6):
            sub = f"{(r // 3) * 2 + c // 3 + 1:03d}"
            communities.append(
                {
                    "code": f"{r * 6 + c + 1:03d}",
                    "subdistrict_code": sub,
                    "geometry": box(xs[c], ys[r], xs[c + 1], ys[r + 1]),
                }
            )
    for k, (cx, cy) in enumerate(((0, 0), (3, 0), (0, 3), (3, 3))):
        subdistricts.append(
            {"code": f"{k + 1:03d}", "geometry": box(xs[cx], ys[cy], xs[cx + 3], ys[cy + 3])}
        )
    t = time.perf_counter()
    coded = code_cells(
        cells,
        county_code="532599",
        subdistricts=gpd.GeoDataFrame(subdistricts, crs=4326),
        communities=gpd.GeoDataFrame(communities, crs=4326),
    )
    times["code_cells_s"] = time.perf_counter() - t

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        session = db.session
        units = [Unit(name=f"责任单位{i:02d}", kind="department") for i in range(1, 61)]
        session.add_all(units)
        session.flush()
        # Each community's cells go to one unit, so units own contiguous areas.
        unit_of_community = {f"{i + 1:03d}": units[i % len(units)].id for i in range(36)}
        coded["unit_id"] = coded["community_code"].map(unit_of_community)
        password = hash_password(PASSWORD)
        session.add_all(
            [
                User(username="admin", role="admin", password_hash=password),
                User(username="leader", role="leader", password_hash=password),
                User(
                    username="unit01", role="unit_head", unit_id=units[0].id, password_hash=password
                ),
            ]
        )
        t = time.perf_counter()
        grid = store_grid(session, coded, name="合成县城 100 m 网格", method="square")
        activate_grid(session, grid.id)
        session.commit()
        times["store_grid_s"] = time.perf_counter() - t

        t = time.perf_counter()
        lon = rng.uniform(minx, maxx, n_issues)
        lat = rng.uniform(miny, maxy, n_issues)
        cell_ids = locate_points(session, lon, lat, grid_id=grid.id)
        cell_unit = dict(
            session.execute(db.select(Cell.id, Cell.unit_id).where(Cell.grid_id == grid.id)).all()
        )
        admin_id = session.execute(db.select(User.id).where(User.username == "admin")).scalar()
        category = Category(code="0302", name="背街小巷", level=2, parent_code="03")
        session.add_all([Category(code="03", name="市容环境卫生", level=1), category])
        session.flush()
        statuses = rng.choice(
            ["reported", "dispatched", "rectifying", "submitted", "closed"],
            n_issues,
            p=[0.15, 0.15, 0.2, 0.1, 0.4],
        )
        rows = []
        for i in range(n_issues):
            cid = int(cell_ids[i]) or None
            rows.append(
                {
                    "status": str(statuses[i]),
                    "category_id": category.id,
                    "description": f"合成问题 {i}",
                    "source": "县级督查",
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                    "cell_id": cid,
                    "unit_id": cell_unit.get(cid),
                    "geocode_method": "coordinates",
                    "geocode_confidence": 1.0,
                    "needs_placement": False,
                    "outside_grid": cid is None,
                    "rework_count": 0,
                    "version": 1,
                    "created_by_id": admin_id,
                }
            )
        for start in range(0, n_issues, 10_000):
            session.execute(db.insert(Issue), rows[start : start + 10_000])
        ids = [r[0] for r in session.execute(db.select(Issue.id).order_by(Issue.id)).all()]
        events = [
            {"issue_id": i, "action": "report", "to_status": "reported", "data": {}} for i in ids
        ]
        for start in range(0, len(events), 10_000):
            session.execute(db.insert(IssueEvent), events[start : start + 10_000])
        session.commit()
        times["insert_issues_s"] = time.perf_counter() - t
        db.session.remove()
    area_km2 = float(coded["area_m2"].sum()) / 1e6
    return {"cells": len(coded), "issues": n_issues, "area_km2": area_km2, **times}


def start_gunicorn(env: dict, port: int) -> subprocess.Popen:
    env = {
        **env,
        "WEB_CONCURRENCY": "2",
        "SANIGRID_BIND": f"127.0.0.1:{port}",
        "SANIGRID_ACCESS_LOG": "/dev/null",
    }
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    sys.exit("gunicorn did not start")


def measure(base: str, username: str, password: str, *, runs: int = 3) -> list[dict]:
    """Load "/" in fresh browser contexts; the first run finds the server cache cold."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            for run in range(runs):
                context = browser.new_context(viewport={"width": 1366, "height": 900})
                page = context.new_page()
                outside: list[str] = []
                page.on(
                    "request",
                    lambda r, o=outside: (
                        o.append(r.url)
                        if not r.url.startswith(base) and not r.url.startswith("data:")
                        else None
                    ),
                )
                page.goto(f"{base}/login")
                page.fill("input[name=username]", username)
                page.fill("input[name=password]", password)
                with page.expect_navigation():
                    page.click("button[type=submit], input[type=submit]")
                cells_resp: dict = {}

                def on_response(resp, box=cells_resp):
                    if "/map/cells.geojson" in resp.url:
                        box["response"] = resp

                page.on("response", on_response)
                page.goto(f"{base}/", wait_until="commit")
                painted_ms = page.evaluate(PAINT_JS)
                n_cells = page.evaluate("window.SaniGrid.cells.getLayers().length")
                # Resource timing from the page itself: bytes on the wire and when each
                # layer arrived, so the rest of the time is the browser's own work.
                perf = page.evaluate("""() => {
                  const nav = performance.getEntriesByType('navigation')[0];
                  const res = {};
                  for (const e of performance.getEntriesByType('resource')) {
                    for (const key of ['cells.geojson', 'counts.json', 'issues.geojson']) {
                      if (e.name.includes('/map/' + key)) {
                        res[key] = {transfer: e.transferSize, encoded: e.encodedBodySize,
                                    decoded: e.decodedBodySize, start: e.requestStart,
                                    ttfb: e.responseStart, end: e.responseEnd};
                      }
                    }
                  }
                  return {html_end: nav ? nav.responseEnd : null, dcl: nav ?
                          nav.domContentLoadedEventEnd : null, res};
                }""")
                cells = perf["res"].get("cells.geojson", {})
                counts = perf["res"].get("counts.json", {})
                data_end = max(cells.get("end", 0), counts.get("end", 0))
                resp = cells_resp.get("response")
                results.append(
                    {
                        "run": run,
                        "first_paint_s": painted_ms / 1000,
                        "cells_drawn": n_cells,
                        "cells_bytes": cells.get("encoded") or None,
                        "cells_raw_bytes": cells.get("decoded"),
                        "cells_encoding": resp.headers.get("content-encoding") if resp else None,
                        "cells_server_ms": cells.get("ttfb", 0) - cells.get("start", 0),
                        "html_ms": perf["html_end"],
                        "dcl_ms": perf["dcl"],
                        "data_end_ms": data_end,
                        "js_ms": painted_ms - data_end,
                        "outside_requests": outside,
                    }
                )
                context.close()
        finally:
            browser.close()
    return results


def report(label: str, target: tuple, rows: list[dict]) -> list[str]:
    limit_s, limit_bytes = target
    lines = []
    for r in rows:
        kind = "cold" if r["run"] == 0 else "warm"
        ok_t = r["first_paint_s"] < limit_s
        ok_b = limit_bytes is None or (r["cells_bytes"] or 0) < limit_bytes
        lines.append(
            f"| {label} | {kind} | {r['cells_drawn']:,} | {r['first_paint_s']:.2f} s "
            f"(< {limit_s} s {'✓' if ok_t else '✗'}) | {(r['cells_bytes'] or 0) / 1024:.0f} KB "
            f"{r['cells_encoding'] or ''}"
            f"{'' if limit_bytes is None else (' ✓' if ok_b else ' ✗')} | "
            f"{r['cells_server_ms']:.0f} ms | {r['html_ms']:.0f} / {r['data_end_ms']:.0f} / "
            f"{r['js_ms']:.0f} ms | {len(r['outside_requests'])} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells-side", type=int, default=173, help="cells per side (173² ≈ 30k)")
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--server", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    random.seed(1)
    tag = uuid.uuid4().hex[:8]
    lines = [
        "| county | load | cells drawn | first paint of cells | /map/cells.geojson "
        "transferred | cells server time | page HTML / data loaded / JS+paint | "
        "outside requests |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    cases = [("scale", f"sanigrid_scale_{tag}")]
    if not args.skip_demo:
        cases.append(("demo", f"sanigrid_demo_{tag}"))
    for kind, name in cases:
        url = make_database(args.server, name)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": f"bench-{tag}",
            "PHOTO_DIR": f"/tmp/sanigrid-bench-{tag}",
        }
        server = None
        try:
            flask(env, "db", "upgrade")
            if kind == "scale":
                info = build_county(url, side=args.cells_side, n_issues=args.issues)
                print(
                    "synthetic county:",
                    {k: round(v, 2) if isinstance(v, float) else v for k, v in info.items()},
                )
                user, password, label = (
                    "admin",
                    PASSWORD,
                    f"synthetic {info['cells']:,} cells / {info['issues']:,} problems",
                )
            else:
                t = time.perf_counter()
                flask(env, "seed-demo")
                print(f"demo town seeded in {time.perf_counter() - t:.0f} s")
                user, password, label = "admin", "demo1234", "demo town"
            server = start_gunicorn(env, args.port)
            rows = measure(f"http://127.0.0.1:{args.port}", user, password, runs=args.runs)
            lines += report(label, TARGETS[kind], rows)
            if kind == "scale":
                unit_rows = measure(f"http://127.0.0.1:{args.port}", "unit01", PASSWORD, runs=2)
                lines += report(f"{label}, unit head", TARGETS[kind], unit_rows)
        finally:
            if server is not None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
            if not args.keep:
                drop_database(args.server, name)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
