"""The bell: one notice per user and key, each sees and marks only their own, the count on pages."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from app.models import Notification
from app.services.core.errors import NotFoundError
from app.services.core.settings import Settings
from app.services.issues.intake import transition
from app.services.notify.inbox import list_notifications, mark_read, notify_users, unread_count
from tests.factories import west_point

SETTINGS = Settings()


@pytest.fixture()
def world(factory, session):
    town = factory.town()
    users = town["users"]
    for n in range(3):
        notify_users(session, [users["west"]], event="dispatched", key=f"test:{n}",
                     title=f"西区通知{n}", body="正文", url="/issues/", settings=SETTINGS)
    notify_users(session, [users["east"]], event="dispatched", key="test:east",
                 title="东区通知", settings=SETTINGS)
    session.commit()
    return town


def test_a_key_gives_one_notice_per_user_however_often_it_is_written(world, session):
    users = world["users"]
    again = notify_users(session, [users["west"], users["east"], users["west"]], event="x",
                         key="test:0", title="再来一次", settings=SETTINGS)
    session.commit()
    assert again == 1  # only east is new for this key; west had it, and is named once
    keys = sorted(session.execute(select(Notification.key)).scalars())
    assert keys.count(f"test:0:u{users['west'].id}") == 1
    assert f"test:0:u{users['east'].id}" in keys


def test_a_unit_head_sees_and_marks_only_their_own(world, session):
    users = world["users"]
    west, east = users["west"], users["east"]
    listed = list_notifications(session, west)
    assert listed["total"] == 3 and listed["unread"] == 3
    assert {n.user_id for n in listed["items"]} == {west.id}
    east_id = list_notifications(session, east)["items"][0].id
    west_ids = [n.id for n in listed["items"]]
    with pytest.raises(NotFoundError):
        mark_read(session, west, [west_ids[0], east_id])
    session.rollback()
    assert unread_count(session, west) == 3 and unread_count(session, east) == 1
    assert mark_read(session, west, [west_ids[0]]) == 1
    session.commit()
    # Unread first, then the read one.
    order = [n.id for n in list_notifications(session, west)["items"]]
    assert order[-1] == west_ids[0]
    assert mark_read(session, west, "all") == 2
    session.commit()
    assert unread_count(session, west) == 0 and unread_count(session, east) == 1
    assert list_notifications(session, west, unread_only=True)["total"] == 0


def test_pages_answer_only_ones_own(world, client, auth, session):
    users = world["users"]
    east_id = session.execute(select(Notification.id).where(
        Notification.user_id == users["east"].id)).scalar()
    auth.login("west")
    page = client.get("/notifications/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "西区通知0" in text and "东区通知" not in text
    assert client.get("/notifications/count.json").get_json() == {"unread": 3}
    refused = client.post("/notifications/mark-read", data={"id": str(east_id)})
    assert refused.status_code == 404
    assert session.get(Notification, east_id).read_at is None
    assert client.post("/notifications/mark-read", data={"id": "abc"}).status_code == 404
    own = session.execute(select(Notification.id).where(
        Notification.user_id == users["west"].id)).scalars().first()
    opened = client.post("/notifications/mark-read", data={"id": str(own), "next": "/issues/"})
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/issues/")
    outside = client.post("/notifications/mark-read", data={"all": "1", "next": "//evil.test"})
    assert outside.headers["Location"].endswith("/notifications/")
    assert client.get("/notifications/count.json").get_json() == {"unread": 0}
    session.expire_all()
    assert session.get(Notification, east_id).read_at is None


def test_the_bell_shows_the_unread_count_on_every_roles_pages(world, client, auth, session):
    users = world["users"]
    notify_users(session, [users["admin"], users["leader"], users["inspector"]], event="x",
                 key="test:all", title="全员通知", settings=SETTINGS)
    session.commit()
    for username, unread in (("west", 3), ("east", 1), ("admin", 1), ("leader", 1),
                             ("inspector", 1)):
        auth.login(username)
        text = client.get("/issues/").get_data(as_text=True)
        match = re.search(r'class="bell-count" data-unread="(\d+)"', text)
        assert match and int(match.group(1)) == unread, username
        auth.logout()
    assert client.get("/notifications/count.json").status_code == 302  # signed out: login


def test_the_daily_command_is_idempotent_and_refuses_a_bad_date(world, factory, runner, session):
    users = world["users"]
    lon, lat = west_point(0)
    issue = factory.issue(users["inspector"], lon=lon, lat=lat)
    transition(session, users["admin"], issue.id, "dispatch")
    issue.deadline = date(2026, 12, 1)
    session.commit()
    first = runner.invoke(args=["send-reminders", "--date", "2026-12-02"])
    assert first.exit_code == 0, first.output
    assert "超期提醒 1" in first.output and "新派遣 1" in first.output
    second = runner.invoke(args=["send-reminders", "--date", "2026-12-02"])
    assert second.exit_code == 0 and "超期提醒 0" in second.output and "新派遣 0" in second.output
    bad = runner.invoke(args=["send-reminders", "--date", "2026-13-40"])
    assert bad.exit_code != 0 and "2026-13-40" in bad.output
    events = runner.invoke(args=["notify-events"])
    assert events.exit_code == 0 and "新派遣 0" in events.output
