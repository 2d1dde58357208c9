"""The roster import: a spreadsheet of people → accounts with temporary passwords.

An office sends its staff list (单位、姓名、手机号、角色) as .xlsx, .xls or .csv. Every row
is checked (role, an 11-digit phone not taken, the unit) and shown in a preview; on
confirmation every account is created, or none, each with a temporary password. The
upload and the password sheet wait in the upload store (``core.uploads``) between the
preview, the import and the sheet's one download, for the admin who uploaded it only.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import select

from app.models import ROLE_LABELS, Unit, User
from app.services.core import uploads
from app.services.core.access import require
from app.services.core.audit import record
from app.services.core.errors import NotFoundError, TableRowsError, ValidationError
from app.services.core.tabular import read_named_columns
from app.services.core.xlsx import write_row
from app.services.tables.accounts import PHONE_RE, create_unit, create_user, temporary_password

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
# Uploaded rosters and the temporary-password sheet wait at most this long.
ROSTER_TTL_S = 3600
_UPLOAD = "花名册上传记录"  # the upload as messages name it


def read_roster(data: bytes, filename: str) -> list[dict]:
    """Parse a roster (.xlsx/.xls/.csv) into rows with their spreadsheet row numbers.

    Returns
    -------
    list of dict
        ``{"row": n, "unit": …, "name": …, "phone": …, "role": …}`` per non-empty row
        ("" for a column the roster lacks).
    """
    rows = read_named_columns(
        data, filename, ROSTER_COLUMNS, required={"name", "phone", "role"},
        label="单位、姓名、手机号、角色",
    )
    return [{"row": r["row"], **{f: r.get(f, "") for f in ROSTER_COLUMNS}} for r in rows]


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

    Raises TableRowsError listing each bad row; the caller rolls back.
    """
    require(actor, "manage_users")
    rows = check_roster(session, read_roster(data, filename), create_units=create_units)
    if not rows:
        msg = f"{filename}: 表头下没有任何人员"
        raise ValidationError(msg)
    errors = [e for row in rows for e in row["errors"]]
    if errors:
        raise TableRowsError("花名册", errors, outcome="未导入任何账号")
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


def store_roster_upload(directory: Path, actor: User, data: bytes, filename: str) -> str:
    """Check that a roster can be read, keep it for the preview; return its token."""
    require(actor, "manage_users")
    read_roster(data, filename)  # refuse an unreadable file before keeping anything
    return uploads.store_upload(directory, actor, data, filename, ttl_s=ROSTER_TTL_S)


def load_roster_upload(directory: Path, actor: User, token: str) -> dict:
    """The stored upload's bytes and name, for the admin who uploaded it only."""
    require(actor, "manage_users")
    return uploads.load_upload(directory, actor, token, what=_UPLOAD)


def keep_passwords(directory: Path, actor: User, token: str, rows: list[dict]) -> None:
    """After an import: drop the upload, keep the password sheet for one download."""
    load_roster_upload(directory, actor, token)
    uploads.finish_upload(directory, token, output=passwords_workbook(rows))


def take_passwords(directory: Path, actor: User, token: str) -> bytes:
    """Return the password sheet and delete it: it can be downloaded once."""
    require(actor, "manage_users")
    data = uploads.read_output(directory, actor, token, what=_UPLOAD, take=True)
    if data is None:
        msg = "临时密码表已下载过或已过期 (如需重新发放，请逐个重置密码)"
        raise NotFoundError(msg)
    return data
