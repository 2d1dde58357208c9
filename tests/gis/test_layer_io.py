"""Reading and writing layer files: formats, CRS handling, kind checks, KML for GPS apps."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from gis.crs import WGS84, utm_crs_for, wgs84_to_bd09, wgs84_to_gcj02
from gis.errors import CRSError, LayerReadError, LayerWriteError
from gis.layer_io.read import read_layer
from gis.layer_io.write import layer_to_bytes, write_layer

FORMATS = ["geojson", "gpkg", "shp", "kml"]
LON0, LAT0 = 117.2200, 28.3000  # 贵溪 county seat


@pytest.fixture
def grid_gdf() -> gpd.GeoDataFrame:
    cells = [
        box(LON0, LAT0, LON0 + 0.004, LAT0 + 0.003),
        box(LON0 + 0.004, LAT0, LON0 + 0.008, LAT0 + 0.003),
        # a cell with a hole (a lake inside the block) and a second part
        MultiPolygon(
            [
                Polygon(
                    [
                        (LON0, LAT0 + 0.003),
                        (LON0 + 0.004, LAT0 + 0.003),
                        (LON0 + 0.004, LAT0 + 0.006),
                        (LON0, LAT0 + 0.006),
                    ],
                    [
                        [
                            (LON0 + 0.001, LAT0 + 0.004),
                            (LON0 + 0.002, LAT0 + 0.004),
                            (LON0 + 0.002, LAT0 + 0.005),
                        ]
                    ],
                ),
                box(LON0 + 0.005, LAT0 + 0.004, LON0 + 0.006, LAT0 + 0.005),
            ]
        ),
    ]
    return gpd.GeoDataFrame(
        {
            "name": ["东门街道第一网格", "东门街道第二网格", "信江社区“滨江”网格"],
            "code": ["360681001001001", "360681001001002", "060681001001003"],
            "unit": ["城管局", "卫健委", None],
        },
        geometry=cells,
        crs=WGS84,
    )


@pytest.fixture
def roads_gdf() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["建设路", "信州路", None], "highway": ["primary", "secondary", "service"]},
        geometry=[
            LineString([(LON0, LAT0), (LON0 + 0.01, LAT0 + 0.0012345)]),
            LineString([(LON0, LAT0 + 0.002), (LON0 + 0.003, LAT0 + 0.004), (LON0 + 0.007, LAT0)]),
            LineString([(LON0 + 0.001, LAT0 + 0.001), (LON0 + 0.0011, LAT0 + 0.0021)]),
        ],
        crs=WGS84,
    )


@pytest.fixture
def pois_gdf() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["城东农贸市场", "贵溪市人民医院"], "type": ["农贸市场", "医院"]},
        geometry=[Point(LON0 + 0.00123456, LAT0 + 0.00234567), Point(LON0 + 0.005, LAT0 + 0.006)],
        crs=WGS84,
    )


def _same_geometries(a: gpd.GeoSeries, b: gpd.GeoSeries, tol: float = 1e-7) -> bool:
    # Writers may reorder rings (shapefiles store outer rings clockwise): compare normalised.
    left = shapely.normalize(np.asarray(a.values))
    right = shapely.normalize(np.asarray(b.values))
    return bool(np.all(shapely.equals_exact(left, right, tolerance=tol)))


def _names(series: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in series]


@pytest.mark.parametrize("fmt", FORMATS)
def test_grid_round_trip_keeps_geometry_names_and_codes(tmp_path, grid_gdf, fmt):
    written = write_layer(grid_gdf, tmp_path / f"grid.{fmt}", fmt=fmt)
    assert written.exists()
    back = read_layer(written, kind="grid")
    assert back.crs.equals(WGS84)
    assert len(back) == len(grid_gdf)
    assert _same_geometries(back.geometry, grid_gdf.geometry)
    assert _names(back["name"]) == list(grid_gdf["name"])
    # codes stay strings with their leading zero
    assert list(back["code"]) == list(grid_gdf["code"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_roads_and_pois_round_trip(tmp_path, roads_gdf, pois_gdf, fmt):
    roads = read_layer(write_layer(roads_gdf, tmp_path / f"r.{fmt}", fmt=fmt), kind="roads")
    pois = read_layer(write_layer(pois_gdf, tmp_path / f"p.{fmt}", fmt=fmt), kind="pois")
    assert _same_geometries(roads.geometry, roads_gdf.geometry)
    assert _same_geometries(pois.geometry, pois_gdf.geometry)
    assert _names(pois["name"]) == ["城东农贸市场", "贵溪市人民医院"]
    expected_roads = ["建设路", "信州路", None]
    if fmt == "kml":
        # an unnamed feature still needs a label in a GPS app's list
        assert _names(roads["name"])[:2] == expected_roads[:2]
    else:
        assert _names(roads["name"]) == expected_roads


def test_write_geojson_reprojects_to_wgs84(tmp_path, pois_gdf):
    utm = pois_gdf.to_crs(utm_crs_for(LON0, LAT0))
    path = write_layer(utm, tmp_path / "p.geojson", fmt="geojson")
    coords = json.loads(path.read_text(encoding="utf-8"))["features"][0]["geometry"]["coordinates"]
    assert coords[0] == pytest.approx(LON0 + 0.00123456, abs=1e-7)


def test_zipped_shapefile_in_subfolder(tmp_path, grid_gdf):
    folder = tmp_path / "build"
    folder.mkdir()
    pyogrio.write_dataframe(
        grid_gdf, folder / "网格.shp", driver="ESRI Shapefile", layer_options={"ENCODING": "UTF-8"}
    )
    archive = tmp_path / "县城网格.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in folder.iterdir():
            zf.write(part, arcname=f"贵溪/网格数据/{part.name}")
        zf.writestr("贵溪/说明.txt", "坐标系 WGS-84")
    back = read_layer(archive, kind="grid")
    assert list(back["code"]) == list(grid_gdf["code"])
    assert _names(back["name"]) == list(grid_gdf["name"])
    assert _same_geometries(back.geometry, grid_gdf.geometry)


def test_zip_with_two_shapefiles_needs_layer(tmp_path, grid_gdf, roads_gdf):
    folder = tmp_path / "two"
    folder.mkdir()
    pyogrio.write_dataframe(grid_gdf, folder / "grid.shp", driver="ESRI Shapefile")
    pyogrio.write_dataframe(roads_gdf, folder / "roads.shp", driver="ESRI Shapefile")
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in folder.iterdir():
            zf.write(part, arcname=part.name)
    with pytest.raises(LayerReadError, match="grid.shp"):
        read_layer(archive, kind="roads")
    roads = read_layer(archive, kind="roads", layer="roads")
    assert _names(roads["name"])[:2] == ["建设路", "信州路"]


def test_plain_shapefile_in_utm_is_reprojected(tmp_path, roads_gdf):
    utm = roads_gdf.to_crs(utm_crs_for(LON0, LAT0))
    pyogrio.write_dataframe(utm, tmp_path / "roads.shp", driver="ESRI Shapefile")
    back = read_layer(tmp_path / "roads.shp", kind="roads")
    assert back.crs.equals(WGS84)
    assert _same_geometries(back.geometry, roads_gdf.geometry, tol=1e-7)


def test_file_without_crs_in_degrees_is_assumed_wgs84(tmp_path, pois_gdf):
    pyogrio.write_dataframe(pois_gdf, tmp_path / "p.shp", driver="ESRI Shapefile")
    (tmp_path / "p.prj").unlink()
    back = read_layer(tmp_path / "p.shp", kind="pois")
    assert back.crs.equals(WGS84)
    assert _same_geometries(back.geometry, pois_gdf.geometry)


def test_file_without_crs_in_metres_is_refused(tmp_path, pois_gdf):
    utm = pois_gdf.to_crs(utm_crs_for(LON0, LAT0))
    pyogrio.write_dataframe(utm, tmp_path / "metres.shp", driver="ESRI Shapefile")
    (tmp_path / "metres.prj").unlink()
    with pytest.raises(LayerReadError, match="metres.shp"):
        read_layer(tmp_path / "metres.shp", kind="pois")


def _geodesic_m(lon1, lat1, lon2, lat2) -> float:
    from pyproj import Geod

    return Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2]


def test_gcj02_flag_moves_points_back_to_wgs84(tmp_path, pois_gdf):
    glon, glat = wgs84_to_gcj02(pois_gdf.geometry.x.to_numpy(), pois_gdf.geometry.y.to_numpy())
    shifted = pois_gdf.set_geometry(gpd.points_from_xy(glon, glat), crs=WGS84)
    path = write_layer(shifted, tmp_path / "amap.geojson", fmt="geojson")

    raw = read_layer(path, kind="pois")
    fixed = read_layer(path, kind="pois", source_crs="gcj02")
    for before, after, truth in zip(raw.geometry, fixed.geometry, pois_gdf.geometry, strict=True):
        moved = _geodesic_m(before.x, before.y, after.x, after.y)
        assert 300 < moved < 700  # the GCJ-02 offset in eastern China
        assert _geodesic_m(after.x, after.y, truth.x, truth.y) < 0.05


def test_bd09_flag_converts_lines_vertex_by_vertex(tmp_path, roads_gdf):
    def to_bd(geom):
        xs, ys = np.asarray(geom.coords).T
        return LineString(np.column_stack(wgs84_to_bd09(xs, ys)))

    baidu = roads_gdf.set_geometry([to_bd(g) for g in roads_gdf.geometry], crs=WGS84)
    path = write_layer(baidu, tmp_path / "baidu.gpkg", fmt="gpkg")
    fixed = read_layer(path, kind="roads", source_crs="bd09")
    # the published BD-09 inverse is approximate (~0.1 m), unlike the GCJ-02 iteration
    assert _same_geometries(fixed.geometry, roads_gdf.geometry, tol=1e-5)
    assert not _same_geometries(read_layer(path, kind="roads").geometry, roads_gdf.geometry, 1e-4)


def test_unknown_source_crs_is_refused(tmp_path, pois_gdf):
    path = write_layer(pois_gdf, tmp_path / "p.geojson", fmt="geojson")
    with pytest.raises(CRSError, match="sogou"):
        read_layer(path, kind="pois", source_crs="sogou")


def test_wrong_geometry_type_names_row_and_type(tmp_path, pois_gdf, roads_gdf):
    mixed = pd.concat([pois_gdf, roads_gdf.iloc[:1]], ignore_index=True)
    mixed = gpd.GeoDataFrame(mixed, geometry="geometry", crs=WGS84)
    path = tmp_path / "mixed.geojson"
    mixed.to_file(path, driver="GeoJSON")
    with pytest.raises(LayerReadError) as info:
        read_layer(path, kind="pois")
    message = str(info.value)
    assert "第 3 个" in message
    assert "LineString" in message
    assert "mixed.geojson" in message


def test_points_are_not_a_boundary(tmp_path, pois_gdf):
    path = write_layer(pois_gdf, tmp_path / "p.geojson", fmt="geojson")
    with pytest.raises(LayerReadError, match="第 1 个.*Point"):
        read_layer(path, kind="boundary")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    with pytest.raises(LayerReadError, match="empty.geojson"):
        read_layer(path, kind="roads")
    for name in ("zero.geojson", "zero.kml", "zero.zip"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(LayerReadError, match=name):
            read_layer(tmp_path / name, kind="roads")
    placemark_free = tmp_path / "blank.kml"
    placemark_free.write_text(
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>', encoding="utf-8"
    )
    with pytest.raises(LayerReadError, match="blank.kml"):
        read_layer(placemark_free, kind="roads")


def test_feature_without_geometry_names_row(tmp_path):
    path = tmp_path / "holes.geojson"
    features = [
        {
            "type": "Feature",
            "properties": {"name": "甲"},
            "geometry": {"type": "Point", "coordinates": [LON0, LAT0]},
        },
        {"type": "Feature", "properties": {"name": "乙"}, "geometry": None},
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    with pytest.raises(LayerReadError, match="第 2 个"):
        read_layer(path, kind="pois")


def test_missing_file_and_unknown_kind(tmp_path, pois_gdf):
    with pytest.raises(LayerReadError, match="nope.geojson"):
        read_layer(tmp_path / "nope.geojson", kind="pois")
    path = write_layer(pois_gdf, tmp_path / "p.geojson", fmt="geojson")
    with pytest.raises(LayerReadError, match="kind"):
        read_layer(path, kind="parcels")


def test_name_and_code_columns_are_detected(tmp_path, grid_gdf):
    renamed = grid_gdf.rename(columns={"name": "网格名称", "code": "WGBM"})
    path = write_layer(renamed, tmp_path / "g.gpkg", fmt="gpkg")
    back = read_layer(path, kind="grid")
    assert list(back["code"]) == list(grid_gdf["code"])
    assert _names(back["name"]) == list(grid_gdf["name"])

    roads = gpd.GeoDataFrame(
        {"路名": ["雄石路"]}, geometry=[LineString([(LON0, LAT0), (LON0, LAT0 + 0.01)])], crs=WGS84
    )
    back = read_layer(write_layer(roads, tmp_path / "r.geojson", fmt="geojson"), kind="roads")
    assert list(back["name"]) == ["雄石路"]


def test_numeric_codes_become_digit_strings(tmp_path, grid_gdf):
    numeric = grid_gdf.iloc[:2].assign(code=[360681001001001, 360681001001002])
    path = write_layer(numeric, tmp_path / "num.gpkg", fmt="gpkg")
    assert list(read_layer(path, kind="grid")["code"]) == ["360681001001001", "360681001001002"]

    floats = grid_gdf.iloc[:2].assign(code=[360681001001001.0, 360681001001002.0])
    path = write_layer(floats, tmp_path / "float.geojson", fmt="geojson")
    assert list(read_layer(path, kind="grid")["code"]) == ["360681001001001", "360681001001002"]


def test_grid_without_code_is_refused(tmp_path, grid_gdf):
    path = write_layer(grid_gdf.drop(columns=["code"]), tmp_path / "g.geojson", fmt="geojson")
    with pytest.raises(LayerReadError, match="编码"):
        read_layer(path, kind="grid")


def test_communities_without_code_get_empty_code(tmp_path, grid_gdf):
    path = write_layer(grid_gdf.drop(columns=["code"]), tmp_path / "c.geojson", fmt="geojson")
    back = read_layer(path, kind="communities")
    assert back["code"].isna().all()


def test_shapefile_zip_contents_and_field_names(tmp_path, grid_gdf):
    wide = grid_gdf.assign(**{"负责单位名称": ["甲", "乙", "丙"], "responsible_unit_phone": "0701"})
    written = write_layer(wide, tmp_path / "out.shp", fmt="shp")
    assert written.suffix == ".zip"
    with zipfile.ZipFile(written) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(f"out{ext}" for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"))
        assert zf.read("out.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
    info = pyogrio.read_info(f"/vsizip/{written}/out.shp")
    for field in info["fields"]:
        assert len(field.encode("utf-8")) <= 10
    back = read_layer(written, kind="grid")
    assert "甲" in set(back.drop(columns="geometry").astype(str).to_numpy().ravel())


def test_kml_is_valid_xml_with_names_styles_and_extended_data(tmp_path, grid_gdf):
    path = write_layer(grid_gdf, tmp_path / "grid.kml", fmt="kml")
    root = ET.parse(path).getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    placemarks = root.findall(".//k:Placemark", ns)
    assert [p.findtext("k:name", namespaces=ns) for p in placemarks] == list(grid_gdf["name"])
    for placemark, code in zip(placemarks, grid_gdf["code"], strict=True):
        data = {
            d.get("name"): d.findtext("k:value", namespaces=ns)
            for d in placemark.findall(".//k:Data", ns)
        }
        assert data["code"] == code
        assert placemark.findtext("k:description", namespaces=ns)
    fill = root.find(".//k:PolyStyle/k:color", ns).text
    assert int(fill[:2], 16) < 255  # aabbggrr: a semi-transparent fill

    # GDAL (what QGIS and the OAPIF checks use) reads the same names and shapes
    gdal = pyogrio.read_dataframe(path)
    assert list(gdal["Name"]) == list(grid_gdf["name"])
    assert _same_geometries(gdal.geometry.force_2d(), grid_gdf.geometry)


def test_kml_labels_unnamed_cells_by_code(tmp_path, grid_gdf):
    path = write_layer(grid_gdf.drop(columns=["name"]), tmp_path / "codes.kml", fmt="kml")
    gdal = pyogrio.read_dataframe(path)
    assert list(gdal["Name"]) == list(grid_gdf["code"])


def test_kmz_and_hand_written_kml_from_a_gps_app(tmp_path):
    kml = f"""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>奥维导出</name>
<Folder><name>公厕</name>
  <Placemark><name>城东公厕</name>
    <ExtendedData><SchemaData schemaUrl="#s"><SimpleData name="编号">GC-01</SimpleData>
    </SchemaData></ExtendedData>
    <Point><coordinates>{LON0},{LAT0},12.5</coordinates></Point></Placemark>
</Folder>
<Folder><name>市场</name>
  <Placemark><name>城西农贸市场</name>
    <Point><coordinates>{LON0 + 0.01},{LAT0 + 0.002}</coordinates></Point></Placemark>
</Folder></Document></kml>"""
    plain = tmp_path / "ovital.kml"
    plain.write_text(kml, encoding="utf-8")
    kmz = tmp_path / "ovital.kmz"
    with zipfile.ZipFile(kmz, "w") as zf:
        zf.writestr("doc.kml", kml)
    for path in (plain, kmz):
        back = read_layer(path, kind="pois")
        assert list(back["name"]) == ["城东公厕", "城西农贸市场"]
        assert back.geometry.iloc[0].equals_exact(Point(LON0, LAT0), 1e-9)
        assert not back.geometry.iloc[0].has_z
        assert back["编号"].iloc[0] == "GC-01"
    only_markets = read_layer(plain, kind="pois", layer="市场")
    assert list(only_markets["name"]) == ["城西农贸市场"]


def test_invalid_polygon_is_repaired(tmp_path):
    bowtie = Polygon(
        [(LON0, LAT0), (LON0 + 0.01, LAT0 + 0.01), (LON0 + 0.01, LAT0), (LON0, LAT0 + 0.01)]
    )
    gdf = gpd.GeoDataFrame({"name": ["蝴蝶"], "code": ["1"]}, geometry=[bowtie], crs=WGS84)
    back = read_layer(write_layer(gdf, tmp_path / "b.geojson", fmt="geojson"), kind="grid")
    assert back.geometry.iloc[0].is_valid
    # make_valid keeps both triangles of the bow-tie: half of the 0.01° square
    assert back.geometry.iloc[0].area == pytest.approx(0.01 * 0.01 / 2, rel=1e-6)


@pytest.mark.parametrize(
    ("fmt", "mime", "suffix"),
    [
        ("geojson", "application/geo+json", ".geojson"),
        ("gpkg", "application/geopackage+sqlite3", ".gpkg"),
        ("shp", "application/zip", ".zip"),
        ("kml", "application/vnd.google-earth.kml+xml", ".kml"),
    ],
)
def test_layer_to_bytes(tmp_path, grid_gdf, fmt, mime, suffix):
    data, got_mime, got_suffix = layer_to_bytes(grid_gdf, fmt=fmt)
    assert (got_mime, got_suffix) == (mime, suffix)
    path = tmp_path / f"download{suffix}"
    path.write_bytes(data)
    back = read_layer(path, kind="grid")
    assert list(back["code"]) == list(grid_gdf["code"])


def test_write_refuses_unknown_format_and_missing_crs(tmp_path, grid_gdf):
    with pytest.raises(LayerWriteError, match="dxf"):
        write_layer(grid_gdf, tmp_path / "g.dxf", fmt="dxf")
    with pytest.raises(LayerWriteError, match="CRS"):
        write_layer(
            grid_gdf.set_crs(None, allow_override=True), tmp_path / "g.geojson", fmt="geojson"
        )


def test_mixed_geometry_cannot_go_to_shapefile(tmp_path, grid_gdf, pois_gdf):
    mixed = gpd.GeoDataFrame(pd.concat([grid_gdf, pois_gdf]), geometry="geometry", crs=WGS84)
    with pytest.raises(LayerWriteError, match="Shapefile"):
        write_layer(mixed, tmp_path / "m.shp", fmt="shp")


def test_overwriting_a_geopackage_replaces_it(tmp_path, grid_gdf):
    path = tmp_path / "g.gpkg"
    write_layer(grid_gdf, path, fmt="gpkg")
    write_layer(grid_gdf.iloc[:1], path, fmt="gpkg")
    assert len(read_layer(path, kind="grid")) == 1


def test_read_accepts_str_paths(tmp_path: Path, pois_gdf):
    path = write_layer(pois_gdf, str(tmp_path / "p.geojson"), fmt="geojson")
    assert isinstance(path, Path)
    assert len(read_layer(str(path), kind="addresses")) == 2


# ------------------------------------------------------------------ a county's own address layers


def _county_roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["人民路"]}, geometry=[LineString([(117.20, 28.305), (117.21, 28.305)])], crs=WGS84
    )


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_county_door_plate_layer_reaches_the_geocoder(tmp_path: Path, fmt: str) -> None:
    from gis.geocode.geocoder import Geocoder

    plates = gpd.GeoDataFrame(
        {"JLX": ["人民路", "人民路"], "MPH": ["21号", "23号"]},
        geometry=[Point(117.2018, 28.3051), Point(117.2020, 28.3051)],
        crs=WGS84,
    )
    path = write_layer(plates, tmp_path / f"门牌.{'zip' if fmt == 'shp' else fmt}", fmt=fmt)
    layer = read_layer(path, kind="addresses")
    assert list(layer["JLX"]) == ["人民路", "人民路"]
    geocoder = Geocoder.from_layers(roads=_county_roads(), addresses=layer)
    result = geocoder.geocode_address("人民路23号门前")
    assert result.method == "house_number" and result.confidence == pytest.approx(0.95)
    assert (result.lon, result.lat) == pytest.approx((117.2020, 28.3051), abs=1e-6)


def test_county_building_layer_with_address_and_names(tmp_path: Path) -> None:
    from gis.geocode.geocoder import Geocoder

    buildings = gpd.GeoDataFrame(
        {"名称": ["财富大厦", None], "地址": [None, "人民路8号"], "别名": ["财富中心", None]},
        geometry=[box(117.203, 28.306, 117.204, 28.307), box(117.205, 28.3052, 117.2052, 28.3054)],
        crs=WGS84,
    )
    path = write_layer(buildings, tmp_path / "建筑.gpkg", fmt="gpkg")
    layer = read_layer(path, kind="buildings")
    assert list(layer["name"].fillna("")) == ["财富大厦", ""]
    geocoder = Geocoder.from_layers(roads=_county_roads(), buildings=layer)
    plate = geocoder.geocode_address("人民路8号")
    assert plate.method == "house_number" and plate.placed
    assert box(117.205, 28.3052, 117.2052, 28.3054).contains(Point(plate.lon, plate.lat))
    alias = geocoder.geocode_address("财富中心后面")
    assert alias.method == "alias" and alias.placed


# ---- #13: unreadable files and control characters -------------------------------------


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        # A Word document renamed to .geojson (a docx is a zip).
        (b"PK\x03\x04\x14\x00\x06\x00word/document.xml garbage", "不是可识别的"),
        # An upload cut off half-way.
        (b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
         b'{"name":"a"},"geometry":{"type":"Point","coordinates":[117.2,', "不完整"),
    ],
)
def test_an_unreadable_file_is_named_in_chinese_without_the_server_path(
    tmp_path, content, detail
):
    path = tmp_path / "d.geojson"
    path.write_bytes(content)
    with pytest.raises(LayerReadError) as info:
        read_layer(path, kind="pois")
    message = str(info.value)
    assert message.startswith("无法读取图层文件 d.geojson: ")
    assert detail in message
    assert str(tmp_path) not in message and "/tmp" not in message
    assert "driver" not in message and "recognized" not in message


def test_a_missing_file_is_named_without_its_folder(tmp_path):
    with pytest.raises(LayerReadError) as info:
        read_layer(tmp_path / "gone.geojson", kind="pois")
    assert "gone.geojson" in str(info.value) and str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("fmt", ["geojson", "kml"])
def test_control_characters_in_names_and_props_are_dropped_on_read(tmp_path, fmt):
    gdf = gpd.GeoDataFrame(
        {"name": ["城东\x07农贸\u200b市场", "医院\x1b"], "type": ["农贸\x01市场", None],
         "floors": [3, 5]},
        geometry=[Point(LON0, LAT0), Point(LON0 + 0.001, LAT0)],
        crs=WGS84,
    )
    path = tmp_path / f"pois.{fmt}"
    if fmt == "geojson":
        # Written by hand: GDAL's writer would keep the characters exactly as here.
        features = [
            {"type": "Feature", "properties": {k: row[k] for k in ("name", "type", "floors")},
             "geometry": {"type": "Point", "coordinates": [row.geometry.x, row.geometry.y]}}
            for _, row in gdf.iterrows()
        ]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        assert "\\u0007" in path.read_text()
    else:
        # A KML cannot carry \x07 at all (XML 1.0); the invisible mark still travels.
        path.write_text(
            '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
            "<Document><Placemark><name>城东农贸\u200b市场</name><ExtendedData>"
            '<Data name="type"><value>农贸\u2060市场</value></Data></ExtendedData>'
            f"<Point><coordinates>{LON0},{LAT0}</coordinates></Point></Placemark>"
            "</Document></kml>",
            encoding="utf-8",
        )
    out = read_layer(path, kind="pois")
    assert out["name"].iloc[0] == "城东农贸市场"
    assert out["type"].iloc[0] == "农贸市场"
    if fmt == "geojson":
        assert out["name"].iloc[1] == "医院"
        assert int(out["floors"].iloc[1]) == 5
        assert "\\u0007" not in layer_to_bytes(out, fmt="geojson")[0].decode()
