"""Monthly assessment: figures, scores, ranking, lists, freeze, Excel, CLI and readiness."""

from __future__ import annotations

import io
import json
from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from app.models import Assessment, AuditLog, Setting
from app.services.assessment import appeals, publish, readiness, rules, scoring
from app.services.core.errors import ConflictError, ForbiddenError, ValidationError
from app.services.issues.intake import reroute, transition
from tests.app.assessment._month import EXPECTED, MONTH, PREV, build_month, expected_score
from tests.factories import BASE_LAT, BASE_LON, STEP, west_point

# One red place and one black place, so the small town's lists are easy to reason about.
SMALL_LISTS = {
    "red_top": 1,
    "red_min_score": 90,
    "black_bottom": 1,
    "black_max_score": 90,
    "interview_after": 2,
    "red_min_received": 1,
}


@pytest.fixture()
def world(session, factory):
    built = build_month(session, factory)
    session.add(Setting(key="assessment_lists", value=SMALL_LISTS))
    session.add(Setting(key="county", value={"county_name": "云岭县"}))
    session.commit()
    return built


def _rows(data: dict) -> dict:
    return {row["unit"]: row for row in data["ranking"]}


def _expected_ranking(formula: dict) -> list[tuple[str, float]]:
    scored = []
    for name, figures in EXPECTED.items():
        _, score = expected_score(figures, formula)
        scored.append((name, score, figures["on_time_rate"], figures["overdue_open"]))
    scored.sort(key=lambda r: (-r[1], -r[2], r[3], r[0]))
    return [(name, score) for name, score, _, _ in scored]


def test_month_figures_match_the_hand_count(world, session):
    data = scoring.compute_month(session, MONTH)
    rows = _rows(data)
    assert set(rows) == set(EXPECTED)
    for name, figures in EXPECTED.items():
        row = rows[name]
        for key, value in figures.items():
            if key == "points":
                continue
            assert row[key] == pytest.approx(value, abs=1e-4), (name, key)
        deductions, score = expected_score(figures, rules.DEFAULT_FORMULA)
        assert row["deductions"] == pytest.approx(deductions)
        assert row["score"] == pytest.approx(score)
    # West: 5 points + 2 overdue + 1 rework + 2 recurrence + 10 × 0.75 = 17.5.
    assert rows["西区单位"]["score"] == pytest.approx(82.5)
    assert rows["东区单位"]["score"] == pytest.approx(98.0)
    assert rows["北区单位"]["score"] == pytest.approx(100.0)


def test_ranking_lists_and_movement(world, session):
    data = scoring.compute_month(session, MONTH)
    expected = _expected_ranking(rules.DEFAULT_FORMULA)
    assert [(r["unit"], r["score"]) for r in data["ranking"]] == expected
    assert [r["rank"] for r in data["ranking"]] == [1, 2, 3]
    # North scored 100 but handled nothing, so the red list goes to East.
    assert data["red_list"] == ["东区单位"]
    assert data["black_list"] == ["西区单位"]
    rows = _rows(data)
    # August: East 100 and North 100 tie (名称 decides: 东 before 北), West 99 (W0 found).
    assert [
        (r["unit"], r["score"]) for r in scoring.compute_month(session, PREV)["ranking"]
    ] == [("东区单位", 100.0), ("北区单位", 100.0), ("西区单位", 99.0)]
    assert rows["北区单位"]["movement"] == 1
    assert rows["东区单位"]["movement"] == -1
    assert rows["西区单位"]["movement"] == 0
    assert not any(r["interview"] for r in data["ranking"])


def test_formula_setting_changes_scores(world, session):
    admin = world["town"]["users"]["admin"]
    formula = dict(rules.DEFAULT_FORMULA, overdue_points=5, on_time_weight=0)
    rules.save_formula(session, admin, formula)
    session.commit()
    rows = _rows(scoring.compute_month(session, MONTH))
    assert rows["西区单位"]["score"] == pytest.approx(
        expected_score(EXPECTED["西区单位"], formula)[1]
    )
    assert rows["西区单位"]["score"] == pytest.approx(100 - (5 + 5 + 1 + 2))


def test_formula_setting_is_validated_and_admin_only(world, session):
    users = world["town"]["users"]
    with pytest.raises(ValidationError, match="每个超期未销号问题扣分"):
        rules.save_formula(session, users["admin"], {"overdue_points": "abc"})
    with pytest.raises(ValidationError, match="最低分"):
        rules.save_formula(session, users["admin"], {"floor": 100})
    with pytest.raises(ForbiddenError):
        rules.save_formula(session, users["leader"], {})
    with pytest.raises(ValidationError, match="红榜名额"):
        rules.save_lists_rule(session, users["admin"], {"red_top": "1.5"})
    session.rollback()
    assert session.get(Setting, "assessment_formula") is None


def test_black_list_two_months_running_means_interview(world, session):
    # Bottom one below 100: West is last in August (99) and in September.
    rule = dict(SMALL_LISTS, black_max_score=100)
    session.get(Setting, "assessment_lists").value = rule
    session.commit()
    assert scoring.compute_month(session, PREV)["black_list"] == ["西区单位"]
    data = scoring.compute_month(session, MONTH)
    rows = _rows(data)
    assert data["black_list"] == ["西区单位"]
    assert rows["西区单位"]["interview"] is True
    assert rows["西区单位"]["black_months"] == 2
    assert data["interviews"] == ["西区单位"]
    assert rows["东区单位"]["interview"] is False


def test_ties_are_broken_by_name_deterministically(session, factory):
    factory.town()
    factory.unit("南区单位")
    factory.unit("北区单位")
    session.commit()
    names = [r["unit"] for r in scoring.compute_month(session, MONTH)["ranking"]]
    assert names == sorted(names)
    assert all(r["score"] == 100 for r in scoring.compute_month(session, MONTH)["ranking"])


def test_subdistrict_and_community_scopes(world, session):
    sub = scoring.compute_month(session, MONTH, "subdistrict")
    assert len(sub["ranking"]) == 1  # the factory grid is one sub-district, one community
    row = sub["ranking"][0]
    assert row["received"] == 6 and row["overdue_open"] == 1 and row["recurrences"] == 1
    com = scoring.compute_month(session, MONTH, "community")
    assert com["ranking"][0]["received"] == 6
    with pytest.raises(ValidationError, match="考核范围"):
        scoring.compute_month(session, MONTH, "county")


@pytest.mark.parametrize("bad", ["2026-13", "2026-9", "26-09", "九月", "", "2026-00"])
def test_bad_months_are_refused(world, session, bad):
    with pytest.raises(ValidationError, match="YYYY-MM"):
        scoring.compute_month(session, bad)


def test_future_month_is_refused(world, session):
    with pytest.raises(ValidationError, match="尚未开始"):
        scoring.compute_month(session, "2099-01")


def test_published_month_is_frozen(world, session):
    users = world["town"]["users"]
    ids = world["ids"]
    publish.publish_all(session, users["admin"], MONTH)
    session.commit()
    before = publish.get_report(session, users["leader"], MONTH)
    assert before["published"] is True
    # Edits after publishing: close the overdue recurrence, move West's problem to East,
    # reopen an on-time close (clears closed_at).
    transition(session, users["west"], ids["W4"], "submit", at=datetime(2026, 10, 2))
    transition(session, users["inspector"], ids["W4"], "verify_ok", at=datetime(2026, 10, 3))
    reroute(session, users["admin"], ids["W2"], world["town"]["east"].id, reason="划分调整")
    transition(session, users["inspector"], ids["W1"], "reopen", note="复查发现反弹")
    session.commit()
    live = _rows(scoring.compute_month(session, MONTH))
    assert live["西区单位"]["received"] == 3  # the live figures did move...
    after = publish.get_report(session, users["leader"], MONTH)
    for key in ("ranking", "red_list", "black_list", "category_deductions"):
        assert after[key] == before[key]  # ...the published month did not
    assert _rows(after)["西区单位"]["received"] == 4
    assert _rows(after)["西区单位"]["score"] == pytest.approx(82.5)


def test_publishing_twice_is_refused_unless_admin_republishes_with_reason(world, session):
    users = world["town"]["users"]
    publish.publish_month(session, users["admin"], MONTH)
    session.commit()
    with pytest.raises(ConflictError, match="不能重复发布"):
        publish.publish_month(session, users["admin"], MONTH)
    with pytest.raises(ForbiddenError):
        publish.publish_month(session, users["inspector"], MONTH, reason="我想改")
    session.rollback()
    first = session.query(Assessment).one().data
    rules.save_formula(
        session, users["admin"], dict(rules.DEFAULT_FORMULA, on_time_weight=0)
    )
    publish.publish_month(session, users["admin"], MONTH, reason="计分办法更正")
    session.commit()
    snap = session.query(Assessment).one()
    assert snap.data["republish_reason"] == "计分办法更正"
    assert snap.data["revisions"][0]["data"]["ranking"] == first["ranking"]
    assert _rows(snap.data)["西区单位"]["score"] == pytest.approx(90.0)
    actions = [a.action for a in session.query(AuditLog).order_by(AuditLog.id)]
    assert "assessment_publish" in actions and "assessment_republish" in actions


def test_unit_head_cannot_publish(world, session):
    with pytest.raises(ForbiddenError):
        publish.publish_month(session, world["town"]["users"]["west"], MONTH)


def test_appeals(world, session):
    users = world["town"]["users"]
    with pytest.raises(ConflictError, match="尚未发布"):
        appeals.attach_appeal(session, users["west"], MONTH, "W0 为上月问题")
    publish.publish_month(session, users["admin"], MONTH)
    with pytest.raises(ValidationError, match="申诉理由"):
        appeals.attach_appeal(session, users["west"], MONTH, "  ")
    with pytest.raises(ForbiddenError):
        appeals.attach_appeal(session, users["leader"], MONTH, "领导不能申诉")
    appeal = appeals.attach_appeal(session, users["west"], MONTH, "W4 并非反弹")
    with pytest.raises(ConflictError, match="处理中"):
        appeals.attach_appeal(session, users["west"], MONTH, "再申诉一次")
    session.commit()
    west_view = publish.get_report(session, users["west"], MONTH)["appeals"]
    east_view = publish.get_report(session, users["east"], MONTH)["appeals"]
    admin_view = publish.get_report(session, users["admin"], MONTH)["appeals"]
    assert [a["unit"] for a in west_view] == ["西区单位"]
    assert east_view == []  # another unit's appeal is not shown to a unit head
    assert len(admin_view) == 1
    with pytest.raises(ForbiddenError):
        appeals.resolve_appeal(session, users["west"], appeal.id, "自己答复")
    appeals.resolve_appeal(session, users["admin"], appeal.id, "经核实，维持原结果")
    with pytest.raises(ConflictError, match="已于"):
        appeals.resolve_appeal(session, users["admin"], appeal.id, "再答复")
    session.commit()
    resolved = publish.get_report(session, users["west"], MONTH)["appeals"][0]
    assert resolved["resolved"] and resolved["resolution"] == "经核实，维持原结果"


def test_excel_export_matches_computation(world, session, client, auth):
    auth.login("leader")
    response = client.get(f"/reports/export.xlsx?month={MONTH}")
    assert response.status_code == 200
    assert "spreadsheetml" in response.mimetype
    wb = load_workbook(io.BytesIO(response.data))
    assert wb.sheetnames == ["单位排名", "街道乡镇排名", "社区排名", "类别扣分"]
    ws = wb["单位排名"]
    assert ws["A1"].value == "云岭县创建国家卫生县城工作2026年9月考核通报"
    assert "A1:L1" in {str(r) for r in ws.merged_cells.ranges}
    assert "2026年9月1日" in ws["A2"].value and "未发布" in ws["A2"].value
    headers = [c.value for c in ws[3]]
    assert headers == [
        "排名",
        "责任单位",
        "受理问题数",
        "已销号",
        "按期销号率",
        "返工率",
        "反弹率",
        "超期未销号",
        "扣分",
        "得分",
        "名次变化",
        "红黑榜",
    ]
    assert ws.freeze_panes == "A4"
    assert ws.page_setup.orientation == "landscape"
    assert ws.page_setup.fitToWidth == 1
    assert ws["A3"].fill.fgColor.rgb.endswith("D9D9D9")
    assert ws["B4"].border.left.style == "thin"
    table = {}
    for row in ws.iter_rows(min_row=4, max_row=6, values_only=True):
        table[row[1]] = row
    expected = _expected_ranking(rules.DEFAULT_FORMULA)
    for rank, (name, score) in enumerate(expected, start=1):
        row = table[name]
        figures = EXPECTED[name]
        assert row[0] == rank
        assert row[2:8] == (
            figures["received"],
            figures["closed"],
            pytest.approx(figures["on_time_rate"]),
            pytest.approx(figures["rework_rate"], abs=1e-4),
            pytest.approx(figures["recurrence_rate"]),
            figures["overdue_open"],
        )
        assert row[8] == pytest.approx(expected_score(figures, rules.DEFAULT_FORMULA)[0])
        assert row[9] == pytest.approx(score)
    assert table["西区单位"][11] == "黑榜" and table["东区单位"][11] == "红榜"
    assert table["北区单位"][10] == "↑1" and table["东区单位"][10] == "↓1"
    cats = wb["类别扣分"]
    assert [c.value for c in cats[4]][:4] == ["03", "市容环境卫生", 6, 7.0]


def test_excel_export_after_publishing_shows_publish_date(world, session, client, auth):
    publish.publish_all(session, world["town"]["users"]["admin"], MONTH)
    session.commit()
    auth.login("admin")
    wb = load_workbook(io.BytesIO(client.get(f"/reports/export.xlsx?month={MONTH}").data))
    assert "发布日期" in wb["单位排名"]["A2"].value


def _stdout(result) -> str:
    return getattr(result, "stdout", result.output)


def test_cli_json_matches_expected(world, runner):
    result = runner.invoke(args=["report", "--month", MONTH, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(_stdout(result))
    assert set(data) == {"month", "ranking", "red_list", "black_list"}
    assert data["month"] == MONTH
    expected = _expected_ranking(rules.DEFAULT_FORMULA)
    assert [(r["unit"], r["score"]) for r in data["ranking"]] == expected
    for row in data["ranking"]:
        figures = EXPECTED[row["unit"]]
        for key in ("received", "closed", "closed_on_time", "overdue_open"):
            assert row[key] == figures[key]
        for key in ("on_time_rate", "rework_rate", "recurrence_rate"):
            assert row[key] == pytest.approx(figures[key], abs=1e-4)
        assert row["deductions"] == pytest.approx(
            expected_score(figures, rules.DEFAULT_FORMULA)[0]
        )
    assert [r["rank"] for r in data["ranking"]] == [1, 2, 3]
    assert data["red_list"] == ["东区单位"] and data["black_list"] == ["西区单位"]


def test_cli_table_publish_and_refusals(world, runner, session):
    result = runner.invoke(args=["report", "--month", MONTH])
    assert result.exit_code == 0
    assert "未发布" in result.output and "西区单位 [黑榜]" in result.output
    result = runner.invoke(args=["report", "--month", MONTH, "--publish"])
    assert result.exit_code == 0, result.output
    assert "已发布" in result.output
    assert session.query(Assessment).filter_by(month=MONTH, scope="unit").count() == 1
    again = runner.invoke(args=["report", "--month", MONTH, "--publish"])
    assert again.exit_code != 0
    assert "不能重复发布" in again.output


@pytest.mark.parametrize("bad", ["2026-13", "202609", "abc", "2099-01"])
def test_cli_bad_month_exits_non_zero(world, runner, bad):
    result = runner.invoke(args=["report", "--month", bad, "--json"])
    assert result.exit_code != 0
    assert "错误" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_readiness_countdown_and_costliest_open_problems(world, session):
    users = world["town"]["users"]
    readiness.save_calendar(
        session,
        users["admin"],
        {"州级": "2026-12-15", "省级": "", "国家级": "2027-06-30", "国家级_note": "以正式通知为准"},
    )
    session.commit()
    data = readiness.readiness(session, users["leader"], today=date(2026, 10, 1))
    countdown = {c["level"]: c for c in data["countdown"]}
    assert countdown["州级"]["days"] == 75
    assert countdown["省级"]["days"] is None
    assert countdown["国家级"]["days"] == 272 and countdown["国家级"]["note"] == "以正式通知为准"
    cat = data["categories"][0]
    assert (cat["code"], cat["total"], cat["closed"], cat["open"]) == ("03", 7, 5, 2)
    assert cat["closed_share"] == pytest.approx(5 / 7, abs=1e-4)
    # On 10-01 W4 (deadline 09-29) is overdue, W3 (10-05) is not: overdue first.
    ids = world["ids"]
    assert [i["id"] for i in data["top_open"]] == [ids["W4"], ids["W3"]]
    assert data["top_open"][0]["overdue_days"] == 2
    assert cat["subcategories"][0]["code"] == "0302"
    assert cat["subcategories"][0]["cost"] == 2.0
    # A unit head sees only their own unit's problems.
    east = readiness.readiness(session, users["east"], today=date(2026, 10, 1))
    assert east["totals"]["total"] == 2 and east["top_open"] == []


def test_readiness_calendar_validation(world, session):
    users = world["town"]["users"]
    with pytest.raises(ValidationError, match="州级评估日期"):
        readiness.save_calendar(session, users["admin"], {"州级": "2026-13-40"})
    with pytest.raises(ForbiddenError):
        readiness.save_calendar(session, users["leader"], {"州级": "2026-12-01"})


# ---- no phantom units (属地兜底, no 000) -----------------------------------------------------


def _store_coded_grid(session, cells, zones=None):
    from app.services.grids.cells import activate_grid, hold_unassigned, store_grid

    grid = store_grid(session, cells, name="片区网格", method="square", zones=zones)
    hold_unassigned(session, grid)
    activate_grid(session, grid.id)
    session.commit()
    return grid


def _town_cells(n: int = 4):
    import geopandas as gpd
    from shapely.geometry import box


    return gpd.GeoDataFrame(
        geometry=[
            box(BASE_LON + c * STEP, BASE_LAT - (r + 1) * STEP,
                BASE_LON + (c + 1) * STEP, BASE_LAT - r * STEP)
            for r in range(n) for c in range(n)
        ],
        crs=4326,
    )


def test_provisional_zones_are_not_ranked_and_their_office_answers(session, factory):
    from gis.coding import code_grid

    cells, zones = code_grid(_town_cells(), county_code="532599", subdistricts=None,
                             communities=None, rest_name="云岭镇")
    assert zones["provisional"].all()
    _store_coded_grid(session, cells, zones)
    inspector = factory.user("inspector", "inspector")
    factory.category()
    issue = factory.issue(inspector, lon=west_point(0)[0], lat=west_point(0)[1],
                          found_at=datetime(2026, 9, 3, 10, 0))
    assert issue.unit.name == "云岭镇人民政府" and issue.unit.kind == "subdistrict"
    sub = scoring.compute_month(session, MONTH, "subdistrict")
    assert [(r["unit"], r["received"]) for r in sub["ranking"]] == [("云岭镇", 1)]
    # A 片区 has no 居委会 to hold to account: it is not ranked as a community.
    assert scoring.compute_month(session, MONTH, "community")["ranking"] == []
    units = scoring.compute_month(session, MONTH, "unit")
    assert [(r["unit"], r["received"]) for r in units["ranking"]] == [("云岭镇人民政府", 1)]


def test_an_old_grid_with_000_codes_ranks_no_phantom(session, factory):
    """A grid stored before zones existed, coded 000 where no layer covered it."""
    cells = _town_cells(2)
    cells["subdistrict_code"] = "000"
    cells["community_code"] = "000"
    cells["code"] = [f"532599000000{k:03d}" for k in range(1, 5)]
    cells["area_m2"] = 10_000.0
    unit = factory.unit("西区单位")
    cells["unit_id"] = unit.id
    grid = _store_coded_grid(session, cells)
    from app.models import Zone

    session.query(Zone).filter(Zone.grid_id == grid.id).delete()  # as before zones existed
    session.commit()
    for scope in ("subdistrict", "community"):
        names = [r["unit"] for r in scoring.compute_month(session, MONTH, scope)["ranking"]]
        assert names == [], (scope, names)


@pytest.mark.slow
def test_demo_rankings_name_only_real_units(demo_app):
    from app.extensions import db

    with demo_app.app_context():
        for scope in ("subdistrict", "community"):
            rows = scoring.compute_month(db.session, "2026-11", scope)["ranking"]
            names = [r["unit"] for r in rows]
            assert names and not any("000" in n for n in names), names
        subs = [r["unit"] for r in scoring.compute_month(db.session, "2026-11",
                                                            "subdistrict")["ranking"]]
        assert set(subs) == {"南溪街道", "云岭镇"}
        comms = scoring.compute_month(db.session, "2026-11", "community")["ranking"]
        assert len(comms) == 10 and all(n["unit"].endswith("社区") for n in comms)
