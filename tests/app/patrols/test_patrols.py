"""Patrol planning, routing, printing (HTML, PDF, GPX/KML), the API and results entry."""

from __future__ import annotations

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import LineString, Point
from sqlalchemy import func, select

from tests.factories import BASE_LAT, BASE_LON, STEP, east_point, west_point

# ---- fixtures: a small road network and POIs over the factory grid -----------------------

LANES = {1: "幸福巷", 3: "桂花巷"}  # vertical streets named …巷 (背街小巷)


def _roads() -> gpd.GeoDataFrame:
    """A 5×5 street grid through the factory cells' edges, plus a one-way street."""
    rows = []
    for k in range(5):
        lat = BASE_LAT - k * STEP
        rows.append(
            {
                "name": f"东西{k + 1}路",
                "highway": "residential",
                "oneway": "no",
                "geometry": LineString([(BASE_LON - STEP, lat), (BASE_LON + 5 * STEP, lat)]),
            }
        )
        lon = BASE_LON + k * STEP
        rows.append(
            {
                "name": LANES.get(k, f"南北{k + 1}街"),
                "highway": "residential",
                "oneway": "yes" if k == 4 else "no",
                "geometry": LineString([(lon, BASE_LAT + STEP), (lon, BASE_LAT - 5 * STEP)]),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def _pois() -> gpd.GeoDataFrame:
    rows = [
        {
            "name": "县人民政府",
            "type": "机关单位",
            "address": "东西1路1号",
            "geometry": Point(BASE_LON + 0.0002, BASE_LAT - 0.0001),
        }
    ]
    for i in range(12):
        rows.append(
            {
                "name": f"小吃店{i:02d}",
                "type": "餐饮",
                "address": f"东西2路{i + 1}号",
                "geometry": Point(BASE_LON + 0.0003 * i + 0.0001, BASE_LAT - 0.0011),
            }
        )
    for i in range(3):
        rows.append(
            {
                "name": f"农贸市场{i}",
                "type": "农贸市场",
                "address": f"南北3街{i + 1}号",
                "geometry": Point(BASE_LON + 0.0021, BASE_LAT - 0.001 * i - 0.0006),
            }
        )
    rows.append(
        {
            "name": "公厕一",
            "type": "公厕",
            "address": "东西4路5号",
            "geometry": Point(BASE_LON + 0.0031, BASE_LAT - 0.0029),
        }
    )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


@pytest.fixture()
def town(factory, session):
    """The factory town with roads and POIs, and the route caches cleared."""
    from app.services.core.cache import reset_caches
    from app.services.grids.layers import store_layer

    reset_caches()
    world = factory.town()
    store_layer(session, _roads(), kind="roads", name="测试道路")
    store_layer(session, _pois(), kind="pois", name="测试兴趣点")
    session.commit()
    yield world
    reset_caches()


def _issue(factory, user, point, *, address, status="reported", description="路面有积存垃圾"):
    """A placed issue moved along the workflow to ``status`` by an admin."""
    from app.services.issues.intake import transition

    issue = factory.issue(
        user, lon=point[0], lat=point[1], address=address, description=description
    )
    steps = {
        "reported": [],
        "dispatched": ["dispatch"],
        "rectifying": ["dispatch", "start"],
        "submitted": ["dispatch", "start", "submit"],
    }[status]
    admin = factory.session.execute(
        select(type(user)).where(type(user).username == "admin")
    ).scalar_one()
    for action in steps:
        transition(factory.session, admin, issue.id, action, note="测试")
    factory.session.commit()
    return issue


def _token(session, username: str) -> str:
    from app.models import User
    from app.services.core.passwords import issue_token

    user = session.execute(select(User).where(User.username == username)).scalar_one()
    token = issue_token(session, user)
    session.commit()
    return token


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _utm(lonlat):
    from gis.crs import transformer

    return transformer("EPSG:4326", "EPSG:32648").transform(*np.asarray(lonlat, float).T)


# ---- choosing stops ----------------------------------------------------------------------


def test_submitted_selection_takes_only_problems_waiting_for_verification(town, factory, session):
    from app.services.patrols.plan import create_patrols

    inspector = town["users"]["inspector"]
    done = [
        _issue(factory, inspector, west_point(i), address=f"幸福巷{i}号", status="submitted")
        for i in range(3)
    ]
    _issue(factory, inspector, east_point(0), address="桂花巷9号", status="rectifying")
    _issue(factory, inspector, east_point(1), address="桂花巷10号")

    created = create_patrols(session, inspector, "submitted", {}, mode="walk")
    session.commit()

    assert len(created) == 1
    patrol = created[0]
    assert sorted(s.issue_id for s in patrol.stops) == sorted(i.id for i in done)
    assert [s.seq for s in patrol.stops] == [1, 2, 3]
    # Default start: the county office POI, and back there at the end.
    assert patrol.start == pytest.approx([BASE_LON + 0.0002, BASE_LAT - 0.0001], abs=1e-6)
    assert patrol.selection["start_name"] == "县人民政府"
    assert patrol.legs["features"][0]["properties"]["from"] == "start"
    assert patrol.length_m > 300
    assert patrol.est_minutes > 0


def test_submitted_selection_with_nothing_waiting_is_a_clear_error(town, session):
    from app.services.core.errors import ValidationError
    from app.services.patrols.plan import create_patrols

    with pytest.raises(ValidationError, match="待核查"):
        create_patrols(session, town["users"]["inspector"], "submitted", {})


def test_density_selection_visits_the_busiest_cells_at_their_representative_points(
    town, factory, session
):
    from app.models import Cell
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    for k in range(3):
        _issue(factory, inspector, west_point(0), address=f"热点{k}")
    _issue(factory, inspector, east_point(5), address="冷点")

    stops, record = choose_stops(session, inspector, "density", {"top": "1"})

    assert record == {"kind": "density", "top": 1}
    assert len(stops) == 1
    busiest = session.execute(select(Cell).where(Cell.code == stops[0].info["cell_code"])).scalar()
    assert busiest.shape.contains(Point(*west_point(0)))
    point = busiest.shape.representative_point()
    assert (stops[0].lon, stops[0].lat) == pytest.approx((point.x, point.y))
    assert stops[0].info["open"] == 3
    assert stops[0].info["unit"] == "西区单位"
    with pytest.raises(Exception, match="top"):
        choose_stops(session, inspector, "density", {"top": "0"})


def test_unit_selection_takes_all_open_problems_of_that_unit_only(town, factory, session):
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    west = [_issue(factory, inspector, west_point(i), address=f"西{i}") for i in range(2)]
    west.append(_issue(factory, inspector, west_point(2), address="西2", status="submitted"))
    _issue(factory, inspector, east_point(0), address="东0")

    stops, _ = choose_stops(session, inspector, "unit", {"unit_id": town["west"].id})

    assert sorted(s.issue_id for s in stops) == sorted(i.id for i in west)
    with pytest.raises(Exception, match="单位"):
        choose_stops(session, inspector, "unit", {"unit_id": ""})


def test_hand_picked_issues_must_exist_and_be_placed(town, factory, session):
    from app.services.core.errors import NotFoundError, ValidationError
    from app.services.issues.intake import IssueInput, create_issue
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    a = _issue(factory, inspector, west_point(0), address="甲")
    b = _issue(factory, inspector, east_point(0), address="乙")
    unplaced = create_issue(session, inspector, IssueInput(description="没有地址的问题"))
    session.commit()

    stops, _ = choose_stops(
        session, inspector, "issues", {"issue_ids": [str(b.id), str(a.id), str(b.id)]}
    )
    assert [s.issue_id for s in stops] == [b.id, a.id]
    with pytest.raises(NotFoundError, match="99999"):
        choose_stops(session, inspector, "issues", {"issue_ids": [a.id, 99999]})
    with pytest.raises(ValidationError, match=f"问题 {unplaced.id} 尚未定位"):
        choose_stops(session, inspector, "issues", {"issue_ids": [unplaced.id]})
    with pytest.raises(ValidationError, match="至少选择一个问题"):
        choose_stops(session, inspector, "issues", {"issue_ids": []})


def test_points_clicked_on_the_map_become_stops_with_their_cell(town, session):
    from app.services.core.errors import ValidationError
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    stops, _ = choose_stops(
        session,
        inspector,
        "points",
        {"points": [f"{east_point(0)[0]},{east_point(0)[1]}", list(west_point(3))]},
    )
    assert [s.kind for s in stops] == ["point", "point"]
    assert stops[0].info["unit"] == "东区单位" and stops[1].info["unit"] == "西区单位"
    assert stops[0].info["cell_code"].startswith("532599001001")
    with pytest.raises(ValidationError, match=r"points\[0\]"):
        choose_stops(session, inspector, "points", {"points": ["116.4,39.9"]})
    with pytest.raises(ValidationError, match="纬度"):
        choose_stops(session, inspector, "points", {"points": ["103.5,abc"]})


def test_mock_sample_is_reproducible_by_seed_and_differs_with_another(town, session):
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    quotas = "农贸市场 2，背街小巷 1，餐饮 5"

    def draw(seed):
        stops, record = choose_stops(
            session, inspector, "sample", {"quotas": quotas, "seed": seed}
        )
        return [(s.kind, s.label, round(s.lon, 7), round(s.lat, 7)) for s in stops], record

    first, record = draw(42)
    again, _ = draw("42")
    other, _ = draw(43)
    assert first == again
    assert first != other
    assert record["seed"] == 42
    assert record["quotas"] == {"农贸市场": 2, "背街小巷": 1, "餐饮": 5}
    kinds = [k for k, *_ in first]
    assert kinds.count("poi") == 7 and kinds.count("lane") == 1
    lane = next(label for kind, label, *_ in first if kind == "lane")
    assert lane in LANES.values()
    # Reordering the quota text does not change the draw.
    reordered, _ = choose_stops(
        session, inspector, "sample", {"quotas": "餐饮 5, 背街小巷 1, 农贸市场 2", "seed": 42}
    )
    assert [(s.kind, s.label) for s in reordered] == [(k, n) for k, n, *_ in first]


def test_mock_sample_without_seed_records_one_and_refuses_unknown_types(town, session):
    from app.services.core.errors import ValidationError
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    stops, record = choose_stops(session, inspector, "sample", {"quotas": "餐饮 3"})
    again, _ = choose_stops(
        session, inspector, "sample", {"quotas": "餐饮 3", "seed": record["seed"]}
    )
    assert [s.label for s in stops] == [s.label for s in again]
    with pytest.raises(ValidationError, match="网吧"):
        choose_stops(session, inspector, "sample", {"quotas": "网吧 2", "seed": 1})
    with pytest.raises(ValidationError, match="餐饮"):
        choose_stops(session, inspector, "sample", {"quotas": "餐饮 很多", "seed": 1})


def test_unknown_selection_and_unit_heads_are_refused(town, session):
    from app.services.core.errors import ForbiddenError, ValidationError
    from app.services.patrols.stops import choose_stops

    with pytest.raises(ValidationError, match="selection"):
        choose_stops(session, town["users"]["inspector"], "everything", {})
    with pytest.raises(ForbiddenError):
        choose_stops(session, town["users"]["west"], "submitted", {})
    with pytest.raises(ForbiddenError):
        choose_stops(session, town["users"]["leader"], "submitted", {})


# ---- routing -----------------------------------------------------------------------------


def test_split_among_inspectors_covers_every_stop_once_with_balanced_lengths(town, session):
    from app.services.patrols.plan import plan_patrols
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    points = [list(west_point(i)) for i in range(8)] + [list(east_point(i)) for i in range(8)]
    stops, record = choose_stops(session, inspector, "points", {"points": points})
    created = plan_patrols(
        session, inspector, stops, n_inspectors=2, selection=record, name="分组巡查"
    )
    session.commit()

    assert len(created) == 2
    assert created[0].batch and created[0].batch == created[1].batch
    assert [p.name for p in created] == ["分组巡查 (1/2)", "分组巡查 (2/2)"]
    seen = sorted(s.info["index"] for p in created for s in p.stops)
    assert seen == list(range(16))
    lengths = sorted(p.length_m for p in created)
    assert lengths[1] <= 1.6 * lengths[0]


def test_road_graph_is_cached_per_layer_and_mode(town, session):
    from app.services.patrols.plan import road_graph

    walk = road_graph(session, "walk")
    assert road_graph(session, "walk") is walk
    drive = road_graph(session, "drive")
    assert drive is not walk and drive.mode == "drive"


def test_planning_without_roads_or_with_bad_options_is_refused(factory, session):
    from app.services.core.cache import reset_caches
    from app.services.core.errors import ValidationError
    from app.services.patrols.plan import plan_patrols
    from app.services.patrols.stops import choose_stops

    reset_caches()
    world = factory.town()
    inspector = world["users"]["inspector"]
    stops, _ = choose_stops(session, inspector, "points", {"points": [west_point(0)]})
    with pytest.raises(ValidationError, match="道路图层"):
        plan_patrols(session, inspector, stops)
    with pytest.raises(ValidationError, match="巡查人数"):
        plan_patrols(session, inspector, stops, n_inspectors=0)
    with pytest.raises(ValidationError, match="没有巡查点"):
        plan_patrols(session, inspector, [])


# ---- the API -----------------------------------------------------------------------------


def test_api_plans_a_patrol_along_the_roads(town, factory, client, session):
    inspector = town["users"]["inspector"]
    issues = [
        _issue(factory, inspector, p, address=f"点{k}")
        for k, p in enumerate([west_point(0), east_point(3), west_point(6), east_point(7)])
    ]
    token = _token(session, "inspector")

    response = client.post(
        "/api/v1/patrols",
        headers=_bearer(token),
        json={
            "issue_ids": [i.id for i in issues],
            "mode": "walk",
            "name": "API 巡查",
            "inspector": "inspector",
        },
    )

    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert sorted(data["order"]) == sorted(i.id for i in issues)
    assert data["length_m"] > 0 and data["est_minutes"] > 0
    assert data["pdf_url"].endswith(f"/patrols/{data['id']}/sheet.pdf")
    legs = data["legs"]
    assert legs["type"] == "FeatureCollection" and legs["features"]
    roads = _roads()
    rx, ry = _utm(np.array([c for g in roads.geometry for c in g.coords]))
    assert rx.size
    from shapely.geometry import MultiLineString

    road_lines = MultiLineString(
        [np.column_stack(_utm(np.array(g.coords))) for g in roads.geometry]
    )
    for feature in legs["features"]:
        assert feature["geometry"]["type"] == "LineString"
        xs, ys = _utm(np.array(feature["geometry"]["coordinates"]))
        for x, y in zip(xs, ys, strict=True):
            assert road_lines.distance(Point(x, y)) < 1.0
    # The stored patrol is what GET /api/v1/patrols/<id> shows, and its PDF is reachable
    # with the same token.
    detail = client.get(f"/api/v1/patrols/{data['id']}", headers=_bearer(token)).get_json()
    assert detail["order"] == data["order"]
    assert detail["inspector"] == "inspector"
    pdf = client.get(data["pdf_url"], headers=_bearer(token))
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_api_accepts_points_and_answers_point_indices_in_visiting_order(town, client, session):
    token = _token(session, "admin")
    points = [list(west_point(0)), list(east_point(7)), list(east_point(0))]
    response = client.post(
        "/api/v1/patrols",
        headers=_bearer(token),
        json={"points": points, "mode": "drive", "start": list(west_point(7))},
    )
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert sorted(data["order"]) == [0, 1, 2]
    assert data["start"] == pytest.approx(list(west_point(7)))
    assert data["legs"]["features"][0]["properties"]["from"] == "start"


def test_api_refuses_unit_heads_unknown_issues_and_bad_input(town, factory, client, session):
    issue = _issue(factory, town["users"]["inspector"], west_point(0), address="甲")
    west, inspector = _token(session, "west"), _token(session, "inspector")

    response = client.post(
        "/api/v1/patrols", headers=_bearer(west), json={"issue_ids": [issue.id], "mode": "walk"}
    )
    assert response.status_code == 403

    response = client.post(
        "/api/v1/patrols",
        headers=_bearer(inspector),
        json={"issue_ids": [issue.id, 987654], "mode": "walk"},
    )
    assert response.status_code == 404
    assert "987654" in response.get_json()["error"]

    bad = [
        ({"issue_ids": [issue.id], "mode": "fly"}, "mode"),
        ({"points": [[103.5]], "mode": "walk"}, "points"),
        ({"points": "103.5,22.8", "mode": "walk"}, "points"),
        ({"points": [], "mode": "walk"}, "points"),
        ({"points": [[116.39, 39.9]], "mode": "walk"}, "points"),
        ({"issue_ids": ["one"], "mode": "walk"}, "issue_ids"),
        ({"mode": "walk"}, "issue_ids"),
        ({"issue_ids": [issue.id], "points": [list(west_point(0))]}, "issue_ids"),
        ({"issue_ids": [issue.id], "start": [500, 22.8]}, "start"),
        ({"issue_ids": [issue.id], "inspector": "west"}, "inspector"),
    ]
    from app.models import Patrol

    for body, field in bad:
        response = client.post("/api/v1/patrols", headers=_bearer(inspector), json=body)
        assert response.status_code == 400, (body, response.get_json())
        assert response.get_json()["field"] == field, (body, response.get_json())
    response = client.post(
        "/api/v1/patrols",
        headers=_bearer(inspector),
        data="{not json",
        content_type="application/json",
    )
    assert response.status_code == 400
    assert client.post("/api/v1/patrols", json={"issue_ids": [issue.id]}).status_code == 401
    assert session.execute(select(func.count(Patrol.id))).scalar() == 0


# ---- pages, print, PDF, GPX/KML ----------------------------------------------------------


def _planned(town, factory, session, *, with_photo=False):
    from app.services.patrols.plan import plan_patrols
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    issues = [
        _issue(
            factory,
            inspector,
            west_point(0),
            address="幸福巷12号",
            status="submitted",
            description="垃圾桶满溢未清运",
        ),
        _issue(
            factory,
            inspector,
            east_point(2),
            address="桂花巷8号",
            status="submitted",
            description="墙面乱贴小广告",
        ),
        _issue(factory, inspector, west_point(5), address="东西3路6号", status="rectifying"),
    ]
    if with_photo:
        from app.config import current_settings
        from app.services.issues.photos import PhotoUpload, save_photo

        buf = io.BytesIO()
        Image.new("RGB", (160, 120), "orange").save(buf, format="JPEG")
        save_photo(
            session, inspector, issues[0], PhotoUpload("现场.jpg", buf.getvalue()), kind="before"
   , settings=current_settings()     )
        session.commit()
    stops, record = choose_stops(
        session, inspector, "issues", {"issue_ids": [i.id for i in issues]}
    )
    patrol = plan_patrols(session, inspector, stops, selection=record, name="城西复查")[0]
    session.commit()
    return patrol, issues


def test_planning_form_creates_a_patrol_and_shows_it(town, factory, client, auth, session):
    a = _issue(factory, town["users"]["inspector"], west_point(0), address="甲地")
    b = _issue(factory, town["users"]["inspector"], east_point(4), address="乙地")
    auth.login("inspector")
    page = client.get("/patrols/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="csrf_token"' in html and "巡查规划" in html and "模拟暗访抽样" in html
    assert "//cdn" not in html and "https://" not in html

    response = client.post(
        "/patrols/",
        data={
            "selection": "issues",
            "issue_ids": [str(a.id), str(b.id)],
            "mode": "walk",
            "office_start": "1",
            "return_to_start": "1",
            "n_inspectors": "1",
            "name": "表单巡查",
        },
    )
    assert response.status_code == 302
    detail = client.get(response.headers["Location"])
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200
    assert "表单巡查" in text and "甲地" in text and "乙地" in text
    assert "patrol-num" in text  # numbered stop markers on the map
    assert "https://" not in text


def test_planning_form_errors_keep_the_form_and_store_nothing(town, client, auth, session):
    from app.models import Patrol

    auth.login("inspector")
    response = client.post(
        "/patrols/",
        data={"selection": "points", "points": "103.5,abc", "mode": "walk", "n_inspectors": "1"},
    )
    assert response.status_code == 400
    assert "纬度" in response.get_data(as_text=True)
    response = client.post(
        "/patrols/",
        data={
            "selection": "sample",
            "quotas": "餐饮 2",
            "seed": "5",
            "mode": "boat",
            "n_inspectors": "1",
        },
    )
    assert response.status_code == 400
    assert session.execute(select(func.count(Patrol.id))).scalar() == 0


def test_unit_heads_cannot_see_or_plan_patrols(town, factory, client, auth, session):
    patrol, _ = _planned(town, factory, session)
    auth.login("west")
    assert client.get("/patrols/").status_code == 403
    assert client.post("/patrols/", data={"selection": "submitted"}).status_code == 403
    for url in (
        f"/patrols/{patrol.id}",
        f"/patrols/{patrol.id}/print",
        f"/patrols/{patrol.id}/sheet.pdf",
        f"/patrols/{patrol.id}/route.gpx",
        f"/patrols/{patrol.id}/results",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/patrols/{patrol.id}/results", data={}).status_code == 404


def test_pages_need_login(town, factory, client, session):
    patrol, _ = _planned(town, factory, session)
    for url in ("/patrols/", f"/patrols/{patrol.id}", f"/patrols/{patrol.id}/sheet.pdf"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_print_page_is_an_a4_sheet_with_the_stops_in_order(town, factory, client, auth, session):
    patrol, issues = _planned(town, factory, session, with_photo=True)
    auth.login("inspector")
    html = client.get(f"/patrols/{patrol.id}/print").get_data(as_text=True)
    assert "patrol-print.css" in html and "<svg" in html
    for word in (
        "序号",
        "地址",
        "网格编码",
        "责任单位",
        "问题摘要",
        "已整改",
        "未整改",
        "新发现",
        "备注",
        "巡查人",
        "日期",
        "签字",
    ):
        assert word in html, word
    positions = [html.index(s.issue.address) for s in patrol.stops]
    assert positions == sorted(positions)
    assert f"/issues/{issues[0].id}/photos/" in html  # the thumbnail
    assert html.count('class="stop-mark"') == len(patrol.stops)
    css = client.get("/static/css/patrol-print.css").get_data(as_text=True)
    assert "@page" in css and "A4" in css and "@media print" in css


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils not installed")
def test_pdf_sheet_embeds_a_cjk_font_and_names_every_stop(
    town, factory, client, auth, session, tmp_path
):
    patrol, issues = _planned(town, factory, session, with_photo=True)
    auth.login("inspector")
    response = client.get(f"/patrols/{patrol.id}/sheet.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    path = tmp_path / "sheet.pdf"
    path.write_bytes(response.data)

    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for issue in issues:
        assert issue.address in text
    for word in (
        "巡查路线单",
        "序号",
        "网格编码",
        "责任单位",
        "已整改",
        "未整改",
        "新发现",
        "签字",
        "西区单位",
        "东区单位",
        issues[0].cell.code,
    ):
        assert word in text, word
    assert f"{patrol.length_m / 1000:.2f} 公里" in text
    fonts = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True
    ).stdout
    from app.services.patrols import pdf as patrol_pdf

    try:
        patrol_pdf.find_cjk_font(configured=client.application.config.get("CJK_FONT"))
    except patrol_pdf.FontNotFoundError:
        assert patrol_pdf.CID_FONT_NAME in fonts  # no TrueType CJK font here: the CID one
    else:
        cjk = [line for line in fonts.splitlines() if "TrueType" in line]
        assert cjk and all(" yes " in line for line in cjk)  # embedded
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert len(images.strip().splitlines()) >= 3  # header lines + the photo thumbnail
    png = subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
        capture_output=True,
        check=True,
    )
    assert png.returncode == 0 and list(tmp_path.glob("page*.png"))


def test_font_discovery_names_the_package_when_no_cjk_font_exists():
    from app.services.patrols import pdf as patrol_pdf

    # No font configured (Settings.cjk_font None): only the candidates are searched.
    with pytest.raises(patrol_pdf.FontNotFoundError, match="fonts-wqy-zenhei"):
        patrol_pdf.find_cjk_font(
            candidates=(("/nonexistent/font.ttc", 0),), fontconfig=False, configured=None
        )
    # A CFF-outlined font (Noto CJK) is skipped, not half-used.
    noto = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    with pytest.raises(patrol_pdf.FontNotFoundError):
        patrol_pdf.find_cjk_font(candidates=((noto, 0),), fontconfig=False, configured=None)


def test_pdf_prints_the_chinese_with_no_system_font_at_all(town, factory, session, tmp_path):
    from app.services.patrols import pdf as patrol_pdf

    patrol, issues = _planned(town, factory, session)
    # No font configured, no file and no fontconfig: the built-in CID font carries the sheet.
    data = patrol_pdf.patrol_pdf(
        session,
        town["users"]["inspector"],
        patrol.id,
        cjk_font=None,
        font_candidates=(),
        fontconfig=False,
    )
    assert data.startswith(b"%PDF") and patrol_pdf.CID_FONT_NAME.encode() in data
    if not shutil.which("pdftotext"):
        pytest.skip("poppler-utils not installed: cannot read the text back")
    path = tmp_path / "sheet.pdf"
    path.write_bytes(data)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("巡查路线单", "城西复查", "网格编码", "责任单位", "签字", *[i.address for i in issues]):
        assert word in text, word


def test_gpx_and_kml_have_one_waypoint_per_stop(town, factory, client, auth, session):
    patrol, _ = _planned(town, factory, session)
    auth.login("inspector")
    gpx = client.get(f"/patrols/{patrol.id}/route.gpx")
    assert gpx.status_code == 200 and "attachment" in gpx.headers["Content-Disposition"]
    root = ET.fromstring(gpx.data)
    ns = {"g": "http://www.topografix.com/GPX/1/1"}
    names = [w.findtext("g:name", namespaces=ns) for w in root.findall("g:wpt", ns)]
    stop_names = [n for n in names if "起点" not in n and "终点" not in n]
    assert stop_names == [f"{s.seq}. {s.label}" for s in patrol.stops]
    assert len(root.findall(".//g:trkseg", ns)) == len(patrol.legs["features"])

    kml = ET.fromstring(client.get(f"/patrols/{patrol.id}/route.kml").data)
    kns = {"k": "http://www.opengis.net/kml/2.2"}
    points = [
        p
        for p in kml.iter("{http://www.opengis.net/kml/2.2}Placemark")
        if p.find("k:Point", kns) is not None
    ]
    labels = [p.findtext("k:name", namespaces=kns) for p in points]
    assert [n for n in labels if "起点" not in n] == stop_names
    assert client.get(f"/patrols/{patrol.id}/route.shp").status_code == 404


# ---- results -----------------------------------------------------------------------------


def test_results_close_send_back_and_report_new_problems(town, factory, client, auth, session):
    from app.models import Issue

    patrol, issues = _planned(town, factory, session)
    by_issue = {s.issue_id: s for s in patrol.stops}
    fixed, unfixed, other = (by_issue[i.id] for i in issues)
    auth.login("inspector")
    page = client.get(f"/patrols/{patrol.id}/results")
    assert page.status_code == 200 and 'name="csrf_token"' in page.get_data(as_text=True)

    response = client.post(
        f"/patrols/{patrol.id}/results",
        data={
            f"result_{fixed.id}": "fixed",
            f"remark_{fixed.id}": "已清运干净",
            f"result_{unfixed.id}": "not_fixed",
            f"remark_{unfixed.id}": "小广告仍在",
            f"result_{other.id}": "new",
            f"remark_{other.id}": "新发现：路边堆放建筑垃圾",
            f"category_{other.id}": "0302",
        },
    )
    assert response.status_code == 302
    session.expire_all()
    assert session.get(Issue, issues[0].id).status == "closed"
    sent_back = session.get(Issue, issues[1].id)
    assert sent_back.status == "rectifying" and sent_back.rework_count == 1
    assert sent_back.events[-1].note == "小广告仍在"
    stop = session.get(type(other), other.id)
    new = session.get(Issue, stop.new_issue_id)
    assert new.description == "新发现：路边堆放建筑垃圾"
    assert (new.lon, new.lat) == pytest.approx((other.lon, other.lat))
    assert new.category.code == "0302" and new.unit.name == "西区单位"
    assert [s.result for s in session.get(type(patrol), patrol.id).stops] != [None] * 3
    assert session.get(type(patrol), patrol.id).status == "done"

    # Saving the same form again creates nothing twice and changes nothing.
    count = session.execute(select(func.count(Issue.id))).scalar()
    client.post(
        f"/patrols/{patrol.id}/results",
        data={f"result_{other.id}": "new", f"remark_{other.id}": "新发现：路边堆放建筑垃圾"},
    )
    session.expire_all()
    assert session.execute(select(func.count(Issue.id))).scalar() == count


def test_a_bad_result_entry_leaves_nothing_half_written(town, factory, client, auth, session):
    from app.models import Issue, Stop

    patrol, issues = _planned(town, factory, session)
    by_issue = {s.issue_id: s for s in patrol.stops}
    auth.login("inspector")
    response = client.post(
        f"/patrols/{patrol.id}/results",
        data={
            f"result_{by_issue[issues[0].id].id}": "fixed",
            f"result_{by_issue[issues[1].id].id}": "not_fixed",  # no reason given
        },
    )
    assert response.status_code == 400
    assert "退回原因" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Issue, issues[0].id).status == "submitted"
    assert session.get(Stop, by_issue[issues[0].id].id).result is None
    response = client.post(
        f"/patrols/{patrol.id}/results", data={f"result_{by_issue[issues[0].id].id}": "maybe"}
    )
    assert response.status_code == 400


def test_leaders_may_read_patrols_but_not_enter_results(town, factory, client, auth, session):
    patrol, _ = _planned(town, factory, session)
    auth.login("leader")
    assert client.get(f"/patrols/{patrol.id}").status_code == 200
    assert client.get(f"/patrols/{patrol.id}/results").status_code == 403
    assert client.post(f"/patrols/{patrol.id}/results", data={}).status_code == 403


def test_an_end_point_makes_an_open_route_that_finishes_there(town, session):
    from app.services.patrols.plan import plan_patrols
    from app.services.patrols.stops import choose_stops

    inspector = town["users"]["inspector"]
    stops, record = choose_stops(
        session, inspector, "points", {"points": [west_point(0), east_point(2), west_point(4)]}
    )
    end = east_point(7)
    patrol = plan_patrols(
        session, inspector, stops, use_office_start=False, end=end, selection=record
    )[0]
    assert patrol.start is None and patrol.end == pytest.approx(list(end))
    assert patrol.legs["features"][-1]["properties"]["to"] == "end"
    assert not patrol.return_to_start
    with pytest.raises(Exception, match="终点"):
        plan_patrols(session, inspector, stops, end=end, n_inspectors=2)
