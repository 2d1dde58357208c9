"""Per-row parsing of a problem list: the header, found dates, deadlines, coordinates, keys.

One row of an inspection feedback list becomes an ``IssueInput`` here (``prepare_row``),
or a ValidationError naming the row and the field: 发现时间 is refused in the future,
整改时限 is read as 立行立改, "7个工作日", "7日内" or a date, the coordinate system is
read from 坐标系 or 备注, and the row's import key (``row_ref``) is a hash of its content
so importing the same list again creates no duplicates. ``ImportResult`` says what
happened to each row of one import (the per-row and the bulk path alike).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import cn2an
from sqlalchemy import select

from app.models import SOURCES, Issue, today_local
from app.services.core.errors import ValidationError
from app.services.core.tabular import cell_text, parse_date
from app.services.core.text import clean_text
from app.services.issues.intake import IssueInput, check_in_county, validate_input
from app.services.tables.workdays import WorkCalendar

#: The 10 columns of the standard problem workbook (问题清单), in order.
WORKBOOK_HEADER: tuple[str, ...] = (
    "序号",
    "问题描述",
    "问题地点",
    "问题类别",
    "责任单位",
    "发现时间",
    "整改时限",
    "经度",
    "纬度",
    "备注",
)
DEFAULT_SOURCE = "州级交叉检查"
MISSING_DESCRIPTION = "（清单未填写问题描述）"
_IMMEDIATE = ("立行立改", "立即整改", "即知即改", "立即", "马上整改")
_CN_DIGITS = "零〇一二两三四五六七八九十百"

# A list may be dated by a clock a day ahead of the county's (another time zone, a
# late-evening entry); anything later is a typo (2030 for 2026) and would push the
# problem's deadline years ahead.
FUTURE_TOLERANCE = timedelta(days=1)


def parse_found_date(value, *, field_name: str, today: date | None = None) -> date | None:
    """发现时间 as a date, refused when it lies after the county's today (+1 day).

    Parameters
    ----------
    value
        The cell's value (text, date, datetime or an Excel serial number).
    field_name
        The field as the message names it (with the row: "第5行: 发现时间").
    today
        The county's date (default ``today_local()``).

    Returns
    -------
    date or None
        None for an empty cell.

    Raises
    ------
    ValidationError
        When the value is no date, or a date in the future.
    """
    today = today or today_local()
    found = parse_date(value, field_name=field_name, today=today)
    if found is not None and found > today + FUTURE_TOLERANCE:
        msg = f"{field_name} {found.isoformat()} 晚于今天 ({today.isoformat()})"
        raise ValidationError(msg)
    return found


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    return int(cn2an.cn2an(text.replace("两", "二"), "smart"))


def parse_deadline(value, found: date, calendar: WorkCalendar, *, field_name: str) -> date | None:
    """整改时限 as a date: 立行立改, N个工作日, N日内, or a date (never before ``found``)."""
    if value is None or cell_text(value) == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1000:
        return calendar.add_workdays(found, int(value))
    text = cell_text(value).replace(" ", "")
    if any(word in text for word in _IMMEDIATE):
        return found
    if re.fullmatch(r"\d{1,3}", text):
        return calendar.add_workdays(found, int(text))
    digits = rf"(\d+|[{_CN_DIGITS}]+)"
    # "2026年11月15日" is a date, not "15日" of working days: dates are tried first.
    looks_like_date = re.search(r"\d{4}[./\-年]|月", text)
    if not looks_like_date and (m := re.search(digits + r"个?(?:工作日|工作天|日|天)", text)):
        return calendar.add_workdays(found, _number(m[1]))
    try:
        deadline = parse_date(value, field_name=field_name)
    except ValidationError:
        msg = (
            f"{field_name} 无法识别: {cell_text(value)!r} (可写 立行立改、7个工作日、7日内 或日期)"
        )
        raise ValidationError(msg) from None
    if deadline < found:
        msg = f"{field_name} {deadline.isoformat()} 早于发现时间 {found.isoformat()}"
        raise ValidationError(msg)
    return deadline


def coord_system_of(record: dict) -> str:
    """GCJ-02 / BD-09 when 坐标系 or 备注 says the point came from 高德/腾讯 or 百度."""
    text = (cell_text(record.get("coord_system")) + " " + cell_text(record.get("remark"))).lower()
    if "百度" in text or "bd" in text:
        return "bd09"
    if any(word in text for word in ("高德", "腾讯", "微信", "gcj", "火星")):
        return "gcj02"
    return "wgs84"


def _seq_key(value) -> str:
    return cell_text(value)


def _norm_text(value) -> str:
    return re.sub(r"\s+", "", cell_text(value))


def row_ref(record: dict, found: date | None) -> str:
    """The import key: the same row of the same list hashes alike even when re-saved."""
    parts = [
        _seq_key(record.get("seq")),
        _norm_text(record.get("description")),
        _norm_text(record.get("address")),
        found.isoformat() if found else "",
    ]
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"import:{digest}"


@dataclass
class ImportResult:
    """What happened to each row of one import."""

    filename: str
    total: int = 0
    imported: int = 0
    placed: int = 0
    queued: int = 0
    skipped: int = 0
    valid: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)
    issue_ids: list[int] = field(default_factory=list)
    issue_rows: list[int] = field(default_factory=list)  # spreadsheet row of each issue_ids
    aborted: bool = False  # errors and no skip_errors: nothing was written
    dry_run: bool = False
    batch_id: int | None = None
    batch_name: str | None = None
    pending: int = 0  # 待分类: the category matched nothing
    by_unit_source: dict[str, int] = field(default_factory=dict)  # list/category/cell/…
    conflicts: int = 0  # the list named a unit the rules would not choose
    photos: int = 0
    photo_errors: list[tuple[int, str]] = field(default_factory=list)
    dispatched: int | None = None
    dispatch_error: str | None = None

    def summary(self) -> str:
        """One line of counts, for the command line."""
        return (
            f"imported={self.imported} placed={self.placed} queued={self.queued} "
            f"rejected={len(self.rejected)} skipped={self.skipped}"
        )

    def to_dict(self) -> dict:
        """The result as JSON-ready data (kept with the upload, shown on the result page)."""
        return {
            "filename": self.filename,
            "total": self.total,
            "imported": self.imported,
            "placed": self.placed,
            "queued": self.queued,
            "skipped": self.skipped,
            "valid": self.valid,
            "rejected": [list(r) for r in self.rejected],
            "skipped_rows": [list(r) for r in self.skipped_rows],
            "aborted": self.aborted,
            "dry_run": self.dry_run,
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "pending": self.pending,
            "by_unit_source": dict(self.by_unit_source),
            "conflicts": self.conflicts,
            "photos": self.photos,
            "photo_errors": [list(r) for r in self.photo_errors],
            "dispatched": self.dispatched,
            "dispatch_error": self.dispatch_error,
        }


@dataclass
class PreparedRow:
    """One valid row, ready for ``create_issue``: its row number, import key and input."""

    row: int
    ref: str
    data: IssueInput
    seq: str | None = None
    listed: str | None = None


def describe_row(description: str, *, category: object, address: object, has_point: bool) -> str:
    """The row's 问题描述; a row with a place but no words keeps the category and place.

    Lists sometimes leave 问题描述 empty and put everything in 问题类别 and 地点: such a row
    is still a problem at a place, so it is kept under a visible marker; only a row with
    neither words nor place is unusable (and rejected by the intake's check).
    """
    if description:
        return description
    address_text = clean_text(address, multiline=False)
    if not (address_text or has_point):
        return ""
    parts = [t for t in (clean_text(category, multiline=False), address_text) if t]
    return MISSING_DESCRIPTION + (" " + " ".join(parts) if parts else "")


def prepare_row(
    session, record: dict, *, source: str, calendar: WorkCalendar, filename: str, matcher=None
) -> PreparedRow:
    """Turn one row into an IssueInput, raising ValidationError naming row and field."""
    row = record["_row"]
    where = f"第{row}行: "
    found = parse_found_date(record.get("found_at"), field_name=f"{where}发现时间")
    deadline = parse_deadline(
        record.get("deadline"), found or today_local(), calendar, field_name=f"{where}整改时限"
    )
    lon, lat = record.get("lon"), record.get("lat")
    remark = cell_text(record.get("remark"))
    data = IssueInput(
        description=describe_row(
            clean_text(record.get("description")),
            category=record.get("category"),
            address=record.get("address"),
            has_point=cell_text(lon) != "" and cell_text(lat) != "",
        ),
        category=cell_text(record.get("category")) or None,
        address=clean_text(record.get("address"), multiline=False) or None,
        lon=cell_text(lon) if isinstance(lon, str) else lon,
        lat=cell_text(lat) if isinstance(lat, str) else lat,
        coord_system=coord_system_of(record),
        source=cell_text(record.get("source")) or source,
        found_at=datetime.combine(found, datetime.min.time()) if found else None,
        deadline=deadline,
        unit_name=cell_text(record.get("unit")) or None,
        external_ref=row_ref(record, found),
        extra={"note": f"导入自 {filename} 第{row}行" + (f"；备注: {remark}" if remark else "")},
    )
    # The checks create_issue would make, run first so that no row is written when
    # another row is wrong (all-or-nothing without savepoints).
    clean = validate_input(session, data, where=where, **({"matcher": matcher} if matcher else {}))
    if clean["lon"] is not None:
        check_in_county(session, clean["lon"], clean["lat"], field_name=f"{where}经纬度")
    return PreparedRow(
        row=row,
        ref=data.external_ref,
        data=data,
        seq=batch_seq_of(record),
        listed=clean_text(record.get("unit"), max_len=200) or None,
    )


def batch_seq_of(record: dict) -> str:
    """The row's place in its list: the 序号 column when given, else the row number."""
    seq = cell_text(record.get("seq"))
    return (seq or str(record["_row"]))[:20]


def existing_refs(session, refs: list[str]) -> set[str]:
    """The import keys among ``refs`` already stored (a re-imported list's rows)."""
    found: set[str] = set()
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        found |= set(
            session.execute(
                select(Issue.external_ref).where(Issue.external_ref.in_(chunk))
            ).scalars()
        )
    return found


def check_source(source: str | None) -> str:
    """The list's default source; refuse names outside the source table."""
    source = (source or DEFAULT_SOURCE).strip()
    if source not in SOURCES:
        msg = f"来源 无法识别: {source!r} (可选: {'、'.join(SOURCES)})"
        raise ValidationError(msg)
    return source


def parse_received_on(value: str | None) -> date | None:
    """The form's 收到日期 (YYYY-MM-DD); empty means today; refuse the future."""
    text = cell_text(value)
    if not text:
        return None
    found = parse_date(text, field_name="收到日期")
    if found > today_local():
        msg = f"收到日期 {found.isoformat()} 晚于今天"
        raise ValidationError(msg)
    return found
