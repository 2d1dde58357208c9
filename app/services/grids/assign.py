"""Hand cells to units: from a code,unit table or a map selection; what each unit holds.

An assignment is all rows or none: a table with one bad row names every bad row and
assigns nothing. The units pages read here too: each unit's cells, area and open
problems in the active grid (its 责任片区).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import OPEN_STATUSES, Cell, GridLayer, Issue, Unit, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import NoActiveGridError, NotFoundError, ValidationError
from app.services.grids.cells import active_grid, assign_cells
from app.services.grids.layers import load_layer_gdf
from app.services.grids.versions import get_grid, grid_cells_gdf
from gis.crs import utm_crs_for_geom

CODE_HEADERS = ("code", "网格编码", "编码", "cell", "cell_code")
UNIT_HEADERS = ("unit", "责任单位", "单位", "unit_name")


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
    session: Session,
    file: bytes | str | Path,
    *,
    filename: str | None = None,
    grid_id: int | None = None,
    user: User | None = None,
) -> int:
    """Assign cells to units from a CSV/XLSX of code,unit; all rows or none.

    Parameters
    ----------
    session
        The database session (the caller commits).
    file
        The table's content, or a path to it.
    filename
        The upload's name (its suffix picks the reader).
    grid_id
        The grid version (default: the active one).
    user
        Who assigns (None: the command line), for the audit log.

    Returns
    -------
    int
        How many cells were assigned.

    Raises
    ------
    ValidationError
        Naming every bad row (up to ten); nothing is assigned.
    NoActiveGridError
        If no grid is given and none is active.
    """
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
    code_col = _column(rows[0], CODE_HEADERS, "网格编码", filename)
    unit_col = _column(rows[0], UNIT_HEADERS, "责任单位", filename)
    grid = session.get(GridLayer, grid_id) if grid_id else active_grid(session)
    if grid is None:
        if not grid_id:
            raise NoActiveGridError()
        msg = f"网格图层 {grid_id} 不存在"
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
    record(session, user, "assign_cells", f"网格图层 {grid.id}: {filename} 分配 {count} 个网格")
    return count


def assign_selected(
    session: Session, user: User, grid_id: int, codes: list[str] | str,
    unit_id: int | str | None,
) -> int:
    """Assign the cells picked on the map (codes, or one comma-separated string) to one unit."""
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
    record(
        session, user, "assign_cells", f"网格图层 {grid_id}: 地图点选 {count} 个网格 → {unit.name}"
    )
    return count


# ----------------------------------------------------------------------------- 责任片区


def list_units(session: Session, user: User) -> list[Unit]:
    """The units the user may see, in id order."""
    return list(session.execute(access.scope_units(select(Unit).order_by(Unit.id), user)).scalars())


def units_overview(session: Session, user: User) -> list[dict]:
    """Every visible unit with its cells, area and open problems in the active grid."""
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


def unit_area(session: Session, user: User, unit_id: int) -> dict:
    """A unit's 责任片区: cells of the active grid, area, communities, contacts, open count.

    Returns
    -------
    dict
        ``unit``, ``grid`` (None when no grid is active), ``cells_fc`` and ``bounds``,
        ``cell_count``, ``area_m2``/``area_km2``, ``communities`` (names), ``open_count``
        and ``heads`` (the unit's active users).
    """
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


def _communities_covered(session: Session, cells: gpd.GeoDataFrame) -> list[str]:
    """Names of communities a unit's cells cover by more than a sliver."""
    layer = load_layer_gdf(session, "communities")
    if layer is None or layer.empty or "name" not in layer.columns:
        return []
    utm = utm_crs_for_geom(shapely.union_all(cells.geometry.envelope.to_numpy()))
    union = shapely.union_all(cells.geometry.to_crs(utm).to_numpy())
    comm = layer.to_crs(utm)
    shared = shapely.area(shapely.intersection(comm.geometry.to_numpy(), union))
    # 100 m² keeps shared edges and digitising slivers from naming a neighbour.
    names = comm["name"].to_numpy()[np.asarray(shared) > 100.0]
    return [str(n) for n in names if n]
