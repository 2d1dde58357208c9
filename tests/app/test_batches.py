"""反馈批次 after import: progress, scoping, one-step dispatch, conflicts and the 复核."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from app.models import Batch, Issue, IssueEvent, today_local
from app.services import batches
from app.services.errors import ForbiddenError, NotFoundError
from app.services.issues import transition
from tests.conftest import east_point, login, west_point


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
    from app.auth import issue_token

    token = issue_token(session, user, name="t")
    session.commit()
    return token


def test_progress_counts_and_unit_share(world, session):
    users = world["users"]
    detail = batches.batch_progress(session, users["admin"], world["batch"].id)
    counts = detail["counts"]
    assert counts["total"] == 5 and counts["by_status"]["reported"] == 5
    assert {r["name"]: r["total"] for r in counts["by_unit"]} == {
        "西区单位": 2, "东区单位": 2, "未分配": 1}
    assert [i.id for i in detail["conflicts"]] == [world["issues"][2].id]
    west = batches.batch_progress(session, users["west"], world["batch"].id)
    assert west["counts"]["total"] == 2
    assert {i.unit_id for i in west["issues"]} == {world["west"].id}
    assert west["conflicts"] == []  # settling is the admin's
    # The west head has nothing in the other batch: it does not exist for them.
    with pytest.raises(NotFoundError):
        batches.batch_progress(session, users["west"], world["other"].id)
    listed = batches.list_batches(session, users["west"])
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
    counts = batches.batch_progress(session, users["leader"], world["batch"].id)["counts"]
    assert counts["overdue"] == 1 and counts["closed_on_time"] == 1
    assert counts["by_status"]["closed"] == 1


def test_dispatch_preview_then_dispatch_is_idempotent(world, session):
    users = world["users"]
    batch_id = world["batch"].id
    preview = batches.preview_batch(session, users["admin"], batch_id)
    assert preview.per_unit == {"西区单位": 2, "东区单位": 2}
    assert [(s["id"], s["code"]) for s in preview.skipped] == [
        (world["issues"][4].id, "needs_placement")]
    session.rollback()
    assert session.get(Issue, world["issues"][0].id).status == "reported"  # preview wrote nothing
    result = batches.dispatch_batch(session, users["admin"], batch_id)
    session.commit()
    assert result.dispatched == 4 and result.per_unit == {"西区单位": 2, "东区单位": 2}
    events = session.execute(select(IssueEvent).where(IssueEvent.action == "dispatch")).scalars()
    assert sorted(e.issue_id for e in events) == sorted(i.id for i in world["issues"][:4])
    again = batches.dispatch_batch(session, users["admin"], batch_id)
    assert again.dispatched == 0
    assert {s["code"] for s in again.skipped} == {"dispatched", "needs_placement"}


def test_only_admins_dispatch(world, session):
    for who in ("inspector", "leader", "west"):
        with pytest.raises(ForbiddenError):
            batches.dispatch_batch(session, world["users"][who], world["batch"].id)
    assert session.get(Issue, world["issues"][0].id).status == "reported"


def test_pending_category_and_closed_are_skipped(world, session):
    issues = world["issues"]
    issues[0].category_pending = True
    issues[1].status = "rejected"
    session.commit()
    preview = batches.preview_issues(session, world["users"]["admin"], [i.id for i in issues])
    reasons = {s["id"]: s["code"] for s in preview.skipped}
    assert reasons[issues[0].id] == "pending_category" and reasons[issues[1].id] == "closed"


def test_dispatch_pages_and_unit_heads_see_their_actions(world, client, session):
    batch_id = world["batch"].id
    login(client, "admin")
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
    login(client, "west")
    mine = world["issues"][0].id
    html = client.get(f"/issues/{mine}").get_data(as_text=True)
    assert f"/issues/{mine}/act/start" in html and f"/issues/{mine}/act/submit" in html
    assert client.get(f"/batches/{world['other'].id}").status_code == 404
    assert client.post(f"/batches/{batch_id}/dispatch").status_code == 403


def test_dispatch_the_problem_lists_filter_results(world, client, session):
    login(client, "admin")
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
                                "reason": batches.SKIP_REASONS["needs_placement"],
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


def test_settle_conflicts_both_ways(world, session, client):
    conflict = world["issues"][2]
    login(client, "west")
    assert client.post(f"/batches/{world['batch'].id}/conflicts",
                       data={"ids": [conflict.id], "choice": "rule"}).status_code == 403
    login(client, "admin")
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
    batches.settle_conflicts(session, world["users"]["admin"], [other.id], "list")
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


def test_recheck_import(world, session, client):
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
    login(client, "admin")
    response = client.post(f"/batches/{world['batch'].id}/recheck",
                           data={"file": (io.BytesIO(data), "复核.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    session.expire_all()
    first, second, fourth = (session.get(Issue, issues[i].id) for i in (0, 1, 3))
    assert first.status == "closed" and first.recheck_result == "passed"
    assert second.status == "rectifying" and second.rework_count == 1
    assert second.recheck_result == "failed" and second.recheck_note == "仍有垃圾"
    assert fourth.status == "rectifying" and fourth.rework_count == 1
    assert fourth.events[-1].action == "recheck"
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


def test_recheck_unknown_seq_names_the_row_and_changes_nothing(world, session, client):
    data = _recheck_file([(1, "批次问题1", "通过", ""), (99, "不存在", "未通过", "")])
    login(client, "admin")
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
    login(client, "inspector")
    assert client.post(f"/batches/{world['batch'].id}/recheck",
                       data={"file": (io.BytesIO(data), "复核.xlsx")},
                       content_type="multipart/form-data").status_code == 403


def test_demo_batch_dispatches_in_one_step_and_unit_heads_see_their_actions(demo_app):
    """The demo's 126-row prefecture list: dispatch it whole, then look as each unit head.

    Runs in one transaction that is rolled back: the shared demo database stays as seeded.
    """
    from app.extensions import db
    from app.models import User
    from app.services import issue_actions

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
            preview = batches.preview_batch(session, admin, batch.id)
            result = batches.dispatch_batch(session, admin, batch.id)
            assert result.per_unit == preview.per_unit
            assert result.dispatched + len(result.skipped) == 126
            assert result.dispatched > 100
            heads = session.execute(select(User).where(User.role == "unit_head")).scalars()
            seen: set[int] = set()
            for head in heads:
                share = batches.batch_issues(session, head, batch.id)
                assert all(i.unit_id == head.unit_id or any(
                    c.unit_id == head.unit_id for c in i.co_units) for i in share)
                for issue in share:
                    if issue.status != "dispatched":
                        continue
                    actions = issue_actions.allowed_actions(head, issue)
                    assert "start" in actions and "submit" in actions and "photo" in actions
                    seen.add(issue.id)
            assert seen == set(result.ids)  # every dispatched problem reached its unit head
            assert batches.dispatch_batch(session, admin, batch.id).dispatched == 0
        finally:
            session.rollback()
            session.remove()
