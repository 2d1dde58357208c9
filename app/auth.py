"""Authentication glue: session users for pages, bearer tokens for the API."""

from __future__ import annotations

import hashlib
import secrets

from flask import Flask
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db, login_manager
from app.models import ApiToken, User

TOKEN_PREFIX = "sg_"


def hash_password(password: str) -> str:
    """Hash with scrypt (werkzeug's default, memory-hard)."""
    return generate_password_hash(password, method="scrypt")


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, user: User, *, name: str | None = None) -> str:
    """Create an API token for a user; return the token (only its hash is kept)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=hash_token(token), prefix=token[:10], name=name))
    return token


def user_from_bearer(header: str | None) -> User | None:
    """Resolve ``Authorization: Bearer <token>`` to an active user, or None."""
    if not header or not header.lower().startswith("bearer "):
        return None
    token = header.split(None, 1)[1].strip()
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
        return user

    @login_manager.request_loader
    def load_user_from_request(req) -> User | None:
        return user_from_bearer(req.headers.get("Authorization"))
