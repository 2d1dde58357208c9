"""Imports as feedback batches: the list's units, embedded photos, hostile files.

(app/services/imports/, tables/unit_names.py, tables/unit_routing.py)
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook
from openpyxl.drawing.image import Image as XLImage
from PIL import Image
from sqlalchemy import func, select

from app.models import (
    Batch,
    Issue,
    IssueEvent,
    IssueUnit,
    Photo,
    Setting,
    Unit,
    UnitAlias,
    today_local,
)
from app.services.core import tabular
from app.services.core.errors import ValidationError
from app.services.imports import bulk as bulk_import
from app.services.imports import sheet as list_import
from app.services.imports.neighbours import MAX_NEIGHBOURS, find_neighbours, metres, neighbour_pairs
from app.services.issues.intake import place_manually, reroute
from app.services.tables.unit_names import match_units
from tests.factories import HEADERS, csv_bytes, row, west_point, workbook_bytes


@pytest.fixture()
def world(factory, session):
    """The factory town (西区单位 west, 东区单位 east) plus named county units."""
    town = factory.town()
    town["zhujian"] = factory.unit("县住房和城乡建设局")
    town["zhifa"] = factory.unit("县综合行政执法局")
    town["dongfeng"] = factory.unit("东风社区居委会", kind="community")
    town["market"] = factory.unit("县市场监督管理局")
    factory.category("0601", "小餐饮", functional_unit=town["market"])
    session.add(Setting(key="county", value={"county_name": "云岭县"}))
    session.commit()
    return town


def run(session, user, data: bytes, name: str, **options):
    _, result = list_import.import_file(session, user, data, name, **options)
    session.flush()
    return result


# ---- matching unit names ----------------------------------------------------------------


def test_unit_names_match_short_forms_prefixes_notes_and_full_width(session, world):
    def lead(text):
        found = match_units(session, text)
        return found.lead.name if found.lead else None

    assert lead("县住房和城乡建设局") == "县住房和城乡建设局"
    assert lead("县住建局") == "县住房和城乡建设局"
    assert lead("云岭县住建局") == "县住房和城乡建设局"
    assert lead("云岭县住房和城乡建设局") == "县住房和城乡建设局"
    assert lead("东风社区") == "东风社区居委会"
    assert lead("东风社区居民委员会") == "东风社区居委会"
    assert lead("东风居委会") == "东风社区居委会"
    assert lead("城管局") == "县综合行政执法局"  # no 城市管理局: its successor
    assert lead("县城管局（牵头）") == "县综合行政执法局"
    assert lead(" 县 住建局 ") == "县住房和城乡建设局"
    assert lead("县住建局\u200b") == "县住房和城乡建设局"  # a zero-width space from a chat
    assert lead("ＸＸ公司") is None
    assert lead("县市监局") == "县市场监督管理局"


def test_several_units_in_one_cell_give_a_lead_and_co_units(session, world):
    found = match_units(session, "县城管局、东风社区，县住建局/县市监局 及 西区单位")
    assert found.lead.name == "县综合行政执法局"
    assert [u.name for u in found.co_units] == [
        "东风社区居委会", "县住房和城乡建设局", "县市场监督管理局", "西区单位",
    ]
    assert found.unmatched == []
    found = match_units(session, "县城管局 县环卫站")
    assert found.lead.name == "县综合行政执法局" and found.unmatched == ["县环卫站"]
    found = match_units(session, "县城管局、县城管局")
    assert found.co_units == []


def test_the_alias_table_teaches_a_name_the_rules_miss(session, world):
    assert match_units(session, "县环卫站").lead is None
    session.add(UnitAlias(alias="县环卫站", unit_id=world["east"].id))
    session.flush()
    assert match_units(session, "县环卫站").lead.id == world["east"].id
    assert match_units(session, "云岭县环卫站").lead.id == world["east"].id


# ---- every import is a batch ------------------------------------------------------------


def listed_rows() -> list[list]:
    w0, w1, w2 = west_point(0), west_point(1), west_point(2)
    return [
        # The west cell's unit would take it; the list names the east unit.
        row(1, "清单点名东区", unit="东区单位", lon=w0[0], lat=w0[1]),
        # A functional-unit category; the list names a community instead.
        row(2, "小餐饮油污", category="小餐饮", unit="东风社区", lon=w1[0], lat=w1[1]),
        # Two units: the first leads, the other is a co-unit; the rule agrees with one of them.
        row(3, "两家单位", unit="县城管局、西区单位", lon=w2[0], lat=w2[1]),
        # A name the table does not know: routed by the cell, the text kept as a conflict.
        row(4, "未知单位", unit="县环卫站", lon=w0[0] + 0.0002, lat=w0[1]),
        # No unit named: the cell decides, no conflict.
        row(5, "没写单位", lon=w1[0] + 0.0002, lat=w1[1]),
        # The list and the rule agree.
        row(6, "一致", unit="西区单位", lon=w2[0] + 0.0002, lat=w2[1]),
    ]


def _check_listed(session, world, result) -> None:
    issues = {
        i.description: i
        for i in session.execute(select(Issue).where(Issue.id.in_(result.issue_ids))).scalars()
    }
    first = issues["清单点名东区"]
    assert (first.unit_id, first.unit_source, first.listed_unit) == (
        world["east"].id, "list", "东区单位",
    )
    assert first.routing_conflict == {"list": "东区单位", "category": None, "cell": "西区单位"}
    food = issues["小餐饮油污"]
    assert (food.unit_id, food.unit_source) == (world["dongfeng"].id, "list")
    assert food.routing_conflict == {
        "list": "东风社区居委会", "category": "县市场监督管理局", "cell": "西区单位",
    }
    both = issues["两家单位"]
    assert (both.unit_id, both.unit_source) == (world["zhifa"].id, "list")
    assert [c.unit_id for c in both.co_units] == [world["west"].id]
    assert both.routing_conflict is None  # the cell's unit is one of the listed units
    unknown = issues["未知单位"]
    assert (unknown.unit_id, unknown.unit_source, unknown.listed_unit) == (
        world["west"].id, "cell", "县环卫站",
    )
    assert unknown.routing_conflict == {"list": "县环卫站", "category": None, "cell": "西区单位"}
    plain = issues["没写单位"]
    assert (plain.unit_id, plain.unit_source, plain.listed_unit, plain.routing_conflict) == (
        world["west"].id, "cell", None, None,
    )
    same = issues["一致"]
    assert (same.unit_source, same.routing_conflict) == ("list", None)
    assert result.by_unit_source == {"list": 4, "cell": 2}
    assert result.conflicts == 3
    # SQL NULL, not the JSON text "null", so other pages can filter on it.
    assert session.execute(
        select(func.count(Issue.id)).where(
            Issue.id.in_(result.issue_ids), Issue.routing_conflict.is_(None)
        )
    ).scalar() == 3


@pytest.mark.parametrize("bulk", [False, True], ids=["per-row", "bulk"])
def test_the_lists_units_are_honoured_and_conflicts_kept(session, world, bulk):
    admin = world["users"]["admin"]
    result = run(session, admin, workbook_bytes(listed_rows()), "清单.xlsx", bulk=bulk)
    assert result.imported == 6
    _check_listed(session, world, result)


@pytest.mark.parametrize("bulk", [False, True], ids=["per-row", "bulk"])
def test_an_import_is_a_batch_found_again_by_its_file(session, world, bulk):
    admin = world["users"]["admin"]
    rows = listed_rows()
    rows[2][0] = "A-3"  # the list's own 序号 is kept as written
    data = workbook_bytes(rows, title="云岭县州级交叉检查反馈问题清单")
    result = run(session, admin, data, "反馈.xlsx", bulk=bulk)
    session.commit()
    batch = session.get(Batch, result.batch_id)
    assert batch.name == "云岭县州级交叉检查反馈问题清单"
    assert (batch.source, batch.filename, batch.received_on) == (
        "州级交叉检查", "反馈.xlsx", today_local(),
    )
    assert len(batch.file_sha256) == 64
    seqs = dict(
        session.execute(
            select(Issue.description, Issue.batch_seq).where(Issue.batch_id == batch.id)
        ).all()
    )
    assert seqs["两家单位"] == "A-3" and seqs["清单点名东区"] == "1"
    summary = batch.summary
    assert (summary["imported"], summary["placed"], summary["queued"]) == (6, 6, 0)
    assert summary["by_unit_source"] == {"list": 4, "cell": 2}
    assert (summary["conflicts"], summary["rejected"], summary["pending_category"]) == (3, 0, 0)
    again = run(session, admin, data, "反馈.xlsx", bulk=bulk)
    assert (again.batch_id, again.imported, again.skipped) == (batch.id, 0, 6)
    assert session.execute(select(func.count(Batch.id))).scalar() == 1
    assert session.execute(select(func.count(Issue.id))).scalar() == 6


def test_a_batch_without_title_is_named_after_the_file_and_takes_the_rows_source(
    session, world
):
    admin = world["users"]["admin"]
    headers = [*HEADERS, "来源"]
    rows = [[*r, "省级暗访"] for r in listed_rows()[:2]]
    data = csv_bytes(rows, headers=headers)
    result = run(session, admin, data, "11月暗访问题.csv", received_on=date(2026, 11, 20))
    batch = session.get(Batch, result.batch_id)
    assert (batch.name, batch.source, batch.received_on) == (
        "11月暗访问题", "省级暗访", date(2026, 11, 20),
    )


def test_placing_a_queued_problem_later_still_follows_its_list_and_reroute_is_manual(
    session, world
):
    admin = world["users"]["admin"]
    data = workbook_bytes([row(1, "只有地点", address="某某巷口", unit="东区单位")])
    result = run(session, admin, data, "清单.xlsx")
    issue = session.get(Issue, result.issue_ids[0])
    assert issue.needs_placement and issue.unit_id == world["east"].id
    assert issue.unit_source == "list" and issue.routing_conflict is None
    lon, lat = west_point(0)
    place_manually(session, admin, issue.id, lon, lat)
    assert (issue.unit_id, issue.unit_source) == (world["east"].id, "list")
    assert issue.routing_conflict == {"list": "东区单位", "category": None, "cell": "西区单位"}
    reroute(session, admin, issue.id, world["west"].id, reason="核实后属西区")
    assert (issue.unit_id, issue.unit_source) == (world["west"].id, "manual")
    place_manually(session, admin, issue.id, lon, lat)
    assert issue.unit_id == world["west"].id  # nothing automatic undoes a re-route


# ---- pictures pasted into the rows -------------------------------------------------------


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def workbook_with_pictures() -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(["问题清单"])
    ws.append(HEADERS)
    w0, w1, w2 = west_point(0), west_point(1), west_point(2)
    ws.append(row(1, "第一处 (有图)", lon=w0[0], lat=w0[1]))
    ws.append(row(2, "第二处 (无图)", lon=w1[0], lat=w1[1]))
    ws.append(row(3, "第三处 (有图)", lon=w2[0], lat=w2[1]))
    for cell, colour in (("K3", (200, 30, 30)), ("K5", (30, 30, 200))):
        ws.add_image(XLImage(io.BytesIO(_png(colour))), cell)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("bulk", [False, True], ids=["per-row", "bulk"])
def test_pictures_in_the_rows_become_before_photos(session, world, app, bulk):
    admin = world["users"]["admin"]
    result = run(session, admin, workbook_with_pictures(), "带图清单.xlsx", bulk=bulk,
                 photo_dir=Path(app.config["PHOTO_DIR"]))
    assert result.photos == 2 and result.photo_errors == []
    photos = session.execute(
        select(Issue.description, Photo).join(Photo, Photo.issue_id == Issue.id)
    ).all()
    by_issue = {d: p for d, p in photos}
    assert sorted(by_issue) == ["第一处 (有图)", "第三处 (有图)"]
    for description, colour in (("第一处 (有图)", (200, 30, 30)), ("第三处 (有图)", (30, 30, 200))):
        photo = by_issue[description]
        assert photo.kind == "before" and (photo.width, photo.height) == (40, 30)
        stored = Path(app.config["PHOTO_DIR"]) / photo.path
        with Image.open(stored) as image:
            assert image.convert("RGB").getpixel((5, 5)) == colour
    assert session.get(Batch, result.batch_id).summary["photos"] == 2
    # A dry run stores no files and no photos.
    session.rollback()
    dry = run(session, admin, workbook_with_pictures(), "带图清单.xlsx", dry_run=True)
    assert dry.photos == 0


# ---- hostile files ----------------------------------------------------------------------


def _with_member(data: bytes, name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, payload)
    return buffer.getvalue()


def test_a_zip_bomb_workbook_is_refused_before_it_is_parsed(session, world):
    good = workbook_bytes(listed_rows())
    # 61 MB of zeros packs into about 60 KB: over the size limit.
    big = _with_member(good, "xl/media/padding.bin", bytes(61 * 1024 * 1024))
    assert len(big) < 1024 * 1024
    with pytest.raises(ValidationError, match="解压后约 61 MB，超过上限 60 MB"):
        tabular.load_sheet(big, "炸弹.xlsx")
    # 5 MB of zeros: under the size limit, but a ratio no real workbook has.
    dense = _with_member(good, "xl/media/padding.bin", bytes(5 * 1024 * 1024))
    with pytest.raises(ValidationError, match="压缩比异常"):
        tabular.load_sheet(dense, "炸弹.xlsx")
    # The real workbook itself passes.
    assert len(tabular.load_sheet(good, "清单.xlsx").rows) == 6


def test_twenty_thousand_rows_at_one_point_stay_in_bounded_memory(session, world):
    admin = world["users"]["admin"]
    lon, lat = west_point(0)
    n = 20_000
    records = [
        {"seq": i, "description": f"同一地点第{i}条", "category": "背街小巷", "lon": lon,
         "lat": lat, "found_at": "2026-10-28", "_row": i + 2}
        for i in range(1, n + 1)
    ]
    result = bulk_import.import_records_bulk(
        session, admin, records, filename="聚集.csv", source="州级交叉检查"
    )
    assert result.imported == n
    first, second, last = (
        session.execute(
            select(IssueEvent.data).where(IssueEvent.issue_id == result.issue_ids[k])
        ).scalar()
        for k in (0, 1, -1)
    )
    assert "possible_duplicates" not in first
    assert second["possible_duplicates"] == [result.issue_ids[0]]
    assert last["possible_duplicates"] == result.issue_ids[: MAX_NEIGHBOURS]
    # The duplicate search of the next 20,000 rows at that point, against the 20,000 now
    # stored and each other: all pairs would be 600 million (the old search: ~20 GB).
    cat = np.full(n, world["category"].id, dtype=np.int64)
    found_at = [datetime(2026, 10, 28)] * n
    tracemalloc.start()
    try:
        dups, recur = find_neighbours(
            session, np.full(n, lon), np.full(n, lat), cat, found_at
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"
    assert len(dups) == n and recur == {}
    assert all(len(v) == MAX_NEIGHBOURS for v in dups.values())
    assert dups[n - 1].tolist() == result.issue_ids[: MAX_NEIGHBOURS]


def test_neighbour_search_is_exact_on_spread_points():
    """The capped sweep finds every pair a brute-force search finds when few are near."""
    rng = np.random.default_rng(7)
    n = 3_000
    lon = 103.5 + rng.random(n) * 0.01
    lat = 22.8 + rng.random(n) * 0.01
    group = rng.integers(1, 4, n)
    qi, ci = neighbour_pairs(lon, lat, group, lon, lat, group, radius_m=30.0,
                             earlier_only=True)
    got = set(zip(qi.tolist(), ci.tolist(), strict=True))
    want = set()
    for i in range(n):
        j = np.arange(i)
        near = (group[j] == group[i]) & (metres(lon[i], lat[i], lon[j], lat[j]) <= 30.0)
        want |= {(i, int(k)) for k in j[near]}
    assert want and got == want


def test_clean_text_on_the_way_in(session, world):
    admin = world["users"]["admin"]
    w = west_point(0)
    # A CSV carries what a workbook cannot (openpyxl refuses control characters).
    data = csv_bytes(
        [row(1, "路面\u200b垃圾\x07堆积", address="北山路\u202e口", unit="东区\u200b单位",
             lon=w[0], lat=w[1])]
    )
    for bulk in (False, True):
        result = run(session, admin, data, "清单.csv", bulk=bulk)
        issue = session.get(Issue, result.issue_ids[0])
        assert (issue.description, issue.address, issue.unit_id) == (
            "路面垃圾堆积", "北山路口", world["east"].id,
        )
        session.rollback()


# ---- the doors: web form, result page, CLI, alias page ----------------------------------


def test_web_import_shows_the_routing_counts_and_the_batch(session, world, client, auth, app,
                                                           tmp_path):
    app.config["IMPORT_UPLOAD_DIR"] = str(tmp_path / "uploads")
    auth.login("admin")
    data = workbook_bytes(listed_rows(), title="云岭县州级交叉检查反馈问题清单")
    response = client.post(
        "/issues/import/", data={"file": (io.BytesIO(data), "清单.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    preview = response.headers["Location"]
    page = client.get(preview).get_data(as_text=True)
    assert 'name="received_on"' in page
    form = {f"col_{i}": name for i, name in enumerate(
        ["seq", "description", "address", "category", "unit", "found_at", "deadline", "lon",
         "lat", "remark"])}
    bad = client.post(preview, data={**form, "source": "州级交叉检查", "received_on": "明天"})
    assert bad.status_code == 400 and "收到日期" in bad.get_data(as_text=True)
    response = client.post(preview, data={**form, "source": "州级交叉检查",
                                          "received_on": "2026-11-20"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "云岭县州级交叉检查反馈问题清单" in page
    for label, count in (("责任单位按清单", 4), ("责任单位按网格", 2), ("待核定", 3)):
        assert label in page and f"<td>{count}" in page.split(label, 1)[1][:80]
    batch = session.execute(select(Batch)).scalar_one()
    assert batch.received_on.isoformat() == "2026-11-20"
    if "batches.show" in app.view_functions:  # the batch page (another module) links back
        assert f'href="/batches/{batch.id}"' in page


def test_cli_prints_the_batch_and_dispatch_option(session, world, runner, tmp_path):
    path = tmp_path / "清单.xlsx"
    path.write_bytes(workbook_bytes(listed_rows()))
    out = runner.invoke(args=["import-issues", str(path), "--received-on", "2026-11-20"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[-1] == "imported=6 placed=6 queued=0 rejected=0 skipped=0"
    assert "list=4 category=0 cell=2 conflicts=3" in out.output
    out = runner.invoke(args=["import-issues", str(path), "--received-on", "20261301"])
    assert out.exit_code == 1 and "收到日期" in out.output


def test_cli_dispatch_on_import(session, world, runner, tmp_path):
    pytest.importorskip("app.services.batches.dispatch")
    path = tmp_path / "清单.xlsx"
    path.write_bytes(workbook_bytes(listed_rows()))
    out = runner.invoke(args=["import-issues", str(path), "--dispatch"])
    assert "dispatched=" in out.output, out.output
    session.expire_all()
    statuses = session.execute(select(Issue.status)).scalars().all()
    assert "dispatched" in statuses


def test_unit_alias_page_edits_and_uploads_with_row_numbers(session, world, client, auth):
    auth.login("admin")
    assert client.get("/admin/tables/unit-aliases/").status_code == 200
    response = client.post("/admin/tables/unit-aliases/", data={"alias": "县环卫站",
                                                                "unit": "东区单位"})
    assert response.status_code == 302
    assert match_units(session, "县环卫站").lead.id == world["east"].id
    response = client.post("/admin/tables/unit-aliases/", data={"alias": "县环卫站",
                                                                "unit": "西区单位"})
    assert response.status_code == 409
    bad = "别名,责任单位\n县建设局,县住房和城乡建设局\n县环保站,不存在的单位\n,东区单位\n"
    response = client.post(
        "/admin/tables/unit-aliases/import",
        data={"file": (io.BytesIO(bad.encode("utf-8")), "别名.csv")},
        content_type="multipart/form-data",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "第 3 行: 责任单位 &#39;不存在的单位&#39; 不存在" in page and "第 4 行: 别名 不能为空" in page
    assert session.execute(select(func.count(UnitAlias.id))).scalar() == 1  # nothing merged
    good = "别名,责任单位\n县建设局,县住房和城乡建设局\n"
    response = client.post(
        "/admin/tables/unit-aliases/import",
        data={"file": (io.BytesIO(good.encode("utf-8")), "别名.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert match_units(session, "县建设局").lead.id == world["zhujian"].id
    alias_id = session.execute(
        select(UnitAlias.id).where(UnitAlias.alias == "县建设局")
    ).scalar()
    assert client.post("/admin/tables/unit-aliases/delete",
                       data={"alias_id": alias_id}).status_code == 302
    assert match_units(session, "县建设局").lead is None
    auth.logout()
    auth.login("west")
    assert client.get("/admin/tables/unit-aliases/").status_code == 403


def test_co_units_are_stored_on_the_bulk_path(session, world):
    admin = world["users"]["admin"]
    result = run(session, admin, workbook_bytes(listed_rows()), "清单.xlsx", bulk=True)
    co = session.execute(
        select(IssueUnit.issue_id, Unit.name).join(Unit, IssueUnit.unit_id == Unit.id)
        .where(IssueUnit.issue_id.in_(result.issue_ids))
    ).all()
    assert [name for _, name in co] == ["西区单位"]


def test_web_dispatch_on_import(session, world, client, auth, app, tmp_path):
    pytest.importorskip("app.services.batches.dispatch")
    app.config["IMPORT_UPLOAD_DIR"] = str(tmp_path / "uploads")
    auth.login("admin")
    data = workbook_bytes(listed_rows())
    response = client.post(
        "/issues/import/", data={"file": (io.BytesIO(data), "清单.xlsx")},
        content_type="multipart/form-data",
    )
    preview = response.headers["Location"]
    assert 'name="dispatch"' in client.get(preview).get_data(as_text=True)
    form = {f"col_{i}": name for i, name in enumerate(
        ["seq", "description", "address", "category", "unit", "found_at", "deadline", "lon",
         "lat", "remark"])}
    response = client.post(preview, data={**form, "source": "州级交叉检查", "dispatch": "1"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    session.expire_all()
    statuses = session.execute(select(Issue.status)).scalars().all()
    dispatched = statuses.count("dispatched")
    assert dispatched >= 1 and f"已派遣 {dispatched} 个问题" in page


# ---- #13: hostile ids and file names -------------------------------------------------------


@pytest.mark.parametrize(
    "alias_id", ["99999999999999999999", "2147483648", "-1", "abc", "1e3", "０"]
)
def test_unit_alias_edit_and_delete_with_an_impossible_id_is_404(
    session, world, client, auth, alias_id
):
    """Regression (#13): a huge alias_id was an OverflowError (500) in the driver."""
    auth.login("admin")
    response = client.post("/admin/tables/unit-aliases/",
                           data={"alias_id": alias_id, "alias": "县环卫站", "unit": "东区单位"})
    assert response.status_code == 404
    assert "不存在" in response.get_data(as_text=True)
    assert client.post("/admin/tables/unit-aliases/delete",
                       data={"alias_id": alias_id}).status_code == 404
    assert client.post("/admin/tables/unit-aliases/delete", data={}).status_code == 404
    # Nothing was added in place of the row that does not exist.
    assert session.execute(select(func.count(UnitAlias.id))).scalar() == 0


@pytest.mark.parametrize("bulk", [False, True], ids=["per-row", "bulk"])
@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ('..\\..\\<script>alert(1)</script>"名单\x07%0d%0a.xlsx', "名单"),
        ("../../etc/11月暗访%E9%97%AE%E9%A2%98.csv", "11月暗访问题"),
        ("<b></b>\u200b\x07%0d%0a.csv", None),  # nothing readable: dated fallback
    ],
)
def test_a_batch_named_after_a_hostile_file_name_is_readable(
    session, world, bulk, filename, expected
):
    admin = world["users"]["admin"]
    rows = listed_rows()[:2]
    data = workbook_bytes(rows, title=None) if filename.endswith(".xlsx") else csv_bytes(rows)
    result = run(session, admin, data, filename, bulk=bulk)
    assert result.imported == 2, result.rejected
    batch = session.get(Batch, result.batch_id)
    assert batch.name == (expected or f"导入清单 {today_local().isoformat()}")
    for bad in ("\x07", "\r", "\n", "%0d", "<", ">", '"', "\\", "/"):
        assert bad not in batch.name and bad not in batch.filename
