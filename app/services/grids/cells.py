"""Grid versions: store, activate (re-assigning problems), locate points, hand out cells.

Every cell answers to a unit (属地兜底, DESIGN rule 11): a cell no unit has been given is
held by its sub-district or town office (a ``Unit(kind="subdistrict")``, created when
missing) until it is assigned. The held cells are listed in ``GridLayer.params["held"]``
(code -> office unit id) so reports can tell "held by the office" from "assigned to it";
assigning a cell takes it off that list.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Cell, Feature, GridLayer, Issue, IssueEvent, Layer, Unit, Zone, now_local
from app.services.core.cache import KeyedCache
from app.services.core.errors import NoActiveGridError, NotFoundError, ValidationError
from app.services.tables.unit_routing import territorial_unit_applies
from gis.crs import utm_crs_for_geom
from gis.locate import CellLocator

# Grids are immutable once stored, so a locator per grid id can be cached per process
# without ever going stale (activation picks another id, it never edits cells' shapes).
_LOCATORS: KeyedCache[tuple[CellLocator, np.ndarray]] = KeyedCache("cell locators", maxsize=8)


def store_grid(
    session: Session,
    cells: gpd.GeoDataFrame,
    *,
    name: str,
    method: str,
    params: dict | None = None,
    zones=None,
) -> GridLayer:
    """Store a coded grid (columns code, subdistrict_code, community_code, area_m2).

    ``zones`` is the zone table of ``gis.coding.code_grid``; without it the Zone rows
    are derived from the cells' codes.
    """
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
    store_zones(session, grid, cells, zones)
    return grid


def _zone_records(cells: gpd.GeoDataFrame, zones) -> list[dict]:
    """Zone rows from a zone table, else derived from the cells' codes and zone names."""
    if zones is not None:
        records = zones.to_dict("records") if hasattr(zones, "to_dict") else list(zones)
        return [dict(r) for r in records]
    groups: dict[tuple[str, str], dict] = {}
    names = cells["zone_name"] if "zone_name" in cells.columns else [None] * len(cells)
    prov = cells["provisional"] if "provisional" in cells.columns else [False] * len(cells)
    for sub, com, name, p in zip(cells["subdistrict_code"], cells["community_code"], names,
                                 prov, strict=True):
        row = groups.setdefault((str(sub), str(com)), {
            "subdistrict_code": str(sub), "community_code": str(com),
            "name": name or f"社区 {com}", "subdistrict_name": None,
            "provisional": bool(p), "cell_count": 0})
        row["cell_count"] += 1
    return list(groups.values())


def store_zones(session: Session, grid: GridLayer, cells: gpd.GeoDataFrame, zones=None) -> list[Zone]:
    """Store one Zone row per community/片区 of a grid (from ``gis.coding.code_grid``)."""
    if "subdistrict_code" not in cells.columns or not len(cells):
        return []
    rows = []
    for r in _zone_records(cells, zones):
        rows.append(Zone(
            grid_id=grid.id,
            subdistrict_code=str(r["subdistrict_code"]),
            community_code=str(r["community_code"]),
            name=str(r.get("name") or f"社区 {r['community_code']}")[:120],
            subdistrict_name=(str(r["subdistrict_name"])[:120]
                              if r.get("subdistrict_name") else None),
            provisional=bool(r.get("provisional")),
            cell_count=int(r.get("cell_count") or 0),
        ))
    session.add_all(rows)
    session.flush()
    return rows


def office_name(subdistrict_name: str) -> str:
    """The office that holds a sub-district's cells: 东门街道 → 东门街道办事处, 云岭镇 → 云岭镇人民政府."""
    name = subdistrict_name.strip()
    if name.endswith(("镇", "乡")):
        return f"{name}人民政府"
    if name.endswith(("办事处", "人民政府")):
        return name
    return f"{name}办事处"


def office_for(session: Session, subdistrict_name: str) -> Unit:
    """The sub-district/town office unit for a sub-district name, created when missing."""
    wanted = office_name(subdistrict_name)
    unit = session.execute(select(Unit).where(Unit.name == wanted)).scalar_one_or_none()
    if unit is None:
        # An office entered by hand under another suffix (南溪街道办事处 / 南溪街道人民政府).
        unit = session.execute(
            select(Unit).where(Unit.kind == "subdistrict", Unit.name.like(f"{subdistrict_name}%"))
            .order_by(Unit.id)
        ).scalars().first()
    if unit is None:
        unit = Unit(name=wanted, kind="subdistrict", active=True)
        session.add(unit)
        session.flush()
    return unit


def subdistrict_names(session: Session, grid_id: int) -> dict[str, str]:
    """Sub-district code -> name for a grid, from its zones (else the sub-district layer)."""
    names = {
        sub: name for sub, name in session.execute(
            select(Zone.subdistrict_code, Zone.subdistrict_name).where(Zone.grid_id == grid_id)
        ).all() if name
    }
    if names:
        return names
    rows = session.execute(
        select(Feature.code, Feature.name, Feature.props).join(Layer)
        .where(Layer.kind == "subdistricts", Layer.active.is_(True))
    ).all()
    for code, name, props in rows:
        code = str(code or (props or {}).get("code") or "")
        if code and name:
            names.setdefault(code.zfill(3)[-3:], name)
    return names


def hold_unassigned(session: Session, grid: GridLayer) -> dict[str, int]:
    """Give every cell without a unit to its sub-district office (属地兜底).

    Returns ``{office name: cells held}`` for the cells handed over now; the grid's
    ``params["held"]`` keeps every held code with its office.
    """
    free = list(session.execute(
        select(Cell).where(Cell.grid_id == grid.id, Cell.unit_id.is_(None))
    ).scalars())
    params = dict(grid.params or {})
    held = dict(params.get("held") or {})
    if not free:
        return {}
    names = subdistrict_names(session, grid.id)
    offices: dict[str, Unit] = {}
    counts: dict[str, int] = {}
    for cell in free:
        sub = cell.subdistrict_code
        if sub not in offices:
            offices[sub] = office_for(session, names.get(sub) or f"街道 {sub}")
        unit = offices[sub]
        cell.unit_id = unit.id
        held[cell.code] = unit.id
        counts[unit.name] = counts.get(unit.name, 0) + 1
    params["held"] = held
    grid.params = params  # a new dict, so the JSON column is written
    grid.revision = (grid.revision or 1) + 1
    session.flush()
    return counts


def held_summary(session: Session, grid: GridLayer) -> list[dict]:
    """Cells held by an office because no unit was given: per office, count and codes."""
    held = (grid.params or {}).get("held") or {}
    if not held:
        return []
    current = dict(session.execute(
        select(Cell.code, Cell.unit_id).where(Cell.grid_id == grid.id)).all())
    names = dict(session.execute(select(Unit.id, Unit.name)).all())
    by_office: dict[int, list[str]] = {}
    for code, unit_id in held.items():
        if current.get(code) == unit_id:  # still held (not re-assigned since)
            by_office.setdefault(int(unit_id), []).append(code)
    return [
        {"unit_id": uid, "unit": names.get(uid, str(uid)), "count": len(codes),
         "codes": sorted(codes)}
        for uid, codes in sorted(by_office.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def carry_units(session: Session, grid: GridLayer, from_grid: GridLayer | None) -> int:
    """Give the new grid's unassigned cells the unit of the old cell they overlap most.

    Cells the old grid's office only held (属地兜底) carry nothing: they stay free and
    fall to the new grid's office. Returns the number of cells given a unit.
    """
    if from_grid is None or from_grid.id == grid.id:
        return 0
    old = cells_gdf(session, from_grid.id)
    new = cells_gdf(session, grid.id)
    old_held = (from_grid.params or {}).get("held") or {}
    old = old[old["unit_id"].notna() & ~old["code"].isin(list(old_held))]
    new = new[new["unit_id"].isna()]
    if not len(old) or not len(new):
        return 0
    utm = utm_crs_for_geom(shapely.union_all(new.geometry.envelope.to_numpy()))
    og = old.geometry.to_crs(utm).to_numpy()
    ng = new.geometry.to_crs(utm).to_numpy()
    tree = shapely.STRtree(og)
    ni, oi = tree.query(ng, predicate="intersects")
    if not len(ni):
        return 0
    area = shapely.area(shapely.intersection(ng[ni], og[oi]))
    old_units = old["unit_id"].to_numpy()
    # Overlap per (new cell, old unit): cuts move between versions, a unit's area stays.
    share: dict[tuple[int, int], float] = {}
    for a, b, ar in zip(ni.tolist(), oi.tolist(), area.tolist(), strict=True):
        key = (a, int(old_units[b]))
        share[key] = share.get(key, 0.0) + ar
    best: dict[int, tuple[float, int]] = {}
    for (a, unit_id), ar in share.items():
        if ar > best.get(a, (0.0, -1))[0]:
            best[a] = (ar, unit_id)
    cell_area = shapely.area(ng)
    new_ids = new["cell_id"].to_numpy()
    count = 0
    for a, (ar, unit_id) in best.items():
        if ar >= 0.5 * cell_area[a]:  # mostly on one unit's old cells: same place, same unit
            session.get(Cell, int(new_ids[a])).unit_id = unit_id
            count += 1
    session.flush()
    return count


def active_grid(session: Session) -> GridLayer | None:
    """Return the active grid version, or None before one is activated."""
    return session.execute(
        select(GridLayer).where(GridLayer.is_active.is_(True))
    ).scalar_one_or_none()


def cells_gdf(session: Session, grid_id: int) -> gpd.GeoDataFrame:
    """Return a grid's cells (``cell_id``, ``code``, ``unit_id``) in id order, EPSG:4326."""
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


def locator_for(session: Session, grid_id: int) -> tuple[CellLocator, np.ndarray]:
    """Return (CellLocator, cell ids array) for a grid, built once per process."""
    grid = session.get(GridLayer, grid_id)
    # The creation time guards against a reused id after a grid was deleted.
    key = (grid_id, grid.created_at.isoformat() if grid else "")
    cached = _LOCATORS.get(key)
    if cached is not None:
        return cached
    # Built outside the cache's lock: a cold county grid takes a while, and other
    # requests keep locating in grids already built meanwhile.
    gdf = cells_gdf(session, grid_id)
    return _LOCATORS.put(key, (CellLocator(gdf), gdf["cell_id"].to_numpy()))


def locate_points(session: Session, lon, lat, *, grid_id: int | None = None) -> np.ndarray:
    """Cell ids for arrays of WGS-84 points (0 where outside every cell)."""
    if grid_id is None:
        grid = active_grid(session)
        if grid is None:
            return np.zeros(len(np.atleast_1d(lon)), dtype=int)
        grid_id = grid.id
    locator, ids = locator_for(session, grid_id)
    idx = locator.locate(np.atleast_1d(lon), np.atleast_1d(lat))
    return np.where(idx >= 0, ids[np.clip(idx, 0, None)], 0)


def locate_cell(
    session: Session, lon: float, lat: float, *, grid_id: int | None = None
) -> Cell | None:
    """Return the cell of one WGS-84 point, or None outside every cell."""
    cell_id = int(locate_points(session, [lon], [lat], grid_id=grid_id)[0])
    return session.get(Cell, cell_id) if cell_id else None


def activate_grid(session: Session, grid_id: int) -> dict:
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
    # Grids stored before 属地兜底 (or with cells freed since) get their office now.
    hold_unassigned(session, grid)
    issues = list(session.execute(select(Issue).where(Issue.lon.is_not(None))).scalars())
    if not issues:
        return {"grid_id": grid.id, "reassigned": 0, "outside": 0}
    lon = np.array([i.lon for i in issues])
    lat = np.array([i.lat for i in issues])
    cell_ids = locate_points(session, lon, lat, grid_id=grid.id)
    units = dict(session.execute(select(Cell.id, Cell.unit_id).where(Cell.grid_id == grid.id)).all())
    outside = 0
    codes = dict(session.execute(select(Cell.id, Cell.code).where(
        Cell.id.in_({i.cell_id for i in issues if i.cell_id} | {int(c) for c in cell_ids if c})
    )).all()) if issues else {}
    for issue, cell_id in zip(issues, cell_ids, strict=True):
        cell_id = int(cell_id) or None
        before_cell, before_unit = issue.cell_id, issue.unit_id
        issue.cell_id = cell_id
        issue.outside_grid = cell_id is None
        outside += cell_id is None
        if cell_id and territorial_unit_applies(issue):
            issue.unit_id = units.get(cell_id) or issue.unit_id
        if before_cell != issue.cell_id or before_unit != issue.unit_id:
            # History keeps the move: open and closed problems alike follow the new grid.
            session.add(IssueEvent(
                issue_id=issue.id, action="regrid", from_status=issue.status,
                to_status=issue.status,
                note=f"网格图层 {grid.id} 启用: 网格 {codes.get(before_cell, '无')} → "
                     f"{codes.get(issue.cell_id, '网格外')}",
                data={"grid_id": grid.id, "from_cell": codes.get(before_cell),
                      "to_cell": codes.get(issue.cell_id), "from_unit_id": before_unit,
                      "to_unit_id": issue.unit_id},
            ))
    session.flush()
    return {"grid_id": grid.id, "reassigned": len(issues) - outside, "outside": outside}


def assign_cells(session: Session, assignments: dict[str, str], *, grid_id: int | None = None) -> int:
    """Assign cells (by code) to units (by name); unknown codes or units are named."""
    grid = session.get(GridLayer, grid_id) if grid_id else active_grid(session)
    if grid is None:
        if not grid_id:
            raise NoActiveGridError()
        msg = f"网格图层 {grid_id} 不存在"
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
    held = (grid.params or {}).get("held")
    if held and any(code in held for code in assignments):
        grid.params = {**grid.params,
                       "held": {c: u for c, u in held.items() if c not in assignments}}
    grid.revision = (grid.revision or 1) + 1
    session.flush()
    return len(assignments)
