"""Write layers out for download: GeoJSON, GeoPackage, a zipped Shapefile or KML.

The Shapefile is UTF-8 with field names cut to 10 bytes (name and code stored under
the short names the reader looks for first); the KML is :func:`gis.layer_io.kml.kml_bytes`.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from gis.crs import WGS84
from gis.errors import LayerWriteError
from gis.layer_io.kml import kml_bytes
from gis.layer_io.schema import CODE_COLUMNS, NAME_COLUMNS, TYPE_LABEL, find_column, plain_value

FORMATS = ("geojson", "gpkg", "shp", "kml")

_MIME = {
    "geojson": ("application/geo+json", ".geojson"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "shp": ("application/zip", ".zip"),
    "kml": ("application/vnd.google-earth.kml+xml", ".kml"),
}


def write_layer(gdf: gpd.GeoDataFrame, path: str | Path, *, fmt: str) -> Path:
    """Write a layer to a file for download or for field GPS apps.

    Parameters
    ----------
    gdf : GeoDataFrame
        The layer; reprojected to EPSG:4326 for GeoJSON and KML.
    path : str or Path
        Target file. For ``fmt="shp"`` the result is a ``.zip`` next to it (the
        suffix is replaced by ``.zip``).
    fmt : {"geojson", "gpkg", "shp", "kml"}
        Output format. ``shp`` writes a zip of .shp/.shx/.dbf/.prj/.cpg in UTF-8
        with field names cut to 10 bytes; ``kml`` writes one Placemark per feature
        named by its ``name`` (else ``code``), with ExtendedData and styles.

    Returns
    -------
    Path
        The file actually written.

    Raises
    ------
    LayerWriteError
        If the format is unknown, the layer has no CRS, or the driver fails.
    """
    if fmt not in FORMATS:
        msg = f"不支持的导出格式 fmt={fmt!r} (可选: {', '.join(FORMATS)})"
        raise LayerWriteError(msg)
    if gdf.crs is None:
        msg = "图层没有坐标参考系 (CRS)，无法导出"
        raise LayerWriteError(msg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "shp":
        return _write_shapefile_zip(gdf, path.with_suffix(".zip"))
    if fmt == "kml":
        path.write_bytes(kml_bytes(gdf))
        return path
    out = _plain_columns(gdf)
    if fmt == "geojson":
        out = out.to_crs(WGS84)
    if path.exists():
        path.unlink()  # GDAL appends to an existing GeoPackage instead of replacing it
    try:
        if fmt == "geojson":
            pyogrio.write_dataframe(
                out, path, driver="GeoJSON", layer_options={"COORDINATE_PRECISION": 8}
            )
        else:
            pyogrio.write_dataframe(out, path, driver="GPKG", layer=path.stem or "layer")
    except Exception as exc:
        msg = f"导出 {fmt} 失败: {exc}"
        raise LayerWriteError(msg) from exc
    return path


def layer_to_bytes(gdf: gpd.GeoDataFrame, *, fmt: str) -> tuple[bytes, str, str]:
    """Render a layer as a downloadable file.

    Parameters
    ----------
    gdf : GeoDataFrame
        The layer.
    fmt : {"geojson", "gpkg", "shp", "kml"}
        Output format.

    Returns
    -------
    tuple of (bytes, str, str)
        The file's content, its MIME type and the filename suffix to use
        (``.geojson``, ``.gpkg``, ``.zip`` or ``.kml``).
    """
    if fmt not in FORMATS:
        msg = f"不支持的导出格式 fmt={fmt!r} (可选: {', '.join(FORMATS)})"
        raise LayerWriteError(msg)
    mime, suffix = _MIME[fmt]
    if fmt == "kml":
        if gdf.crs is None:
            msg = "图层没有坐标参考系 (CRS)，无法导出"
            raise LayerWriteError(msg)
        return kml_bytes(gdf), mime, suffix
    with tempfile.TemporaryDirectory(prefix="sanigrid-export-") as tmp:
        written = write_layer(gdf, Path(tmp) / f"layer{suffix}", fmt=fmt)
        return written.read_bytes(), mime, suffix


def _plain_columns(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Turn columns GDAL cannot store (lists, dicts, mixed objects) into text."""
    out = gdf.copy()
    geometry = out.geometry.name
    for col in out.columns:
        if col == geometry:
            continue
        series = out[col]
        if series.dtype == object:
            kinds = {type(v) for v in series if v is not None and not _is_missing(v)}
            if len(kinds) > 1 or kinds - {str, int, float, bool}:
                out[col] = [None if _is_missing(v) else str(plain_value(v)) for v in series]
    return out


def _is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _shp_field_names(columns: list[str]) -> dict[str, str]:
    """Cut names to dBASE's 10 bytes (UTF-8) without splitting a character; dedupe."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        short = _cut_bytes(str(col), 10)
        candidate, n = short, 1
        while candidate.lower() in used:
            tail = f"_{n}"
            candidate = _cut_bytes(str(col), 10 - len(tail)) + tail
            n += 1
        used.add(candidate.lower())
        mapping[col] = candidate
    return mapping


def _cut_bytes(text: str, limit: int) -> str:
    out = ""
    for ch in text:
        if len((out + ch).encode("utf-8")) > limit:
            break
        out += ch
    return out or "f"


def _write_shapefile_zip(gdf: gpd.GeoDataFrame, path: Path) -> Path:
    out = _plain_columns(gdf)
    geometry = out.geometry.name
    # 网格编码 is 12 bytes in UTF-8 and would be cut to 网格编; store the name and code
    # under the short names read_layer looks for first.
    columns = [c for c in out.columns if c != geometry]
    for target, candidates in (("name", NAME_COLUMNS), ("code", CODE_COLUMNS)):
        found = find_column(columns, candidates)
        if found is not None and target not in out.columns:
            out = out.rename(columns={found: target})
            columns = [target if c == found else c for c in columns]
    families = {_family(t) for t in out.geometry.geom_type.dropna().unique()}
    if len(families) > 1:
        msg = f"Shapefile 只能存放一种几何类型，本图层混有 {', '.join(sorted(families))}"
        raise LayerWriteError(msg)
    mapping = _shp_field_names([c for c in out.columns if c != geometry])
    out = out.rename(columns=mapping)
    for col in out.columns:
        # dBASE has no datetime-with-time or bool types GDAL maps losslessly.
        if col != out.geometry.name and (
            pd.api.types.is_datetime64_any_dtype(out[col]) or out[col].dtype == bool
        ):
            out[col] = out[col].astype(str)
    stem = path.stem or "layer"
    with tempfile.TemporaryDirectory(prefix="sanigrid-shp-") as tmp:
        shp = Path(tmp) / f"{stem}.shp"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pyogrio.write_dataframe(
                    out, shp, driver="ESRI Shapefile", layer_options={"ENCODING": "UTF-8"}
                )
        except Exception as exc:
            msg = f"导出 Shapefile 失败: {exc}"
            raise LayerWriteError(msg) from exc
        cpg = shp.with_suffix(".cpg")
        if not cpg.exists():
            cpg.write_text("UTF-8", encoding="ascii")
        if path.exists():
            path.unlink()
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                part = shp.with_suffix(ext)
                if part.exists():
                    zf.write(part, arcname=part.name)
    return path


def _family(geom_type: str) -> str:
    for label, types in TYPE_LABEL.items():
        if geom_type in types:
            return label
    return geom_type

