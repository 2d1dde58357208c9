"""Units and user accounts: create, edit, disable, reset passwords, API tokens.

The roster import (a spreadsheet of people → accounts) is ``tables.roster``.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select

from app.models import ROLES, ApiToken, AuditLog, Unit, User, now_local
from app.services.core.access import require
from app.services.core.audit import record
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.params import parse_typed_id
from app.services.core.passwords import hash_password, issue_token

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,40}$")


def validate_password(password: str) -> None:
    """Refuse a password shorter than 8 characters."""
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


# ---------------------------------------------------------------------- administration
# Everything below is for admins (permission manage_users) and writes an audit row in the
# same transaction as the change, so a change without its audit row cannot be committed.

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
# A temporary password is read aloud or typed from a sheet: no 0/O, 1/l/I look-alikes.
_TEMP_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
UNIT_KINDS = {"department": "部门", "subdistrict": "街道/乡镇", "community": "社区",
              "company": "企业", "other": "其他"}


def temporary_password(length: int = 10) -> str:
    """A random password to hand over once; the user must change it at first login."""
    while True:
        pw = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(length))
        # At least one digit and one letter, so it passes any later rule of mixed classes.
        if any(c.isdigit() for c in pw) and any(c.isalpha() for c in pw):
            return pw


def _get_user(session, user_id) -> User:
    user = session.get(User, parse_typed_id(user_id, what="账号")) if user_id not in (None, "") else None
    if user is None:
        msg = f"账号 {user_id} 不存在"
        raise NotFoundError(msg)
    return user


def _get_unit(session, unit_id) -> Unit:
    unit = session.get(Unit, parse_typed_id(unit_id, what="单位")) if unit_id not in (None, "") else None
    if unit is None:
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)
    return unit


def _revoke_tokens(session, user: User) -> int:
    tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).scalars().all()
    for token in tokens:
        token.revoked_at = now_local()
    return len(tokens)


def list_users(session, actor: User) -> list[dict]:
    """All accounts with their unit and last successful login, for the admin list."""
    require(actor, "manage_users")
    last = dict(session.execute(
        select(AuditLog.user_id, func.max(AuditLog.at))
        .where(AuditLog.action == "login").group_by(AuditLog.user_id)
    ).all())
    users = session.execute(select(User).order_by(User.role, User.username)).scalars().all()
    return [{"user": u, "last_login": last.get(u.id)} for u in users]


def unit_for_edit(session, actor: User, unit_id) -> Unit:
    """Load a unit for the admin's edit form."""
    require(actor, "manage_users")
    return _get_unit(session, unit_id)


def list_units(session, actor: User, *, active_only: bool = False) -> list[Unit]:
    """All units by name (only the active ones with ``active_only``), for the admin."""
    require(actor, "manage_users")
    stmt = select(Unit).order_by(Unit.name)
    if active_only:
        stmt = stmt.where(Unit.active.is_(True))
    return list(session.execute(stmt).scalars())


def admin_create_user(session, actor: User, *, username: str, role: str, unit_id=None,
                      display_name: str | None = None, phone: str | None = None,
                      ip: str | None = None) -> tuple[User, str]:
    """Create an account with a temporary password; return it with the password (shown once)."""

    require(actor, "manage_users")
    unit = _get_unit(session, unit_id) if unit_id not in (None, "") else None
    password = temporary_password()
    user = create_user(session, username=(username or "").strip(), role=role, password=password,
                       unit_name=unit.name if unit else None,
                       display_name=(display_name or "").strip() or None,
                       phone=(phone or "").strip() or None, must_change_password=True)
    record(session, actor, "user_created",
           f"{user.username} 角色={role} 单位={unit.name if unit else '-'}", ip)
    return user, password


def update_user(session, actor: User, user_id, *, role: str, unit_id=None,
                display_name: str | None = None, phone: str | None = None,
                ip: str | None = None) -> User:
    """Change an account's role, unit and contact fields; role/unit changes are audited."""

    require(actor, "manage_users")
    user = _get_user(session, user_id)
    if role not in ROLES:
        msg = f"角色 {role!r} 无效 (可选: {', '.join(ROLES)})"
        raise ValidationError(msg)
    unit = _get_unit(session, unit_id) if unit_id not in (None, "") else None
    if role == "unit_head" and unit is None:
        msg = f"账号 {user.username}: 责任单位账号必须指定单位"
        raise ValidationError(msg)
    if user.id == actor.id and role != "admin":
        msg = "不能取消自己的管理员角色 (请由另一名管理员操作)"
        raise ValidationError(msg)
    if role != user.role:
        record(session, actor, "role_changed", f"{user.username}: {user.role} → {role}", ip)
    if (unit.id if unit else None) != user.unit_id:
        old = user.unit.name if user.unit else "-"
        record(session, actor, "unit_changed",
               f"{user.username}: {old} → {unit.name if unit else '-'}", ip)
    changed_scope = role != user.role or (unit.id if unit else None) != user.unit_id
    user.role = role
    user.unit = unit
    user.display_name = (display_name or "").strip() or None
    user.phone = (phone or "").strip() or None
    if changed_scope:
        # What the user may see changed: open sessions must sign in again.
        user.session_version += 1
    session.flush()
    return user


def reset_password(session, actor: User, user_id, *, ip: str | None = None) -> str:
    """Give an account a random temporary password (returned once) and end its sessions."""

    require(actor, "manage_users")
    user = _get_user(session, user_id)
    password = temporary_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.session_version += 1
    record(session, actor, "password_reset", user.username, ip)
    return password


def set_user_active(session, actor: User, user_id, active: bool, *,
                    ip: str | None = None) -> User:
    """Enable or disable an account; disabling ends its sessions and revokes its tokens."""

    require(actor, "manage_users")
    user = _get_user(session, user_id)
    if not active and user.id == actor.id:
        msg = "不能停用自己的账号"
        raise ValidationError(msg)
    if user.active == active:
        return user
    user.active = active
    if not active:
        user.session_version += 1
        revoked = _revoke_tokens(session, user)
        record(session, actor, "user_disabled", f"{user.username} (吊销令牌 {revoked} 个)", ip)
    else:
        record(session, actor, "user_enabled", user.username, ip)
    return user


def end_sessions(session, actor: User, user_id, *, ip: str | None = None) -> User:
    """Sign an account out of every browser ("logout everywhere" done by an admin)."""

    require(actor, "manage_users")
    user = _get_user(session, user_id)
    user.session_version += 1
    record(session, actor, "sessions_revoked", user.username, ip)
    return user


# ---------------------------------------------------------------------- API tokens


def list_tokens(session, actor: User, user_id) -> tuple[User, list]:
    """An account with its API tokens, newest first."""
    require(actor, "manage_users")
    user = _get_user(session, user_id)
    tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).scalars().all()
    return user, list(tokens)


def create_token(session, actor: User, user_id, *, name: str | None = None,
                 ip: str | None = None) -> str:
    """Create an API token for an active account; the token is returned once."""

    require(actor, "manage_users")
    user = _get_user(session, user_id)
    if not user.active:
        msg = f"账号 {user.username} 已停用，不能创建令牌"
        raise ValidationError(msg)
    name = (name or "").strip()[:80] or None
    token = issue_token(session, user, name=name)
    record(session, actor, "token_created", f"{user.username} {token[:10]}… {name or ''}".strip(),
           ip)
    return token


def revoke_token(session, actor: User, token_id, *, ip: str | None = None):
    """Revoke one API token (idempotent)."""
    require(actor, "manage_users")
    token = session.get(ApiToken, parse_typed_id(token_id, what="令牌"))
    if token is None:
        msg = f"令牌 {token_id} 不存在"
        raise NotFoundError(msg)
    if token.revoked_at is None:
        token.revoked_at = now_local()
        record(session, actor, "token_revoked", f"{token.user.username} {token.prefix}…", ip)
    return token


# ---------------------------------------------------------------------- units


def _unit_fields(name, kind, contact, phone) -> dict:
    name = (name or "").strip()
    if not name:
        msg = "单位名称不能为空"
        raise ValidationError(msg)
    if len(name) > 120:
        msg = f"单位名称「{name[:20]}…」过长 (最多 120 字)"
        raise ValidationError(msg)
    kind = (kind or "department").strip()
    if kind not in UNIT_KINDS:
        msg = f"单位类型 {kind!r} 无效 (可选: {', '.join(UNIT_KINDS)})"
        raise ValidationError(msg)
    phone = (phone or "").strip() or None
    if phone and not re.fullmatch(r"[0-9+\-() ]{5,30}", phone):
        msg = f"联系电话「{phone}」格式无效"
        raise ValidationError(msg)
    return {"name": name, "kind": kind, "contact": (contact or "").strip()[:60] or None,
            "phone": phone}


def create_unit(session, actor: User, *, name: str, kind: str = "department",
                contact: str | None = None, phone: str | None = None,
                ip: str | None = None) -> Unit:
    """Create a responsible unit; names are unique."""

    require(actor, "manage_users")
    fields = _unit_fields(name, kind, contact, phone)
    if session.execute(select(Unit).where(Unit.name == fields["name"])).scalar():
        msg = f"单位「{fields['name']}」已存在"
        raise ValidationError(msg)
    unit = Unit(**fields, active=True)
    session.add(unit)
    session.flush()
    record(session, actor, "unit_created", unit.name, ip)
    return unit


def update_unit(session, actor: User, unit_id, *, name: str, kind: str = "department",
                contact: str | None = None, phone: str | None = None,
                ip: str | None = None) -> Unit:
    """Rename a unit or change its contact person and phone."""

    require(actor, "manage_users")
    unit = _get_unit(session, unit_id)
    fields = _unit_fields(name, kind, contact, phone)
    other = session.execute(select(Unit).where(Unit.name == fields["name"])).scalar()
    if other is not None and other.id != unit.id:
        msg = f"单位「{fields['name']}」已存在"
        raise ValidationError(msg)
    old = unit.name
    for key, value in fields.items():
        setattr(unit, key, value)
    record(session, actor, "unit_updated",
           unit.name if old == unit.name else f"{old} → {unit.name}", ip)
    return unit


def set_unit_active(session, actor: User, unit_id, active: bool, *,
                    ip: str | None = None) -> Unit:
    """Disable (or re-enable) a unit; its unit-head accounts are disabled with it."""

    require(actor, "manage_users")
    unit = _get_unit(session, unit_id)
    if unit.active == active:
        return unit
    unit.active = active
    if not active:
        # A unit that no longer exists must not keep a way in to its cells and problems.
        heads = [u for u in unit.users if u.role == "unit_head" and u.active]
        for head in heads:
            set_user_active(session, actor, head.id, False, ip=ip)
        record(session, actor, "unit_disabled", f"{unit.name} (停用账号 {len(heads)} 个)", ip)
    else:
        record(session, actor, "unit_enabled", unit.name, ip)
    return unit
