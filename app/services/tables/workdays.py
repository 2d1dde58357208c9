"""Working days after China's official calendar, kept in the database.

``chinese-calendar`` knows a fixed range of years and raises for later ones, so its table
is copied into WorkdayOverride once; an admin adds each new year when the State Council
publishes it. For a year with no table, deadlines fall back to plain weekends and the
caller gets a warning to show.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

from chinese_calendar import constants
from sqlalchemy import func, select

from app.models import CalendarYear, IssueEvent, Setting, User, WorkdayOverride, today_local
from app.services.core.access import require_table_admin
from app.services.core.audit import record
from app.services.core.cache import KeyedCache
from app.services.core.errors import NotFoundError, TableRowsError, ValidationError
from app.services.core.tabular import parse_date, read_named_columns

HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


@dataclass
class WorkCalendar:
    """An in-memory snapshot of the overrides, for fast repeated deadline sums."""

    overrides: dict[date, bool]
    known_years: set[int]
    warnings: set[str] = field(default_factory=set)

    def is_workday(self, day: date) -> bool:
        if day in self.overrides:
            return self.overrides[day]
        if day.year not in self.known_years:
            self.warnings.add(f"{day.year} 年的节假日安排尚未录入，按周末计算工作日")
        return day.weekday() < 5

    def add_workdays(self, start: date, days: int) -> date:
        """The date ``days`` working days after ``start`` (start itself not counted)."""
        current = start
        remaining = max(int(days), 0)
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_workday(current):
                remaining -= 1
        return current

    def workdays_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (negative if before)."""
        if end < start:
            return -self.workdays_between(end, start)
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_workday(current):
                count += 1
        return count


def seed_calendar(session) -> int:
    """Copy chinese-calendar's table into the database (idempotent); return years added."""
    have = {row.year for row in session.execute(select(CalendarYear)).scalars()}
    existing = set(session.execute(select(WorkdayOverride.day)).scalars())
    years: set[int] = set()
    for table, is_workday in ((constants.holidays, False), (constants.workdays, True)):
        for day, name in table.items():
            years.add(day.year)
            if day.year in have or day in existing:
                continue
            label = HOLIDAY_NAMES.get(str(name), str(name))
            session.add(WorkdayOverride(day=day, is_workday=is_workday, name=label))
            existing.add(day)
    added = sorted(years - have)
    for year in added:
        session.add(CalendarYear(year=year, source="chinese-calendar"))
    if added:  # a second run changes nothing, not even the cache version
        _bump(session)
    session.flush()
    return len(added)


# The stored table, keyed by its fingerprint (size, newest day, version): one per process.
_CACHE: KeyedCache[tuple[dict, frozenset]] = KeyedCache("working-day calendar")
VERSION_KEY = "calendar_version"


def _bump(session) -> None:
    """Mark the stored calendar as changed (cached copies in every worker expire)."""
    row = session.get(Setting, VERSION_KEY)
    if row is None:
        session.add(Setting(key=VERSION_KEY, value={"n": 1}))
    else:
        row.value = {"n": int(row.value.get("n", 0)) + 1}


def load_calendar(session) -> WorkCalendar:
    """The calendar as stored; the table is read once per process until it changes.

    Every intake computes a deadline, and reading ~700 rows each time was a large share of
    a report's cost. Every write bumps a version (``_bump``), so the cached copy is
    never stale in any worker.
    """
    # One round trip: the table's size and newest day, and the version setting.
    count, newest, version = session.execute(
        select(func.count(WorkdayOverride.day), func.max(WorkdayOverride.day),
               select(Setting.value).where(Setting.key == VERSION_KEY).scalar_subquery())
    ).one()
    fingerprint = (count, newest, (version or {}).get("n") if isinstance(version, dict) else 0)
    cached = _CACHE.get(fingerprint)
    if cached is None:
        # Read outside the lock: the next request with this fingerprint finds it stored.
        overrides = {
            row.day: row.is_workday
            for row in session.execute(select(WorkdayOverride)).scalars()
        }
        years = frozenset(row.year for row in session.execute(select(CalendarYear)).scalars())
        cached = _CACHE.put(fingerprint, (overrides, years))
    overrides, years = cached
    # A fresh calendar per caller: its warnings are per request.
    return WorkCalendar(overrides=overrides, known_years=set(years))


def set_year(
    session, year: int, days: list[tuple[date, bool, str]], *, source: str = "admin"
) -> None:
    """Replace one year's holidays and make-up days (the admin's December task)."""
    for row in session.execute(
        select(WorkdayOverride).where(
            WorkdayOverride.day >= date(year, 1, 1), WorkdayOverride.day <= date(year, 12, 31)
        )
    ).scalars():
        session.delete(row)
    session.flush()
    for day, is_workday, name in days:
        session.add(WorkdayOverride(day=day, is_workday=is_workday, name=name))
    known = session.get(CalendarYear, year)
    if known is None:
        session.add(CalendarYear(year=year, source=source))
    else:
        known.source = source
    _bump(session)
    session.flush()


# ---------------------------------------------------------------------- the admin's table
# Each December the State Council publishes next year's holidays; the admin uploads them as
# a small table (日期, 类型, 名称) that replaces that year's rows all at once.

MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_ROWS = 400  # a year has 366 days at most; more is the wrong file
TYPE_WORDS = {
    "放假": False, "休": False, "休息": False, "假": False, "节假日": False, "假日": False,
    "上班": True, "班": True, "补班": True, "调休上班": True, "调休": True, "工作日": True,
}
HOLIDAY_COLUMNS = {
    "date": ("日期", "date"),
    "type": ("类型", "类别", "放假/上班", "休/班", "type"),
    "name": ("名称", "节日", "节日名称", "假日名称", "说明", "备注", "name"),
}


def missing_year_message(year: int) -> str:
    return f"{year} 年节假日安排尚未录入，截止日期按周末计算"


def parse_year(value) -> int:
    """A calendar year from a form or command line, within the range the table may hold."""
    try:
        year = int(str(value).strip())
    except (TypeError, ValueError):
        msg = f"年份「{value}」无效 (如 2027)"
        raise ValidationError(msg) from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        msg = f"年份 {year} 超出范围 ({MIN_YEAR}–{MAX_YEAR})"
        raise ValidationError(msg)
    return year


def read_holiday_table(data: bytes, filename: str) -> list[dict]:
    """Parse a holiday table (.xlsx/.xls/.csv) into rows of text with their row numbers."""
    rows = read_named_columns(data, filename, HOLIDAY_COLUMNS, required={"date", "type"},
                              label="日期、类型、名称")
    return [{"row": r["row"], "date": r["date"], "type": r["type"], "name": r.get("name", "")}
            for r in rows]


def check_holiday_rows(rows: list[dict], year: int) -> tuple[list[dict], list[str]]:
    """Validate every row for one year; return the rows with ``day``/``is_workday``/``errors``."""
    if not rows:
        return [], ["文件中没有数据行"]
    if len(rows) > MAX_ROWS:
        return [], [f"文件有 {len(rows)} 行，一年最多 366 天，请检查是否选错了文件"]
    seen: dict[date, int] = {}
    checked, errors = [], []
    for raw in rows:
        number = raw.get("row")
        text = str(raw.get("date") or "").strip()
        kind = unicodedata.normalize("NFKC", str(raw.get("type") or "")).strip()
        name = str(raw.get("name") or "").strip()[:40]
        row = {"row": number, "date": text, "type": kind, "name": name, "day": None,
               "is_workday": None, "errors": []}
        try:
            # "1月1日" without a year means the table's own year.
            day = parse_date(text, field_name="日期", today=date(year, 1, 1)) if text else None
        except ValidationError:
            day = None
            row["errors"].append(f"第 {number} 行: 日期「{text}」无法识别 (如 {year}-10-01)")
        else:
            if day is None:
                row["errors"].append(f"第 {number} 行: 日期为空")
            elif day.year != year:
                row["errors"].append(f"第 {number} 行: 日期 {day.isoformat()} 不在 {year} 年内")
            elif day in seen:
                row["errors"].append(
                    f"第 {number} 行: 日期 {day.isoformat()} 与第 {seen[day]} 行重复"
                )
            else:
                seen[day] = number
        row["day"] = day
        if kind not in TYPE_WORDS:
            row["errors"].append(f"第 {number} 行: 类型「{kind}」无效 (应为 放假/上班 或 休/班)")
        else:
            row["is_workday"] = TYPE_WORDS[kind]
        if row["is_workday"] is not None and not name:
            row["name"] = "调休上班" if row["is_workday"] else "放假"
        checked.append(row)
        errors.extend(row["errors"])
    return checked, errors


def _year_rows(session, year: int) -> list[WorkdayOverride]:
    return list(session.execute(
        select(WorkdayOverride)
        .where(WorkdayOverride.day >= date(year, 1, 1), WorkdayOverride.day <= date(year, 12, 31))
        .order_by(WorkdayOverride.day)
    ).scalars())


def preview_holiday_file(session, user: User | None, data: bytes, filename: str,
                         year) -> dict:
    """Read and check an uploaded table for one year; nothing is written."""
    require_table_admin(user)
    year = parse_year(year)
    rows, errors = check_holiday_rows(read_holiday_table(data, filename), year)
    known = session.get(CalendarYear, year)
    return {
        "year": year,
        "filename": filename,
        "rows": rows,
        "errors": errors,
        "holidays": sum(1 for r in rows if r["is_workday"] is False),
        "workdays": sum(1 for r in rows if r["is_workday"] is True),
        "replaces": len(_year_rows(session, year)),
        "known_source": known.source if known else None,
    }


def import_holiday_rows(session, user: User | None, year, rows: list[dict], *,
                        ip: str | None = None) -> dict:
    """Replace one year's table with checked rows (all or nothing); return the counts."""
    require_table_admin(user)
    year = parse_year(year)
    checked, errors = check_holiday_rows(rows, year)
    if errors:
        raise TableRowsError("节假日表", errors)
    set_year(session, year, [(r["day"], r["is_workday"], r["name"]) for r in checked])
    holidays = sum(1 for r in checked if not r["is_workday"])
    workdays = len(checked) - holidays
    record(session, user, "holidays_imported",
           f"{year} 年节假日: 放假 {holidays} 天, 调休上班 {workdays} 天", ip)
    return {"year": year, "holidays": holidays, "workdays": workdays}


def import_holiday_file(session, user: User | None, data: bytes, filename: str, year, *,
                        ip: str | None = None) -> dict:
    """Read, check and store a table file for one year (the command line's one step)."""
    year = parse_year(year)
    return import_holiday_rows(session, user, year, read_holiday_table(data, filename), ip=ip)


def fallback_issue_ids(session, year: int) -> list[int]:
    """Problems whose deadline was computed while ``year`` had no table (weekends only)."""
    marker = f"{year} 年"
    ids = []
    for issue_id, data in session.execute(
        select(IssueEvent.issue_id, IssueEvent.data).where(IssueEvent.action == "report")
    ):
        warnings = (data or {}).get("calendar_warnings") or []
        if any(str(w).startswith(marker) for w in warnings):
            ids.append(issue_id)
    return sorted(ids)


def calendar_overview(session, user: User | None, *, today: date | None = None) -> dict:
    """Known years with their counts, and warnings for this year and next if missing."""
    require_table_admin(user)
    today = today or today_local()
    known = {row.year: row.source for row in session.execute(select(CalendarYear)).scalars()}
    counts: dict[int, list[int]] = {}
    for day, is_workday in session.execute(
        select(WorkdayOverride.day, WorkdayOverride.is_workday)
    ):
        counts.setdefault(day.year, [0, 0])[1 if is_workday else 0] += 1
    years = [
        {"year": year, "source": known.get(year), "complete": year in known,
         "holidays": counts.get(year, [0, 0])[0], "workdays": counts.get(year, [0, 0])[1]}
        for year in sorted(set(known) | set(counts), reverse=True)
    ]
    missing = [
        {"year": year, "message": missing_year_message(year),
         "issue_ids": fallback_issue_ids(session, year)}
        for year in (today.year, today.year + 1) if year not in known
    ]
    # Problems reported before a year's table was entered keep their weekend-only deadline.
    stale = [
        {"year": year, "issue_ids": ids}
        for year in sorted(known) if year >= today.year - 1
        and (ids := fallback_issue_ids(session, year))
    ]
    return {"years": years, "missing": missing, "stale": stale, "today": today}


def year_days(session, user: User | None, year) -> dict:
    """One year's holidays and make-up workdays, in date order."""
    require_table_admin(user)
    try:
        year = parse_year(year)
    except ValidationError:
        msg = f"年份 {year} 不存在"
        raise NotFoundError(msg) from None
    known = session.get(CalendarYear, year)
    rows = _year_rows(session, year)
    return {
        "year": year,
        "source": known.source if known else None,
        "complete": known is not None,
        "message": None if known else missing_year_message(year),
        "days": rows,
        "holidays": sum(1 for r in rows if not r.is_workday),
        "workdays": sum(1 for r in rows if r.is_workday),
    }
