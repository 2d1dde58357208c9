"""Grid versions: import a checked grid file, list, read, report on and activate versions.

A grid version is immutable once stored; activating one moves every placed problem to
its new cell (``cells.activate_grid``). A version is activated only after it passes the
same check a built grid passes (``build.check_cells``).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import shapely
from shapely.geometry import shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Cell, GridLayer, Layer, Unit, User, Zone
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import ForbiddenError, NotFoundError, ValidationError
from app.services.grids.build import (
    DEFAULT_COUNTY_CODE,
    boundary_geom,
    check_cells,
    check_summary,
    resolve_county_code,
    settle_units,
    zone_label,
    zone_summary,
)
from app.services.grids.cells import activate_grid, held_summary, store_grid
from app.services.grids.layers import active_layer, layer_gdf, load_layer_gdf
from gis.crs import utm_crs_for_geom
from gis.layer_io.read import read_layer


def require_grid_reader(user: User) -> None:
    """Grid versions and county layers are for 创卫办, inspectors and leaders, not units."""
    access.require(user, "read")
    if access.is_unit_scoped(user):
        msg = "责任单位只能查看本单位的责任片区"
        raise ForbiddenError(msg)


# ----------------------------------------------------------------------------- importing


class GridCheckError(ValidationError):
    """An uploaded grid failed the check; ``report`` says where and why."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


def check_uploaded_grid(
    session: Session, path: str | Path, *, source_crs: str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> tuple[gpd.GeoDataFrame, dict]:
    """Read a grid file and check it against the active boundary, communities and county.

    Returns
    -------
    tuple
        The cells read (EPSG:4326) and the check report (with ``boundary_layer_id``).
    """
    cells = read_layer(Path(path), kind="grid", source_crs=source_crs)
    boundary_layer = active_layer(session, "boundary")
    boundary = None
    if boundary_layer is not None:
        boundary = shapely.union_all(layer_gdf(session, boundary_layer.id).geometry.to_numpy())
    report = check_cells(
        cells,
        boundary=boundary,
        communities=load_layer_gdf(session, "communities"),
        county=resolve_county_code(session, county_code),
    )
    report["boundary_layer_id"] = boundary_layer.id if boundary_layer else None
    return cells, report


def import_grid(
    session: Session,
    path: str | Path,
    *,
    source_crs: str | None = None,
    user: User | None = None,
    name: str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> GridLayer:
    """Store a grid file as a new inactive version, or refuse it with its report.

    Parameters
    ----------
    session
        The database session (the caller commits).
    path
        The grid file (GeoJSON, GeoPackage, zipped Shapefile, KML).
    source_crs
        ``wgs84``, ``gcj02`` or ``bd09``.
    user
        Who imports (None: the command line), for the audit log.
    name
        The version's name (default from the file's).
    county_code
        The installation's county code (``Settings.county_code``).

    Raises
    ------
    GridCheckError
        If the grid fails the check; nothing is stored.
    """
    path = Path(path)
    cells, report = check_uploaded_grid(
        session, path, source_crs=source_crs, county_code=county_code)
    if not report["ok"]:
        lines = [f["message"] for f in report["findings"] if f["blocking"]]
        more = f" 等 {len(lines)} 处" if len(lines) > 3 else ""
        msg = f"网格图层 {path.name} 未通过检查，未导入: {'；'.join(lines[:3])}{more}"
        raise GridCheckError(msg, report)
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
        "check": check_summary(report),
    }
    grid = store_grid(
        session, stored, name=name or f"导入网格 {path.name}", method="import", params=params
    )
    settle_units(session, grid)
    record(session, user, "import_grid", f"网格图层 {grid.id}: {path.name}, {len(stored)} 个网格")
    return grid


# ----------------------------------------------------------------------------- reading


def list_grids(session: Session) -> list[GridLayer]:
    """Every grid version, newest first."""
    return list(session.execute(select(GridLayer).order_by(GridLayer.id.desc())).scalars())


def get_grid(session: Session, grid_id: int) -> GridLayer:
    """Return one grid version, or raise NotFoundError."""
    grid = session.get(GridLayer, grid_id)
    if grid is None:
        msg = f"网格图层 {grid_id} 不存在"
        raise NotFoundError(msg)
    return grid


def grid_cells_gdf(session: Session, user: User | None, grid_id: int) -> gpd.GeoDataFrame:
    """A grid's cells the user may read (all for the CLI, user None), EPSG:4326.

    Columns: ``code``, ``unit`` (name, "" when none), ``subdistrict_code``,
    ``community_code``, ``area_m2``.
    """
    stmt = (
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
        .order_by(Cell.code)
    )
    if user is not None:
        stmt = access.scope_cells(stmt, user)
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


def grid_cells_fc(session: Session, user: User, grid_id: int) -> tuple[dict, tuple | None]:
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


def _held_codes(session: Session, grid: GridLayer | None) -> list[dict]:
    if grid is None:
        return []
    return [{"code": c, "unit": h["unit"]} for h in held_summary(session, grid) for c in h["codes"]]


# ----------------------------------------------------------------------------- reports


def grid_report(session: Session, grid_id: int, *, county_code: str = DEFAULT_COUNTY_CODE) -> dict:
    """Check a stored grid against the boundary it was built for and the communities.

    Returns
    -------
    dict
        The check report (see ``build.check_cells``) with the version's zones and held
        cells (:func:`grid_zones_report`) and ``grid``.
    """
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
        boundary, _ = boundary_geom(session, grid.params["boundary_name"])
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
    report = check_cells(
        cells,
        boundary=boundary,
        communities=load_layer_gdf(session, "communities"),
        county=resolve_county_code(session, county_code),
    )
    return {**report, **grid_zones_report(session, grid), "grid": grid}


def grid_zones_report(session: Session, grid: GridLayer) -> dict:
    """The grid's communities and 片区(临时), and the cells each office holds (属地兜底)."""
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
        "zones": zone_summary(rows),
        "held": held,
        "held_total": sum(h["count"] for h in held),
        "no_unit": int(unassigned),
    }


def activate(
    session: Session, user: User | None, grid_id: int, *, ip: str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> dict:
    """Activate a grid version after checking it; problems move to the new cells.

    Returns
    -------
    dict
        ``grid_id``, ``reassigned`` (problems placed in the new cells) and ``outside``.

    Raises
    ------
    ValidationError
        If the version fails its check (nothing changes).
    """
    if user is not None:
        access.require(user, "manage_grid")
    report = grid_report(session, grid_id, county_code=county_code)
    if not report["ok"]:
        msg = f"网格图层 {grid_id} 未通过检查，不能启用: {report['summary']}"
        raise ValidationError(msg)
    result = activate_grid(session, grid_id)
    record(
        session,
        user,
        "activate_grid",
        f"网格图层 {grid_id}: {result['reassigned']} 个问题重新归属, {result['outside']} 个在网格外",
        ip,
    )
    session.flush()
    return result
