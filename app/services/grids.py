"""Grid versions: store, activate (re-assigning problems), locate points, hand out cells."""

from __future__ import annotations

import json
import threading

import geopandas as gpd
import numpy as np
from shapely.geometry import shape
from sqlalchemy import select, update

from app.models import Cell, GridLayer, Issue, Unit, now_local
from app.services.errors import NotFoundError, ValidationError

# Grids are immutable once stored, so a locator per grid id can be cached per process
# without ever going stale (activation picks another id, it never edits cells' shapes).
_LOCATORS: dict[tuple, tuple[object, np.ndarray]] = {}
_LOCK = threading.Lock()


def clear_caches() -> None:
    """Forget cached locators (tests that recreate the database call this)."""
    with _LOCK:
        _LOCATORS.clear()


def store_grid(
    session, cells: gpd.GeoDataFrame, *, name: str, method: str, params: dict | None = None
) -> GridLayer:
    """Store a coded grid (columns code, subdistrict_code, community_code, area_m2)."""
    if cells.crs is not None and cells.crs.to_epsg() != 4326:
        cells = cells.to_crs(4326)
    grid = GridLayer(name=name, method=method, params=params or {}, cell_count=len(cells))
    session.add(grid)
    session.flush()
    rows = []
    for record, geom in zip(cells.drop(columns=cells.geometry.name).to_dict("records"),
                            cells.geometry, strict=True):
        # A unit_id column with gaps arrives as floats and NaN; PostgreSQL refuses both.
        unit_id = record.get("unit_id")
        unit_id = int(unit_id) if unit_id is not None and unit_id == unit_id else None
        cell = Cell(
            grid_id=grid.id,
            code=str(record["code"]),
            subdistrict_code=str(record.get("subdistrict_code") or "000"),
            community_code=str(record.get("community_code") or "000"),
            area_m2=float(record.get("area_m2") or 0.0),
            unit_id=unit_id,
        )
        cell.set_geometry(geom)
        rows.append(cell)
    session.add_all(rows)
    session.flush()
    return grid


def active_grid(session) -> GridLayer | None:
    return session.execute(
        select(GridLayer).where(GridLayer.is_active.is_(True))
    ).scalar_one_or_none()


def cells_gdf(session, grid_id: int) -> gpd.GeoDataFrame:
    rows = session.execute(
        select(Cell.id, Cell.code, Cell.unit_id, Cell.geom).where(Cell.grid_id == grid_id)
        .order_by(Cell.id)
    ).all()
    return gpd.GeoDataFrame(
        {"cell_id": [r[0] for r in rows], "code": [r[1] for r in rows],
         "unit_id": [r[2] for r in rows]},
        geometry=[shape(json.loads(r[3])) for r in rows],
        crs=4326,
    )


def locator_for(session, grid_id: int):
    """Return (CellLocator, cell ids array) for a grid, built once per process."""
    grid = session.get(GridLayer, grid_id)
    # The creation time guards against a reused id after a grid was deleted.
    key = (grid_id, grid.created_at.isoformat() if grid else "")
    with _LOCK:
        cached = _LOCATORS.get(key)
    if cached is not None:
        return cached
    from gis.locate import CellLocator

    gdf = cells_gdf(session, grid_id)
    built = (CellLocator(gdf), gdf["cell_id"].to_numpy())
    with _LOCK:
        _LOCATORS[key] = built
    return built


def locate_points(session, lon, lat, *, grid_id: int | None = None) -> np.ndarray:
    """Cell ids for arrays of WGS-84 points (0 where outside every cell)."""
    if grid_id is None:
        grid = active_grid(session)
        if grid is None:
            return np.zeros(len(np.atleast_1d(lon)), dtype=int)
        grid_id = grid.id
    locator, ids = locator_for(session, grid_id)
    idx = locator.locate(np.atleast_1d(lon), np.atleast_1d(lat))
    return np.where(idx >= 0, ids[np.clip(idx, 0, None)], 0)


def locate_cell(session, lon: float, lat: float, *, grid_id: int | None = None) -> Cell | None:
    cell_id = int(locate_points(session, [lon], [lat], grid_id=grid_id)[0])
    return session.get(Cell, cell_id) if cell_id else None


def activate_grid(session, grid_id: int) -> dict:
    """Make a grid the active one and re-assign every placed problem to its new cell.

    Problems keep their coordinates; only the cell (and, for territorial routing, the
    unit) follows the new grid. The old version stays readable.
    """
    grid = session.get(GridLayer, grid_id)
    if grid is None:
        msg = f"网格图层 {grid_id} 不存在"
        raise NotFoundError(msg)
    session.execute(update(GridLayer).values(is_active=False))
    grid.is_active = True
    grid.activated_at = now_local()
    session.flush()
    issues = list(session.execute(select(Issue).where(Issue.lon.is_not(None))).scalars())
    if not issues:
        return {"grid_id": grid.id, "reassigned": 0, "outside": 0}
    lon = np.array([i.lon for i in issues])
    lat = np.array([i.lat for i in issues])
    cell_ids = locate_points(session, lon, lat, grid_id=grid.id)
    units = dict(session.execute(select(Cell.id, Cell.unit_id).where(Cell.grid_id == grid.id)).all())
    outside = 0
    from app.services.routing_units import territorial_unit_applies

    for issue, cell_id in zip(issues, cell_ids, strict=True):
        cell_id = int(cell_id) or None
        issue.cell_id = cell_id
        issue.outside_grid = cell_id is None
        outside += cell_id is None
        if cell_id and territorial_unit_applies(issue):
            issue.unit_id = units.get(cell_id) or issue.unit_id
    session.flush()
    return {"grid_id": grid.id, "reassigned": len(issues) - outside, "outside": outside}


def assign_cells(session, assignments: dict[str, str], *, grid_id: int | None = None) -> int:
    """Assign cells (by code) to units (by name); unknown codes or units are named."""
    grid = session.get(GridLayer, grid_id) if grid_id else active_grid(session)
    if grid is None:
        msg = "没有可用的网格图层"
        raise NotFoundError(msg)
    cells = {c.code: c for c in session.execute(select(Cell).where(Cell.grid_id == grid.id)).scalars()}
    units = {u.name: u for u in session.execute(select(Unit)).scalars()}
    errors = []
    for row, (code, unit_name) in enumerate(assignments.items(), start=1):
        if code not in cells:
            errors.append(f"第 {row} 行: 网格编码 {code} 不在网格图层 {grid.id} 中")
        if unit_name not in units:
            errors.append(f"第 {row} 行: 责任单位 {unit_name!r} 不存在")
    if errors:
        raise ValidationError("；".join(errors[:20]))
    for code, unit_name in assignments.items():
        cells[code].unit_id = units[unit_name].id
    grid.revision = (grid.revision or 1) + 1
    session.flush()
    return len(assignments)
