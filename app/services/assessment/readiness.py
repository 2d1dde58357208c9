"""Readiness before the prefecture, province and national evaluations (迎检准备).

The evaluation calendar is an editable Setting (``evaluation_calendar``: level -> ISO date
and optional note). Per level-1 category the page shows how many problems there are, the
share closed, and the open problems that would cost the most points if an evaluator found
them today: cost = category points x open count, overdue problems first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

from sqlalchemy import select

from app.models import OPEN_STATUSES, Category, Issue, Setting, User, today_local
from app.services.assessment.scoring import EXCLUDED_STATUSES
from app.services.core import access, audit
from app.services.core.errors import ValidationError

CALENDAR_KEY = "evaluation_calendar"
LEVELS = ("州级", "省级", "国家级")
LEVEL_NAMES = {"州级": "州级复核 / 交叉检查", "省级": "省级评估 (暗访)", "国家级": "国家级评估"}


def get_calendar(session) -> dict[str, dict]:
    """Level -> {"date": "YYYY-MM-DD" or None, "note": str}."""
    row = session.get(Setting, CALENDAR_KEY)
    stored = row.value if row is not None and isinstance(row.value, dict) else {}
    result = {}
    for level in LEVELS:
        value = stored.get(level)
        if isinstance(value, str):
            value = {"date": value}
        value = value or {}
        result[level] = {"date": value.get("date") or None, "note": value.get("note") or ""}
    return result


def save_calendar(session, user: User, values: dict) -> dict[str, dict]:
    """Store the evaluation dates (admin); an empty date means not yet announced."""
    access.require(user, "publish")
    calendar = {}
    for level in LEVELS:
        raw = (values.get(level) or "").strip()
        note = (values.get(f"{level}_note") or "").strip()[:200]
        if raw:
            try:
                date.fromisoformat(raw)
            except ValueError:
                msg = f"{level}评估日期: {raw!r} 不是有效日期 (格式 YYYY-MM-DD)"
                raise ValidationError(msg) from None
        calendar[level] = {"date": raw or None, "note": note}
    row = session.get(Setting, CALENDAR_KEY)
    if row is None:
        session.add(Setting(key=CALENDAR_KEY, value=calendar))
    else:
        row.value = calendar
    audit.record(session, user, "evaluation_calendar", json.dumps(calendar, ensure_ascii=False))
    session.flush()
    return calendar


def countdown(session, *, today: date | None = None) -> list[dict]:
    """Days left to each evaluation (negative once it has passed; None when no date)."""
    today = today or today_local()
    rows = []
    for level, value in get_calendar(session).items():
        day = date.fromisoformat(value["date"]) if value["date"] else None
        rows.append(
            {
                "level": level,
                "name": LEVEL_NAMES[level],
                "date": value["date"],
                "note": value["note"],
                "days": (day - today).days if day else None,
            }
        )
    return rows


def readiness(session, user: User, *, today: date | None = None, top: int = 15) -> dict:
    """Countdown plus per-category figures over the problems the user may see."""
    access.require(user, "read")
    today = today or today_local()
    cats = {c.code: c for c in session.execute(select(Category)).scalars()}
    stmt = access.scope_issues(select(Issue).where(Issue.status.not_in(EXCLUDED_STATUSES)), user)
    level1: dict[str, dict] = {}
    sub: dict[str, dict] = defaultdict(
        lambda: {"open": 0, "overdue": 0, "cost": 0.0, "overdue_cost": 0.0}
    )
    open_issues = []
    for issue in session.execute(stmt).scalars():
        cat = issue.category
        code1 = (cat.code if cat.level == 1 else cat.parent_code) if cat else "--"
        parent = cats.get(code1)
        entry = level1.setdefault(
            code1,
            {
                "code": code1,
                "name": parent.name if parent else "未分类",
                "total": 0,
                "closed": 0,
                "open": 0,
                "overdue": 0,
                "open_cost": 0.0,
                "subcategories": [],
            },
        )
        entry["total"] += 1
        if issue.status == "closed":
            entry["closed"] += 1
        if issue.status not in OPEN_STATUSES:
            continue
        points = float(cat.points) if cat else 1.0
        overdue = issue.deadline is not None and issue.deadline < today
        entry["open"] += 1
        entry["open_cost"] += points
        entry["overdue"] += overdue
        key = cat.code if cat else "--"
        s = sub[key]
        s.update(code=key, name=cat.name if cat else "未分类", points=points, level1=code1)
        s["open"] += 1
        s["cost"] += points
        s["overdue"] += overdue
        s["overdue_cost"] += points if overdue else 0.0
        open_issues.append(
            {
                "id": issue.id,
                "category": cat.label if cat else "未分类",
                "points": points,
                "description": issue.description,
                "address": issue.address,
                "unit": issue.unit.name if issue.unit else "未分配",
                "status": issue.status_label,
                "deadline": issue.deadline.isoformat() if issue.deadline else None,
                "overdue": overdue,
                "overdue_days": (today - issue.deadline).days if overdue else 0,
            }
        )
    for s in sub.values():
        level1[s["level1"]]["subcategories"].append(s)
    categories = []
    for code in sorted(level1):
        entry = level1[code]
        entry["closed_share"] = (
            round(entry["closed"] / entry["total"], 4) if entry["total"] else None
        )
        entry["open_cost"] = round(entry["open_cost"], 2)
        entry["subcategories"].sort(key=lambda s: (-s["overdue_cost"], -s["cost"], s["code"]))
        categories.append(entry)
    # Overdue first, then the most expensive, then the oldest deadline.
    open_issues.sort(
        key=lambda i: (not i["overdue"], -i["points"], i["deadline"] or "9999", i["id"])
    )
    return {
        "today": today.isoformat(),
        "countdown": countdown(session, today=today),
        "categories": categories,
        "top_open": open_issues[:top],
        "totals": {
            "total": sum(c["total"] for c in categories),
            "closed": sum(c["closed"] for c in categories),
            "open": sum(c["open"] for c in categories),
            "overdue": sum(c["overdue"] for c in categories),
            "open_cost": round(sum(c["open_cost"] for c in categories), 2),
        },
        "scoped": access.is_unit_scoped(user),
    }
