"""The problem list (问题清单): filters, pagination and Excel export over what a user may see.

Every query starts from access.scope_issues, so a unit head's list, page count and export
hold only their own unit's problems, whatever filters the query string names.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.models import (
    OPEN_STATUSES,
    SOURCES,
    STATUS_LABELS,
    Category,
    Issue,
    Unit,
    User,
    today_local,
)
from app.services.core import access, params
from app.services.core.audit import record
from app.services.core.errors import ValidationError
from app.services.core.xlsx import write_row
from app.services.grids.map_data import IssueFilters

PER_PAGE = 50
MAX_EXPORT_ROWS = 20_000
FILTER_KEYS = ("status", "category", "source", "unit", "cell", "overdue", "from", "to")
EXPORT_COLUMNS = (
    "编号",
    "状态",
    "一级类别",
    "二级类别",
    "描述",
    "地点",
    "经度",
    "纬度",
    "网格",
    "责任单位",
    "来源",
    "发现时间",
    "整改时限",
    "是否逾期",
    "返工次数",
    "销号时间",
    "待分类",
    "类别原文",
)


def _parse_day(value: str | None, field_name: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        msg = f"{field_name} {value!r} 不是有效日期 (格式 YYYY-MM-DD)"
        raise ValidationError(msg) from None


def parse_filters(args: Mapping) -> IssueFilters:
    """Read the list/map query string (the names the home map uses) into IssueFilters."""
    status = (args.get("status") or "").strip() or None
    if status and status != "open" and status not in STATUS_LABELS:
        msg = f"状态 {status!r} 无效"
        raise ValidationError(msg)
    source = (args.get("source") or "").strip() or None
    if source and source not in SOURCES:
        msg = f"来源 {source!r} 无效"
        raise ValidationError(msg)
    unit_id = params.parse_id(args.get("unit"), name="责任单位")
    date_from = _parse_day(args.get("from"), "开始日期")
    date_to = _parse_day(args.get("to"), "结束日期")
    if date_from and date_to and date_from > date_to:
        msg = f"开始日期 {date_from} 晚于结束日期 {date_to}"
        raise ValidationError(msg)
    return IssueFilters(
        status=status,
        category=(args.get("category") or "").strip() or None,
        source=source,
        unit_id=unit_id,
        cell_code=(args.get("cell") or "").strip() or None,
        overdue=args.get("overdue") in ("1", "on", "true"),
        date_from=date_from,
        date_to=date_to,
    )


def filter_args(filters: IssueFilters) -> dict[str, str]:
    """The query-string form of filters (for links to the map, export and other pages)."""
    pairs = {
        "status": filters.status,
        "category": filters.category,
        "source": filters.source,
        "unit": str(filters.unit_id) if filters.unit_id else None,
        "cell": filters.cell_code,
        "overdue": "1" if filters.overdue else None,
        "from": filters.date_from,
        "to": filters.date_to,
    }
    return {k: v for k, v in pairs.items() if v}


@dataclass
class IssuePage:
    items: list[Issue]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _filtered(user: User, filters: IssueFilters):
    return filters.apply(access.scope_issues(select(Issue), user))


def list_issues(
    session, user: User, filters: IssueFilters, *, page: int = 1, per_page: int = PER_PAGE
) -> IssuePage:
    """One page of the problems the user may see, newest first."""
    access.require(user, "read")
    stmt = _filtered(user, filters)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    page = max(1, min(int(page or 1), max(1, math.ceil(total / per_page))))
    rows = (
        session.execute(
            stmt.options(
                selectinload(Issue.category), selectinload(Issue.cell), selectinload(Issue.unit)
            )
            .order_by(Issue.found_at.desc(), Issue.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        .scalars()
        .all()
    )
    return IssuePage(items=list(rows), total=total, page=page, per_page=per_page)


def filter_choices(session, user: User) -> dict:
    """Options for the filter form: categories by level, visible units, statuses, sources."""
    cats = session.execute(select(Category).order_by(Category.code)).scalars().all()
    units = session.execute(access.scope_units(select(Unit).order_by(Unit.name), user)).scalars()
    statuses = [("open", "未销号 (全部在办)")] + list(STATUS_LABELS.items())
    return {
        "categories": list(cats),
        "units": list(units),
        "statuses": statuses,
        "sources": SOURCES,
    }


def category_groups(session) -> list[tuple[Category, list[Category]]]:
    """Level-2 categories grouped under their level-1 heading (for the report form)."""
    cats = session.execute(select(Category).order_by(Category.code)).scalars().all()
    parents = [c for c in cats if c.level == 1]
    groups = [(p, [c for c in cats if c.parent_code == p.code]) for p in parents]
    orphans = [c for c in cats if c.level != 1 and c.parent_code not in {p.code for p in parents}]
    if orphans:
        groups.append((None, orphans))
    return [(p, children) for p, children in groups if children or p is not None]


def _category_names(issue: Issue, by_code: dict[str, Category]) -> tuple[str, str]:
    cat = issue.category
    if cat is None:
        return ("待分类" if issue.category_pending else "未分类"), ""
    if cat.level == 1:
        return cat.name, ""
    parent = by_code.get(cat.parent_code or "")
    return (parent.name if parent else ""), cat.name


def export_issues_xlsx(session, user: User, filters: IssueFilters) -> bytes:
    """The filtered rows the user may see, as an .xlsx workbook."""
    access.require(user, "export")
    stmt = _filtered(user, filters)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    if total > MAX_EXPORT_ROWS:
        msg = f"符合条件的问题有 {total} 条，超过导出上限 {MAX_EXPORT_ROWS} 条，请缩小筛选范围"
        raise ValidationError(msg)
    rows = (
        session.execute(
            stmt.options(
                selectinload(Issue.category), selectinload(Issue.cell), selectinload(Issue.unit)
            ).order_by(Issue.found_at.desc(), Issue.id.desc())
        )
        .scalars()
        .all()
    )
    # Exports leave the system: who took which rows is kept in the audit log.
    record(session, user, "export_issues", f"{len(rows)} 条, 筛选 {filters!r}"[:500])
    by_code = {c.code: c for c in session.execute(select(Category)).scalars()}
    today = today_local()
    wb = Workbook()
    ws = wb.active
    ws.title = "问题清单"
    write_row(ws, list(EXPORT_COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    red = Font(color="C00000", bold=True)
    for issue in rows:
        level1, level2 = _category_names(issue, by_code)
        overdue = issue.is_overdue(today)
        write_row(
            ws,
            [
                issue.id,
                issue.status_label,
                level1,
                level2,
                issue.description,
                issue.address or "",
                issue.lon,
                issue.lat,
                issue.cell.code if issue.cell else ("待定位" if issue.needs_placement else ""),
                issue.unit.name if issue.unit else "未分配",
                issue.source,
                issue.found_at,
                issue.deadline,
                "是" if overdue else "否",
                issue.rework_count,
                issue.closed_at,
                "是" if issue.category_pending else "",
                issue.category_text or "",
            ]
        )
        if overdue:
            ws.cell(row=ws.max_row, column=13).font = red
            ws.cell(row=ws.max_row, column=14).font = red
    widths = (8, 10, 16, 16, 40, 28, 12, 12, 18, 18, 14, 18, 12, 8, 8, 18, 8, 20)
    for idx, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(idx)].width = width
    for row in ws.iter_rows(min_row=2):
        for col in (12, 16):
            if isinstance(row[col - 1].value, datetime):
                row[col - 1].number_format = "yyyy-mm-dd hh:mm"
        if isinstance(row[12].value, date):
            row[12].number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    header_fill = PatternFill("solid", fgColor="F1F1F1")
    for cell in ws[1]:
        cell.fill = header_fill
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def placement_queue(session, user: User, *, limit: int = 200) -> list[Issue]:
    """Open problems waiting for manual placement (待定位), oldest first."""
    access.require(user, "place")
    stmt = access.scope_issues(
        select(Issue).where(Issue.needs_placement.is_(True), Issue.status.in_(OPEN_STATUSES)), user
    )
    return list(
        session.execute(
            stmt.options(selectinload(Issue.category)).order_by(Issue.id).limit(limit)
        ).scalars()
    )


def count_placement_queue(session, user: User) -> int:
    stmt = access.scope_issues(
        select(func.count())
        .select_from(Issue)
        .where(Issue.needs_placement.is_(True), Issue.status.in_(OPEN_STATUSES)),
        user,
    )
    return session.execute(stmt).scalar_one()
