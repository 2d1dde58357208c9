"""Hostile text in, every export out: all answer 200, all parse, no formula, text readable.

Problems are reported through the form (cleaned on the way in) and, like the old rows that
already exist, written straight into the database with control characters still in them.
Every writer (Excel, XML, JSON, PDF, KML, GPX) must cope with both.
"""

import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from urllib.parse import quote

import geopandas as gpd
import pytest
from openpyxl import Workbook, load_workbook
from shapely.geometry import LineString
from sqlalchemy import select, update

from app.models import Issue
from app.services.core.text import clean_text
from tests.factories import BASE_LAT, BASE_LON, STEP, AuthActions, east_point, west_point

FORMULAS = ['=HYPERLINK("http://x")', "+1", "@SUM(A1)", "-2+3", "=cmd|' /C calc'!A0"]
JUNK = ["a\u0001b\u0000c\u001f", "\ufffe", "x\ud800y\udfffz", "<script>&"]
HOSTILE = FORMULAS + JUNK
# What the database may hold from before the intake cleaned text (NUL and lone surrogates
# cannot be stored at all; PostgreSQL refuses NUL).
OLD_DIRTY = ["旧\u0001数据\u001f", "旧\ufffe行\u007f", "=1+1旧公式", "<b>旧&</b>\u000b"]
FORMULA_WEST = '=HYPERLINK("http://x")西区'
FORMULA_EAST = "@SUM(A1)东区"
ROAD_NAME = "+1路\u0001"


@pytest.fixture()
def world(factory, session):
    """Units and a road with hostile names, problems with hostile text, a planned patrol."""
    from app.services.core.cache import reset_caches
    from app.services.core.passwords import issue_token
    from app.services.grids.layers import store_layer

    reset_caches()
    west = factory.unit(FORMULA_WEST)
    east = factory.unit(FORMULA_EAST)
    grid = factory.grid(west, east)
    factory.category()
    admin = factory.user("admin", "admin")
    inspector = factory.user("inspector", "inspector")
    rows = []
    for k in range(5):
        lat = BASE_LAT - k * STEP
        rows.append((ROAD_NAME if k == 0 else f"东西{k}路",
                     LineString([(BASE_LON - STEP, lat), (BASE_LON + 5 * STEP, lat)])))
        lon = BASE_LON + k * STEP
        rows.append((f"南北{k}街", LineString([(lon, BASE_LAT + STEP), (lon, BASE_LAT - 5 * STEP)])))
    roads = gpd.GeoDataFrame(
        {"name": [n for n, _ in rows], "highway": ["residential"] * len(rows)},
        geometry=[g for _, g in rows], crs=4326,
    )
    layer = store_layer(session, roads, kind="roads", name="测试道路")
    session.commit()
    old = []
    for i, text in enumerate(OLD_DIRTY):
        lon, lat = west_point(i) if i % 2 == 0 else east_point(i)
        issue = factory.issue(inspector, lon=lon, lat=lat, description="待改写", address="待改写")
        old.append(issue.id)
        # As an old row stored before clean_text existed.
        session.execute(update(Issue).where(Issue.id == issue.id)
                        .values(description=text, address=text))
    session.commit()
    yield {"admin": admin, "inspector": inspector, "grid": grid, "roads": layer, "old": old,
           "token": issue_token(session, admin)}
    reset_caches()


def _report_hostile(client) -> None:
    AuthActions(client).login("inspector")
    for i, text in enumerate(HOSTILE):
        lon, lat = west_point(i) if i % 2 == 0 else east_point(i)
        fields = {"description": text, "address": text, "category": "0302",
                  "source": "县级督查", "lon": str(lon), "lat": str(lat), "crs": "wgs84"}
        # Sent as raw bytes: lone surrogates arrive as invalid UTF-8, as from a broken client.
        body = "&".join(f"{k}={quote(v.encode('utf-8', 'surrogatepass'))}"
                        for k, v in fields.items())
        response = client.post("/issues/new", data=body,
                               content_type="application/x-www-form-urlencoded")
        # "\ufffe" alone cleans to nothing: a clear refusal naming the field, never a 500.
        if not clean_text(text):
            assert response.status_code == 400 and "问题描述" in response.get_data(as_text=True)
        else:
            assert response.status_code in (302, 303), (text, response.status_code)
    client.get("/logout")


def _no_formula(xlsx: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(xlsx)) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                assert "<f>" not in zf.read(name).decode() and "<f " not in zf.read(name).decode()


def _texts(xlsx: bytes) -> set[str]:
    wb = load_workbook(io.BytesIO(xlsx))
    return {c.value for ws in wb for row in ws.iter_rows() for c in row if isinstance(c.value, str)}


def test_intake_cleans_text_and_keeps_formulas_as_typed(world, client, session):
    _report_hostile(client)
    stored = {i.description for i in session.execute(select(Issue)).scalars()}
    assert "abc" in stored and "<script>&" in stored
    assert any(s.startswith("x") and s.endswith("z") for s in stored)  # the surrogate junk
    assert set(FORMULAS) <= stored  # shown as written, never armed
    assert not any(re.search("[\x00-\x08\ufffe\ud800-\udfff]", s) for s in stored - set(OLD_DIRTY))


def test_every_export_answers_parses_and_carries_no_formula(world, client, session, tmp_path):
    from app.services.patrols.plan import plan_patrols
    from app.services.patrols.stops import choose_stops

    _report_hostile(client)
    inspector = world["inspector"]
    ids = [i.id for i in session.execute(select(Issue).order_by(Issue.id)).scalars()]
    stops, record = choose_stops(session, inspector, "issues", {"issue_ids": ids})
    patrol = plan_patrols(session, inspector, stops, selection=record,
                          name="=HYPERLINK(\"x\")巡查\u0001")[0]
    session.commit()
    AuthActions(client).login("admin")

    # Excel: the issue list and the monthly 通报.
    xlsx = client.get("/issues/export.xlsx")
    assert xlsx.status_code == 200
    _no_formula(xlsx.data)
    texts = _texts(xlsx.data)
    assert set(FORMULAS) <= texts and {"abc", "<script>&"} <= texts
    assert {"旧数据", "旧行", "=1+1旧公式", "<b>旧&</b>"} <= texts  # old rows, cleaned out
    from app.models import today_local

    report = client.get(f"/reports/export.xlsx?month={today_local():%Y-%m}")
    assert report.status_code == 200
    _no_formula(report.data)
    assert any(FORMULA_WEST in t for t in _texts(report.data))

    # Open311 (JSON and XML) and OGC API - Features.
    auth = {"Authorization": f"Bearer {world['token']}"}
    as_json = client.get("/open311/v2/requests.json", headers=auth)
    assert as_json.status_code == 200
    descriptions = {r["description"] for r in as_json.json}
    assert set(FORMULAS) <= descriptions
    as_xml = client.get("/open311/v2/requests.xml", headers=auth)
    assert as_xml.status_code == 200
    root = ET.fromstring(as_xml.data)
    xml_texts = {e.text for e in root.iter("description")}
    assert {"旧数据", "旧行", "<b>旧&</b>", "<script>&"} <= xml_texts
    ogc = client.get("/ogc/collections/issues/items?limit=100", headers=auth)
    assert ogc.status_code == 200
    props = [f["properties"] for f in json.loads(ogc.data)["features"]]
    # JSON escapes control characters, so old rows parse; their text is all there.
    assert {"<script>&", "旧数据", *FORMULAS} <= {clean_text(p.get("description")) for p in props}

    # The patrol sheet, GPX and KML.
    pdf = client.get(f"/patrols/{patrol.id}/sheet.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        path = tmp_path / "sheet.pdf"
        path.write_bytes(pdf.data)
        text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "巡查路线单" in text, text
        assert "<script>&" in text and "旧数据" in text, text
    for fmt in ("gpx", "kml"):
        response = client.get(f"/patrols/{patrol.id}/route.{fmt}")
        assert response.status_code == 200, fmt
        names = [e.text for e in ET.fromstring(response.data).iter() if e.tag.endswith("name")]
        assert '=HYPERLINK("x")巡查' in names, fmt

    # Grid and layer exports carry the hostile unit and road names.
    grid = world["grid"].id
    for fmt in ("kml", "geojson"):
        response = client.get(f"/grids/{grid}/export/{fmt}")
        assert response.status_code == 200, fmt
    kml = ET.fromstring(client.get(f"/grids/{grid}/export/kml").data)
    assert any(FORMULA_WEST in (e.text or "") for e in kml.iter())
    layer_kml = client.get(f"/grids/layers/{world['roads'].id}/export/kml")
    assert layer_kml.status_code == 200
    assert any((e.text or "") == "+1路" for e in ET.fromstring(layer_kml.data).iter())


def test_rejected_rows_go_back_as_text(world, client, auth, app, tmp_path):
    app.config["IMPORT_UPLOAD_DIR"] = str(tmp_path / "uploads")
    auth.login("admin")
    lines = ["序号,问题描述,问题地点,问题类别,经度,纬度"]
    for i, text in enumerate(['=HYPERLINK(""http://x"")', "+1", "@SUM(A1)", "a\u0001b\u001fc"]):
        lines.append(f'{i + 1},"{text}","{text}",背街小巷,x,y')  # bad coordinates: rejected
    data = ("\n".join(lines) + "\n").encode("utf-8")
    response = client.post("/issues/import/", data={"file": (io.BytesIO(data), "清单.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    token = response.headers["Location"].rstrip("/").split("/")[-1]
    from app.services.core.tabular import load_sheet

    mapping = load_sheet(data, "清单.csv").mapping
    form = {f"col_{index}": name for name, index in mapping.items()}
    assert client.post(f"/issues/import/{token}", data={**form, "skip_errors": "1"}).status_code == 302
    download = client.get(f"/issues/import/{token}/rejected.xlsx")
    assert download.status_code == 200
    _no_formula(download.data)
    texts = _texts(download.data)
    assert {'=HYPERLINK("http://x")', "+1", "@SUM(A1)", "abc"} <= texts


def test_the_excel_helper_never_writes_a_formula():
    from app.services.core.xlsx import write_row

    wb = Workbook()
    ws = wb.active
    write_row(ws, ["标题", *HOSTILE, 3, 1.5, None])
    write_row(ws, FORMULAS)
    buf = io.BytesIO()
    wb.save(buf)
    _no_formula(buf.getvalue())
    back = load_workbook(io.BytesIO(buf.getvalue())).active
    assert [c.value for c in back[1]][:5] == ["标题", *FORMULAS[:4]]
    assert [c.value for c in back[1]][6:10] == ["abc", None, "xyz", "<script>&"]
    assert [c.value for c in back[1]][10:12] == [3, 1.5]
    assert [c.value for c in back[2]][: len(FORMULAS)] == FORMULAS


def test_roster_passwords_workbook_keeps_hostile_names_as_text():
    from app.services.tables.roster import passwords_workbook

    data = passwords_workbook([{"unit": FORMULA_WEST, "name": "=1+1\u0001", "username": "u1",
                                "role_code": "unit_head", "password": "p"}])
    _no_formula(data)
    assert {FORMULA_WEST, "=1+1"} <= _texts(data)
