"""Assessment months: parsing "YYYY-MM", a month's period, and the campaign's months.

A month's period runs from its first instant to the first instant of the next month, or
to *now* while the month is still running (``as_of``); all times are county time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app.models import Issue, now_local
from app.services.core.errors import ValidationError

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


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
    """The month ``delta`` months after ``month`` (before, when negative)."""
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


def month_label(month: str) -> str:
    """The month as a 通报 names it: "2026年3月"."""
    year, mon = parse_month(month)
    return f"{year}年{mon}月"
