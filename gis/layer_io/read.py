"""Read a county's GIS layer files as the project's layers.

Reading accepts what county offices and survey contractors actually hand over:
GeoJSON, GeoPackage, Shapefile (plain or zipped, possibly inside a sub-folder), KML
and KMZ from 奥维互动地图 / Google Earth. Every layer comes out in EPSG:4326 with a
normalised ``name`` column (and ``code`` for grids, communities and sub-districts),
its geometry types checked against the layer's kind.
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import MultiLineString, MultiPoint, MultiPolygon, Polygon

from gis.crs import WGS84, bd09_to_wgs84, gcj02_to_wgs84
from gis.errors import CRSError, LayerReadError
from gis.layer_io.kml import kml_text, kmz_main, parse_kml
from gis.layer_io.schema import (
    CODE_COLUMNS,
    KIND_LABEL,
    KIND_TYPES,
    KINDS,
    NAME_COLUMNS,
    TYPE_LABEL,
    clean_prop_text,
    clean_text,
    find_column,
)

# Columns GDAL's LIBKML driver adds to every layer; they carry nothing for us.
_KML_NOISE = (
    "id",
    "timestamp",
    "begin",
    "end",
    "altitudeMode",
    "tessellate",
    "extrude",
    "visibility",
    "drawOrder",
    "icon",
    "snippet",
)
_VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".kml", ".kmz")


log = logging.getLogger(__name__)

_UNREADABLE = "不是可识别的 GeoJSON/GeoPackage/Shapefile/KML 文件 (文件可能已损坏或扩展名不对)"


def _unreadable(name: str, exc: Exception, *, what: str = "图层文件") -> LayerReadError:
    """The error for a file GDAL cannot read: Chinese, naming only the file's own name.

    GDAL's own text (English, with the server's path to the upload) goes to the log;
    the person uploading hears what is wrong and what to check.

    Parameters
    ----------
    name : str
        The file's name as uploaded (no folder).
    exc : Exception
        What GDAL/pyogrio raised.
    what : str
        How the message calls the file ("图层文件", "KML 文件").

    Returns
    -------
    LayerReadError
        To be raised ``from exc`` by the caller.
    """
    log.info("cannot read layer file %s: %s", name, exc)
    text = str(exc)
    truncated = re.search(r"at line \d+|unterminated|unexpected end|parse error|json", text, re.I)
    if truncated and "not recognized" not in text:
        detail = "文件内容不完整或格式有误 (可能上传中断或文件已损坏)"
    else:
        detail = _UNREADABLE
    msg = f"无法读取{what} {name}: {detail}"
    return LayerReadError(msg)


def read_layer(
    path: str | Path,
    *,
    kind: str,
    source_crs: str | None = None,
    layer: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a GIS file as one of the project's layers, in EPSG:4326.

    Parameters
    ----------
    path : str or Path
        ``.geojson``/``.json``, ``.gpkg``, ``.shp``, ``.zip`` (a zipped Shapefile,
        possibly in a sub-folder), ``.kml`` or ``.kmz``.
    kind : str
        One of :data:`KINDS`; decides which geometry types are accepted and which
        columns are normalised.
    source_crs : {None, "wgs84", "gcj02", "bd09"}
        The file's coordinates were recorded in GCJ-02 (高德/腾讯) or BD-09 (百度)
        lon/lat although the file says WGS-84; every vertex is converted.
    layer : str, optional
        Layer (GeoPackage table, Shapefile name in a zip) to read when the file holds
        several.

    Returns
    -------
    GeoDataFrame
        EPSG:4326, 2-D geometries (single-part Multi* geometries unwrapped, invalid
        polygons repaired), a ``name`` column (None where missing) and, for
        ``grid``, ``communities`` and ``subdistricts``, a string ``code`` column.

    Raises
    ------
    LayerReadError
        If the file cannot be read, is empty, has no usable CRS, a feature has the
        wrong geometry type (naming the first such row) or a grid has no code column.
    CRSError
        If ``source_crs`` is not one of the supported systems.
    """
    path = Path(path)
    if kind not in KINDS:
        msg = f"未知的图层类型 kind={kind!r} (可选: {', '.join(KINDS)})"
        raise LayerReadError(msg)
    convert = _coordinate_converter(source_crs)
    if not path.is_file():
        msg = f"找不到图层文件: {path.name}"
        raise LayerReadError(msg)
    if path.stat().st_size == 0:
        msg = f"图层文件 {path.name} 是空文件 (0 字节)"
        raise LayerReadError(msg)
    suffix = path.suffix.lower()
    if suffix not in _VECTOR_SUFFIXES:
        msg = f"不支持的图层文件格式 {path.name} (可用: {', '.join(_VECTOR_SUFFIXES)})"
        raise LayerReadError(msg)

    if suffix in (".kml", ".kmz"):
        gdf = _read_kml(path, layer=layer)
    elif suffix == ".zip":
        gdf = _read_ogr(_zip_source(path, layer=layer), name=path.name, layer=None)
    else:
        gdf = _read_ogr(str(path), name=path.name, layer=layer)

    if gdf.empty:
        msg = f"图层文件 {path.name} 没有任何要素"
        raise LayerReadError(msg)
    gdf = _to_wgs84(gdf, name=path.name)
    gdf = gdf.set_geometry(shapely.force_2d(gdf.geometry.values))
    gdf = _check_geometries(gdf, kind=kind, name=path.name)
    if convert is not None:
        gdf = gdf.set_geometry(
            shapely.transform(gdf.geometry.values, convert, include_z=False), crs=WGS84
        )
    gdf = _normalise_columns(gdf, kind=kind, name=path.name)
    return gdf.reset_index(drop=True)


def _coordinate_converter(
    source_crs: str | None,
) -> Callable[[np.ndarray], np.ndarray] | None:
    key = (source_crs or "wgs84").lower().replace("-", "").replace("_", "")
    if key in ("wgs84", "epsg4326", "4326"):
        return None
    funcs = {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84, "bd09ll": bd09_to_wgs84}
    if key not in funcs:
        msg = f"不支持的源坐标系 source_crs={source_crs!r} (可选 wgs84, gcj02, bd09)"
        raise CRSError(msg)
    func = funcs[key]

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = func(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return convert


def _read_ogr(source: str, *, name: str, layer: str | None) -> gpd.GeoDataFrame:
    try:
        layers = pyogrio.list_layers(source)
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise _unreadable(name, exc) from exc
    names = [str(row[0]) for row in layers]
    if layer is not None and layer not in names:
        msg = f"图层文件 {name} 中没有图层 {layer!r} (有: {', '.join(names)})"
        raise LayerReadError(msg)
    if layer is None and len(names) > 1:
        spatial = [str(row[0]) for row in layers if row[1] is not None]
        if len(spatial) != 1:
            msg = f"图层文件 {name} 含有多个图层 ({', '.join(names)})，请指定 layer"
            raise LayerReadError(msg)
        layer = spatial[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return pyogrio.read_dataframe(source, layer=layer)
    except Exception as exc:
        raise _unreadable(name, exc) from exc


def _zip_source(path: Path, *, layer: str | None) -> str:
    """Return a GDAL /vsizip/ path to the one Shapefile (or other layer) in a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                m
                for m in zf.namelist()
                if not m.startswith("__MACOSX/") and not Path(m).name.startswith("._")
            ]
    except zipfile.BadZipFile as exc:
        msg = f"{path.name} 不是有效的 zip 压缩包"
        raise LayerReadError(msg) from exc
    vector = [m for m in members if m.lower().endswith((".shp", ".geojson", ".gpkg", ".kml"))]
    if layer is not None:
        vector = [m for m in vector if Path(m).stem == layer or m == layer]
    if not vector:
        msg = f"压缩包 {path.name} 中没有找到 .shp 图层文件" + (f" {layer!r}" if layer else "")
        raise LayerReadError(msg)
    if len(vector) > 1:
        msg = f"压缩包 {path.name} 含有多个图层 ({', '.join(vector)})，请用 layer 指定"
        raise LayerReadError(msg)
    member = vector[0]
    if member.lower().endswith(".shp"):
        stem = member[:-4]
        lowered = {m.lower() for m in members}
        missing = [ext for ext in (".dbf", ".shx") if (stem + ext).lower() not in lowered]
        if missing:
            msg = f"压缩包 {path.name} 中的 {member} 缺少 {', '.join(missing)} 文件"
            raise LayerReadError(msg)
    return f"/vsizip/{path.resolve()}/{member}"


def _read_kml(path: Path, *, layer: str | None) -> gpd.GeoDataFrame:
    """Read every Placemark of a KML/KMZ (all folders), or just the folder ``layer``.

    KML is parsed with xml.etree first: GDAL's LIBKML driver launders non-ASCII
    ExtendedData names (网格编码 becomes ____________), which would lose the very
    fields Chinese GPS apps write. GDAL is the fallback for what the plain parser
    does not understand (gx:Track, NetworkLink ...).
    """
    data = kml_text(path)
    parsed = parse_kml(data, name=path.name, folder=layer)
    if not parsed.empty and parsed.geometry.notna().any():
        return parsed
    source = str(path)
    if path.suffix.lower() == ".kmz":
        source = f"/vsizip/{path.resolve()}/{kmz_main(path)}"
    try:
        names = [str(row[0]) for row in pyogrio.list_layers(source)]
        if layer is not None:
            names = [n for n in names if n == layer]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            frames = [pyogrio.read_dataframe(source, layer=n) for n in names]
    except Exception as exc:
        if not parsed.empty:
            return parsed  # placemarks without geometry: reported by the row check
        raise _unreadable(path.name, exc, what=" KML 文件") from exc
    frames = [f for f in frames if not f.empty]
    if not frames:
        return parsed
    gdf = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    gdf = gpd.GeoDataFrame(gdf, geometry="geometry", crs=WGS84)
    noise = [c for c in _KML_NOISE if c in gdf.columns]
    return gdf.drop(columns=noise)


def _to_wgs84(gdf: gpd.GeoDataFrame, *, name: str) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        # Only trust a CRS-less file if every coordinate is a plausible degree value.
        valid = gdf.geometry[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        minx, miny, maxx, maxy = valid.total_bounds if len(valid) else (0, 0, 0, 0)
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            msg = (
                f"图层文件 {name} 没有坐标参考系 (缺少 .prj?)，且坐标 "
                f"({minx:.1f}, {miny:.1f})–({maxx:.1f}, {maxy:.1f}) 不像经纬度，无法确定坐标系"
            )
            raise LayerReadError(msg)
        return gdf.set_crs(WGS84)
    if gdf.crs.equals(WGS84):
        return gdf
    try:
        return gdf.to_crs(WGS84)
    except Exception as exc:
        msg = f"图层文件 {name} 的坐标系无法转换到 WGS-84: {exc}"
        raise LayerReadError(msg) from exc


def _geom_label(geom_type: str) -> str:
    for label, types in TYPE_LABEL.items():
        if geom_type in types:
            return f"{geom_type} ({label})"
    return geom_type


def _check_geometries(gdf: gpd.GeoDataFrame, *, kind: str, name: str) -> gpd.GeoDataFrame:
    allowed = KIND_TYPES[kind]
    geoms = gdf.geometry.values
    types = np.asarray(shapely.get_type_id(geoms))
    missing = np.flatnonzero((types < 0) | np.asarray(shapely.is_empty(geoms)))
    if len(missing):
        row = int(missing[0]) + 1
        msg = f"图层文件 {name} 第 {row} 个要素没有几何图形 (空坐标)"
        raise LayerReadError(msg)
    names = np.array(
        [
            "Point",
            "LineString",
            "LinearRing",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ]
    )[types]
    bad = np.flatnonzero(~np.isin(names, allowed))
    if len(bad):
        row = int(bad[0]) + 1
        wanted = "/".join(allowed)
        msg = (
            f"图层文件 {name} 第 {row} 个要素的几何类型是 {_geom_label(names[bad[0]])}，"
            f"{KIND_LABEL[kind]}图层需要 {wanted} (共 {len(bad)} 个要素类型不符)"
        )
        raise LayerReadError(msg)
    out = list(geoms)
    changed = False
    for i, geom in enumerate(out):
        if isinstance(geom, MultiPoint) and kind in ("pois", "addresses"):
            if len(geom.geoms) != 1:
                msg = (
                    f"图层文件 {name} 第 {i + 1} 个要素是含 {len(geom.geoms)} 个点的 "
                    f"MultiPoint，{KIND_LABEL[kind]}图层每个要素只能有一个点"
                )
                raise LayerReadError(msg)
            out[i] = geom.geoms[0]
            changed = True
        elif isinstance(geom, MultiPolygon | MultiLineString) and len(geom.geoms) == 1:
            # GeoPackage and GDAL writers promote single parts to Multi*: undo it so a
            # layer reads back as it was written.
            out[i] = geom.geoms[0]
            changed = True
        if isinstance(out[i], Polygon | MultiPolygon) and not out[i].is_valid:
            geom = out[i]
            # Hand-digitised outlines often self-touch; repair and keep the area part.
            fixed = shapely.make_valid(geom)
            polys = [g for g in getattr(fixed, "geoms", [fixed]) if isinstance(g, Polygon)]
            if not polys:
                msg = f"图层文件 {name} 第 {i + 1} 个要素的面无效且无法修复"
                raise LayerReadError(msg)
            out[i] = polys[0] if len(polys) == 1 else MultiPolygon(polys)
            changed = True
    if changed:
        gdf = gdf.set_geometry(gpd.GeoSeries(out, index=gdf.index, crs=gdf.crs))
    return gdf


def _clean_props(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Clean every text property value and column name (the geometry is left alone)."""
    geometry = gdf.geometry.name
    renames = {c: clean_prop_text(c) or c for c in gdf.columns
               if isinstance(c, str) and c != geometry and clean_prop_text(c) != c}
    for column in gdf.columns:
        dtype = gdf[column].dtype
        if column == geometry or not (
            pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        ):
            continue
        values = gdf[column].tolist()
        cleaned = [clean_prop_text(v) if isinstance(v, str) else v for v in values]
        if cleaned != values:
            gdf[column] = pd.Series(cleaned, index=gdf.index, dtype=dtype)
    if renames and not set(renames.values()) & (set(gdf.columns) - set(renames)):
        gdf = gdf.rename(columns=renames)
    return gdf


def _normalise_columns(gdf: gpd.GeoDataFrame, *, kind: str, name: str) -> gpd.GeoDataFrame:
    gdf = _clean_props(gdf.copy())
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    name_col = find_column(columns, NAME_COLUMNS)
    if name_col is not None and name_col != "name":
        gdf = gdf.drop(columns=["name"], errors="ignore").rename(columns={name_col: "name"})
    if "name" in gdf.columns:
        gdf["name"] = [clean_text(v) for v in gdf["name"]]
    else:
        gdf["name"] = None
    if kind in ("grid", "communities", "subdistricts"):
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        code_col = find_column(columns, CODE_COLUMNS)
        if code_col is None:
            if kind == "grid":
                msg = (
                    f"网格图层 {name} 缺少网格编码字段 (应为 {', '.join(CODE_COLUMNS)} 之一；"
                    f"现有字段: {', '.join(map(str, columns))})"
                )
                raise LayerReadError(msg)
            gdf["code"] = None
        else:
            if code_col != "code":
                gdf = gdf.drop(columns=["code"], errors="ignore").rename(columns={code_col: "code"})
            gdf["code"] = [clean_text(v) for v in gdf["code"]]
            if kind == "grid":
                blank = [i for i, v in enumerate(gdf["code"]) if v is None]
                if blank:
                    msg = f"网格图层 {name} 第 {blank[0] + 1} 个要素的网格编码 (code) 为空"
                    raise LayerReadError(msg)
    geometry = gdf.geometry.name
    ordered = ["name", *(["code"] if "code" in gdf.columns else [])]
    rest = [c for c in gdf.columns if c not in ordered and c != geometry]
    return gdf[[*ordered, *rest, geometry]]

