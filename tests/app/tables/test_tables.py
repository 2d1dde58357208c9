"""The admin's yearly tables: holiday calendar (DESIGN rule 5) and geocoder aliases."""

from __future__ import annotations

import io
import json
import re
from datetime import date, datetime

import geopandas as gpd
import pytest
from openpyxl import Workbook
from shapely.geometry import LineString, Point
from sqlalchemy import func, select

from app.models import AuditLog, CalendarYear, Issue, IssueEvent, WorkdayOverride
from app.services.core.errors import ForbiddenError, ValidationError
from app.services.grids import geocoding
from app.services.grids.layers import store_layer
from app.services.issues.intake import IssueInput, create_issue
from app.services.tables import workdays
from tests.factories import BASE_LAT, BASE_LON

# The State Council's (made-up) 2027 notice: New Year's Day on a Friday, Monday 4 January
# off as well, Saturday 9 January worked in exchange.
TABLE_2027 = "日期,类型,名称\n2027-01-01,放假,元旦\n2027-01-04,休,元旦\n2027-01-09,上班,元旦\n"


@pytest.fixture()
def town(factory, session):
    world = factory.town()
    workdays.seed_calendar(session)  # 2004–2026 from chinese-calendar, as on a real install
    session.commit()
    return world


def _csv(text: str, name: str = "节假日.csv"):
    return (io.BytesIO(text.encode("utf-8")), name)


def _xlsx(rows, name: str = "节假日.xlsx"):
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    return (buf, name)


def _payload(html: str) -> str:
    match = re.search(r'name="payload" value="([^"]*)"', html)
    assert match, "the preview offers no confirm form"
    import html as htmllib

    return htmllib.unescape(match[1])


def _upload_year(client, year, file):
    return client.post(
        "/admin/tables/holidays/import",
        data={"year": str(year), "file": file},
        content_type="multipart/form-data",
    )


def _import_year(client, year, file):
    preview = _upload_year(client, year, file)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    return client.post(
        "/admin/tables/holidays/import/confirm",
        data={"year": str(year), "payload": _payload(preview.get_data(as_text=True))},
    )


def _report_issue(session, user, found: datetime, lon: float, lat: float) -> Issue:
    """A problem found on ``found`` (2027: after today), as an imported list brings it: the
    intake without a user trusts the list's dates, which a form refuses (no back-dating)."""
    del user
    issue = create_issue(
        session,
        None,
        IssueInput(description="路边垃圾堆放", category="0302", lon=lon, lat=lat, found_at=found),
    )
    session.commit()
    return issue


def _report_data(session, issue: Issue) -> dict:
    return (
        session.execute(
            select(IssueEvent.data).where(
                IssueEvent.issue_id == issue.id, IssueEvent.action == "report"
            )
        ).scalar_one()
        or {}
    )


def _count(session, model, *where) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# ---------------------------------------------------------------------- deadlines in 2027


def test_2027_deadline_falls_back_to_weekends_and_says_so(town, session, client, auth):
    user = town["users"]["inspector"]
    lon, lat = BASE_LON + 0.0005, BASE_LAT - 0.0005
    # Friday 1 January 2027, category deadline 5 working days: no table for 2027.
    issue = _report_issue(session, user, datetime(2027, 1, 1, 9, 0), lon, lat)
    assert issue.deadline == date(2027, 1, 8)  # Mon 4 … Fri 8: weekends only
    warnings = _report_data(session, issue)["calendar_warnings"]
    assert warnings == ["2027 年的节假日安排尚未录入，按周末计算工作日"]

    auth.login("inspector")
    page = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert "2027 年的节假日安排尚未录入" in page

    auth.login("admin")
    holidays = client.get("/admin/tables/holidays").get_data(as_text=True)
    assert "2027 年节假日安排尚未录入，截止日期按周末计算" in holidays
    assert f'href="/issues/{issue.id}"' in holidays  # the problems concerned are named


def test_after_importing_2027_the_deadline_follows_the_table(town, session, client, auth):
    auth.login("admin")
    response = _import_year(client, 2027, _csv(TABLE_2027))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/tables/holidays/2027")
    assert session.get(CalendarYear, 2027).source == "admin"

    user = town["users"]["inspector"]
    lon, lat = BASE_LON + 0.0005, BASE_LAT - 0.0005
    issue = _report_issue(session, user, datetime(2027, 1, 1, 9, 0), lon, lat)
    # Mon 4 is a holiday (not counted), Sat 9 is a make-up workday (counted): Tue 5 …
    # Fri 8 are four, Sat 9 the fifth.
    assert issue.deadline == date(2027, 1, 9)
    assert "calendar_warnings" not in _report_data(session, issue)
    page = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert "按周末" not in page

    year = client.get("/admin/tables/holidays/2027").get_data(as_text=True)
    assert "2027-01-09" in year and "调休上班" in year and "元旦" in year
    overview = client.get("/admin/tables/holidays").get_data(as_text=True)
    assert "2027 年节假日安排尚未录入" not in overview


def test_problem_page_keeps_the_fallback_notice_after_the_year_is_entered(
    town, session, client, auth
):
    user = town["users"]["inspector"]
    issue = _report_issue(
        session, user, datetime(2027, 1, 1, 9, 0), BASE_LON + 0.0005, BASE_LAT - 0.0005
    )
    auth.login("admin")
    assert _import_year(client, 2027, _csv(TABLE_2027)).status_code == 302
    # The stored deadline was reckoned on weekends only: the page still says so.
    page = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert "整改时限按周末推算" in page
    overview = client.get("/admin/tables/holidays").get_data(as_text=True)
    assert "录入前上报的 1 个问题" in overview


def test_work_calendar_without_any_table_never_crashes(session, app):
    calendar = workdays.load_calendar(session)
    # Tue 30 Dec 2031 + 3: Wed 31, Thu 1 Jan (no table: just a Thursday), Fri 2.
    assert calendar.add_workdays(date(2031, 12, 30), 3) == date(2032, 1, 2)
    assert calendar.warnings == {
        "2031 年的节假日安排尚未录入，按周末计算工作日",
        "2032 年的节假日安排尚未录入，按周末计算工作日",
    }


# ---------------------------------------------------------------------- the holiday table


def test_overview_lists_known_years_with_counts(town, session, client, auth):
    auth.login("admin")
    page = client.get("/admin/tables/holidays")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    n_2026 = _count(
        session,
        WorkdayOverride,
        WorkdayOverride.day >= date(2026, 1, 1),
        WorkdayOverride.day <= date(2026, 12, 31),
        WorkdayOverride.is_workday,
    )
    assert 'href="/admin/tables/holidays/2026"' in html
    assert f"<td>{n_2026}</td>" in html
    assert "内置 (chinese-calendar)" in html
    # 2026 is known (today's and next year's banners depend on the real date).
    assert "2026 年节假日安排尚未录入" not in html

    overview = workdays.calendar_overview(session, None, today=date(2026, 11, 29))
    assert [m["year"] for m in overview["missing"]] == [2027]
    assert overview["missing"][0]["message"] == "2027 年节假日安排尚未录入，截止日期按周末计算"
    row = next(y for y in overview["years"] if y["year"] == 2026)
    assert row["workdays"] == n_2026 and row["holidays"] > 20


def test_empty_database_warns_for_this_year_and_next(factory, session, client, auth):
    factory.town()
    auth.login("admin")
    html = client.get("/admin/tables/holidays").get_data(as_text=True)
    this_year = date.today().year
    assert f"{this_year} 年节假日安排尚未录入，截止日期按周末计算" in html
    assert f"{this_year + 1} 年节假日安排尚未录入，截止日期按周末计算" in html


def test_xlsx_upload_with_date_cells_and_short_types(town, session, client, auth):
    auth.login("admin")
    rows = [
        ("2027年节假日安排",),
        ("日期", "类型", "名称"),
        (datetime(2027, 2, 6), "休", "春节"),
        ("2027年2月7日", "休", "春节"),
        ("2/20", "", ""),
        (datetime(2027, 2, 20), "班", ""),
    ]
    # "2/20" with an empty type is a bad row; without it the table is fine.
    bad = _upload_year(client, 2027, _xlsx(rows))
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "第 5 行: 日期「2/20」无法识别" in text
    assert "第 5 行: 类型「」无效" in text
    assert 'name="payload"' not in text

    rows.pop(4)
    assert _import_year(client, 2027, _xlsx(rows)).status_code == 302
    stored = {
        r.day: (r.is_workday, r.name)
        for r in session.execute(
            select(WorkdayOverride).where(WorkdayOverride.day >= date(2027, 1, 1))
        ).scalars()
    }
    assert stored == {
        date(2027, 2, 6): (False, "春节"),
        date(2027, 2, 7): (False, "春节"),
        date(2027, 2, 20): (True, "调休上班"),
    }


def test_bad_rows_are_named_and_nothing_is_written(town, session, client, auth):
    auth.login("admin")
    table = (
        "日期,类型,名称\n"
        "2027-13-01,放假,元旦\n"  # row 2: not a date
        "2026-12-31,放假,元旦\n"  # row 3: another year
        "2027-01-01,请假,元旦\n"  # row 4: unknown type
        "2027-01-04,放假,元旦\n"
        "2027-01-04,上班,元旦\n"
    )  # row 6: duplicate of row 5
    response = _upload_year(client, 2027, _csv(table))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "第 2 行: 日期「2027-13-01」无法识别" in text
    assert "第 3 行: 日期 2026-12-31 不在 2027 年内" in text
    assert "第 4 行: 类型「请假」无效" in text
    assert "第 6 行: 日期 2027-01-04 与第 5 行重复" in text
    assert session.get(CalendarYear, 2027) is None
    assert _count(session, WorkdayOverride, WorkdayOverride.day >= date(2027, 1, 1)) == 0


def test_confirm_checks_the_rows_again(town, session, client, auth):
    """A tampered or stale confirm form is refused whole; the year keeps its old table."""
    auth.login("admin")
    before = _count(session, WorkdayOverride, WorkdayOverride.day >= date(2026, 1, 1))
    rows = [
        {"row": 2, "date": "2026-10-01", "type": "放假", "name": "国庆节"},
        {"row": 3, "date": "2026-10-02", "type": "摸鱼", "name": ""},
    ]
    response = client.post(
        "/admin/tables/holidays/import/confirm", data={"year": "2026", "payload": json.dumps(rows)}
    )
    assert response.status_code == 400
    assert "第 3 行: 类型「摸鱼」无效" in response.get_data(as_text=True)
    assert _count(session, WorkdayOverride, WorkdayOverride.day >= date(2026, 1, 1)) == before
    assert session.get(CalendarYear, 2026).source == "chinese-calendar"

    garbage = client.post(
        "/admin/tables/holidays/import/confirm", data={"year": "2026", "payload": "{not json"}
    )
    assert garbage.status_code == 400
    assert "预览数据无效" in garbage.get_data(as_text=True)


def test_replacing_a_known_year_swaps_all_its_rows(town, session, client, auth):
    auth.login("admin")
    preview = _upload_year(client, 2026, _csv("日期,类型,名称\n2026-10-01,放假,国庆节\n"))
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200
    old = _count(
        session,
        WorkdayOverride,
        WorkdayOverride.day >= date(2026, 1, 1),
        WorkdayOverride.day <= date(2026, 12, 31),
    )
    assert f"现有的 {old} 条记录" in text
    assert _count(session, WorkdayOverride, WorkdayOverride.day >= date(2026, 1, 1)) == old
    client.post(
        "/admin/tables/holidays/import/confirm", data={"year": "2026", "payload": _payload(text)}
    )
    session.expire_all()
    days = (
        session.execute(
            select(WorkdayOverride.day).where(
                WorkdayOverride.day >= date(2026, 1, 1), WorkdayOverride.day <= date(2026, 12, 31)
            )
        )
        .scalars()
        .all()
    )
    assert days == [date(2026, 10, 1)]
    assert session.get(CalendarYear, 2026).source == "admin"
    assert _count(session, WorkdayOverride, WorkdayOverride.day < date(2026, 1, 1)) > 100
    assert "holidays_imported" in session.execute(select(AuditLog.action)).scalars().all()


@pytest.mark.parametrize(
    ("year", "file", "message"),
    [
        ("二〇二七", _csv(TABLE_2027), "年份「二〇二七」无效"),
        ("1850", _csv(TABLE_2027), "年份 1850 超出范围"),
        ("2027", _csv("名称,备注\n元旦,\n"), "找不到表头"),
        ("2027", _csv("日期,类型,名称\n"), "文件中没有数据行"),
        ("2027", (io.BytesIO(b"%PDF-1.4"), "通知.pdf"), "只接受 .xlsx、.xls、.csv"),
    ],
)
def test_unusable_uploads_are_refused(town, session, client, auth, year, file, message):
    auth.login("admin")
    response = _upload_year(client, year, file)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert session.get(CalendarYear, 2027) is None


def test_upload_without_file(town, client, auth):
    auth.login("admin")
    response = client.post("/admin/tables/holidays/import", data={"year": "2027"})
    assert response.status_code == 400
    assert "请选择节假日表文件" in response.get_data(as_text=True)


def test_year_page_for_a_missing_and_an_absurd_year(town, client, auth):
    auth.login("admin")
    missing = client.get("/admin/tables/holidays/2030")
    assert missing.status_code == 200
    assert "2030 年节假日安排尚未录入，截止日期按周末计算" in missing.get_data(as_text=True)
    assert client.get("/admin/tables/holidays/99999").status_code == 404


@pytest.mark.parametrize("username", ["inspector", "leader", "west", "east"])
def test_only_admins_touch_the_tables(town, session, client, auth, username):
    auth.login(username)
    assert client.get("/admin/tables/holidays").status_code == 403
    assert client.get("/admin/tables/holidays/2026").status_code == 403
    assert client.get("/admin/tables/aliases").status_code == 403
    assert _upload_year(client, 2027, _csv(TABLE_2027)).status_code == 403
    rows = [{"row": 2, "date": "2027-01-01", "type": "放假", "name": "元旦"}]
    confirm = client.post(
        "/admin/tables/holidays/import/confirm", data={"year": "2027", "payload": json.dumps(rows)}
    )
    assert confirm.status_code == 403
    assert (
        client.post(
            "/admin/tables/aliases", data={"alias": "老车站", "canonical": "人民路"}
        ).status_code
        == 403
    )
    assert session.get(CalendarYear, 2027) is None
    assert geocoding.aliases(session) == {}
    with pytest.raises(ForbiddenError):
        workdays.calendar_overview(session, town["users"][username])


def test_anonymous_is_sent_to_login(client, app):
    response = client.get("/admin/tables/holidays")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_nav_links_the_tables_for_admins_only(town, client, auth):
    auth.login("admin")
    assert 'href="/admin/tables/holidays"' in client.get("/admin/users").get_data(as_text=True)
    auth.login("inspector")
    assert "/admin/tables/" not in client.get("/issues/").get_data(as_text=True)


def test_cli_holidays_import_and_list(town, session, runner, tmp_path):
    path = tmp_path / "2027.csv"
    path.write_text(TABLE_2027, encoding="utf-8")
    result = runner.invoke(args=["holidays", "import", str(path), "--year", "2027"])
    assert result.exit_code == 0, result.output
    assert "2027 年节假日已更新: 放假 2 天, 调休上班 1 天" in result.output
    session.expire_all()
    assert session.get(CalendarYear, 2027).source == "admin"

    listed = runner.invoke(args=["holidays", "list"])
    assert listed.exit_code == 0
    assert re.search(r"2027\s+放假\s+2 天\s+调休上班\s+1 天\s+管理员录入", listed.output)
    assert re.search(r"2026\s+放假\s+\d+ 天.*内置", listed.output)


def test_cli_holidays_import_refuses_bad_input(town, session, runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("日期,类型,名称\n2027-01-01,放假,元旦\n2028-01-01,放假,元旦\n", encoding="utf-8")
    result = runner.invoke(args=["holidays", "import", str(bad), "--year", "2027"])
    assert result.exit_code != 0
    assert "第 3 行: 日期 2028-01-01 不在 2027 年内" in result.output
    assert session.get(CalendarYear, 2027) is None

    missing = runner.invoke(args=["holidays", "import", str(tmp_path / "no.csv"), "--year", "2027"])
    assert missing.exit_code != 0 and "文件不存在" in missing.output
    year = runner.invoke(args=["holidays", "import", str(bad), "--year", "abc"])
    assert year.exit_code != 0 and "年份「abc」无效" in year.output


# ---------------------------------------------------------------------- geocoder aliases


@pytest.fixture()
def places(town, session):
    """Two roads and two POIs inside the factory grid's west half."""
    roads = gpd.GeoDataFrame(
        {"name": ["人民路", "建设路"]},
        geometry=[
            LineString([(BASE_LON, BASE_LAT - 0.0015), (BASE_LON + 0.004, BASE_LAT - 0.0015)]),
            LineString([(BASE_LON + 0.002, BASE_LAT), (BASE_LON + 0.002, BASE_LAT - 0.004)]),
        ],
        crs=4326,
    )
    pois = gpd.GeoDataFrame(
        {"name": ["汽车站", "第一中学"], "type": ["车站", "学校"]},
        geometry=[
            Point(BASE_LON + 0.0005, BASE_LAT - 0.0005),
            Point(BASE_LON + 0.0035, BASE_LAT - 0.0035),
        ],
        crs=4326,
    )
    store_layer(session, roads, kind="roads", name="道路")
    store_layer(session, pois, kind="pois", name="兴趣点")
    session.commit()
    return town


def test_alias_makes_an_address_findable_at_once(places, session, client, auth):
    before = geocoding.geocoder_for(session).geocode_address("老车站门口")
    assert before.lon is None
    inspector = places["users"]["inspector"]
    queued = create_issue(
        session,
        inspector,
        IssueInput(description="站前垃圾", category="0302", address="老车站门口"),
    )
    session.commit()
    assert queued.needs_placement and queued.unit_id is None

    auth.login("admin")
    response = client.post("/admin/tables/aliases", data={"alias": "老车站", "canonical": "汽车站"})
    assert response.status_code == 302
    assert geocoding.aliases(session) == {"老车站": "汽车站"}

    after = geocoding.geocoder_for(session).geocode_address("老车站门口")
    assert after.method == "alias"
    assert (after.lon, after.lat) == pytest.approx((BASE_LON + 0.0005, BASE_LAT - 0.0005))
    placed = create_issue(
        session,
        inspector,
        IssueInput(description="站前又有垃圾", category="0302", address="老车站门口"),
    )
    session.commit()
    assert not placed.needs_placement
    assert placed.unit_id == places["west"].id  # the POI lies in the west unit's cell

    page = client.get("/admin/tables/aliases").get_data(as_text=True)
    assert "<td>老车站</td>" in page and "<td>汽车站</td>" in page and "<td>兴趣点</td>" in page
    assert '<option value="第一中学">' in page and '<option value="建设路">' in page


def test_alias_to_an_unknown_place_is_refused(places, session, client, auth):
    auth.login("admin")
    response = client.post("/admin/tables/aliases", data={"alias": "老车站", "canonical": "火车站"})
    assert response.status_code == 400
    assert "标准名称「火车站」不在当前道路、兴趣点或社区图层中" in response.get_data(as_text=True)
    assert geocoding.aliases(session) == {}


@pytest.mark.parametrize(
    ("alias", "canonical", "message"),
    [
        ("", "汽车站", "别名为空"),
        ("老车站", "", "标准名称为空"),
        ("汽车站", "汽车站", "与标准名称相同"),
        ("人民路", "汽车站", "本身就是图层中的道路名称「人民路」"),
        ("长" * 61, "汽车站", "过长"),
    ],
)
def test_bad_alias_pairs(places, session, alias, canonical, message):
    with pytest.raises(ValidationError, match=message):
        geocoding.save_alias(session, places["users"]["admin"], alias, canonical)
    session.rollback()
    assert geocoding.aliases(session) == {}


def test_edit_rename_and_delete_an_alias(places, session, client, auth):
    auth.login("admin")
    client.post("/admin/tables/aliases", data={"alias": "老车站", "canonical": "汽车站"})
    client.post("/admin/tables/aliases", data={"alias": "一中", "canonical": "第一中学"})
    taken = client.post("/admin/tables/aliases", data={"alias": "一中", "canonical": "汽车站"})
    assert taken.status_code == 409 and "别名「一中」已存在" in taken.get_data(as_text=True)

    edit = client.get("/admin/tables/aliases?edit=老车站").get_data(as_text=True)
    assert 'name="old_alias" value="老车站"' in edit
    renamed = client.post(
        "/admin/tables/aliases",
        data={"old_alias": "老车站", "alias": "客运站", "canonical": "汽车站"},
    )
    assert renamed.status_code == 302
    assert geocoding.aliases(session) == {"客运站": "汽车站", "一中": "第一中学"}
    # Renaming onto another existing alias would silently drop it: refused.
    clash = client.post(
        "/admin/tables/aliases",
        data={"old_alias": "客运站", "alias": "一中", "canonical": "汽车站"},
    )
    assert clash.status_code == 409
    gone = client.post(
        "/admin/tables/aliases",
        data={"old_alias": "不存在", "alias": "新名", "canonical": "汽车站"},
    )
    assert gone.status_code == 404

    deleted = client.post("/admin/tables/aliases/delete", data={"alias": "一中"})
    assert deleted.status_code == 302
    assert geocoding.aliases(session) == {"客运站": "汽车站"}
    assert client.post("/admin/tables/aliases/delete", data={"alias": "一中"}).status_code == 404
    actions = session.execute(select(AuditLog.action)).scalars().all()
    assert actions.count("alias_saved") == 3 and actions.count("alias_deleted") == 1


def test_bulk_upload_merges_or_refuses_whole(places, session, client, auth):
    auth.login("admin")
    geocoding.save_alias(session, None, "旧名", "人民路")
    session.commit()
    table = (
        "别名,标准名称\n"
        "老车站,汽车站\n"
        "一中,火车站\n"  # row 3: unknown place
        ",建设路\n"  # row 4: no alias
        "老车站,人民路\n"
    )  # row 5: same alias, another target
    bad = client.post(
        "/admin/tables/aliases/import",
        data={"file": _csv(table, "别名.csv")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "第 3 行: 标准名称「火车站」不在当前道路、兴趣点或社区图层中" in text
    assert "第 4 行: 别名为空" in text
    assert "第 5 行: 别名「老车站」与第 2 行重复且标准名称不同" in text
    assert geocoding.aliases(session) == {"旧名": "人民路"}

    good = _xlsx([("别名", "标准名称"), ("老车站", "汽车站"), ("一中", "第一中学")], "别名.xlsx")
    ok = client.post(
        "/admin/tables/aliases/import", data={"file": good}, content_type="multipart/form-data"
    )
    assert ok.status_code == 302
    assert geocoding.aliases(session) == {"旧名": "人民路", "老车站": "汽车站", "一中": "第一中学"}

    replace = client.post(
        "/admin/tables/aliases/import",
        data={"file": _csv("别名,标准名称\n二中,第一中学\n", "a.csv"), "replace": "1"},
        content_type="multipart/form-data",
    )
    assert replace.status_code == 302
    assert geocoding.aliases(session) == {"二中": "第一中学"}


def test_alias_page_flags_a_target_that_left_the_layers(places, session, client, auth):
    geocoding.set_aliases(session, {"老站": "已拆除的站"})
    session.commit()
    auth.login("admin")
    page = client.get("/admin/tables/aliases").get_data(as_text=True)
    assert "图层中已无此名称" in page


def test_cli_aliases_import(places, session, runner, tmp_path):
    good = tmp_path / "aliases.csv"
    good.write_text("别名,标准名称\n老车站,汽车站\n", encoding="utf-8")
    result = runner.invoke(args=["aliases", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "新增 1 条" in result.output
    session.expire_all()
    assert geocoding.aliases(session) == {"老车站": "汽车站"}
    listed = runner.invoke(args=["aliases", "list"])
    assert "老车站\t汽车站" in listed.output

    bad = tmp_path / "bad.csv"
    bad.write_text("别名,标准名称\n北站,北站广场\n", encoding="utf-8")
    refused = runner.invoke(args=["aliases", "import", str(bad)])
    assert refused.exit_code != 0
    assert "第 2 行: 标准名称「北站广场」不在" in refused.output
    session.expire_all()
    assert geocoding.aliases(session) == {"老车站": "汽车站"}


def test_demo_county_alias_reaches_its_bus_station(demo_app):
    """On the seeded demo county: an alias to a real POI resolves at once, then is undone."""
    from app.extensions import db

    with demo_app.app_context():
        session = db.session
        saved = geocoding.aliases(session)
        try:
            assert geocoding.geocoder_for(session).geocode_address("老车站门口").lon is None
            geocoding.save_alias(session, None, "老车站", "云岭县客运站")
            result = geocoding.geocoder_for(session).geocode_address("老车站门口")
            assert result.method == "alias"
            assert (result.lon, result.lat) == pytest.approx((103.4130606, 22.8548197))
        finally:
            session.rollback()
            assert geocoding.aliases(session) == saved
            session.remove()


# ---- #13: ids and numbers no database can hold ---------------------------------------------

BIG = "99999999999999999999"


@pytest.mark.parametrize(
    ("method", "url", "data", "status"),
    [
        ("post", "/admin/tables/unit-aliases/",
         {"alias_id": BIG, "alias": "县环卫站", "unit": "东区单位"}, 404),
        ("post", "/admin/tables/unit-aliases/delete", {"alias_id": BIG}, 404),
        ("post", "/admin/tables/holidays/import/confirm", {"year": BIG, "payload": "[]"}, 400),
        ("post", "/admin/tables/holidays/import", {"year": BIG}, 400),
        ("post", "/admin/tables/categories/0302",
         {"name": "背街小巷", "deadline_days": BIG, "points": BIG}, 400),
        ("post", f"/admin/tables/categories/{BIG}",
         {"name": "a", "deadline_days": "5", "points": "1"}, 404),
        ("post", "/admin/tables/category-aliases",
         {"alias": "垃圾", "category": BIG, "old_alias": BIG}, 400),
        ("post", "/admin/tables/category-aliases/delete", {"alias": BIG}, 404),
        ("post", "/admin/tables/aliases", {"alias": "北站", "canonical": BIG, "old_alias": BIG},
         400),
        ("post", "/admin/tables/aliases/delete", {"alias": BIG}, 404),
        ("post", "/issues/pending/", {"issue_id": [BIG], "category": "0302"}, 404),
        ("post", "/issues/pending/", {"issue_id": ["2147483648", "999999999999"],
                                      "category": "0302"}, 404),
        ("post", "/issues/pending/settings", {"days": BIG}, 400),
        ("get", f"/admin/tables/holidays/{BIG}", None, 404),
        ("get", "/admin/tables/holidays/2147483648", None, 404),
        ("get", f"/admin/tables/unit-aliases/?edit={BIG}", None, 200),
    ],
)
def test_admin_tables_answer_impossible_numbers_without_a_500(
    client, auth, town, method, url, data, status
):
    """Regression (#13): 99999999999999999999 overflowed the driver (PostgreSQL: ids are
    32-bit) and answered 500; now every table door says 404 (no such row) or 400."""
    auth.login("admin")
    response = getattr(client, method)(url, data=data) if data else client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
