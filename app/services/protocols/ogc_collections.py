"""OGC API – Features collections: what is published, its queryables and its extent.

The published collections are the active grid's cells, the placed problems and the base
layers (roads, pois, boundary, ...); base layers are readable by every authenticated role.
Extents come from the access-scoped selects of app/services/core/access.py, so a unit
head's token sees the extent of its own unit's cells and problems only. Item queries are
in ogc_items.py, the service's OpenAPI document in ogc_openapi.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.models import Category, Cell, Feature, Issue, Unit, User
from app.services.core import access
from app.services.core.errors import NotFoundError, ValidationError
from app.services.grids.cells import active_grid
from app.services.grids.layers import active_layer

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_NAMES = (CRS84, "CRS84", "OGC:CRS84", "http://www.opengis.net/def/crs/OGC/0/CRS84")
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]


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


def filter_columns(spec: CollectionSpec) -> dict:
    """The collection's queryables: property name -> column (none for base layers)."""
    return {"cells": CELL_FILTERS, "issues": ISSUE_FILTERS}.get(spec.source, {})


def check_crs(name: str, crs: str | None) -> None:
    """Only CRS84 is served (GDAL names it explicitly with ``crs=``)."""
    if crs and crs.strip() not in CRS84_NAMES:
        msg = f"{name} 参数无效: 仅支持 {CRS84}，收到 {crs!r}"
        raise ValidationError(msg)


def get_spec(collection_id: str) -> CollectionSpec:
    """The published collection of that id; any other id is not found."""
    spec = COLLECTIONS.get(collection_id)
    if spec is None:
        msg = f"集合 {collection_id!r} 不存在"
        raise NotFoundError(msg)
    return spec


def active_layer_id(session, spec: CollectionSpec) -> int | None:
    """The id of the active layer a base-layer collection serves (None when there is none)."""
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
        layer_id = active_layer_id(session, spec)
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
        temporal = [rfc3339(row[4]), rfc3339(row[5])]
        extent["temporal"] = {
            "interval": [temporal],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    return extent


def rfc3339(value: datetime | None) -> str | None:
    """A stored (naive county) time as RFC 3339 with the county's +08:00 offset."""
    # Times are stored naive in Beijing time (models.now_local).
    return value.replace(microsecond=0).isoformat() + "+08:00" if value else None


def describe_collection(session, user: User, collection_id: str) -> dict:
    """Metadata of one collection (without links; the web adapter adds those)."""
    spec = get_spec(collection_id)
    if spec.optional and active_layer_id(session, spec) is None:
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
        if spec.optional and active_layer_id(session, spec) is None:
            continue
        rows.append(describe_collection(session, user, spec.id))
    return rows
