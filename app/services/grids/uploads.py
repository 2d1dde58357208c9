"""Files coming in: a GIS file as a base layer or a grid, a code,unit table of assignments.

The command line passes a path; a web upload passes the bytes and the browser's file
name, which is checked here (suffix, no folders) and written to a temporary folder for
the readers in ``gis.layer_io``. Base layer uploads run in the background
(``layer_jobs``): a county's layer takes longer than a request may last.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import GridLayer, Layer, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import ValidationError
from app.services.grids.assign import assign_from_table
from app.services.grids.build import DEFAULT_COUNTY_CODE
from app.services.grids.layers import KIND_LABELS, LAYER_KINDS, VECTOR_SUFFIXES, store_layer
from app.services.grids.versions import import_grid
from gis.layer_io.read import read_layer

IMPORT_KINDS = (*LAYER_KINDS, "grid")
TABLE_SUFFIXES = (".csv", ".xlsx", ".xlsm")


def import_layer(
    session: Session,
    path: str | Path,
    kind: str,
    source_crs: str | None = None,
    *,
    user: User | None = None,
    name: str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> Layer | GridLayer:
    """Read a GIS file as one layer kind and store it (a grid goes through ``import_grid``).

    Parameters
    ----------
    session
        The database session (the caller commits).
    path
        The GIS file.
    kind
        One of ``IMPORT_KINDS``.
    source_crs
        ``wgs84``, ``gcj02`` or ``bd09``.
    user
        Who imports (None: the command line), for the audit log.
    name
        The layer's name (default from the file's).
    county_code
        The installation's county code, for checking a grid.

    Raises
    ------
    ValidationError
        For an unknown kind; ``GridCheckError`` for a grid that fails its check.
    """
    if kind not in IMPORT_KINDS:
        msg = f"未知的图层类型 {kind!r} (可选: {', '.join(IMPORT_KINDS)})"
        raise ValidationError(msg)
    if kind == "grid":
        return import_grid(
            session, path, source_crs=source_crs, user=user, name=name, county_code=county_code)
    path = Path(path)
    gdf = read_layer(path, kind=kind, source_crs=source_crs)
    layer = store_layer(
        session, gdf, kind=kind, name=name or f"{path.name} {KIND_LABELS[kind]}", source=path.name
    )
    record(session, user, "import_layer", f"{kind} {path.name}: {len(gdf)} 个要素")
    session.flush()
    return layer


def upload_name(filename: str | None, allowed: tuple[str, ...]) -> str:
    """Return an uploaded file's own name (no folders), refusing a suffix not ``allowed``."""
    name = Path((filename or "").replace("\\", "/")).name
    if not name or Path(name).suffix.lower() not in allowed:
        msg = f"不支持的文件 {name or '(未选择文件)'} (可用: {', '.join(allowed)})"
        raise ValidationError(msg)
    return name


def import_grid_upload(
    session: Session, user: User, data: bytes, filename: str | None, *,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> GridLayer:
    """Check and store an uploaded grid file (GeoJSON/GPKG/zip/KML); see ``import_grid``."""
    access.require(user, "manage_grid")
    name = upload_name(filename, VECTOR_SUFFIXES)
    with tempfile.TemporaryDirectory(prefix="sanigrid-grid-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return import_grid(session, path, user=user, county_code=county_code)


def assign_table_upload(
    session: Session, user: User, grid_id: int, data: bytes, filename: str | None
) -> int:
    """Assign cells from an uploaded CSV/XLSX of code,unit (all rows or none)."""
    access.require(user, "manage_grid")
    name = upload_name(filename, TABLE_SUFFIXES)
    return assign_from_table(session, data, filename=name, grid_id=grid_id, user=user)
