"""The outbox: queue an outside message once per key, deliver due ones, retry with backoff.

Delivery is at-least-once and made effectively once: a worker claims one row at a time by
writing a lease (``UPDATE ... WHERE id = ? AND lease free``; a rowcount of 1 means it won)
and commits the claim before sending, so two workers never send the same row and a worker
killed mid-send leaves a lease that expires for the next run. A send is marked at once; the
narrow gap between a send and its mark is covered by the key, which every webhook carries
(``X-Idempotency-Key`` and the JSON body) and every email carries (``X-SaniGrid-Key``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.models import OutboxMessage, User, now_local
from app.services.core import audit
from app.services.core.errors import ConflictError, NotFoundError, ValidationError
from app.services.core.settings import Settings
from app.services.notify import channels
from app.services.notify.channels import ChannelError, Message
from app.services.notify.prefs import ChannelConfig, channel_config, quiet_hours, quiet_until

LEASE = timedelta(minutes=2)  # far longer than a send can take (5 s timeouts)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
           timedelta(minutes=60))
BACKOFF_CAP = timedelta(hours=3)
MAX_ATTEMPTS = 8
STATUS_LABELS = {"pending": "待发送", "sent": "已发送", "failed": "失败"}


def _insert(session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(OutboxMessage)
    if dialect == "sqlite":
        return sqlite.insert(OutboxMessage)
    raise NotImplementedError(f"outbox: unsupported database {dialect}")


def queue(session, *, key: str, channel: str, address: str, subject: str, body: str,
          event: str | None = None, notification_id: int | None = None,
          now: datetime | None = None) -> bool:
    """Queue one message unless a message with ``key`` exists; True when queued.

    Never raises on a duplicate key, also when two writers race (``INSERT ... ON CONFLICT
    DO NOTHING``). A message queued inside the quiet hours waits for their end. Runs in the
    caller's transaction.

    Parameters
    ----------
    session
        The database session.
    key
        What makes this message unique, e.g. "dispatched:batch7:unit3:email:a@b.cn".
    channel, address
        "email" and an address, or "webhook" and a URL (optionally "kind:URL").
    subject, body
        The text; a webhook shows both.
    event, notification_id
        What the message is about (for the admin's list), and its in-app notice.
    now
        The county time to use (tests).

    Returns
    -------
    bool
        True when this call queued the message, False when the key was there already.
    """
    if channel not in channels.CHANNEL_LABELS:
        raise ValidationError(f"未知的消息通道: {channel}")
    now = now or now_local()
    due = quiet_until(quiet_hours(session), now) or now
    stmt = _insert(session).values(
        key=key[:200], channel=channel, address=address[:300], subject=subject[:200],
        body=body, event=event, notification_id=notification_id, status="pending",
        attempts=0, next_attempt_at=due, created_at=now,
    ).on_conflict_do_nothing(index_elements=["key"]).returning(OutboxMessage.id)
    # RETURNING, not rowcount: PostgreSQL reports no rowcount for an INSERT that returns ids
    return session.execute(stmt).scalar() is not None


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 1, 5, 15, 60 minutes, then 3 hours."""
    return BACKOFF[attempts - 1] if 0 < attempts <= len(BACKOFF) else BACKOFF_CAP


def _lease_free(now: datetime):
    return or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now)


def _claim(session, now: datetime) -> OutboxMessage | None:
    """Lease the next due row and commit the lease; None when nothing is due."""
    while True:
        row_id = session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                   _lease_free(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
        )
        if row_id is None:
            session.commit()
            return None
        won = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == "pending",
                   _lease_free(now))
            .values(lease_until=now + LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        session.commit()  # the claim is durable before anything is sent
        if won:
            return session.get(OutboxMessage, row_id, populate_existing=True)
        # another worker took it between our SELECT and UPDATE: look again


def send_one(config: ChannelConfig, row: OutboxMessage) -> None:
    """Send one outbox row through its channel; ChannelError when the channel refuses."""
    message = Message(key=row.key, address=row.address, subject=row.subject or "",
                      body=row.body or "", event=row.event)
    if row.channel == "email":
        channels.send_email(config.smtp_url, message, sender=config.smtp_from)
    elif row.channel == "webhook":
        kind, url = channels.split_webhook_address(row.address, config.webhook_kind)
        channels.send_webhook(url, kind, message)
    else:
        raise ChannelError(f"未知的消息通道: {row.channel}")


def deliver_due(session, settings: Settings, *, now: datetime | None = None,
                limit: int = 100) -> dict:
    """Send up to ``limit`` due messages, one claimed row at a time.

    Each success is marked sent and committed at once; each failure records its error,
    counts the attempt and waits per ``backoff`` (past the quiet hours), and after
    ``MAX_ATTEMPTS`` the row is "failed" until an admin retries it.

    Parameters
    ----------
    session
        The database session; this function commits.
    settings
        The installation's settings (the environment's channels).
    now
        The county time to use (tests advance it instead of sleeping).
    limit
        At most this many sends in one run.

    Returns
    -------
    dict
        Counts ``sent``, ``retry`` and ``failed`` of this run.
    """
    fixed = now
    config = channel_config(session, settings)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for _ in range(limit):
        # The clock is read per row: a long run (a slow channel) must not lease a row
        # with a lease that has already run out by the time it is sent.
        now = fixed or now_local()
        row = _claim(session, now)
        if row is None:
            break
        try:
            send_one(config, row)
        except ChannelError as exc:
            row.attempts = (row.attempts or 0) + 1
            row.last_error = str(exc)[:2000]
            row.lease_until = None
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                counts["failed"] += 1
            else:
                wait_until = now + backoff(row.attempts)
                row.next_attempt_at = quiet_until(config, wait_until) or wait_until
                counts["retry"] += 1
        else:
            row.status = "sent"
            row.sent_at = now
            row.attempts = (row.attempts or 0) + 1
            row.lease_until = None
            counts["sent"] += 1
        session.commit()
    return counts


# ---------------------------------------------------------------------- the admin's view


def list_messages(session, *, statuses: tuple[str, ...] = ("failed", "pending"),
                  limit: int = 200) -> list[OutboxMessage]:
    """The newest outbox rows in ``statuses`` (the admin page: failed first, then pending)."""
    order = (OutboxMessage.status != "failed", OutboxMessage.next_attempt_at.desc(),
             OutboxMessage.id.desc())
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.status.in_(statuses))
        .order_by(*order).limit(limit)
    ))


def status_counts(session) -> dict[str, int]:
    """How many outbox rows are in each status."""
    rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    return {status: n for status, n in rows}


def retry(session, user: User, message_id: int, *, now: datetime | None = None,
          ip: str | None = None) -> OutboxMessage:
    """Put a failed (or waiting) message back in the queue, due now, with fresh attempts.

    Raises
    ------
    NotFoundError
        No such message.
    ConflictError
        The message was sent already (it is never sent twice).
    """
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFoundError("没有这条待发消息")
    if row.status == "sent":
        raise ConflictError("这条消息已发送，不再重发")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now or now_local()
    audit.record(session, user, "outbox_retry", f"消息 {row.id} ({row.channel} → {row.address})",
                 ip=ip)
    session.flush()
    return row


def send_test(session, settings: Settings, channel: str, address: str | None,
              *, user: User | None = None) -> str:
    """Send a test message through ``channel`` now (not through the queue); return the address.

    Raises
    ------
    ValidationError
        No address to send to (no email given, no webhook configured).
    ChannelError
        The channel refused; the message says why.
    """
    config = channel_config(session, settings)
    if channel == "email":
        target = (address or (user.email if user else None) or "").strip()
        if not target:
            raise ValidationError("请填写测试邮件的收件地址")
    elif channel == "webhook":
        target = (address or config.webhook_url or "").strip()
        if not target:
            raise ValidationError("未配置 Webhook 地址")
    else:
        raise ValidationError(f"未知的消息通道: {channel}")
    now = now_local()
    row = OutboxMessage(key=f"test:{channel}:{now.isoformat()}", channel=channel,
                        address=target, subject="创卫网格测试消息",
                        body=f"这是一条测试消息，发送于 {now:%Y-%m-%d %H:%M}。收到即表示通道可用。",
                        event="test")
    send_one(config, row)  # not added to the session: a test is not part of the outbox
    return target
