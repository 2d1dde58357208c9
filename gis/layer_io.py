"""Read a county's GIS layer files and write layers back out for download.

Reading accepts what county offices and survey contractors actually hand over:
GeoJSON, GeoPackage, Shapefile (plain or zipped, possibly inside a sub-folder), KML
and KMZ from 奥维互动地图 / Google Earth. Every layer comes out in EPSG:4326 with a
normalised ``name`` column (and ``code`` for grids, communities and sub-districts),
its geometry types checked against the layer's kind.

Writing produces GeoJSON, GeoPackage, a zipped Shapefile (UTF-8, field names cut to
10 bytes) and a KML that field GPS apps load: one Placemark per feature with a name,
a description, ExtendedData and a semi-transparent polygon style.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from gis.crs import WGS84, bd09_to_wgs84, gcj02_to_wgs84
from gis.errors import CRSError, LayerReadError, LayerWriteError
from gis.xmltext import xml_text

KINDS = (
    "boundary",
    "roads",
    "pois",
    "buildings",
    "communities",
    "subdistricts",
    "grid",
    "water",
    "addresses",
)
FORMATS = ("geojson", "gpkg", "shp", "kml")

_POLYGONAL = ("Polygon", "MultiPolygon")
_LINEAR = ("LineString", "MultiLineString")
_PUNCTUAL = ("Point", "MultiPoint")
# Geometry types each kind accepts.
_KIND_TYPES: dict[str, tuple[str, ...]] = {
    "boundary": _POLYGONAL,
    "communities": _POLYGONAL,
    "subdistricts": _POLYGONAL,
    "grid": _POLYGONAL,
    "buildings": _POLYGONAL,
    "roads": _LINEAR,
    "pois": _PUNCTUAL + _POLYGONAL,  # areas (markets, schools) become a point with their outline
    "addresses": _PUNCTUAL,
    "water": _POLYGONAL + _LINEAR,
}
_KIND_LABEL = {
    "boundary": "边界",
    "communities": "社区",
    "subdistricts": "街道/乡镇",
    "grid": "网格",
    "buildings": "建筑",
    "roads": "道路",
    "pois": "兴趣点",
    "addresses": "地址点",
    "water": "水系",
}
_TYPE_LABEL = {"面": _POLYGONAL, "线": _LINEAR, "点": _PUNCTUAL}

_NAME_COLUMNS = ("name", "NAME", "Name", "名称", "mc", "MC", "路名", "网格名称", "地名", "名字")
_CODE_COLUMNS = ("code", "CODE", "Code", "网格编码", "编码", "代码", "wgbm", "WGBM", "bm", "BM")
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

_MIME = {
    "geojson": ("application/geo+json", ".geojson"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "shp": ("application/zip", ".zip"),
    "kml": ("application/vnd.google-earth.kml+xml", ".kml"),
}
_KML_NS = "http://www.opengis.net/kml/2.2"

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


# ------------------------------------------------------------------------------ reading


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
    data = _kml_text(path)
    parsed = _parse_kml_xml(data, name=path.name, folder=layer)
    if not parsed.empty and parsed.geometry.notna().any():
        return parsed
    source = str(path)
    if path.suffix.lower() == ".kmz":
        source = f"/vsizip/{path.resolve()}/{_kmz_main(path)}"
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


def _kmz_main(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            kmls = [m for m in zf.namelist() if m.lower().endswith(".kml")]
    except zipfile.BadZipFile as exc:
        msg = f"{path.name} 不是有效的 KMZ (zip) 文件"
        raise LayerReadError(msg) from exc
    if not kmls:
        msg = f"KMZ 文件 {path.name} 中没有 .kml 文档"
        raise LayerReadError(msg)
    # doc.kml is the main document by convention; others are usually overlays.
    return "doc.kml" if "doc.kml" in kmls else kmls[0]


def _kml_text(path: Path) -> bytes:
    if path.suffix.lower() == ".kmz":
        member = _kmz_main(path)
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    return path.read_bytes()


def _parse_kml_xml(data: bytes, *, name: str, folder: str | None = None) -> gpd.GeoDataFrame:
    """Parse Placemarks (Point/LineString/Polygon/MultiGeometry) with xml.etree.

    Each row carries ``name``, ``description``, every ExtendedData field (Data and
    SimpleData, names kept verbatim) and ``folder``, the innermost Folder's name.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        msg = f"KML 文件 {name} 不是有效的 XML: {exc}"
        raise LayerReadError(msg) from exc
    rows: list[dict[str, object]] = []

    def walk(element: ET.Element, folder_name: str | None) -> None:
        for child in element:
            tag = _local(child.tag)
            if tag in ("Folder", "Document"):
                label = next(
                    ((c.text or "").strip() for c in child if _local(c.tag) == "name"), None
                )
                walk(child, label if tag == "Folder" else folder_name)
            elif tag == "Placemark":
                rows.append(_placemark_row(child, folder_name, name=name))

    walk(root, None)
    if folder is not None:
        rows = [r for r in rows if r["folder"] == folder]
    if not rows:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    if gdf["folder"].isna().all():
        gdf = gdf.drop(columns=["folder"])
    return gdf


def _placemark_row(placemark: ET.Element, folder: str | None, *, name: str) -> dict:
    row: dict[str, object] = {"name": None, "description": None}
    geoms: list[BaseGeometry] = []
    for child in placemark:
        tag = _local(child.tag)
        if tag in ("name", "description"):
            row[tag] = (child.text or "").strip() or None
        elif tag == "ExtendedData":
            for data_el in child.iter():
                field = data_el.get("name")
                if not field or field in ("geometry", "folder"):
                    continue
                if _local(data_el.tag) == "Data":
                    value = next((v for v in data_el if _local(v.tag) == "value"), None)
                    row.setdefault(field, value.text if value is not None else None)
                elif _local(data_el.tag) == "SimpleData":
                    row.setdefault(field, data_el.text)
        else:
            try:
                geoms.extend(_kml_geometries(child))
            except (ValueError, IndexError, StopIteration) as exc:
                label = row.get("name") or "无名"
                msg = f"KML 文件 {name} 中要素 {label!r} 的坐标无法解析: {exc}"
                raise LayerReadError(msg) from exc
    if not geoms:
        row["geometry"] = None
    elif len(geoms) == 1:
        row["geometry"] = geoms[0]
    elif all(isinstance(g, Polygon) for g in geoms):
        row["geometry"] = MultiPolygon(geoms)
    elif all(isinstance(g, LineString) for g in geoms):
        row["geometry"] = MultiLineString(geoms)
    elif all(isinstance(g, Point) for g in geoms):
        row["geometry"] = MultiPoint(geoms)
    else:
        row["geometry"] = shapely.GeometryCollection(geoms)
    row["folder"] = folder
    return row


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kml_coords(element: ET.Element) -> list[tuple[float, float]]:
    text = next((c.text for c in element.iter() if _local(c.tag) == "coordinates"), "") or ""
    coords = []
    for token in text.split():
        parts = token.split(",")
        coords.append((float(parts[0]), float(parts[1])))
    return coords


def _kml_geometries(element: ET.Element) -> list[BaseGeometry]:
    tag = _local(element.tag)
    if tag == "Point":
        return [Point(_kml_coords(element)[0])]
    if tag == "LineString":
        return [LineString(_kml_coords(element))]
    if tag == "Polygon":
        outer = next(e for e in element if _local(e.tag) == "outerBoundaryIs")
        inner = [e for e in element if _local(e.tag) == "innerBoundaryIs"]
        return [Polygon(_kml_coords(outer), [_kml_coords(e) for e in inner])]
    if tag == "MultiGeometry":
        found: list[BaseGeometry] = []
        for child in element:
            found.extend(_kml_geometries(child))
        return found
    return []


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
    for label, types in _TYPE_LABEL.items():
        if geom_type in types:
            return f"{geom_type} ({label})"
    return geom_type


def _check_geometries(gdf: gpd.GeoDataFrame, *, kind: str, name: str) -> gpd.GeoDataFrame:
    allowed = _KIND_TYPES[kind]
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
            f"{_KIND_LABEL[kind]}图层需要 {wanted} (共 {len(bad)} 个要素类型不符)"
        )
        raise LayerReadError(msg)
    out = list(geoms)
    changed = False
    for i, geom in enumerate(out):
        if isinstance(geom, MultiPoint) and kind in ("pois", "addresses"):
            if len(geom.geoms) != 1:
                msg = (
                    f"图层文件 {name} 第 {i + 1} 个要素是含 {len(geom.geoms)} 个点的 "
                    f"MultiPoint，{_KIND_LABEL[kind]}图层每个要素只能有一个点"
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


def _find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    for cand in candidates:
        if cand in columns:
            return cand
    lowered = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lowered:
            return lowered[cand.lower()]
    return None


# C0/C1 controls (tab and newline kept), lone surrogates, non-characters, and the
# zero-width/direction marks that make two equal names differ: the same set
# app.services.core.text.clean_text strips (gis/ cannot import app).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def clean_prop_text(value: str) -> str:
    """Return a feature's text without control or invisible characters, trimmed.

    Parameters
    ----------
    value : str
        A name or property value as the file carries it.

    Returns
    -------
    str
        The text with carriage returns folded into newlines and the characters above
        removed (a ``\\x07`` pasted into a name never reaches the database or an export).
    """
    text = _INVISIBLE.sub("", _CONTROL.sub("", value))
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


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


def _clean_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        # A numeric code column: 3.60681001001001e14 must become "360681001001001".
        if value.is_integer():
            return str(int(value))
    if isinstance(value, np.floating):
        return _clean_text(float(value))
    if value is pd.NA or value is pd.NaT:
        return None
    text = clean_prop_text(str(value))
    return text or None


def _normalise_columns(gdf: gpd.GeoDataFrame, *, kind: str, name: str) -> gpd.GeoDataFrame:
    gdf = _clean_props(gdf.copy())
    columns = [c for c in gdf.columns if c != gdf.geometry.name]
    name_col = _find_column(columns, _NAME_COLUMNS)
    if name_col is not None and name_col != "name":
        gdf = gdf.drop(columns=["name"], errors="ignore").rename(columns={name_col: "name"})
    if "name" in gdf.columns:
        gdf["name"] = [_clean_text(v) for v in gdf["name"]]
    else:
        gdf["name"] = None
    if kind in ("grid", "communities", "subdistricts"):
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        code_col = _find_column(columns, _CODE_COLUMNS)
        if code_col is None:
            if kind == "grid":
                msg = (
                    f"网格图层 {name} 缺少网格编码字段 (应为 {', '.join(_CODE_COLUMNS)} 之一；"
                    f"现有字段: {', '.join(map(str, columns))})"
                )
                raise LayerReadError(msg)
            gdf["code"] = None
        else:
            if code_col != "code":
                gdf = gdf.drop(columns=["code"], errors="ignore").rename(columns={code_col: "code"})
            gdf["code"] = [_clean_text(v) for v in gdf["code"]]
            if kind == "grid":
                blank = [i for i, v in enumerate(gdf["code"]) if v is None]
                if blank:
                    msg = f"网格图层 {name} 第 {blank[0] + 1} 个要素的网格编码 (code) 为空"
                    raise LayerReadError(msg)
    geometry = gdf.geometry.name
    ordered = ["name", *(["code"] if "code" in gdf.columns else [])]
    rest = [c for c in gdf.columns if c not in ordered and c != geometry]
    return gdf[[*ordered, *rest, geometry]]


# ------------------------------------------------------------------------------ writing


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
        path.write_bytes(_kml_bytes(gdf))
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
        return _kml_bytes(gdf), mime, suffix
    with tempfile.TemporaryDirectory(prefix="sanigrid-export-") as tmp:
        written = write_layer(gdf, Path(tmp) / f"layer{suffix}", fmt=fmt)
        return written.read_bytes(), mime, suffix


def _plain_value(value: object) -> object:
    if isinstance(value, list | tuple | dict | set):
        return str(value)
    return value


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
                out[col] = [None if _is_missing(v) else str(_plain_value(v)) for v in series]
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
    for target, candidates in (("name", _NAME_COLUMNS), ("code", _CODE_COLUMNS)):
        found = _find_column(columns, candidates)
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
    for label, types in _TYPE_LABEL.items():
        if geom_type in types:
            return label
    return geom_type


# ---------------------------------------------------------------------------------- KML

# KML colours are aabbggrr: a red outline and a 30 %-opaque red fill read well on both
# satellite imagery and street maps in 奥维 and Google Earth.
_KML_STYLES = {
    "poly": {"LineStyle": ("ff0000ff", "2"), "PolyStyle": ("4d0000ff", None)},
    "line": {"LineStyle": ("ffff5500", "3")},
    "point": {"IconStyle": ("ff00aaff", None)},
}


def _kml_bytes(gdf: gpd.GeoDataFrame) -> bytes:
    ET.register_namespace("", _KML_NS)
    wgs = gdf.to_crs(WGS84) if not gdf.crs.equals(WGS84) else gdf
    geometry = wgs.geometry.name
    props = [c for c in wgs.columns if c != geometry]
    name_col = _find_column(props, _NAME_COLUMNS)
    code_col = _find_column(props, _CODE_COLUMNS)

    kml = ET.Element(f"{{{_KML_NS}}}kml")
    doc = ET.SubElement(kml, _k("Document"))
    ET.SubElement(doc, _k("name")).text = "SaniGrid 图层"
    for style_id, parts in _KML_STYLES.items():
        style = ET.SubElement(doc, _k("Style"), id=style_id)
        for part, (color, width) in parts.items():
            el = ET.SubElement(style, _k(part))
            ET.SubElement(el, _k("color")).text = color
            if width:
                ET.SubElement(el, _k("width")).text = width
            if part == "PolyStyle":
                ET.SubElement(el, _k("fill")).text = "1"
                ET.SubElement(el, _k("outline")).text = "1"
    folder = ET.SubElement(doc, _k("Folder"))
    ET.SubElement(folder, _k("name")).text = "图层"

    for number, (_, row) in enumerate(wgs.iterrows(), start=1):
        geom = row[geometry]
        if geom is None or geom.is_empty:
            continue
        pm = ET.SubElement(folder, _k("Placemark"))
        # Field apps list placemarks by <name>: the cell's name, else its code.
        label = _clean_text(row[name_col]) if name_col else None
        if label is None and code_col:
            label = _clean_text(row[code_col])
        ET.SubElement(pm, _k("name")).text = _xml_text(label) or f"要素 {number}"
        values = {c: _xml_text(_clean_text(_plain_value(row[c]))) for c in props}
        description = values.get("description") or "\n".join(
            f"{c}: {v}" for c, v in values.items() if v is not None and c != "description"
        )
        ET.SubElement(pm, _k("description")).text = description
        ET.SubElement(pm, _k("styleUrl")).text = "#" + _style_for(geom)
        extended = ET.SubElement(pm, _k("ExtendedData"))
        for col, value in values.items():
            # <name>/<description> already carry these; a Data of the same name would
            # shadow them in GDAL's LIBKML reader.
            if str(col).lower() in ("name", "description"):
                continue
            data = ET.SubElement(extended, _k("Data"), name=str(col))
            ET.SubElement(data, _k("value")).text = "" if value is None else value
        pm.append(_kml_geometry(geom))
    ET.indent(kml)
    return ET.tostring(kml, encoding="utf-8", xml_declaration=True)


def _k(tag: str) -> str:
    return f"{{{_KML_NS}}}{tag}"


def _style_for(geom: BaseGeometry) -> str:
    if isinstance(geom, Polygon | MultiPolygon):
        return "poly"
    if isinstance(geom, LineString | MultiLineString):
        return "line"
    return "point"


def _coord_text(coords) -> str:
    return " ".join(f"{x:.8f},{y:.8f}" for x, y, *_ in coords)


def _kml_geometry(geom: BaseGeometry) -> ET.Element:
    if isinstance(geom, Point):
        el = ET.Element(_k("Point"))
        ET.SubElement(el, _k("coordinates")).text = _coord_text(geom.coords)
        return el
    if isinstance(geom, LineString):
        el = ET.Element(_k("LineString"))
        ET.SubElement(el, _k("tessellate")).text = "1"
        ET.SubElement(el, _k("coordinates")).text = _coord_text(geom.coords)
        return el
    if isinstance(geom, Polygon):
        el = ET.Element(_k("Polygon"))
        ET.SubElement(el, _k("tessellate")).text = "1"
        rings = [("outerBoundaryIs", geom.exterior)]
        rings += [("innerBoundaryIs", ring) for ring in geom.interiors]
        for tag, ring in rings:
            boundary = ET.SubElement(el, _k(tag))
            linear = ET.SubElement(boundary, _k("LinearRing"))
            ET.SubElement(linear, _k("coordinates")).text = _coord_text(ring.coords)
        return el
    el = ET.Element(_k("MultiGeometry"))
    for part in getattr(geom, "geoms", []):
        el.append(_kml_geometry(part))
    return el


def _xml_text(text: str | None) -> str | None:
    # XML 1.0 forbids most control characters; spreadsheets paste them in names.
    return xml_text(text)
