"""Working days after China's official calendar, kept in the database.

``chinese-calendar`` knows a fixed range of years and raises for later ones, so its table
is copied into WorkdayOverride once; an admin adds each new year when the State Council
publishes it. For a year with no table, deadlines fall back to plain weekends and the
caller gets a warning to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select

from app.models import CalendarYear, WorkdayOverride

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
    from chinese_calendar import constants

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
    session.flush()
    return len(added)


def load_calendar(session) -> WorkCalendar:
    overrides = {
        row.day: row.is_workday for row in session.execute(select(WorkdayOverride)).scalars()
    }
    years = {row.year for row in session.execute(select(CalendarYear)).scalars()}
    return WorkCalendar(overrides=overrides, known_years=years)


def set_year(session, year: int, days: list[tuple[date, bool, str]]) -> None:
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
    if session.get(CalendarYear, year) is None:
        session.add(CalendarYear(year=year, source="admin"))
    session.flush()
