"""Units and user accounts."""

from __future__ import annotations

import io
import re
import secrets
import unicodedata

from sqlalchemy import func, select

from app.models import ROLE_LABELS, ROLES, ApiToken, AuditLog, Unit, User, now_local
from app.services.core.access import require
from app.services.core.audit import record
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.passwords import hash_password, issue_token

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


def _admin(actor: User) -> None:
    require(actor, "manage_users")


def _get_user(session, user_id) -> User:
    user = session.get(User, _int(user_id, "账号")) if user_id not in (None, "") else None
    if user is None:
        msg = f"账号 {user_id} 不存在"
        raise NotFoundError(msg)
    return user


def _get_unit(session, unit_id) -> Unit:
    unit = session.get(Unit, _int(unit_id, "单位")) if unit_id not in (None, "") else None
    if unit is None:
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)
    return unit


def _int(value, field: str) -> int:
    """An id from a form (the site's one id parser: 1 to 2**31 - 1, ASCII digits)."""
    from app.services.core.params import MAX_ID, parse_int, shown

    try:
        number = parse_int(value, name=field, low=1, high=MAX_ID)
    except ValidationError:
        number = None
    if number is None:
        msg = f"{field}编号 {shown(value)} 无效"
        raise ValidationError(msg)
    return number


def _revoke_tokens(session, user: User) -> int:
    tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).scalars().all()
    for token in tokens:
        token.revoked_at = now_local()
    return len(tokens)


def list_users(session, actor: User) -> list[dict]:
    """All accounts with their unit and last successful login, for the admin list."""
    _admin(actor)
    last = dict(session.execute(
        select(AuditLog.user_id, func.max(AuditLog.at))
        .where(AuditLog.action == "login").group_by(AuditLog.user_id)
    ).all())
    users = session.execute(select(User).order_by(User.role, User.username)).scalars().all()
    return [{"user": u, "last_login": last.get(u.id)} for u in users]


def unit_for_edit(session, actor: User, unit_id) -> Unit:
    """Load a unit for the admin's edit form."""
    _admin(actor)
    return _get_unit(session, unit_id)


def list_units(session, actor: User, *, active_only: bool = False) -> list[Unit]:
    _admin(actor)
    stmt = select(Unit).order_by(Unit.name)
    if active_only:
        stmt = stmt.where(Unit.active.is_(True))
    return list(session.execute(stmt).scalars())


def admin_create_user(session, actor: User, *, username: str, role: str, unit_id=None,
                      display_name: str | None = None, phone: str | None = None,
                      ip: str | None = None) -> tuple[User, str]:
    """Create an account with a temporary password; return it with the password (shown once)."""

    _admin(actor)
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

    _admin(actor)
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

    _admin(actor)
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

    _admin(actor)
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

    _admin(actor)
    user = _get_user(session, user_id)
    user.session_version += 1
    record(session, actor, "sessions_revoked", user.username, ip)
    return user


# ---------------------------------------------------------------------- API tokens


def list_tokens(session, actor: User, user_id) -> tuple[User, list]:
    _admin(actor)
    user = _get_user(session, user_id)
    tokens = session.execute(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).scalars().all()
    return user, list(tokens)


def create_token(session, actor: User, user_id, *, name: str | None = None,
                 ip: str | None = None) -> str:
    """Create an API token for an active account; the token is returned once."""

    _admin(actor)
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
    _admin(actor)
    token = session.get(ApiToken, _int(token_id, "令牌"))
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

    _admin(actor)
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

    _admin(actor)
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

    _admin(actor)
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


# ---------------------------------------------------------------------- roster import

ROSTER_COLUMNS = {
    "unit": ("单位", "责任单位", "单位名称", "所在单位"),
    "name": ("姓名", "名字", "联系人"),
    "phone": ("手机号", "手机", "手机号码", "联系电话", "电话"),
    "role": ("角色", "身份", "账号类型"),
}
ROSTER_ROLES = {
    "创卫办": "admin", "管理员": "admin", "admin": "admin",
    "督查员": "inspector", "督查": "inspector", "inspector": "inspector",
    "责任单位": "unit_head", "单位负责人": "unit_head", "unit_head": "unit_head",
    "领导": "leader", "leader": "leader",
}


class RosterError(ValidationError):
    """A roster file with row errors; ``errors`` lists every one (row-numbered)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = "；".join(errors[:5]) + (f"；另有 {len(errors) - 5} 处错误" if len(errors) > 5
                                        else "")
        super().__init__(f"花名册有 {len(errors)} 处错误，未导入任何账号: {shown}")


def read_roster(data: bytes, filename: str) -> list[dict]:
    """Parse a roster (.xlsx/.xls/.csv) into rows with their spreadsheet row numbers."""
    from app.services.imports.importer import _grid_csv, _grid_xls, _grid_xlsx, _sniff

    kind = _sniff(data, filename)
    grids = {"xlsx": _grid_xlsx, "xls": _grid_xls, "csv": _grid_csv}[kind](data, filename)

    def text(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return unicodedata.normalize("NFKC", str(value)).strip()

    for grid in grids:
        for index, row in enumerate(grid[:10]):
            keys = [re.sub(r"[\s*:：]", "", text(v)) for v in row]
            columns = {}
            for field, names in ROSTER_COLUMNS.items():
                for col, key in enumerate(keys):
                    if key in names and field not in columns:
                        columns[field] = col
            if {"name", "phone", "role"} <= columns.keys():
                rows = []
                for number, values in enumerate(grid[index + 1:], start=index + 2):
                    cells = {f: text(values[c]) if c < len(values) else ""
                             for f, c in columns.items()}
                    if any(cells.values()):
                        rows.append({"row": number, **{f: cells.get(f, "") for f in
                                                        ROSTER_COLUMNS}})
                return rows
    msg = f"{filename}: 找不到表头 (需要列: 单位、姓名、手机号、角色)"
    raise ValidationError(msg)


def check_roster(session, rows: list[dict], *, create_units: bool = False) -> list[dict]:
    """Validate every row; return the rows with role, username and unit status filled in.

    Each row gets ``errors`` (a list of row-numbered messages) so a preview can show all.
    """
    units = {u.name: u for u in session.execute(select(Unit)).scalars()}
    taken = set(session.execute(select(User.username)).scalars())
    seen: dict[str, int] = {}
    for row in rows:
        n, errors = row["row"], []
        role = ROSTER_ROLES.get(row["role"].replace(" ", ""))
        if role is None:
            errors.append(f"第{n}行: 角色「{row['role']}」无效 (可写: 创卫办/管理员、督查员、"
                          "责任单位/单位负责人、领导)")
        phone = re.sub(r"[\s\-]", "", row["phone"])
        if phone.startswith("+86"):
            phone = phone[3:]
        if not PHONE_RE.match(phone):
            errors.append(f"第{n}行: 手机号「{row['phone']}」不是 11 位手机号")
        elif phone in seen:
            errors.append(f"第{n}行: 手机号 {phone} 与第{seen[phone]}行重复")
        elif phone in taken:
            errors.append(f"第{n}行: 手机号 {phone} 已有账号")
        else:
            seen[phone] = n
        if not row["name"]:
            errors.append(f"第{n}行: 姓名为空")
        unit_status = None
        if row["unit"]:
            if row["unit"] in units:
                unit_status = "inactive" if not units[row["unit"]].active else "existing"
                if unit_status == "inactive":
                    errors.append(f"第{n}行: 单位「{row['unit']}」已停用")
            elif create_units:
                unit_status = "new"
            else:
                unit_status = "missing"
                errors.append(f"第{n}行: 单位「{row['unit']}」不存在 (可勾选「自动创建单位」)")
        elif role == "unit_head":
            errors.append(f"第{n}行: 责任单位账号必须填写单位")
        row.update(role_code=role, username=phone, unit_status=unit_status, errors=errors)
    return rows


def import_roster(session, actor: User, data: bytes, filename: str, *,
                  create_units: bool = False, ip: str | None = None) -> list[dict]:
    """Create every account of a roster, or none; return rows with temporary passwords.

    Raises RosterError listing each bad row; the caller rolls back.
    """

    _admin(actor)
    rows = check_roster(session, read_roster(data, filename), create_units=create_units)
    if not rows:
        msg = f"{filename}: 表头下没有任何人员"
        raise ValidationError(msg)
    errors = [e for row in rows for e in row["errors"]]
    if errors:
        raise RosterError(errors)
    created_units = []
    for row in rows:
        if row["unit_status"] == "new" and not session.execute(
            select(Unit).where(Unit.name == row["unit"])
        ).scalar():
            created_units.append(create_unit(session, actor, name=row["unit"], ip=ip))
        password = temporary_password()
        create_user(session, username=row["username"], role=row["role_code"], password=password,
                    unit_name=row["unit"] or None, display_name=row["name"],
                    phone=row["username"], must_change_password=True)
        row["password"] = password
    record(session, actor, "roster_imported",
           f"{filename}: {len(rows)} 个账号, 新建单位 {len(created_units)} 个", ip)
    return rows


def passwords_workbook(rows: list[dict]) -> bytes:
    """An .xlsx of the new accounts' temporary passwords, for the office to hand out."""
    from openpyxl import Workbook

    from app.services.core.xlsx import write_row

    wb = Workbook()
    ws = wb.active
    ws.title = "临时密码"
    write_row(ws, ["单位", "姓名", "手机号", "角色", "用户名", "临时密码", "说明"])
    for row in rows:
        write_row(ws, [row["unit"], row["name"], row["username"],
                   ROLE_LABELS.get(row["role_code"], row["role_code"]), row["username"],
                   row["password"], "首次登录后须修改密码"])
    for col, width in zip("ABCDEFG", (24, 10, 14, 10, 14, 14, 22), strict=True):
        ws.column_dimensions[col].width = width
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# Uploaded rosters and the temporary-password sheet wait here between the preview, the
# import and the one download; each file belongs to the admin who uploaded it.
ROSTER_TTL_S = 3600
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def _roster_paths(directory, token: str):
    from pathlib import Path

    if not _TOKEN_RE.match(token or ""):
        msg = "花名册上传记录不存在或已过期"
        raise NotFoundError(msg)
    base = Path(directory)
    return base / f"{token}.json", base / f"{token}.upload", base / f"{token}.passwords.xlsx"


def purge_roster_files(directory, *, older_than_s: float = ROSTER_TTL_S) -> None:
    """Delete uploads and password sheets left for longer than the time limit."""
    import time
    from pathlib import Path

    base = Path(directory)
    if not base.is_dir():
        return
    cutoff = time.time() - older_than_s
    for path in base.iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def store_roster_upload(directory, actor: User, data: bytes, filename: str) -> str:
    """Check that a roster can be read, keep it for the preview; return its token."""
    import json
    import os
    from pathlib import Path

    _admin(actor)
    read_roster(data, filename)  # refuse an unreadable file before keeping anything
    purge_roster_files(directory)
    Path(directory).mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    meta, upload, _ = _roster_paths(directory, token)
    upload.write_bytes(data)
    meta.write_text(json.dumps({"user_id": actor.id, "filename": filename}), encoding="utf-8")
    for path in (meta, upload):
        os.chmod(path, 0o600)
    return token


def load_roster_upload(directory, actor: User, token: str) -> dict:
    """The stored upload's bytes and name, for the admin who uploaded it only."""
    import json

    _admin(actor)
    meta, upload, passwords = _roster_paths(directory, token)
    if not meta.is_file():
        msg = "花名册上传记录不存在或已过期"
        raise NotFoundError(msg)
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("user_id") != actor.id:
        msg = "花名册上传记录不存在或已过期"
        raise NotFoundError(msg)
    info["data"] = upload.read_bytes() if upload.is_file() else None
    info["has_passwords"] = passwords.is_file()
    return info


def keep_passwords(directory, actor: User, token: str, rows: list[dict]) -> None:
    """After an import: drop the upload, keep the password sheet for one download."""
    import os

    load_roster_upload(directory, actor, token)
    _, upload, passwords = _roster_paths(directory, token)
    upload.unlink(missing_ok=True)
    passwords.write_bytes(passwords_workbook(rows))
    os.chmod(passwords, 0o600)


def take_passwords(directory, actor: User, token: str) -> bytes:
    """Return the password sheet and delete it: it can be downloaded once."""
    load_roster_upload(directory, actor, token)
    _, _, passwords = _roster_paths(directory, token)
    if not passwords.is_file():
        msg = "临时密码表已下载过或已过期 (如需重新发放，请逐个重置密码)"
        raise NotFoundError(msg)
    data = passwords.read_bytes()
    # The small record stays (until purged) so a second try says why it fails.
    passwords.unlink(missing_ok=True)
    return data
