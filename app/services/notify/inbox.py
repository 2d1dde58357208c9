"""The in-app bell: write notices once per user (by key), list them, count and mark them read.

A notice's ``key`` is unique, so writing the same event twice (a re-run, two runners at
once) adds nothing; each new notice is also queued for the user's outside channels
(``prefs.routes_for`` → ``outbox.queue``) under the same key plus the channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.models import Notification, User, now_local
from app.services.core import access
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.params import MAX_ID
from app.services.core.settings import Settings
from app.services.notify import outbox, prefs

MAX_PAGE = 200
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert_if_absent(session, values: dict) -> int | None:
    """Insert one notice unless its key exists; the new row's id, or None when it existed."""
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        msg = f"不支持的数据库: {dialect}"
        raise ValidationError(msg)
    stmt = (_INSERTS[dialect](Notification).values(**values)
            .on_conflict_do_nothing(index_elements=["key"]).returning(Notification.id))
    return session.execute(stmt).scalar()


def notify_users(session, users: Iterable[User], *, event: str, key: str, title: str,
                 body: str = "", url: str | None = None, issue_id: int | None = None,
                 batch_id: int | None = None, settings: Settings,
                 now: datetime | None = None) -> int:
    """Give each user one notice for an event, once, and queue it for their outside channels.

    Parameters
    ----------
    session
        The SQLAlchemy session; the caller commits.
    users
        Who must hear of it (inactive users are skipped).
    event
        The kind of event (``dispatched``, ``due_soon``, ``overdue``, ``sent_back``,
        ``batch_imported``), which the preferences route.
    key
        What makes the notice unique; each user's notice is ``f"{key}:u{user.id}"``.
    title, body, url
        What the bell shows (Chinese), and where the notice leads.
    issue_id, batch_id
        The problem or batch the notice is about, if any.
    settings
        The installation's settings (the outside channels' defaults).
    now
        The time to stamp (Beijing time, naive); now by default.

    Returns
    -------
    int
        How many notices were new.
    """
    now = now or now_local()
    added = 0
    seen: set[int] = set()
    for user in users:
        if user is None or not user.is_active or user.id in seen:
            continue
        seen.add(user.id)
        user_key = f"{key}:u{user.id}"
        new_id = _insert_if_absent(session, {
            "user_id": user.id, "event": event, "key": user_key, "title": title[:200],
            "body": body, "url": url, "issue_id": issue_id, "batch_id": batch_id,
            "created_at": now,
        })
        if new_id is None:
            continue
        added += 1
        text = f"{body}\n{url}" if url and body else (body or url or "")
        for channel, address in prefs.routes_for(session, user, event, settings):
            # A robot stands for a whole chat group: one message however many users it serves.
            box_key = (f"{key}:{channel}:{hashlib.sha1(address.encode()).hexdigest()[:16]}"
                       if channel == "webhook" else f"{user_key}:{channel}")
            outbox.queue(session, key=box_key, channel=channel, address=address,
                         subject=title[:200], body=text, event=event, notification_id=new_id,
                         now=now)
    return added


def unread_count(session, user: User) -> int:
    """How many of the user's own notices are unread (the bell's number)."""
    stmt = access.scope_notifications(
        select(func.count(Notification.id)).where(Notification.read_at.is_(None)), user)
    return int(session.execute(stmt).scalar() or 0)


def list_notifications(session, user: User, *, limit: int = 50, offset: int = 0,
                       unread_only: bool = False) -> dict:
    """The user's own notices, unread first, newest first.

    Returns
    -------
    dict
        ``{"items": [Notification, ...], "total": N, "unread": N}``.
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    base = access.scope_notifications(select(Notification), user)
    if unread_only:
        base = base.where(Notification.read_at.is_(None))
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar() or 0
    stmt = base.order_by(Notification.read_at.is_not(None), Notification.created_at.desc(),
                         Notification.id.desc()).limit(limit).offset(offset)
    return {"items": list(session.execute(stmt).scalars()), "total": int(total),
            "unread": unread_count(session, user)}


def mark_read(session, user: User, ids: Iterable[int] | str, *,
              now: datetime | None = None) -> int:
    """Mark the user's own notices read: the given ids, or ``"all"``.

    An id that is not the user's (or does not exist) answers NotFoundError and nothing is
    marked, so nobody learns whether another's notice exists.

    Returns
    -------
    int
        How many notices changed from unread to read.
    """
    now = now or now_local()
    stmt = update(Notification).where(Notification.read_at.is_(None))
    if ids == "all":
        stmt = stmt.where(Notification.user_id == user.id)
    else:
        wanted = set()
        for value in ids or ():
            text = str(value).strip()
            if not text.isdigit() or not 0 < int(text) <= MAX_ID:
                msg = f"通知 {text[:20]!r} 不存在"
                raise NotFoundError(msg)
            wanted.add(int(text))
        if not wanted:
            return 0
        own = set(session.execute(access.scope_notifications(
            select(Notification.id).where(Notification.id.in_(wanted)), user)).scalars())
        if own != wanted:
            msg = "通知不存在"
            raise NotFoundError(msg)
        stmt = stmt.where(Notification.id.in_(wanted), Notification.user_id == user.id)
    result = session.execute(stmt.values(read_at=now).execution_options(
        synchronize_session=False))
    session.expire_all()
    return int(result.rowcount or 0)
