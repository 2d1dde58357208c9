"""Publishing a month's assessment and reading its reports: snapshot, trend, page, map.

Publishing freezes a snapshot (``Assessment.data``); later edits to problems never change
it. Publishing the same month and scope again is refused, unless an admin republishes
with a reason: the old snapshot is kept in the new one's ``revisions`` and in the audit
log. A report is the published snapshot when there is one, else a live computation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.models import Assessment, Issue, IssueEvent, Unit, User, now_local
from app.services.assessment.appeals import list_appeals
from app.services.assessment.months import (
    campaign_months,
    default_month,
    month_label,
    month_period,
)
from app.services.assessment.rules import county_name, get_formula, get_lists_rule
from app.services.assessment.scoring import (
    EXCLUDED_STATUSES,
    SCOPES,
    check_scope,
    compute_month,
    month_figures,
    published_snapshot,
)
from app.services.core import access, audit
from app.services.core.errors import ConflictError
from app.services.grids.map_data import cells_fc


def publish_month(
    session,
    user: User | None,
    month: str,
    *,
    scope: str = "unit",
    reason: str | None = None,
    now: datetime | None = None,
) -> Assessment:
    """Freeze a month's figures; a second publish needs an admin and a reason (republish).

    ``user`` None is the command line (the operator of the server). A republish keeps every
    earlier snapshot in ``data["revisions"]`` and writes an audit-log entry.
    """
    if user is not None:
        access.require(user, "publish")
    check_scope(scope)
    period = month_period(month, now=now)
    existing = published_snapshot(session, period.month, scope)
    reason = (reason or "").strip()
    if existing is not None and not reason:
        at = existing.published_at.strftime("%Y-%m-%d %H:%M")
        msg = (
            f"{period.month} 的{SCOPES[scope]}考核已于 {at} 发布，不能重复发布；"
            f"如需更正请由管理员填写原因后重新发布"
        )
        raise ConflictError(msg)
    data = compute_month(session, period.month, scope, now=now)
    data["published_by"] = (user.display_name or user.username) if user else "命令行"
    actor = user.id if user else None
    if existing is None:
        assessment = Assessment(
            month=period.month, scope=scope, data=data, published_by_id=actor, published_at=now_local()
        )
        session.add(assessment)
        action, detail = "assessment_publish", f"{period.month} {scope}"
    else:
        old = dict(existing.data)
        revisions = list(old.pop("revisions", []))
        revisions.append(
            {
                "published_at": existing.published_at.isoformat(timespec="seconds"),
                "superseded_at": now_local().isoformat(timespec="seconds"),
                "reason": reason,
                "data": old,
            }
        )
        data["revisions"] = revisions
        data["republish_reason"] = reason
        existing.data = data
        existing.published_at = now_local()
        existing.published_by_id = actor
        assessment = existing
        action = "assessment_republish"
        detail = json.dumps(
            {"month": period.month, "scope": scope, "reason": reason, "previous": old},
            ensure_ascii=False,
        )
    audit.record(session, user, action, detail)
    session.flush()
    return assessment


def publish_all(session, user: User, month: str, *, reason: str | None = None) -> list:
    """Publish the unit ranking and the sub-district and community tables together."""
    return [publish_month(session, user, month, scope=scope, reason=reason) for scope in SCOPES]


def get_report(session, user: User, month: str, scope: str = "unit") -> dict:
    """The published snapshot if there is one, else a live computation marked 未发布.

    Everyone who may read sees the whole ranking (it is published within the county);
    problem details stay behind the access rule (see ``month_issues``).
    """
    access.require(user, "read")
    data = load_report(session, month, scope)
    snap = session.get(Assessment, data["assessment_id"]) if data["published"] else None
    data["appeals"] = list_appeals(session, user, snap) if snap is not None else []
    return data


def load_report(session, month: str, scope: str = "unit") -> dict:
    """Snapshot-or-live figures for trusted callers (the command line); no access check."""
    check_scope(scope)
    period = month_period(month)
    snap = published_snapshot(session, period.month, scope)
    if snap is not None:
        data = dict(snap.data)
        data.update(
            published=True,
            status_label="已发布",
            assessment_id=snap.id,
            published_at=snap.published_at.isoformat(timespec="minutes"),
        )
    else:
        data = compute_month(session, period.month, scope)
        data.update(published=False, status_label="未发布", assessment_id=None, published_at=None)
    data["county"] = county_name(session)
    data["title"] = f"{data['county']}创建国家卫生县城工作{month_label(period.month)}考核通报"
    return data


def trend(session, month: str, scope: str = "unit", *, months: int = 6) -> dict:
    """Scores per group and received problems per level-1 category over recent months."""
    access_months = [m for m in campaign_months(session, until=month)][-months:]
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    categories: dict[str, dict[str, int]] = defaultdict(dict)
    for m in access_months:
        snap = published_snapshot(session, m, scope)
        data = snap.data if snap is not None else month_figures(session, m, scope)
        for row in data["ranking"]:
            scores[row["unit"]][m] = row["score"]
        for cat in data["category_deductions"]:
            categories[f"{cat['code']} {cat['name']}"][m] = cat["count"]
    return {"months": access_months, "scores": dict(scores), "categories": dict(categories)}


def month_issues(session, user: User, month: str, unit_id: int) -> tuple[Unit, list[Issue]]:
    """The problems behind one unit's row (received, due or overdue), through the access rule."""
    unit = access.get_unit(session, user, unit_id)
    period = month_period(month)
    stmt = access.scope_issues(
        select(Issue).where(
            Issue.unit_id == unit.id,
            Issue.found_at < period.as_of,
            Issue.status.not_in(EXCLUDED_STATUSES),
        ),
        user,
    )
    # Each row shows who filed it and as what source (上报人, 来源): the first event's user.
    stmt = stmt.options(selectinload(Issue.events).selectinload(IssueEvent.user))
    rows = []
    for issue in session.execute(stmt.order_by(Issue.found_at)).scalars():
        received = issue.found_at >= period.start
        due = (
            issue.deadline is not None and period.start.date() <= issue.deadline <= period.last_day
        )
        open_at_end = issue.closed_at is None or issue.closed_at >= period.as_of
        overdue = issue.deadline is not None and open_at_end and issue.deadline < period.cut_date
        if received or due or overdue:
            rows.append(issue)
    return unit, rows


# ---- the monthly page and its map ------------------------------------------------------


def month_density(session, user: User, month: str) -> tuple[dict, tuple | None]:
    """Cells the user may see with the number of problems found in the month (``open`` key)."""
    period = month_period(month)
    counts = dict(
        session.execute(
            access.scope_issues(
                select(Issue.cell_id, func.count()).where(
                    Issue.cell_id.is_not(None),
                    Issue.found_at >= period.start,
                    Issue.found_at < period.as_of,
                    Issue.status.not_in(EXCLUDED_STATUSES),
                ),
                user,
            ).group_by(Issue.cell_id)
        ).all()
    )
    return cells_fc(session, user, counts=counts)


def monthly_page(session, user: User, month: str | None, scope: str = "unit") -> dict:
    """Everything the monthly report page shows: the report, trends and the month's map."""
    month = month or default_month()
    report = get_report(session, user, month, scope)
    cells, bounds = month_density(session, user, report["month"])
    published = set(
        session.execute(select(Assessment.month).where(Assessment.scope == "unit")).scalars()
    )
    return {
        "report": report,
        "trend": trend(session, report["month"], scope),
        "cells": cells,
        "bounds": bounds,
        "months": list(reversed(campaign_months(session, until=f"{now_local():%Y-%m}"))),
        "published_months": published,
        "own_unit": session.get(Unit, user.unit_id).name
        if access.is_unit_scoped(user) and user.unit_id
        else None,
        "unit_ids": dict(session.execute(select(Unit.name, Unit.id)).all())
        if scope == "unit"
        else {},
        "may_publish": access.may(user, "publish"),
        "formula_now": get_formula(session),
        "lists_now": get_lists_rule(session),
    }

