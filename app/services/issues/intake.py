"""Problems: one intake service for every door, and the rectification workflow.

Workflow (GB/T 30428's seven steps): reported → dispatched → rectifying → submitted →
closed; a failed check sends it back to rectifying and counts a rework (返工);
rejected and duplicate end it without a fix. Every change appends an IssueEvent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from sqlalchemy import func, null, select

from app.models import (
    OPEN_STATUSES,
    SOURCES,
    Category,
    Cell,
    Issue,
    IssueEvent,
    IssueUnit,
    Unit,
    User,
    now_local,
)
from app.services.core import access
from app.services.core.cache import KeyedCache
from app.services.core.errors import ConflictError, ServiceError, ValidationError
from app.services.core.text import clean_text
from app.services.grids.cells import active_grid, locate_cell
from app.services.grids.geocoding import geocoder_for
from app.services.tables.category_match import (
    CategoryMatcher,
    category_event_data,
    pending_deadline_days,
    session_matcher,
)
from app.services.tables.unit_names import UnitMatcher
from app.services.tables.unit_routing import choose_routing
from app.services.tables.workdays import WorkCalendar, load_calendar
from gis.crs import parse_coordinate, to_wgs84
from gis.errors import GisError

# action: (allowed from statuses, to status, permission)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "dispatch": (("reported",), "dispatched", "dispatch"),
    "start": (("dispatched",), "rectifying", "rectify"),
    "submit": (("dispatched", "rectifying"), "submitted", "submit"),
    "verify_ok": (("submitted",), "closed", "verify"),
    "verify_fail": (("submitted",), "rectifying", "verify"),
    "reject": (("reported", "dispatched"), "rejected", "reject"),
    "mark_duplicate": (("reported", "dispatched"), "duplicate", "reject"),
    "reopen": (("closed",), "rectifying", "verify"),
}
ACTION_LABELS = {
    "report": "上报",
    "dispatch": "派遣",
    "start": "开始整改",
    "submit": "提交核查",
    "verify_ok": "核查通过，销号",
    "verify_fail": "核查未通过，退回返工",
    "reject": "不予立案",
    "mark_duplicate": "标记为重复",
    "reopen": "重新打开",
    "reroute": "改派",
    "place": "手动定位",
    "photo": "上传照片",
    "import": "导入",
    "classify": "分类",
    "regrid": "网格调整",
}


@dataclass(frozen=True)
class IntakeRules:
    """How intake places and compares reports: one definition for the per-row and bulk paths.

    A weak geocoder guess (below ``min_confidence``) is queued for manual placement; an
    open problem within ``duplicate_radius_m`` is a possible duplicate; a problem closed
    within ``recurrence_days`` and ``recurrence_radius_m`` makes a new one a 反弹.
    """

    min_confidence: float = 0.6
    duplicate_radius_m: float = 30.0
    recurrence_radius_m: float = 50.0
    recurrence_days: int = 60


INTAKE = IntakeRules()


@dataclass
class IssueInput:
    """What any intake door (form, spreadsheet, API, Open311) hands to create_issue."""

    description: str
    category: str | None = None
    address: str | None = None
    lon: object = None
    lat: object = None
    coord_system: str = "wgs84"
    # None: the reporter's default (access.default_source: 自查 for a unit head).
    source: str | None = None
    found_at: datetime | None = None
    deadline: date | None = None
    unit_name: str | None = None
    external_ref: str | None = None
    extra: dict = field(default_factory=dict)


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance; exact enough at town scale (tens of metres)."""
    k = math.cos(math.radians((lat1 + lat2) / 2))
    dx = (lon2 - lon1) * 111_320.0 * k
    dy = (lat2 - lat1) * 110_574.0
    return math.hypot(dx, dy)


def _nearby(session, issue: Issue, *, radius_m: float, statuses, since: datetime | None = None):
    if issue.lon is None or issue.category_id is None:
        return []
    dlat = radius_m / 110_574.0
    dlon = radius_m / (111_320.0 * max(math.cos(math.radians(issue.lat)), 0.1))
    # Ids and points only: a busy corner has hundreds of reports, and loading each one
    # as an ORM object was most of a report's cost there.
    stmt = select(Issue.id, Issue.lon, Issue.lat).where(
        Issue.category_id == issue.category_id,
        Issue.status.in_(statuses),
        Issue.lon.between(issue.lon - dlon, issue.lon + dlon),
        Issue.lat.between(issue.lat - dlat, issue.lat + dlat),
    )
    if issue.id is not None:
        stmt = stmt.where(Issue.id != issue.id)
    if since is not None:
        stmt = stmt.where(Issue.closed_at >= since)
    return [
        other_id for other_id, lon, lat in session.execute(stmt.order_by(Issue.id))
        if _metres(issue.lon, issue.lat, lon, lat) <= radius_m
    ]


def validate_input(session, data: IssueInput, *, where: str = "",
                   matcher: CategoryMatcher | None = None) -> dict:
    """Check one intake record; return cleaned values or raise naming the field."""
    prefix = f"{where}" if where else ""
    # Control characters pasted from chat windows would break every export later.
    description = clean_text(data.description)
    if not description:
        msg = f"{prefix}问题描述 不能为空"
        raise ValidationError(msg)
    if len(description) > 2000:
        msg = f"{prefix}问题描述 过长 (超过 2000 字)"
        raise ValidationError(msg)
    # A category that matches nothing (or none at all) is 待分类: kept, never rejected.
    category_match = (matcher or session_matcher(session)).match(data.category)
    source = (data.source or "县级督查").strip()
    if source not in SOURCES:
        aliases = {"12345": "群众投诉/12345", "群众投诉": "群众投诉/12345", "州级": "州级交叉检查",
                   "省级": "省级暗访", "国家级": "国家评估", "县级": "县级督查"}
        source = next((v for k, v in aliases.items() if k in source), None)
        if source is None:
            msg = f"{prefix}来源 无法识别: {data.source!r} (可选: {'、'.join(SOURCES)})"
            raise ValidationError(msg)
    lon = lat = None
    has_lon = data.lon not in (None, "")
    has_lat = data.lat not in (None, "")
    if has_lon != has_lat:
        msg = f"{prefix}经度和纬度 必须同时填写"
        raise ValidationError(msg)
    if has_lon:
        try:
            lon = parse_coordinate(data.lon, field=f"{prefix}经度", low=73.0, high=136.0)
            lat = parse_coordinate(data.lat, field=f"{prefix}纬度", low=3.0, high=54.0)
            wlon, wlat = to_wgs84(lon, lat, source=data.coord_system or "wgs84")
        except GisError as exc:
            raise ValidationError(str(exc)) from None
        lon, lat = float(wlon), float(wlat)
    unit = None
    if data.unit_name:
        unit = session.execute(select(Unit).where(Unit.name == data.unit_name.strip())).scalar()
    return {
        "description": description, "category": category_match.category,
        "category_match": category_match, "source": source,
        "lon": lon, "lat": lat, "unit": unit,
        "address": clean_text(data.address, multiline=False) or None,
        "note": clean_text(data.extra.get("note")) or None,
    }


_BOUNDS: KeyedCache[tuple] = KeyedCache("grid extent", maxsize=16)


def _grid_bounds(session, grid) -> tuple:
    """The grid's cell extent, read once per grid version (every report checks it)."""
    key = (grid.id, grid.created_at.isoformat() if grid.created_at else "", grid.revision)
    bounds = _BOUNDS.get(key)
    if bounds is None:
        bounds = tuple(session.execute(
            select(func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx),
                   func.max(Cell.maxy)).where(Cell.grid_id == grid.id)
        ).one())
        if bounds[0] is None:
            return bounds  # no cells yet: ask again next time
        _BOUNDS.put(key, bounds)
    return bounds


def check_in_county(session, lon: float, lat: float, *, field_name: str = "坐标") -> None:
    """Refuse coordinates far from the county seat (e.g. another province)."""
    grid = active_grid(session)
    if grid is None:
        return
    minx, miny, maxx, maxy = _grid_bounds(session, grid)
    if minx is None:
        return
    margin = 0.05  # about 5 km: a point this far out is a typo or another county
    if not (minx - margin <= lon <= maxx + margin and miny - margin <= lat <= maxy + margin):
        msg = f"{field_name} ({lon:.6f}, {lat:.6f}) 不在本县城范围内"
        raise ValidationError(msg)


def create_issue(
    session, user: User | None, data: IssueInput, *, calendar: WorkCalendar | None = None,
    geocoder=None, where: str = "", check_duplicates: bool = True,
    matcher: CategoryMatcher | None = None, via: str = "web", trusted_import: bool = False,
) -> Issue:
    """The one intake service: validate, place, route, set the deadline, log the event.

    Every door files through ``access.check_filing`` here (source, found_at, own cells);
    ``trusted_import`` is the admin spreadsheet importer's flag (an inspection list's dates).
    """
    if user is not None:
        access.require(user, "report")
    if not (data.source or "").strip():
        data = replace(data, source=access.default_source(user))
    clean = validate_input(session, data, where=where, matcher=matcher)
    # Source and date first (nothing placed or stored yet), the cells once routed below.
    access.check_filing(user, source=clean["source"], found_at=data.found_at, cell=None,
                        placed=False, via=via, trusted_import=trusted_import)
    issue = Issue(
        description=clean["description"],
        category=clean["category"],
        category_text=clean["category_match"].text or None,
        category_pending=clean["category_match"].pending,
        address=clean["address"],
        source=clean["source"],
        found_at=data.found_at or now_local(),
        external_ref=data.external_ref,
        created_by_id=user.id if user else None,
        status="reported",
    )
    if clean["lon"] is not None:
        check_in_county(session, clean["lon"], clean["lat"], field_name=f"{where}经纬度")
        issue.lon, issue.lat = clean["lon"], clean["lat"]
        issue.geocode_method = "coordinates" if data.coord_system in (None, "", "wgs84") else (
            f"coordinates_{data.coord_system}")
        issue.geocode_confidence = 1.0
    elif issue.address:
        place_by_address(session, issue, geocoder=geocoder)
    else:
        issue.geocode_method = "none"
        issue.geocode_confidence = 0.0
    threshold = INTAKE.min_confidence
    issue.needs_placement = issue.lon is None or (issue.geocode_confidence or 0) < threshold
    if issue.needs_placement:
        # A weak guess stays among the candidates for the placer, but is not routed by.
        issue.lon = issue.lat = None
    session.add(issue)
    # Routed and dated before it is written: one INSERT, not an INSERT and two UPDATEs
    # (the lookups below would otherwise flush the half-built row).
    with session.no_autoflush:
        route_issue(session, issue, preferred_unit=clean["unit"])
        if user is not None and access.is_unit_scoped(user) and issue.lon is None:
            # A unit head's 自查 the geocoder could not place is their own unit's problem,
            # queued for the office to place; it never lands on another unit.
            issue.unit, issue.unit_id = user.unit, user.unit_id
            issue.unit_source = "manual"
            issue.routing_conflict = None
        try:
            access.check_filing(user, source=issue.source, found_at=data.found_at,
                                cell=issue.cell, unit_id=issue.unit_id,
                                placed=issue.lon is not None, via=via,
                                trusted_import=trusted_import)
        except ServiceError:
            session.expunge(issue)
            raise
        calendar = calendar or load_calendar(session)
        days = issue.category.deadline_days if issue.category else pending_deadline_days(session)
        start = issue.found_at.date()
        issue.deadline = data.deadline or calendar.add_workdays(start, days)
    session.flush()
    event_data = {"geocode": {"method": issue.geocode_method,
                              "confidence": issue.geocode_confidence}}
    # How the category was read; "deadline_default" lets 分类 recompute a default deadline.
    event_data["category"] = category_event_data(clean["category_match"],
                                                 deadline_given=bool(data.deadline))
    if check_duplicates and issue.lon is not None:
        dups = _nearby(session, issue, radius_m=INTAKE.duplicate_radius_m,
                       statuses=OPEN_STATUSES)
        if dups:
            event_data["possible_duplicates"] = dups
        since = issue.found_at - timedelta(days=INTAKE.recurrence_days)
        recurrences = _nearby(session, issue, radius_m=INTAKE.recurrence_radius_m,
                              statuses=("closed",), since=since)
        if recurrences:
            issue.recurrence_of_id = recurrences[0]
            event_data["recurrence_of"] = recurrences[0]
    if calendar.warnings:
        event_data["calendar_warnings"] = sorted(calendar.warnings)
    add_event(session, issue, user, "report", None, "reported", note=clean["note"],
              data=event_data, at=issue.found_at if data.external_ref else None)
    return issue


def place_by_address(session, issue: Issue, *, geocoder=None) -> None:
    geocoder = geocoder or geocoder_for(session)
    if geocoder is None:
        issue.geocode_method, issue.geocode_confidence = "none", 0.0
        return
    result = geocoder.geocode_address(issue.address)
    issue.geocode_method = result.method
    issue.geocode_confidence = float(result.confidence or 0.0)
    issue.geocode_candidates = list(result.candidates or [])[:5]
    if result.lon is not None:
        issue.lon, issue.lat = float(result.lon), float(result.lat)


def route_issue(
    session, issue: Issue, *, preferred_unit: Unit | None = None, listed: str | None = None,
    matcher=None,
) -> None:
    """Set cell and unit: the list's unit when it names one, else category, else cell.

    ``listed`` is the list's 责任单位 as written (default: the one stored on the issue, so
    placing a queued problem later still follows its list); ``preferred_unit`` is a unit
    an intake door already resolved. An admin's re-route (unit_source manual) is kept.
    See ``app.services.tables.unit_routing`` for the rule and the conflict it records.
    """
    cell = locate_cell(session, issue.lon, issue.lat) if issue.lon is not None else None
    issue.cell = cell
    issue.cell_id = cell.id if cell else None
    issue.outside_grid = issue.lon is not None and cell is None
    if issue.unit_source == "manual":
        return
    text = clean_text(listed if listed is not None else issue.listed_unit, max_len=200) or None
    list_ids: list[int] = []
    if text:
        found = (matcher or UnitMatcher(session)).match(text)
        list_ids = [u.id for u in found.units]
    elif preferred_unit is not None:
        list_ids, text = [preferred_unit.id], preferred_unit.name
    category = issue.category
    names: dict[int, str] = {}

    def name_of(unit_id: int) -> str | None:
        if unit_id not in names:
            unit = session.get(Unit, unit_id)
            names[unit_id] = unit.name if unit is not None else None
        return names[unit_id]

    routing = choose_routing(
        list_ids=list_ids,
        listed_text=text,
        category_unit_id=category.functional_unit_id if category is not None else None,
        cell_unit_id=cell.unit_id if cell is not None else None,
        name_of=name_of,
    )
    issue.unit_id = routing.unit_id
    issue.unit_source = routing.unit_source
    if text or issue.listed_unit is not None:
        issue.listed_unit = text
    if routing.conflict:
        issue.routing_conflict = routing.conflict
    elif issue.routing_conflict is not None:
        issue.routing_conflict = null()  # SQL NULL, not the JSON text "null"
    wanted = [u for u in routing.co_unit_ids if u != routing.unit_id]
    if sorted(c.unit_id for c in issue.co_units) != sorted(wanted):
        keep = [c for c in issue.co_units if c.unit_id in wanted]
        have = {c.unit_id for c in keep}
        issue.co_units = keep + [IssueUnit(unit_id=u) for u in wanted if u not in have]


def add_event(session, issue: Issue, user: User | None, action: str, from_status, to_status, *,
              note: str | None = None, data: dict | None = None, at=None) -> IssueEvent:
    event = IssueEvent(issue=issue, user_id=user.id if user else None, action=action,
                       from_status=from_status, to_status=to_status, note=note, data=data or {})
    if at is not None:
        event.at = at
    session.add(event)
    return event


def transition(session, user: User, issue_id: int, action: str, *, note: str | None = None,
               expected_version: int | None = None, at: datetime | None = None) -> Issue:
    """Move an issue along the workflow; a stale ``expected_version`` loses with 409."""
    if action not in TRANSITIONS:
        msg = f"未知操作: {action}"
        raise ValidationError(msg)
    allowed_from, to_status, permission = TRANSITIONS[action]
    issue = access.get_issue(session, user, issue_id, action=permission)
    if expected_version is not None and int(expected_version) != issue.version:
        msg = "该问题已被他人修改，请刷新后重试"
        raise ConflictError(msg)
    if issue.status not in allowed_from:
        msg = f"当前状态为「{issue.status_label}」，不能执行「{ACTION_LABELS[action]}」"
        raise ConflictError(msg)
    if action == "verify_fail" and not (note or "").strip():
        msg = "退回返工时必须填写原因"
        raise ValidationError(msg)
    from_status = issue.status
    issue.status = to_status
    if action == "verify_fail":
        issue.rework_count += 1
    if to_status == "closed":
        issue.closed_at = at or now_local()
    elif action == "reopen":
        issue.closed_at = None
    add_event(session, issue, user, action, from_status, to_status, note=note, at=at)
    session.flush()
    return issue


def reroute(session, user: User, issue_id: int, unit_id: int, *, reason: str) -> Issue:
    """Re-route an issue to another unit (admins only, with a reason)."""
    issue = access.get_issue(session, user, issue_id, action="reroute")
    if not (reason or "").strip():
        msg = "改派必须填写原因"
        raise ValidationError(msg)
    unit = session.get(Unit, unit_id)
    if unit is None:
        msg = f"单位 {unit_id} 不存在"
        raise ValidationError(msg)
    old = issue.unit.name if issue.unit else None
    issue.unit_id = unit.id
    issue.unit_source = "manual"  # nothing automatic (grid activation, placement) undoes it
    add_event(session, issue, user, "reroute", issue.status, issue.status, note=reason,
              data={"from_unit": old, "to_unit": unit.name})
    session.flush()
    return issue


def place_manually(session, user: User, issue_id: int, lon: float, lat: float) -> Issue:
    """Place a 待定位 problem by hand on the map; routes it to the cell's unit."""
    issue = access.get_issue(session, user, issue_id, action="place")
    lon = parse_coordinate(lon, field="经度", low=73.0, high=136.0)
    lat = parse_coordinate(lat, field="纬度", low=3.0, high=54.0)
    check_in_county(session, lon, lat)
    issue.lon, issue.lat = lon, lat
    issue.geocode_method, issue.geocode_confidence = "manual", 1.0
    issue.needs_placement = False
    route_issue(session, issue)
    add_event(session, issue, user, "place", issue.status, issue.status,
              data={"lon": lon, "lat": lat})
    session.flush()
    return issue


def category_by_code(session, code: str) -> Category | None:
    return session.execute(select(Category).where(Category.code == code)).scalar_one_or_none()
