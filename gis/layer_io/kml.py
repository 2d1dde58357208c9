"""KML both ways with xml.etree: the Placemarks of a KML/KMZ in, a styled KML out.

Reading keeps ExtendedData names verbatim (GDAL's LIBKML driver launders 网格编码 to
underscores); writing gives field GPS apps (奥维, Google Earth) one Placemark per
feature with a name, a description, ExtendedData and a semi-transparent style.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from gis.crs import WGS84
from gis.errors import LayerReadError
from gis.layer_io.schema import CODE_COLUMNS, NAME_COLUMNS, clean_text, find_column, plain_value
from gis.xmltext import xml_text

_KML_NS = "http://www.opengis.net/kml/2.2"

# ------------------------------------------------------------------------------ reading


def kmz_main(path: Path) -> str:
    """Return the name of a KMZ's main KML document (``doc.kml``, else the first).

    Raises
    ------
    LayerReadError
        If the file is not a zip or holds no ``.kml``.
    """
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


def kml_text(path: Path) -> bytes:
    """Return the KML document of a ``.kml`` file or of a ``.kmz`` (its main document)."""
    if path.suffix.lower() == ".kmz":
        member = kmz_main(path)
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    return path.read_bytes()


def parse_kml(data: bytes, *, name: str, folder: str | None = None) -> gpd.GeoDataFrame:
    """Parse Placemarks (Point/LineString/Polygon/MultiGeometry) with xml.etree.

    Parameters
    ----------
    data : bytes
        The KML document.
    name : str
        The file's name, for messages.
    folder : str, optional
        Keep only the Placemarks of the Folder of this name.

    Returns
    -------
    GeoDataFrame
        EPSG:4326. Each row carries ``name``, ``description``, every ExtendedData
        field (Data and SimpleData, names kept verbatim) and ``folder``, the innermost
        Folder's name (dropped when no Placemark is in a Folder).

    Raises
    ------
    LayerReadError
        If the document is not XML or a Placemark's coordinates do not parse.
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


# ------------------------------------------------------------------------------ writing

# KML colours are aabbggrr: a red outline and a 30 %-opaque red fill read well on both
# satellite imagery and street maps in 奥维 and Google Earth.
_KML_STYLES = {
    "poly": {"LineStyle": ("ff0000ff", "2"), "PolyStyle": ("4d0000ff", None)},
    "line": {"LineStyle": ("ffff5500", "3")},
    "point": {"IconStyle": ("ff00aaff", None)},
}


def kml_bytes(gdf: gpd.GeoDataFrame) -> bytes:
    """Render a layer (with a CRS) as a KML document, in WGS-84.

    Each feature is a Placemark named by its ``name`` column (else its ``code``, else
    "要素 n") with every property in its description and ExtendedData.
    """
    ET.register_namespace("", _KML_NS)
    wgs = gdf.to_crs(WGS84) if not gdf.crs.equals(WGS84) else gdf
    geometry = wgs.geometry.name
    props = [c for c in wgs.columns if c != geometry]
    name_col = find_column(props, NAME_COLUMNS)
    code_col = find_column(props, CODE_COLUMNS)

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
        label = clean_text(row[name_col]) if name_col else None
        if label is None and code_col:
            label = clean_text(row[code_col])
        ET.SubElement(pm, _k("name")).text = _xml_text(label) or f"要素 {number}"
        values = {c: _xml_text(clean_text(plain_value(row[c]))) for c in props}
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
