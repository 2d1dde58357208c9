"""The 待分类 queue: problems whose category matched nothing, classified in bulk by the office.

A problem is 待分类 when its list wrote a category no code, name, synonym or fuzzy match
could place ("其他", a blank, a word nobody foresaw). It was kept with the text as written
(``Issue.category_text``) and a deadline: the list's own, or the configurable default
(``pending_deadline_days``). Classifying sets the category, clears the flag and records
an IssueEvent "classify". The deadline is left as it was, except when it came from the
default: then it is recomputed from the found date with the category's own deadline,
as if the category had been known on the day the problem was reported.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.models import Category, Issue, IssueEvent, User
from app.services.core import access
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.params import parse_typed_id
from app.services.issues.intake import add_event
from app.services.tables.workdays import WorkCalendar, load_calendar

PERMISSION = "import"  # admins only: the office triages the lists it imported
MAX_QUEUE = 500


def pending_queue(session, user: User, *, limit: int = MAX_QUEUE) -> tuple[list[Issue], int]:
    """Problems waiting for a category, oldest first; also how many there are in all.

    Parameters
    ----------
    session
        The database session.
    user
        An admin.
    limit
        How many rows to return (the page shows a count of the rest).
    """
    access.require(user, PERMISSION)
    stmt = access.scope_issues(select(Issue), user).where(Issue.category_pending.is_(True))
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.options(selectinload(Issue.unit), selectinload(Issue.batch))
        .order_by(Issue.found_at, Issue.id).limit(limit)
    ).scalars().all()
    return list(rows), total


def _default_deadline(session, issue: Issue) -> bool:
    """Whether the issue's deadline came from the 待分类 default (its report event says so)."""
    event = session.execute(
        select(IssueEvent).where(IssueEvent.issue_id == issue.id, IssueEvent.action == "report")
        .order_by(IssueEvent.id).limit(1)
    ).scalar()
    return bool(event and (event.data or {}).get("category", {}).get("deadline_default"))


def classify_issues(session, user: User, issue_ids: Iterable[object], category_code: object, *,
                    calendar: WorkCalendar | None = None) -> dict:
    """Give the ticked 待分类 problems one category.

    Parameters
    ----------
    session
        The database session (the caller commits).
    user
        An admin.
    issue_ids
        The problems ticked on the page.
    category_code
        The chosen category's code.
    calendar
        The working-day calendar (loaded when not given).

    Returns
    -------
    dict
        ``classified`` (ids), ``skipped`` (ids no longer pending, e.g. classified by a
        colleague meanwhile), ``deadlines`` (ids whose default deadline was recomputed)
        and ``category`` (the Category).
    """
    access.require(user, PERMISSION)
    ids = sorted({parse_typed_id(value, what="问题") for value in issue_ids or ()})
    if not ids:
        msg = "请先勾选要分类的问题"
        raise ValidationError(msg)
    code = str(category_code or "").strip()
    if not code:
        msg = "请选择问题类别"
        raise ValidationError(msg)
    category = session.execute(select(Category).where(Category.code == code)).scalar()
    if category is None:
        msg = f"问题类别 {code!r} 不存在"
        raise ValidationError(msg)
    stmt = access.scope_issues(select(Issue), user).where(Issue.id.in_(ids))
    issues = {i.id: i for i in session.execute(stmt).scalars()}
    missing = [i for i in ids if i not in issues]
    if missing:
        msg = f"问题 #{missing[0]} 不存在"
        raise NotFoundError(msg)
    calendar = calendar or load_calendar(session)
    done, skipped, recomputed = [], [], []
    for issue_id in ids:
        issue = issues[issue_id]
        if not issue.category_pending:
            skipped.append(issue_id)
            continue
        data = {"category": category.code, "text": issue.category_text}
        if _default_deadline(session, issue) and issue.found_at is not None:
            new = calendar.add_workdays(issue.found_at.date(), category.deadline_days)
            if new != issue.deadline:
                data["deadline"] = {"from": issue.deadline.isoformat() if issue.deadline else None,
                                    "to": new.isoformat()}
                issue.deadline = new
                recomputed.append(issue_id)
        issue.category = category
        issue.category_pending = False
        add_event(session, issue, user, "classify", issue.status, issue.status,
                  note=f"分类为 {category.label}", data=data)
        done.append(issue_id)
    session.flush()
    return {"classified": done, "skipped": skipped, "deadlines": recomputed,
            "category": category}
