"""Grid administration: layer import, make/check/activate, upload refusal, assignment, exports."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import geopandas as gpd
import pytest
from openpyxl import Workbook
from shapely.geometry import LineString, Point, box
from sqlalchemy import func, select

from app.models import AuditLog, Cell, Feature, GridLayer, Issue, Layer
from app.services.grids.layers import store_layer
from gis.layer_io.read import read_layer
from tests.factories import BASE_LAT, BASE_LON, SHARED_OSM, STEP, east_point, west_point

# A small hand-built town: a ~800 m × 900 m boundary crossed by named roads.
TOWN_BOX = (BASE_LON - 0.002, BASE_LAT - 0.006, BASE_LON + 0.006, BASE_LAT + 0.002)


def store_small_town(session) -> None:
    """Store a boundary polygon and a few crossing named roads as the active layers."""
    minx, miny, maxx, maxy = TOWN_BOX
    boundary = gpd.GeoDataFrame({"name": ["小城建成区"]}, geometry=[box(*TOWN_BOX)], crs=4326)
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    roads = gpd.GeoDataFrame(
        {
            "name": ["建设路", "人民路", "北街", "东巷"],
            "highway": ["primary", "secondary", "residential", "residential"],
        },
        geometry=[
            LineString([(minx - 0.001, midy), (maxx + 0.001, midy)]),
            LineString([(midx, miny - 0.001), (midx, maxy + 0.001)]),
            LineString([(minx - 0.001, maxy - 0.002), (maxx + 0.001, maxy - 0.002)]),
            LineString([(maxx - 0.002, miny - 0.001), (maxx - 0.002, maxy + 0.001)]),
        ],
        crs=4326,
    )
    store_layer(session, boundary, kind="boundary", name="小城边界")
    store_layer(session, roads, kind="roads", name="小城道路")
    session.commit()


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


def write_geojson(path: Path, features: list[dict]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def square(lon0: float, lat0: float, size: float = STEP) -> list:
    return [
        [
            [lon0, lat0],
            [lon0 + size, lat0],
            [lon0 + size, lat0 + size],
            [lon0, lat0 + size],
            [lon0, lat0],
        ]
    ]


def poly_feature(coords, **props) -> dict:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": coords},
    }


# ---- import-osm / import-layer ------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_OSM / "guixi.osm.gz").is_file(), reason="Guixi OSM not mounted")
def test_import_osm_stores_layers_and_every_named_road(runner, session):
    result = runner.invoke(args=["import-osm", str(SHARED_OSM / "guixi.osm.gz")])
    assert result.exit_code == 0, result.output
    kinds = set(session.execute(select(Layer.kind).where(Layer.active.is_(True))).scalars())
    assert {"roads", "pois", "buildings", "boundary"} <= kinds
    roads = session.execute(select(Layer).where(Layer.kind == "roads")).scalar_one()
    stored = set(
        session.execute(select(Feature.name).where(Feature.layer_id == roads.id)).scalars()
    )
    expected = set(gpd.read_file(SHARED_OSM / "roads.geojson")["name"].dropna())
    assert len(expected) >= 30
    assert expected <= stored
    # The export cuts the county relation: skipped, and said so, not a failure.
    assert "贵溪市" in result.output
    boundary = session.execute(
        select(Feature).join(Layer).where(Layer.kind == "boundary")
    ).scalar_one()
    assert boundary.shape.area > 0


def test_import_osm_missing_file_exits_non_zero(runner, session):
    result = runner.invoke(args=["import-osm", "/nonexistent/town.osm.gz"])
    assert result.exit_code != 0
    assert "文件不存在" in result.output
    assert session.execute(select(func.count()).select_from(Layer)).scalar() == 0


def test_import_layer_geojson(runner, session, tmp_path):
    path = write_geojson(
        tmp_path / "roads.geojson",
        [
            {
                "type": "Feature",
                "properties": {"name": "建设路"},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[103.50, 22.80], [103.51, 22.80]],
                },
            },
            {
                "type": "Feature",
                "properties": {"name": "人民路"},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[103.505, 22.79], [103.505, 22.81]],
                },
            },
        ],
    )
    result = runner.invoke(args=["import-layer", str(path), "--kind", "roads"])
    assert result.exit_code == 0, result.output
    layer = session.execute(select(Layer).where(Layer.kind == "roads")).scalar_one()
    names = set(session.execute(select(Feature.name).where(Feature.layer_id == layer.id)).scalars())
    assert names == {"建设路", "人民路"}


def test_import_layer_gcj02_is_converted(runner, session, tmp_path):
    path = write_geojson(
        tmp_path / "pois.geojson",
        [
            {
                "type": "Feature",
                "properties": {"name": "农贸市场"},
                "geometry": {"type": "Point", "coordinates": [103.50, 22.80]},
            }
        ],
    )
    result = runner.invoke(args=["import-layer", str(path), "--kind", "pois", "--crs", "gcj02"])
    assert result.exit_code == 0, result.output
    point = session.execute(select(Feature)).scalar_one().shape
    # GCJ-02 is offset by a few hundred metres in Yunnan; WGS-84 is stored.
    assert 0.001 < abs(point.x - 103.50) + abs(point.y - 22.80) < 0.02


def test_import_layer_wrong_geometry_names_row_and_stores_nothing(runner, session, tmp_path):
    path = write_geojson(
        tmp_path / "boundary.geojson",
        [
            poly_feature(square(103.5, 22.8), name="建成区"),
            {
                "type": "Feature",
                "properties": {"name": "一个点"},
                "geometry": {"type": "Point", "coordinates": [103.5, 22.8]},
            },
        ],
    )
    result = runner.invoke(args=["import-layer", str(path), "--kind", "boundary"])
    assert result.exit_code != 0
    assert "第 2 个要素" in result.output and "Point" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert session.execute(select(func.count()).select_from(Layer)).scalar() == 0
    assert session.execute(select(func.count()).select_from(Feature)).scalar() == 0


def test_import_layer_rejects_unknown_kind_and_garbage(runner, session, tmp_path):
    result = runner.invoke(args=["import-layer", str(tmp_path / "x.geojson"), "--kind", "rivers"])
    assert result.exit_code != 0
    garbage = tmp_path / "broken.geojson"
    garbage.write_text("{not json", encoding="utf-8")
    result = runner.invoke(args=["import-layer", str(garbage), "--kind", "roads"])
    assert result.exit_code != 0 and "broken.geojson" in result.output
    assert session.execute(select(func.count()).select_from(Layer)).scalar() == 0


# ---- make-grid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "method"),
    [
        (["--method", "square", "--size", "150"], "square"),
        (["--method", "h3", "--resolution", "10"], "h3"),
        (["--method", "block", "--target-area", "20000"], "block"),
    ],
)
def test_make_grid_prints_id_last_and_codes_cells(runner, session, args, method):
    store_small_town(session)
    result = runner.invoke(args=["make-grid", *args])
    assert result.exit_code == 0, result.output
    grid_id = int(last_line(result.output))
    grid = session.get(GridLayer, grid_id)
    assert grid.method == method and grid.is_active is False
    codes = list(session.execute(select(Cell.code).where(Cell.grid_id == grid_id)).scalars())
    assert len(codes) == grid.cell_count > 4
    assert all(re.fullmatch(r"532599\d{9}", c) for c in codes)
    assert len(set(codes)) == len(codes)
    assert grid.params["check"]["ok"] is True
    # The cells cover the boundary: their areas add up to it (within a percent).
    total = session.execute(select(func.sum(Cell.area_m2)).where(Cell.grid_id == grid_id)).scalar()
    expected = gpd.GeoSeries([box(*TOWN_BOX)], crs=4326).to_crs(32648).area.iloc[0]
    assert abs(total - expected) / expected < 0.001


def test_make_grid_block_cells_do_not_straddle_main_road(runner, session):
    store_small_town(session)
    result = runner.invoke(args=["make-grid", "--method", "block"])
    grid_id = int(last_line(result.output))
    midy = (TOWN_BOX[1] + TOWN_BOX[3]) / 2
    road = LineString([(TOWN_BOX[0], midy), (TOWN_BOX[2], midy)])
    cells = session.execute(select(Cell).where(Cell.grid_id == grid_id)).scalars().all()
    assert not any(cell.shape.buffer(-1e-6).intersects(road) for cell in cells)


def test_make_grid_bad_input_exits_non_zero_and_stores_nothing(runner, session):
    result = runner.invoke(args=["make-grid", "--method", "square"])
    assert result.exit_code != 0 and "边界" in result.output
    store_small_town(session)
    result = runner.invoke(args=["make-grid", "--method", "square", "--size", "-5"])
    assert result.exit_code != 0 and "-5" in result.output
    result = runner.invoke(args=["make-grid", "--method", "square", "--boundary", "不存在的区"])
    assert result.exit_code != 0 and "不存在的区" in result.output
    result = runner.invoke(args=["make-grid", "--method", "hex"])
    assert result.exit_code != 0
    assert session.execute(select(func.count()).select_from(GridLayer)).scalar() == 0


# ---- activate-grid -------------------------------------------------------------------------


def test_activate_grid_reassigns_problems_and_keeps_old_grid(runner, session, factory):
    town = factory.town()
    inspector = town["users"]["inspector"]
    old = town["grid"]
    issues = [
        factory.issue(inspector, lon=west_point(i)[0], lat=west_point(i)[1]) for i in range(3)
    ]
    issues.append(factory.issue(inspector, lon=east_point(1)[0], lat=east_point(1)[1]))
    before = {i.id: (i.lon, i.lat, i.cell_id) for i in issues}
    outline = box(BASE_LON, BASE_LAT - 4 * STEP, BASE_LON + 4 * STEP, BASE_LAT)
    store_layer(
        session,
        gpd.GeoDataFrame({"name": ["测试城区"]}, geometry=[outline], crs=4326),
        kind="boundary",
        name="测试边界",
    )
    session.commit()
    made = runner.invoke(args=["make-grid", "--method", "h3", "--resolution", "11"])
    new_id = int(last_line(made.output))

    result = runner.invoke(args=["activate-grid", str(new_id)])
    assert result.exit_code == 0, result.output
    assert "4 个问题重新归属" in result.output
    session.expire_all()
    assert session.get(GridLayer, new_id).is_active
    assert not session.get(GridLayer, old.id).is_active
    for issue in session.execute(select(Issue)).scalars():
        lon, lat, old_cell = before[issue.id]
        assert (issue.lon, issue.lat) == (lon, lat)
        assert issue.cell.grid_id == new_id and issue.cell_id != old_cell
        assert issue.cell.shape.buffer(1e-9).contains(Point(lon, lat))
    # The old version stays readable with all its cells.
    assert (
        session.execute(
            select(func.count()).select_from(Cell).where(Cell.grid_id == old.id)
        ).scalar()
        == 16
    )
    audit = session.execute(select(AuditLog).where(AuditLog.action == "activate_grid")).scalar()
    assert audit is not None and str(new_id) in audit.detail


def test_activate_unknown_grid_exits_non_zero(runner, session):
    result = runner.invoke(args=["activate-grid", "999"])
    assert result.exit_code != 0 and "999" in result.output


# ---- importing a grid ----------------------------------------------------------------------


def planted_grid(tmp_path: Path) -> Path:
    """A 3×2 grid over the boundary with one overlap, one gap and one broken code."""
    features = []
    serial = 1
    for row in range(2):
        for col in range(3):
            if (row, col) == (1, 2):
                continue  # the gap
            lon0 = BASE_LON + col * STEP
            lat0 = BASE_LAT - (row + 1) * STEP
            size = STEP * 1.3 if (row, col) == (0, 0) else STEP  # overlaps its neighbours
            features.append(
                poly_feature(square(lon0, lat0, size), code=f"532599001001{serial:03d}")
            )
            serial += 1
    features[-1]["properties"]["code"] = "53259900100X"  # broken code
    return write_geojson(tmp_path / "contractor_grid.geojson", features)


def store_grid_boundary(session) -> None:
    outline = box(BASE_LON, BASE_LAT - 2 * STEP, BASE_LON + 3 * STEP, BASE_LAT)
    store_layer(
        session,
        gpd.GeoDataFrame({"name": ["测试城区"]}, geometry=[outline], crs=4326),
        kind="boundary",
        name="测试边界",
    )
    session.commit()


def test_imported_grid_with_errors_is_refused_with_report(runner, session, factory, tmp_path):
    town = factory.town()
    store_grid_boundary(session)
    path = planted_grid(tmp_path)
    result = runner.invoke(args=["import-layer", str(path), "--kind", "grid"])
    assert result.exit_code != 0
    assert "重叠" in result.output and "532599001001001" in result.output
    assert "未被任何网格覆盖" in result.output
    assert "53259900100X" in result.output
    assert session.execute(select(func.count()).select_from(GridLayer)).scalar() == 1
    assert session.get(GridLayer, town["grid"].id).is_active


def test_grid_upload_page_shows_report_and_changes_nothing(
    client, auth, session, factory, tmp_path
):
    town = factory.town()
    store_grid_boundary(session)
    auth.login("admin")
    data = planted_grid(tmp_path).read_bytes()
    response = client.post(
        "/grids/upload",
        data={"file": (io.BytesIO(data), "grid.geojson")},
        content_type="multipart/form-data",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "重叠" in html and "缝隙" in html and "编码错误" in html
    assert "53259900100X" in html
    assert "folium-map" in html
    assert session.execute(select(func.count()).select_from(GridLayer)).scalar() == 1
    assert session.get(GridLayer, town["grid"].id).is_active


def test_clean_grid_upload_is_stored_inactive(client, auth, session, factory, tmp_path):
    town = factory.town()
    store_grid_boundary(session)
    features = [
        poly_feature(
            square(BASE_LON + c * STEP, BASE_LAT - (r + 1) * STEP),
            网格编码=f"532599001002{r * 3 + c + 1:03d}",
        )
        for r in range(2)
        for c in range(3)
    ]
    path = write_geojson(tmp_path / "ok.geojson", features)
    auth.login("admin")
    response = client.post(
        "/grids/upload",
        data={"file": (io.BytesIO(path.read_bytes()), "ok.geojson")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    grid = session.execute(select(GridLayer).where(GridLayer.method == "import")).scalar_one()
    assert grid.cell_count == 6 and not grid.is_active
    cell = session.execute(
        select(Cell).where(Cell.grid_id == grid.id, Cell.code == "532599001002001")
    ).scalar_one()
    assert cell.community_code == "002" and 9000 < cell.area_m2 < 12000
    assert session.get(GridLayer, town["grid"].id).is_active


# ---- assignment ----------------------------------------------------------------------------


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def cell_units(session, grid_id: int) -> dict[str, int | None]:
    return dict(
        session.execute(select(Cell.code, Cell.unit_id).where(Cell.grid_id == grid_id)).all()
    )


def test_assign_cells_csv(runner, session, factory, tmp_path):
    town = factory.town()
    path = tmp_path / "assign.csv"
    path.write_bytes(
        csv_bytes(
            [["code", "unit"], ["532599001001001", "东区单位"], ["532599001001002", "东区单位"]]
        )
    )
    result = runner.invoke(args=["assign-cells", str(path)])
    assert result.exit_code == 0, result.output
    units = cell_units(session, town["grid"].id)
    assert units["532599001001001"] == units["532599001001002"] == town["east"].id


def test_assign_cells_bad_rows_named_and_nothing_changed(runner, session, factory, tmp_path):
    town = factory.town()
    before = cell_units(session, town["grid"].id)
    path = tmp_path / "assign.csv"
    path.write_bytes(
        csv_bytes(
            [
                ["网格编码", "责任单位"],
                ["532599001001001", "东区单位"],
                ["532599001009999", "东区单位"],
                ["532599001001003", "北区单位"],
            ]
        )
    )
    result = runner.invoke(args=["assign-cells", str(path)])
    assert result.exit_code != 0
    assert "第 3 行" in result.output and "532599001009999" in result.output
    assert "第 4 行" in result.output and "北区单位" in result.output
    session.expire_all()
    assert cell_units(session, town["grid"].id) == before


def test_assign_cells_xlsx_upload_on_web(client, auth, session, factory):
    town = factory.town()
    book = Workbook()
    book.active.append(["code", "unit"])
    book.active.append([532599001001004, "西区单位"])  # Excel typed the code as a number
    buffer = io.BytesIO()
    book.save(buffer)
    auth.login("admin")
    response = client.post(
        f"/grids/{town['grid'].id}/assign/table",
        data={"file": (io.BytesIO(buffer.getvalue()), "分配表.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert cell_units(session, town["grid"].id)["532599001001004"] == town["west"].id


def test_assign_cells_picked_on_map(client, auth, session, factory):
    town = factory.town()
    auth.login("admin")
    page = client.get(f"/grids/{town['grid'].id}/assign").get_data(as_text=True)
    assert 'id="cell-picker"' in page and "js/grids.js" in page and "folium-map" in page
    response = client.post(
        f"/grids/{town['grid'].id}/assign",
        data={"codes": "532599001001001,532599001001005", "unit_id": str(town["east"].id)},
    )
    assert response.status_code == 302
    units = cell_units(session, town["grid"].id)
    assert units["532599001001001"] == units["532599001001005"] == town["east"].id
    bad = client.post(
        f"/grids/{town['grid'].id}/assign",
        data={"codes": "532599001001002,999", "unit_id": str(town["east"].id)},
    )
    assert bad.status_code == 400 and "999" in bad.get_data(as_text=True)
    assert cell_units(session, town["grid"].id)["532599001001002"] == town["west"].id


# ---- exports -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("geojson", ".geojson"), ("gpkg", ".gpkg"), ("shp", ".zip"), ("kml", ".kml")],
)
def test_export_grid_formats_read_back(client, auth, session, factory, tmp_path, fmt, suffix):
    town = factory.town()
    auth.login("admin")
    response = client.get(f"/grids/{town['grid'].id}/export/{fmt}")
    assert response.status_code == 200
    path = tmp_path / f"export{suffix}"
    path.write_bytes(response.data)
    gdf = read_layer(path, kind="grid")
    assert len(gdf) == 16
    assert set(gdf["code"]) == {f"532599001001{i:03d}" for i in range(1, 17)}
    assert session.execute(select(AuditLog).where(AuditLog.action == "export_grid")).scalar()


def test_unit_head_grid_export_holds_only_own_cells(client, auth, session, factory, tmp_path):
    town = factory.town()
    auth.login("west")
    response = client.get(f"/grids/{town['grid'].id}/export/geojson")
    assert response.status_code == 200
    path = tmp_path / "west.geojson"
    path.write_bytes(response.data)
    gdf = read_layer(path, kind="grid")
    assert len(gdf) == 8
    assert set(gdf["unit"]) == {"西区单位"}
    assert "东区单位" not in response.get_data(as_text=True)


def test_export_grid_cli_writes_every_format(runner, session, factory, tmp_path):
    town = factory.town()
    for name in ("g.geojson", "g.gpkg", "g.zip", "g.kml"):
        result = runner.invoke(args=["export-grid", str(town["grid"].id), str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert len(read_layer(tmp_path / name, kind="grid")) == 16
    result = runner.invoke(args=["export-grid", str(town["grid"].id), str(tmp_path / "g.txt")])
    assert result.exit_code != 0 and "g.txt" in result.output
    result = runner.invoke(args=["export-grid", "999", str(tmp_path / "x.geojson")])
    assert result.exit_code != 0 and "999" in result.output


def test_layer_export_four_formats(client, auth, session, factory, tmp_path):
    factory.town()
    store_small_town(session)
    layer = session.execute(select(Layer).where(Layer.kind == "roads")).scalar_one()
    auth.login("leader")
    page = client.get("/grids/layers").get_data(as_text=True)
    assert f"/grids/layers/{layer.id}/export/kml" in page
    for fmt, suffix in (
        ("geojson", ".geojson"),
        ("gpkg", ".gpkg"),
        ("shp", ".zip"),
        ("kml", ".kml"),
    ):
        response = client.get(f"/grids/layers/{layer.id}/export/{fmt}")
        assert response.status_code == 200
        path = tmp_path / f"roads{suffix}"
        path.write_bytes(response.data)
        assert set(read_layer(path, kind="roads")["name"]) == {"建设路", "人民路", "北街", "东巷"}
    assert client.get(f"/grids/layers/{layer.id}/export/dwg").status_code == 400


# ---- pages and access ----------------------------------------------------------------------


def test_unit_head_cannot_reach_grid_admin_pages(client, auth, session, factory):
    town = factory.town()
    store_small_town(session)
    layer = session.execute(select(Layer).where(Layer.kind == "roads")).scalar_one()
    auth.login("west")
    gid = town["grid"].id
    for url in (
        "/grids/",
        "/grids/new",
        "/grids/upload",
        f"/grids/{gid}/report",
        f"/grids/{gid}/assign",
        "/grids/layers",
        f"/grids/layers/{layer.id}/export/kml",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/grids/{gid}/activate").status_code == 403
    assert (
        client.post(
            f"/grids/{gid}/assign", data={"codes": "532599001001003", "unit_id": town["west"].id}
        ).status_code
        == 403
    )
    assert client.post("/grids/new", data={"method": "square", "action": "save"}).status_code == 403
    session.expire_all()
    assert cell_units(session, gid)["532599001001003"] == town["east"].id
    assert session.execute(select(func.count()).select_from(GridLayer)).scalar() == 1


def test_leader_reads_but_cannot_change(client, auth, session, factory):
    town = factory.town()
    auth.login("leader")
    page = client.get("/grids/")
    assert page.status_code == 200 and "测试网格" in page.get_data(as_text=True)
    assert "启用</button>" not in page.get_data(as_text=True)
    assert client.get(f"/grids/{town['grid'].id}/report").status_code == 200
    assert client.get("/grids/new").status_code == 403
    assert client.post(f"/grids/{town['grid'].id}/activate").status_code == 403


def test_login_required(client, factory):
    town = factory.town()
    for url in ("/grids/", f"/grids/{town['grid'].id}/export/geojson", "/units/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_preview_page_renders_map_and_saves_version(client, auth, session, factory):
    factory.town()
    store_small_town(session)
    auth.login("admin")
    form = {"method": "square", "size": "200", "action": "preview"}
    html = client.post("/grids/new", data=form).get_data(as_text=True)
    assert "folium-map" in html and "/vendor/leaflet/leaflet.js" in html
    assert "检查通过" in html and "保存为新版本" in html
    assert not re.findall(r"""(?:src|href)=["'](?:https?:)?//""", html)
    assert session.execute(select(func.count()).select_from(GridLayer)).scalar() == 1
    response = client.post("/grids/new", data={**form, "action": "save", "name": "方格试验"})
    assert response.status_code == 302
    grid = session.execute(select(GridLayer).where(GridLayer.name == "方格试验")).scalar_one()
    assert not grid.is_active and grid.cell_count > 4


def test_preview_bad_parameters_answer_400(client, auth, session, factory):
    factory.town()
    store_small_town(session)
    auth.login("admin")
    response = client.post(
        "/grids/new", data={"method": "h3", "resolution": "abc", "action": "preview"}
    )
    assert response.status_code == 400 and "abc" in response.get_data(as_text=True)


def test_report_page_and_activate_button(client, auth, session, factory):
    town = factory.town()
    store_small_town(session)
    auth.login("admin")
    client.post("/grids/new", data={"method": "square", "size": "200", "action": "save"})
    new = session.execute(select(GridLayer).where(GridLayer.id != town["grid"].id)).scalar_one()
    page = client.get("/grids/").get_data(as_text=True)
    assert f"/grids/{new.id}/activate" in page and "confirm(" in page
    report = client.get(f"/grids/{new.id}/report").get_data(as_text=True)
    assert "检查通过" in report and "folium-map" in report
    response = client.post(f"/grids/{new.id}/activate")
    assert response.status_code == 302
    session.expire_all()
    assert session.get(GridLayer, new.id).is_active
    assert not session.get(GridLayer, town["grid"].id).is_active


def test_report_lists_findings_of_broken_stored_grid(client, auth, session, factory):
    """A stored grid that overlaps (e.g. from before checks existed) shows where, and won't activate."""
    from app.services.grids.cells import store_grid

    factory.town()
    cells = gpd.GeoDataFrame(
        {"code": ["532599001001001", "532599001001002"]},
        geometry=[
            box(BASE_LON, BASE_LAT - STEP, BASE_LON + STEP, BASE_LAT),
            box(BASE_LON + STEP / 2, BASE_LAT - STEP, BASE_LON + 2 * STEP, BASE_LAT),
        ],
        crs=4326,
    )
    grid = store_grid(session, cells, name="旧网格", method="import")
    session.commit()
    auth.login("admin")
    html = client.get(f"/grids/{grid.id}/report").get_data(as_text=True)
    assert "重叠" in html and "532599001001002" in html and "circle_marker" in html
    response = client.post(f"/grids/{grid.id}/activate")
    assert response.status_code == 400
    session.expire_all()
    assert not session.get(GridLayer, grid.id).is_active


def test_demo_grid_pages(demo_client, demo_auth):
    """The seeded county's grid: its report passes, the assign map and layers list render."""
    from app.extensions import db
    from app.services.grids.cells import active_grid

    grid = active_grid(db.session)
    demo_auth.login("admin", "demo1234")
    report = demo_client.get(f"/grids/{grid.id}/report").get_data(as_text=True)
    assert "检查通过" in report and str(grid.cell_count) in report
    assign = demo_client.get(f"/grids/{grid.id}/assign")
    assert assign.status_code == 200 and "县住房和城乡建设局" in assign.get_data(as_text=True)
    layers = demo_client.get("/grids/layers").get_data(as_text=True)
    assert "道路" in layers and "社区" in layers
    page = demo_client.get("/grids/new").get_data(as_text=True)
    assert "西门社区" in page  # communities can be chosen as the area to build for


def test_demo_block_preview_for_one_community(demo_client, demo_auth):
    demo_auth.login("admin", "demo1234")
    response = demo_client.post(
        "/grids/new", data={"method": "block", "boundary": "西门社区", "action": "preview"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:500]
    assert "folium-map" in html and "保存为新版本" in html
    assert re.search(r"预览: 街区法 \(道路切分\)，\d+ 个网格", html)


# ---- zones (片区) and 属地兜底 --------------------------------------------------------------


def zone_rows(session, grid_id: int) -> list:
    from app.models import Zone

    return list(
        session.execute(
            select(Zone).where(Zone.grid_id == grid_id).order_by(Zone.community_code)
        ).scalars()
    )


def test_grid_without_communities_is_coded_in_provisional_zones_held_by_the_office(
    runner, session
):
    from app.models import Unit

    store_small_town(session)
    result = runner.invoke(args=["make-grid", "--method", "block"])
    assert result.exit_code == 0, result.output
    assert "片区(临时)" in result.output and "兜底" in result.output
    grid_id = int(last_line(result.output))
    cells = session.execute(select(Cell).where(Cell.grid_id == grid_id)).scalars().all()
    assert all(c.subdistrict_code != "000" and c.community_code != "000" for c in cells)
    zones = zone_rows(session, grid_id)
    assert zones and all(z.provisional for z in zones)
    assert {z.name for z in zones} <= {f"城区 第{k}片区" for k in range(1, 20)}
    assert sum(z.cell_count for z in zones) == len(cells)
    # No unit was given: the rest's office (created now) holds every cell.
    office = session.execute(select(Unit).where(Unit.name == "城区办事处")).scalar_one()
    assert office.kind == "subdistrict"
    assert {c.unit_id for c in cells} == {office.id}
    grid = session.get(GridLayer, grid_id)
    assert set(grid.params["held"]) == {c.code for c in cells}


def test_report_page_shows_zones_and_cells_the_office_holds(client, auth, session, factory):
    from app.services.grids.build import make_grid

    store_small_town(session)
    factory.user("admin", "admin")
    grid = make_grid(session, "block")
    session.commit()
    auth.login("admin")
    page = client.get(f"/grids/{grid.id}/report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "社区与片区" in html and "片区(临时)" in html and "城区 第1片区" in html
    assert "未分配网格 (属地兜底)" in html and "城区办事处" in html
    assert f"{grid.cell_count} 个网格尚未分配责任单位" in html
    # The map's cells carry their zone and whether the office only holds them.
    def embedded(text: str) -> bool:  # the map's GeoJSON is written \u-escaped
        return text in html or json.dumps(text)[1:-1] in html

    assert embedded("城区 第1片区 · 片区(临时)") and embedded("未分配, 由属地街道兜底")
    preview = client.post("/grids/new", data={"method": "block", "action": "preview"})
    assert preview.status_code == 200 and "片区(临时)" in preview.get_data(as_text=True)


def test_rebuild_with_communities_recodes_a_new_version_carrying_units_and_history(
    runner, session, factory
):
    from app.models import IssueEvent
    from app.services.grids.build import make_grid
    from app.services.grids.cells import assign_cells, held_summary
    from app.services.grids.versions import activate

    store_small_town(session)
    shop = factory.unit("县市场监督管理局")
    inspector = factory.user("inspector", "inspector")
    factory.category()
    first = make_grid(session, "block")
    activate(session, None, first.id)
    session.commit()
    cells = session.execute(select(Cell).where(Cell.grid_id == first.id)).scalars().all()
    minx, miny, maxx, maxy = TOWN_BOX
    midx = (minx + maxx) / 2
    west = [c for c in cells if c.shape.centroid.x < midx - 0.0005]
    assign_cells(session, {c.code: shop.name for c in west})
    session.commit()
    assert held_summary(session, first)[0]["count"] == len(cells) - len(west)
    p_west = west[0].shape.representative_point()
    east_cell = next(c for c in cells if c.shape.centroid.x > midx + 0.0005)
    p_east = east_cell.shape.representative_point()
    open_issue = factory.issue(inspector, lon=p_west.x, lat=p_west.y)
    closed_issue = factory.issue(inspector, lon=p_east.x, lat=p_east.y)
    closed_issue.status = "closed"
    session.commit()
    assert open_issue.unit_id == shop.id and closed_issue.unit_id != shop.id

    # The office now has its communities on file: rebuild and activate the new version.
    communities = gpd.GeoDataFrame(
        {"name": ["西门社区", "东门社区"], "code": ["001", "002"], "subdistrict_code": ["001", "001"]},
        geometry=[box(minx, miny, midx, maxy), box(midx, miny, maxx, maxy)],
        crs=4326,
    )
    store_layer(session, communities, kind="communities", name="社区")
    session.commit()
    made = runner.invoke(args=["make-grid", "--method", "block"])
    assert made.exit_code == 0, made.output
    second = session.get(GridLayer, int(last_line(made.output)))
    zones = zone_rows(session, second.id)
    assert [(z.community_code, z.name, z.provisional) for z in zones] == [
        ("001", "西门社区", False),
        ("002", "东门社区", False),
    ]
    new_cells = session.execute(select(Cell).where(Cell.grid_id == second.id)).scalars().all()
    # Units follow the place: cells inside the old west cells keep the shop; the others
    # were only held by the office, and are held again.
    by_unit = {c.unit_id for c in new_cells if c.shape.centroid.x < midx - 0.0015}
    assert by_unit == {shop.id}
    assert all(c.unit_id is not None for c in new_cells)
    result = runner.invoke(args=["activate-grid", str(second.id)])
    assert result.exit_code == 0, result.output
    session.expire_all()
    for issue in (open_issue, closed_issue):
        issue = session.get(Issue, issue.id)
        assert issue.cell.grid_id == second.id
        event = session.execute(
            select(IssueEvent).where(IssueEvent.issue_id == issue.id,
                                     IssueEvent.action == "regrid")
        ).scalar_one()
        assert event.data["grid_id"] == second.id and event.data["to_cell"] == issue.cell.code
    assert session.get(Issue, open_issue.id).unit_id == shop.id
    assert session.get(Issue, closed_issue.id).status == "closed"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_OSM / "guixi.osm.gz").is_file(), reason="Guixi OSM not mounted")
def test_guixi_grid_from_boundary_and_roads_alone(runner, session, factory):
    """Real OSM: no communities anywhere; one sub-district (东门街道) covers part of the seat."""
    from app.models import Unit, Zone
    from app.models import today_local as today

    assert runner.invoke(args=["import-osm", str(SHARED_OSM / "guixi.osm.gz")]).exit_code == 0
    made = runner.invoke(args=["make-grid", "--method", "block"])
    assert made.exit_code == 0, made.output
    grid_id = int(last_line(made.output))
    grid = session.get(GridLayer, grid_id)
    assert grid.params["check"]["ok"]
    cells = session.execute(select(Cell).where(Cell.grid_id == grid_id)).scalars().all()
    assert len(cells) > 900
    codes = [c.code for c in cells]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"532599\d{9}", c) and "000" not in (c[6:9], c[9:12]) for c in codes)
    zones = session.execute(select(Zone).where(Zone.grid_id == grid_id)).scalars().all()
    assert len(zones) >= 4 and all(z.provisional and z.cell_count < 999 for z in zones)
    assert {z.subdistrict_name for z in zones} == {"东门街道", "城区"}
    assert any(z.name.startswith("东门街道 第") for z in zones)
    # Every cell answers to someone: the two offices hold them.
    offices = {u.id: u.name for u in session.execute(select(Unit)).scalars()}
    assert {offices[c.unit_id] for c in cells} == {"东门街道办事处", "城区办事处"}

    assert runner.invoke(args=["activate-grid", str(grid_id)]).exit_code == 0
    inspector = factory.user("inspector", "inspector")
    factory.category()
    spot = cells[len(cells) // 2].shape.representative_point()
    issue = factory.issue(inspector, lon=spot.x, lat=spot.y)
    assert issue.unit_id == cells[len(cells) // 2].unit_id
    month = today().strftime("%Y-%m")
    for scope in ("unit", "subdistrict", "community"):
        out = runner.invoke(args=["report", "--month", month, "--json", "--scope", scope])
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        names = [row["unit"] for row in data["ranking"]]
        assert not any("000" in n for n in names), names
        if scope == "subdistrict":
            assert sorted(names) == ["东门街道", "城区"]
        if scope == "community":
            assert names == []  # 片区(临时) are not ranked as communities
        if scope == "unit":
            assert {"东门街道办事处", "城区办事处"} <= set(names)
