"""The daily reminders: problems due within one working day, and problems overdue.

Run once a day (``flask --app app send-reminders``, a systemd timer). Every notice has a
key, so running it twice in a day sends nothing new:

- due soon: an open problem whose deadline is today or the next working day (the county's
  WorkCalendar) tells its units once per deadline, key ``due:{issue.id}:{deadline}``;
- overdue: each unit with open problems past their deadline gets ONE notice a day listing
  them, key ``overdue:unit{unit.id}:{today}``; tomorrow's run makes tomorrow's notice.

The day is the county's (``today_local``), whatever the server's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import select

from app.models import OPEN_STATUSES, Issue, IssueUnit, Unit, now_local, today_local
from app.services.core.settings import Settings
from app.services.notify.events import unit_users
from app.services.notify.inbox import notify_users
from app.services.tables.workdays import WorkCalendar, load_calendar

LISTED = 10  # problems named in an overdue notice's body; the link shows them all


def _open_issues(session, *, before: date | None = None, start: date | None = None,
                 end: date | None = None) -> list[Issue]:
    stmt = select(Issue).where(Issue.status.in_(OPEN_STATUSES), Issue.deadline.is_not(None))
    if before is not None:
        stmt = stmt.where(Issue.deadline < before)
    if start is not None:
        stmt = stmt.where(Issue.deadline >= start)
    if end is not None:
        stmt = stmt.where(Issue.deadline <= end)
    return list(session.execute(stmt.order_by(Issue.deadline, Issue.id)).scalars())


def _units_of(session, issues: list[Issue]) -> dict[int, list[int]]:
    """Each problem's lead unit, then its co-units (协办单位), by problem id."""
    units: dict[int, list[int]] = {i.id: [i.unit_id] if i.unit_id else [] for i in issues}
    ids = list(units)
    for start in range(0, len(ids), 500):
        for issue_id, unit_id in session.execute(
                select(IssueUnit.issue_id, IssueUnit.unit_id)
                .where(IssueUnit.issue_id.in_(ids[start:start + 500]))):
            if unit_id not in units[issue_id]:
                units[issue_id].append(unit_id)
    return units


def _when(deadline: date, today: date) -> str:
    days = (deadline - today).days
    return {0: "今天", 1: "明天"}.get(days, f"{deadline.month}月{deadline.day}日")


def send_reminders(session, *, settings: Settings, today: date | None = None,
                   calendar: WorkCalendar | None = None) -> dict:
    """Tell units of their problems due within one working day and of those overdue.

    Parameters
    ----------
    session
        The SQLAlchemy session; the caller commits.
    settings
        The installation's settings (passed on to the outside channels).
    today
        The county's day to remind for; ``today_local()`` by default.
    calendar
        The working-day calendar; the stored one by default.

    Returns
    -------
    dict
        ``{"due_soon": new notices, "overdue": new notices, "today": "YYYY-MM-DD",
        "due_by": "YYYY-MM-DD"}``.
    """
    today = today or today_local()
    calendar = calendar or load_calendar(session)
    due_by = calendar.add_workdays(today, 1)
    now = now_local()
    users: dict[int, list] = {}

    def users_of(unit_id: int) -> list:
        if unit_id not in users:
            users[unit_id] = unit_users(session, unit_id)
        return users[unit_id]

    due = _open_issues(session, start=today, end=due_by)
    due_units = _units_of(session, due)
    due_added = 0
    for issue in due:
        recipients = [u for unit_id in due_units[issue.id] for u in users_of(unit_id)]
        when = _when(issue.deadline, today)
        due_added += notify_users(
            session, recipients, event="due_soon", key=f"due:{issue.id}:{issue.deadline}",
            title=f"问题 #{issue.id} {when}到期",
            body=f"{(issue.description or '')[:80]}\n整改期限 {issue.deadline}，请按期整改并提交核查。",
            url=f"/issues/{issue.id}", issue_id=issue.id, batch_id=issue.batch_id,
            settings=settings, now=now)

    overdue = _open_issues(session, before=today)
    per_unit: dict[int, list[Issue]] = defaultdict(list)
    for issue_id, unit_ids in _units_of(session, overdue).items():
        for unit_id in unit_ids:
            per_unit[unit_id].append(issue_id)
    by_id = {i.id: i for i in overdue}
    names = {} if not per_unit else dict(session.execute(
        select(Unit.id, Unit.name).where(Unit.id.in_(list(per_unit)))).all())
    overdue_added = 0
    for unit_id, issue_ids in sorted(per_unit.items()):
        lines = [f"#{i} {(by_id[i].description or '')[:40]} (期限 {by_id[i].deadline}, "
                 f"超期 {(today - by_id[i].deadline).days} 天)" for i in issue_ids[:LISTED]]
        if len(issue_ids) > LISTED:
            lines.append(f"…等共 {len(issue_ids)} 个")
        overdue_added += notify_users(
            session, users_of(unit_id), event="overdue", key=f"overdue:unit{unit_id}:{today}",
            title=f"超期未整改问题 {len(issue_ids)} 个",
            body=f"{names.get(unit_id, '')}截至 {today} 有 {len(issue_ids)} 个问题已超过整改期限:\n"
                 + "\n".join(lines),
            url=f"/issues/?overdue=1&unit={unit_id}",
            issue_id=issue_ids[0] if len(issue_ids) == 1 else None,
            settings=settings, now=now)
    return {"due_soon": due_added, "overdue": overdue_added, "today": today.isoformat(),
            "due_by": due_by.isoformat()}
