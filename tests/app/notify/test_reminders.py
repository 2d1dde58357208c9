"""The daily reminders: due in one working day and overdue, each once, on the county's day."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.models import Notification
from app.services.core.settings import Settings
from app.services.issues.intake import transition
from app.services.notify.reminders import send_reminders
from app.services.tables.workdays import WorkCalendar
from tests.factories import east_point, west_point

SETTINGS = Settings()
WEDNESDAY = date(2026, 12, 2)
CALENDAR = WorkCalendar(overrides={}, known_years={2026})  # weekends only


@pytest.fixture()
def world(factory, session):
    """West: one problem due tomorrow, two overdue; east: one due next Monday, one closed late."""
    town = factory.town()
    users = town["users"]

    def problem(point, deadline, description):
        issue = factory.issue(users["inspector"], lon=point[0], lat=point[1],
                              description=description)
        transition(session, users["admin"], issue.id, "dispatch")
        issue.deadline = deadline
        session.commit()
        return issue

    issues = {
        "due": problem(west_point(0), WEDNESDAY + timedelta(days=1), "明天到期的问题"),
        "late1": problem(west_point(1), WEDNESDAY - timedelta(days=2), "超期问题一"),
        "late2": problem(west_point(2), WEDNESDAY - timedelta(days=1), "超期问题二"),
        "monday": problem(east_point(0), date(2026, 12, 7), "下周一到期"),
        "closed": problem(east_point(1), WEDNESDAY - timedelta(days=3), "已销号的问题"),
    }
    closed = issues["closed"]
    closed.status = "closed"
    session.commit()
    return {**town, "issues": issues}


def _notices(session, user, event):
    stmt = select(Notification).where(Notification.user_id == user.id,
                                      Notification.event == event).order_by(Notification.id)
    return list(session.execute(stmt).scalars())


def test_twice_a_day_sends_each_notice_once_and_the_next_day_a_new_overdue(world, session):
    users, issues = world["users"], world["issues"]
    first = send_reminders(session, settings=SETTINGS, today=WEDNESDAY, calendar=CALENDAR)
    session.commit()
    assert first == {"due_soon": 1, "overdue": 1, "today": "2026-12-02", "due_by": "2026-12-03"}
    [due] = _notices(session, users["west"], "due_soon")
    assert due.key == f"due:{issues['due'].id}:2026-12-03:u{users['west'].id}"
    assert due.title == f"问题 #{issues['due'].id} 明天到期" and due.issue_id == issues["due"].id
    [late] = _notices(session, users["west"], "overdue")  # one notice listing both problems
    assert late.title == "超期未整改问题 2 个"
    assert "超期问题一" in late.body and "超期问题二" in late.body
    assert _notices(session, users["east"], "overdue") == []  # the closed one is settled
    again = send_reminders(session, settings=SETTINGS, today=WEDNESDAY, calendar=CALENDAR)
    session.commit()
    assert (again["due_soon"], again["overdue"]) == (0, 0)

    thursday = send_reminders(session, settings=SETTINGS, today=WEDNESDAY + timedelta(days=1),
                              calendar=CALENDAR)
    session.commit()
    # Due today was told yesterday (same deadline); overdue is told again, daily.
    assert (thursday["due_soon"], thursday["overdue"]) == (0, 1)
    assert len(_notices(session, users["west"], "overdue")) == 2
    # Friday: the next working day is Monday, so the east problem is due in one working day.
    friday = send_reminders(session, settings=SETTINGS, today=date(2026, 12, 4),
                            calendar=CALENDAR)
    session.commit()
    assert friday["due_by"] == "2026-12-07" and friday["due_soon"] == 1
    [monday] = _notices(session, users["east"], "due_soon")
    assert monday.issue_id == issues["monday"].id
    # The west problem due Thursday is now overdue too: three listed on Friday.
    assert _notices(session, users["west"], "overdue")[-1].title == "超期未整改问题 3 个"


@pytest.fixture()
def server_in_utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_the_day_is_the_countys_across_its_midnight(world, session, server_in_utc):
    # 2026-12-02 16:30 UTC is already Thursday 00:30 in the county.
    with time_machine.travel(datetime(2026, 12, 2, 16, 30, tzinfo=UTC), tick=False):
        result = send_reminders(session, settings=SETTINGS, calendar=CALENDAR)
    session.commit()
    assert result["today"] == "2026-12-03" and result["due_by"] == "2026-12-04"
    [late] = _notices(session, world["users"]["west"], "overdue")
    assert late.key.startswith(f"overdue:unit{world['west'].id}:2026-12-03:")
    assert late.title == "超期未整改问题 2 个"  # due on the county's today: not late yet
    [due] = _notices(session, world["users"]["west"], "due_soon")
    assert due.title.endswith("今天到期")
