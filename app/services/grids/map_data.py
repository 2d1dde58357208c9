"""What the density map shows a given user: problem filters, cells with open counts, layers.

Plain GeoJSON for the pages' Folium maps; the compressed, cached payloads the browser
fetches for the county-wide map are built in ``map_layers``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import OPEN_STATUSES, Category, Cell, Feature, Issue, Unit, User, today_local
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

    def apply(self, stmt: Select) -> Select:
        """Return ``stmt`` (a select over Issue) narrowed by the set filters."""
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


def layer_fc(session: Session, kind: str, *, props: tuple[str, ...] = ("name",)) -> dict | None:
    """The active layer of a kind as GeoJSON (name, type), or None when there is none."""
    layer = active_layer(session, kind)
    if layer is None:
        return None
    rows = session.execute(
        select(Feature.name, Feature.ftype, Feature.geom).where(Feature.layer_id == layer.id)
    ).all()
    return _fc([{"type": "Feature", "properties": {"name": name or "", "type": ftype or ""},
                 "geometry": json.loads(geom)} for name, ftype, geom in rows])


def open_counts(session: Session, user: User, grid_id: int, filters: IssueFilters | None = None) -> dict:
    """Open problems per cell id, counted over what the user may see."""
    stmt = select(Issue.cell_id, func.count()).where(Issue.cell_id.is_not(None))
    filters = filters or IssueFilters()
    if not filters.status:
        stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
    stmt = filters.apply(access.scope_issues(stmt, user)).group_by(Issue.cell_id)
    return dict(session.execute(stmt).all())


def cells_fc(session: Session, user: User, *, filters: IssueFilters | None = None,
             counts: Mapping[int, int] | None = None) -> tuple[dict, tuple]:
    """The active grid's visible cells with code, unit and a count; and their bounds.

    The count (property ``open``) is the cell's open problems under ``filters``, or the
    caller's own ``counts`` by cell id (the monthly report counts the month's problems).
    """
    grid = active_grid(session)
    if grid is None:
        return _fc([]), None
    if counts is None:
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


def visible_bounds(session: Session, user: User) -> tuple | None:
    """Bounds of the cells the user may see (the whole grid for county-wide roles)."""
    grid = active_grid(session)
    if grid is None:
        return None
    stmt = access.scope_cells(
        select(func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx), func.max(Cell.maxy))
        .where(Cell.grid_id == grid.id), user)
    row = session.execute(stmt).one()
    return tuple(row) if row[0] is not None else None
