"""Load test: gunicorn (4 workers) on PostgreSQL, 100 readers and 100 writers at once.

    python bench/load_test.py [--users 200] [--duration 60] [--workers 4]
                              [--kill-worker-at S] [--restart-db-at S] [--keep]

Creates a fresh PostgreSQL database (DATABASE_URL's server, default
postgresql://root@127.0.0.1:5432), applies migrations, seeds the demo county, starts
gunicorn with gunicorn.conf.py on 127.0.0.1 (rate limits in Redis, PROXY_COUNT=1 and a
distinct X-Forwarded-For per simulated user, as nginx would pass them) and runs:

* readers (half the users), each signed in through the real login form (CSRF included)
  as the leader, the inspector or a unit head, looping over the map page "/",
  /map/cells.geojson, /map/counts.json, /map/issues.geojson, the problem list /issues/
  and GET /api/v1/issues;
* writers (the other half), each with a bearer token, reporting problems through
  POST /api/v1/issues (unique descriptions, points inside the grid) and moving their own
  problems along the workflow through POST /api/v1/issues/<id>/actions.

Each user thinks 0.5–2 s between requests (``--think MIN,MAX``; a person, not a flood). Afterwards it prints
p50/p95/p99 per endpoint and error counts, then checks in the database that every
accepted report (201/202) exists exactly once with its full event history (the report
plus every action that was answered 200, in order).

``--kill-worker-at`` SIGKILLs one gunicorn worker mid-run; ``--restart-db-at`` kills all
of the database's connections (pg_terminate_backend) mid-run, as a server restart does.
Requests caught in flight may fail, but the integrity check must still pass: nothing
accepted is lost, nothing is stored twice, no history is half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pg import drop_database, flask, make_database  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DEMO_PASSWORD = "demo1234"
JSON_ENDPOINTS = ("map_cells", "map_counts", "map_issues", "api_list", "api_create", "api_action")
WORKFLOW = ("dispatch", "start", "submit", "verify_ok")


# ---- setup -----------------------------------------------------------------------------


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    env = {
        **env,
        "WEB_CONCURRENCY": str(workers),
        "SANIGRID_BIND": f"127.0.0.1:{port}",
        "SANIGRID_ACCESS_LOG": "/dev/null",
    }
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    sys.exit("gunicorn did not come up:\n" + (proc.stderr.read() if proc.stderr else ""))


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(master: int, server: str, db_name: str) -> dict:
    """CPU counters now: the machine, gunicorn's workers, our database's backends, us."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        backends = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,))]
    stat = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in stat]
    tck = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return {
        "t": time.time(),
        "busy": (sum(ticks) - ticks[3] - ticks[4]) / tck,  # all but idle and iowait
        "workers": {p: _proc_cpu(p) for p in [master, *worker_pids(master)]},
        "backends": {p: _proc_cpu(p) for p in backends},
        "generator": own.user + own.system,
    }


def cpu_shares(before: dict, after: dict) -> dict:
    """CPU seconds spent between two snapshots, by who (processes present in both)."""
    def delta(kind: str) -> float:
        return sum(after[kind][p] - before[kind][p] for p in after[kind] if p in before[kind])

    cores = os.cpu_count() or 1
    wall = after["t"] - before["t"]
    busy = after["busy"] - before["busy"]
    gunicorn = delta("workers")
    postgres = delta("backends")
    generator = after["generator"] - before["generator"]
    return {
        "cores": cores,
        "wall_s": wall,
        "busy": busy / (wall * cores) if wall else 0.0,
        "busy_s": busy,
        "gunicorn_s": gunicorn,
        "postgres_s": postgres,
        "generator_s": generator,
        "other_s": busy - gunicorn - postgres - generator,
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


# ---- simulated users -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.failures: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []
        self.accepted: dict[int, dict] = {}  # issue id -> {"description", "actions": [...]}

    def reset_stats(self) -> None:
        """Forget latencies so far (warm-up); accepted reports stay for the integrity check."""
        with self.lock:
            self.latency.clear()
            self.status.clear()
            self.failures.clear()
            self.samples.clear()

    def record(self, name: str, seconds: float, status: int | None, detail: str = "") -> None:
        with self.lock:
            if status is None:
                self.failures[name] += 1
                if len(self.samples) < 10:
                    self.samples.append(f"{name}: {detail}")
                return
            self.latency[name].append(seconds)
            self.status[name][status] += 1
            if status >= 500 and len(self.samples) < 10:
                self.samples.append(f"{name}: HTTP {status} {detail[:200]}")


class User(threading.Thread):
    def __init__(self, base: str, index: int, rec: Recorder, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.index, self.rec, self.stop = base, index, rec, stop
        self.http = requests.Session()
        # Each user comes from its own address, as nginx reports it (PROXY_COUNT=1).
        self.http.headers["X-Forwarded-For"] = f"10.{index // 250}.{index % 250}.{index % 7 + 1}"
        self.rng = random.Random(index)

    def call(self, name: str, method: str, path: str, **kw) -> requests.Response | None:
        start = time.perf_counter()
        try:
            response = self.http.request(method, self.base + path, timeout=30, **kw)
            _ = response.content
        except requests.RequestException as exc:
            self.rec.record(name, time.perf_counter() - start, None, type(exc).__name__)
            return None
        self.rec.record(
            name,
            time.perf_counter() - start,
            response.status_code,
            response.text if response.status_code >= 500 else "",
        )
        return response

    think_s = (0.5, 2.0)

    def think(self) -> None:
        self.stop.wait(self.rng.uniform(*self.think_s))


class Reader(User):
    def __init__(self, *a, username: str, token: str, **kw) -> None:
        super().__init__(*a, **kw)
        self.username, self.token = username, token

    def login(self) -> bool:
        page = self.call("login_form", "GET", "/login")
        if page is None:
            return False
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        data = {
            "username": self.username,
            "password": DEMO_PASSWORD,
            "csrf_token": match.group(1) if match else "",
        }
        done = self.call("login", "POST", "/login", data=data, allow_redirects=False)
        return done is not None and done.status_code == 302

    def run(self) -> None:
        self.stop.wait(self.rng.uniform(0, 3))  # users arrive over a few seconds
        if not self.login():
            return
        steps = [
            ("map_page", "GET", "/", {}),
            ("map_cells", "GET", "/map/cells.geojson", {}),
            ("map_counts", "GET", "/map/counts.json", {}),
            ("map_issues", "GET", "/map/issues.geojson", {}),
            ("issue_list", "GET", "/issues/", {}),
            (
                "api_list",
                "GET",
                "/api/v1/issues?limit=20",
                {"headers": {"Authorization": f"Bearer {self.token}"}},
            ),
        ]
        i = self.rng.randrange(len(steps))
        while not self.stop.is_set():
            name, method, path, kw = steps[i % len(steps)]
            self.call(
                name, method, path, headers={"Accept-Encoding": "gzip"} | kw.get("headers", {})
            )
            i += 1
            self.think()


class Writer(User):
    def __init__(
        self, *a, token: str, points: list[tuple[float, float]], run_id: str, **kw
    ) -> None:
        super().__init__(*a, **kw)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.points, self.run_id = points, run_id
        self.mine: list[dict] = []  # {"id", "version", "step"}

    def report(self) -> None:
        lon, lat = self.rng.choice(self.points)
        description = f"压测 {self.run_id} 用户{self.index} #{uuid.uuid4().hex[:12]} 路面垃圾"
        body = {
            "description": description,
            "category": "0302",
            "lon": lon + self.rng.uniform(-2e-5, 2e-5),
            "lat": lat + self.rng.uniform(-2e-5, 2e-5),
        }
        response = self.call(
            "api_create", "POST", "/api/v1/issues", json=body, headers=self.headers
        )
        if response is not None and response.status_code in (201, 202):
            data = response.json()
            with self.rec.lock:
                self.rec.accepted[data["id"]] = {"description": description, "actions": []}
            self.mine.append({"id": data["id"], "version": data.get("version"), "step": 0})

    def advance(self) -> None:
        open_ones = [m for m in self.mine if m["step"] < len(WORKFLOW)]
        if not open_ones:
            self.report()
            return
        item = self.rng.choice(open_ones)
        action = WORKFLOW[item["step"]]
        body = {"action": action}
        if item["version"] is not None:
            body["version"] = item["version"]
        response = self.call(
            "api_action",
            "POST",
            f"/api/v1/issues/{item['id']}/actions",
            json=body,
            headers=self.headers,
        )
        if response is not None and response.status_code == 200:
            item["version"] = response.json().get("version")
            item["step"] += 1
            with self.rec.lock:
                self.rec.accepted[item["id"]]["actions"].append(action)
        elif response is not None and response.status_code == 409:
            item["version"] = None  # re-read on the next try
        elif response is None:
            # In flight when a worker died: the action may or may not have happened.
            with self.rec.lock:
                self.rec.accepted[item["id"]]["uncertain"] = True
            item["step"] = len(WORKFLOW)

    def run(self) -> None:
        self.stop.wait(self.rng.uniform(0, 3))
        while not self.stop.is_set():
            if self.rng.random() < 0.5:
                self.report()
            else:
                self.advance()
            self.think()


# ---- checks ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def check_integrity(url: str, rec: Recorder, run_id: str) -> dict:
    """Every accepted report exactly once, with exactly its accepted history."""
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT id, description FROM issue WHERE description LIKE %s", (f"压测 {run_id} %",)
        ).fetchall()
        by_desc: dict[str, list[int]] = defaultdict(list)
        for issue_id, description in stored:
            by_desc[description].append(issue_id)
        events: dict[int, list[str]] = defaultdict(list)
        for issue_id, action in conn.execute(
            "SELECT issue_id, action FROM issue_event WHERE issue_id = ANY(%s) ORDER BY id",
            ([i for i, _ in stored],),
        ):
            events[issue_id].append(action)
    accepted_desc = {v["description"] for v in rec.accepted.values()}
    for issue_id, item in rec.accepted.items():
        ids = by_desc.get(item["description"], [])
        if ids != [issue_id]:
            problems.append(f"report #{issue_id} stored {len(ids)} times: {ids}")
            continue
        expected = ["report", *item["actions"]]
        history = events.get(issue_id, [])
        if item.get("uncertain"):
            ok = history[: len(expected)] == expected and len(history) <= len(expected) + 1
        else:
            ok = history == expected
        if not ok:
            problems.append(f"#{issue_id} history {history} != accepted {expected}")
    duplicated = [d for d, ids in by_desc.items() if len(ids) > 1]
    unacknowledged = [d for d in by_desc if d not in accepted_desc]
    return {
        "accepted_reports": len(rec.accepted),
        "accepted_actions": sum(len(v["actions"]) for v in rec.accepted.values()),
        "stored_reports": len(stored),
        "duplicated": len(duplicated),
        "stored_but_unacknowledged": len(unacknowledged),
        "problems": problems[:20],
        "ok": not problems and not duplicated,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--server",
        default=os.environ.get("LOAD_DATABASE_SERVER", "postgresql://root@127.0.0.1:5432"),
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        help="seconds of load before measuring (workers build their caches)",
    )
    parser.add_argument(
        "--think", default="0.5,2", help="MIN,MAX seconds a user waits between requests"
    )
    parser.add_argument("--kill-worker-at", type=float, default=None)
    parser.add_argument("--restart-db-at", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--template",
        default=None,
        help="copy this already migrated and seeded database instead of seeding a new one "
        "(before/after runs on identical data; see --make-template)",
    )
    parser.add_argument(
        "--make-template",
        default=None,
        metavar="NAME",
        help="only create database NAME, migrate and seed it, then exit",
    )
    args = parser.parse_args()

    if args.make_template:
        url = make_database(args.server, args.make_template)
        env = {**os.environ, "DATABASE_URL": url}
        flask(env, "db", "upgrade")
        flask(env, "seed-demo")
        print(f"template database {args.make_template} ready")
        return 0
    run_id = uuid.uuid4().hex[:8]
    db_name = f"sanigrid_load_{run_id}"
    if args.template:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}" TEMPLATE "{args.template}"')
        url = f"{args.server}/{db_name}"
    else:
        url = make_database(args.server, db_name)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "load-test-" + run_id,
        "RATELIMIT_STORAGE_URI": args.redis,
        "PROXY_COUNT": "1",
        "PHOTO_DIR": f"/tmp/sanigrid-load-{run_id}/photos",
    }
    server = None
    try:
        t0 = time.time()
        if args.template is None:
            flask(env, "db", "upgrade")
            flask(env, "seed-demo")
        tokens = {}
        for name in ("admin", "inspector", "leader"):
            tokens[name] = flask(env, "create-token", name).strip().splitlines()[-1]
        print(f"demo database {db_name} ready in {time.time() - t0:.1f} s")
        with psycopg.connect(url) as conn:
            heads = [
                r[0]
                for r in conn.execute(
                    "SELECT username FROM \"user\" WHERE role = 'unit_head' ORDER BY id LIMIT 8"
                )
            ]
            points = [
                (float(x), float(y))
                for x, y in conn.execute(
                    "SELECT (minx + maxx) / 2, (miny + maxy) / 2 FROM cell c "
                    "JOIN grid_layer g ON g.id = c.grid_id WHERE g.is_active ORDER BY c.id"
                )
            ]
        for name in heads:
            tokens[name] = flask(env, "create-token", name).strip().splitlines()[-1]

        User.think_s = tuple(float(x) for x in args.think.split(","))
        server = start_gunicorn(env, args.port, args.workers)
        base = f"http://127.0.0.1:{args.port}"
        rec = Recorder()
        stop = threading.Event()
        readers = args.users // 2
        users: list[User] = []
        reader_names = ["leader", "inspector", *heads]
        for i in range(readers):
            name = reader_names[i % len(reader_names)]
            users.append(Reader(base, i, rec, stop, username=name, token=tokens[name]))
        for i in range(readers, args.users):
            users.append(
                Writer(base, i, rec, stop, token=tokens["admin"], points=points, run_id=run_id)
            )
        print(
            f"{len(users)} users ({readers} readers, {args.users - readers} writers) "
            f"against {args.workers} gunicorn workers for {args.duration:.0f} s, "
            f"think time {args.think} s ..."
        )
        start = time.time()
        for user in users:
            user.start()
        events_done = set()
        while time.time() - start < args.warmup:
            time.sleep(0.2)
        rec.reset_stats()
        cpu_before = cpu_snapshot(server.pid, args.server, db_name)
        start = time.time()
        print(f"  warm-up of {args.warmup:.0f} s done; measuring")
        while time.time() - start < args.duration:
            elapsed = time.time() - start
            if (
                args.kill_worker_at is not None
                and elapsed >= args.kill_worker_at
                and "kill" not in events_done
            ):
                victim = worker_pids(server.pid)[0]
                os.kill(victim, signal.SIGKILL)
                print(f"  t={elapsed:.0f}s: SIGKILL gunicorn worker {victim}")
                events_done.add("kill")
            if (
                args.restart_db_at is not None
                and elapsed >= args.restart_db_at
                and "db" not in events_done
            ):
                with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                    n = conn.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s",
                        (db_name,),
                    ).fetchone()[0]
                print(f"  t={elapsed:.0f}s: terminated {n} database connections")
                events_done.add("db")
            time.sleep(0.2)
        cpu_after = cpu_snapshot(server.pid, args.server, db_name)
        stop.set()
        for user in users:
            user.join(timeout=35)
        wall = time.time() - start
        cpu = cpu_shares(cpu_before, cpu_after)

        rows = []
        total = errors = 0
        print(f"\n{'endpoint':<12} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
        for name in sorted(set(rec.latency) | set(rec.failures)):
            lat = rec.latency.get(name, [])
            statuses = dict(sorted(rec.status[name].items()))
            bad = sum(n for s, n in statuses.items() if s >= 500) + rec.failures.get(name, 0)
            total += len(lat) + rec.failures.get(name, 0)
            errors += bad
            row = {
                "endpoint": name,
                "n": len(lat),
                "p50": percentile(lat, 50) * 1000,
                "p95": percentile(lat, 95) * 1000,
                "p99": percentile(lat, 99) * 1000,
                "statuses": statuses,
                "failed": rec.failures.get(name, 0),
                "errors": bad,
            }
            rows.append(row)
            extra = f" failed={row['failed']}" if row["failed"] else ""
            print(
                f"{name:<12} {row['n']:>6} {row['p50']:>8.0f} {row['p95']:>8.0f} "
                f"{row['p99']:>8.0f}  {statuses}{extra}"
            )
        json_p95 = max((r["p95"] for r in rows if r["endpoint"] in JSON_ENDPOINTS), default=0)
        all_json = [x for n in JSON_ENDPOINTS for x in rec.latency.get(n, [])]
        print(
            f"\n{total} requests in {wall:.0f} s ({total / wall:.0f}/s), errors (5xx + failed): "
            f"{errors}"
        )
        print(
            f"JSON endpoints: p95 of all {percentile(all_json, 95) * 1000:.0f} ms, "
            f"worst endpoint p95 {json_p95:.0f} ms (target < 300 ms)"
        )
        print(
            f"CPU while measuring (of {cpu['cores']} cores, {cpu['wall_s']:.0f} s): machine busy "
            f"{cpu['busy']:.0%}; gunicorn workers {cpu['gunicorn_s']:.0f} s, PostgreSQL backends "
            f"of this database {cpu['postgres_s']:.0f} s, this load generator "
            f"{cpu['generator_s']:.0f} s, everything else {cpu['other_s']:.0f} s; "
            f"load average {cpu['loadavg']}"
        )
        for sample in rec.samples:
            print("  sample error:", sample)
        integrity = check_integrity(url, rec, run_id)
        print(f"integrity: {json.dumps({k: v for k, v in integrity.items()}, ensure_ascii=False)}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "rows": rows,
                        "integrity": integrity,
                        "requests": total,
                        "errors": errors,
                        "wall_s": wall,
                        "json_p95_all": percentile(all_json, 95) * 1000,
                        "cpu": cpu,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
        faults = args.kill_worker_at is not None or args.restart_db_at is not None
        ok = integrity["ok"] and (faults or errors == 0)
        print("RESULT (integrity, errors):", "PASS" if ok else "FAIL")
        print("RESULT (JSON p95 < 300 ms):",
              "PASS" if json_p95 < 300 else f"FAIL ({json_p95:.0f} ms)")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            drop_database(args.server, db_name)


if __name__ == "__main__":
    sys.exit(main())
