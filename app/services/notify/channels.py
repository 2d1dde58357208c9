"""The outside channels: SMTP email and HTTP webhooks (企业微信/钉钉 robots, plain JSON).

Each sender either returns (the channel accepted the message) or raises ``ChannelError`` with
a Chinese message naming the channel and the cause. Only the standard library is used; every
network call has a timeout.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from app.services.core.errors import ServiceError

TIMEOUT_S = 5.0
WEBHOOK_KINDS = ("wecom", "dingtalk", "json")
KIND_LABELS = {"wecom": "企业微信群机器人", "dingtalk": "钉钉群机器人", "json": "通用 JSON (短信网关等)"}
CHANNEL_LABELS = {"email": "邮件", "webhook": "Webhook"}
IDEMPOTENCY_HEADER = "X-Idempotency-Key"


class ChannelError(ServiceError):
    """An outside channel refused or could not take a message; the outbox retries it."""

    status = 502


@dataclass(frozen=True)
class Message:
    """One message to one address, as the outbox hands it to a channel."""

    key: str
    address: str
    subject: str
    body: str
    event: str | None = None


def split_webhook_address(address: str, default_kind: str) -> tuple[str, str]:
    """Return ``(kind, url)`` of a webhook address.

    An address may name its kind before the URL (``dingtalk:https://oapi.dingtalk.com/...``);
    otherwise the robots' own hosts tell it, and anything else is ``default_kind``.
    """
    head, sep, rest = address.partition(":")
    if sep and head in WEBHOOK_KINDS and rest.startswith(("http://", "https://")):
        return head, rest
    host = (urlsplit(address).hostname or "").lower()
    if host == "qyapi.weixin.qq.com":
        return "wecom", address
    if host == "oapi.dingtalk.com":
        return "dingtalk", address
    return (default_kind if default_kind in WEBHOOK_KINDS else "json"), address


# ---------------------------------------------------------------------- email


def send_email(smtp_url: str | None, message: Message, *, sender: str | None = None,
               timeout: float = TIMEOUT_S) -> None:
    """Send ``message`` by SMTP to ``message.address``.

    Parameters
    ----------
    smtp_url
        ``smtp://user:pass@host:port`` (STARTTLS when the server offers it) or ``smtps://``
        for TLS from the start; ``?from=`` names the sender.
    message
        What to send; subject and body are UTF-8.
    sender
        The From address when the URL names none (the admin page's setting).
    timeout
        Seconds to wait for the server at each step.

    Raises
    ------
    ChannelError
        No SMTP server is configured, the address is unusable, or the server refused.
    """
    if not smtp_url:
        raise ChannelError("邮件通道未配置 (SMTP_URL 或“消息通道”页面)")
    parts = urlsplit(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ChannelError(f"邮件通道地址无效: {parts.scheme or smtp_url}，应为 smtp:// 或 smtps://")
    if "@" not in message.address:
        raise ChannelError(f"邮件通道: 收件地址无效 “{message.address}”")
    query = parse_qs(parts.query)
    user = unquote(parts.username) if parts.username else None
    from_addr = (query.get("from") or [None])[0] or sender
    if not from_addr:
        from_addr = user if user and "@" in user else f"sanigrid@{parts.hostname}"
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = from_addr
    mail["To"] = message.address
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=Address(addr_spec=from_addr).domain or "sanigrid")
    mail["X-SaniGrid-Key"] = message.key
    mail.set_content(message.body, charset="utf-8")
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(parts.hostname, port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(parts.hostname, port, timeout=timeout)
        with client:
            if parts.scheme == "smtp":
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
            if user:
                client.login(user, unquote(parts.password or ""))
            client.send_message(mail)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        raise ChannelError(f"邮件通道发送失败 ({parts.hostname}:{port}): {_cause(exc)}") from exc


# ---------------------------------------------------------------------- webhooks


def webhook_payload(kind: str, message: Message) -> dict:
    """The JSON body a webhook of ``kind`` takes for ``message``."""
    text = f"{message.subject}\n{message.body}".strip() if message.subject else message.body
    if kind in ("wecom", "dingtalk"):  # the robots' text message; the key rides in the header
        return {"msgtype": "text", "text": {"content": text}}
    return {"key": message.key, "event": message.event, "subject": message.subject,
            "body": message.body, "address": message.address}


def send_webhook(url: str, kind: str, message: Message, *, timeout: float = TIMEOUT_S) -> None:
    """POST ``message`` to a webhook of ``kind`` ("wecom", "dingtalk" or "json").

    The request carries ``X-Idempotency-Key: <message.key>`` so a receiver can drop a resend.
    The robots answer 200 with ``errcode`` 0 on success; the JSON kind needs a 2xx.

    Raises
    ------
    ChannelError
        The URL is unusable, the server is unreachable or slow, or it refused the message.
    """
    label = KIND_LABELS.get(kind, kind)
    if kind not in WEBHOOK_KINDS:
        raise ChannelError(f"Webhook 类型无效: {kind}，应为 {'/'.join(WEBHOOK_KINDS)}")
    if not url.startswith(("http://", "https://")):
        raise ChannelError(f"{label}: 地址无效 “{url}”，应以 http:// 或 https:// 开头")
    data = json.dumps(webhook_payload(kind, message), ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        IDEMPOTENCY_HEADER: message.key,
        "User-Agent": "SaniGrid-outbox",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read(65536)
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"{label}发送失败: 对方返回 HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise ChannelError(f"{label}发送失败 ({urlsplit(url).netloc}): {_cause(exc)}") from exc
    if kind in ("wecom", "dingtalk"):
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ChannelError(f"{label}发送失败: 回复不是 JSON") from exc
        if not isinstance(answer, dict) or answer.get("errcode") != 0:
            errmsg = answer.get("errmsg") if isinstance(answer, dict) else None
            raise ChannelError(f"{label}拒收: errcode={answer.get('errcode') if isinstance(answer, dict) else '?'}"
                               f"{f' ({errmsg})' if errmsg else ''}")


def _cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):  # urllib wraps the socket's error
        exc = reason
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return f"超时 ({TIMEOUT_S:g} 秒无响应)"
    if isinstance(exc, ConnectionRefusedError):
        return "连接被拒绝 (服务未启动?)"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "用户名或密码错误"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "收件地址被拒收"
    return str(getattr(exc, "reason", None) or exc) or type(exc).__name__
