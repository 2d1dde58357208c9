"""OGC API – Features (Part 1 Core, GeoJSON): collections and access-scoped item queries.

Every query starts from the access-scoped selects of app/services/core/access.py, so a unit
head's token gets only that unit's cells and problems whatever bbox or id it asks for.
Base layers (roads, pois, boundary, ...) are readable by every authenticated role.

The database filters by each row's stored bounding box; rows whose box only overlaps the
query bbox are then checked exactly, so ``numberMatched`` and paging agree with the
standard's "geometry intersects bbox" rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shapely import box as shapely_box
from shapely.geometry import shape
from sqlalchemy import Select, func, select

from app.models import Category, Cell, Feature, Issue, Unit, User
from app.services.core import access, params
from app.services.core.errors import NotFoundError, ValidationError
from app.services.grids.cells import active_grid
from app.services.grids.layers import active_layer
from app.services.grids.map_data import open_counts

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_NAMES = (CRS84, "CRS84", "OGC:CRS84", "http://www.opengis.net/def/crs/OGC/0/CRS84")
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
# Candidate rows whose geometry must be parsed are loaded in chunks (bound parameters).
_CHUNK = 500


@dataclass(frozen=True)
class CollectionSpec:
    """One published collection: the active grid, placed problems, or a base layer."""

    id: str
    title: str
    description: str
    source: str  # "cells", "issues" or "layer"
    layer_kind: str | None = None
    # Optional layers are listed only while an active layer of that kind exists.
    optional: bool = False


COLLECTIONS: dict[str, CollectionSpec] = {
    spec.id: spec
    for spec in (
        CollectionSpec(
            "cells",
            "单元网格",
            "当前启用网格图层的单元网格（15 位编码、责任单位、未销号问题数）",
            "cells",
        ),
        CollectionSpec(
            "issues",
            "问题",
            "已定位的问题点（状态、类别、地址、责任单位、所在网格、整改期限）",
            "issues",
        ),
        CollectionSpec("roads", "道路", "道路图层", "layer", "roads"),
        CollectionSpec(
            "pois", "兴趣点", "兴趣点图层（农贸市场、学校、医院、公厕等）", "layer", "pois"
        ),
        CollectionSpec("boundary", "建成区边界", "县城建成区边界", "layer", "boundary"),
        CollectionSpec("communities", "社区", "社区边界", "layer", "communities", optional=True),
        CollectionSpec(
            "subdistricts",
            "街道（乡镇）",
            "街道（乡镇）边界",
            "layer",
            "subdistricts",
            optional=True,
        ),
    )
}

# Equality filters on properties (OGC "queryables"), per collection: name -> column.
CELL_FILTERS = {
    "code": Cell.code,
    "subdistrict_code": Cell.subdistrict_code,
    "community_code": Cell.community_code,
    "unit": Unit.name,
}
ISSUE_FILTERS = {
    "status": Issue.status,
    "category": Category.code,
    "cell_code": Cell.code,
    "unit": Unit.name,
    "source": Issue.source,
}


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


# ---- parameter parsing ---------------------------------------------------------------


def check_crs(name: str, crs: str | None) -> None:
    """Only CRS84 is served (GDAL names it explicitly with ``crs=``)."""
    if crs and crs.strip() not in CRS84_NAMES:
        msg = f"{name} 参数无效: 仅支持 {CRS84}，收到 {crs!r}"
        raise ValidationError(msg)


def parse_bbox(
    text: str | None, crs: str | None = None
) -> tuple[float, float, float, float] | None:
    """Parse ``minx,miny,maxx,maxy`` (or the 6-number 3D form) in CRS84 longitude/latitude."""
    check_crs("bbox-crs", crs)
    # The standard's 3D form (6 numbers) keeps only the horizontal corners.
    return params.parse_bbox(text, name="bbox", allow_3d=True)


def parse_item_query(collection_id: str, args, *, default_limit: int = DEFAULT_LIMIT) -> ItemQuery:
    """Read bbox, limit (clamped to MAX_LIMIT, as the standard allows), offset and filters."""
    spec = get_spec(collection_id)
    check_crs("crs", args.get("crs"))
    # A larger limit is clamped, as the standard allows (GDAL asks for big pages).
    limit = params.parse_limit(args.get("limit"), default=default_limit, high=MAX_LIMIT, clamp=True)
    offset = params.parse_offset(args.get("offset"))
    allowed = _filter_columns(spec)
    filters = {k: args.get(k) for k in allowed if args.get(k)}
    return ItemQuery(
        bbox=parse_bbox(args.get("bbox"), args.get("bbox-crs")),
        limit=limit,
        offset=offset,
        filters=filters,
        period=parse_datetime(args.get("datetime")),
    )


def _parse_moment(text: str, *, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    if len(text) == 10:  # a date: the whole day
        day = datetime.combine(params.parse_date(text, name="datetime"), datetime.min.time())
        return day.replace(hour=23, minute=59, second=59, microsecond=999999) if end else day
    # A zone, if given, becomes county time (how found_at is stored).
    return params.parse_datetime(text, name="datetime")


def parse_datetime(text: str | None) -> tuple[datetime | None, datetime | None] | None:
    """Parse the standard's ``datetime``: an instant, or ``start/end`` with ``..`` for open."""
    if text is None or text.strip() == "":
        return None
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2 or all(p.strip() in ("", "..") for p in parts):
            raise params.bad("datetime", text, "应为时刻或区间 start/end")
        start, end = _parse_moment(parts[0], end=False), _parse_moment(parts[1], end=True)
        if start and end and start > end:
            raise params.bad("datetime", text, f"开始 {parts[0]} 晚于结束 {parts[1]}")
        return start, end
    return _parse_moment(text, end=False), _parse_moment(text, end=True)


def _filter_columns(spec: CollectionSpec) -> dict:
    return {"cells": CELL_FILTERS, "issues": ISSUE_FILTERS}.get(spec.source, {})


# ---- collections ---------------------------------------------------------------------


def get_spec(collection_id: str) -> CollectionSpec:
    spec = COLLECTIONS.get(collection_id)
    if spec is None:
        msg = f"集合 {collection_id!r} 不存在"
        raise NotFoundError(msg)
    return spec


def _layer_id(session, spec: CollectionSpec) -> int | None:
    layer = active_layer(session, spec.layer_kind)
    return layer.id if layer else None


def _extent(session, user: User, spec: CollectionSpec) -> dict:
    """The spatial (and, for problems, temporal) extent of what this user may read."""
    temporal = None
    if spec.source == "cells":
        grid = active_grid(session)
        if grid is None:
            return {}
        stmt = access.scope_cells(
            select(
                func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx), func.max(Cell.maxy)
            ).where(Cell.grid_id == grid.id),
            user,
        )
    elif spec.source == "issues":
        stmt = access.scope_issues(
            select(
                func.min(Issue.lon),
                func.min(Issue.lat),
                func.max(Issue.lon),
                func.max(Issue.lat),
                func.min(Issue.found_at),
                func.max(Issue.found_at),
            ).where(Issue.lon.is_not(None), Issue.lat.is_not(None)),
            user,
        )
    else:
        layer_id = _layer_id(session, spec)
        if layer_id is None:
            return {}
        stmt = select(
            func.min(Feature.minx),
            func.min(Feature.miny),
            func.max(Feature.maxx),
            func.max(Feature.maxy),
        ).where(Feature.layer_id == layer_id)
    row = session.execute(stmt).one()
    if row[0] is None:
        return {}
    extent = {"spatial": {"bbox": [[float(v) for v in row[:4]]], "crs": CRS84}}
    if spec.source == "issues":
        temporal = [_rfc3339(row[4]), _rfc3339(row[5])]
        extent["temporal"] = {
            "interval": [temporal],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    return extent


def _rfc3339(value: datetime | None) -> str | None:
    # Times are stored naive in Beijing time (models.now_local).
    return value.replace(microsecond=0).isoformat() + "+08:00" if value else None


def describe_collection(session, user: User, collection_id: str) -> dict:
    """Metadata of one collection (without links; the web adapter adds those)."""
    spec = get_spec(collection_id)
    if spec.optional and _layer_id(session, spec) is None:
        msg = f"集合 {collection_id!r} 不存在"
        raise NotFoundError(msg)
    data = {
        "id": spec.id,
        "title": spec.title,
        "description": spec.description,
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
    }
    extent = _extent(session, user, spec)
    if extent:
        data["extent"] = extent
    return data


def list_collections(session, user: User) -> list[dict]:
    """Every collection this deployment publishes, with the extent the user may read."""
    rows = []
    for spec in COLLECTIONS.values():
        if spec.optional and _layer_id(session, spec) is None:
            continue
        rows.append(describe_collection(session, user, spec.id))
    return rows


# ---- items ---------------------------------------------------------------------------


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
    from app.models import STATUS_LABELS

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
            "found_at": _rfc3339(found_at),
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
    columns = _filter_columns(spec)
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
        layer_id = _layer_id(session, spec)
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
    layer_id = _layer_id(session, spec)
    row = None
    if layer_id is not None:
        row = session.execute(_layer_select(layer_id).where(Feature.id == item_id)).one_or_none()
    if row is None:
        raise missing
    return _layer_feature(row)


# ---- OpenAPI -------------------------------------------------------------------------


def _param(
    name: str,
    schema: dict,
    description: str,
    *,
    where: str = "query",
    required: bool = False,
    **extra,
) -> dict:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
        **extra,
    }


def build_openapi(root: str, collection_ids: list[str]) -> dict:
    """The OpenAPI 3.0 document of the /ogc service (``root`` is its absolute URL)."""
    fmt = _param("f", {"type": "string", "enum": ["json"], "default": "json"}, "响应格式")
    limit = _param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "每页要素数",
        style="form",
        explode=False,
    )
    offset = _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "跳过的要素数")
    bbox = _param(
        "bbox",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "minx,miny,maxx,maxy（WGS-84 经纬度, CRS84）",
        style="form",
        explode=False,
    )
    json_doc = {
        "description": "JSON",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    geojson = {
        "description": "GeoJSON",
        "content": {"application/geo+json": {"schema": {"type": "object"}}},
    }
    errors = {
        "400": {"description": "参数无效"},
        "401": {"description": "未认证"},
        "404": {"description": "不存在"},
    }

    def get(summary: str, params: list, response: dict, op_id: str) -> dict:
        return {
            "get": {
                "summary": summary,
                "operationId": op_id,
                "parameters": params,
                "responses": {"200": response, **errors},
            }
        }

    paths = {
        "/": get("首页", [fmt], json_doc, "getLandingPage"),
        "/conformance": get("符合的标准类", [fmt], json_doc, "getConformance"),
        "/api": get("接口文档", [fmt], json_doc, "getApi"),
        "/collections": get("集合列表", [fmt], json_doc, "getCollections"),
    }
    for cid in collection_ids:
        spec = COLLECTIONS[cid]
        filters = [
            _param(name, {"type": "string"}, f"按 {name} 精确筛选")
            for name in _filter_columns(spec)
        ]
        paths[f"/collections/{cid}"] = get(
            f"{spec.title}：集合信息", [fmt], json_doc, f"describe_{cid}"
        )
        if spec.source == "issues":
            filters.append(
                _param(
                    "datetime", {"type": "string"}, "发现时间：时刻或区间 start/end（.. 表示不限）"
                )
            )
        paths[f"/collections/{cid}/items"] = get(
            f"{spec.title}：要素", [fmt, bbox, limit, offset, *filters], geojson, f"get_{cid}"
        )
        paths[f"/collections/{cid}/items/{{featureId}}"] = get(
            f"{spec.title}：单个要素",
            [fmt, _param("featureId", {"type": "string"}, "要素 id", where="path", required=True)],
            geojson,
            f"get_{cid}_item",
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "创卫网格 SaniGrid OGC API – Features",
            "version": "1.0.0",
            "description": "需要 Authorization: Bearer <token> 或已登录的浏览器会话",
        },
        "servers": [{"url": root}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
