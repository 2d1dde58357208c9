"""What the density map shows a given user: cells with open counts, problems, base layers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import func, select

from app.models import OPEN_STATUSES, Cell, Feature, Issue, Unit, User, today_local
from app.services.core import access
from app.services.grids.cells import active_grid
from app.services.grids.layers import active_layer


@dataclass
class IssueFilters:
    """Filters shared by the problem list and the map's density colouring."""

    status: str | None = None
    category: str | None = None
    source: str | None = None
    unit_id: int | None = None
    cell_code: str | None = None
    overdue: bool = False
    date_from: str | None = None
    date_to: str | None = None
    extra: dict = field(default_factory=dict)

    def apply(self, stmt):
        from datetime import datetime

        from app.models import Category

        if self.status == "open":
            stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
        elif self.status:
            stmt = stmt.where(Issue.status == self.status)
        if self.category:
            sub = select(Category.id).where(
                (Category.code == self.category) | (Category.parent_code == self.category))
            stmt = stmt.where(Issue.category_id.in_(sub))
        if self.source:
            stmt = stmt.where(Issue.source == self.source)
        if self.unit_id:
            stmt = stmt.where(Issue.unit_id == self.unit_id)
        if self.cell_code:
            stmt = stmt.where(Issue.cell_id.in_(select(Cell.id).where(Cell.code == self.cell_code)))
        if self.overdue:
            stmt = stmt.where(Issue.status.in_(OPEN_STATUSES), Issue.deadline < today_local())
        if self.date_from:
            stmt = stmt.where(Issue.found_at >= datetime.fromisoformat(self.date_from))
        if self.date_to:
            stmt = stmt.where(Issue.found_at < datetime.fromisoformat(self.date_to + "T23:59:59"))
        return stmt


def _fc(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def layer_fc(session, kind: str, *, props: tuple[str, ...] = ("name",)) -> dict | None:
    layer = active_layer(session, kind)
    if layer is None:
        return None
    rows = session.execute(
        select(Feature.name, Feature.ftype, Feature.geom).where(Feature.layer_id == layer.id)
    ).all()
    return _fc([{"type": "Feature", "properties": {"name": name or "", "type": ftype or ""},
                 "geometry": json.loads(geom)} for name, ftype, geom in rows])


def open_counts(session, user: User, grid_id: int, filters: IssueFilters | None = None) -> dict:
    """Open problems per cell id, counted over what the user may see."""
    stmt = select(Issue.cell_id, func.count()).where(Issue.cell_id.is_not(None))
    filters = filters or IssueFilters()
    if not filters.status:
        stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
    stmt = filters.apply(access.scope_issues(stmt, user)).group_by(Issue.cell_id)
    return dict(session.execute(stmt).all())


def cells_fc(session, user: User, *, filters: IssueFilters | None = None) -> tuple[dict, tuple]:
    """The active grid's visible cells with code, unit and open count; and their bounds."""
    grid = active_grid(session)
    if grid is None:
        return _fc([]), None
    counts = open_counts(session, user, grid.id, filters)
    stmt = access.scope_cells(
        select(Cell.id, Cell.code, Unit.name, Cell.geom, Cell.minx, Cell.miny, Cell.maxx,
               Cell.maxy).outerjoin(Unit, Unit.id == Cell.unit_id).where(Cell.grid_id == grid.id),
        user,
    )
    features = []
    bounds = [180.0, 90.0, -180.0, -90.0]
    for cell_id, code, unit, geom, minx, miny, maxx, maxy in session.execute(stmt):
        features.append({"type": "Feature", "geometry": json.loads(geom),
                         "properties": {"id": cell_id, "code": code, "unit": unit or "未分配",
                                        "open": int(counts.get(cell_id, 0))}})
        bounds = [min(bounds[0], minx), min(bounds[1], miny), max(bounds[2], maxx),
                  max(bounds[3], maxy)]
    return _fc(features), (tuple(bounds) if features else None)


def visible_bounds(session, user: User) -> tuple | None:
    """Bounds of the cells the user may see (the whole grid for county-wide roles)."""
    grid = active_grid(session)
    if grid is None:
        return None
    stmt = access.scope_cells(
        select(func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx), func.max(Cell.maxy))
        .where(Cell.grid_id == grid.id), user)
    row = session.execute(stmt).one()
    return tuple(row) if row[0] is not None else None


# ---------------------------------------------------------------------- map markers

MAX_POINTS = 20_000
# Encoded marker features, keyed by the exact row they were encoded from (so a changed
# status, text or category name is a new key, never a stale feature).
_FEATURES: dict[tuple, str] = {}
_FEATURES_MAX = 4 * MAX_POINTS
_PAYLOADS: dict[tuple, object] = {}


def _feature_text(row: tuple) -> str:
    from app.models import STATUS_LABELS

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


def issues_payload(session, user: User, filters: IssueFilters):
    """Placed problems for the markers layer (open ones unless a status filter is set).

    The same body as ``map_layers.issues_payload`` (the same features, order, limit and
    ``truncated`` flag), built for a write-heavy load: the whole payload is cached under
    the newest event id (any change to a problem adds one), and each feature's JSON text
    is kept per row, so a rebuild after one new report re-encodes one feature, not all.
    The rows are read through Core (no ORM row objects) and compressed at gzip level 1.

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
    app.services.grids.map_layers.Payload
        The gzip-compressed body and its ETag.
    """
    import gzip
    import hashlib

    from app.models import Category, IssueEvent
    from app.services.grids.map_layers import Payload, scope_key

    version = session.execute(select(func.max(IssueEvent.id))).scalar() or 0
    # The grid's identity guards against a database rebuilt from scratch (event ids
    # start again), as the counts cache does.
    grid = active_grid(session)
    grid_key = (grid.id, grid.created_at.isoformat()) if grid is not None else None
    key = (grid_key, scope_key(user), repr(filters), version)
    cached = _PAYLOADS.get(key)
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
    if len(_FEATURES) > _FEATURES_MAX:
        _FEATURES.clear()
    texts = []
    for row in rows:
        row = tuple(row)
        text = _FEATURES.get(row)
        if text is None:
            text = _feature_text(row)
            _FEATURES[row] = text
        texts.append(text)
    truncated = "true" if len(rows) >= MAX_POINTS else "false"
    raw = ('{"type":"FeatureCollection","features":[' + ",".join(texts)
           + '],"truncated":' + truncated + "}").encode()
    payload = Payload(gzip.compress(raw, 1, mtime=0), hashlib.sha1(raw).hexdigest()[:20])
    if len(_PAYLOADS) > 64:
        _PAYLOADS.clear()
    _PAYLOADS[key] = payload
    return payload
