"""The outside channels against real local servers: SMTP (aiosmtpd) and a recording webhook."""

from __future__ import annotations

import pytest

from app.services.notify.channels import (
    IDEMPOTENCY_HEADER,
    ChannelError,
    Message,
    send_email,
    send_webhook,
    split_webhook_address,
)
from tests.app.notify.servers import RecordingWebhook, SmtpServer, free_port

MESSAGE = Message(key="dispatched:batch1:unit2", address="head@west.example.cn",
                  subject="新派发问题 3 件", body="西区单位：背街小巷积存垃圾等 3 件问题，请于 5 个工作日内整改。",
                  event="dispatched")


def test_email_arrives_in_utf8_with_its_key():
    with SmtpServer() as smtp:
        send_email(smtp.url(query="from=cwb@county.example.cn"), MESSAGE)
    [mail] = smtp.messages
    assert mail["Subject"] == "新派发问题 3 件"
    assert mail["From"] == "cwb@county.example.cn"
    assert mail["To"] == "head@west.example.cn"
    assert mail["X-SaniGrid-Key"] == MESSAGE.key
    assert "请于 5 个工作日内整改" in mail.get_content()
    assert smtp.envelopes[0].rcpt_tos == ["head@west.example.cn"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_signs_in_with_the_urls_user_and_password():
    with SmtpServer(login=("cwb", "s3cret")) as smtp:
        send_email(smtp.url("cwb:s3cret"), MESSAGE, sender="cwb@county.example.cn")
    [mail] = smtp.messages
    assert mail["From"] == "cwb@county.example.cn"


def test_email_without_a_server_names_the_channel_and_cause():
    with pytest.raises(ChannelError, match="邮件通道未配置"):
        send_email(None, MESSAGE)
    with pytest.raises(ChannelError, match=r"邮件通道发送失败 .*连接被拒绝"):
        send_email(f"smtp://127.0.0.1:{free_port()}", MESSAGE)
    with pytest.raises(ChannelError, match="收件地址无效"):
        send_email("smtp://127.0.0.1:25", Message(key="k", address="nobody", subject="", body=""))


@pytest.mark.parametrize("kind", ["wecom", "dingtalk"])
def test_robot_webhooks_get_text_messages(kind):
    with RecordingWebhook(reply={"errcode": 0, "errmsg": "ok"}) as hook:
        send_webhook(hook.url, kind, MESSAGE)
    [request] = hook.received
    assert request["headers"][IDEMPOTENCY_HEADER] == MESSAGE.key
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = request["json"]
    assert body["msgtype"] == "text"
    assert body["text"]["content"].startswith("新派发问题 3 件\n西区单位")
    assert body == {"msgtype": "text", "text": {"content": f"{MESSAGE.subject}\n{MESSAGE.body}"}}


def test_json_webhook_gets_the_whole_message():
    with RecordingWebhook() as hook:
        send_webhook(hook.url, "json", MESSAGE)
    [request] = hook.received
    assert request["json"] == {"key": MESSAGE.key, "event": "dispatched",
                               "subject": MESSAGE.subject, "body": MESSAGE.body,
                               "address": MESSAGE.address}
    assert request["headers"][IDEMPOTENCY_HEADER] == MESSAGE.key


@pytest.mark.parametrize("kind", ["wecom", "dingtalk"])
def test_a_robot_errcode_is_a_failure(kind):
    with RecordingWebhook(reply={"errcode": 93000, "errmsg": "invalid webhook url"}) as hook, \
            pytest.raises(ChannelError, match=r"拒收: errcode=93000 \(invalid webhook url\)"):
        send_webhook(hook.url, kind, MESSAGE)


def test_webhook_failures_name_the_channel_and_cause():
    with RecordingWebhook() as hook:
        hook.fail_next = 1
        with pytest.raises(ChannelError, match="通用 JSON .*HTTP 500"):
            send_webhook(hook.url, "json", MESSAGE)
        hook.hold = "after_read"
        with pytest.raises(ChannelError, match="超时"):
            send_webhook(hook.url, "json", MESSAGE, timeout=0.3)
    with pytest.raises(ChannelError, match="连接被拒绝"):
        send_webhook(f"http://127.0.0.1:{free_port()}/", "wecom", MESSAGE)
    with pytest.raises(ChannelError, match="类型无效"):
        send_webhook("http://127.0.0.1/", "sms", MESSAGE)


def test_webhook_address_names_its_kind():
    assert split_webhook_address("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x",
                                 "json") == ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x")
    assert split_webhook_address("https://oapi.dingtalk.com/robot/send?access_token=y",
                                 "json")[0] == "dingtalk"
    assert split_webhook_address("dingtalk:http://10.0.0.5/robot", "json") == (
        "dingtalk", "http://10.0.0.5/robot")
    assert split_webhook_address("http://10.0.0.5/sms", "wecom") == ("wecom", "http://10.0.0.5/sms")
    assert split_webhook_address("http://10.0.0.5/sms", "bogus") == ("json", "http://10.0.0.5/sms")
