"""反馈批次 after import: progress, scoping, one-step dispatch, conflicts and the 复核."""

from __future__ import annotations

import io
from datetime import timedelta
from html import unescape

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from app.models import Batch, Issue, IssueEvent, today_local
from app.services.batches import dispatch, queries
from app.services.core.errors import ForbiddenError, NotFoundError
from app.services.issues.intake import transition
from tests.factories import AuthActions, east_point, west_point


@pytest.fixture()
def world(factory, session):
    """A batch of five problems: three west, two east, one of them a routing conflict."""
    town = factory.town()
    users = town["users"]
    batch = Batch(name="州级交叉检查反馈问题清单", source="州级交叉检查",
                  received_on=today_local())
    session.add(batch)
    session.flush()
    rows = []
    points = [west_point(0), west_point(1), west_point(2), east_point(0), east_point(1)]
    for seq, (lon, lat) in enumerate(points, start=1):
        issue = factory.issue(users["inspector"], lon=lon, lat=lat,
                              description=f"批次问题{seq}", source="州级交叉检查")
        issue.batch_id, issue.batch_seq = batch.id, str(seq)
        rows.append(issue)
    # Row 3 is in a west cell but the list named the east unit: it follows the list.
    conflict = rows[2]
    conflict.unit_id = town["east"].id
    conflict.unit_source = "list"
    conflict.listed_unit = "东区单位"
    conflict.routing_conflict = {"list": "东区单位", "category": None, "cell": "西区单位"}
    # Row 5 could not be placed nor routed.
    rows[4].unit_id = None
    rows[4].needs_placement = True
    rows[4].lon = rows[4].lat = None
    session.commit()
    other = Batch(name="省级暗访", source="省级暗访")
    session.add(other)
    session.flush()
    lonely = factory.issue(users["inspector"], lon=east_point(2)[0], lat=east_point(2)[1],
                           description="东区暗访问题")
    lonely.batch_id, lonely.batch_seq = other.id, "1"
    session.commit()
    return {**town, "batch": batch, "other": other, "issues": rows}


def _token(session, user) -> str:
    from app.services.core.passwords import issue_token

    token = issue_token(session, user, name="t")
    session.commit()
    return token


def test_progress_counts_and_unit_share(world, session):
    users = world["users"]
    detail = queries.batch_progress(session, users["admin"], world["batch"].id)
    counts = detail["counts"]
    assert counts["total"] == 5 and counts["by_status"]["reported"] == 5
    assert {r["name"]: r["total"] for r in counts["by_unit"]} == {
        "西区单位": 2, "东区单位": 2, "未分配": 1}
    assert [i.id for i in detail["conflicts"]] == [world["issues"][2].id]
    west = queries.batch_progress(session, users["west"], world["batch"].id)
    assert west["counts"]["total"] == 2
    assert {i.unit_id for i in west["issues"]} == {world["west"].id}
    assert west["conflicts"] == []  # settling is the admin's
    # The west head has nothing in the other batch: it does not exist for them.
    with pytest.raises(NotFoundError):
        queries.batch_progress(session, users["west"], world["other"].id)
    listed = queries.list_batches(session, users["west"])
    assert [b["id"] for b in listed] == [world["batch"].id] and listed[0]["total"] == 2


def test_overdue_and_closed_on_time(world, session):
    users = world["users"]
    a, b = world["issues"][0], world["issues"][1]
    a.deadline = today_local() - timedelta(days=3)
    b.deadline = today_local() + timedelta(days=3)
    session.commit()
    for action, who in (("dispatch", "admin"), ("submit", "west"), ("verify_ok", "inspector")):
        transition(session, users[who], b.id, action)
    session.commit()
    counts = queries.batch_progress(session, users["leader"], world["batch"].id)["counts"]
    assert counts["overdue"] == 1 and counts["closed_on_time"] == 1
    assert counts["by_status"]["closed"] == 1


def test_dispatch_preview_then_dispatch_is_idempotent(world, session):
    users = world["users"]
    batch_id = world["batch"].id
    preview = dispatch.preview_batch(session, users["admin"], batch_id)
    assert preview.per_unit == {"西区单位": 2, "东区单位": 2}
    assert [(s["id"], s["code"]) for s in preview.skipped] == [
        (world["issues"][4].id, "needs_placement")]
    session.rollback()
    assert session.get(Issue, world["issues"][0].id).status == "reported"  # preview wrote nothing
    result = dispatch.dispatch_batch(session, users["admin"], batch_id)
    session.commit()
    assert result.dispatched == 4 and result.per_unit == {"西区单位": 2, "东区单位": 2}
    events = session.execute(select(IssueEvent).where(IssueEvent.action == "dispatch")).scalars()
    assert sorted(e.issue_id for e in events) == sorted(i.id for i in world["issues"][:4])
    again = dispatch.dispatch_batch(session, users["admin"], batch_id)
    assert again.dispatched == 0
    assert {s["code"] for s in again.skipped} == {"dispatched", "needs_placement"}


def test_only_admins_dispatch(world, session):
    for who in ("inspector", "leader", "west"):
        with pytest.raises(ForbiddenError):
            dispatch.dispatch_batch(session, world["users"][who], world["batch"].id)
    assert session.get(Issue, world["issues"][0].id).status == "reported"


def test_pending_category_and_closed_are_skipped(world, session):
    issues = world["issues"]
    issues[0].category_pending = True
    issues[1].status = "rejected"
    session.commit()
    preview = dispatch.preview_issues(session, world["users"]["admin"], [i.id for i in issues])
    reasons = {s["id"]: s["code"] for s in preview.skipped}
    assert reasons[issues[0].id] == "pending_category" and reasons[issues[1].id] == "closed"


def test_dispatch_pages_and_unit_heads_see_their_actions(world, client, auth, session):
    batch_id = world["batch"].id
    auth.login("admin")
    page = client.get(f"/batches/{batch_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "州级交叉检查反馈问题清单" in html and "单位冲突" in html
    assert "leaflet" in html.lower()  # the batch map
    preview = client.get(f"/batches/{batch_id}/dispatch").get_data(as_text=True)
    assert "确认派遣 4 个问题" in preview and "待定位" in preview
    assert session.get(Issue, world["issues"][0].id).status == "reported"
    response = client.post(f"/batches/{batch_id}/dispatch")
    assert response.status_code == 302
    session.expire_all()
    assert [i.status for i in session.execute(
        select(Issue).where(Issue.batch_id == batch_id).order_by(Issue.id)).scalars()] == [
        "dispatched"] * 4 + ["reported"]
    auth.login("west")
    mine = world["issues"][0].id
    html = client.get(f"/issues/{mine}").get_data(as_text=True)
    assert f"/issues/{mine}/act/start" in html and f"/issues/{mine}/act/submit" in html
    assert client.get(f"/batches/{world['other'].id}").status_code == 404
    assert client.post(f"/batches/{batch_id}/dispatch").status_code == 403


def test_dispatch_the_problem_lists_filter_results(world, client, auth, session):
    auth.login("admin")
    west_id = world["west"].id
    listing = client.get(f"/issues/?unit={west_id}").get_data(as_text=True)
    assert "派遣筛选结果" in listing
    preview = client.get(f"/batches/dispatch?unit={west_id}").get_data(as_text=True)
    assert "确认派遣 2 个问题" in preview
    ids = [str(i.id) for i in world["issues"][:2]]
    assert client.post("/batches/dispatch", data={"ids": ids}).status_code == 302
    session.expire_all()
    assert {session.get(Issue, int(i)).status for i in ids} == {"dispatched"}
    assert session.get(Issue, world["issues"][3].id).status == "reported"
    assert client.post("/batches/dispatch", data={}).status_code == 400


def test_api_batches_and_dispatch(world, client, session):
    users = world["users"]
    admin, west = _token(session, users["admin"]), _token(session, users["west"])
    body = client.get("/api/v1/batches", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert body["total"] == 2
    item = next(b for b in body["items"] if b["id"] == world["batch"].id)
    assert {"id", "name", "source", "total", "by_status", "overdue", "received_on",
            "closed_on_time"} <= item.keys()
    assert item["total"] == 5 and item["by_status"]["reported"] == 5
    mine = client.get(f"/api/v1/batches/{world['batch'].id}",
                      headers={"Authorization": f"Bearer {west}"}).get_json()
    assert mine["total"] == 2 and len(mine["issues"]) == 2
    assert client.get(f"/api/v1/batches/{world['other'].id}",
                      headers={"Authorization": f"Bearer {west}"}).status_code == 404
    refused = client.post(f"/api/v1/batches/{world['batch'].id}/dispatch",
                          headers={"Authorization": f"Bearer {west}"})
    assert refused.status_code == 403 and "error" in refused.get_json()
    done = client.post(f"/api/v1/batches/{world['batch'].id}/dispatch",
                       headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert done["dispatched"] == 4 and done["per_unit"] == {"西区单位": 2, "东区单位": 2}
    assert done["skipped"] == [{"id": world["issues"][4].id, "seq": "5",
                                "reason": dispatch.SKIP_REASONS["needs_placement"],
                                "code": "needs_placement"}]
    again = client.post(f"/api/v1/batches/{world['batch'].id}/dispatch",
                        headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert again["dispatched"] == 0
    issue = client.get(f"/api/v1/issues/{world['issues'][2].id}",
                       headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert issue["batch"] == world["batch"].id and issue["unit_source"] == "list"
    assert issue["routing_conflict"]["cell"] == "西区单位"
    assert {"co_units", "category_pending", "category_text", "measures"} <= issue.keys()
    assert client.get("/api/v1/batches").status_code == 401


def test_cli_dispatch(world, runner, session):
    result = runner.invoke(args=["dispatch", "--batch", str(world["batch"].id)])
    assert result.exit_code == 0, result.output
    assert "西区单位\t2" in result.output and "东区单位\t2" in result.output
    assert "dispatched 4" in result.output
    bad = runner.invoke(args=["dispatch", "--batch", "999999"])
    assert bad.exit_code != 0 and "999999" in bad.output
    assert runner.invoke(args=["dispatch", "--batch", "x"]).exit_code != 0


def test_settle_conflicts_both_ways(world, session, client, auth):
    conflict = world["issues"][2]
    auth.login("west")
    assert client.post(f"/batches/{world['batch'].id}/conflicts",
                       data={"ids": [conflict.id], "choice": "rule"}).status_code == 403
    auth.login("admin")
    response = client.post(f"/batches/{world['batch'].id}/conflicts",
                           data={"ids": [conflict.id], "choice": "rule"})
    assert response.status_code == 302
    session.expire_all()
    issue = session.get(Issue, conflict.id)
    assert issue.unit_id == world["west"].id and issue.unit_source == "manual"
    assert issue.routing_conflict is None
    assert issue.events[-1].action == "reroute"
    # 按清单 keeps the unit and clears the flag.
    other = world["issues"][3]
    other.routing_conflict = {"list": "东区单位", "category": "西区单位", "cell": None}
    session.commit()
    dispatch.settle_conflicts(session, world["users"]["admin"], [other.id], "list")
    session.commit()
    session.expire_all()
    kept = session.get(Issue, other.id)
    assert kept.unit_id == world["east"].id and kept.routing_conflict is None
    assert kept.events[-1].action == "settle"


def _recheck_file(rows, headers=("序号", "问题描述", "复核", "复核意见")) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(["州级复核结果"])
    ws.append(list(headers))
    for row in rows:
        ws.append(list(row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_recheck_import(world, session, client, auth):
    users = world["users"]
    issues = world["issues"]
    for action, who in (("dispatch", "admin"), ("submit", "west")):
        transition(session, users[who], issues[0].id, action)
        transition(session, users[who], issues[1].id, action)
    session.commit()
    data = _recheck_file([
        (1, "批次问题1", "通过", "已整改"),
        (2, "批次问题2", "不合格", "仍有垃圾"),
        (None, "批次问题4", "未通过", "未见整改"),
        (3, "批次问题3", "", ""),
    ])
    auth.login("admin")
    response = client.post(f"/batches/{world['batch'].id}/recheck",
                           data={"file": (io.BytesIO(data), "复核.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    session.expire_all()
    first, second, fourth = (session.get(Issue, issues[i].id) for i in (0, 1, 3))
    assert first.status == "closed" and first.recheck_result == "passed"
    assert second.status == "rectifying" and second.rework_count == 1
    assert second.recheck_result == "failed" and second.recheck_note == "仍有垃圾"
    # 序号 4 was never dispatched: the result is recorded, nothing is sent back.
    assert fourth.status == "reported" and fourth.rework_count == 0
    assert fourth.recheck_result == "failed" and fourth.events[-1].action == "recheck"
    assert session.get(Issue, issues[2].id).recheck_result is None
    batch = session.get(Batch, world["batch"].id)
    assert batch.recheck["passed"] == 1 and batch.recheck["failed"] == 2
    html = client.get(f"/batches/{world['batch'].id}").get_data(as_text=True)
    assert "州级复核" in html and "未通过" in html
    # The same file again is refused: no second rework.
    again = client.post(f"/batches/{world['batch'].id}/recheck",
                        data={"file": (io.BytesIO(data), "复核.xlsx")},
                        content_type="multipart/form-data")
    assert again.status_code == 409
    session.expire_all()
    assert session.get(Issue, issues[1].id).rework_count == 1


def test_recheck_unknown_seq_names_the_row_and_changes_nothing(world, session, client, auth):
    data = _recheck_file([(1, "批次问题1", "通过", ""), (99, "不存在", "未通过", "")])
    auth.login("admin")
    response = client.post(f"/batches/{world['batch'].id}/recheck",
                           data={"file": (io.BytesIO(data), "复核.xlsx")},
                           content_type="multipart/form-data")
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "第 4 行" in text and "序号 99" in text
    session.expire_all()
    assert session.get(Issue, world["issues"][0].id).recheck_result is None
    assert session.get(Batch, world["batch"].id).recheck is None
    bad = _recheck_file([(1, "批次问题1", "差不多", "")])
    response = client.post(f"/batches/{world['batch'].id}/recheck",
                           data={"file": (io.BytesIO(bad), "复核.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "差不多" in response.get_data(as_text=True)
    auth.login("inspector")
    assert client.post(f"/batches/{world['batch'].id}/recheck",
                       data={"file": (io.BytesIO(data), "复核.xlsx")},
                       content_type="multipart/form-data").status_code == 403


def test_demo_batch_dispatches_in_one_step_and_unit_heads_see_their_actions(demo_app):
    """The demo's 126-row prefecture list: dispatch it whole, then look as each unit head.

    Runs in one transaction that is rolled back: the shared demo database stays as seeded.
    """
    from app.extensions import db
    from app.models import User
    from app.services.issues import actions as issue_actions

    with demo_app.app_context():
        session = db.session
        try:
            batch = session.execute(
                select(Batch).where(Batch.source == "州级交叉检查").order_by(Batch.id)
            ).scalars().first()
            assert batch is not None, "the demo seed imports the prefecture list as a batch"
            admin = session.execute(select(User).where(User.username == "admin")).scalar_one()
            total = session.execute(
                select(Issue).where(Issue.batch_id == batch.id)).scalars().all()
            assert len(total) == 126
            preview = dispatch.preview_batch(session, admin, batch.id)
            result = dispatch.dispatch_batch(session, admin, batch.id)
            assert result.per_unit == preview.per_unit
            assert result.dispatched + len(result.skipped) == 126
            assert result.dispatched > 100
            heads = session.execute(select(User).where(User.role == "unit_head")).scalars()
            seen: set[int] = set()
            for head in heads:
                share = queries.batch_issues(session, head, batch.id)
                assert all(i.unit_id == head.unit_id or any(
                    c.unit_id == head.unit_id for c in i.co_units) for i in share)
                for issue in share:
                    if issue.status != "dispatched":
                        continue
                    actions = issue_actions.allowed_actions(head, issue)
                    assert "start" in actions and "submit" in actions and "photo" in actions
                    seen.add(issue.id)
            assert seen == set(result.ids)  # every dispatched problem reached its unit head
            assert dispatch.dispatch_batch(session, admin, batch.id).dispatched == 0
        finally:
            session.rollback()
            session.remove()


# ---------------------------------------------------------------------- review of issue #12


def _post_recheck(client, batch_id, data, name="复核.xlsx"):
    return client.post(f"/batches/{batch_id}/recheck", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _submit(session, users, *issues):
    for issue in issues:
        transition(session, users["admin"], issue.id, "dispatch")
        transition(session, users["west" if issue.unit_id == issues[0].unit_id else "east"],
                   issue.id, "submit")
    session.commit()


def test_unit_head_sees_only_their_own_recheck_results(world, session, client, auth):
    """#2: the east list's 复核 is not shown to the west head; theirs is, without files."""
    users, batch_id = world["users"], world["batch"].id
    auth.login("admin")
    east_only = _recheck_file([(4, "批次问题4", "未通过", "东区未整改")])
    assert _post_recheck(client, batch_id, east_only, "rc_east.xlsx").status_code == 302
    auth.login("west")
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "州级复核" not in html and "rc_east.xlsx" not in html and "admin" not in html
    west = _token(session, users["west"])
    body = client.get(f"/api/v1/batches/{batch_id}",
                      headers={"Authorization": f"Bearer {west}"}).get_json()
    assert body["recheck"] is None
    auth.login("admin")
    mine = _recheck_file([(1, "批次问题1", "未通过", "西区未整改")])
    assert _post_recheck(client, batch_id, mine, "rc_west.xlsx").status_code == 302
    auth.login("west")
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "已复核 <b>1</b> 个，通过 <b>0</b> 个，未通过 <b class=\"late\">1</b> 个" in html
    assert "rc_east.xlsx" not in html and "rc_west.xlsx" not in html
    body = client.get(f"/api/v1/batches/{batch_id}",
                      headers={"Authorization": f"Bearer {west}"}).get_json()
    assert body["recheck"] == {"rows": 1, "passed": 0, "failed": 1}
    admin = _token(session, users["admin"])
    full = client.get(f"/api/v1/batches/{batch_id}",
                      headers={"Authorization": f"Bearer {admin}"}).get_json()["recheck"]
    assert full["rows"] == 2 and full["failed"] == 2
    assert [h["filename"] for h in full["history"]] == ["rc_east.xlsx", "rc_west.xlsx"]
    assert full["last"]["by"] == "admin" and "sha256" not in str(full)


def test_recheck_counts_every_upload_and_refuses_any_earlier_file(world, session, client, auth):
    """#3 and #4: counts over all problems' results; A, B, A again is a 409."""
    users, issues, batch_id = world["users"], world["issues"], world["batch"].id
    _submit(session, users, issues[0], issues[1])
    auth.login("admin")
    a = _recheck_file([(1, "批次问题1", "通过", ""), (2, "批次问题2", "未通过", "仍脏")])
    b = _recheck_file([(4, "批次问题4", "未通过", "未见整改")])
    assert _post_recheck(client, batch_id, a, "a.xlsx").status_code == 302
    assert _post_recheck(client, batch_id, b, "b.xlsx").status_code == 302
    again = _post_recheck(client, batch_id, a, "a-copy.xlsx")
    assert again.status_code == 409 and "已导入过" in again.get_data(as_text=True)
    session.expire_all()
    assert session.get(Issue, issues[1].id).rework_count == 1
    detail = queries.batch_progress(session, users["admin"], batch_id)
    assert detail["recheck"]["rows"] == 3
    assert (detail["recheck"]["passed"], detail["recheck"]["failed"]) == (1, 2)
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "已复核 <b>3</b> 个" in html and "a.xlsx" in html and "b.xlsx" in html
    # 复核 times are shown to the minute, not as raw ISO.
    at = session.get(Batch, batch_id).recheck["at"]
    assert at[:16].replace("T", " ") in html and at not in html
    from docx import Document

    doc = Document(io.BytesIO(client.get(f"/batches/{batch_id}/ledger.docx").data))
    assert any("州级复核 3 个，通过 1 个，未通过 2 个" in p.text for p in doc.paragraphs)


def test_recheck_failed_sends_back_only_submitted_or_closed(world, session, client, auth):
    """#5: reported/dispatched keep their status; rejected is a warning; closed reopens."""
    users, issues, batch_id = world["users"], world["issues"], world["batch"].id
    transition(session, users["admin"], issues[0].id, "dispatch")  # 1: dispatched
    _submit(session, users, issues[1])
    transition(session, users["inspector"], issues[1].id, "verify_ok")  # 2: closed
    issues[3].status = "rejected"  # 4: 不予立案
    session.commit()
    data = _recheck_file([(1, "", "未通过", "没改"), (2, "", "未通过", "反弹"),
                          (3, "", "未通过", "未派遣"), (4, "", "未通过", "")])
    auth.login("admin")
    response = _post_recheck(client, batch_id, data)
    assert response.status_code == 302
    session.expire_all()
    dispatched, closed, reported, rejected = (session.get(Issue, issues[i].id)
                                              for i in (0, 1, 2, 3))
    assert dispatched.status == "dispatched" and dispatched.rework_count == 0
    assert dispatched.recheck_result == "failed" and dispatched.events[-1].note.endswith("没改")
    assert reported.status == "reported" and reported.rework_count == 0
    assert closed.status == "rectifying" and closed.rework_count == 1
    assert closed.closed_at is None
    assert rejected.status == "rejected" and rejected.recheck_result is None
    html = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert f"第 6 行: 问题 #{rejected.id} 已不予立案，未处理" in html
    assert "1 行未处理" in html


def test_recheck_empty_file_and_uncomputed_formula(world, session, client, auth):
    """#6: a header-only file is a 400; a formula without a cached value names its row."""
    batch_id = world["batch"].id
    auth.login("admin")
    empty = _post_recheck(client, batch_id, _recheck_file([]))
    assert empty.status_code == 400 and "复核文件中没有数据行" in empty.get_data(as_text=True)
    formula = _recheck_file([(1, "批次问题1", "通过", ""), (2, "批次问题2", '=IF(1,"通过")', "")])
    response = _post_recheck(client, batch_id, formula)
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "第 4 行" in text and "公式" in text
    session.expire_all()
    assert session.get(Batch, batch_id).recheck is None
    assert session.get(Issue, world["issues"][0].id).recheck_result is None


def test_a_stale_dispatch_is_skipped_not_a_409(world, session, client, auth, app):
    """#16: another request dispatched a problem meanwhile: skipped with a reason."""
    from sqlalchemy.orm import Session

    from app.extensions import db
    from app.models import User

    users, issues, batch_id = world["users"], world["issues"], world["batch"].id
    for issue in issues:  # this request has read the batch ...
        session.get(Issue, issue.id).status  # noqa: B018
    with Session(db.engine) as other:  # ... while another one dispatches row 1
        transition(other, other.get(User, users["admin"].id), issues[0].id, "dispatch")
        other.commit()
    result = dispatch.dispatch_batch(session, users["admin"], batch_id)
    session.commit()
    assert result.dispatched == 3
    assert [(s["id"], s["code"]) for s in result.skipped if s["code"] == "raced"] == [
        (issues[0].id, "raced")]
    session.expire_all()
    events = session.execute(select(IssueEvent).where(
        IssueEvent.issue_id == issues[0].id, IssueEvent.action == "dispatch")).scalars().all()
    assert len(events) == 1  # never dispatched twice
    auth.login("admin")
    again = client.post(f"/batches/{batch_id}/dispatch", follow_redirects=True)
    assert again.status_code == 200 and "本批次已在派遣中或已派遣" in again.get_data(as_text=True)


def test_conflicts_form_acts_only_on_this_batch_and_reports_bad_input(world, session, client, auth):
    """#17: ids of other batches are ignored and counted; bad input is a message."""
    batch_id = world["batch"].id
    conflict = world["issues"][2]
    lonely = session.execute(select(Issue).where(Issue.batch_id == world["other"].id)).scalar_one()
    lonely.routing_conflict = {"list": "西区单位", "category": None, "cell": "东区单位"}
    session.commit()
    auth.login("admin")
    page = client.post(f"/batches/{batch_id}/conflicts", data={"ids": [lonely.id],
                                                               "choice": "list"},
                       follow_redirects=True)
    assert page.status_code == 200 and "都不属于本批次" in page.get_data(as_text=True)
    both = client.post(f"/batches/{batch_id}/conflicts",
                       data={"ids": [lonely.id, conflict.id], "choice": "list"},
                       follow_redirects=True).get_data(as_text=True)
    assert "已处理 1 个单位冲突" in both and "忽略 1 个不属于本批次的问题" in both
    session.expire_all()
    assert session.get(Issue, lonely.id).routing_conflict is not None
    assert session.get(Issue, conflict.id).routing_conflict is None
    for data, words in (({"ids": "abc", "choice": "list"}, "问题编号 'abc' 无效"),
                        ({"ids": [conflict.id], "choice": "xx"}, "处理方式 'xx' 无效")):
        response = client.post(f"/batches/{batch_id}/conflicts", data=data)
        assert response.status_code == 302
        html = client.get(response.headers["Location"]).get_data(as_text=True)
        assert words in unescape(html)


def test_unknown_unit_filter_is_404_for_every_id(world, client, auth):
    """#18: a unit that does not exist is 404, whether or not the id fits 32 bits."""
    batch_id = world["batch"].id
    auth.login("admin")
    for unit in (2147483647, 99999, 2147483648, -1):
        assert client.get(f"/batches/{batch_id}?unit={unit}").status_code == 404, unit
    assert client.get(f"/batches/{batch_id}?unit={world['west'].id}").status_code == 200
    auth.login("west")
    assert client.get(f"/batches/{batch_id}?unit={world['east'].id}").status_code == 404


def test_dispatch_is_one_transaction_the_caller_commits(world, session):
    """Per-problem savepoints must not commit on their own (SQLite's SAVEPOINT quirk)."""
    dispatch.dispatch_batch(session, world["users"]["admin"], world["batch"].id)
    session.rollback()
    session.expire_all()
    assert {session.get(Issue, i.id).status for i in world["issues"]} == {"reported"}
    assert not session.execute(select(IssueEvent).where(IssueEvent.action == "dispatch")).first()


def test_simultaneous_dispatch_clicks_all_land_on_the_batch_page(world, app, session):
    """#16: three dispatch requests at once: all redirect, each problem dispatched once."""
    import threading

    batch_id = world["batch"].id
    clients = [app.test_client() for _ in range(3)]
    for c in clients:
        AuthActions(c).login("admin")
    barrier = threading.Barrier(3)
    codes: list[int] = []

    def click(c):
        barrier.wait()
        codes.append(c.post(f"/batches/{batch_id}/dispatch").status_code)

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [302, 302, 302]
    session.expire_all()
    events = session.execute(select(IssueEvent.issue_id).where(
        IssueEvent.action == "dispatch")).scalars().all()
    assert sorted(events) == sorted(i.id for i in world["issues"][:4])
