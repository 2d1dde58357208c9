"""Bulk placement of large lists (app/services/imports/bulk.py) against the per-row path."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.models import Issue, IssueEvent, today_local
from app.services.core.errors import ForbiddenError
from app.services.imports import bulk as bulk_import
from app.services.imports import sheet as list_import
from gis.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.factories import (
    BASE_LAT,
    BASE_LON,
    HEADERS,
    csv_bytes,
    east_point,
    row,
    west_point,
    workbook_bytes,
)


@pytest.fixture()
def world(factory, session):
    """The factory town plus a functional-unit category, an open and a closed problem."""
    town = factory.town()
    health = factory.unit("市场监管局")
    factory.category("0601", "小餐饮", functional_unit=health)
    admin = town["users"]["admin"]
    open_issue = factory.issue(
        admin, lon=west_point(0)[0], lat=west_point(0)[1], description="已有的未整改问题"
    )
    closed = factory.issue(
        admin, lon=east_point(1)[0], lat=east_point(1)[1], description="上月已销号的问题"
    )
    closed.status = "closed"
    closed.closed_at = datetime(2026, 10, 1, 9, 0)
    session.commit()
    town.update(health=health, open_issue=open_issue.id, closed=closed.id)
    return town


def mixed_rows() -> list[list]:
    """Every kind of row a real list mixes: the cases create_issue distinguishes."""
    w0, w1, e1, e2 = west_point(0), west_point(1), east_point(1), east_point(2)
    g_lon, g_lat = wgs84_to_gcj02(*east_point(3))
    b_lon, b_lat = wgs84_to_bd09(*west_point(5))
    return [
        row(1, "路边垃圾 (重复于已有问题)", lon=w0[0] + 0.00005, lat=w0[1]),
        row(2, "同一处再报一次 (重复于第3行)", lon=w0[0] + 0.0001, lat=w0[1] + 0.00005),
        row(3, "反弹: 上月销号的地方又有了", lon=e1[0] + 0.0002, lat=e1[1], found="2026-10-20"),
        row(4, "小餐饮油污 (职能单位)", category="小餐饮", lon=e2[0], lat=e2[1]),
        row(5, "高德坐标", lon=float(g_lon), lat=float(g_lat), remark="高德地图取点"),
        row(6, "百度坐标", lon=f"{float(b_lon):.8f}", lat=f"{float(b_lat):.8f}", remark="百度"),
        row(7, "只有地点没有坐标", address="某某路口", unit="东区单位"),
        row(8, "网格外的点", lon=BASE_LON + 0.02, lat=BASE_LAT),
        row(9, "立行立改", deadline="立行立改", lon=w1[0], lat=w1[1]),
        row(10, "写明日期的时限", deadline="2026年11月30日", lon=w1[0], lat=w1[1] - 0.001),
        row(
            11,
            # chinese-calendar's table starts in 2004; a future year is refused (#13).
            "节假日未录入的年份",
            found="2003-06-05",
            deadline=None,
            lon=e2[0] - 0.0003,
            lat=e2[1],
        ),
        row(12, "没有类别", category=None, lon=w1[0], lat=w1[1]),
        row(13, "全角数字坐标", lon="１０３．５００５", lat=str(w0[1])),
        row(1, "路边垃圾 (重复于已有问题)", lon=w0[0] + 0.00005, lat=w0[1]),  # same row again
    ]


def snapshot(session, result) -> dict:
    """What a user can see of an import: issues and their report events, keyed by row."""
    session.expire_all()
    issues = list(
        session.execute(
            select(Issue).where(Issue.id.in_(result.issue_ids)).order_by(Issue.id)
        ).scalars()
    )
    ref_of = {i.id: i.external_ref for i in issues}
    out = {}
    for issue in issues:
        (event,) = issue.events
        data = dict(event.data)
        if "possible_duplicates" in data:  # new rows' ids differ between the two runs
            data["possible_duplicates"] = sorted(
                str(ref_of.get(i, i)) for i in data["possible_duplicates"]
            )
        out[issue.external_ref] = {
            "status": issue.status,
            "category": issue.category_id,
            "description": issue.description,
            "address": issue.address,
            "source": issue.source,
            "lon": None if issue.lon is None else round(issue.lon, 9),
            "lat": None if issue.lat is None else round(issue.lat, 9),
            "cell": issue.cell_id,
            "unit": issue.unit_id,
            "geocode": (issue.geocode_method, issue.geocode_confidence),
            "candidates": issue.geocode_candidates,
            "needs_placement": issue.needs_placement,
            "outside": issue.outside_grid,
            "found_at": issue.found_at,
            "deadline": issue.deadline,
            "recurrence_of": issue.recurrence_of_id,
            "version": issue.version,
            "created_by": issue.created_by_id,
            "event": (
                event.action,
                event.from_status,
                event.to_status,
                event.user_id,
                event.at,
                event.note,
                data,
            ),
        }
    return out


def run(session, user, data: bytes, name: str, **options):
    _, result = list_import.import_file(session, user, data, name, **options)
    session.flush()
    return result


def test_bulk_path_stores_what_the_per_row_path_stores(session, world):
    admin = world["users"]["admin"]
    data = workbook_bytes(mixed_rows())
    slow = run(session, admin, data, "清单.xlsx", bulk=False)
    expected = snapshot(session, slow)
    session.rollback()
    fast = run(session, admin, data, "清单.xlsx", bulk=True)
    got = snapshot(session, fast)

    assert fast.summary() == slow.summary() == "imported=13 placed=12 queued=1 rejected=0 skipped=1"
    assert fast.skipped_rows == slow.skipped_rows == [(16, "与第3行重复 (跳过)")]
    diffs = {
        (v["description"], key): (got[ref][key], v[key])
        for ref, v in expected.items()
        for key in v
        # The per-row path bumps the lock counter when it adds the event after its
        # flush (version 2 or 3); the bulk path writes each issue once: version 1.
        if key != "version" and got.get(ref, {}).get(key) != v[key]
    }
    assert diffs == {}
    assert got.keys() == expected.keys()
    # The cases themselves, so that the comparison is not of two equal mistakes.
    by_seq = {v["description"]: v for v in got.values()}
    dup = by_seq["路边垃圾 (重复于已有问题)"]["event"][6]
    assert dup["possible_duplicates"] == [str(world["open_issue"])]
    again = by_seq["同一处再报一次 (重复于第3行)"]["event"][6]
    assert len(again["possible_duplicates"]) == 2  # the stored one and row 1 of the list
    assert by_seq["反弹: 上月销号的地方又有了"]["recurrence_of"] == world["closed"]
    assert by_seq["小餐饮油污 (职能单位)"]["unit"] == world["health"].id
    assert by_seq["只有地点没有坐标"]["needs_placement"] is True
    assert by_seq["只有地点没有坐标"]["unit"] == world["east"].id
    assert by_seq["网格外的点"]["outside"] is True
    assert by_seq["节假日未录入的年份"]["event"][6]["calendar_warnings"]
    assert by_seq["全角数字坐标"]["cell"] is not None
    assert all(v["version"] == 1 for v in got.values())


def test_gcj02_and_bd09_rows_are_converted_to_wgs84(session, world):
    admin = world["users"]["admin"]
    fast = run(session, admin, workbook_bytes(mixed_rows()), "清单.xlsx", bulk=True)
    got = {v["description"]: v for v in snapshot(session, fast).values()}
    gcj = got["高德坐标"]
    assert gcj["lon"] == pytest.approx(east_point(3)[0], abs=1e-7)
    assert gcj["lat"] == pytest.approx(east_point(3)[1], abs=1e-7)
    assert gcj["geocode"] == ("coordinates_gcj02", 1.0)
    assert gcj["unit"] == world["east"].id
    bd = got["百度坐标"]
    assert bd["lon"] == pytest.approx(west_point(5)[0], abs=1e-7)
    assert bd["geocode"] == ("coordinates_bd09", 1.0)
    assert bd["unit"] == world["west"].id


def bad_rows() -> list[list]:
    w = west_point(0)
    return [
        row(1, "好的一行", lon=w[0], lat=w[1]),
        row(2, "经度不是数字", lon="东经103度", lat=w[1]),
        row(3, "经度超出范围", lon=200.5, lat=w[1]),
        row(4, "只有经度", lon=w[0], lat=None),
        row(5, "外省的点", lon=116.4, lat=39.9),
        row(6, "日期写错", found="2026-13-45", lon=w[0], lat=w[1]),
        row(7, "类别写错 (待分类，不拒绝)", category="不存在的类别", lon=w[0], lat=w[1]),
        row(8, ""),  # no words and no place: the one truly unusable row
        row(9, "时限写错", deadline="尽快", lon=w[0], lat=w[1]),
        row(10, "纬度超出范围", lon=w[0], lat="-91"),
        row(11, "好的另一行", lon=w[0], lat=w[1] - 0.001),
    ]


def test_bad_rows_are_named_like_the_per_row_path_and_nothing_is_stored(session, world):
    admin = world["users"]["admin"]
    before = session.execute(select(func.count(Issue.id))).scalar()
    data = csv_bytes(bad_rows())
    slow = run(session, admin, data, "清单.csv", bulk=False)
    fast = run(session, admin, data, "清单.csv", bulk=True)
    assert fast.aborted and fast.imported == 0 and fast.issue_ids == []
    assert fast.rejected == slow.rejected
    reasons = dict(fast.rejected)
    # Row 8's category matches nothing: it is kept as 待分类, never rejected.
    assert sorted(reasons) == [3, 4, 5, 6, 7, 9, 10, 11]
    assert reasons[3].startswith("第3行: 经度 不是数字")
    assert reasons[4].startswith("第4行: 经度 超出范围")
    assert reasons[5] == "第5行: 经度和纬度 必须同时填写"
    assert reasons[6].startswith("第6行: 经纬度 (116.4") and "不在本县城范围内" in reasons[6]
    assert reasons[7].startswith("第7行: 发现时间")
    assert reasons[9] == "第9行: 问题描述 不能为空"  # neither words nor a place
    assert reasons[10].startswith("第10行: 整改时限")
    assert reasons[11].startswith("第11行: 纬度 超出范围")
    assert session.execute(select(func.count(Issue.id))).scalar() == before


def test_skip_errors_imports_only_the_good_rows(session, world):
    admin = world["users"]["admin"]
    result = run(session, admin, csv_bytes(bad_rows()), "清单.csv", bulk=True, skip_errors=True)
    assert result.summary() == "imported=3 placed=3 queued=0 rejected=8 skipped=0"
    stored = (
        session.execute(select(Issue.description).where(Issue.id.in_(result.issue_ids)))
        .scalars()
        .all()
    )
    assert sorted(stored) == ["好的一行", "好的另一行", "类别写错 (待分类，不拒绝)"]
    pending = session.execute(
        select(Issue.category_pending, Issue.category_text, Issue.category_id)
        .where(Issue.description == "类别写错 (待分类，不拒绝)")
    ).one()
    assert tuple(pending) == (True, "不存在的类别", None)


def test_reimport_skips_every_row(session, world):
    admin = world["users"]["admin"]
    data = workbook_bytes(mixed_rows())
    first = run(session, admin, data, "清单.xlsx", bulk=True)
    session.commit()
    count = session.execute(select(func.count(IssueEvent.id))).scalar()
    again = run(session, admin, data, "清单.xlsx", bulk=True)
    assert again.imported == 0 and again.skipped == first.imported + 1
    assert {reason for _, reason in again.skipped_rows} == {"已导入过 (跳过)"}
    assert session.execute(select(func.count(IssueEvent.id))).scalar() == count


def test_large_coordinate_lists_take_the_bulk_path_automatically(session, world, monkeypatch):
    admin = world["users"]["admin"]
    calls = []
    real = bulk_import.import_records_bulk

    def spy(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk_import, "import_records_bulk", spy)
    rows = [row(i, f"第{i}处", lon=west_point(i)[0], lat=west_point(i)[1]) for i in range(1, 8)]
    small = run(session, admin, csv_bytes(rows[:3]), "小.csv", bulk_threshold=5)
    assert calls == [] and small.imported == 3
    big = run(session, admin, csv_bytes(rows), "大.csv", bulk_threshold=5)
    assert calls == [7] and big.imported == 4 and big.skipped == 3
    # Without coordinate columns a long list stays on the per-row path.
    no_coords = [r[:7] for r in rows]
    run(session, admin, csv_bytes(no_coords, headers=HEADERS[:7]), "地址.csv", bulk_threshold=5)
    assert calls == [7]


def test_unit_heads_may_not_bulk_import(session, world):
    with pytest.raises(ForbiddenError):
        run(session, world["users"]["west"], workbook_bytes(mixed_rows()), "清单.xlsx", bulk=True)
    assert session.execute(select(func.count(Issue.id))).scalar() == 2


def test_cli_bulk_option_and_bad_input(session, world, runner, tmp_path):
    path = tmp_path / "清单.csv"
    path.write_bytes(csv_bytes(bad_rows()))
    out = runner.invoke(args=["import-issues", str(path), "--bulk"])
    assert out.exit_code != 0
    assert "rejected 第3行: 经度 不是数字" in out.output
    assert session.execute(select(func.count(Issue.id))).scalar() == 2
    path.write_bytes(csv_bytes(bad_rows()[:1] + bad_rows()[-1:]))
    out = runner.invoke(args=["import-issues", str(path), "--bulk"])
    assert out.exit_code == 0, out.output
    assert "imported=2 placed=2 queued=0 rejected=0 skipped=0" in out.output


def test_deadline_default_counts_working_days_from_found_date(session, world):
    admin = world["users"]["admin"]
    w = west_point(0)
    data = csv_bytes([row(1, "周五发现", found="2026-10-30", deadline=None, lon=w[0], lat=w[1])])
    result = run(session, admin, data, "清单.csv", bulk=True)
    issue = session.get(Issue, result.issue_ids[0])
    # 5 working days (category 0302) from Friday 30 Oct: weekends skipped → Friday 6 Nov.
    assert issue.deadline == (datetime(2026, 10, 30) + timedelta(days=7)).date()


def test_cli_dry_run_on_the_bulk_path_writes_nothing(session, world, runner, tmp_path):
    path = tmp_path / "清单.xlsx"
    path.write_bytes(workbook_bytes(mixed_rows()))
    out = runner.invoke(args=["import-issues", str(path), "--bulk", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "imported=13 placed=12 queued=1 rejected=0 skipped=1" in out.output
    session.expire_all()
    assert session.execute(select(func.count(Issue.id))).scalar() == 2


@pytest.mark.parametrize("bulk", [False, True], ids=["per-row", "bulk"])
def test_a_row_with_a_place_but_no_description_is_kept(session, world, bulk):
    """Lists leave 问题描述 empty and write the problem into 类别 and 地点: still a problem."""
    admin = world["users"]["admin"]
    w = west_point(1)
    data = csv_bytes([row(1, "", category="背街小巷", lon=w[0], lat=w[1]),
                      row(2, "", address="某某路", category="")])
    result = run(session, admin, data, "清单.csv", bulk=bulk)
    assert result.rejected == [] and result.imported == 2
    texts = sorted(session.execute(
        select(Issue.description).where(Issue.id.in_(result.issue_ids))).scalars())
    assert texts == ["（清单未填写问题描述） 某某路", "（清单未填写问题描述） 背街小巷"]


def test_a_future_found_date_is_refused_alike_on_both_paths(session, world):
    """Regression (#13): 发现时间 2030-01-01 was imported with a deadline in 2030."""
    admin = world["users"]["admin"]
    w = west_point(0)
    today = today_local()
    rows = [
        row(1, "今天发现", found=today.isoformat(), lon=w[0], lat=w[1]),
        row(2, "明天 (时钟快一天, 容许)", found=(today + timedelta(days=1)).isoformat(),
            lon=w[0], lat=w[1] - 0.001),
        row(3, "后天", found=(today + timedelta(days=2)).isoformat(), lon=w[0], lat=w[1]),
        row(4, "年份写错", found="2030-01-01", lon=w[0], lat=w[1]),
        row(5, "年份写错 (年月日)", found="2030年1月1日", lon=w[0], lat=w[1]),
    ]
    before = session.execute(select(func.count(Issue.id))).scalar()
    data = csv_bytes(rows)
    slow = run(session, admin, data, "清单.csv", bulk=False)
    fast = run(session, admin, data, "清单.csv", bulk=True)
    assert slow.aborted and fast.aborted
    assert fast.rejected == slow.rejected
    reasons = dict(fast.rejected)
    assert sorted(reasons) == [4, 5, 6]
    after = (today + timedelta(days=2)).isoformat()
    assert reasons[4] == f"第4行: 发现时间 {after} 晚于今天 ({today.isoformat()})"
    assert reasons[5].startswith("第5行: 发现时间 2030-01-01 晚于今天")
    assert reasons[6].startswith("第6行: 发现时间 2030-01-01 晚于今天")
    assert session.execute(select(func.count(Issue.id))).scalar() == before
    # Skipping the bad rows imports the good ones, dated as written.
    good = run(session, admin, data, "清单.csv", bulk=True, skip_errors=True)
    assert good.imported == 2
    found = sorted(session.execute(
        select(Issue.found_at).where(Issue.id.in_(good.issue_ids))).scalars())
    assert [f.date() for f in found] == [today, today + timedelta(days=1)]
