"""Units and user accounts."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.auth import hash_password
from app.models import ROLES, Unit, User
from app.services.errors import ValidationError

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,40}$")


def validate_password(password: str) -> None:
    if len(password or "") < 8:
        msg = "密码至少 8 位"
        raise ValidationError(msg)


def create_user(session, *, username: str, role: str, password: str, unit_name: str | None = None,
                display_name: str | None = None, phone: str | None = None,
                must_change_password: bool = False) -> User:
    """Create an account; unit heads must name an existing unit."""
    if not USERNAME_RE.match(username or ""):
        msg = f"用户名 {username!r} 无效 (2-40 位字母、数字、下划线)"
        raise ValidationError(msg)
    if role not in ROLES:
        msg = f"角色 {role!r} 无效 (可选: {', '.join(ROLES)})"
        raise ValidationError(msg)
    validate_password(password)
    if session.execute(select(User).where(User.username == username)).scalar():
        msg = f"用户名 {username} 已存在"
        raise ValidationError(msg)
    unit = None
    if unit_name:
        unit = session.execute(select(Unit).where(Unit.name == unit_name.strip())).scalar()
        if unit is None:
            msg = f"责任单位 {unit_name!r} 不存在"
            raise ValidationError(msg)
    if role == "unit_head" and unit is None:
        msg = "责任单位账号必须指定 --unit"
        raise ValidationError(msg)
    user = User(username=username, role=role, unit=unit, password_hash=hash_password(password),
                display_name=display_name, phone=phone,
                must_change_password=must_change_password)
    session.add(user)
    session.flush()
    return user
