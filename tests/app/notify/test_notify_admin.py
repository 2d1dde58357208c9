"""The 消息通道 admin page: settings, test messages against real servers, the outbox, who may."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, OutboxMessage
from app.services.notify import outbox
from tests.app.notify.servers import RecordingWebhook, SmtpServer, free_port

PAGE = "/admin/notify/"


@pytest.fixture()
def admin(factory, auth, session):
    user = factory.user("admin", "admin", email="admin@county.example.cn")
    session.commit()
    assert auth.login("admin").status_code == 302
    return user


def test_only_admins_reach_the_page(client, auth, factory, session):
    unit = factory.unit("西区单位")
    factory.user("west", "unit_head", unit=unit)
    factory.user("leader", "leader")
    session.add(OutboxMessage(key="k", channel="webhook", address="http://x/", status="failed"))
    session.commit()
    row_id = session.scalar(select(OutboxMessage.id))
    assert "/login" in client.get(PAGE).headers["Location"]
    for username in ("west", "leader"):
        auth.login(username)
        assert client.get(PAGE).status_code == 403
        assert client.post(PAGE, data={"webhook_url": "http://evil/"}).status_code == 403
        assert client.post(f"{PAGE}test/webhook").status_code == 403
        assert client.post(f"{PAGE}outbox/{row_id}/retry").status_code == 403
        auth.logout()
    assert session.scalar(select(OutboxMessage.status)) == "failed"


def test_the_admin_menu_links_the_page(client, admin):
    assert 'href="/admin/notify/"' in client.get("/admin/users").get_data(as_text=True)


def test_settings_are_saved_and_the_environment_shows_as_default(app, client, admin, session):
    app.config["NOTIFY_WEBHOOK_URL"] = "http://env.example/robot"
    page = client.get(PAGE).get_data(as_text=True)
    assert "消息通道" in page and 'placeholder="http://env.example/robot"' in page
    response = client.post(PAGE, data={
        "smtp_url": "smtp://cwb:s3cret@mail.example:25", "smtp_from": "cwb@county.example.cn",
        "webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
        "webhook_kind": "wecom", "quiet_start": "22:00", "quiet_end": "07:00"})
    assert response.status_code == 302
    page = client.get(PAGE).get_data(as_text=True)
    assert "s3cret" not in page  # the password is never shown
    assert "smtp://cwb:***@mail.example:25" in page
    assert 'value="22:00"' in page and "selected>企业微信群机器人" in page
    # saving the page as shown keeps the stored password
    client.post(PAGE, data={"smtp_url": "smtp://cwb:***@mail.example:25", "quiet_start": "",
                            "quiet_end": ""})
    from app.models import Setting

    session.expire_all()
    stored = session.get(Setting, "notify_channels").value
    assert stored["smtp_url"] == "smtp://cwb:s3cret@mail.example:25"
    assert stored["webhook_url"] is None and stored["quiet_start"] is None
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "notify_channels")).all()
    assert len(audit) == 2 and all("s3cret" not in (a.detail or "") for a in audit)


@pytest.mark.parametrize(("form", "message"), [
    ({"smtp_url": "mail.example:25"}, "smtp://"),
    ({"webhook_url": "ftp://x"}, "http://"),
    ({"webhook_kind": "sms"}, "Webhook 类型"),
    ({"quiet_start": "22:00"}, "同时填写"),
    ({"quiet_start": "25:00", "quiet_end": "07:00"}, "免打扰开始"),
])
def test_bad_settings_are_refused_with_a_reason(client, admin, form, message):
    response = client.post(PAGE, data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_test_messages_arrive_or_say_why_not(app, client, admin):
    with SmtpServer() as smtp, RecordingWebhook() as hook:
        app.config["SMTP_URL"] = smtp.url(query="from=cwb@county.example.cn")
        app.config["NOTIFY_WEBHOOK_URL"] = hook.url
        response = client.post(f"{PAGE}test/email", data={"address": "me@county.example.cn"})
        assert response.status_code == 302
        assert client.post(f"{PAGE}test/webhook").status_code == 302
        hook.fail_next = 1
        failed = client.post(f"{PAGE}test/webhook")
    assert failed.status_code == 502 and "HTTP 500" in failed.get_data(as_text=True)
    assert [m["To"] for m in smtp.messages] == ["me@county.example.cn"]
    assert "测试消息" in smtp.messages[0]["Subject"]
    assert len(hook.received) == 1 and hook.received[0]["json"]["event"] == "test"
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    down = client.post(f"{PAGE}test/email", data={"address": "me@county.example.cn"})
    assert down.status_code == 502 and "连接被拒绝" in down.get_data(as_text=True)
    assert client.post(f"{PAGE}test/fax").status_code == 400


def test_failed_messages_are_listed_and_retried(client, admin, session):
    outbox.queue(session, key="k-failed", channel="email", address="head@west.example.cn",
                 subject="逾期提醒", body="…")
    session.commit()
    row = session.scalar(select(OutboxMessage))
    row.status, row.attempts, row.last_error = "failed", 8, "邮件通道发送失败: 连接被拒绝"
    session.commit()
    page = client.get(PAGE).get_data(as_text=True)
    assert "逾期提醒" in page and "邮件通道发送失败: 连接被拒绝" in page and "失败 1 条" in page
    assert client.post(f"{PAGE}outbox/{row.id}/retry").status_code == 302
    session.expire_all()
    assert (row.status, row.attempts) == ("pending", 0)
    assert client.post(f"{PAGE}outbox/999999/retry").status_code == 404
    row.status = "sent"
    session.commit()
    assert client.post(f"{PAGE}outbox/{row.id}/retry").status_code == 409
