"""Grids and layers as files: a grid version, a base layer or a unit's cells, access-checked.

Every export is written to the audit log; a unit head exports only their own cells
(DESIGN rule 12), never a county layer.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.models import GridLayer, Layer, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import (
    ForbiddenError,
    NoActiveGridError,
    NotFoundError,
    ValidationError,
)
from app.services.grids.cells import active_grid
from app.services.grids.layers import layer_gdf
from app.services.grids.versions import get_grid, grid_cells_gdf
from gis.layer_io.write import layer_to_bytes

EXPORT_FORMATS = ("geojson", "gpkg", "shp", "kml")
FORMAT_LABELS = {"geojson": "GeoJSON", "gpkg": "GeoPackage", "shp": "Shapefile (zip)", "kml": "KML"}
# File name suffix → export format, for the command line's target file.
_SUFFIX_FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".zip": "shp",
    ".shp": "shp",
    ".kml": "kml",
}


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        msg = f"不支持的导出格式 {fmt!r} (可选: {', '.join(EXPORT_FORMATS)})"
        raise ValidationError(msg)


def format_for_path(path: str | Path) -> str:
    """Return the export format a file name asks for (.geojson .gpkg .zip .shp .kml)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        msg = f"无法从文件名 {Path(path).name} 判断导出格式 (应为 .geojson .gpkg .zip .kml)"
        raise ValidationError(msg)
    return _SUFFIX_FORMATS[suffix]


def export_grid(
    session: Session, user: User, grid_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """A grid version as a file: (content, MIME type, filename); unit heads get their cells.

    Raises
    ------
    NotFoundError
        For an unknown version, or one where a unit head has no cells.
    ValidationError
        For an unknown format or an empty grid.
    """
    access.require(user, "export")
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
    record(session, user, "export_grid", f"网格图层 {grid_id} {fmt}: {len(gdf)} 个网格", ip)
    return data, mime, f"grid-{grid_id}{suffix}"


def export_cli_grid(session: Session, grid_id: int, fmt: str) -> bytes:
    """A whole grid version as a file for the command line (a trusted operator)."""
    _check_format(fmt)
    get_grid(session, grid_id)
    gdf = grid_cells_gdf(session, None, grid_id)
    if not len(gdf):
        msg = f"网格图层 {grid_id} 没有网格，无法导出"
        raise ValidationError(msg)
    data, _, _ = layer_to_bytes(gdf, fmt=fmt)
    record(session, None, "export_grid", f"网格图层 {grid_id} {fmt} (命令行): {len(gdf)} 个网格")
    return data


def export_layer(
    session: Session, user: User, layer_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """A base layer as a file; unit heads export their own cells only, not county layers."""
    access.require(user, "export")
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
    record(
        session,
        user,
        "export_layer",
        f"图层 {layer_id} ({layer.kind}) {fmt}: {len(gdf)} 个要素",
        ip,
    )
    return data, mime, f"layer-{layer_id}-{layer.kind}{suffix}"


def export_unit_cells(
    session: Session, user: User, unit_id: int, fmt: str, *, ip: str | None = None
) -> tuple[bytes, str, str]:
    """The unit's cells of the active grid as GeoJSON or KML (access-checked).

    Raises
    ------
    NoActiveGridError
        If no grid is active.
    ValidationError
        For another format, or a unit without cells.
    """
    access.require(user, "export")
    unit = access.get_unit(session, user, unit_id)
    if fmt not in ("geojson", "kml"):
        msg = f"责任片区只能导出 GeoJSON 或 KML，不支持 {fmt!r}"
        raise ValidationError(msg)
    grid = active_grid(session)
    if grid is None:
        raise NoActiveGridError()
    gdf = grid_cells_gdf(session, user, grid.id)
    gdf = gdf[gdf["unit"] == unit.name].reset_index(drop=True)
    if not len(gdf):
        msg = f"{unit.name} 在当前网格中没有责任网格"
        raise ValidationError(msg)
    data, mime, suffix = layer_to_bytes(gdf, fmt=fmt)
    record(session, user, "export_unit_cells", f"{unit.name} {fmt}: {len(gdf)} 个网格", ip)
    return data, mime, f"unit-{unit.id}-cells{suffix}"
