"""Password and API-token hashing: what accounts, the seed and the login glue share."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import ApiToken, User

TOKEN_PREFIX = "sg_"


def hash_password(password: str) -> str:
    """Hash with scrypt (werkzeug's default, memory-hard)."""
    return generate_password_hash(password, method="scrypt")


def verify_password(user: User, password: str) -> bool:
    """Return whether ``password`` is the user's."""
    return check_password_hash(user.password_hash, password)


@cache
def _dummy_hash() -> str:
    # Same method and cost as a real account's hash, so a missing name takes as long.
    return hash_password(secrets.token_urlsafe(16))


def find_user(session, username: str) -> User | None:
    """Return the account named ``username`` (active or not), or None."""
    return session.execute(select(User).where(User.username == username)).scalar()


def check_credentials(user: User | None, password: str) -> bool:
    """Check a password with the same hash work whether or not the account exists."""
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return bool(ok and user is not None and user.active)


def hash_token(token: str) -> str:
    """Return the stored form of an API token (SHA-256; the token itself is never kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session, user: User, *, name: str | None = None) -> str:
    """Create an API token for a user; return the token (only its hash is kept)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=hash_token(token), prefix=token[:10], name=name))
    return token
