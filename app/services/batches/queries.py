"""反馈批次, read: a batch, its problems in the list's order, its counts and progress.

A batch is one list sent back by an inspection. Everything here reads through the access
service: admins, inspectors and leaders see whole batches, a unit head only their own
share (their rows and counts; a batch with none of theirs does not exist for them).
Dispatching a batch is ``batches.dispatch``; its 复核 is ``batches.recheck``.
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.models import OPEN_STATUSES, STATUS_LABELS, STATUSES, Batch, Issue, User, today_local
from app.services.core import access
from app.services.core.errors import NotFoundError

MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one is simply not there


class BatchNotFoundError(NotFoundError):
    """A batch that does not exist, or holds nothing the user may see."""


def natural_key(seq: str | None) -> tuple:
    """Sort 序号 as the list does: "2" before "10", text after numbers."""
    text = (seq or "").strip()
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def check_unit_id(unit_id: int) -> None:
    """Refuse a unit id no database row can have (a 404, not a driver overflow)."""
    if not 1 <= int(unit_id) <= MAX_ID:
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)


def get_batch(session, user: User, batch_id: int) -> Batch:
    """Load a batch the user may see (a unit head only one holding their problems).

    Raises
    ------
    BatchNotFoundError
        The batch is missing, or a unit head has no problem in it (404, not 403).
    """
    access.require(user, "read")
    batch = session.get(Batch, batch_id)
    if batch is not None and access.is_unit_scoped(user):
        mine = session.execute(
            access.scope_issues(
                select(func.count()).select_from(Issue).where(Issue.batch_id == batch.id), user
            )
        ).scalar_one()
        if not mine:
            batch = None
    if batch is None:
        msg = f"反馈批次 {batch_id} 不存在"
        raise BatchNotFoundError(msg)
    return batch


def batch_issues(session, user: User, batch_id: int, *, unit_id: int | None = None) -> list[Issue]:
    """The batch's problems the user may see, in the list's own order (序号).

    Raises
    ------
    NotFoundError
        ``unit_id`` names no unit (or one a unit head may not see): 404 for every such id.
    """
    stmt = access.scope_issues(select(Issue).where(Issue.batch_id == batch_id), user)
    if unit_id:
        check_unit_id(unit_id)
        access.get_unit(session, user, int(unit_id))
        stmt = stmt.where(Issue.unit_id == unit_id)
    stmt = stmt.options(
        selectinload(Issue.unit), selectinload(Issue.category), selectinload(Issue.cell),
        selectinload(Issue.photos), selectinload(Issue.co_units),
    )
    rows = list(session.execute(stmt).scalars())
    rows.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
    return rows


def closed_on_time(issue: Issue) -> bool:
    """Closed no later than its deadline (county days)."""
    return (
        issue.status == "closed" and issue.closed_at is not None
        and (issue.deadline is None or issue.closed_at.date() <= issue.deadline)
    )


def summarize(issues: list[Issue], *, today: date | None = None) -> dict:
    """Counts over a list of problems: by status, on time, overdue, by unit and category."""
    today = today or today_local()
    by_status = {s: 0 for s in STATUSES}
    by_unit: dict[str, dict] = {}
    by_category: dict[str, dict] = {}
    overdue = on_time = 0
    for issue in issues:
        by_status[issue.status] = by_status.get(issue.status, 0) + 1
        late = issue.is_overdue(today)
        overdue += late
        on_time += closed_on_time(issue)
        unit = issue.unit.name if issue.unit else "未分配"
        if issue.category is not None:
            category = issue.category.label
        else:
            category = "待分类" if issue.category_pending else "未分类"
        for table, key in ((by_unit, unit), (by_category, category)):
            row = table.setdefault(key, {"name": key, "total": 0, "open": 0, "closed": 0,
                                         "overdue": 0})
            row["total"] += 1
            row["open"] += issue.status in OPEN_STATUSES
            row["closed"] += issue.status == "closed"
            row["overdue"] += late
    return {
        "total": len(issues),
        "by_status": by_status,
        "recheck": recheck_counts(issues),
        "closed_on_time": on_time,
        "overdue": overdue,
        "by_unit": sorted(by_unit.values(), key=lambda r: (-r["total"], r["name"])),
        "by_category": sorted(by_category.values(), key=lambda r: (-r["total"], r["name"])),
    }


def recheck_counts(issues: list[Issue]) -> dict:
    """复核 results over these problems (their own ``recheck_result``, every upload)."""
    passed = sum(i.recheck_result == "passed" for i in issues)
    failed = sum(i.recheck_result == "failed" for i in issues)
    return {"rows": passed + failed, "passed": passed, "failed": failed}


def show_time(value: str | None) -> str:
    """An ISO timestamp as the pages show it: ``2026-12-02 06:20``."""
    text = str(value or "")
    return text[:16].replace("T", " ")


def recheck_view(batch: Batch, user: User, counts: dict) -> dict | None:
    """The 复核 block for this reader: counts over their share; uploads only for whole-batch readers.

    A unit head gets only the counts of their own problems; admins, inspectors and
    leaders also get the uploads (time, file, uploader, counts), times as ``YYYY-MM-DD HH:MM``.
    """
    mine = dict(counts["recheck"])
    stored = batch.recheck or {}
    if access.is_unit_scoped(user):
        return mine if mine["rows"] else None
    if not mine["rows"] and not stored:
        return None
    history = [
        {"at": show_time(h.get("at")), "filename": h.get("filename"), "by": h.get("by"),
         "rows": h.get("rows"), "passed": h.get("passed", 0), "failed": h.get("failed", 0),
         "warnings": len(h.get("warnings") or ())}
        for h in stored.get("history", [])
    ]
    return {**mine, "history": history, "last": history[-1] if history else None}


def batch_to_dict(batch: Batch, counts: dict) -> dict:
    """A batch's headline as the API shows it."""
    return {
        "id": batch.id,
        "name": batch.name,
        "source": batch.source,
        "received_on": batch.received_on.isoformat() if batch.received_on else None,
        "total": counts["total"],
        "by_status": counts["by_status"],
        "overdue": counts["overdue"],
        "closed_on_time": counts["closed_on_time"],
    }


def list_batches(session, user: User, *, today: date | None = None) -> list[dict]:
    """Every batch the user may see with its counts (a unit head: their share only)."""
    access.require(user, "read")
    stmt = select(Batch).order_by(Batch.id.desc())
    if access.is_unit_scoped(user):
        mine = access.scope_issues(select(Issue.batch_id).where(Issue.batch_id.is_not(None)), user)
        stmt = stmt.where(Batch.id.in_(mine))
    out = []
    for batch in session.execute(stmt).scalars():
        issues = batch_issues(session, user, batch.id)
        out.append(batch_to_dict(batch, summarize(issues, today=today)))
    return out


def conflicts_of(issues: list[Issue]) -> list[Issue]:
    """Open problems whose list named one unit while the rules would choose another."""
    return [i for i in issues if i.routing_conflict and i.is_open]


def batch_progress(session, user: User, batch_id: int, *, unit_id: int | None = None,
                   today: date | None = None) -> dict:
    """Everything the batch page shows, over the user's share of the batch."""
    batch = get_batch(session, user, batch_id)
    issues = batch_issues(session, user, batch.id, unit_id=unit_id)
    counts = summarize(issues, today=today)
    conflicts = conflicts_of(issues) if access.may(user, "reroute") else []
    return {
        "batch": batch,
        "issues": issues,
        "counts": counts,
        "conflicts": conflicts,
        "recheck": recheck_view(batch, user, counts),
        "status_labels": STATUS_LABELS,
    }


def batch_detail_dict(session, user: User, batch_id: int) -> dict:
    """A batch's progress as the API shows it (a unit head: their share only)."""
    detail = batch_progress(session, user, batch_id)
    counts = detail["counts"]
    recheck = dict(detail["recheck"] or {})
    recheck.pop("sha256", None)
    return {
        **batch_to_dict(detail["batch"], counts),
        "by_unit": counts["by_unit"],
        "by_category": counts["by_category"],
        "conflicts": [
            {"id": i.id, "seq": i.batch_seq, "unit": i.unit.name if i.unit else None,
             "conflict": dict(i.routing_conflict)}
            for i in detail["conflicts"]
        ],
        "recheck": recheck or None,
        "issues": [i.id for i in detail["issues"]],
    }
