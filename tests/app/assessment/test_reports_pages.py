"""Report pages: who sees what, publishing and appeals over HTTP, print and demo county."""

from __future__ import annotations

import re

import pytest

from app.models import Assessment, Setting
from tests.app.assessment._month import MONTH, build_month


@pytest.fixture()
def world(session, factory):
    built = build_month(session, factory)
    session.add(
        Setting(
            key="assessment_lists",
            value={
                "red_top": 1,
                "red_min_score": 90,
                "black_bottom": 1,
                "black_max_score": 90,
                "interview_after": 2,
                "red_min_received": 1,
            },
        )
    )
    session.commit()
    return built


def _ranking_rows(html: str) -> list[tuple[str, str]]:
    """(row class, unit name) for each ranking row of the page."""
    body = html.split('<table class="data ranking">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr class="([^"]*)">\s*<td class="num">\d+</td>\s*<td class="name">'
        r"\s*(?:<a [^>]*>)?([^<\s]+)",
        body,
    )
    return [(cls.strip(), name) for cls, name in rows]


def test_pages_need_login(world, client):
    for url in (
        "/reports/",
        "/reports/readiness",
        f"/reports/export.xlsx?month={MONTH}",
        f"/reports/print?month={MONTH}",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_monthly_page_shows_ranking_lists_formula_map_and_trends(world, client, auth):
    auth.login("leader")
    response = client.get(f"/reports/?month={MONTH}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "本县创建国家卫生县城工作2026年9月考核通报" in html
    assert "未发布" in html
    assert _ranking_rows(html) == [
        ("", "北区单位"),
        ("row-red", "东区单位"),
        ("row-black", "西区单位"),
    ]
    assert "计分办法与指标口径" in html and "按期销号率" in html
    assert "↑1" in html and "↓1" in html
    assert "<svg" in html and "各类问题受理数" in html
    assert "/vendor/leaflet/leaflet.js" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from outside hosts
    assert "发布 2026-09 考核结果" not in html  # leaders do not publish


def test_unit_head_sees_ranking_but_not_other_units_details(world, client, auth, session):
    town = world["town"]
    auth.login("west")
    html = client.get(f"/reports/?month={MONTH}").get_data(as_text=True)
    assert "东区单位" in html and "98.00" in html  # the ranking is public in the county
    east_link = f"/reports/{MONTH}/units/{town['east'].id}"
    west_link = f"/reports/{MONTH}/units/{town['west'].id}"
    assert west_link in html and east_link not in html
    assert client.get(east_link).status_code == 404
    own = client.get(west_link)
    assert own.status_code == 200
    assert f"#{world['ids']['W4']}" in own.get_data(as_text=True)
    assert client.get(f"/issues/{world['ids']['E1']}").status_code == 404
    assert client.post("/reports/publish", data={"month": MONTH}).status_code == 403
    assert session.query(Assessment).count() == 0
    # The month's map shows only the unit's own cells.
    codes = set(re.findall(r'"properties": \{"code": "532599001001(\d{3})"', html))
    assert codes == {"001", "002", "005", "006", "009", "010", "013", "014"}  # west half


def test_admin_drilldown_lists_counted_problems(world, client, auth):
    auth.login("admin")
    html = client.get(f"/reports/{MONTH}/units/{world['town']['west'].id}").get_data(as_text=True)
    for label in ("W0", "W1", "W2", "W3", "W4"):
        assert f"#{world['ids'][label]}<" in html
    assert f"#{world['ids']['E1']}<" not in html
    assert client.get(f"/reports/{MONTH}/units/99999").status_code == 404


def test_publish_over_http_then_refuse_then_republish(world, client, auth, session):
    auth.login("admin")
    response = client.post("/reports/publish", data={"month": MONTH})
    assert response.status_code == 302
    assert session.query(Assessment).filter_by(month=MONTH).count() == 3
    again = client.post("/reports/publish", data={"month": MONTH})
    assert again.status_code == 409
    assert "不能重复发布" in again.get_data(as_text=True)
    html = client.get(f"/reports/?month={MONTH}").get_data(as_text=True)
    assert "已发布" in html and "重新发布原因" in html
    ok = client.post("/reports/publish", data={"month": MONTH, "reason": "数据更正"})
    assert ok.status_code == 302
    assert "数据更正" in client.get(f"/reports/?month={MONTH}").get_data(as_text=True)


def test_publish_bad_month_is_400(world, client, auth, session):
    auth.login("admin")
    response = client.post("/reports/publish", data={"month": "2026-13"})
    assert response.status_code == 400
    assert "YYYY-MM" in response.get_data(as_text=True)
    assert session.query(Assessment).count() == 0


def test_inspector_and_leader_cannot_publish(world, client, auth, session):
    for username in ("inspector", "leader"):
        auth.login(username)
        assert client.post("/reports/publish", data={"month": MONTH}).status_code == 403
        auth.logout()
    assert session.query(Assessment).count() == 0


def test_appeal_flow_over_http(world, client, auth):
    auth.login("west")
    assert client.post("/reports/appeal", data={"month": MONTH, "note": "早了"}).status_code == 409
    auth.logout()
    auth.login("admin")
    client.post("/reports/publish", data={"month": MONTH})
    auth.logout()
    auth.login("west")
    assert client.post("/reports/appeal", data={"month": MONTH, "note": ""}).status_code == 400
    response = client.post("/reports/appeal", data={"month": MONTH, "note": "W4 并非反弹问题"})
    assert response.status_code == 302
    assert "W4 并非反弹问题" in client.get(f"/reports/?month={MONTH}").get_data(as_text=True)
    auth.logout()
    auth.login("east")
    east_html = client.get(f"/reports/?month={MONTH}").get_data(as_text=True)
    assert "W4 并非反弹问题" not in east_html
    auth.logout()
    auth.login("leader")
    assert client.post("/reports/appeal", data={"month": MONTH, "note": "x"}).status_code == 403
    auth.logout()
    auth.login("admin")
    html = client.get(f"/reports/?month={MONTH}").get_data(as_text=True)
    appeal_id = re.search(r"/reports/appeals/(\d+)/resolve", html).group(1)
    done = client.post(
        f"/reports/appeals/{appeal_id}/resolve", data={"month": MONTH, "resolution": "维持原结果"}
    )
    assert done.status_code == 302
    assert "维持原结果" in client.get(f"/reports/?month={MONTH}").get_data(as_text=True)


def test_settings_form_validates_and_is_admin_only(world, client, auth, session):
    auth.login("admin")
    bad = client.post("/reports/settings", data={"month": MONTH, "overdue_points": "两分"})
    assert bad.status_code == 400
    assert "每个超期未销号问题扣分" in bad.get_data(as_text=True)
    assert session.get(Setting, "assessment_formula") is None
    good = client.post(
        "/reports/settings",
        data={
            "month": MONTH,
            "overdue_points": "3",
            "red_top": "1",
            "black_bottom": "1",
            "black_max_score": "90",
        },
    )
    assert good.status_code == 302
    session.expire_all()
    assert session.get(Setting, "assessment_formula").value["overdue_points"] == 3.0
    auth.logout()
    auth.login("leader")
    assert client.post("/reports/settings", data={"overdue_points": "1"}).status_code == 403


def test_print_version_and_bad_month(world, client, auth):
    auth.login("inspector")
    response = client.get(f"/reports/print?month={MONTH}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "考核通报" in html and 'class="topbar"' not in html
    assert "领导小组办公室" in html
    assert client.get("/reports/?month=2026-13").status_code == 400


def test_readiness_page_and_calendar(world, client, auth):
    auth.login("admin")
    assert "未设定" in client.get("/reports/readiness").get_data(as_text=True)
    saved = client.post("/reports/readiness/calendar", data={"州级": "2099-12-31"})
    assert saved.status_code == 302
    html = client.get("/reports/readiness").get_data(as_text=True)
    assert "2099-12-31" in html and "还有" in html
    assert client.post("/reports/readiness/calendar", data={"州级": "明年"}).status_code == 400
    auth.logout()
    auth.login("east")
    html = client.get("/reports/readiness").get_data(as_text=True)
    assert "本单位问题" in html
    assert f"#{world['ids']['W4']}<" not in html
    assert (
        client.post("/reports/readiness/calendar", data={"州级": "2099-01-01"}).status_code == 403
    )


@pytest.mark.parametrize("month", ["2026-08", "2026-09", "2026-10", "2026-11"])
def test_demo_county_months(demo_client, demo_auth, month):
    demo_auth.login("leader", "demo1234")
    response = demo_client.get(f"/reports/?month={month}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"云岭县创建国家卫生县城工作2026年{int(month[5:])}月考核通报" in html
    rows = _ranking_rows(html)
    assert len(rows) == 29  # every unit is ranked, with or without problems
    assert any(cls == "row-black" for cls, _ in rows)
    demo_auth.logout()


def test_demo_cli_report_json(demo_app):
    import json

    runner = demo_app.test_cli_runner()
    result = runner.invoke(args=["report", "--month", "2026-10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(getattr(result, "stdout", result.output))
    assert len(data["ranking"]) == 29
    assert sum(r["received"] for r in data["ranking"]) > 50
    assert len(data["black_list"]) == 3
