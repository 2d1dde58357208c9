"""Scoring a month (月度考核): the groups ranked, their figures, score, rank and lists.

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

The formula and list rule are in ``rules``; publishing and reports in ``publish``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from app.models import (
    Assessment,
    Category,
    Cell,
    Feature,
    Issue,
    IssueEvent,
    Layer,
    Unit,
    Zone,
    now_local,
)
from app.services.assessment.months import Period, month_period, shift_month
from app.services.assessment.rules import get_formula, get_lists_rule
from app.services.core.errors import ValidationError
from app.services.grids.cells import active_grid

SCOPES = {"unit": "责任单位", "subdistrict": "街道(乡镇)", "community": "社区"}
# Problems marked 不予立案 or 重复 are never counted (here nor in readiness).
EXCLUDED_STATUSES = ("rejected", "duplicate")


def published_snapshot(session, month: str, scope: str) -> Assessment | None:
    """The published (frozen) figures of a month and scope, if any."""
    return session.execute(
        select(Assessment).where(Assessment.month == month, Assessment.scope == scope)
    ).scalar_one_or_none()


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


def check_scope(scope: str) -> str:
    """Return ``scope`` if it is one of SCOPES, else raise a ValidationError naming it."""
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


def month_figures(session, month: str, scope: str, *, now: datetime | None = None) -> dict:
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
    snap = published_snapshot(session, month, scope)
    if snap is not None:
        return snap.data
    try:
        return month_figures(session, month, scope, now=now)
    except ValidationError:
        return None


def compute_month(session, month: str, scope: str = "unit", *, now: datetime | None = None) -> dict:
    """Compute a month live: ranking, lists, movement against last month and 约谈 flags."""
    check_scope(scope)
    data = month_figures(session, month, scope, now=now)
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
