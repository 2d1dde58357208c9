"""Bulk placement of large coordinate lists: the same result as ``create_issue`` per row.

A 100,000-row list cannot go through the intake service one row at a time (a category
look-up, a county check, a locator call, two neighbour queries and an ORM flush each).
This path computes what ``create_issue`` would store for every row of an import, but
column by column: values are parsed once per distinct value, coordinates converted and
range-checked as numpy arrays, cells found by one locator call, duplicates and
recurrences by one grid-bucket join in metres, and the rows written with Core
``INSERT ... RETURNING`` in chunks.

Behaviour kept from the per-row path (``imports.sheet.import_sheet``): the first error of
each row, worded the same ("第N行: 经度 ..."); all-or-nothing unless ``skip_errors``;
re-import and in-file duplicates skipped by ``external_ref``; routing by category
functional unit, else the cell's unit, else the list's 责任单位; deadlines in working
days; one "report" event per issue with the geocode, possible duplicates (earlier rows
of the same list count, as they would once flushed), recurrence and calendar warnings.
Where the per-row path's choice is unordered (which recently closed neighbour is the
recurrence), the bulk path takes the lowest id.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
from sqlalchemy import bindparam, func, insert, select, update

from app.models import (
    Category,
    Cell,
    Issue,
    IssueEvent,
    IssueUnit,
    Unit,
    User,
    now_local,
    today_local,
)
from app.services.core import access
from app.services.core.errors import ValidationError
from app.services.core.tabular import cell_text
from app.services.core.text import clean_text
from app.services.grids.cells import active_grid, locator_for
from app.services.grids.geocoding import geocoder_for
from app.services.imports.batching import open_batch
from app.services.imports.columns import Cached, coordinate_column, factorize
from app.services.imports.neighbours import find_neighbours
from app.services.imports.rows import (
    ImportResult,
    batch_seq_of,
    coord_system_of,
    describe_row,
    existing_refs,
    parse_deadline,
    parse_found_date,
    row_ref,
)
from app.services.issues.intake import INTAKE, IssueInput, validate_input
from app.services.tables.category_match import CategoryMatcher, pending_deadline_days
from app.services.tables.unit_names import UnitMatcher
from app.services.tables.unit_routing import choose_routing
from app.services.tables.workdays import WorkCalendar, load_calendar
from gis.crs import to_wgs84

BULK_THRESHOLD = 2_000
CHUNK_ROWS = 5_000
COUNTY_MARGIN_DEG = 0.05  # app.services.issues.intake.check_in_county's margin (about 5 km)


def wants_bulk(records: list[dict], mapping: dict[str, int], *, threshold: int) -> bool:
    """Whether a list is large enough, and carries coordinates, for the bulk path."""
    return len(records) > threshold and {"lon", "lat"} <= mapping.keys()


def _county_box(session) -> tuple[float, float, float, float] | None:
    grid = active_grid(session)
    if grid is None:
        return None
    box = session.execute(
        select(
            func.min(Cell.minx), func.min(Cell.miny), func.max(Cell.maxx), func.max(Cell.maxy)
        ).where(Cell.grid_id == grid.id)
    ).one()
    return None if box[0] is None else tuple(float(v) for v in box)


def import_records_bulk(
    session,
    user: User | None,
    records: list[dict],
    *,
    filename: str,
    source: str,
    skip_errors: bool = False,
    geocoder=None,
    dry_run: bool = False,
    calendar: WorkCalendar | None = None,
    batch_id: int | None = None,
) -> ImportResult:
    """Validate, place, route and insert a list's rows in bulk (see the module doc).

    ``records`` are ``core.tabular.sheet_records`` dicts; ``source`` is the checked default
    source; ``batch_id`` the feedback batch the rows join (default: a new batch named
    after the file). Writes go into the caller's transaction, which commits or rolls back.
    """
    if user is not None:
        access.require(user, "report")
    result = ImportResult(filename=filename, total=len(records), dry_run=dry_run)
    n = len(records)
    calendar = calendar or load_calendar(session)
    rows = [r["_row"] for r in records]
    errors: list[dict[int, str]] = [{} for _ in range(9)]  # one per check, in _prepare's order
    col = {
        name: [r.get(name) for r in records]
        for name in (
            "seq",
            "description",
            "address",
            "category",
            "unit",
            "found_at",
            "deadline",
            "lon",
            "lat",
            "source",
            "remark",
            "coord_system",
        )
    }

    # 1. 发现时间, each distinct value parsed once (a future date is refused, as per row).
    today = today_local()
    codes, uniques = factorize(col["found_at"])
    parsed = []
    for value in uniques:
        try:
            parsed.append(parse_found_date(value, field_name="发现时间", today=today))
        except ValidationError:
            parsed.append(ValidationError)
    found: list[date | None] = [None] * n
    for i, code in enumerate(codes.tolist()):
        value = parsed[code] if code >= 0 else None
        if value is ValidationError or (code < 0 and col["found_at"][i] is not None):
            try:  # the scalar parser words the message with the row number
                value = parse_found_date(
                    col["found_at"][i], field_name=f"第{rows[i]}行: 发现时间", today=today
                )
            except ValidationError as exc:
                errors[0][i] = str(exc)
                value = None
        found[i] = value

    # 2. 整改时限 against the found date, per distinct (value, date); rows whose date
    # failed are not parsed, as the per-row path stops at their first error.
    codes, uniques = factorize(col["deadline"])
    deadline_cache: dict[tuple[int, date], object] = {}
    given_deadline: list[date | None] = [None] * n
    for i, code in enumerate(codes.tolist()):
        if i in errors[0] or (code < 0 and col["deadline"][i] is None):
            continue
        start = found[i] or today
        key = (code, start)
        value = deadline_cache.get(key)
        if value is None and key not in deadline_cache:
            try:
                value = parse_deadline(
                    uniques[code] if code >= 0 else col["deadline"][i],
                    start,
                    calendar,
                    field_name="整改时限",
                )
            except ValidationError:
                value = ValidationError
            deadline_cache[key] = value
        if value is ValidationError:
            try:
                value = parse_deadline(
                    col["deadline"][i], start, calendar, field_name=f"第{rows[i]}行: 整改时限"
                )
            except ValidationError as exc:
                errors[1][i] = str(exc)
                value = None
        given_deadline[i] = value

    # 3. 问题描述, cleaned of control and invisible characters as every door does.
    description = [
        describe_row(
            clean_text(v),
            category=col["category"][i],
            address=col["address"][i],
            has_point=col["lon"][i] not in (None, "") and col["lat"][i] not in (None, ""),
        )
        for i, v in enumerate(col["description"])
    ]
    for i, text in enumerate(description):
        if not text:
            errors[2][i] = f"第{rows[i]}行: 问题描述 不能为空"
        elif len(text) > 2000:
            errors[2][i] = f"第{rows[i]}行: 问题描述 过长 (超过 2000 字)"

    # 4. 问题类别, one look-up per distinct text; a text matching nothing is 待分类 (kept
    # with its words), never a rejected row.
    categories = {c.id: c for c in session.execute(select(Category)).scalars()}
    matcher = CategoryMatcher(session)
    category_of = Cached(matcher.match)
    cat_id = np.zeros(n, dtype=np.int64)
    cat_match = []
    for i, value in enumerate(col["category"]):
        found_cat = category_of(cell_text(value) or None)
        cat_match.append(found_cat)
        if found_cat.category is not None:
            cat_id[i] = found_cat.category.id

    # 5. 来源, through validate_input itself so the aliases stay in one place.
    def clean_source(text: str):
        try:
            return validate_input(session, IssueInput(description="-", source=text))["source"]
        except ValidationError:
            return None

    source_of = Cached(clean_source)
    sources: list[str | None] = [None] * n
    for i, value in enumerate(col["source"]):
        text = cell_text(value) or source
        sources[i] = source_of(text)
        if sources[i] is None:
            errors[4][i] = _source_error(session, text, where=f"第{rows[i]}行: ")

    # 6-8. 经度/纬度: both or neither, parsed, converted to WGS-84.
    lon_in = [cell_text(v) if isinstance(v, str) else v for v in col["lon"]]
    lat_in = [cell_text(v) if isinstance(v, str) else v for v in col["lat"]]
    has_lon = np.array([v not in (None, "") for v in lon_in], dtype=bool)
    has_lat = np.array([v not in (None, "") for v in lat_in], dtype=bool)
    for i in np.flatnonzero(has_lon != has_lat).tolist():
        errors[5][i] = f"第{rows[i]}行: 经度和纬度 必须同时填写"
    both = has_lon & has_lat
    lon_err: dict[int, str] = {}
    lat_err: dict[int, str] = {}
    lon = coordinate_column(
        [v if b else None for v, b in zip(lon_in, both, strict=True)],
        label="经度",
        low=73.0,
        high=136.0,
        rows=rows,
        errors=lon_err,
    )
    lat = coordinate_column(
        [v if b else None for v, b in zip(lat_in, both, strict=True)],
        label="纬度",
        low=3.0,
        high=54.0,
        rows=rows,
        errors=lat_err,
    )
    errors[6].update(lon_err)
    errors[7].update({i: m for i, m in lat_err.items() if i not in lon_err})
    system_of = Cached(lambda key: coord_system_of({"coord_system": key[0], "remark": key[1]}))
    systems = np.array(
        [system_of((r.get("coord_system"), r.get("remark"))) for r in records], dtype=object
    )
    ok = both & ~np.isnan(lon) & ~np.isnan(lat)
    wlon, wlat = np.full(n, np.nan), np.full(n, np.nan)
    for system in ("wgs84", "gcj02", "bd09"):
        sel = ok & (systems == system)
        if sel.any():
            x, y = to_wgs84(lon[sel], lat[sel], source=system)
            wlon[sel], wlat[sel] = x, y

    # 9. The county range, checked on the converted points.
    box = _county_box(session)
    if box is not None:
        minx, miny, maxx, maxy = box
        m = COUNTY_MARGIN_DEG
        with np.errstate(invalid="ignore"):
            inside = (
                (wlon >= minx - m) & (wlon <= maxx + m) & (wlat >= miny - m) & (wlat <= maxy + m)
            )
        for i in np.flatnonzero(ok & ~inside).tolist():
            errors[8][i] = f"第{rows[i]}行: 经纬度 ({wlon[i]:.6f}, {wlat[i]:.6f}) 不在本县城范围内"

    # The first error of each row, in the order the per-row path meets them.
    first: dict[int, str] = {}
    for check in errors:
        for i, message in check.items():
            first.setdefault(i, message)
    for i in sorted(first):
        result.rejected.append((rows[i], first[i]))

    # Dedupe by import key: against the database in one pass, then within the list.
    valid = [i for i in range(n) if i not in first]
    refs = {i: row_ref(records[i], found[i]) for i in valid}
    existing = existing_refs(session, list(refs.values()))
    seen: dict[str, int] = {}
    todo: list[int] = []
    for i in valid:
        ref = refs[i]
        if ref in existing:
            result.skipped_rows.append((rows[i], "已导入过 (跳过)"))
        elif ref in seen:
            result.skipped_rows.append((rows[i], f"与第{seen[ref]}行重复 (跳过)"))
        else:
            seen[ref] = rows[i]
            todo.append(i)
    result.skipped = len(result.skipped_rows)
    result.valid = len(todo)
    if result.rejected and not skip_errors:
        result.aborted = True
        return result
    if not todo:
        return result
    if batch_id is None:
        batch_id = open_batch(session, user, filename=filename, source=source).id
    _place_and_insert(
        session,
        user,
        records,
        todo,
        result=result,
        refs=refs,
        found=found,
        given_deadline=given_deadline,
        description=description,
        cat_id=cat_id,
        categories=categories,
        sources=sources,
        wlon=wlon,
        wlat=wlat,
        systems=systems,
        calendar=calendar,
        geocoder=geocoder,
        filename=filename,
        cat_match=cat_match,
        batch_id=batch_id,
    )
    return result


def _source_error(session, text: str, *, where: str) -> str:
    """validate_input's own message for a source it refuses."""
    try:
        validate_input(session, IssueInput(description="-", source=text), where=where)
    except ValidationError as exc:
        return str(exc)
    return f"{where}来源 无法识别: {text!r}"


def _place_and_insert(
    session,
    user,
    records,
    todo,
    *,
    result,
    refs,
    found,
    given_deadline,
    description,
    cat_id,
    categories,
    sources,
    wlon,
    wlat,
    systems,
    calendar,
    geocoder,
    filename,
    cat_match,
    batch_id,
) -> None:
    """Geocode the rows without coordinates, locate, route, date and insert ``todo``."""
    idx = np.asarray(todo)
    m = len(idx)
    lon, lat = wlon[idx].copy(), wlat[idx].copy()
    method = np.where(systems[idx] == "wgs84", "coordinates", "coordinates_" + systems[idx])
    method = method.astype(object)
    confidence = np.where(np.isnan(lon), 0.0, 1.0)
    candidates: dict[int, list] = {}
    address = [clean_text(records[i].get("address"), multiline=False) or None for i in todo]

    # Rows without coordinates: the geocoder, built once, each distinct address once.
    need = [k for k in range(m) if np.isnan(lon[k])]
    if any(address[k] for k in need) and geocoder is None:
        geocoder = geocoder_for(session)
    geocode = Cached(lambda text: geocoder.geocode_address(text))
    for k in need:
        if not address[k] or geocoder is None:
            method[k], confidence[k] = "none", 0.0
            continue
        hit = geocode(address[k])
        method[k] = hit.method
        confidence[k] = float(hit.confidence or 0.0)
        candidates[k] = list(hit.candidates or [])[:5]
        if hit.lon is not None:
            lon[k], lat[k] = float(hit.lon), float(hit.lat)
    threshold = INTAKE.min_confidence
    needs_placement = np.isnan(lon) | (confidence < threshold)
    lon[needs_placement] = np.nan
    lat[needs_placement] = np.nan

    # Cells, with the cached locator of the active grid.
    cell = np.zeros(m, dtype=np.int64)
    placed = ~np.isnan(lon)
    grid = active_grid(session)
    cell_unit: dict[int, int | None] = {}
    if grid is not None and placed.any():
        locator, ids = locator_for(session, grid.id)
        hit = locator.locate(lon[placed], lat[placed])
        cell[placed] = np.where(hit >= 0, ids[np.clip(hit, 0, None)], 0)
        cell_unit = dict(
            session.execute(select(Cell.id, Cell.unit_id).where(Cell.grid_id == grid.id)).all()
        )
    outside = placed & (cell == 0)

    # Routing: the list's unit when it names a known one, else the category's functional
    # unit, else the cell's unit (routing_units.choose_routing, as route_issue decides).
    units = UnitMatcher(session)
    unit_name = dict(session.execute(select(Unit.id, Unit.name)).all())
    listed = [clean_text(records[i].get("unit"), max_len=200) or None for i in todo]
    routing = []
    for k, i in enumerate(todo):
        cat = categories.get(int(cat_id[i]))
        list_ids = [u.id for u in units.match(listed[k]).units] if listed[k] else []
        routing.append(
            choose_routing(
                list_ids=list_ids,
                listed_text=listed[k],
                category_unit_id=cat.functional_unit_id if cat is not None else None,
                cell_unit_id=cell_unit.get(int(cell[k])) if cell[k] else None,
                name_of=unit_name.get,
            )
        )
    unit_id = [r.unit_id for r in routing]
    pending_days = pending_deadline_days(session)

    # Deadlines in working days, one sum per (found date, days); warnings accumulate on
    # the shared calendar row by row, as they do through create_issue.
    now = now_local()
    found_at = [datetime.combine(found[i], datetime.min.time()) if found[i] else now for i in todo]
    sums: dict[tuple[date, int], date] = {}
    deadline: list[date] = []
    warnings: list[list[str] | None] = []
    snapshot: list[str] | None = None
    for k, i in enumerate(todo):
        if given_deadline[i] is not None:
            deadline.append(given_deadline[i])
        else:
            cat = categories.get(int(cat_id[i]))
            key = (found_at[k].date(), cat.deadline_days if cat is not None else pending_days)
            if key not in sums:
                sums[key] = calendar.add_workdays(*key)
            deadline.append(sums[key])
        if calendar.warnings and (snapshot is None or len(snapshot) != len(calendar.warnings)):
            snapshot = sorted(calendar.warnings)
        warnings.append(snapshot)

    dups, recur = find_neighbours(session, lon, lat, cat_id[idx], found_at)

    user_id = user.id if user else None
    issue_table = Issue.__table__
    issue_rows = []
    for k, i in enumerate(todo):
        issue_rows.append(
            {
                "status": "reported",
                "category_id": int(cat_id[i]) or None,
                "description": description[i],
                "address": address[k],
                "source": sources[i],
                "lon": None if np.isnan(lon[k]) else float(lon[k]),
                "lat": None if np.isnan(lat[k]) else float(lat[k]),
                "cell_id": int(cell[k]) or None,
                "unit_id": unit_id[k],
                "unit_source": routing[k].unit_source,
                "listed_unit": listed[k],
                "category_text": cat_match[i].text or None,
                "category_pending": cat_match[i].pending,
                "batch_id": batch_id,
                "batch_seq": batch_seq_of(records[i]),
                "geocode_method": str(method[k]),
                "geocode_confidence": float(confidence[k]),
                "needs_placement": bool(needs_placement[k]),
                "outside_grid": bool(outside[k]),
                "found_at": found_at[k],
                "created_at": now,
                "deadline": deadline[k],
                "rework_count": 0,
                "recurrence_of_id": recur.get(k),
                "external_ref": refs[i],
                "created_by_id": user_id,
                "version": 1,
            }
        )
    # RETURNING the import key with the id: asking for the ids in parameter order makes
    # SQLite (no sentinel column) fall back to one INSERT per row.
    id_of: dict[str, int] = {}
    stmt = insert(issue_table).returning(issue_table.c.id, issue_table.c.external_ref)
    for start in range(0, m, CHUNK_ROWS):
        chunk = issue_rows[start : start + CHUNK_ROWS]
        id_of.update((ref, id_) for id_, ref in session.execute(stmt, chunk).all())
    new_ids = [id_of[refs[i]] for i in todo]
    conflicts = [(new_ids[k], r.conflict) for k, r in enumerate(routing) if r.conflict]
    if conflicts:
        # Only rows whose list and rules disagree carry a conflict; the others keep SQL NULL.
        session.execute(
            update(issue_table)
            .where(issue_table.c.id == bindparam("_id"))
            .values(routing_conflict=bindparam("_conflict")),
            [{"_id": issue_id, "_conflict": c} for issue_id, c in conflicts],
        )
    co_units = [
        {"issue_id": new_ids[k], "unit_id": u}
        for k, r in enumerate(routing)
        for u in r.co_unit_ids
        if u != r.unit_id
    ]
    if co_units:
        session.execute(insert(IssueUnit.__table__), co_units)
    if candidates:
        # Only geocoded rows carry candidates; the others keep SQL NULL, as through the ORM.
        session.execute(
            update(issue_table)
            .where(issue_table.c.id == bindparam("_id"))
            .values(geocode_candidates=bindparam("_candidates")),
            [{"_id": new_ids[k], "_candidates": c} for k, c in candidates.items()],
        )

    events = []
    for k, i in enumerate(todo):
        data: dict = {"geocode": {"method": str(method[k]), "confidence": float(confidence[k])}}
        data["category"] = {
            "method": cat_match[i].method,
            "score": cat_match[i].score,
            "deadline_default": cat_match[i].category is None and given_deadline[i] is None,
        }
        if k in dups:
            data["possible_duplicates"] = sorted(
                int(v) if v >= 0 else new_ids[-int(v) - 1] for v in dups[k].tolist()
            )
        if k in recur:
            data["recurrence_of"] = recur[k]
        if warnings[k]:
            data["calendar_warnings"] = warnings[k]
        remark = cell_text(records[i].get("remark"))
        row = records[i]["_row"]
        events.append(
            {
                "issue_id": new_ids[k],
                "at": found_at[k],
                "user_id": user_id,
                "action": "report",
                "from_status": None,
                "to_status": "reported",
                "note": clean_text(
                    f"导入自 {filename} 第{row}行" + (f"；备注: {remark}" if remark else "")
                ),
                "data": data,
            }
        )
    event_table = IssueEvent.__table__
    for start in range(0, m, CHUNK_ROWS):
        session.execute(insert(event_table), events[start : start + CHUNK_ROWS])

    result.imported = m
    result.queued = int(needs_placement.sum())
    result.placed = m - result.queued
    result.issue_ids = new_ids
    result.issue_rows = [records[i]["_row"] for i in todo]
