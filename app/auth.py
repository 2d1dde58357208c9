"""Authentication glue: session users for pages, bearer tokens for the API."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Blueprint, Flask, current_app, session
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update

from app.extensions import db, login_manager
from app.models import ApiToken, User, UserSession, now_local
from app.services.core import access
from app.services.core.login_throttle import (
    DatabaseStore,
    FallbackStore,
    LoginThrottle,
    Policy,
    RedisStore,
    ThrottleStore,
    normalize_username,
)
from app.services.core.passwords import hash_token

SESSION_KEY = "sid"  # the UserSession id kept in the signed Flask session
DEVICE_COOKIE = "device"
DEVICE_SALT = "sanigrid-device"
DEVICE_ACCOUNTS = 10  # a shared office computer remembers this many accounts
LAST_SEEN_EVERY = timedelta(minutes=1)


# ---------------------------------------------------------------- login throttle


def login_throttle() -> LoginThrottle | None:
    """The throttle for this request, or None when login limits are off (most tests)."""
    config = current_app.config
    enabled = config.get("LOGIN_THROTTLE_ENABLED")
    if enabled is None:
        enabled = config.get("RATELIMIT_ENABLED", True)
    if not enabled:
        return None
    uri = config.get("RATELIMIT_STORAGE_URI") or ""
    store: ThrottleStore = DatabaseStore(db.session)
    # memory:// (or any other limiter URI) would be per worker: the database is shared.
    if uri.startswith(("redis://", "rediss://", "redis+unix://", "unix://")):
        import redis  # only a Redis deployment pays its import (about 0.1 s)

        client = current_app.extensions.get("login_throttle_redis")
        if client is None:
            url = "unix://" + uri[len("redis+unix://") :] if uri.startswith("redis+") else uri
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            current_app.extensions["login_throttle_redis"] = client
        logger = current_app.logger
        store = FallbackStore(
            RedisStore(client, prefix=config.get("RATELIMIT_KEY_PREFIX") or "sanigrid"),
            store,
            errors=(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
            on_error=lambda exc: logger.warning("login throttle: Redis unavailable (%s)", exc),
        )
    return LoginThrottle(
        store,
        account=Policy(**config.get("LOGIN_THROTTLE_ACCOUNT", {})),
        address=Policy(**config.get("LOGIN_THROTTLE_ADDRESS", {})),
    )


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_SALT)


def _device_payload(cookie: str | None) -> dict | None:
    if not cookie:
        return None
    max_age = int(current_app.config.get("DEVICE_COOKIE_DAYS", 180)) * 86400
    try:
        data = _device_serializer().loads(cookie, max_age=max_age)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str):
        return None
    if not isinstance(data.get("u"), list):
        return None
    return data


def known_device(cookie: str | None, username: str) -> str | None:
    """Return the device id when the signed cookie says this account signed in here."""
    data = _device_payload(cookie)
    if data is None or normalize_username(username) not in data["u"]:
        return None
    return data["d"]


def device_cookie(cookie: str | None, username: str) -> tuple[str, int]:
    """Return the device cookie's new value (adding the account) and its max age."""
    data = _device_payload(cookie) or {"d": secrets.token_urlsafe(16), "u": []}
    name = normalize_username(username)
    accounts = [n for n in data["u"] if n != name] + [name]
    value = _device_serializer().dumps({"d": data["d"], "u": accounts[-DEVICE_ACCOUNTS:]})
    return value, int(current_app.config.get("DEVICE_COOKIE_DAYS", 180)) * 86400


# ---------------------------------------------------------------- server-side sessions


def start_session(user: User, *, ip: str | None, user_agent: str | None) -> str:
    """Record a signed-in browser and remember its id in the Flask session."""
    sid = secrets.token_urlsafe(32)
    now = now_local()
    db.session.add(
        UserSession(
            id=sid,
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            ip=(ip or None) and ip[:64],
            user_agent=(user_agent or None) and user_agent[:255],
        )
    )
    session[SESSION_KEY] = sid
    return sid


def revoke_session(sid: str | None) -> None:
    """End one browser's session: its cookie, even a copied one, no longer signs anyone in."""
    if not sid:
        return
    db.session.execute(
        update(UserSession)
        .where(UserSession.id == sid, UserSession.revoked_at.is_(None))
        .values(revoked_at=now_local())
    )


def revoke_user_sessions(user: User, *, keep: str | None = None) -> None:
    """End every session of a user (but ``keep``), e.g. on logout everywhere."""
    query = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if keep:
        query = query.where(UserSession.id != keep)
    db.session.execute(query.values(revoked_at=now_local()))


def _session_alive(uid: int) -> bool:
    sid = session.get(SESSION_KEY)
    if not sid:
        return False
    row = db.session.get(UserSession, sid)
    if row is None:
        return False
    if row.revoked_at is not None:
        return False
    if row.user_id != uid:
        return False
    now = now_local()
    if row.last_seen_at is None or now - row.last_seen_at >= LAST_SEEN_EVERY:
        row.last_seen_at = now
        # Commit only our own change: the view's work is committed (or not) by the view.
        if not (db.session.new or db.session.deleted) and list(db.session.dirty) == [row]:
            db.session.commit()
    return True


def user_from_bearer(header: str | None) -> User | None:
    """Resolve ``Authorization: Bearer <token>`` to an active user, or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    # "Bearer " or "bearer  " carries no token: nobody, as for a wrong one (never a 500).
    if scheme.lower() != "bearer" or not token:
        return None
    row = db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    return row.user


def register(app: Flask) -> None:
    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        # The id carries the session version, so a password change or "logout everywhere"
        # invalidates every other session at once.
        try:
            uid, version = (int(part) for part in user_id.split(":", 1))
        except ValueError:
            return None
        user = db.session.get(User, uid)
        if user is None or user.session_version != version or not user.active:
            return None
        # A revoked or unknown session id signs the user out: logout ends a copied cookie.
        if not _session_alive(uid):
            return None
        return user

    @login_manager.request_loader
    def load_user_from_request(req) -> User | None:
        return user_from_bearer(req.headers.get("Authorization"))


def admins_only(bp: Blueprint, action: str = "manage_users") -> None:
    """Guard every view of ``bp``: sign-in first (redirect), then ``action`` (403 otherwise)."""

    @bp.before_request
    def _guard():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        access.require(current_user, action)
        return None
