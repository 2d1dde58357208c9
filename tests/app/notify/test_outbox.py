"""The outbox against real local servers: once per key, backoff, races, a killed worker.

Also the routes (``prefs.routes_for``) and quiet hours that decide what is queued.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import NotifyPreference, OutboxMessage, User
from app.services.core.settings import Settings
from app.services.notify import outbox, prefs
from app.services.notify.channels import IDEMPOTENCY_HEADER
from tests.app.notify.servers import RecordingWebhook, SmtpServer
from tests.factories import ROOT

T0 = datetime(2026, 3, 2, 9, 0)  # a Monday morning, county time


def _queue(session, key, address, *, channel="webhook", now=T0, **kw):
    return outbox.queue(session, key=key, channel=channel, address=address,
                        subject=kw.pop("subject", f"标题 {key}"), body=kw.pop("body", "正文"),
                        event=kw.pop("event", "dispatched"), now=now, **kw)


def _rows(session):
    session.expire_all()
    return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


# ---------------------------------------------------------------------- queue


def test_queue_inserts_each_key_once(session):
    assert _queue(session, "k1", "http://127.0.0.1:9/hook") is True
    assert _queue(session, "k1", "http://127.0.0.1:9/other", subject="again") is False
    session.commit()
    [row] = _rows(session)
    assert (row.key, row.status, row.attempts, row.next_attempt_at) == ("k1", "pending", 0, T0)
    assert row.address == "http://127.0.0.1:9/hook"


def test_queue_from_two_sessions_at_once_keeps_one_row(app, session):
    from app.extensions import db

    engine = db.engine
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def writer():
        with Session(engine) as own:
            barrier.wait()
            results.append(_queue(own, "same-key", "http://127.0.0.1:9/hook"))
            own.commit()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


@pytest.mark.parametrize(("at", "due"), [
    (datetime(2026, 3, 2, 23, 30), datetime(2026, 3, 3, 7, 0)),
    (datetime(2026, 3, 3, 6, 59), datetime(2026, 3, 3, 7, 0)),
    (datetime(2026, 3, 3, 7, 0), datetime(2026, 3, 3, 7, 0)),
    (datetime(2026, 3, 3, 12, 0), datetime(2026, 3, 3, 12, 0)),
])
def test_quiet_hours_push_a_message_to_their_end(session, factory, at, due):
    admin = factory.user("admin", "admin")
    prefs.save_channel_config(session, admin, {"quiet_start": "22:00", "quiet_end": "7:00"})
    _queue(session, "quiet", "http://127.0.0.1:9/hook", now=at)
    session.commit()
    assert _rows(session)[0].next_attempt_at == due


# ---------------------------------------------------------------------- deliver


def test_email_and_every_webhook_kind_arrive_through_the_outbox(session, factory):
    robot = {"errcode": 0, "errmsg": "ok"}
    with SmtpServer() as smtp, RecordingWebhook(robot) as wecom, \
            RecordingWebhook(robot) as ding, RecordingWebhook() as gateway:
        settings = Settings(smtp_url=smtp.url(query="from=cwb@county.example.cn"))
        _queue(session, "m-email", "head@west.example.cn", channel="email",
               subject="新派发问题", body="请于 5 个工作日内整改")
        _queue(session, "m-wecom", f"wecom:{wecom.url}", body="企业微信")
        _queue(session, "m-ding", f"dingtalk:{ding.url}", body="钉钉")
        _queue(session, "m-json", gateway.url, body="短信网关")
        session.commit()
        assert outbox.deliver_due(session, settings, now=T0) == {"sent": 4, "retry": 0, "failed": 0}
        assert outbox.deliver_due(session, settings, now=T0 + timedelta(hours=1))["sent"] == 0
    [mail] = smtp.messages
    assert (mail["Subject"], mail["To"]) == ("新派发问题", "head@west.example.cn")
    assert "请于 5 个工作日内整改" in mail.get_content()
    assert wecom.received[0]["json"]["text"]["content"].startswith("标题 m-wecom\n企业微信")
    assert ding.received[0]["json"]["msgtype"] == "text"
    assert gateway.received[0]["json"]["key"] == "m-json"
    assert [w.keys() for w in (wecom, ding, gateway)] == [["m-wecom"], ["m-ding"], ["m-json"]]
    assert {(r.status, r.sent_at, r.lease_until) for r in _rows(session)} == {("sent", T0, None)}


def test_a_webhook_failing_three_times_then_recovering_gets_each_message_once(session):
    with RecordingWebhook() as hook:
        hook.fail_next = 3
        keys = [f"m{i}" for i in range(5)]
        for key in keys:
            _queue(session, key, hook.url)
        session.commit()
        first = outbox.deliver_due(session, Settings(), now=T0)
        assert first == {"sent": 2, "retry": 3, "failed": 0}
        failed = [r for r in _rows(session) if r.status == "pending"]
        assert {r.attempts for r in failed} == {1}
        assert all("HTTP 500" in r.last_error for r in failed)
        assert {r.next_attempt_at for r in failed} == {T0 + timedelta(minutes=1)}
        # the retries are not due yet half a minute later
        assert outbox.deliver_due(session, Settings(), now=T0 + timedelta(seconds=30))["sent"] == 0
        now = T0
        while now < T0 + timedelta(hours=1):  # advance the clock instead of sleeping
            now += timedelta(minutes=1)
            outbox.deliver_due(session, Settings(), now=now)
    assert sorted(hook.keys()) == keys  # every message, each exactly once
    assert len(hook.refused) == 3
    assert {r.status for r in _rows(session)} == {"sent"}


def test_backoff_gives_up_after_eight_attempts_and_the_admin_retries(session, factory):
    admin = factory.user("admin", "admin")
    with RecordingWebhook() as hook:
        hook.fail_next = 100
        _queue(session, "down", hook.url)
        session.commit()
        now, waits = T0, []
        for _ in range(outbox.MAX_ATTEMPTS):
            counts = outbox.deliver_due(session, Settings(), now=now)
            [row] = _rows(session)
            if row.status == "failed":
                break
            waits.append(row.next_attempt_at - now)
            now = row.next_attempt_at
        assert counts == {"sent": 0, "retry": 0, "failed": 1}
        assert (row.status, row.attempts) == ("failed", outbox.MAX_ATTEMPTS)
        assert [w.total_seconds() / 60 for w in waits] == [1, 5, 15, 60, 180, 180, 180]
        assert outbox.deliver_due(session, Settings(), now=now + timedelta(days=1))["sent"] == 0
        hook.fail_next = 0
        outbox.retry(session, admin, row.id, now=now)
        session.commit()
        assert outbox.deliver_due(session, Settings(), now=now)["sent"] == 1
    assert hook.keys() == ["down"]
    with pytest.raises(Exception, match="已发送"):
        outbox.retry(session, admin, row.id)


def test_two_workers_racing_send_each_message_once(app, session):
    from app.extensions import db

    with RecordingWebhook() as hook:
        keys = [f"race{i:02d}" for i in range(30)]
        for key in keys:
            _queue(session, key, hook.url)
        session.commit()
        engine = db.engine
        start = threading.Barrier(3)
        counts: list[dict] = []
        errors: list[BaseException] = []

        def worker():
            try:
                with Session(engine) as own:
                    start.wait()
                    counts.append(outbox.deliver_due(own, Settings(), now=T0))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors
    assert sorted(hook.keys()) == keys
    assert sum(c["sent"] for c in counts) == 30
    assert {r.status for r in _rows(session)} == {"sent"}


# ---------------------------------------------------------------------- a killed worker


def _killed_worker(app, session, hook, hold: str) -> OutboxMessage:
    """Queue one message, run `flask send-outbox` and SIGKILL it while the webhook holds it."""
    _queue(session, "kill-me", hook.url, now=None)
    session.commit()
    hook.hold = hold
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "PHOTO_DIR": app.config["PHOTO_DIR"]}
    for name in ("SMTP_URL", "NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_KIND"):
        env.pop(name, None)
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "send-outbox"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert hook.arrived.wait(60), worker.communicate(timeout=5)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    [row] = _rows(session)
    assert (row.status, row.sent_at) == ("pending", None)
    assert row.lease_until is not None  # claimed, then the worker died
    # while the lease runs nobody else takes the message
    assert outbox.deliver_due(session, Settings(), now=row.lease_until - timedelta(seconds=1)) == {
        "sent": 0, "retry": 0, "failed": 0}
    hook.hold = None
    hook.release.set()
    return row


def test_a_worker_killed_after_the_receiver_read_the_message_loses_nothing(app, session):
    with RecordingWebhook() as hook:
        row = _killed_worker(app, session, hook, "after_read")
        assert hook.keys() == ["kill-me"]  # it got there; the worker died before marking it
        counts = outbox.deliver_due(session, Settings(), now=row.lease_until + timedelta(seconds=1))
    assert counts["sent"] == 1
    assert _rows(session)[0].status == "sent"
    # delivered at least once; the resend carries the same key for the receiver to drop it
    assert hook.keys() == ["kill-me", "kill-me"]
    assert {r["json"]["key"] for r in hook.received} == {"kill-me"}
    assert all(r["headers"][IDEMPOTENCY_HEADER] == "kill-me" for r in hook.received)


def test_a_worker_killed_before_the_receiver_read_the_message_loses_nothing(app, session):
    with RecordingWebhook() as hook:
        row = _killed_worker(app, session, hook, "before_read")
        counts = outbox.deliver_due(session, Settings(), now=row.lease_until + timedelta(seconds=1))
    assert counts["sent"] == 1
    assert hook.keys() == ["kill-me"]  # exactly once
    assert _rows(session)[0].status == "sent"


# ---------------------------------------------------------------------- routes


@pytest.fixture()
def west(factory):
    unit = factory.unit("西区单位")
    head = factory.user("west", "unit_head", unit=unit, email="head@west.example.cn")
    return unit, head


def _pref(session, **kw):
    session.add(NotifyPreference(**kw))
    session.flush()


def test_routes_are_email_and_the_countys_webhook_by_default(session, west):
    _unit, head = west
    settings = Settings(notify_webhook_url="http://county.example/robot")
    assert prefs.routes_for(session, head, "dispatched", settings) == [
        ("email", "head@west.example.cn"), ("webhook", "http://county.example/robot")]
    assert prefs.routes_for(session, head, "dispatched", Settings()) == [
        ("email", "head@west.example.cn")]
    head.email = None
    assert prefs.routes_for(session, head, "dispatched", Settings()) == []


def test_the_admin_pages_webhook_wins_over_the_environment(session, west, factory):
    _unit, head = west
    admin = factory.user("admin", "admin")
    prefs.save_channel_config(session, admin, {"webhook_url": "http://page.example/robot"})
    settings = Settings(notify_webhook_url="http://env.example/robot")
    assert ("webhook", "http://page.example/robot") in prefs.routes_for(
        session, head, "due_soon", settings)


def test_a_units_robot_replaces_the_countys_and_a_unit_can_switch_a_channel_off(session, west):
    unit, head = west
    settings = Settings(notify_webhook_url="http://county.example/robot")
    _pref(session, unit_id=unit.id, event="*", channel="webhook", enabled=True,
          address="dingtalk:http://west.example/robot")
    assert prefs.routes_for(session, head, "overdue", settings) == [
        ("email", "head@west.example.cn"), ("webhook", "dingtalk:http://west.example/robot")]
    _pref(session, unit_id=unit.id, event="overdue", channel="email", enabled=False)
    assert prefs.routes_for(session, head, "overdue", settings) == [
        ("webhook", "dingtalk:http://west.example/robot")]
    assert ("email", "head@west.example.cn") in prefs.routes_for(
        session, head, "dispatched", settings)


def test_a_users_own_choice_wins_over_the_units(session, west, factory):
    unit, head = west
    other = factory.user("west2", "unit_head", unit=unit, email="two@west.example.cn")
    settings = Settings(notify_webhook_url="http://county.example/robot")
    _pref(session, user_id=head.id, event="dispatched", channel="webhook", enabled=False)
    _pref(session, unit_id=unit.id, event="*", channel="email", enabled=False)
    _pref(session, user_id=head.id, event="*", channel="email", enabled=True)
    assert prefs.routes_for(session, head, "dispatched", settings) == [
        ("email", "head@west.example.cn")]
    assert prefs.routes_for(session, head, "overdue", settings) == [
        ("email", "head@west.example.cn"), ("webhook", "http://county.example/robot")]
    assert prefs.routes_for(session, other, "dispatched", settings) == [
        ("webhook", "http://county.example/robot")]
    other.active = False
    assert prefs.routes_for(session, other, "dispatched", settings) == []
    assert isinstance(head, User)
