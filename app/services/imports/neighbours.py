"""Possible duplicates and recurrences of many points at once: a grid-bucket join in metres.

The bulk import (``imports.bulk``) finds for every placed row what ``create_issue`` finds
for one: open problems of the same category within the duplicate radius (stored ones and
earlier rows of the same list) and a recently closed one within the recurrence radius.
Points are bucketed on a grid a little coarser than the radius, so each query looks only
at the 3×3 buckets around it, and memory stays bounded however the points cluster.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import and_, or_, select

from app.models import OPEN_STATUSES, Issue
from app.services.issues.intake import INTAKE


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """``app.services.issues.intake._metres`` over arrays (equirectangular, town scale)."""
    k = np.cos(np.radians((lat1 + lat2) / 2))
    return np.hypot((lon2 - lon1) * 111_320.0 * k, (lat2 - lat1) * 110_574.0)


# A row lists at most this many possible duplicates (the lowest ids): a list whose rows sit
# at a handful of points would otherwise make every row name every other (n² pairs).
MAX_NEIGHBOURS = 20
_SCAN_BLOCK = 32  # candidates looked at per query and round
_PAIR_BUDGET = 1_000_000  # pairs held at once (~40 MB of index arrays)


def neighbour_pairs(
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
                    ok &= metres(qlon[qi], qlat[qi], clon[ci], clat[ci]) <= radius_m
                    if accept is not None and ok.any():
                        ok[ok] = accept(qi[ok], ci[ok])
                    # Rank of each qualifying pair within its query's block (pairs of one
                    # query are contiguous and in candidate order).
                    csum = np.cumsum(ok)
                    before = np.repeat(
                        csum[np.cumsum(take) - take] - ok[np.cumsum(take) - take], take
                    )
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


def find_neighbours(
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
    qi, ci = neighbour_pairs(qlon, qlat, qcat, elon[o], elat[o], ecat[o], radius_m=dup_r)
    rows_k, values = [q[qi]], [ids[o][ci]]
    qi, ci = neighbour_pairs(qlon, qlat, qcat, qlon, qlat, qcat, radius_m=dup_r, earlier_only=True)
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
        qi, ci = neighbour_pairs(
            qlon,
            qlat,
            qcat,
            elon[c],
            elat[c],
            ecat[c],
            radius_m=rec_r,
            limit=1,
            accept=lambda a, b: closed_c[b] >= since[a],
        )
        for a, b in zip(q[qi].tolist(), ids[c][ci].tolist(), strict=True):
            recur[a] = b
    return dups, recur
