"""Events to notices: one per unit user per dispatch run, sent back, a batch imported."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import (
    Batch,
    Notification,
    NotifyPreference,
    OutboxMessage,
    Setting,
    today_local,
)
from app.services.batches.dispatch import dispatch_batch
from app.services.core.settings import Settings
from app.services.issues.intake import transition
from app.services.notify.events import collect_events
from tests.factories import east_point, west_point

SETTINGS = Settings()


@pytest.fixture()
def world(factory, session):
    """A batch of five problems, three west and two east; the west unit has two heads."""
    town = factory.town()
    users = town["users"]
    users["west2"] = factory.user("west2", "unit_head", town["west"], email="w2@example.org")
    batch = Batch(name="州级交叉检查反馈问题清单", source="州级交叉检查", received_on=today_local())
    session.add(batch)
    session.flush()
    points = [west_point(0), west_point(1), west_point(2), east_point(0), east_point(1)]
    issues = []
    for seq, (lon, lat) in enumerate(points, start=1):
        issue = factory.issue(users["inspector"], lon=lon, lat=lat, description=f"批次问题{seq}",
                              source="州级交叉检查")
        issue.batch_id, issue.batch_seq = batch.id, str(seq)
        issues.append(issue)
    session.commit()
    return {**town, "batch": batch, "issues": issues}


def _notices(session, user, event=None) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user.id)
    if event:
        stmt = stmt.where(Notification.event == event)
    return list(session.execute(stmt.order_by(Notification.id)).scalars())


def test_dispatching_a_batch_tells_each_unit_user_once_not_per_problem(world, session):
    users = world["users"]
    collect_events(session, settings=SETTINGS)  # the batch's import notice, before dispatch
    session.commit()
    dispatch_batch(session, users["admin"], world["batch"].id)
    session.commit()
    result = collect_events(session, settings=SETTINGS)
    session.commit()
    assert result["dispatched"] == 3  # west, west2, east: one each
    for name, count in (("west", 3), ("west2", 3), ("east", 2)):
        [notice] = _notices(session, users[name], "dispatched")
        assert notice.title == f"新派遣问题 {count} 个"
        assert notice.url == f"/batches/{world['batch'].id}"
        assert notice.read_at is None
    assert _notices(session, users["inspector"]) == []
    # Nothing new on a second run, nor when the cursor is lost (keys, not the cursor, decide).
    assert collect_events(session, settings=SETTINGS)["dispatched"] == 0
    session.delete(session.get(Setting, "notify_cursor"))
    session.commit()
    assert collect_events(session, settings=SETTINGS)["dispatched"] == 0
    session.commit()
    assert session.execute(select(func.count(Notification.id)).where(
        Notification.event == "dispatched")).scalar() == 3


def test_a_batch_imported_tells_every_admin(world, factory, session):
    other_admin = factory.user("admin2", "admin")
    session.commit()
    result = collect_events(session, settings=SETTINGS)
    session.commit()
    assert result["batch_imported"] == 2
    for admin in (world["users"]["admin"], other_admin):
        [notice] = _notices(session, admin, "batch_imported")
        assert "州级交叉检查反馈问题清单" in notice.title and "共 5 个问题" in notice.body
    assert _notices(session, world["users"]["west"], "batch_imported") == []
    assert collect_events(session, settings=SETTINGS)["batch_imported"] == 0


def test_a_failed_check_sends_the_problem_back_to_its_unit(world, session):
    users = world["users"]
    issue = world["issues"][0]
    dispatch_batch(session, users["admin"], world["batch"].id)
    session.commit()
    collect_events(session, settings=SETTINGS)
    session.commit()
    transition(session, users["west"], issue.id, "submit", note="已清理")
    transition(session, users["admin"], issue.id, "verify_fail", note="仍有垃圾")
    session.commit()
    result = collect_events(session, settings=SETTINGS)
    session.commit()
    assert result["sent_back"] == 2  # west and west2
    [notice] = _notices(session, users["west"], "sent_back")
    assert notice.title == "退回返工问题 1 个"
    assert "仍有垃圾" in notice.body and notice.url == f"/issues/{issue.id}"
    assert _notices(session, users["east"], "sent_back") == []


def test_a_user_with_an_email_preference_gets_one_outbox_row(world, session):
    users = world["users"]
    session.add(NotifyPreference(user_id=users["west2"].id, event="dispatched", channel="email",
                                 enabled=True))
    session.commit()
    dispatch_batch(session, users["admin"], world["batch"].id)
    session.commit()
    collect_events(session, settings=SETTINGS)
    session.commit()
    collect_events(session, settings=SETTINGS)
    session.commit()
    rows = list(session.execute(select(OutboxMessage)).scalars())
    [notice] = _notices(session, users["west2"], "dispatched")
    assert [(r.channel, r.address, r.notification_id) for r in rows] == [
        ("email", "w2@example.org", notice.id)]
    assert rows[0].key == f"{notice.key}:email" and rows[0].subject == notice.title


def test_an_event_committed_after_a_newer_one_is_still_notified(world, session):
    """PostgreSQL commits out of id order: a dispatch whose row took an earlier id but
    committed after the collector had read a later one must not be skipped."""
    from datetime import timedelta

    from app.models import IssueEvent, now_local

    users, issues = world["users"], world["issues"]
    collect_events(session, settings=SETTINGS)  # the batch's import notice
    session.commit()
    now = now_local()
    top = session.execute(select(func.max(IssueEvent.id))).scalar() or 0
    east = issues[3]
    east.status = "dispatched"
    session.add(IssueEvent(id=top + 20, issue_id=east.id, user_id=users["admin"].id,
                           action="dispatch", from_status="reported", to_status="dispatched",
                           at=now - timedelta(minutes=1)))
    session.commit()
    assert collect_events(session, settings=SETTINGS, now=now)["dispatched"] == 1  # east
    session.commit()
    west = issues[0]
    west.status = "dispatched"
    session.add(IssueEvent(id=top + 10, issue_id=west.id, user_id=users["admin"].id,
                           action="dispatch", from_status="reported", to_status="dispatched",
                           at=now - timedelta(minutes=1)))  # the slow transaction lands now
    session.commit()
    later = now + timedelta(minutes=1)
    assert collect_events(session, settings=SETTINGS, now=later)["dispatched"] == 2  # west, west2
    session.commit()
    assert len(_notices(session, users["east"], "dispatched")) == 1  # east not told twice
    # Once everything has settled the cursor moves past it and nothing is read again.
    settled = now + timedelta(minutes=10)
    assert collect_events(session, settings=SETTINGS, now=settled)["events"] == 2
    session.commit()
    assert collect_events(session, settings=SETTINGS, now=settled)["events"] == 0


def test_a_units_robot_gets_one_message_however_many_users_it_serves(world, session):
    users = world["users"]
    west_unit = users["west"].unit_id
    session.add(NotifyPreference(unit_id=west_unit, event="*", channel="webhook",
                                 address="http://127.0.0.1:9/robot/west"))
    session.commit()
    collect_events(session, settings=SETTINGS)
    session.commit()
    dispatch_batch(session, users["admin"], world["batch"].id)
    session.commit()
    collect_events(session, settings=SETTINGS)
    session.commit()
    robot = list(session.execute(select(OutboxMessage).where(
        OutboxMessage.channel == "webhook")).scalars())
    assert [m.address for m in robot] == ["http://127.0.0.1:9/robot/west"]  # west and west2: one
    assert robot[0].subject == "新派遣问题 3 个"
