"""Profile the load test's JSON endpoints in one process, one request at a time.

    python bench/profile_endpoints.py [--db URL] [--n 200] [--cprofile api_create]

Without ``--db`` it creates and seeds a throw-away PostgreSQL database (as
bench/load_test.py does) and drops it afterwards. For each endpoint it prints the
wall-clock ms per request (median and p95 over ``--n`` requests), the median CPU ms
of this process (PostgreSQL not included) and the number of SQL
statements per request; ``--cprofile NAME`` prints the top functions for that endpoint.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _pg import drop_database, flask, make_database  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="an already seeded database URL")
    parser.add_argument("--server", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    made = None
    url = args.db
    if url is None:
        made = f"sanigrid_prof_{uuid.uuid4().hex[:8]}"
        url = make_database(args.server, made)
        env = {**os.environ, "DATABASE_URL": url}
        flask(env, "db", "upgrade")
        flask(env, "seed-demo")
        print("seeded", url)
    try:
        return run(url, args)
    finally:
        if made and not args.keep:
            drop_database(args.server, made)


def run(url: str, args) -> int:
    os.environ["DATABASE_URL"] = url
    from sqlalchemy import event, select, text

    from app import create_app
    from app.extensions import db
    from app.models import User

    app = create_app({"RATELIMIT_ENABLED": False, "LOGIN_THROTTLE_ENABLED": False,
                      "WTF_CSRF_ENABLED": False})
    statements = [0]

    with app.app_context():
        @event.listens_for(db.engine, "before_cursor_execute")
        def _count(*_a, **_k):
            statements[0] += 1

        admin = db.session.execute(select(User).where(User.role == "admin")).scalars().first()
        points = [tuple(r) for r in db.session.execute(text(
            "SELECT (minx + maxx) / 2, (miny + maxy) / 2 FROM cell c JOIN grid_layer g "
            "ON g.id = c.grid_id WHERE g.is_active ORDER BY c.id"))]
        db.session.remove()
    env = {**os.environ, "DATABASE_URL": url}
    token = flask(env, "create-token", admin.username).strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    rng = random.Random(1)
    client = app.test_client()
    client.post("/login", data={"username": "leader", "password": "demo1234"})

    def api_create():
        lon, lat = rng.choice(points)
        body = {"description": f"剖析 {uuid.uuid4().hex[:12]} 路面垃圾", "category": "0302",
                "lon": lon + rng.uniform(-2e-5, 2e-5), "lat": lat + rng.uniform(-2e-5, 2e-5)}
        r = client.post("/api/v1/issues", json=body, headers=auth)
        assert r.status_code in (201, 202), r.text
        return r

    made: list[int] = []

    def api_action():
        if not made:
            made.append(api_create().json["id"])
        r = client.post(f"/api/v1/issues/{made[-1]}/actions", json={"action": "dispatch"},
                        headers=auth)
        made.pop()
        return r

    def get(path, headers=None):
        def call():
            r = client.get(path, headers=headers or {"Accept-Encoding": "gzip"})
            assert r.status_code == 200, (path, r.status_code)
            return r
        return call

    cases = {
        "api_create": api_create,
        "api_list": get("/api/v1/issues?limit=20", auth),
        "map_counts": get("/map/counts.json"),
        "map_issues": get("/map/issues.geojson"),
        "map_cells": get("/map/cells.geojson"),
        "map_page": get("/"),
        "issue_list": get("/issues/"),
    }
    print(f"{'endpoint':<12} {'med ms':>7} {'p95 ms':>7} {'CPU ms':>7} {'SQL/req':>8}")
    for name, call in cases.items():
        # Interleave a write before each read, as under load (caches keyed on versions).
        for _ in range(3):
            call()
        times, counts, cpu = [], [], []
        prof = cProfile.Profile() if args.cprofile == name else None
        for _ in range(args.n):
            if name.startswith("map_") or name in ("api_list", "issue_list"):
                api_create()
            statements[0] = 0
            c = time.process_time()
            t = time.perf_counter()
            if prof:
                prof.enable()
            call()
            if prof:
                prof.disable()
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
            counts.append(statements[0])
        times.sort()
        print(f"{name:<12} {statistics.median(times):>7.1f} "
              f"{times[int(0.95 * (len(times) - 1))]:>7.1f} {statistics.median(cpu):>7.1f} "
              f"{statistics.mean(counts):>8.1f}")
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
