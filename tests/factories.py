"""Test builders: databases and app configs, the factory town, problems, photos, sign-in.

After FixMyStreet's ``DB/Factories.pm``: tests build the rows they need through these small
functions and the ``Factory`` class (``tests/conftest.py`` hands one out as the ``factory``
fixture), and sign in through ``AuthActions`` (the ``auth`` fixture, as in Flask's flaskr
tutorial). Test modules import from here, never from ``tests.conftest``.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from openpyxl import Workbook
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from app.services.imports.rows import WORKBOOK_HEADER

ROOT = Path(__file__).resolve().parents[1]
SHARED_OSM = ROOT.parent / "shared" / "data" / "osm" / "guixi"

# The factory grid: 4×4 squares of about 100 m from this north-west corner.
BASE_LON, BASE_LAT = 103.50, 22.80
STEP = 0.001  # about 100 m

PASSWORD = "password123"  # every factory user's password


# ---- databases and apps ----------------------------------------------------------------


def _postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql")) else None


def make_database(name: str, tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """Create a fresh database for this run; return its URL and a drop function.

    SQLite under ``tmp_dir`` by default; a new PostgreSQL database when ``DATABASE_URL``
    names a PostgreSQL server.
    """
    base = _postgres_url()
    if base is None:
        path = tmp_dir / f"{name}.db"
        return f"sqlite:///{path}", lambda: None
    import psycopg  # only on PostgreSQL runs

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


def app_config(url: str, tmp: Path) -> dict:
    """The configuration every test app starts from (``create_app(app_config(url, tmp))``)."""
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "PHOTO_DIR": str(tmp / "photos"),
        "SERVER_NAME": None,
    }


def fresh_user_per_request(app) -> None:
    """Tests keep one app context open, so Flask's ``g`` would carry the signed-in user from
    one client's request into another's; production has a context per request."""
    from flask import g

    @app.before_request
    def _forget_cached_user():
        g.pop("_login_user", None)


def migrate(app) -> None:
    """Bring the app's database to the newest schema with the project's migrations."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))


def empty_tables(app) -> None:
    """Delete every row of every table (ids restart on PostgreSQL)."""
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


# ---- signing in ------------------------------------------------------------------------


class AuthActions:
    """Sign one test client in and out through the real login form.

    The ``auth`` fixture is one bound to ``client`` (``auth.login("west")``), ``demo_auth``
    one bound to ``demo_client``; any other client gets its own:
    ``AuthActions(other).login("admin")``.
    """

    def __init__(self, client):
        self.client = client

    def login(self, username: str, password: str = PASSWORD):
        """POST the login form; return the response (302 on success, 401 on a bad password)."""
        return self.client.post("/login", data={"username": username, "password": password})

    def logout(self):
        return self.client.post("/logout")


# ---- the factory town ------------------------------------------------------------------

_HASHES: dict[str, str] = {}


def _password_hash(password: str) -> str:
    """scrypt is slow on purpose; hash each test password once per run."""
    if password not in _HASHES:
        from app.services.core.passwords import hash_password

        _HASHES[password] = hash_password(password)
    return _HASHES[password]


class Factory:
    """Small builders: units, users, a 4×4 grid split between two units, categories, problems."""

    def __init__(self, session):
        self.session = session

    def unit(self, name: str, kind: str = "department"):
        from app.models import Unit

        unit = Unit(name=name, kind=kind, contact="联系人", phone="13800000000")
        self.session.add(unit)
        self.session.flush()
        return unit

    def user(self, username: str, role: str, unit=None, password: str = PASSWORD, **kw):
        from app.models import User

        user = User(username=username, role=role, unit=unit,
                    password_hash=_password_hash(password), **kw)
        self.session.add(user)
        self.session.flush()
        return user

    def category(self, code: str = "0302", name: str = "背街小巷", days: int = 5,
                 points: float = 1.0, functional_unit=None):
        from sqlalchemy import select

        from app.models import Category

        parent = code[:2]
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
    """A point inside the east half of the factory grid."""
    return BASE_LON + 0.0025 + (i % 2) * STEP, BASE_LAT - 0.0005 - (i // 2 % 4) * STEP


# ---- photos and uploads: real images built with Pillow ---------------------------------

GPS_IFD = 0x8825


def dms(value: float) -> tuple:
    """Decimal degrees as EXIF's (degrees, minutes, seconds) rationals."""
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def jpeg_bytes(
    *,
    gps: tuple[float, float] | None = None,
    size=(64, 48),
    colour="red",
    model: str = "TestPhone 12",
) -> bytes:
    """A real JPEG; with ``gps`` (lon, lat) its EXIF carries a GPS fix and camera model."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x0110] = model  # Model
    exif[0x010F] = "TestMaker"  # Make
    exif[0x0132] = "2024:05:06 10:11:12"  # DateTime
    if gps is not None:
        lon, lat = gps
        exif[GPS_IFD] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif, quality=90)
    return buf.getvalue()


def png_bytes(size=(40, 30)) -> bytes:
    """A small real PNG (semi-transparent green)."""
    buf = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 200)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A tiny file that decodes to side×side pixels (1-bit, compresses to a few KB)."""
    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def upload(data: bytes, name: str = "photo.jpg"):
    """One file field for a test client's multipart form."""
    return (io.BytesIO(data), name)


def photo_files(root) -> list:
    """Every file under the photo directory (temporary files included)."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


# ---- problem workbooks as offices send them -------------------------------------------

HEADERS = list(WORKBOOK_HEADER)


def workbook_bytes(
    rows: list[list],
    *,
    headers=HEADERS,
    title: str | None = "问题清单",
    subtitle: str | None = None,
    merges: tuple[str, ...] = (),
) -> bytes:
    """A feedback list as inspectors send it: merged title, optional subtitle, headers."""
    wb = Workbook()
    ws = wb.active
    if title:
        ws.append([title])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    if subtitle:
        ws.append([subtitle])
    ws.append(list(headers))
    for row in rows:
        ws.append(row)
    for ref in merges:
        ws.merge_cells(ref)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows: list[list], *, headers=HEADERS, encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue().encode(encoding)


def row(
    seq,
    description="路面有积存垃圾",
    *,
    address="",
    category="背街小巷",
    unit="",
    found="2026-10-28",
    deadline="5个工作日",
    lon=None,
    lat=None,
    remark=None,
) -> list:
    return [seq, description, address, category, unit, found, deadline, lon, lat, remark]
