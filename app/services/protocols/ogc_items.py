"""OGC API – Features items: parse an ``/items`` query, answer pages and single features.

Every query starts from the access-scoped selects of app/services/core/access.py, so a unit
head's token gets only that unit's cells and problems whatever bbox or id it asks for.

The database filters by each row's stored bounding box; rows whose box only overlaps the
query bbox are then checked exactly, so ``numberMatched`` and paging agree with the
standard's "geometry intersects bbox" rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shapely import box as shapely_box
from shapely.geometry import shape
from sqlalchemy import Select, func, select

from app.models import STATUS_LABELS, Category, Cell, Feature, Issue, Unit, User
from app.services.core import access, params
from app.services.core.errors import NotFoundError
from app.services.grids.cells import active_grid
from app.services.grids.map_data import open_counts
from app.services.protocols.ogc_collections import (
    CollectionSpec,
    active_layer_id,
    check_crs,
    filter_columns,
    get_spec,
    rfc3339,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# Candidate rows whose geometry must be parsed are loaded in chunks (bound parameters).
_CHUNK = 500


@dataclass
class ItemPage:
    """One page of features plus the number of all features that matched."""

    features: list[dict]
    matched: int
    limit: int
    offset: int

    @property
    def returned(self) -> int:
        return len(self.features)

    @property
    def has_next(self) -> bool:
        return self.offset + self.returned < self.matched

    @property
    def has_prev(self) -> bool:
        return self.offset > 0


@dataclass
class ItemQuery:
    """Parsed ``/items`` parameters."""

    bbox: tuple[float, float, float, float] | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    filters: dict[str, str] = field(default_factory=dict)
    # Closed/open interval over the problems' found_at (naive Beijing time, as stored).
    period: tuple[datetime | None, datetime | None] | None = None


def timestamp() -> str:
    """The current UTC time as the standard's ``timeStamp`` (RFC 3339)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_item_query(
    collection_id: str, args: Mapping, *, default_limit: int = DEFAULT_LIMIT
) -> ItemQuery:
    """Read bbox, limit (clamped to MAX_LIMIT, as the standard allows), offset and filters."""
    spec = get_spec(collection_id)
    check_crs("crs", args.get("crs"))
    # A larger limit is clamped, as the standard allows (GDAL asks for big pages).
    limit = params.parse_limit(args.get("limit"), default=default_limit, high=MAX_LIMIT, clamp=True)
    offset = params.parse_offset(args.get("offset"))
    allowed = filter_columns(spec)
    filters = {k: args.get(k) for k in allowed if args.get(k)}
    check_crs("bbox-crs", args.get("bbox-crs"))
    # The standard's 3D form (6 numbers) keeps only the horizontal corners.
    bbox = params.parse_bbox(args.get("bbox"), name="bbox", allow_3d=True)
    return ItemQuery(
        bbox=bbox,
        limit=limit,
        offset=offset,
        filters=filters,
        period=params.parse_interval(args.get("datetime"), name="datetime"),
    )


def _bbox_prefilter(stmt: Select, cols: tuple, bbox) -> Select:
    minx, miny, maxx, maxy = cols
    return stmt.where(minx <= bbox[2], maxx >= bbox[0], miny <= bbox[3], maxy >= bbox[1])


def _matching_ids(session, base: Select, id_col, cols: tuple, geom_col, bbox) -> list[int]:
    """Ids (ascending) whose geometry intersects bbox: box-inside rows at once, the rest exactly."""
    stmt = _bbox_prefilter(base.with_only_columns(id_col, *cols), cols, bbox).order_by(id_col)
    inside, check = [], []
    for fid, minx, miny, maxx, maxy in session.execute(stmt):
        if minx >= bbox[0] and maxx <= bbox[2] and miny >= bbox[1] and maxy <= bbox[3]:
            inside.append(fid)
        else:
            check.append(fid)
    query_box = shapely_box(*bbox)
    for start in range(0, len(check), _CHUNK):
        chunk = check[start : start + _CHUNK]
        geoms = session.execute(
            select(id_col, geom_col).select_from(id_col.table).where(id_col.in_(chunk))
        )
        inside.extend(fid for fid, geom in geoms if shape(json.loads(geom)).intersects(query_box))
    return sorted(inside)


def _page(
    session, base: Select, id_col, q: ItemQuery, *, bbox_cols: tuple | None, geom_col
) -> tuple[list, int]:
    """Return (rows of this page ordered by id, number matched) for a scoped select."""
    if q.bbox is None:
        matched = session.execute(
            select(func.count()).select_from(base.with_only_columns(id_col).subquery())
        ).scalar_one()
        rows = session.execute(base.order_by(id_col).limit(q.limit).offset(q.offset)).all()
        return rows, matched
    if bbox_cols is None:  # points: the stored coordinates are the geometry, filter exactly
        lon, lat = geom_col
        stmt = base.where(lon >= q.bbox[0], lon <= q.bbox[2], lat >= q.bbox[1], lat <= q.bbox[3])
        matched = session.execute(
            select(func.count()).select_from(stmt.with_only_columns(id_col).subquery())
        ).scalar_one()
        rows = session.execute(stmt.order_by(id_col).limit(q.limit).offset(q.offset)).all()
        return rows, matched
    ids = _matching_ids(session, base, id_col, bbox_cols, geom_col, q.bbox)
    page_ids = ids[q.offset : q.offset + q.limit]
    rows = (
        session.execute(base.where(id_col.in_(page_ids)).order_by(id_col)).all() if page_ids else []
    )
    return rows, len(ids)


def _cell_select(session, user: User, grid_id: int) -> Select:
    stmt = (
        select(
            Cell.id,
            Cell.code,
            Cell.subdistrict_code,
            Cell.community_code,
            Cell.area_m2,
            Unit.name,
            Cell.geom,
        )
        .outerjoin(Unit, Unit.id == Cell.unit_id)
        .where(Cell.grid_id == grid_id)
    )
    return access.scope_cells(stmt, user)


def _cell_feature(row, counts: dict) -> dict:
    cell_id, code, sub, com, area, unit, geom = row
    return {
        "type": "Feature",
        "id": cell_id,
        "geometry": json.loads(geom),
        "properties": {
            "code": code,
            "subdistrict_code": sub,
            "community_code": com,
            "area_m2": round(float(area or 0.0), 1),
            "unit": unit,
            "open_count": int(counts.get(cell_id, 0)),
        },
    }


def _issue_select(user: User) -> Select:
    stmt = (
        select(
            Issue.id,
            Issue.status,
            Category.code,
            Category.name,
            Issue.description,
            Issue.address,
            Unit.name,
            Cell.code,
            Issue.source,
            Issue.found_at,
            Issue.deadline,
            Issue.lon,
            Issue.lat,
        )
        .outerjoin(Category, Category.id == Issue.category_id)
        .outerjoin(Unit, Unit.id == Issue.unit_id)
        .outerjoin(Cell, Cell.id == Issue.cell_id)
        .where(Issue.lon.is_not(None), Issue.lat.is_not(None))
    )
    return access.scope_issues(stmt, user)


def _issue_feature(row) -> dict:
    (
        issue_id,
        status,
        cat_code,
        cat_name,
        description,
        address,
        unit,
        cell_code,
        source,
        found_at,
        deadline,
        lon,
        lat,
    ) = row
    return {
        "type": "Feature",
        "id": issue_id,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "status": status,
            "status_label": STATUS_LABELS.get(status, status),
            "category_code": cat_code,
            "category_name": cat_name,
            "description": description,
            "address": address,
            "unit": unit,
            "cell_code": cell_code,
            "source": source,
            "found_at": rfc3339(found_at),
            "deadline": deadline.isoformat() if deadline else None,
        },
    }


def _scalar(value):
    # Nested props would give clients a field type that varies by row: keep them as text.
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _layer_feature(row) -> dict:
    fid, name, ftype, props, geom = row
    properties = {"name": name, "ftype": ftype}
    for key, value in (props or {}).items():
        if key not in properties and key not in ("id", "geometry"):
            properties[key] = _scalar(value)
    return {"type": "Feature", "id": fid, "geometry": json.loads(geom), "properties": properties}


def _layer_select(layer_id: int) -> Select:
    return select(Feature.id, Feature.name, Feature.ftype, Feature.props, Feature.geom).where(
        Feature.layer_id == layer_id
    )


def _apply_filters(stmt: Select, spec: CollectionSpec, filters: dict[str, str]) -> Select:
    columns = filter_columns(spec)
    for name, value in filters.items():
        if spec.source == "issues" and name == "category":
            # A level-1 code (03) selects its level-2 categories too (0302, ...).
            stmt = stmt.where((Category.code == value) | (Category.parent_code == value))
        else:
            stmt = stmt.where(columns[name] == value)
    return stmt


def query_items(session, user: User, collection_id: str, q: ItemQuery) -> ItemPage:
    """One page of a collection's features the user may read, ordered by id."""
    spec = get_spec(collection_id)
    cell_bbox = (Cell.minx, Cell.miny, Cell.maxx, Cell.maxy)
    feature_bbox = (Feature.minx, Feature.miny, Feature.maxx, Feature.maxy)
    if spec.source == "cells":
        grid = active_grid(session)
        if grid is None:
            return ItemPage([], 0, q.limit, q.offset)
        base = _apply_filters(_cell_select(session, user, grid.id), spec, q.filters)
        rows, matched = _page(session, base, Cell.id, q, bbox_cols=cell_bbox, geom_col=Cell.geom)
        counts = open_counts(session, user, grid.id) if rows else {}
        features = [_cell_feature(row, counts) for row in rows]
    elif spec.source == "issues":
        base = _apply_filters(_issue_select(user), spec, q.filters)
        if q.period:
            start, end = q.period
            if start:
                base = base.where(Issue.found_at >= start)
            if end:
                base = base.where(Issue.found_at <= end)
        rows, matched = _page(
            session, base, Issue.id, q, bbox_cols=None, geom_col=(Issue.lon, Issue.lat)
        )
        features = [_issue_feature(row) for row in rows]
    else:
        layer_id = active_layer_id(session, spec)
        if layer_id is None:
            if spec.optional:
                msg = f"集合 {collection_id!r} 不存在"
                raise NotFoundError(msg)
            return ItemPage([], 0, q.limit, q.offset)
        rows, matched = _page(
            session,
            _layer_select(layer_id),
            Feature.id,
            q,
            bbox_cols=feature_bbox,
            geom_col=Feature.geom,
        )
        features = [_layer_feature(row) for row in rows]
    return ItemPage(features, matched, q.limit, q.offset)


def get_item(session, user: User, collection_id: str, fid: str) -> dict:
    """One feature by id; ids the user may not read answer 404 like missing ones."""
    spec = get_spec(collection_id)
    # Anything but a plain id a database can hold is simply not found (never a 500).
    item_id = int(fid) if params.is_id(fid) else None
    msg = f"集合 {collection_id} 中不存在要素 {params.shown(fid)}"
    missing = NotFoundError(msg)
    if item_id is None:
        raise missing
    if spec.source == "cells":
        grid = active_grid(session)
        if grid is None:
            raise missing
        row = session.execute(
            _cell_select(session, user, grid.id).where(Cell.id == item_id)
        ).one_or_none()
        if row is None:
            raise missing
        return _cell_feature(row, open_counts(session, user, grid.id))
    if spec.source == "issues":
        row = session.execute(_issue_select(user).where(Issue.id == item_id)).one_or_none()
        if row is None:
            raise missing
        return _issue_feature(row)
    layer_id = active_layer_id(session, spec)
    row = None
    if layer_id is not None:
        row = session.execute(_layer_select(layer_id).where(Feature.id == item_id)).one_or_none()
    if row is None:
        raise missing
    return _layer_feature(row)
