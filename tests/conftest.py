"""Shared fixtures: real databases (SQLite, or PostgreSQL when DATABASE_URL is set).

Two databases per run: ``app`` gives each test an empty schema with small factories;
``demo_app`` is seeded once with the demo county seat for tests that need a whole town.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Property tests explore new random inputs on every developer run, but CI must not fail
# one day and pass the next on the same code: there they replay a fixed sequence.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a dev dependency
    pass
SHARED_OSM = ROOT.parent / "shared" / "data" / "osm" / "guixi"


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql")) else None


def make_database(name: str, tmp_dir: Path) -> tuple[str, callable]:
    """Create a fresh database for this run; return its URL and a drop function."""
    base = _postgres_url()
    if base is None:
        path = tmp_dir / f"{name}.db"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    server, _, _ = base.rpartition("/")
    dbname = f"sg_test_{name}_{uuid.uuid4().hex[:8]}"
    admin_url = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')

    def drop() -> None:
        from app.extensions import db

        db.session.remove()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    return f"{server}/{dbname}", drop


def _fresh_user_per_request(app) -> None:
    """Tests keep one app context open, so Flask's ``g`` would carry the signed-in user from
    one client's request into another's; production has a context per request."""
    from flask import g

    @app.before_request
    def _forget_cached_user():
        g.pop("_login_user", None)


def _config(url: str, tmp: Path) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "PHOTO_DIR": str(tmp / "photos"),
        "SERVER_NAME": None,
    }


def _migrate(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))


@pytest.fixture(scope="session")
def _unit_database(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("db")
    url, drop = make_database("unit", tmp)
    from app import create_app

    app = create_app(_config(url, tmp))
    _migrate(app)
    yield url, tmp
    with app.app_context():
        drop()


def _empty_tables(app) -> None:
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        if db.engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in tables)  # "user" is a keyword
            db.session.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                db.session.execute(text(f'DELETE FROM "{name}"'))
        db.session.commit()


@pytest.fixture()
def app(_unit_database):
    """An app on an empty (migrated) database; each test starts from no rows."""
    from app import create_app
    from app.services.grids import cells as grids
    from app.services.grids import map_layers
    from app.services.tables import workdays

    url, tmp = _unit_database
    app = create_app(_config(url, tmp))
    _fresh_user_per_request(app)
    _empty_tables(app)
    grids.clear_caches()
    map_layers.clear_caches()
    workdays._CACHE.clear()  # ids and versions restart with every emptied database
    with app.app_context():
        yield app
        from app.extensions import db

        db.session.remove()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def session(app):
    from app.extensions import db

    return db.session


@pytest.fixture(scope="session")
def demo_app(tmp_path_factory):
    """An app whose database holds the seeded demo county seat (built once per run)."""
    tmp = tmp_path_factory.mktemp("demo")
    url, drop = make_database("demo", tmp)
    from app import create_app

    app = create_app(_config(url, tmp))
    _fresh_user_per_request(app)
    _migrate(app)
    with app.app_context():
        from app.extensions import db
        from app.services.ops.seed import seed_demo

        seed_demo(db.session, ROOT / "layers" / "demo", county_code="532599", log=lambda *_: None)
        db.session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        drop()


@pytest.fixture()
def demo_client(demo_app):
    with demo_app.app_context():
        yield demo_app.test_client()


# ---- factories -------------------------------------------------------------------------

BASE_LON, BASE_LAT = 103.50, 22.80
STEP = 0.001  # about 100 m


def login(client, username: str, password: str = "password123"):
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture()
def factory(session):
    """Small builders: units, users, a 4×4 grid split between two units, categories."""
    return Factory(session)


_HASHES: dict[str, str] = {}


def _password_hash(password: str) -> str:
    """scrypt is slow on purpose; hash each test password once per run."""
    if password not in _HASHES:
        from app.services.core.passwords import hash_password

        _HASHES[password] = hash_password(password)
    return _HASHES[password]


class Factory:
    def __init__(self, session):
        self.session = session

    def unit(self, name: str, kind: str = "department"):
        from app.models import Unit

        unit = Unit(name=name, kind=kind, contact="联系人", phone="13800000000")
        self.session.add(unit)
        self.session.flush()
        return unit

    def user(self, username: str, role: str, unit=None, password: str = "password123", **kw):
        from app.models import User

        user = User(username=username, role=role, unit=unit,
                    password_hash=_password_hash(password), **kw)
        self.session.add(user)
        self.session.flush()
        return user

    def category(self, code: str = "0302", name: str = "背街小巷", days: int = 5,
                 points: float = 1.0, functional_unit=None):
        from app.models import Category

        parent = code[:2]
        from sqlalchemy import select

        if len(code) > 2 and not self.session.execute(
            select(Category).where(Category.code == parent)
        ).scalar():
            self.session.add(Category(code=parent, name="市容环境卫生", level=1, deadline_days=days,
                                      points=points))
        cat = Category(code=code, name=name, level=2 if len(code) > 2 else 1, parent_code=parent
                       if len(code) > 2 else None, deadline_days=days, points=points,
                       functional_unit=functional_unit)
        self.session.add(cat)
        self.session.flush()
        return cat

    def grid(self, west_unit, east_unit, *, n: int = 4):
        """An n×n grid of ~100 m squares; the west half to one unit, the east to another."""
        import geopandas as gpd
        from shapely.geometry import box

        from app.services.grids.cells import activate_grid, store_grid

        rows = []
        for r in range(n):
            for c in range(n):
                geom = box(BASE_LON + c * STEP, BASE_LAT - (r + 1) * STEP,
                           BASE_LON + (c + 1) * STEP, BASE_LAT - r * STEP)
                rows.append({"code": f"532599001001{r * n + c + 1:03d}", "subdistrict_code": "001",
                             "community_code": "001", "area_m2": 10_000.0,
                             "unit_id": (west_unit if c < n // 2 else east_unit).id,
                             "geometry": geom})
        gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
        grid = store_grid(self.session, gdf, name="测试网格", method="square")
        activate_grid(self.session, grid.id)
        self.session.flush()
        return grid

    def town(self):
        """Two units, one user per role, a grid and a category: the usual test world."""
        west = self.unit("西区单位")
        east = self.unit("东区单位")
        grid = self.grid(west, east)
        cat = self.category()
        users = {
            "admin": self.user("admin", "admin"),
            "inspector": self.user("inspector", "inspector"),
            "leader": self.user("leader", "leader"),
            "west": self.user("west", "unit_head", west),
            "east": self.user("east", "unit_head", east),
        }
        self.session.commit()
        return {"west": west, "east": east, "grid": grid, "category": cat, "users": users}

    def issue(self, user, *, lon: float, lat: float, description: str = "路面有积存垃圾",
              category: str = "0302", **kw):
        from app.services.issues.intake import IssueInput, create_issue

        # A factory builds history (back-dated problems): it is no intake door.
        issue = create_issue(self.session, user, IssueInput(
            description=description, category=category, lon=lon, lat=lat, **kw),
            trusted_import=True)
        self.session.commit()
        return issue


def west_point(i: int = 0) -> tuple[float, float]:
    """A point inside the west half of the factory grid."""
    return BASE_LON + 0.0005 + (i % 2) * STEP, BASE_LAT - 0.0005 - (i // 2 % 4) * STEP


def east_point(i: int = 0) -> tuple[float, float]:
    return BASE_LON + 0.0025 + (i % 2) * STEP, BASE_LAT - 0.0005 - (i // 2 % 4) * STEP
