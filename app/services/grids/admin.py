"""Grid administration use-cases: load layers, build, check, store, hand out and export grids.

The geometry lives in ``gis/``; this module wires it to the database and the access rule.
Every use-case works inside the caller's transaction and raises before writing anything
when its input is bad, so a refused import or assignment leaves no half-written rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import func, select

from app.models import (
    OPEN_STATUSES,
    AuditLog,
    Cell,
    Feature,
    GridLayer,
    Issue,
    Layer,
    Setting,
    Unit,
    User,
    Zone,
)
from app.services.core import access
from app.services.core.errors import ForbiddenError, NotFoundError, ValidationError
from app.services.grids.cells import activate_grid, active_grid, assign_cells, store_grid
from app.services.grids.layers import active_layer, layer_gdf, load_layer_gdf, store_layer

METHODS = ("block", "square", "h3")
METHOD_LABELS = {
    "block": "街区法 (道路切分)",
    "square": "方格法",
    "h3": "H3 六边形",
    "import": "导入",
}
IMPORT_KINDS = (
    "boundary",
    "roads",
    "pois",
    "buildings",
    "communities",
    "subdistricts",
    "water",
    "addresses",
    "grid",
)
KIND_LABELS = {
    "boundary": "建成区边界",
    "roads": "道路",
    "pois": "兴趣点",
    "buildings": "建筑",
    "communities": "社区",
    "subdistricts": "街道/乡镇",
    "water": "河流水系",
    "addresses": "门牌地址",
    "grid": "网格",
}
EXPORT_FORMATS = ("geojson", "gpkg", "shp", "kml")
FORMAT_LABELS = {"geojson": "GeoJSON", "gpkg": "GeoPackage", "shp": "Shapefile (zip)", "kml": "KML"}
FINDING_LABELS = {
    "invalid_geometry": "几何无效",
    "repaired_geometry": "几何已修复",
    "overlap": "重叠",
    "gap": "缝隙",
    "duplicate_code": "编码重复",
    "malformed_code": "编码错误",
    "outside_boundary": "超出边界",
    "crosses_community": "跨社区",
    "empty_geometry": "几何为空",
}
# A cell that straddles two communities can still locate and route problems; it is a
# quality warning here, not a reason to refuse a grid (square and H3 grids ignore
# community lines by design). Everything else error-level breaks "one point, one cell".
SOFT_KINDS = {"crosses_community", "repaired_geometry"}
# Cap what a request builds so one form submission cannot tie up a worker.
MAX_CELLS = 20_000
DEFAULT_TARGET_AREA = 10_000.0
DEFAULT_SIZE = 100.0
DEFAULT_RESOLUTION = 10


def county_code(session) -> str:
    """The 6-digit county code: the stored county setting, else the app config."""
    setting = session.get(Setting, "county")
    if setting and isinstance(setting.value, dict) and setting.value.get("county_code"):
        return str(setting.value["county_code"])
    try:
        from flask import current_app

        return str(current_app.config.get("COUNTY_CODE") or "532599")
    except RuntimeError:  # no app context (plain scripts)
        return "532599"


def rest_subdistrict_name(session) -> str:
    """Name of the sub-district for cells no sub-district covers: the seat's, else "城区".

    A county seat is one town or 城区 whose offices are not mapped; naming it after the
    seat (云岭镇) or the county (贵溪市城区) tells the office who holds those cells.
    """
    setting = session.get(Setting, "county")
    value = setting.value if setting and isinstance(setting.value, dict) else {}
    if value.get("seat_name"):
        return str(value["seat_name"]).strip()[:40]
    if value.get("county_name"):
        return f"{str(value['county_name']).strip()[:36]}城区"
    return "城区"


def audit(session, user: User | None, action: str, detail: str, *, ip: str | None = None) -> None:
    session.add(AuditLog(user_id=user.id if user else None, action=action, detail=detail, ip=ip))


# ----------------------------------------------------------------------------- layers


def import_layer(
    session,
    path: str | Path,
    kind: str,
    source_crs: str | None = None,
    *,
    user: User | None = None,
    name: str | None = None,
) -> Layer | GridLayer:
    """Read a GIS file as one layer kind and store it (a grid goes through import_grid)."""
    from gis.layer_io import read_layer

    if kind not in IMPORT_KINDS:
        msg = f"未知的图层类型 {kind!r} (可选: {', '.join(IMPORT_KINDS)})"
        raise ValidationError(msg)
    if kind == "grid":
        return import_grid(session, path, source_crs=source_crs, user=user, name=name)
    path = Path(path)
    gdf = read_layer(path, kind=kind, source_crs=source_crs)
    layer = store_layer(
        session, gdf, kind=kind, name=name or f"{path.name} {KIND_LABELS[kind]}", source=path.name
    )
    audit(session, user, "import_layer", f"{kind} {path.name}: {len(gdf)} 个要素")
    session.flush()
    return layer


def list_layers(session) -> list[dict]:
    """Every stored layer with its feature count, newest first."""
    counts = dict(
        session.execute(select(Feature.layer_id, func.count()).group_by(Feature.layer_id)).all()
    )
    layers = session.execute(select(Layer).order_by(Layer.kind, Layer.id.desc())).scalars()
    return [
        {
            "layer": layer,
            "label": KIND_LABELS.get(layer.kind, layer.kind),
            "features": int(counts.get(layer.id, 0)),
        }
        for layer in layers
    ]


def _boundary_geom(session, name: str | None = None) -> tuple[object, int]:
    """The boundary polygon to cover: a feature by name, else the active boundary layer."""
    if name:
        feature = (
            session.execute(
                select(Feature)
                .join(Layer)
                .where(
                    Feature.name == name,
                    Layer.kind.in_(("boundary", "subdistricts", "communities")),
                )
                .order_by(Layer.active.desc(), Feature.id.desc())
            )
            .scalars()
            .first()
        )
        if feature is None:
            msg = f"找不到名为 {name!r} 的边界 (边界、街道或社区图层中均没有)"
            raise NotFoundError(msg)
        return feature.shape, feature.layer_id
    layer = active_layer(session, "boundary")
    if layer is None:
        msg = "尚未导入建成区边界图层 (boundary)，请先 import-osm 或 import-layer --kind boundary"
        raise NotFoundError(msg)
    gdf = layer_gdf(session, layer.id)
    return shapely.union_all(gdf.geometry.to_numpy()), layer.id


# ----------------------------------------------------------------------------- building


@dataclass
class GridCandidate:
    """A built and coded grid that is not stored yet, with its check report."""

    cells: gpd.GeoDataFrame
    method: str
    params: dict
    report: dict
    boundary: object = None
    warnings: list[str] = field(default_factory=list)
    zones: object = None  # the zone table of gis.coding.code_grid


def _number(value, label: str, *, low: float, high: float, integer: bool = False):
    if value is None or value == "":
        return None
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        msg = f"{label} 必须是{'整数' if integer else '数字'}: {value!r}"
        raise ValidationError(msg) from None
    if not (low <= number <= high) or number != number:
        msg = f"{label} 超出范围 ({low:g}–{high:g}): {value!r}"
        raise ValidationError(msg)
    return number


def build_candidate(
    session,
    method: str,
    *,
    boundary_name: str | None = None,
    target_area: float | str | None = None,
    size: float | str | None = None,
    resolution: int | str | None = None,
) -> GridCandidate:
    """Build and code a grid from the stored layers and check it, without storing it."""
    from gis.coding import code_grid
    from gis.grid import build_block_grid, build_h3_grid, build_square_grid

    if method not in METHODS:
        msg = f"未知的网格生成方法 {method!r} (可选: block, square, h3)"
        raise ValidationError(msg)
    target = _number(target_area, "目标面积 (平方米)", low=500, high=1_000_000)
    size_m = _number(size, "方格边长 (米)", low=20, high=2_000)
    res = _number(resolution, "H3 分辨率", low=7, high=13, integer=True)
    boundary, boundary_layer = _boundary_geom(session, boundary_name)
    communities = load_layer_gdf(session, "communities")
    subdistricts = load_layer_gdf(session, "subdistricts")
    params: dict = {"boundary_layer_id": boundary_layer, "boundary_name": boundary_name}
    roads = load_layer_gdf(session, "roads")
    water = load_layer_gdf(session, "water")
    if water is not None and "kind" in water.columns:
        # A river's centre line would split the water polygon's cells in two.
        water = water[water["kind"] != "centerline"]
    if method == "block":
        if roads is None or roads.empty:
            msg = "街区法需要道路图层 (roads)，请先导入道路"
            raise NotFoundError(msg)
        params["target_area_m2"] = target or DEFAULT_TARGET_AREA
        cells = build_block_grid(
            boundary,
            roads=roads,
            barriers=water,
            communities=communities,
            target_area_m2=params["target_area_m2"],
        )
    elif method == "square":
        params["size_m"] = size_m or DEFAULT_SIZE
        cells = build_square_grid(boundary, size_m=params["size_m"])
    else:
        params["resolution"] = res if res is not None else DEFAULT_RESOLUTION
        cells = build_h3_grid(boundary, resolution=params["resolution"])
    if len(cells) > MAX_CELLS:
        msg = f"生成了 {len(cells)} 个网格，超过上限 {MAX_CELLS}，请加大网格尺寸"
        raise ValidationError(msg)
    code = county_code(session)
    cells, zones = code_grid(
        cells,
        county_code=code,
        subdistricts=subdistricts,
        communities=communities,
        roads=roads,
        water=water,
        rest_name=rest_subdistrict_name(session),
    )
    report = _check(cells, boundary=boundary, communities=communities, county=code)
    report["zones"] = _zone_summary(zones.to_dict("records"))
    return GridCandidate(
        cells=cells, method=method, params=params, report=report, boundary=boundary, zones=zones
    )


def _zone_summary(rows: list[dict]) -> dict:
    """Zones of a grid for the report: rows, and counts of real communities and 片区."""
    rows = [
        {
            "subdistrict_code": str(r["subdistrict_code"]),
            "community_code": str(r["community_code"]),
            "name": str(r["name"]),
            "subdistrict_name": r.get("subdistrict_name") or "",
            "provisional": bool(r["provisional"]),
            "cell_count": int(r["cell_count"]),
        }
        for r in rows
    ]
    rows.sort(key=lambda r: (r["subdistrict_code"], r["community_code"]))
    return {
        "rows": rows,
        "communities": sum(not r["provisional"] for r in rows),
        "provisional": sum(r["provisional"] for r in rows),
        "largest": max((r["cell_count"] for r in rows), default=0),
    }


def _check(cells: gpd.GeoDataFrame, *, boundary, communities, county: str) -> dict:
    """Run gis.check_grid and mark which findings block a grid (see SOFT_KINDS)."""
    from gis.check import check_grid

    report = check_grid(
        cells, boundary=boundary, communities=communities, county_code=county
    ).to_dict()
    for finding in report["findings"]:
        finding["blocking"] = finding["level"] == "error" and finding["kind"] not in SOFT_KINDS
        finding["label"] = FINDING_LABELS.get(finding["kind"], finding["kind"])
    report["blocking"] = sum(f["blocking"] for f in report["findings"])
    report["ok"] = report["blocking"] == 0
    report["summary"] = _summary(report)
    return report


def _summary(report: dict) -> str:
    if not report["findings"]:
        return f"检查通过: {report['cells']} 个网格，无缝隙、无重叠、编码有效"
    parts = [f"{FINDING_LABELS.get(k, k)} {n} 处" for k, n in sorted(report["counts"].items())]
    head = "检查未通过" if report["blocking"] else "检查通过 (有提醒)"
    return f"{head}: {report['cells']} 个网格；{'，'.join(parts)}"


def make_grid(
    session,
    method: str,
    boundary_name: str | None = None,
    target_area: float | str | None = None,
    size: float | str | None = None,
    resolution: int | str | None = None,
    *,
    user: User | None = None,
    name: str | None = None,
) -> GridLayer:
    """Build, code and check a grid and store it as a new, inactive version."""
    if user is not None:
        access.require(user, "manage_grid")
    candidate = build_candidate(
        session,
        method,
        boundary_name=boundary_name,
        target_area=target_area,
        size=size,
        resolution=resolution,
    )
    return save_candidate(session, candidate, user=user, name=name)


def save_candidate(
    session, candidate: GridCandidate, *, user: User | None = None, name: str | None = None
) -> GridLayer:
    """Store a checked candidate as a new inactive grid version."""
    if user is not None:
        access.require(user, "manage_grid")
    if not candidate.report["ok"]:
        msg = f"网格未通过检查，不能保存: {candidate.report['summary']}"
        raise ValidationError(msg)
    label = METHOD_LABELS.get(candidate.method, candidate.method)
    params = {**candidate.params, "check": _check_summary(candidate.report)}
    if candidate.report.get("zones"):
        z = candidate.report["zones"]
        params["zones"] = {k: z[k] for k in ("communities", "provisional", "largest")}
    grid = store_grid(
        session,
        candidate.cells,
        name=name or f"责任网格 ({label})",
        method=candidate.method,
        params=params,
        zones=candidate.zones,
    )
    held = settle_units(session, grid)
    grid.params = {**grid.params, "settled": {"carried": held["carried"], "held": held["held"]}}
    audit(
        session,
        user,
        "make_grid",
        f"网格图层 {grid.id}: {candidate.method}, {grid.cell_count} 个网格, "
        f"{held['carried']} 个沿用原单位, {held['held']} 个由属地街道兜底",
    )
    return grid


def settle_units(session, grid: GridLayer) -> dict:
    """Give a new version's cells their units: carried over by overlap, else the office.

    Cells lying mostly inside a cell of the active grid keep that cell's unit (a rebuild
    after importing communities keeps who answers for the place); every other cell falls
    to its sub-district office (属地兜底) until it is assigned.
    """
    from app.services.grids.cells import carry_units, hold_unassigned

    carried = carry_units(session, grid, active_grid(session))
    held = hold_unassigned(session, grid)
    return {"carried": carried, "held": sum(held.values()), "offices": held}


def _check_summary(report: dict) -> dict:
    return {"ok": report["ok"], "counts": report["counts"], "summary": report["summary"]}


# ----------------------------------------------------------------------------- importing


class GridCheckError(ValidationError):
    """An uploaded grid failed the check; ``report`` says where and why."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


def check_uploaded_grid(
    session, path: str | Path, *, source_crs: str | None = None
) -> tuple[gpd.GeoDataFrame, dict]:
    """Read a grid file and check it against the active boundary, communities and county."""
    from gis.layer_io import read_layer

    cells = read_layer(Path(path), kind="grid", source_crs=source_crs)
    boundary_layer = active_layer(session, "boundary")
    boundary = None
    if boundary_layer is not None:
        boundary = shapely.union_all(layer_gdf(session, boundary_layer.id).geometry.to_numpy())
    report = _check(
        cells,
        boundary=boundary,
        communities=load_layer_gdf(session, "communities"),
        county=county_code(session),
    )
    report["boundary_layer_id"] = boundary_layer.id if boundary_layer else None
    return cells, report


def import_grid(
    session,
    path: str | Path,
    *,
    source_crs: str | None = None,
    user: User | None = None,
    name: str | None = None,
) -> GridLayer:
    """Store an uploaded grid as a new inactive version, or refuse it with its report."""
    path = Path(path)
    cells, report = check_uploaded_grid(session, path, source_crs=source_crs)
    if not report["ok"]:
        lines = [f["message"] for f in report["findings"] if f["blocking"]]
        more = f" 等 {len(lines)} 处" if len(lines) > 3 else ""
        msg = f"网格图层 {path.name} 未通过检查，未导入: {'；'.join(lines[:3])}{more}"
        raise GridCheckError(msg, report)
    from gis.crs import utm_crs_for_geom

    codes = [str(c) for c in cells["code"]]
    utm = utm_crs_for_geom(shapely.union_all(cells.geometry.envelope.to_numpy()))
    stored = gpd.GeoDataFrame(
        {
            "code": codes,
            "subdistrict_code": [c[6:9] for c in codes],
            "community_code": [c[9:12] for c in codes],
            "area_m2": cells.geometry.to_crs(utm).area.round(1).to_numpy(),
        },
        geometry=cells.geometry.to_numpy(),
        crs=4326,
    )
    params = {
        "source": path.name,
        "boundary_layer_id": report.get("boundary_layer_id"),
        "check": _check_summary(report),
    }
    grid = store_grid(
        session, stored, name=name or f"导入网格 {path.name}", method="import", params=params
    )
    settle_units(session, grid)
    audit(session, user, "import_grid", f"网格图层 {grid.id}: {path.name}, {len(stored)} 个网格")
    return grid


# ----------------------------------------------------------------------------- versions


def list_grids(session) -> list[GridLayer]:
    return list(session.execute(select(GridLayer).order_by(GridLayer.id.desc())).scalars())


def get_grid(session, grid_id: int) -> GridLayer:
    grid = session.get(GridLayer, grid_id)
    if grid is None:
        msg = f"网格图层 {grid_id} 不存在"
        raise NotFoundError(msg)
    return grid


def grid_cells_gdf(session, user: User | None, grid_id: int) -> gpd.GeoDataFrame:
    """A grid's cells the user may read (all for the CLI, user None), EPSG:4326."""
    stmt = _scope(
        select(
            Cell.code,
            Unit.name,
            Cell.subdistrict_code,
            Cell.community_code,
            Cell.area_m2,
            Cell.geom,
        )
        .outerjoin(Unit, Unit.id == Cell.unit_id)
        .where(Cell.grid_id == grid_id)
        .order_by(Cell.code),
        user,
    )
    rows = session.execute(stmt).all()
    return gpd.GeoDataFrame(
        {
            "code": [r[0] for r in rows],
            "unit": [r[1] or "" for r in rows],
            "subdistrict_code": [r[2] for r in rows],
            "community_code": [r[3] for r in rows],
            "area_m2": [round(float(r[4] or 0), 1) for r in rows],
        },
        geometry=[shape(json.loads(r[5])) for r in rows],
        crs=4326,
    )


def _scope(stmt, user: User | None):
    return stmt if user is None else access.scope_cells(stmt, user)


def grid_report(session, grid_id: int) -> dict:
    """Check a stored grid against the boundary it was built for and the communities."""
    grid = get_grid(session, grid_id)
    rows = session.execute(
        select(Cell.code, Cell.geom).where(Cell.grid_id == grid.id).order_by(Cell.code)
    ).all()
    cells = gpd.GeoDataFrame(
        {"code": [r[0] for r in rows]}, geometry=[shape(json.loads(r[1])) for r in rows], crs=4326
    )
    boundary = None
    layer_id = (grid.params or {}).get("boundary_layer_id")
    if (grid.params or {}).get("boundary_name"):
        boundary, _ = _boundary_geom(session, grid.params["boundary_name"])
    else:
        # Grids stored before versions recorded their boundary (e.g. the seeded demo) are
        # checked against the active one: without any boundary, holes the built-up outline
        # leaves on purpose (fields, a lake) would read as gaps.
        layer = session.get(Layer, layer_id) if layer_id else active_layer(session, "boundary")
        if layer is not None:
            boundary = shapely.union_all(layer_gdf(session, layer.id).geometry.to_numpy())
    if not len(cells):
        return {
            "grid": grid,
            "ok": False,
            "cells": 0,
            "counts": {},
            "findings": [],
            "blocking": 0,
            "summary": "该网格图层没有网格",
        }
    report = _check(
        cells,
        boundary=boundary,
        communities=load_layer_gdf(session, "communities"),
        county=county_code(session),
    )
    return {**report, **grid_zones_report(session, grid), "grid": grid}


def grid_zones_report(session, grid: GridLayer) -> dict:
    """The grid's communities and 片区(临时), and the cells each office holds (属地兜底)."""
    from app.services.grids.cells import held_summary

    rows = [
        {
            "subdistrict_code": z.subdistrict_code,
            "community_code": z.community_code,
            "name": z.name,
            "subdistrict_name": z.subdistrict_name,
            "provisional": z.provisional,
            "cell_count": z.cell_count,
        }
        for z in session.execute(select(Zone).where(Zone.grid_id == grid.id)).scalars()
    ]
    held = held_summary(session, grid)
    unassigned = session.execute(
        select(func.count()).select_from(Cell).where(
            Cell.grid_id == grid.id, Cell.unit_id.is_(None))
    ).scalar_one()
    return {
        "zones": _zone_summary(rows),
        "held": held,
        "held_total": sum(h["count"] for h in held),
        "no_unit": int(unassigned),
    }


def activate(session, user: User | None, grid_id: int, *, ip: str | None = None) -> dict:
    """Activate a grid version after checking it; problems move to the new cells."""
    if user is not None:
        access.require(user, "manage_grid")
    report = grid_report(session, grid_id)
    if not report["ok"]:
        msg = f"网格图层 {grid_id} 未通过检查，不能启用: {report['summary']}"
        raise ValidationError(msg)
    result = activate_grid(session, grid_id)
    audit(
        session,
        user,
        "activate_grid",
        f"网格图层 {grid_id}: {result['reassigned']} 个问题重新归属, {result['outside']} 个在网格外",
        ip=ip,
    )
    session.flush()
    return result


# ----------------------------------------------------------------------------- exports


def _require_export(user: User) -> None:
    access.require(user, "export")


def export_grid(
    session, user: User, grid_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """A grid version as a file: (content, MIME type, filename); unit heads get their cells."""
    from gis.layer_io import layer_to_bytes

    _require_export(user)
    _check_format(fmt)
    grid = session.get(GridLayer, grid_id)
    gdf = grid_cells_gdf(session, user, grid_id) if grid else None
    if grid is None or (access.is_unit_scoped(user) and not len(gdf)):
        msg = f"网格图层 {grid_id} 不存在"
        raise NotFoundError(msg)
    if not len(gdf):
        msg = f"网格图层 {grid_id} 没有网格，无法导出"
        raise ValidationError(msg)
    data, mime, suffix = layer_to_bytes(gdf, fmt=fmt)
    audit(session, user, "export_grid", f"网格图层 {grid_id} {fmt}: {len(gdf)} 个网格", ip=ip)
    return data, mime, f"grid-{grid_id}{suffix}"


def export_cli_grid(session, grid_id: int, fmt: str) -> bytes:
    """A whole grid version as a file for the command line (a trusted operator)."""
    from gis.layer_io import layer_to_bytes

    _check_format(fmt)
    get_grid(session, grid_id)
    gdf = grid_cells_gdf(session, None, grid_id)
    if not len(gdf):
        msg = f"网格图层 {grid_id} 没有网格，无法导出"
        raise ValidationError(msg)
    data, _, _ = layer_to_bytes(gdf, fmt=fmt)
    audit(session, None, "export_grid", f"网格图层 {grid_id} {fmt} (命令行): {len(gdf)} 个网格")
    return data


def export_layer(
    session, user: User, layer_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """A base layer as a file; unit heads export their own cells only, not county layers."""
    from gis.layer_io import layer_to_bytes

    _require_export(user)
    _check_format(fmt)
    layer = session.get(Layer, layer_id)
    if layer is None:
        msg = f"图层 {layer_id} 不存在"
        raise NotFoundError(msg)
    if access.is_unit_scoped(user):
        msg = "责任单位只能导出本单位的网格"
        raise ForbiddenError(msg)
    gdf = layer_gdf(session, layer.id)
    if not len(gdf):
        msg = f"图层 {layer_id} 没有要素，无法导出"
        raise ValidationError(msg)
    data, mime, suffix = layer_to_bytes(gdf, fmt=fmt)
    audit(
        session,
        user,
        "export_layer",
        f"图层 {layer_id} ({layer.kind}) {fmt}: {len(gdf)} 个要素",
        ip=ip,
    )
    return data, mime, f"layer-{layer_id}-{layer.kind}{suffix}"


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        msg = f"不支持的导出格式 {fmt!r} (可选: {', '.join(EXPORT_FORMATS)})"
        raise ValidationError(msg)


def format_for_path(path: str | Path) -> str:
    """The export format a file name asks for (.geojson .gpkg .zip .shp .kml)."""
    suffix = Path(path).suffix.lower()
    formats = {
        ".geojson": "geojson",
        ".json": "geojson",
        ".gpkg": "gpkg",
        ".zip": "shp",
        ".shp": "shp",
        ".kml": "kml",
    }
    if suffix not in formats:
        msg = f"无法从文件名 {Path(path).name} 判断导出格式 (应为 .geojson .gpkg .zip .kml)"
        raise ValidationError(msg)
    return formats[suffix]


# ----------------------------------------------------------------------------- assignment

_CODE_HEADERS = ("code", "网格编码", "编码", "cell", "cell_code")
_UNIT_HEADERS = ("unit", "责任单位", "单位", "unit_name")


def _read_table(data: bytes, filename: str) -> list[list[str]]:
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            msg = f"{filename} 不是 UTF-8 或 GBK 编码的 CSV 文件"
            raise ValidationError(msg)
        return [[(v or "").strip() for v in row] for row in csv.reader(io.StringIO(text))]
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            msg = f"无法读取 Excel 文件 {filename}: {exc}"
            raise ValidationError(msg) from exc
        sheet = book.worksheets[0]
        return [[_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    msg = f"不支持的文件格式 {filename} (应为 .csv 或 .xlsx)"
    raise ValidationError(msg)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a code column typed as numbers in Excel
    return str(value).strip()


def _column(header: list[str], names: tuple[str, ...], label: str, filename: str) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    msg = f"{filename} 第 1 行缺少「{label}」列 (可用列名: {', '.join(names)})"
    raise ValidationError(msg)


def assign_from_table(
    session,
    file: bytes | str | Path,
    *,
    filename: str | None = None,
    grid_id: int | None = None,
    user: User | None = None,
) -> int:
    """Assign cells to units from a CSV/XLSX of code,unit; all rows or none."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        if not path.is_file():
            msg = f"文件不存在: {file}"
            raise ValidationError(msg)
        data, filename = path.read_bytes(), filename or path.name
    else:
        data, filename = file, filename or "upload.csv"
    rows = _read_table(data, filename)
    while rows and not any(rows[-1]):
        rows.pop()
    if len(rows) < 2:
        msg = f"{filename} 没有数据行 (第 1 行应为表头 code,unit)"
        raise ValidationError(msg)
    code_col = _column(rows[0], _CODE_HEADERS, "网格编码", filename)
    unit_col = _column(rows[0], _UNIT_HEADERS, "责任单位", filename)
    grid = session.get(GridLayer, grid_id) if grid_id else active_grid(session)
    if grid is None:
        msg = f"网格图层 {grid_id} 不存在" if grid_id else "没有启用的网格图层"
        raise NotFoundError(msg)
    codes = set(session.execute(select(Cell.code).where(Cell.grid_id == grid.id)).scalars())
    units = set(session.execute(select(Unit.name)).scalars())
    errors: list[str] = []
    assignments: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        code = row[code_col] if code_col < len(row) else ""
        unit = row[unit_col] if unit_col < len(row) else ""
        if not code:
            errors.append(f"第 {number} 行: 网格编码为空")
        elif code not in codes:
            errors.append(f"第 {number} 行: 网格编码 {code} 不在网格图层 {grid.id} 中")
        if not unit:
            errors.append(f"第 {number} 行: 责任单位为空")
        elif unit not in units:
            errors.append(f"第 {number} 行: 责任单位「{unit}」不存在")
        if code in assignments and assignments[code] != unit:
            errors.append(
                f"第 {number} 行: 网格编码 {code} 在第 {first_row[code]} 行已分配给"
                f"「{assignments[code]}」"
            )
        if code and unit:
            first_row.setdefault(code, number)
            assignments.setdefault(code, unit)
    if errors:
        more = f" (共 {len(errors)} 处错误)" if len(errors) > 10 else ""
        raise ValidationError("；".join(errors[:10]) + more + "，未做任何分配")
    count = assign_cells(session, assignments, grid_id=grid.id)
    audit(session, user, "assign_cells", f"网格图层 {grid.id}: {filename} 分配 {count} 个网格")
    return count


def assign_selected(
    session, user: User, grid_id: int, codes: list[str] | str, unit_id: int | str | None
) -> int:
    """Assign the cells picked on the map to one unit."""
    access.require(user, "manage_grid")
    get_grid(session, grid_id)
    if isinstance(codes, str):
        codes = [c for c in codes.replace("，", ",").split(",")]
    codes = [c.strip() for c in codes if c and c.strip()]
    if not codes:
        msg = "请先在地图上点选要分配的网格"
        raise ValidationError(msg)
    try:
        unit = session.get(Unit, int(unit_id)) if unit_id not in (None, "") else None
    except (TypeError, ValueError):
        unit = None
    if unit is None:
        msg = f"请选择责任单位 (收到 {unit_id!r})"
        raise ValidationError(msg)
    count = assign_cells(session, dict.fromkeys(codes, unit.name), grid_id=grid_id)
    audit(
        session, user, "assign_cells", f"网格图层 {grid_id}: 地图点选 {count} 个网格 → {unit.name}"
    )
    return count


def list_units(session, user: User) -> list[Unit]:
    return list(session.execute(access.scope_units(select(Unit).order_by(Unit.id), user)).scalars())


def units_overview(session, user: User) -> list[dict]:
    """Every visible unit with its cells, area and open problems in the active grid."""
    from app.models import OPEN_STATUSES, Cell, Issue
    from app.services.grids.cells import active_grid

    grid = active_grid(session)
    cells: dict[int, tuple[int, float]] = {}
    if grid is not None:
        cells = {
            unit_id: (n, area)
            for unit_id, n, area in session.execute(
                select(Cell.unit_id, func.count(), func.sum(Cell.area_m2))
                .where(Cell.grid_id == grid.id).group_by(Cell.unit_id))
        }
    open_counts = dict(session.execute(
        access.scope_issues(select(Issue.unit_id, func.count())
                            .where(Issue.status.in_(OPEN_STATUSES)), user)
        .group_by(Issue.unit_id)).all())
    rows = []
    for unit in list_units(session, user):
        n, area = cells.get(unit.id, (0, 0.0))
        rows.append({"unit": unit, "cells": n, "area_km2": (area or 0.0) / 1e6,
                     "open": open_counts.get(unit.id, 0)})
    return rows


def zone_label(name: str, provisional: bool) -> str:
    """A zone as people read it: "东门社区", or "城区 第3片区 · 片区(临时)"."""
    return f"{name} · 片区(临时)" if provisional else name


def grid_cells_fc(session, user: User, grid_id: int) -> tuple[dict, tuple | None]:
    """A grid's visible cells as GeoJSON (code, unit, zone, held) with their bounds."""
    gdf = grid_cells_gdf(session, user, grid_id)
    if not len(gdf):
        return {"type": "FeatureCollection", "features": []}, None
    zones = {
        (z.subdistrict_code, z.community_code): zone_label(z.name, z.provisional)
        for z in session.execute(select(Zone).where(Zone.grid_id == grid_id)).scalars()
    }
    provisional = {
        (z.subdistrict_code, z.community_code)
        for z in session.execute(
            select(Zone).where(Zone.grid_id == grid_id, Zone.provisional.is_(True))
        ).scalars()
    }
    grid = session.get(GridLayer, grid_id)
    held = set(h["code"] for h in _held_codes(session, grid))
    fc = json.loads(gdf[["code", "unit", "area_m2", "geometry"]].to_json(drop_id=True))
    for feature, sub, com in zip(
        fc["features"], gdf["subdistrict_code"], gdf["community_code"], strict=True
    ):
        props = feature["properties"]
        props["unit"] = props["unit"] or "未分配"
        if zones:
            props["zone"] = zones.get((sub, com), f"社区 {com}")
            props["provisional"] = (sub, com) in provisional
        props["held"] = props["code"] in held
    return fc, tuple(float(v) for v in gdf.total_bounds)


def _held_codes(session, grid: GridLayer | None) -> list[dict]:
    from app.services.grids.cells import held_summary

    if grid is None:
        return []
    return [{"code": c, "unit": h["unit"]} for h in held_summary(session, grid) for c in h["codes"]]


def candidate_fc(candidate: GridCandidate) -> tuple[dict, tuple]:
    cols = ["code", "area_m2", "geometry"]
    cells = candidate.cells[cols].copy()
    cells["area_m2"] = cells["area_m2"].round(0)
    if "zone_name" in candidate.cells.columns:
        cells["zone"] = [
            zone_label(n, bool(p))
            for n, p in zip(candidate.cells["zone_name"], candidate.cells["provisional"],
                            strict=True)
        ]
        cells["provisional"] = candidate.cells["provisional"].astype(bool).to_numpy()
    return json.loads(cells.to_json(drop_id=True)), tuple(float(v) for v in cells.total_bounds)


# ----------------------------------------------------------------------------- 责任片区


def unit_area(session, user: User, unit_id: int) -> dict:
    """A unit's 责任片区: cells of the active grid, area, communities, contacts, open count."""
    unit = access.get_unit(session, user, unit_id)
    grid = active_grid(session)
    fc: dict = {"type": "FeatureCollection", "features": []}
    bounds = None
    area = 0.0
    communities: list[str] = []
    if grid is not None:
        gdf = grid_cells_gdf(session, user, grid.id)
        gdf = gdf[gdf["unit"] == unit.name]
        if len(gdf):
            area = float(gdf["area_m2"].sum())
            fc = json.loads(gdf[["code", "area_m2", "geometry"]].to_json(drop_id=True))
            bounds = tuple(float(v) for v in gdf.total_bounds)
            communities = _communities_covered(session, gdf)
    open_count = session.execute(
        access.scope_issues(
            select(func.count())
            .select_from(Issue)
            .where(Issue.unit_id == unit.id, Issue.status.in_(OPEN_STATUSES)),
            user,
        )
    ).scalar_one()
    heads = (
        session.execute(
            select(User).where(User.unit_id == unit.id, User.active.is_(True)).order_by(User.id)
        )
        .scalars()
        .all()
    )
    return {
        "unit": unit,
        "grid": grid,
        "cells_fc": fc,
        "bounds": bounds,
        "cell_count": len(fc["features"]),
        "area_m2": area,
        "area_km2": area / 1e6,
        "communities": communities,
        "open_count": int(open_count),
        "heads": heads,
    }


def _communities_covered(session, cells: gpd.GeoDataFrame) -> list[str]:
    """Names of communities a unit's cells cover by more than a sliver."""
    layer = load_layer_gdf(session, "communities")
    if layer is None or layer.empty or "name" not in layer.columns:
        return []
    from gis.crs import utm_crs_for_geom

    utm = utm_crs_for_geom(shapely.union_all(cells.geometry.envelope.to_numpy()))
    union = shapely.union_all(cells.geometry.to_crs(utm).to_numpy())
    comm = layer.to_crs(utm)
    shared = shapely.area(shapely.intersection(comm.geometry.to_numpy(), union))
    # 100 m² keeps shared edges and digitising slivers from naming a neighbour.
    names = comm["name"].to_numpy()[np.asarray(shared) > 100.0]
    return [str(n) for n in names if n]


def export_unit_cells(
    session, user: User, unit_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """The unit's cells of the active grid as GeoJSON or KML (access-checked)."""
    from gis.layer_io import layer_to_bytes

    _require_export(user)
    unit = access.get_unit(session, user, unit_id)
    if fmt not in ("geojson", "kml"):
        msg = f"责任片区只能导出 GeoJSON 或 KML，不支持 {fmt!r}"
        raise ValidationError(msg)
    grid = active_grid(session)
    if grid is None:
        msg = "没有启用的网格图层"
        raise NotFoundError(msg)
    gdf = grid_cells_gdf(session, user, grid.id)
    gdf = gdf[gdf["unit"] == unit.name].reset_index(drop=True)
    if not len(gdf):
        msg = f"{unit.name} 在当前网格中没有责任网格"
        raise ValidationError(msg)
    data, mime, suffix = layer_to_bytes(gdf, fmt=fmt)
    audit(session, user, "export_unit_cells", f"{unit.name} {fmt}: {len(gdf)} 个网格", ip=ip)
    return data, mime, f"unit-{unit.id}-cells{suffix}"


# ----------------------------------------------------------------------------- web uploads


def require_grid_reader(user: User) -> None:
    """Grid versions and county layers are for 创卫办, inspectors and leaders, not units."""
    access.require(user, "read")
    if access.is_unit_scoped(user):
        msg = "责任单位只能查看本单位的责任片区"
        raise ForbiddenError(msg)


def _upload_name(filename: str | None, allowed: tuple[str, ...]) -> str:
    name = Path((filename or "").replace("\\", "/")).name
    if not name or Path(name).suffix.lower() not in allowed:
        msg = f"不支持的文件 {name or '(未选择文件)'} (可用: {', '.join(allowed)})"
        raise ValidationError(msg)
    return name


def import_grid_upload(session, user: User, data: bytes, filename: str | None) -> GridLayer:
    """Check and store an uploaded grid file (GeoJSON/GPKG/zip/KML); see import_grid."""
    import tempfile

    access.require(user, "manage_grid")
    name = _upload_name(filename, (".geojson", ".json", ".gpkg", ".zip", ".kml", ".kmz"))
    with tempfile.TemporaryDirectory(prefix="sanigrid-grid-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return import_grid(session, path, user=user)


def import_layer_upload(
    session, user: User, data: bytes, filename: str | None, kind: str, source_crs: str | None = None
) -> Layer:
    """Store an uploaded base layer file as the active layer of its kind."""
    import tempfile

    access.require(user, "manage_grid")
    if kind == "grid":
        msg = "网格请在「导入网格」页面上传 (需先检查)"
        raise ValidationError(msg)
    name = _upload_name(filename, (".geojson", ".json", ".gpkg", ".zip", ".kml", ".kmz"))
    with tempfile.TemporaryDirectory(prefix="sanigrid-layer-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return import_layer(session, path, kind, source_crs or None, user=user)


def assign_table_upload(
    session, user: User, grid_id: int, data: bytes, filename: str | None
) -> int:
    access.require(user, "manage_grid")
    name = _upload_name(filename, (".csv", ".xlsx", ".xlsm"))
    return assign_from_table(session, data, filename=name, grid_id=grid_id, user=user)


def boundary_choices(session) -> list[str]:
    """Names a grid can be built for: active boundary, sub-district and community features."""
    rows = session.execute(
        select(Layer.kind, Feature.name)
        .join(Feature, Feature.layer_id == Layer.id)
        .where(
            Layer.active.is_(True),
            Feature.name.is_not(None),
            Layer.kind.in_(("boundary", "subdistricts", "communities")),
        )
        .order_by(Layer.kind, Feature.id)
    ).all()
    return list(dict.fromkeys(name for _, name in rows))
