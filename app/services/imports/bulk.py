"""Bulk placement of large coordinate lists: the same result as ``create_issue`` per row.

A 100,000-row list cannot go through the intake service one row at a time (a category
look-up, a county check, a locator call, two neighbour queries and an ORM flush each).
This path computes what ``create_issue`` would store for every row of an import, but
column by column: values are parsed once per distinct value, coordinates converted and
range-checked as numpy arrays, cells found by one locator call, duplicates and
recurrences by one grid-bucket join in metres, and the rows written with Core
``INSERT ... RETURNING`` in chunks.

Behaviour kept from the per-row path (``importer.import_sheet``): the first error of
each row, worded the same ("第N行: 经度 ..."); all-or-nothing unless ``skip_errors``;
re-import and in-file duplicates skipped by ``external_ref``; routing by category
functional unit, else the cell's unit, else the list's 责任单位; deadlines in working
days; one "report" event per issue with the geocode, possible duplicates (earlier rows
of the same list count, as they would once flushed), recurrence and calendar warnings.
Where the per-row path's choice is unordered (which recently closed neighbour is the
recurrence), the bulk path takes the lowest id.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from app.models import (
    OPEN_STATUSES,
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
from app.services.core.text import clean_text
from app.services.grids.cells import active_grid, locator_for
from app.services.imports.importer import (
    ImportResult,
    _existing_refs,
    _text,
    batch_seq_of,
    coord_system_of,
    describe_row,
    parse_deadline,
    parse_found_date,
    row_ref,
)
from app.services.issues.intake import INTAKE, IssueInput, validate_input
from app.services.tables.categories import CategoryMatcher, pending_deadline_days
from app.services.tables.unit_names import UnitMatcher
from app.services.tables.unit_routing import choose_routing
from app.services.tables.workdays import WorkCalendar, load_calendar
from gis.crs import parse_coordinate, to_wgs84
from gis.errors import GisError

BULK_THRESHOLD = 2_000
CHUNK_ROWS = 5_000
COUNTY_MARGIN_DEG = 0.05  # app.services.issues.intake.check_in_county's margin (about 5 km)
_SIMPLE_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"


def wants_bulk(records: list[dict], mapping: dict[str, int], *, threshold: int) -> bool:
    """Whether a list is large enough, and carries coordinates, for the bulk path."""
    return len(records) > threshold and {"lon", "lat"} <= mapping.keys()


# ---------------------------------------------------------------------- parsing columns


def _factorize(values: list) -> tuple[np.ndarray, list]:
    """Codes and distinct values of a column (None/NaN coded -1), hashing each once."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes, list(uniques)


def _coordinate_column(
    values: list, *, label: str, low: float, high: float, rows: list[int], errors: dict[int, str]
) -> np.ndarray:
    """Degrees per row (NaN where empty or wrong), as ``parse_coordinate`` would read them."""
    out = np.full(len(values), np.nan)
    simple_idx, simple_text, other_idx = [], [], []
    for i, value in enumerate(values):
        if value is None or value == "":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[i] = float(value)
        elif isinstance(value, str):
            simple_idx.append(i)
            simple_text.append(value)
        else:
            other_idx.append(i)
    if simple_idx:
        text = (
            pd.Series(simple_text, dtype=object)
            .str.strip()
            .str.replace("°", "", regex=False)
            .str.replace("，", ".", regex=False)
            .str.replace("。", ".", regex=False)
        )
        simple = text.str.fullmatch(_SIMPLE_NUMBER).to_numpy(dtype=bool)
        idx = np.asarray(simple_idx)
        out[idx[simple]] = pd.to_numeric(text[simple]).to_numpy(dtype=float)
        other_idx.extend(idx[~simple].tolist())
    bad = set(other_idx)
    with np.errstate(invalid="ignore"):
        wrong = ~np.isfinite(out) | (out < low) | (out > high)
    present = np.array([not (v is None or v == "") for v in values], dtype=bool)
    bad.update(np.flatnonzero(wrong & present).tolist())
    for i in sorted(bad):
        # The scalar parser reads the odd forms ("1e2", " 103.5° ") and words the errors.
        try:
            out[i] = parse_coordinate(
                values[i], field=f"第{rows[i]}行: {label}", low=low, high=high
            )
        except GisError as exc:
            out[i] = np.nan
            errors.setdefault(i, str(exc))
    return out


class _Cached:
    """Memoise a one-argument look-up over a column's distinct values."""

    def __init__(self, fn):
        self.fn = fn
        self.seen: dict = {}

    def __call__(self, key):
        if key not in self.seen:
            self.seen[key] = self.fn(key)
        return self.seen[key]


# ---------------------------------------------------------------------- neighbours


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """``app.services.issues.intake._metres`` over arrays (equirectangular, town scale)."""
    k = np.cos(np.radians((lat1 + lat2) / 2))
    return np.hypot((lon2 - lon1) * 111_320.0 * k, (lat2 - lat1) * 110_574.0)


# A row lists at most this many possible duplicates (the lowest ids): a list whose rows sit
# at a handful of points would otherwise make every row name every other (n² pairs).
MAX_NEIGHBOURS = 20
_SCAN_BLOCK = 32  # candidates looked at per query and round
_PAIR_BUDGET = 1_000_000  # pairs held at once (~40 MB of index arrays)


def _neighbour_pairs(
    qlon: np.ndarray,
    qlat: np.ndarray,
    qgroup: np.ndarray,
    clon: np.ndarray,
    clat: np.ndarray,
    cgroup: np.ndarray,
    *,
    radius_m: float,
    limit: int = MAX_NEIGHBOURS,
    earlier_only: bool = False,
    accept=None,
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, candidate index) pairs of the same group within ``radius_m``.

    Each query keeps the ``limit`` lowest candidate indexes that qualify (all of them when
    fewer qualify, which is every normal list). Points are bucketed on a grid in metres a
    little coarser than the radius, so every neighbour lies in one of the 3×3 buckets
    around a query; each bucket's candidates are scanned in index order, a block at a
    time, and kept by the exact rule ``_nearby`` applies (bounding box, then distance)
    until the query has ``limit``. Memory stays ``O(queries × limit + _PAIR_BUDGET)``
    however the points cluster.

    Parameters
    ----------
    qlon, qlat, qgroup
        Query points and their groups (category ids).
    clon, clat, cgroup
        Candidate points, in the order whose lowest indexes are preferred.
    radius_m
        The neighbourhood radius in metres.
    limit
        Most candidates kept per query.
    earlier_only
        The candidates are the queries themselves: keep only lower indexes.
    accept
        Optional ``(qi, ci) -> bool array``, a further condition on a pair.
    """
    empty = np.empty(0, dtype=np.int64)
    nq, nc = len(qlon), len(clon)
    if not nq or not nc:
        return empty, empty
    lat0 = float(np.mean(np.concatenate([qlat, clat])))
    kx, ky = 111_320.0 * max(math.cos(math.radians(lat0)), 0.1), 110_574.0
    size = radius_m * 1.1
    x0 = min(qlon.min(), clon.min())
    y0 = min(qlat.min(), clat.min())
    qbx = ((qlon - x0) * kx // size).astype(np.int64) + 1
    qby = ((qlat - y0) * ky // size).astype(np.int64) + 1
    cbx = ((clon - x0) * kx // size).astype(np.int64) + 1
    cby = ((clat - y0) * ky // size).astype(np.int64) + 1
    nx = int(max(qbx.max(), cbx.max())) + 2
    ny = int(max(qby.max(), cby.max())) + 2
    ckey = (cgroup.astype(np.int64) * nx + cbx) * ny + cby
    # Stable: within one bucket the candidates stay in index order.
    order = np.argsort(ckey, kind="stable")
    sorted_keys = ckey[order]
    sorted_rank = sorted_keys * nc + order if earlier_only else None
    qidx = np.arange(nq, dtype=np.int64)
    dlat = radius_m / 110_574.0
    best_q, best_c = empty, empty
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            key = (qgroup.astype(np.int64) * nx + qbx + dx) * ny + qby + dy
            lo = np.searchsorted(sorted_keys, key, side="left")
            hi = np.searchsorted(sorted_keys, key, side="right")
            if earlier_only:
                hi = np.minimum(hi, np.searchsorted(sorted_rank, key * nc + qidx, side="left"))
            pos = lo.astype(np.int64)
            got = np.zeros(nq, dtype=np.int64)
            found_q, found_c = [], []
            active = np.flatnonzero(pos < hi)
            chunk = max(_PAIR_BUDGET // _SCAN_BLOCK, 1)
            while len(active):
                for s0 in range(0, len(active), chunk):
                    a = active[s0 : s0 + chunk]
                    take = np.minimum(hi[a] - pos[a], _SCAN_BLOCK)
                    total = int(take.sum())
                    qi = np.repeat(a, take)
                    offset = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
                    ci = order[np.repeat(pos[a], take) + offset]
                    dlon = radius_m / (111_320.0 * np.maximum(np.cos(np.radians(qlat[qi])), 0.1))
                    ok = (
                        (clon[ci] >= qlon[qi] - dlon)
                        & (clon[ci] <= qlon[qi] + dlon)
                        & (clat[ci] >= qlat[qi] - dlat)
                        & (clat[ci] <= qlat[qi] + dlat)
                    )
                    ok &= _metres(qlon[qi], qlat[qi], clon[ci], clat[ci]) <= radius_m
                    if accept is not None and ok.any():
                        ok[ok] = accept(qi[ok], ci[ok])
                    # Rank of each qualifying pair within its query's block (pairs of one
                    # query are contiguous and in candidate order).
                    csum = np.cumsum(ok)
                    before = np.repeat(csum[np.cumsum(take) - take] - ok[np.cumsum(take) - take],
                                       take)
                    rank = csum - ok - before
                    keep = ok & (got[qi] + rank < limit)
                    found_q.append(qi[keep])
                    found_c.append(ci[keep])
                    np.add.at(got, qi[keep], 1)
                    pos[a] += take
                active = active[(pos[active] < hi[active]) & (got[active] < limit)]
            if found_q:
                best_q = np.concatenate([best_q, *found_q])
                best_c = np.concatenate([best_c, *found_c])
                # Trim only when some query now holds more than ``limit`` (never on a
                # normal list, where a row has a few neighbours at most).
                if np.bincount(best_q, minlength=nq).max() > limit:
                    best_q, best_c = _lowest_per_query(best_q, best_c, limit)
    return best_q, best_c


def _lowest_per_query(q: np.ndarray, c: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each query's ``limit`` lowest candidate indexes, sorted by (query, candidate)."""
    if not len(q):
        return q, c
    order = np.argsort(q * (int(c.max()) + 1) + c, kind="stable")
    q, c = q[order], c[order]
    first = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    rank = np.arange(len(q)) - np.repeat(first, np.diff(np.r_[first, len(q)]))
    keep = rank < limit
    return q[keep], c[keep]


def _find_neighbours(
    session, lon: np.ndarray, lat: np.ndarray, cat: np.ndarray, found_at: list[datetime]
) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Possible duplicates and recurrences of the placed rows, as ``create_issue`` finds.

    Returns ``dups`` (row → the ``MAX_NEIGHBOURS`` lowest of: stored open issues' ids
    ``>= 0`` and earlier rows of the list coded ``-(row index + 1)``) and ``recur``
    (row → lowest id of a recently closed issue of the same category nearby).
    """
    dup_r = INTAKE.duplicate_radius_m
    rec_r = INTAKE.recurrence_radius_m
    rec_days = INTAKE.recurrence_days
    q = np.flatnonzero(~np.isnan(lon) & (cat > 0))
    if not len(q):
        return {}, {}
    qlon, qlat, qcat = lon[q], lat[q], cat[q]
    margin_lat = max(dup_r, rec_r) / 110_574.0
    margin_lon = max(dup_r, rec_r) / (111_320.0 * 0.1)
    earliest = min(found_at[i] for i in q.tolist()) - timedelta(days=rec_days)
    rows = session.execute(
        select(Issue.id, Issue.lon, Issue.lat, Issue.category_id, Issue.status, Issue.closed_at)
        .where(
            Issue.category_id.in_(sorted({int(c) for c in qcat.tolist()})),
            Issue.lon.between(float(qlon.min()) - margin_lon, float(qlon.max()) + margin_lon),
            Issue.lat.between(float(qlat.min()) - margin_lat, float(qlat.max()) + margin_lat),
            or_(
                Issue.status.in_(OPEN_STATUSES),
                and_(Issue.status == "closed", Issue.closed_at >= earliest),
            ),
        )
        .order_by(Issue.id)
    ).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    elon = np.array([r[1] for r in rows], dtype=float)
    elat = np.array([r[2] for r in rows], dtype=float)
    ecat = np.array([r[3] for r in rows], dtype=np.int64)
    is_open = np.array([r[4] in OPEN_STATUSES for r in rows], dtype=bool)
    closed_at = np.array([r[5] or datetime.min for r in rows], dtype="datetime64[us]")

    # Open issues already stored, then earlier rows of this list (stored, status
    # reported, before the later row's check); stored ids sort before new ones.
    o = np.flatnonzero(is_open)
    qi, ci = _neighbour_pairs(qlon, qlat, qcat, elon[o], elat[o], ecat[o], radius_m=dup_r)
    rows_k, values = [q[qi]], [ids[o][ci]]
    qi, ci = _neighbour_pairs(
        qlon, qlat, qcat, qlon, qlat, qcat, radius_m=dup_r, earlier_only=True
    )
    rows_k.append(q[qi])
    values.append(-(q[ci] + 1))
    k_all, v_all = np.concatenate(rows_k), np.concatenate(values)
    # Lowest first: stored ids (>= 0) ascending, then list rows in row order.
    sort_v = np.where(v_all >= 0, v_all, (1 << 62) - v_all)
    order = np.lexsort((sort_v, k_all))
    k_all, v_all = k_all[order], v_all[order]
    dups: dict[int, np.ndarray] = {}
    if len(k_all):
        bounds = np.flatnonzero(np.r_[True, k_all[1:] != k_all[:-1], True])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            dups[int(k_all[a])] = v_all[a : min(b, a + MAX_NEIGHBOURS)]

    recur: dict[int, int] = {}
    c = np.flatnonzero(~is_open)
    if len(c):
        since = np.array([found_at[i] for i in q.tolist()], dtype="datetime64[us]")
        since = since - np.timedelta64(rec_days, "D")
        closed_c = closed_at[c]
        qi, ci = _neighbour_pairs(
            qlon, qlat, qcat, elon[c], elat[c], ecat[c], radius_m=rec_r, limit=1,
            accept=lambda a, b: closed_c[b] >= since[a],
        )
        for a, b in zip(q[qi].tolist(), ids[c][ci].tolist(), strict=True):
            recur[a] = b
    return dups, recur


# ---------------------------------------------------------------------- the import


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

    ``records`` are ``importer._records`` dicts; ``source`` is the checked default
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
    codes, uniques = _factorize(col["found_at"])
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
    codes, uniques = _factorize(col["deadline"])
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
        describe_row(clean_text(v), category=col["category"][i], address=col["address"][i],
                     has_point=col["lon"][i] not in (None, "") and col["lat"][i] not in (None, ""))
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
    category_of = _Cached(matcher.match)
    cat_id = np.zeros(n, dtype=np.int64)
    cat_match = []
    for i, value in enumerate(col["category"]):
        found_cat = category_of(_text(value) or None)
        cat_match.append(found_cat)
        if found_cat.category is not None:
            cat_id[i] = found_cat.category.id

    # 5. 来源, through validate_input itself so the aliases stay in one place.
    def clean_source(text: str):
        try:
            return validate_input(session, IssueInput(description="-", source=text))["source"]
        except ValidationError:
            return None

    source_of = _Cached(clean_source)
    sources: list[str | None] = [None] * n
    for i, value in enumerate(col["source"]):
        text = _text(value) or source
        sources[i] = source_of(text)
        if sources[i] is None:
            errors[4][i] = _source_error(session, text, where=f"第{rows[i]}行: ")

    # 6-8. 经度/纬度: both or neither, parsed, converted to WGS-84.
    lon_in = [_text(v) if isinstance(v, str) else v for v in col["lon"]]
    lat_in = [_text(v) if isinstance(v, str) else v for v in col["lat"]]
    has_lon = np.array([v not in (None, "") for v in lon_in], dtype=bool)
    has_lat = np.array([v not in (None, "") for v in lat_in], dtype=bool)
    for i in np.flatnonzero(has_lon != has_lat).tolist():
        errors[5][i] = f"第{rows[i]}行: 经度和纬度 必须同时填写"
    both = has_lon & has_lat
    lon_err: dict[int, str] = {}
    lat_err: dict[int, str] = {}
    lon = _coordinate_column(
        [v if b else None for v, b in zip(lon_in, both, strict=True)],
        label="经度",
        low=73.0,
        high=136.0,
        rows=rows,
        errors=lon_err,
    )
    lat = _coordinate_column(
        [v if b else None for v, b in zip(lat_in, both, strict=True)],
        label="纬度",
        low=3.0,
        high=54.0,
        rows=rows,
        errors=lat_err,
    )
    errors[6].update(lon_err)
    errors[7].update({i: m for i, m in lat_err.items() if i not in lon_err})
    system_of = _Cached(lambda key: coord_system_of({"coord_system": key[0], "remark": key[1]}))
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
    existing = _existing_refs(session, list(refs.values()))
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
        from app.services.imports.importer import open_batch

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
        from app.services.grids.geocoding import geocoder_for

        geocoder = geocoder_for(session)
    geocode = _Cached(lambda text: geocoder.geocode_address(text))
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

    dups, recur = _find_neighbours(session, lon, lat, cat_id[idx], found_at)

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
        remark = _text(records[i].get("remark"))
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
