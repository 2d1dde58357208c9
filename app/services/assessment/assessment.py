"""Monthly assessment (月度考核): scores, ranking, red and black lists, publishing, appeals.

Definitions, for a month M and a group G (a 责任单位, or a sub-district / community when
``scope`` says so). "End of M" is the first instant of the next month, or *now* while M is
still running (``as_of``). Problems marked 不予立案 (rejected) or 重复 (duplicate) are never
counted. A problem belongs to the unit it is routed to (``Issue.unit_id``) and to the
sub-district / community of its cell; problems with neither are not attributed.

received (受理问题数)
    problems of G found in M (``found_at`` in M).
closed (已销号)
    of those, closed before the end of M; ``closed_rate`` = closed / received (结案率).
due (应销号)
    problems of G, found in any month, whose deadline falls in M. This is the base of
    the on-time rate: a problem found on the 28th with a 5-working-day deadline is judged
    in the month it falls due, not the month it was found.
closed_on_time (按期销号)
    due problems closed before the end of M with ``closed_at`` date <= deadline.
on_time_rate (按期销号率)
    closed_on_time / due; 100% when nothing fell due.
rework_rate (返工率)
    problems of G with a 核查未通过 (verify_fail) event in M / problems of G that were
    submitted for checking or sent back in M; 0 when nothing was checked.
    ``rework_events`` counts every verify_fail event in M (one problem can fail twice).
recurrence_rate (反弹率)
    received problems that are recurrences (``recurrence_of_id`` set: same category within
    50 m of a problem closed in the last 60 days) / received; 0 when nothing received.
overdue_open (超期未销号)
    problems of G found before the end of M, still open at the end of M (not closed, or
    closed only later), whose deadline had passed (deadline < the end date).
deductions (扣分), with the weights of the formula (Setting ``assessment_formula``)
    problem_weight x sum of category points of received problems
    + overdue_points x overdue_open + rework_points x rework_events
    + recurrence_points x recurrences + on_time_weight x (1 - on_time_rate).
score (得分)
    max(floor, base - deductions), rounded to 2 decimals. Groups with no problems score
    the base (100) and are ranked too.
rank (名次)
    by score (high first), ties broken by on-time rate (high first), then fewer overdue
    problems, then name: every group has its own rank.
red / black list (红榜 / 黑榜), Setting ``assessment_lists``
    black: the bottom ``black_bottom`` groups whose score is below ``black_max_score``;
    red: the top ``red_top`` of the others whose score is at least ``red_min_score`` and
    that had at least ``red_min_received`` problems received or due in M.
约谈 (interview)
    a group on the black list ``interview_after`` months running (default 2).
movement (名次变化)
    previous month's rank minus this month's (positive: moved up); the previous month is
    its published snapshot when there is one, else a live computation.

Publishing freezes a snapshot (``Assessment.data``); later edits to problems never change
it. Publishing the same month and scope again is refused, unless an admin republishes
with a reason: the old snapshot is kept in the new one's ``revisions`` and in the audit
log. Appeals (申诉) are attached per unit to a published month and resolved by an admin.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models import (
    Assessment,
    AssessmentAppeal,
    AuditLog,
    Category,
    Cell,
    Feature,
    Issue,
    IssueEvent,
    Layer,
    Setting,
    Unit,
    User,
    Zone,
    now_local,
)
from app.services.core import access
from app.services.core.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from app.services.grids.cells import active_grid

SCOPES = {"unit": "责任单位", "subdistrict": "街道(乡镇)", "community": "社区"}
EXCLUDED_STATUSES = ("rejected", "duplicate")
FORMULA_KEY = "assessment_formula"
LISTS_KEY = "assessment_lists"

DEFAULT_FORMULA: dict[str, float] = {
    "base": 100.0,
    "problem_weight": 1.0,
    "overdue_points": 2.0,
    "rework_points": 1.0,
    "recurrence_points": 2.0,
    "on_time_weight": 10.0,
    "floor": 0.0,
}
FORMULA_LABELS = {
    "base": "基础分",
    "problem_weight": "问题扣分系数 (× 类别分值)",
    "overdue_points": "每个超期未销号问题扣分",
    "rework_points": "每次核查退回返工扣分",
    "recurrence_points": "每个反弹问题扣分",
    "on_time_weight": "按期销号率权重 (× 未按期比例)",
    "floor": "最低分",
}
DEFAULT_LISTS: dict[str, float] = {
    "red_top": 3,
    "red_min_score": 90.0,
    "black_bottom": 3,
    "black_max_score": 100.0,
    "interview_after": 2,
    "red_min_received": 1,
}
LISTS_LABELS = {
    "red_top": "红榜名额 (前 N 名)",
    "red_min_score": "上红榜最低得分",
    "black_bottom": "黑榜名额 (后 N 名)",
    "black_max_score": "上黑榜须低于得分",
    "interview_after": "连续上黑榜几个月约谈",
    "red_min_received": "上红榜至少应有问题数 (受理或到期)",
}
_INT_LIST_KEYS = ("red_top", "black_bottom", "interview_after", "red_min_received")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


# ---- months ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """One assessment month: [start, end) and the instant the figures are taken at."""

    month: str
    start: datetime
    end: datetime
    as_of: datetime

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()

    @property
    def cut_date(self) -> date:
        """A deadline before this date has passed by ``as_of``."""
        return self.end.date() if self.as_of >= self.end else self.as_of.date()

    @property
    def complete(self) -> bool:
        return self.as_of >= self.end


def parse_month(text: str | None) -> tuple[int, int]:
    """Parse "YYYY-MM" or raise a ValidationError naming the value."""
    match = _MONTH_RE.match((text or "").strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        msg = f"月份格式应为 YYYY-MM (如 2026-11)，收到 {text!r}"
        raise ValidationError(msg)
    return int(match.group(1)), int(match.group(2))


def month_period(month: str, *, now: datetime | None = None) -> Period:
    """The period of a month; a month that has not started yet is refused."""
    year, mon = parse_month(month)
    start = datetime(year, mon, 1)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1)
    now = now or now_local()
    if start > now:
        msg = f"{month} 尚未开始，无法考核"
        raise ValidationError(msg)
    return Period(month=f"{year:04d}-{mon:02d}", start=start, end=end, as_of=min(end, now))


def shift_month(month: str, delta: int) -> str:
    year, mon = parse_month(month)
    index = year * 12 + mon - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def default_month(now: datetime | None = None) -> str:
    """The month a 通报 is usually about: the last complete month."""
    now = now or now_local()
    return shift_month(f"{now.year:04d}-{now.month:02d}", -1)


def campaign_months(session, *, until: str) -> list[str]:
    """Months from the first recorded problem up to ``until`` (at most 24)."""
    first = session.execute(select(Issue.found_at).order_by(Issue.found_at).limit(1)).scalar()
    if first is None:
        return [until]
    months = []
    month = f"{first.year:04d}-{first.month:02d}"
    while month <= until and len(months) < 240:
        months.append(month)
        month = shift_month(month, 1)
    return months[-24:]


# ---- settings --------------------------------------------------------------------------


def _setting(session, key: str) -> dict:
    row = session.get(Setting, key)
    return dict(row.value) if row is not None and isinstance(row.value, dict) else {}


def get_formula(session) -> dict[str, float]:
    return {
        **DEFAULT_FORMULA,
        **{k: float(v) for k, v in _setting(session, FORMULA_KEY).items() if k in DEFAULT_FORMULA},
    }


def get_lists_rule(session) -> dict:
    rule = {
        **DEFAULT_LISTS,
        **{k: v for k, v in _setting(session, LISTS_KEY).items() if k in DEFAULT_LISTS},
    }
    for key in _INT_LIST_KEYS:
        rule[key] = int(rule[key])
    return rule


def _number(
    raw, label: str, *, integer: bool = False, low: float = 0.0, high: float = 1000.0
) -> float:
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        msg = f"{label}: {raw!r} 不是数字"
        raise ValidationError(msg) from None
    if value != value or not low <= value <= high:
        msg = f"{label}: {raw!r} 应在 {low:g} 到 {high:g} 之间"
        raise ValidationError(msg)
    if integer and value != int(value):
        msg = f"{label}: {raw!r} 应为整数"
        raise ValidationError(msg)
    return int(value) if integer else value


def _store_setting(session, user: User, key: str, value: dict, action: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
    session.add(
        AuditLog(
            user_id=user.id if user else None,
            action=action,
            detail=json.dumps(value, ensure_ascii=False),
        )
    )
    session.flush()


def save_formula(session, user: User, values: dict) -> dict[str, float]:
    """Validate and store the scoring weights (admin); only future computations change."""
    access.require(user, "publish")
    formula = {
        key: _number(values.get(key, DEFAULT_FORMULA[key]), FORMULA_LABELS[key])
        for key in DEFAULT_FORMULA
    }
    if formula["base"] <= 0:
        msg = f"{FORMULA_LABELS['base']}: 应大于 0"
        raise ValidationError(msg)
    if formula["floor"] >= formula["base"]:
        msg = f"{FORMULA_LABELS['floor']}: {formula['floor']:g} 应小于基础分 {formula['base']:g}"
        raise ValidationError(msg)
    _store_setting(session, user, FORMULA_KEY, formula, "assessment_formula")
    return formula


def save_lists_rule(session, user: User, values: dict) -> dict:
    """Validate and store the red/black list rule (admin)."""
    access.require(user, "publish")
    rule = {}
    for key, default in DEFAULT_LISTS.items():
        integer = key in _INT_LIST_KEYS
        rule[key] = _number(
            values.get(key, default),
            LISTS_LABELS[key],
            integer=integer,
            high=100 if integer else 1000,
        )
    if rule["interview_after"] < 1:
        msg = f"{LISTS_LABELS['interview_after']}: 至少为 1"
        raise ValidationError(msg)
    _store_setting(session, user, LISTS_KEY, rule, "assessment_lists")
    return rule


def county_name(session) -> str:
    value = _setting(session, "county")
    return str(value.get("county_name") or value.get("name") or "本县")


# ---- groups ----------------------------------------------------------------------------


def _area_names(session, kind: str) -> dict[str, str]:
    """Names of sub-districts ("001") or communities ("001-002") from the active layer."""
    layer_id = (
        session.execute(
            select(Layer.id)
            .where(Layer.kind == kind, Layer.active.is_(True))
            .order_by(Layer.id.desc())
        )
        .scalars()
        .first()
    )
    if layer_id is None:
        return {}
    names = {}
    for name, code, props in session.execute(
        select(Feature.name, Feature.code, Feature.props).where(Feature.layer_id == layer_id)
    ):
        props = props or {}
        code = str(code or props.get("code") or "")
        if not code:
            continue
        if kind == "communities":
            code = f"{props.get('subdistrict_code') or '000'}-{code}"
        names[code] = name or code
    return names


def _groups(session, scope: str) -> dict:
    """Every group to rank, key -> name (those with no problems are ranked too).

    Sub-districts and communities come from the active grid's zones (Zone rows), so
    their names are the ones the grid was coded with. Provisional zones (片区) are not
    ranked as communities: a 片区 is a stand-in for an unmapped community with no
    居委会 to hold to account, and a red or black list naming one would name nobody. Its
    problems still count for its sub-district and for the unit that answers for its cells
    (the sub-district office that holds them, 属地兜底). No group is ever coded 000.
    """
    if scope == "unit":
        rows = session.execute(select(Unit.id, Unit.name, Unit.active)).all()
        return {uid: name for uid, name, active in rows if active}
    grid = active_grid(session)
    if grid is None:
        return {}
    zones = session.execute(
        select(Zone.subdistrict_code, Zone.community_code, Zone.name, Zone.subdistrict_name,
               Zone.provisional).where(Zone.grid_id == grid.id)
    ).all()
    if zones:
        return _zone_groups(session, scope, zones)
    # A grid stored before zones were recorded: the layers name its codes; a code no
    # layer names (a 000 slot of an old grid) is not a unit and is not ranked.
    codes = set(
        session.execute(
            select(Cell.subdistrict_code, Cell.community_code)
            .where(Cell.grid_id == grid.id)
            .distinct()
        ).all()
    )
    subs = _area_names(session, "subdistricts")
    if scope == "subdistrict":
        return {sub: subs[sub] for sub, _ in codes if sub in subs and sub != "000"}
    names = _area_names(session, "communities")
    result = {}
    for sub, com in codes:
        key = f"{sub}-{com}"
        if key not in names or "000" in (sub, com):
            continue
        name = names[key]
        result[key] = (
            f"{subs[sub]}{name}" if sub in subs and not name.startswith(subs[sub]) else name
        )
    return result


def _zone_groups(session, scope: str, zones) -> dict:
    subs: dict[str, str] = {}
    for z in zones:
        if z.subdistrict_code != "000" and z.subdistrict_name:
            subs.setdefault(z.subdistrict_code, z.subdistrict_name)
    layer_subs = _area_names(session, "subdistricts")
    for z in zones:
        if z.subdistrict_code != "000" and z.subdistrict_code not in subs:
            # An imported grid's real code with no name anywhere: say its code.
            subs[z.subdistrict_code] = layer_subs.get(
                z.subdistrict_code, f"街道(乡镇) {z.subdistrict_code}"
            )
    if scope == "subdistrict":
        return subs
    result = {}
    for z in zones:
        if z.provisional or "000" in (z.subdistrict_code, z.community_code):
            continue
        sub = subs.get(z.subdistrict_code, "")
        name = z.name
        result[f"{z.subdistrict_code}-{z.community_code}"] = (
            f"{sub}{name}" if sub and not name.startswith(sub) else name
        )
    return result


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        msg = f"考核范围 {scope!r} 无效 (可选: {', '.join(SCOPES)})"
        raise ValidationError(msg)
    return scope


# ---- computation -----------------------------------------------------------------------


def _load(session, period: Period, scope: str):
    """Issues known at ``as_of`` with their group key, and this month's check events."""
    stmt = (
        select(
            Issue.id,
            Issue.unit_id,
            Cell.subdistrict_code,
            Cell.community_code,
            Issue.found_at,
            Issue.deadline,
            Issue.closed_at,
            Issue.recurrence_of_id,
            Category.points,
            Category.code,
            Category.parent_code,
            Category.level,
        )
        .outerjoin(Cell, Cell.id == Issue.cell_id)
        .outerjoin(Category, Category.id == Issue.category_id)
        .where(Issue.found_at < period.as_of, Issue.status.not_in(EXCLUDED_STATUSES))
    )
    issues = {}
    for row in session.execute(stmt):
        if scope == "unit":
            key = row.unit_id
        elif scope == "subdistrict":
            key = row.subdistrict_code
        else:
            key = f"{row.subdistrict_code}-{row.community_code}" if row.subdistrict_code else None
        if key is None:
            continue
        level1 = (row.code if row.level == 1 else row.parent_code) if row.code else None
        issues[row.id] = {
            "key": key,
            "found_at": row.found_at,
            "deadline": row.deadline,
            "closed_at": row.closed_at,
            "recurrence": row.recurrence_of_id,
            "points": float(row.points if row.points is not None else 1.0),
            "level1": level1,
        }
    events = session.execute(
        select(IssueEvent.issue_id, IssueEvent.action).where(
            IssueEvent.at >= period.start,
            IssueEvent.at < period.as_of,
            IssueEvent.action.in_(("submit", "verify_fail")),
        )
    ).all()
    return issues, events


def _rate(numerator: int, denominator: int, empty: float) -> float:
    return round(numerator / denominator, 4) if denominator else empty


def _score_rows(issues: dict, events, groups: dict, period: Period, formula: dict) -> list[dict]:
    stats = {key: defaultdict(float) for key in groups}
    submitted: dict = defaultdict(set)
    reworked: dict = defaultdict(set)
    for issue_id, action in events:
        info = issues.get(issue_id)
        if info is None or info["key"] not in stats:
            continue
        key = info["key"]
        submitted[key].add(issue_id)
        if action == "verify_fail":
            reworked[key].add(issue_id)
            stats[key]["rework_events"] += 1
    for info in issues.values():
        s = stats.get(info["key"])
        if s is None:
            continue
        closed_by_end = info["closed_at"] is not None and info["closed_at"] < period.as_of
        if info["found_at"] >= period.start:
            s["received"] += 1
            s["points"] += info["points"]
            s["closed"] += closed_by_end
            s["recurrences"] += info["recurrence"] is not None
        deadline = info["deadline"]
        if deadline is not None and period.start.date() <= deadline <= period.last_day:
            s["due"] += 1
            s["closed_on_time"] += closed_by_end and info["closed_at"].date() <= deadline
        if deadline is not None and not closed_by_end and deadline < period.cut_date:
            s["overdue_open"] += 1
    rows = []
    for key, name in groups.items():
        s = stats[key]
        received, due = int(s["received"]), int(s["due"])
        checked = len(submitted[key])
        on_time_rate = _rate(int(s["closed_on_time"]), due, 1.0)
        detail = {
            "problems": formula["problem_weight"] * s["points"],
            "overdue": formula["overdue_points"] * s["overdue_open"],
            "rework": formula["rework_points"] * s["rework_events"],
            "recurrence": formula["recurrence_points"] * s["recurrences"],
            "on_time": formula["on_time_weight"] * (1 - on_time_rate),
        }
        total = sum(detail.values())
        rows.append(
            {
                "unit": name,
                "key": key,
                "score": round(max(formula["floor"], formula["base"] - total), 2),
                "received": received,
                "closed": int(s["closed"]),
                "closed_rate": _rate(int(s["closed"]), received, 1.0),
                "due": due,
                "closed_on_time": int(s["closed_on_time"]),
                "on_time_rate": on_time_rate,
                "checked": checked,
                "reworked": len(reworked[key]),
                "rework_events": int(s["rework_events"]),
                "rework_rate": _rate(len(reworked[key]), checked, 0.0),
                "recurrences": int(s["recurrences"]),
                "recurrence_rate": _rate(int(s["recurrences"]), received, 0.0),
                "overdue_open": int(s["overdue_open"]),
                "deductions": round(total, 2),
                "deduction_detail": {k: round(v, 2) for k, v in detail.items()},
            }
        )
    rows.sort(key=lambda r: (-r["score"], -r["on_time_rate"], r["overdue_open"], r["unit"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def _apply_lists(rows: list[dict], rule: dict) -> tuple[list[str], list[str]]:
    n = len(rows)
    black = [r for r in reversed(rows) if r["score"] < rule["black_max_score"]]
    black = black[: min(rule["black_bottom"], n)]
    black_keys = {id(r) for r in black}
    # A unit with nothing to handle has earned no praise: the red list needs some work done.
    red = [
        r
        for r in rows
        if id(r) not in black_keys
        and r["score"] >= rule["red_min_score"]
        and r["received"] + r["due"] >= rule["red_min_received"]
    ]
    red = red[: min(rule["red_top"], n - len(black))]
    red_keys = {id(r) for r in red}
    for row in rows:
        row["list"] = "black" if id(row) in black_keys else "red" if id(row) in red_keys else None
    return [r["unit"] for r in red], [r["unit"] for r in sorted(black, key=lambda r: r["rank"])]


def _category_deductions(
    session, issues: dict, groups: dict, period: Period, formula: dict
) -> list[dict]:
    names = dict(
        session.execute(select(Category.code, Category.name).where(Category.level == 1)).all()
    )
    table: dict = {}
    for info in issues.values():
        if info["found_at"] < period.start or info["key"] not in groups:
            continue
        code = info["level1"] or "--"
        entry = table.setdefault(
            code,
            {
                "code": code,
                "name": names.get(code, "未分类"),
                "count": 0,
                "points": 0.0,
                "by_group": defaultdict(float),
            },
        )
        points = formula["problem_weight"] * info["points"]
        entry["count"] += 1
        entry["points"] += points
        entry["by_group"][groups[info["key"]]] += points
    result = []
    for code in sorted(table):
        entry = table[code]
        top = sorted(entry["by_group"].items(), key=lambda kv: (-kv[1], kv[0]))
        result.append(
            {
                "code": code,
                "name": entry["name"],
                "count": entry["count"],
                "points": round(entry["points"], 2),
                "by_group": [{"unit": u, "points": round(p, 2)} for u, p in top],
            }
        )
    return result


def _core(session, month: str, scope: str, *, now: datetime | None = None) -> dict:
    """The month's figures without comparison to earlier months."""
    period = month_period(month, now=now)
    formula, rule = get_formula(session), get_lists_rule(session)
    groups = _groups(session, scope)
    issues, events = _load(session, period, scope)
    rows = _score_rows(issues, events, groups, period, formula)
    red, black = _apply_lists(rows, rule)
    return {
        "month": period.month,
        "scope": scope,
        "scope_label": SCOPES[scope],
        "period": {
            "start": period.start.date().isoformat(),
            "end": period.last_day.isoformat(),
            "as_of": period.as_of.isoformat(timespec="minutes"),
            "complete": period.complete,
        },
        "formula": formula,
        "lists_rule": rule,
        "ranking": rows,
        "red_list": red,
        "black_list": black,
        "category_deductions": _category_deductions(session, issues, groups, period, formula),
    }


def _previous(session, month: str, scope: str, now: datetime | None) -> dict | None:
    """A previous month's ranking: its published snapshot, else a live computation."""
    snap = _published(session, month, scope)
    if snap is not None:
        return snap.data
    try:
        return _core(session, month, scope, now=now)
    except ValidationError:
        return None


def compute_month(session, month: str, scope: str = "unit", *, now: datetime | None = None) -> dict:
    """Compute a month live: ranking, lists, movement against last month and 约谈 flags."""
    _check_scope(scope)
    data = _core(session, month, scope, now=now)
    rule = data["lists_rule"]
    prev = _previous(session, shift_month(data["month"], -1), scope, now)
    prev_rank = {r["unit"]: r["rank"] for r in prev["ranking"]} if prev else {}
    # Black-list history back as far as the 约谈 rule needs.
    black_history = [set(data["black_list"])]
    if prev is not None:
        black_history.append(set(prev["black_list"]))
    for back in range(2, rule["interview_after"]):
        earlier = _previous(session, shift_month(data["month"], -back), scope, now)
        black_history.append(set(earlier["black_list"]) if earlier else set())
    interviews = []
    for row in data["ranking"]:
        before = prev_rank.get(row["unit"])
        row["prev_rank"] = before
        row["movement"] = None if before is None else before - row["rank"]
        months_black = 0
        for names in black_history:
            if row["unit"] not in names:
                break
            months_black += 1
        row["black_months"] = months_black
        row["interview"] = months_black >= rule["interview_after"]
        if row["interview"]:
            interviews.append(row["unit"])
    data["interviews"] = interviews
    data["computed_at"] = now_local().isoformat(timespec="seconds")
    return data


# ---- publishing and reports ------------------------------------------------------------


def _published(session, month: str, scope: str) -> Assessment | None:
    return session.execute(
        select(Assessment).where(Assessment.month == month, Assessment.scope == scope)
    ).scalar_one_or_none()


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
    _check_scope(scope)
    period = month_period(month, now=now)
    existing = _published(session, period.month, scope)
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
    session.add(AuditLog(user_id=actor, action=action, detail=detail))
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
    _check_scope(scope)
    period = month_period(month)
    snap = _published(session, period.month, scope)
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
    data["title"] = f"{data['county']}创建国家卫生县城工作{_month_cn(period.month)}考核通报"
    return data


def _month_cn(month: str) -> str:
    year, mon = parse_month(month)
    return f"{year}年{mon}月"


def month_label(month: str) -> str:
    return _month_cn(month)


def trend(session, month: str, scope: str = "unit", *, months: int = 6) -> dict:
    """Scores per group and received problems per level-1 category over recent months."""
    access_months = [m for m in campaign_months(session, until=month)][-months:]
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    categories: dict[str, dict[str, int]] = defaultdict(dict)
    for m in access_months:
        snap = _published(session, m, scope)
        data = snap.data if snap is not None else _core(session, m, scope)
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


# ---- appeals ---------------------------------------------------------------------------


def list_appeals(session, user: User, assessment: Assessment) -> list[dict]:
    """Appeals of a published month: admins, leaders and inspectors see all, a unit head theirs."""
    stmt = select(AssessmentAppeal).where(AssessmentAppeal.assessment_id == assessment.id)
    if access.is_unit_scoped(user):
        stmt = stmt.where(AssessmentAppeal.unit_id == (user.unit_id or -1))
    return [
        {
            "id": a.id,
            "unit": a.unit.name,
            "unit_id": a.unit_id,
            "note": a.note,
            "created_at": a.created_at.strftime("%Y-%m-%d %H:%M"),
            "resolved": a.resolved_at is not None,
            "resolution": a.resolution,
            "resolved_at": a.resolved_at.strftime("%Y-%m-%d %H:%M") if a.resolved_at else None,
        }
        for a in session.execute(stmt.order_by(AssessmentAppeal.id)).scalars()
    ]


def attach_appeal(session, user: User, month: str, note: str) -> AssessmentAppeal:
    """A unit head objects to their own row of a published month (one open appeal at a time)."""
    if user.role != "unit_head" or user.unit_id is None:
        msg = "只有责任单位可以对本单位的考核结果提出申诉"
        raise ForbiddenError(msg)
    period = month_period(month)
    snap = _published(session, period.month, "unit")
    if snap is None:
        msg = f"{period.month} 的考核尚未发布，发布后才能申诉"
        raise ConflictError(msg)
    note = (note or "").strip()
    if not note:
        msg = "申诉理由 不能为空"
        raise ValidationError(msg)
    if len(note) > 2000:
        msg = "申诉理由 过长 (超过 2000 字)"
        raise ValidationError(msg)
    unit = session.get(Unit, user.unit_id)
    if not any(r["unit"] == unit.name for r in snap.data.get("ranking", [])):
        msg = f"{period.month} 的考核中没有 {unit.name}"
        raise NotFoundError(msg)
    pending = session.execute(
        select(AssessmentAppeal.id).where(
            AssessmentAppeal.assessment_id == snap.id,
            AssessmentAppeal.unit_id == unit.id,
            AssessmentAppeal.resolved_at.is_(None),
        )
    ).scalar()
    if pending:
        msg = f"{unit.name} 对 {period.month} 的申诉尚在处理中，请等待答复"
        raise ConflictError(msg)
    appeal = AssessmentAppeal(
        assessment_id=snap.id, unit_id=unit.id, note=note, created_by_id=user.id
    )
    session.add(appeal)
    session.add(
        AuditLog(
            user_id=user.id,
            action="assessment_appeal",
            detail=f"{period.month} {unit.name}: {note[:200]}",
        )
    )
    session.flush()
    return appeal


def resolve_appeal(session, user: User, appeal_id: int, resolution: str) -> AssessmentAppeal:
    """An admin answers an appeal; the published figures stay (republish to correct them)."""
    access.require(user, "publish")
    appeal = session.get(AssessmentAppeal, appeal_id)
    if appeal is None:
        msg = f"申诉 {appeal_id} 不存在"
        raise NotFoundError(msg)
    if appeal.resolved_at is not None:
        msg = f"申诉 {appeal_id} 已于 {appeal.resolved_at:%Y-%m-%d %H:%M} 答复"
        raise ConflictError(msg)
    resolution = (resolution or "").strip()
    if not resolution:
        msg = "答复意见 不能为空"
        raise ValidationError(msg)
    appeal.resolution = resolution
    appeal.resolved_at = now_local()
    appeal.resolved_by_id = user.id
    session.add(
        AuditLog(
            user_id=user.id,
            action="assessment_appeal_resolved",
            detail=f"{appeal_id}: {resolution[:200]}",
        )
    )
    session.flush()
    return appeal


# ---- map -------------------------------------------------------------------------------


def month_density(session, user: User, month: str) -> tuple[dict, tuple | None]:
    """Cells the user may see with the number of problems found in the month (``open`` key)."""
    from sqlalchemy import func

    period = month_period(month)
    grid = active_grid(session)
    if grid is None:
        return {"type": "FeatureCollection", "features": []}, None
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
    stmt = access.scope_cells(
        select(Cell.id, Cell.code, Unit.name, Cell.geom, Cell.minx, Cell.miny, Cell.maxx, Cell.maxy)
        .outerjoin(Unit, Unit.id == Cell.unit_id)
        .where(Cell.grid_id == grid.id),
        user,
    )
    features, bounds = [], [180.0, 90.0, -180.0, -90.0]
    for cell_id, code, unit, geom, minx, miny, maxx, maxy in session.execute(stmt):
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(geom),
                "properties": {
                    "code": code,
                    "unit": unit or "未分配",
                    "open": int(counts.get(cell_id, 0)),
                },
            }
        )
        bounds = [
            min(bounds[0], minx),
            min(bounds[1], miny),
            max(bounds[2], maxx),
            max(bounds[3], maxy),
        ]
    return {"type": "FeatureCollection", "features": features}, (
        tuple(bounds) if features else None
    )


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


def save_settings(session, user: User, values) -> tuple[dict, dict]:
    """Save the formula and the list rule together (one form, one transaction)."""
    return save_formula(session, user, values), save_lists_rule(session, user, values)
