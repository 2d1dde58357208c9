"""Use-cases behind the JSON API (/api/v1): parse query parameters, list, read, act.

Every read goes through app/services/core/access.py, so a unit head's token sees only its
own unit's cells and problems whatever filters it sends. Parameters arrive as plain
mappings (the view passes ``request.args`` or the JSON body); bad values raise
ValidationError naming the parameter and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exists, false, func, or_, select
from sqlalchemy.orm import selectinload

from app.models import (
    OPEN_STATUSES,
    SOURCES,
    STATUSES,
    Assessment,
    Category,
    Cell,
    Issue,
    IssueEvent,
    IssueUnit,
    Patrol,
    Unit,
    User,
    today_local,
)
from app.services.core import access, params
from app.services.core.errors import FieldError, ForbiddenError, ValidationError
from app.services.core.settings import Settings
from app.services.grids.cells import active_grid
from app.services.issues import actions as issue_actions
from app.services.issues.intake import (
    TRANSITIONS,
    IssueInput,
    create_issue,
    place_manually,
    transition,
)
from app.services.issues.photos import photo_file
from app.services.protocols import serializers
from app.services.tables.category_match import match_category
from gis.crs import parse_coordinate, to_wgs84
from gis.errors import GisError

COORD_SYSTEMS = ("wgs84", "gcj02", "bd09")
# Field names in the intake service's Chinese messages → the JSON field they concern.
FIELD_WORDS = (
    ("经纬度", "lon"),
    ("问题描述", "description"),
    ("问题类别", "category"),
    ("来源", "source"),
    ("经度", "lon"),
    ("纬度", "lat"),
    ("坐标", "lon"),
)


# ---- paging (the parsers are app/services/core/params.py, the one set for the site) ----


def parse_paging(args: Mapping) -> tuple[int, int]:
    """``limit`` (default 50, at most 500) and ``offset`` (default 0)."""
    limit = params.parse_limit(args.get("limit"))
    offset = params.parse_offset(args.get("offset"))
    return limit, offset


def _count(session, stmt: Select) -> int:
    return session.execute(
        select(func.count()).select_from(stmt.order_by(None).subquery())
    ).scalar_one()


def _page(session, stmt: Select, args: Mapping) -> tuple[list, int, int, int]:
    limit, offset = parse_paging(args)
    total = _count(session, stmt)
    rows = list(session.execute(stmt.limit(limit).offset(offset)).scalars())
    return rows, total, limit, offset


def _resolve_unit(session, user: User, raw: str, name: str = "unit") -> int | None:
    """A unit filter by id or name; None means "matches nothing the user may see"."""
    text = str(raw).strip()
    if len(text) > 200:
        raise params.bad(name, raw, "没有这个责任单位")
    stmt = select(Unit.id)
    if text.isascii() and text.isdigit():
        stmt = stmt.where(Unit.id == params.parse_id(text, name=name))
    else:
        stmt = stmt.where(Unit.name == text)
    unit_id = session.execute(stmt).scalar()
    if access.is_unit_scoped(user):
        # A unit head learns nothing about other units: their filters just match nothing.
        return unit_id if unit_id == user.unit_id else None
    if unit_id is None:
        raise params.bad(name, raw, "没有这个责任单位")
    return unit_id


# ---- issues ---------------------------------------------------------------------------


def issue_query(session, user: User, args: Mapping) -> Select:
    """The scoped, filtered SELECT over issues for ``GET /issues``."""
    stmt = access.scope_issues(select(Issue), user)
    status = args.get("status")
    if status:
        if status == "open":
            stmt = stmt.where(Issue.status.in_(OPEN_STATUSES))
        elif status in STATUSES:
            stmt = stmt.where(Issue.status == status)
        else:
            raise params.bad("status", status, f"可选 open, {', '.join(STATUSES)}")
    if args.get("unit"):
        unit_id = _resolve_unit(session, user, args["unit"])
        stmt = stmt.where(Issue.unit_id == unit_id) if unit_id else stmt.where(false())
    code = args.get("category")
    if code:
        if session.execute(select(Category.id).where(Category.code == code)).scalar() is None:
            raise params.bad("category", code, "没有这个类别编码")
        sub = select(Category.id).where((Category.code == code) | (Category.parent_code == code))
        stmt = stmt.where(Issue.category_id.in_(sub))
    source = args.get("source")
    if source:
        if source not in SOURCES:
            raise params.bad("source", source, f"可选 {'、'.join(SOURCES)}")
        stmt = stmt.where(Issue.source == source)
    cell_code = args.get("cell")
    if cell_code:
        if not (str(cell_code).isdigit() and len(str(cell_code)) == 15):
            raise params.bad("cell", cell_code, "网格编码应为 15 位数字")
        stmt = stmt.where(Issue.cell_id.in_(select(Cell.id).where(Cell.code == cell_code)))
    bbox = params.parse_bbox(args.get("bbox"))
    if bbox:
        minlon, minlat, maxlon, maxlat = bbox
        stmt = stmt.where(Issue.lon.between(minlon, maxlon), Issue.lat.between(minlat, maxlat))
    overdue = params.parse_bool(args.get("overdue"), name="overdue")
    if overdue is True:
        stmt = stmt.where(Issue.status.in_(OPEN_STATUSES), Issue.deadline < today_local())
    elif overdue is False:
        stmt = stmt.where(
            or_(
                Issue.status.not_in(OPEN_STATUSES),
                Issue.deadline.is_(None),
                Issue.deadline >= today_local(),
            )
        )
    if args.get("updated_since"):
        since = params.parse_datetime(args["updated_since"], name="updated_since")
        changed = exists().where(IssueEvent.issue_id == Issue.id, IssueEvent.at >= since)
        stmt = stmt.where(or_(Issue.created_at >= since, changed))
    return stmt


def _with_issue_relations(stmt: Select) -> Select:
    return stmt.options(
        selectinload(Issue.co_units).selectinload(IssueUnit.unit),
        selectinload(Issue.category),
        selectinload(Issue.cell),
        selectinload(Issue.unit),
        selectinload(Issue.events),
    )


def list_issues(session, user: User, args: Mapping) -> dict:
    """``{"items", "total", "limit", "offset"}`` of issues the user may see, newest first."""
    access.require(user, "read")
    stmt = _with_issue_relations(issue_query(session, user, args).order_by(Issue.id.desc()))
    rows, total, limit, offset = _page(session, stmt, args)
    today = today_local()
    return {
        "items": _scoped_links(
            session, user, [serializers.issue_to_dict(i, today=today) for i in rows]
        ),
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _scoped_links(session, user: User, items: list[dict]) -> list[dict]:
    """Blank ``recurrence_of`` / ``duplicate_of`` links into problems the user cannot read."""
    links = ("recurrence_of", "duplicate_of")
    readable = access.readable_issue_ids(
        session, user, [item.get(k) for item in items for k in links]
    )
    for item in items:
        for key in links:
            if item.get(key) is not None and item[key] not in readable:
                item[key] = None
    return items


def _issue_dict(session, user: User, issue: Issue) -> dict:
    return _scoped_links(session, user, [serializers.issue_to_dict(issue, detail=True)])[0]


def issue_detail(session, user: User, issue_id: int) -> dict:
    issue = access.get_issue(session, user, issue_id)
    return _issue_dict(session, user, issue)


def _text(body: Mapping, name: str, *, required: bool = False, max_len: int = 2000) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            msg = f"字段 {name} 不能为空"
            raise FieldError(msg, name)
        return None
    if not isinstance(value, str):
        msg = f"字段 {name} 应为字符串: {value!r}"
        raise FieldError(msg, name)
    if len(value) > max_len:
        msg = f"字段 {name} 过长 (超过 {max_len} 字)"
        raise FieldError(msg, name)
    return value.strip()


def _number(body: Mapping, name: str) -> Any:
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = f"字段 {name} 应为数字: {params.shown(value)}"
        raise FieldError(msg, name)
    # A degree value: finite, short, within ±180 (the intake narrows it to the county).
    return params.parse_float(value, name=name, low=-180.0, high=180.0)


def _field_of(message: str) -> str | None:
    return next((field for word, field in FIELD_WORDS if word in message), None)


def issue_input_from_json(session, body: Any) -> IssueInput:
    """Check a JSON intake body's types and names; the intake service checks the rest."""
    if not isinstance(body, Mapping):
        msg = "请求体应为 JSON 对象"
        raise FieldError(msg)
    description = _text(body, "description", required=True)
    code = _text(body, "category", max_len=60)
    if code and match_category(session, code).pending:
        msg = f"字段 category 无法识别: {code!r} (应为类别编码, 如 0302)"
        raise FieldError(msg, "category")
    address = _text(body, "address", max_len=255)
    lon, lat = _number(body, "lon"), _number(body, "lat")
    if (lon is None) != (lat is None):
        missing = "lat" if lat is None else "lon"
        msg = f"字段 {missing} 缺失: lon 和 lat 必须同时提供"
        raise FieldError(msg, missing)
    if lon is None and not address:
        msg = "字段 address 或 lon/lat 必须提供其一"
        raise FieldError(msg, "address")
    coord_system = (_text(body, "coord_system", max_len=10) or "wgs84").lower()
    if coord_system not in COORD_SYSTEMS:
        msg = f"字段 coord_system 无效: {coord_system!r} (可选 {', '.join(COORD_SYSTEMS)})"
        raise FieldError(msg, "coord_system")
    # No source: the reporter's default (自查 for a unit head); the access rule decides
    # which sources and dates each role may set (access.check_filing, in create_issue).
    source = _text(body, "source", max_len=30)
    found_raw = body.get("found_at")
    if found_raw is not None and not isinstance(found_raw, str):
        msg = f"字段 found_at 应为 ISO 8601 日期时间字符串: {params.shown(found_raw)}"
        raise FieldError(msg, "found_at")
    found_at = params.parse_datetime(found_raw, name="found_at")
    return IssueInput(
        description=description,
        category=code,
        address=address,
        lon=lon,
        lat=lat,
        coord_system=coord_system,
        source=source,
        found_at=found_at,
        extra={"note": _text(body, "note")},
    )


def create_issue_from_json(session, user: User, body: Any) -> tuple[int, dict]:
    """Report a problem; answer (201, issue) or (202, receipt) when it lands elsewhere."""
    access.require(user, "report")
    data = issue_input_from_json(session, body)
    try:
        issue = create_issue(session, user, data, via="api")
    except ValidationError as exc:
        if getattr(exc, "field", None):
            raise
        raise FieldError(str(exc), _field_of(str(exc))) from None
    session.flush()
    if not access.can_read_issue(user, issue):
        # Queued for placement (no unit yet): the reporter only learns that it arrived.
        return 202, {"id": issue.id, "status": issue.status, "message": "已上报，等待创卫办处理"}
    return 201, _issue_dict(session, user, issue)


def act_on_issue(session, user: User, issue_id: int, body: Any) -> dict:
    """Apply a workflow action; a stale ``version`` answers 409 and changes nothing."""
    # Read access first: an invisible issue answers 404 whatever the body says; a role that
    # can change nothing (leaders) gets 403 before its body is even looked at.
    access.get_issue(session, user, issue_id)
    if not any(access.may(user, perm) for _, _, perm in TRANSITIONS.values()):
        msg = "没有权限执行此操作"
        raise ForbiddenError(msg)
    if not isinstance(body, Mapping):
        msg = "请求体应为 JSON 对象"
        raise FieldError(msg)
    action = body.get("action")
    if not isinstance(action, str) or action not in TRANSITIONS:
        msg = f"字段 action 无效: {action!r} (可选 {', '.join(TRANSITIONS)})"
        raise FieldError(msg, "action")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        msg = f"字段 version 应为整数: {version!r}"
        raise FieldError(msg, "version")
    note = _text(body, "note")
    if action == "submit":
        # The same rule as the web form: 整改措施 and an after photo (POST .../photos first).
        try:
            issue = issue_actions.submit_issue(
                session, user, issue_id, measures=_text(body, "measures"), note=note,
                expected_version=version)
        except ValidationError as exc:
            raise FieldError(str(exc), "measures") from None
        session.flush()
        return _issue_dict(session, user, issue)
    try:
        issue = transition(session, user, issue_id, action, note=note, expected_version=version)
    except ValidationError as exc:
        # The workflow's only field check is the reason a failed verification needs.
        raise FieldError(str(exc), "note") from None
    session.flush()
    return _issue_dict(session, user, issue)


def add_issue_photos(session, user: User, issue_id: int, form: Mapping, files, *,
                     settings: Settings) -> tuple[dict, list]:
    """Add 整改前 (``kind=before``) or 整改后 (``after``) photos from a multipart upload;
    return the issue's JSON and the new photo rows (whose files the caller removes if its
    commit fails). ``settings`` says where photos go and how large one may be."""
    kind = (form.get("kind") or "").strip()
    # The access check comes first inside add_photos; the version is checked after it.
    issue, rows = issue_actions.add_photos(
        session, user, issue_id, kind, files, expected_version=form.get("version"),
        settings=settings, note=_text(form, "note"))
    session.flush()
    return _issue_dict(session, user, issue), rows


def place_issue(session, user: User, issue_id: int, body: Any) -> dict:
    """Place a 待定位 problem at lon/lat (WGS-84, or converted from gcj02/bd09)."""
    if not isinstance(body, Mapping):
        msg = "请求体应为 JSON 对象"
        raise FieldError(msg)
    access.get_issue(session, user, issue_id, action="place")
    lon, lat = _number(body, "lon"), _number(body, "lat")
    for name, value in (("lon", lon), ("lat", lat)):
        if value is None:
            msg = f"字段 {name} 不能为空"
            raise FieldError(msg, name)
    coord_system = (_text(body, "coord_system", max_len=10) or "wgs84").lower()
    if coord_system not in COORD_SYSTEMS:
        msg = f"字段 coord_system 无效: {coord_system!r} (可选 {', '.join(COORD_SYSTEMS)})"
        raise FieldError(msg, "coord_system")
    try:
        lon = parse_coordinate(lon, field="lon (经度)", low=73.0, high=136.0)
        lat = parse_coordinate(lat, field="lat (纬度)", low=3.0, high=54.0)
        wlon, wlat = to_wgs84(lon, lat, source=coord_system)
        issue = place_manually(session, user, issue_id, float(wlon), float(wlat))
    except GisError as exc:
        raise FieldError(str(exc), _field_of(str(exc))) from None
    except ValidationError as exc:
        raise FieldError(str(exc), _field_of(str(exc)) or "lon") from None
    session.flush()
    return _issue_dict(session, user, issue)


def photo_path(session, user: User, issue_id: int, photo_id: int, *, photo_dir: Path) -> Path:
    """The served (EXIF-stripped) file, under ``photo_dir``, of a photo of an issue the user may read."""
    return photo_file(session, user, issue_id, photo_id, photo_dir=photo_dir)


# ---- cells, units, patrols, reports ----------------------------------------------------


def _open_counts(session, user: User, cell_ids: list[int]) -> dict[int, int]:
    if not cell_ids:
        return {}
    stmt = access.scope_issues(
        select(Issue.cell_id, func.count()).where(
            Issue.cell_id.in_(cell_ids), Issue.status.in_(OPEN_STATUSES)
        ),
        user,
    )
    return dict(session.execute(stmt.group_by(Issue.cell_id)).all())


def cell_query(session, user: User, args: Mapping) -> Select:
    grid = active_grid(session)
    stmt = access.scope_cells(select(Cell), user)
    stmt = stmt.where(Cell.grid_id == grid.id) if grid else stmt.where(false())
    bbox = params.parse_bbox(args.get("bbox"))
    if bbox:
        minlon, minlat, maxlon, maxlat = bbox
        stmt = stmt.where(
            Cell.maxx >= minlon, Cell.minx <= maxlon, Cell.maxy >= minlat, Cell.miny <= maxlat
        )
    if args.get("unit"):
        unit_id = _resolve_unit(session, user, args["unit"])
        stmt = stmt.where(Cell.unit_id == unit_id) if unit_id else stmt.where(false())
    code = args.get("code")
    if code:
        code = str(code)
        if not (code.isdigit() and 1 <= len(code) <= 15):
            raise params.bad("code", code, "网格编码应为最多 15 位数字")
        # A shorter code is a prefix: county, sub-district or community.
        stmt = (
            stmt.where(Cell.code == code)
            if len(code) == 15
            else stmt.where(Cell.code.startswith(code))
        )
    return stmt


def list_cells(session, user: User, args: Mapping) -> dict:
    """Cells of the active grid the user may see; ``format=geojson`` for a FeatureCollection."""
    access.require(user, "read")
    fmt = args.get("format") or "json"
    if fmt not in ("json", "geojson"):
        raise params.bad("format", fmt, "可选 json, geojson")
    stmt = cell_query(session, user, args).options(selectinload(Cell.unit)).order_by(Cell.code)
    rows, total, limit, offset = _page(session, stmt, args)
    counts = _open_counts(session, user, [c.id for c in rows])
    if fmt == "geojson":
        return {
            "type": "FeatureCollection",
            "features": [serializers.cell_feature(c, open_count=counts.get(c.id, 0)) for c in rows],
            "total": total,
            "numberMatched": total,
            "numberReturned": len(rows),
            "limit": limit,
            "offset": offset,
        }
    return {
        "items": [serializers.cell_to_dict(c, open_count=counts.get(c.id, 0)) for c in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def cell_detail(session, user: User, cell_id: int) -> dict:
    cell = access.get_cell(session, user, cell_id)
    counts = _open_counts(session, user, [cell.id])
    return serializers.cell_to_dict(cell, open_count=counts.get(cell.id, 0), geometry=True)


def _unit_stats(session, user: User, unit_ids: list[int]) -> tuple[dict, dict]:
    if not unit_ids:
        return {}, {}
    grid = active_grid(session)
    cells = {}
    if grid:
        cells = dict(
            session.execute(
                select(Cell.unit_id, func.count())
                .where(Cell.grid_id == grid.id, Cell.unit_id.in_(unit_ids))
                .group_by(Cell.unit_id)
            ).all()
        )
    opened = dict(
        session.execute(
            access.scope_issues(
                select(Issue.unit_id, func.count()).where(
                    Issue.unit_id.in_(unit_ids), Issue.status.in_(OPEN_STATUSES)
                ),
                user,
            ).group_by(Issue.unit_id)
        ).all()
    )
    return cells, opened


def list_units(session, user: User, args: Mapping) -> dict:
    access.require(user, "read")
    stmt = access.scope_units(select(Unit), user).order_by(Unit.id)
    rows, total, limit, offset = _page(session, stmt, args)
    cells, opened = _unit_stats(session, user, [u.id for u in rows])
    items = [
        serializers.unit_to_dict(u, cell_count=cells.get(u.id, 0), open_count=opened.get(u.id, 0))
        for u in rows
    ]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def unit_detail(session, user: User, unit_id: int) -> dict:
    access.require(user, "read")
    unit = access.get_unit(session, user, unit_id)
    cells, opened = _unit_stats(session, user, [unit.id])
    return serializers.unit_to_dict(
        unit, cell_count=cells.get(unit.id, 0), open_count=opened.get(unit.id, 0)
    )


def list_patrols(session, user: User, args: Mapping) -> dict:
    access.require(user, "read")
    stmt = (
        access.scope_patrols(select(Patrol), user)
        .options(selectinload(Patrol.stops), selectinload(Patrol.inspector))
        .order_by(Patrol.id.desc())
    )
    rows, total, limit, offset = _page(session, stmt, args)
    return {
        "items": [serializers.patrol_to_dict(p) for p in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def patrol_detail(session, user: User, patrol_id: int) -> dict:
    access.require(user, "read")
    return serializers.patrol_to_dict(access.get_patrol(session, user, patrol_id), detail=True)


def list_reports(session, user: User, args: Mapping) -> dict:
    """Published monthly assessments (month, red and black lists), newest first."""
    access.require(user, "read")
    stmt = select(Assessment).order_by(Assessment.month.desc(), Assessment.id.desc())
    rows, total, limit, offset = _page(session, stmt, args)
    return {
        "items": [serializers.assessment_to_dict(a) for a in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }
