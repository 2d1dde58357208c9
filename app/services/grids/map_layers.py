"""Map data for the browser at county scale: compact, gzip-compressed, cached.

Cell geometry never changes within a grid version, so each (grid, scope) payload is built
once per process and served with an ETag. Open-problem counts and markers change with
every problem event; they are cached under the newest event id, which any change to a
problem bumps, so a cached answer is never stale and no shared in-process state is
needed for correctness (every worker reaches the same answer from the database).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    OPEN_STATUSES,
    STATUS_LABELS,
    Category,
    Cell,
    GridLayer,
    Issue,
    IssueEvent,
    Layer,
    Unit,
    User,
)
from app.services.core import access
from app.services.core.cache import KeyedCache
from app.services.grids.cells import active_grid, locator_for
from app.services.grids.map_data import IssueFilters, open_counts

# Cells are drawn at town scale; 0.5 m simplification and 1e-6° (~0.1 m) rounding are
# invisible at any zoom a user draws, and halve the bytes.
SIMPLIFY_DEG = 0.000005
PRECISION_DEG = 1e-6
MAX_POINTS = 20_000


@dataclass(frozen=True)
class Payload:
    """A gzip-compressed JSON body and its ETag."""

    gzipped: bytes
    etag: str

    def body(self, accept_gzip: bool) -> bytes:
        return self.gzipped if accept_gzip else gzip.decompress(self.gzipped)


_CELLS: KeyedCache[Payload] = KeyedCache("map cells payloads", maxsize=64)
_COUNTS: KeyedCache[Payload] = KeyedCache("map counts payloads", maxsize=256)
_PAGES: KeyedCache[object] = KeyedCache("map pages", maxsize=256)
_MARKERS: KeyedCache[Payload] = KeyedCache("map markers payloads", maxsize=64)
# Encoded marker features, keyed by the exact row they were encoded from (so a changed
# status, text or category name is a new key, never a stale feature).
_FEATURES: KeyedCache[str] = KeyedCache("map marker features", maxsize=4 * MAX_POINTS)


def warm_caches(session: Session) -> None:
    """Build the county-wide cells payload and the grid's locator (worker start-up)."""
    grid = active_grid(session)
    admin = session.execute(select(User).where(User.role == "admin").limit(1)).scalar()
    if grid is None or admin is None:
        return
    cells_payload(session, admin, grid)
    locator_for(session, grid.id)
    counts_payload(session, admin, grid, IssueFilters())


def page_key(session: Session, user: User, query: str) -> tuple:
    """What the map page's HTML depends on: scope, grid version, base layers, filters.

    The page itself carries no counts or problems (those are fetched), so it changes only
    when a grid, an assignment or a base layer does.
    """
    grid = active_grid(session)
    layers = tuple(session.execute(
        select(Layer.id).where(Layer.active.is_(True)).order_by(Layer.id)).scalars())
    grid_key = (grid.id, grid.created_at.isoformat(), grid.revision) if grid else None
    return (scope_key(user), grid_key, layers, query)


def cached_page(key: tuple, build: Callable[[], object]) -> object:
    """Return the rendered page parts for a key, building them once per process."""
    parts = _PAGES.get(key)
    if parts is None:
        parts = build()
        _PAGES.put(key, parts)
    return parts


def _pack(obj) -> Payload:
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return Payload(gzip.compress(raw, 6, mtime=0), hashlib.sha1(raw).hexdigest()[:20])


def scope_key(user: User) -> str:
    """Who sees the same cells and problems: one unit, or the whole county."""
    return f"unit:{user.unit_id}" if access.is_unit_scoped(user) else "all"


def cells_payload(session: Session, user: User, grid: GridLayer) -> Payload:
    """The grid's visible cells as compact GeoJSON (properties i=id, c=code, u=unit index)."""
    key = (grid.id, grid.created_at.isoformat(), grid.revision, scope_key(user))
    cached = _CELLS.get(key)
    if cached is not None:
        return cached
    stmt = access.scope_cells(
        select(Cell.id, Cell.code, Cell.unit_id, Cell.geom).where(Cell.grid_id == grid.id)
        .order_by(Cell.id), user)
    rows = session.execute(stmt).all()
    units = dict(session.execute(select(Unit.id, Unit.name)).all())
    unit_index: dict[int | None, int] = {}
    unit_names: list[str] = []
    for _, _, unit_id, _ in rows:
        if unit_id not in unit_index:
            unit_index[unit_id] = len(unit_names)
            unit_names.append(units.get(unit_id, "未分配"))
    geoms = shapely.from_geojson([r[3] for r in rows]) if rows else np.array([])
    if len(geoms):
        geoms = shapely.set_precision(
            shapely.simplify(geoms, SIMPLIFY_DEG, preserve_topology=True), PRECISION_DEG)
    # The JSON text is assembled from shapely's vectorised writer: decoding and re-encoding
    # 30,000 geometries through Python dicts took seconds on a cold worker.
    geometry_texts = shapely.to_geojson(geoms) if len(geoms) else []
    features = ",".join(
        f'{{"type":"Feature","properties":{{"i":{r[0]},"c":{json.dumps(r[1])},'
        f'"u":{unit_index[r[2]]}}},"geometry":{text}}}'
        for r, text in zip(rows, geometry_texts, strict=True)
    )
    bounds = shapely.total_bounds(geoms).round(6).tolist() if len(geoms) else None
    head = json.dumps({"type": "FeatureCollection", "grid": grid.id, "units": unit_names,
                       "bbox": bounds}, ensure_ascii=False, separators=(",", ":"))
    raw = (head[:-1] + ',"features":[' + features + "]}").encode()
    payload = Payload(gzip.compress(raw, 6, mtime=0), hashlib.sha1(raw).hexdigest()[:20])
    _CELLS.put(key, payload)
    return payload


def counts_payload(session: Session, user: User, grid: GridLayer, filters: IssueFilters) -> Payload:
    """Open problems per visible cell under the filters, as {"counts": {id: n}, "total": n}."""
    version = session.execute(select(func.max(IssueEvent.id))).scalar() or 0
    key = (grid.id, grid.created_at.isoformat(), scope_key(user), repr(filters), version)
    cached = _COUNTS.get(key)
    if cached is not None:
        return cached
    # One definition of "open problems per cell" for the map, OGC and patrol planning.
    counts = {str(cell_id): n for cell_id, n in open_counts(session, user, grid.id, filters).items()}
    payload = _pack({"counts": counts, "total": sum(counts.values()), "version": version})
    _COUNTS.put(key, payload)
    return payload


def _feature_text(row: tuple) -> str:
    issue_id, lon, lat, status, cat, desc, addr = row
    return (
        f'{{"type":"Feature","geometry":{{"type":"Point","coordinates":'
        f"[{json.dumps(round(lon, 6))},{json.dumps(round(lat, 6))}]}},"
        f'"properties":{{"id":{issue_id},"s":{json.dumps(status, ensure_ascii=False)},'
        f'"sl":{json.dumps(STATUS_LABELS.get(status, status), ensure_ascii=False)},'
        f'"c":{json.dumps(cat or "未分类", ensure_ascii=False)},'
        f'"d":{json.dumps((desc or "")[:60], ensure_ascii=False)},'
        f'"a":{json.dumps(addr or "", ensure_ascii=False)}}}}}'
    )


def issues_payload(session: Session, user: User, filters: IssueFilters) -> Payload:
    """Placed problems for the markers layer (open ones unless a status filter is set).

    Built for a write-heavy load: the whole payload is cached under the newest event id
    (any change to a problem adds one), and each feature's JSON text is kept per row, so
    a rebuild after one new report re-encodes one feature, not all. The rows are read
    through Core (no ORM row objects) and compressed at gzip level 1.

    Parameters
    ----------
    session
        The database session.
    user
        The reader (scopes the problems).
    filters
        The map's filters.

    Returns
    -------
    Payload
        The gzip-compressed body (a FeatureCollection, newest first, at most
        ``MAX_POINTS`` features, with ``truncated``) and its ETag.
    """
    version = session.execute(select(func.max(IssueEvent.id))).scalar() or 0
    # The grid's identity guards against a database rebuilt from scratch (event ids
    # start again), as the counts cache does.
    grid = active_grid(session)
    grid_key = (grid.id, grid.created_at.isoformat()) if grid is not None else None
    key = (grid_key, scope_key(user), repr(filters), version)
    cached = _MARKERS.get(key)
    if cached is not None:
        return cached
    stmt = (select(Issue.id, Issue.lon, Issue.lat, Issue.status, Category.name,
                   Issue.description, Issue.address)
            .outerjoin(Category, Category.id == Issue.category_id)
            .where(Issue.lon.is_not(None)))
    if not filters.status:
        stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
    stmt = filters.apply(access.scope_issues(stmt, user)).order_by(Issue.id.desc()).limit(
        MAX_POINTS)
    rows = session.connection().execute(stmt).all()
    texts = []
    for row in rows:
        row = tuple(row)
        text = _FEATURES.get(row)
        if text is None:
            text = _FEATURES.put(row, _feature_text(row))
        texts.append(text)
    truncated = "true" if len(rows) >= MAX_POINTS else "false"
    raw = ('{"type":"FeatureCollection","features":[' + ",".join(texts)
           + '],"truncated":' + truncated + "}").encode()
    payload = Payload(gzip.compress(raw, 1, mtime=0), hashlib.sha1(raw).hexdigest()[:20])
    return _MARKERS.put(key, payload)
