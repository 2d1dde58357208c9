"""Problem list, export, report form, detail page and 待定位 queue, per role."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.models import Issue, IssueEvent, Photo
from tests.factories import east_point, jpeg_bytes, photo_files, upload, west_point


@pytest.fixture(autouse=True)
def _own_photo_dir(app, tmp_path):
    """Each test stores photos in its own directory, so "nothing left behind" is checkable."""
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")


@pytest.fixture()
def town(factory):
    """The usual test world with two west problems and one east problem."""
    town = factory.town()
    inspector = town["users"]["inspector"]
    town["w1"] = factory.issue(
        inspector, lon=west_point(0)[0], lat=west_point(0)[1], description="西区垃圾一"
    )
    town["w2"] = factory.issue(
        inspector,
        lon=west_point(3)[0],
        lat=west_point(3)[1],
        description="西区垃圾二",
        source="州级交叉检查",
    )
    town["e1"] = factory.issue(
        inspector, lon=east_point(1)[0], lat=east_point(1)[1], description="东区垃圾一"
    )
    return town


def _rows(client, query: str = "") -> str:
    response = client.get(f"/issues/{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


# ---- list --------------------------------------------------------------------------------


def test_list_requires_login(client, town):
    response = client.get("/issues/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_admin_list_shows_all_newest_first_with_columns(client, auth, town):
    auth.login("admin")
    html = _rows(client)
    for header in (
        "编号",
        "状态",
        "类别",
        "描述",
        "地点",
        "网格",
        "责任单位",
        "发现时间",
        "整改时限",
        "返工次数",
    ):
        assert f"<th>{header}</th>" in html
    assert html.index("东区垃圾一") < html.index("西区垃圾二") < html.index("西区垃圾一")
    assert "共 <b>3</b> 条" in html


def test_unit_head_list_has_only_own_unit(client, auth, town):
    auth.login("west")
    html = _rows(client)
    assert "西区垃圾一" in html and "西区垃圾二" in html
    assert "东区垃圾一" not in html
    # Naming the other unit in the filter does not leak its rows either.
    html = _rows(client, f"?unit={town['east'].id}")
    assert "东区垃圾一" not in html and "共 <b>0</b> 条" in html


def test_list_filters(client, auth, town, session):
    auth.login("admin")
    assert "东区垃圾一" not in _rows(client, f"?unit={town['west'].id}")
    html = _rows(client, "?source=州级交叉检查")
    assert "西区垃圾二" in html and "西区垃圾一" not in html
    assert "共 <b>3</b> 条" in _rows(client, "?category=03")  # level 1 takes its children
    assert "共 <b>3</b> 条" in _rows(client, "?category=0302")
    assert "共 <b>0</b> 条" in _rows(client, "?category=0601")
    cell = town["e1"].cell.code
    html = _rows(client, f"?cell={cell}")
    assert "东区垃圾一" in html and "西区垃圾" not in html
    assert "共 <b>3</b> 条" in _rows(client, "?status=open")
    assert "共 <b>0</b> 条" in _rows(client, "?status=closed")
    # Overdue: push one deadline into the past.
    issue = session.get(Issue, town["w1"].id)
    issue.deadline = date.today() - timedelta(days=3)
    session.commit()
    html = _rows(client, "?overdue=1")
    assert "西区垃圾一" in html and "共 <b>1</b> 条" in html and "已逾期" in html
    # Date range on found_at.
    issue.found_at = issue.found_at - timedelta(days=40)
    session.commit()
    old = issue.found_at.date().isoformat()
    html = _rows(client, f"?from={old}&to={old}")
    assert "共 <b>1</b> 条" in html and "西区垃圾一" in html
    today = date.today().isoformat()
    assert "共 <b>2</b> 条" in _rows(client, f"?from={today}")


def test_list_bad_filters_are_named(client, auth, town):
    auth.login("admin")
    response = client.get("/issues/?from=2024-13-40")
    assert response.status_code == 400
    assert "开始日期" in response.get_data(as_text=True)
    response = client.get("/issues/?status=bogus")
    assert response.status_code == 400 and "状态" in response.get_data(as_text=True)
    response = client.get("/issues/?from=2024-05-02&to=2024-05-01")
    assert response.status_code == 400


def test_list_paginates(client, auth, factory, session):
    town = factory.town()
    inspector = town["users"]["inspector"]
    # Same place, so the duplicate check is switched off: 55 separate problems.
    from app.services.issues.intake import IssueInput, create_issue

    for i in range(55):
        create_issue(
            session,
            inspector,
            IssueInput(
                description=f"问题第{i:02d}号",
                category="0302",
                lon=west_point(0)[0],
                lat=west_point(0)[1],
            ),
            check_duplicates=False,
        )
    session.commit()
    auth.login("admin")
    first = _rows(client)
    assert "第 1 / 2 页" in first and "问题第54号" in first and "问题第04号" not in first
    second = _rows(client, "?page=2")
    assert "问题第04号" in second and "问题第54号" not in second
    assert "下一页" in first and "上一页" in second


def test_map_link_keeps_filters(client, auth, town):
    auth.login("admin")
    html = _rows(client, f"?status=open&unit={town['west'].id}&overdue=1")
    assert f'href="/?status=open&amp;unit={town["west"].id}&amp;overdue=1"' in html


# ---- export ------------------------------------------------------------------------------


def _export(client, query: str = "") -> list[tuple]:
    response = client.get(f"/issues/export.xlsx{query}")
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert "private" in response.headers["Cache-Control"]
    ws = load_workbook(io.BytesIO(response.data)).active
    return list(ws.iter_rows(values_only=True))


def test_export_has_exactly_filtered_rows(client, auth, town):
    auth.login("admin")
    rows = _export(client)
    assert rows[0][:2] == ("编号", "状态")
    assert {r[0] for r in rows[1:]} == {town["w1"].id, town["w2"].id, town["e1"].id}
    rows = _export(client, "?source=州级交叉检查")
    assert [r[0] for r in rows[1:]] == [town["w2"].id]
    row = rows[1]
    assert row[1] == "已上报" and row[3] == "背街小巷" and row[9] == "西区单位"


def test_unit_head_export_has_no_other_unit_rows(client, auth, town):
    auth.login("east")
    rows = _export(client)
    assert [r[0] for r in rows[1:]] == [town["e1"].id]
    assert all(r[9] == "东区单位" for r in rows[1:])
    rows = _export(client, f"?unit={town['west'].id}")
    assert rows[1:] == []


# ---- detail ------------------------------------------------------------------------------


def test_detail_page_shows_fields_map_and_history(client, auth, town):
    auth.login("admin")
    issue = town["w1"]
    html = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert "西区垃圾一" in html and issue.cell.code in html and "西区单位" in html
    assert "剩余" in html and "个工作日" in html
    assert "定位方式" in html and "coordinates" in html
    assert "处置记录" in html and "上报" in html
    assert "L.map" in html or "leaflet" in html.lower()
    assert f'name="version" value="{issue.version}"' in html
    assert "/act/dispatch" in html


def test_detail_404_for_other_unit_head(client, auth, town):
    auth.login("east")
    response = client.get(f"/issues/{town['w1'].id}")
    assert response.status_code == 404
    assert "西区垃圾一" not in response.get_data(as_text=True)
    assert client.get("/issues/999999").status_code == 404
    assert client.get(f"/issues/{town['e1'].id}").status_code == 200


def test_detail_actions_follow_role_and_status(client, auth, town):
    auth.login("leader")
    html = client.get(f"/issues/{town['w1'].id}").get_data(as_text=True)
    assert "/act/" not in html  # read-only
    auth.login("west")
    html = client.get(f"/issues/{town['w1'].id}").get_data(as_text=True)
    assert "/act/dispatch" not in html and "/act/start" not in html  # not dispatched yet
    auth.login("inspector")
    html = client.get(f"/issues/{town['w1'].id}").get_data(as_text=True)
    assert "/act/dispatch" not in html and "/act/reject" in html


def test_detail_shows_possible_duplicates_and_recurrence(client, auth, town, factory, session):
    inspector = town["users"]["inspector"]
    lon, lat = west_point(0)
    dup = factory.issue(inspector, lon=lon + 0.00005, lat=lat, description="又一处垃圾")
    auth.login("admin")
    html = client.get(f"/issues/{dup.id}").get_data(as_text=True)
    assert "可能重复" in html and f"/issues/{town['w1'].id}" in html
    # Close the east problem, then report the same category at the same place: 反弹.
    from app.services.issues.intake import transition

    admin = town["users"]["admin"]
    east = town["users"]["east"]
    e1 = town["e1"].id
    transition(session, admin, e1, "dispatch")
    transition(session, east, e1, "submit")
    transition(session, inspector, e1, "verify_ok")
    session.commit()
    again = factory.issue(
        inspector, lon=east_point(1)[0], lat=east_point(1)[1], description="东区垃圾又出现"
    )
    html = client.get(f"/issues/{again.id}").get_data(as_text=True)
    assert "反弹问题" in html and f"/issues/{e1}" in html


# ---- report form -------------------------------------------------------------------------


def test_new_form_renders_grouped_categories_and_camera_input(client, auth, town):
    auth.login("inspector")
    html = client.get("/issues/new").get_data(as_text=True)
    assert '<optgroup label="03 市容环境卫生">' in html
    assert 'capture="environment"' in html and 'accept="image/*"' in html
    assert "GCJ-02" in html and "BD-09" in html
    assert "data-pick-map=" in html and "/static/js/issues.js" in html
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html


def test_leader_may_not_report(client, auth, town):
    auth.login("leader")
    assert client.get("/issues/new").status_code == 403


def test_report_with_point_creates_issue_and_redirects(client, auth, town, session):
    auth.login("inspector")
    lon, lat = west_point(5)
    response = client.post(
        "/issues/new",
        data={
            "category": "0302",
            "description": "路边绿化带内有垃圾",
            "source": "县级督查",
            "lon": f"{lon}",
            "lat": f"{lat}",
            "crs": "wgs84",
            "photos": [upload(jpeg_bytes(), "a.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    issue = session.execute(
        select(Issue).where(Issue.description == "路边绿化带内有垃圾")
    ).scalar_one()
    assert response.headers["Location"].endswith(f"/issues/{issue.id}")
    assert issue.unit.name == "西区单位" and issue.cell is not None
    assert [p.kind for p in issue.photos] == ["before"]
    assert issue.photos[0].event_id == issue.events[0].id


def test_report_gcj02_point_is_converted(client, auth, town, session):
    from gis.crs import wgs84_to_gcj02

    auth.login("inspector")
    lon, lat = west_point(2)
    glon, glat = wgs84_to_gcj02(lon, lat)
    response = client.post(
        "/issues/new",
        data={
            "category": "0302",
            "description": "高德坐标问题",
            "lon": f"{float(glon):.7f}",
            "lat": f"{float(glat):.7f}",
            "crs": "gcj02",
        },
    )
    assert response.status_code == 302
    issue = session.execute(select(Issue).where(Issue.description == "高德坐标问题")).scalar_one()
    assert issue.lon == pytest.approx(lon, abs=2e-6) and issue.lat == pytest.approx(lat, abs=2e-6)


def test_report_places_by_photo_gps_when_no_point_or_address(client, auth, town, session):
    auth.login("inspector")
    lon, lat = east_point(0)
    response = client.post(
        "/issues/new",
        data={
            "category": "0302",
            "description": "照片定位问题",
            "photos": [upload(jpeg_bytes(gps=(lon, lat)), "gps.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    issue = session.execute(select(Issue).where(Issue.description == "照片定位问题")).scalar_one()
    assert issue.geocode_method == "photo_exif"
    assert issue.lon == pytest.approx(lon, abs=1e-5) and issue.lat == pytest.approx(lat, abs=1e-5)
    assert issue.unit.name == "东区单位" and not issue.needs_placement


def test_report_point_in_another_province_is_refused_and_nothing_stored(
    client, auth, town, session, app
):
    auth.login("inspector")
    before = session.execute(select(func.count()).select_from(Issue)).scalar_one()
    files_before = photo_files(app.config["PHOTO_DIR"])
    response = client.post(
        "/issues/new",
        data={
            "category": "0302",
            "description": "北京的问题",
            "lon": "116.397",
            "lat": "39.909",
            "crs": "wgs84",
            "photos": [upload(jpeg_bytes(), "far.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "不在本县城范围内" in html and "116.397" in html
    assert "北京的问题" in html  # the form keeps what was typed
    session.rollback()
    assert session.execute(select(func.count()).select_from(Issue)).scalar_one() == before
    assert session.execute(select(func.count()).select_from(Photo)).scalar_one() == 0
    assert photo_files(app.config["PHOTO_DIR"]) == files_before


def test_report_missing_description_is_named(client, auth, town, session):
    auth.login("inspector")
    response = client.post("/issues/new", data={"category": "0302", "description": " "})
    assert response.status_code == 400
    assert "问题描述" in response.get_data(as_text=True)
    response = client.post(
        "/issues/new",
        data={"category": "0302", "description": "x", "lon": "103.5", "lat": "22.8", "crs": "utm"},
    )
    assert response.status_code == 400 and "坐标系" in response.get_data(as_text=True)


def test_unit_head_cannot_file_against_another_units_cell(client, auth, town, session):
    """A unit head reports only as 自查 inside their own cells (the ranking is at stake);
    the refusal does not name the cell's owner."""
    auth.login("west")
    lon, lat = east_point(2)
    response = client.post(
        "/issues/new",
        data={
            "category": "0302",
            "description": "西区人员发现东区问题",
            "lon": f"{lon}",
            "lat": f"{lat}",
        },
    )
    assert response.status_code == 403
    assert "东区单位" not in response.get_data(as_text=True)
    assert session.execute(
        select(Issue).where(Issue.description == "西区人员发现东区问题")
    ).scalar_one_or_none() is None


def test_report_without_place_is_queued_not_dropped(client, auth, town, session):
    auth.login("inspector")
    response = client.post("/issues/new", data={"category": "0302", "description": "无位置问题"})
    assert response.status_code == 302
    issue = session.execute(select(Issue).where(Issue.description == "无位置问题")).scalar_one()
    assert issue.needs_placement and issue.lon is None


# ---- 待定位 queue -------------------------------------------------------------------------


def _queued(session, inspector, *, candidates=None):
    from app.services.issues.intake import IssueInput, create_issue

    issue = create_issue(
        session,
        inspector,
        IssueInput(description="地址不清的问题", category="0302", address="某某巷子里"),
    )
    issue.geocode_candidates = candidates or []
    session.commit()
    assert issue.needs_placement
    return issue


def test_queue_lists_needs_placement_with_candidates(client, auth, town, session):
    lon, lat = east_point(3)
    issue = _queued(
        session,
        town["users"]["inspector"],
        candidates=[{"name": "东街", "kind": "road", "lon": lon, "lat": lat, "score": 0.4}],
    )
    auth.login("inspector")
    html = client.get("/issues/queue").get_data(as_text=True)
    assert "地址不清的问题" in html and "某某巷子里" in html and "东街" in html
    assert f"/issues/{issue.id}/place" in html
    assert "西区垃圾一" not in html  # placed problems are not queued


def test_queue_is_for_placers_only(client, auth, town):
    auth.login("west")
    assert client.get("/issues/queue").status_code == 403
    auth.login("leader")
    assert client.get("/issues/queue").status_code == 403


def test_place_manually_from_queue(client, auth, town, session):
    issue = _queued(session, town["users"]["inspector"])
    lon, lat = east_point(3)
    auth.login("inspector")
    response = client.post(
        f"/issues/{issue.id}/place",
        data={"lon": f"{lon}", "lat": f"{lat}", "version": issue.version, "next": "queue"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/issues/queue")
    session.expire_all()
    issue = session.get(Issue, issue.id)
    assert not issue.needs_placement and issue.geocode_method == "manual"
    assert issue.unit.name == "东区单位" and issue.cell is not None
    assert session.execute(
        select(IssueEvent.action).where(IssueEvent.issue_id == issue.id).order_by(IssueEvent.id)
    ).scalars().all() == ["report", "place"]
    assert "地址不清的问题" not in client.get("/issues/queue").get_data(as_text=True)
    # Placing again is a conflict, not a silent move.
    response = client.post(
        f"/issues/{issue.id}/place",
        data={"lon": f"{lon}", "lat": f"{lat}", "version": issue.version},
    )
    assert response.status_code == 409


def test_place_outside_county_or_stale_is_refused(client, auth, town, session):
    issue = _queued(session, town["users"]["inspector"])
    auth.login("inspector")
    response = client.post(
        f"/issues/{issue.id}/place", data={"lon": "116.4", "lat": "39.9", "version": issue.version}
    )
    assert response.status_code == 400 and "不在本县城范围内" in response.get_data(as_text=True)
    lon, lat = west_point(1)
    response = client.post(
        f"/issues/{issue.id}/place",
        data={"lon": f"{lon}", "lat": f"{lat}", "version": issue.version + 5},
    )
    assert response.status_code == 409
    assert "该问题已被他人修改" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Issue, issue.id).needs_placement


# ---- the whole demo county ---------------------------------------------------------------


def test_demo_county_pages_render(demo_client, demo_auth):
    demo_auth.login("admin", "demo1234")
    html = demo_client.get("/issues/").get_data(as_text=True)
    assert "问题清单" in html
    ids = [int(x) for x in re.findall(r'href="/issues/(\d+)"', html)][:5]
    assert ids
    for issue_id in ids:
        assert demo_client.get(f"/issues/{issue_id}").status_code == 200
    assert demo_client.get("/issues/queue").status_code == 200
    assert demo_client.get("/issues/new").status_code == 200
    assert demo_client.get("/issues/export.xlsx?status=open").status_code == 200
