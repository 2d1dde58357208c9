"""The audit log: who did what to whose account, data or export, and from where.

Every area records through :func:`record`; only admins read the log (:func:`list_entries`).
Rows are append-only: nothing in the application updates or deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from app.models import AuditLog, User
from app.services.core.access import require
from app.services.core.errors import ValidationError

# Chinese labels of the actions recorded across the application (unknown ones show raw).
ACTION_LABELS = {
    "login": "登录",
    "login_failed": "登录失败",
    "login_locked": "登录锁定",
    "logout_everywhere": "退出所有设备",
    "password_changed": "修改密码",
    "user_created": "创建账号",
    "user_updated": "修改账号",
    "role_changed": "变更角色",
    "unit_changed": "变更单位",
    "password_reset": "重置密码",
    "user_disabled": "停用账号",
    "user_enabled": "启用账号",
    "sessions_revoked": "强制下线",
    "token_created": "创建 API 令牌",
    "token_revoked": "吊销 API 令牌",
    "unit_created": "创建单位",
    "unit_updated": "修改单位",
    "unit_disabled": "停用单位",
    "unit_enabled": "启用单位",
    "roster_imported": "导入花名册",
    "export": "导出数据",
    "export_issues": "导出问题清单",
    "export_report": "导出考核通报",
    "export_grid": "导出网格",
    "export_unit_cells": "导出责任片区",
    "import_osm": "导入 OSM 数据",
    "import_layer": "导入图层",
    "import_grid": "导入网格",
    "store_grid": "保存网格版本",
    "activate_grid": "启用网格版本",
    "assign_cells": "分配网格",
    "holidays_imported": "导入节假日安排",
    "alias_saved": "保存地名别名",
    "alias_deleted": "删除地名别名",
    "aliases_imported": "导入地名别名",
    "assessment_publish": "发布月度考核",
    "assessment_republish": "重新发布月度考核",
    "assessment_appeal": "提出申诉",
    "assessment_appeal_resolved": "处理申诉",
    "evaluation_calendar": "修改迎检日程",
}

PAGE_SIZE = 50


def record(
    session, user: User | None, action: str, detail: str | None = None, ip: str | None = None
) -> AuditLog:
    """Append one audit row in the caller's transaction (committed with the change itself)."""
    entry = AuditLog(
        action=action[:40],
        user_id=user.id if user is not None else None,
        detail=detail,
        ip=(ip or None) and ip[:64],
    )
    session.add(entry)
    return entry


@dataclass
class AuditFilters:
    action: str | None = None
    username: str | None = None
    date_from: date | None = None
    date_to: date | None = None


def _parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        msg = f"{field}「{value}」不是有效日期 (格式 YYYY-MM-DD)"
        raise ValidationError(msg) from None


def parse_filters(args) -> AuditFilters:
    """Read the audit page's query string; a bad date names the field and value."""
    return AuditFilters(
        action=(args.get("action") or "").strip() or None,
        username=(args.get("user") or "").strip() or None,
        date_from=_parse_day(args.get("from"), "开始日期"),
        date_to=_parse_day(args.get("to"), "结束日期"),
    )


def list_entries(session, actor: User, filters: AuditFilters, *, page: int = 1) -> dict:
    """Return one page of audit rows, newest first, for an admin."""
    require(actor, "manage_users")
    stmt = select(AuditLog, User.username).outerjoin(User, User.id == AuditLog.user_id)
    if filters.action:
        stmt = stmt.where(AuditLog.action == filters.action)
    if filters.username:
        # Failed logins of unknown names keep the attempted name in ``detail``.
        stmt = stmt.where(
            (User.username == filters.username)
            | ((AuditLog.action == "login_failed") & (AuditLog.detail == filters.username))
        )
    if filters.date_from:
        stmt = stmt.where(AuditLog.at >= datetime.combine(filters.date_from, datetime.min.time()))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time())
        stmt = stmt.where(AuditLog.at < end)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    page = max(1, page)
    rows = session.execute(
        stmt.order_by(AuditLog.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    items = [
        {
            "entry": entry,
            "username": username,
            "label": ACTION_LABELS.get(entry.action, entry.action),
        }
        for entry, username in rows
    ]
    return {"items": items, "total": total, "page": page, "pages": max(1, -(-total // PAGE_SIZE))}


def known_actions(session) -> list[tuple[str, str]]:
    """Actions present in the log, with labels, for the filter drop-down."""
    present = session.execute(select(AuditLog.action).distinct()).scalars().all()
    return sorted(((a, ACTION_LABELS.get(a, a)) for a in present), key=lambda p: p[0])
