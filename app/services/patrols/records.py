"""Stored patrols: reading them, their sheet rows and routes, exports, and recording results.

Results close the loop through the issue workflow: 已整改 closes a 待核查 problem, 未整改
sends it back, 新发现 reports a new problem at the stop. The select lists of the planning
form (units, pickable problems, inspectors, categories) are read here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models import OPEN_STATUSES, Category, Issue, Patrol, Unit, User
from app.services.core import access
from app.services.core import params as parsers
from app.services.core.errors import ValidationError
from app.services.issues.intake import IssueInput, create_issue, transition
from app.services.patrols.stops import visible_placed_issues
from gis.errors import GisError
from gis.routing.export import route_to_gpx, route_to_kml
from gis.routing.plan import Route
from gis.routing.snap import Snap

RESULTS = {"fixed": "已整改", "not_fixed": "未整改", "new": "新发现"}


def patrol_summary(patrol: Patrol) -> dict:
    """The API's answer for a planned patrol (without the PDF link, which needs a URL)."""
    order = [
        s.issue_id if s.kind == "issue" else (s.info or {}).get("index", s.seq - 1)
        for s in patrol.stops
    ]
    return {
        "id": patrol.id,
        "name": patrol.name,
        "mode": patrol.mode,
        "order": order,
        "length_m": round(patrol.length_m, 1),
        "legs": patrol.legs,
        "est_minutes": round(patrol.est_minutes, 1),
        "start": patrol.start,
        "stop_count": len(patrol.stops),
    }


# ---- reading -----------------------------------------------------------------------------


def get_patrol(session, user: User, patrol_id: int) -> Patrol:
    """A patrol the user may see (unit heads see none: 404)."""
    return access.get_patrol(session, user, patrol_id)


def list_patrols(session, user: User, *, limit: int = 30) -> list[Patrol]:
    """The latest patrols the user may see, newest first, with their stops."""
    stmt = access.scope_patrols(select(Patrol), user).options(selectinload(Patrol.stops))
    return list(session.execute(stmt.order_by(Patrol.id.desc()).limit(limit)).scalars())


def stop_rows(session, user: User, patrol: Patrol) -> list[dict]:
    """What the sheet shows per stop: address, cell, unit, summary, photo."""
    rows = []
    for stop in patrol.stops:
        info = dict(stop.info or {})
        issue = stop.issue
        row = {
            "stop": stop,
            "seq": stop.seq,
            "kind": stop.kind,
            "label": stop.label,
            "address": info.get("address") or stop.label or "",
            "cell_code": info.get("cell_code") or "",
            "unit": info.get("unit") or "",
            "summary": info.get("summary") or "",
            "photo": None,
            "issue": None,
            "status_label": None,
            "snap_m": info.get("snap_m"),
        }
        if issue is not None and access.can_read_issue(user, issue):
            category = issue.category.name if issue.category else "未分类"
            row.update(
                issue=issue,
                address=issue.address or stop.label or f"问题 #{issue.id}",
                cell_code=issue.cell.code if issue.cell else "",
                unit=issue.unit.name if issue.unit else "未分配",
                summary=f"#{issue.id} {category}: {issue.description}",
                status_label=issue.status_label,
            )
            photos = sorted(issue.photos, key=lambda p: (p.kind != "before", p.id))
            row["photo"] = photos[0] if photos else None
        rows.append(row)
    return rows


def route_of(patrol: Patrol) -> Route:
    """Rebuild a gis Route from a stored patrol (for GPX/KML export)."""
    stops = [(s.lon, s.lat) for s in patrol.stops]
    snaps = [
        Snap(
            lon=s.lon,
            lat=s.lat,
            edge=-1,
            offset_m=0.0,
            distance_m=float((s.info or {}).get("snap_m") or 0.0),
            snapped_lon=s.lon,
            snapped_lat=s.lat,
            far=False,
        )
        for s in patrol.stops
    ]
    features = (patrol.legs or {}).get("features", [])
    return Route(
        order=list(range(len(stops))),
        length_m=patrol.length_m,
        legs=[shape(f["geometry"]) for f in features],
        leg_lengths_m=[float(f["properties"].get("length_m", 0.0)) for f in features],
        snaps=snaps,
        est_minutes=patrol.est_minutes,
        mode=patrol.mode,
        stops=stops,
        start=tuple(patrol.start) if patrol.start else None,
        end=tuple(patrol.end) if patrol.end else None,
        closed=bool(patrol.return_to_start),
    )


def export_route(session, user: User, patrol_id: int, fmt: str) -> tuple[str, str]:
    """The patrol as GPX or KML text; returns (text, file name)."""
    patrol = get_patrol(session, user, patrol_id)
    names = [(s.label or f"巡查点 {s.seq}") for s in patrol.stops]
    route = route_of(patrol)
    if fmt == "gpx":
        return route_to_gpx(route, name=patrol.name, stop_names=names), f"patrol-{patrol.id}.gpx"
    if fmt == "kml":
        return route_to_kml(route, name=patrol.name, stop_names=names), f"patrol-{patrol.id}.kml"
    msg = f"导出格式无效: {fmt!r} (可选: gpx、kml)"
    raise ValidationError(msg)


# ---- results -----------------------------------------------------------------------------


def record_results(
    session, user: User, patrol_id: int, entries: Sequence[Mapping[str, Any]]
) -> dict:
    """Save each stop's result and remark, closing, sending back or reporting problems.

    已整改 closes a 待核查 problem (verify_ok); 未整改 sends it back (verify_fail, the remark
    is the reason); 新发现 reports a new problem at the stop described by the remark. The
    caller commits once, so a bad entry leaves nothing half-written.
    """
    access.require(user, "verify")
    patrol = get_patrol(session, user, patrol_id)
    stops = {s.id: s for s in patrol.stops}
    summary = {"closed": [], "sent_back": [], "created": [], "saved": 0}
    for entry in entries:
        stop_id = parsers.parse_int(
            entry.get("stop_id"), name="stop_id", low=-parsers.MAX_ID, high=parsers.MAX_ID
        )
        stop = stops.get(stop_id)
        if stop is None:
            msg = f"巡查点 {entry.get('stop_id')!r} 不属于巡查 {patrol.id}"
            raise ValidationError(msg)
        where = f"第 {stop.seq} 个巡查点"
        result = (entry.get("result") or "").strip() or None
        remark = (entry.get("remark") or "").strip() or None
        if result is not None and result not in RESULTS:
            msg = f"{where}: 核查结果无效 {result!r} (可选: 已整改、未整改、新发现)"
            raise ValidationError(msg)
        if remark and len(remark) > 2000:
            msg = f"{where}: 备注过长 (超过 2000 字)"
            raise ValidationError(msg)
        issue = stop.issue
        if result == "fixed" and issue is not None and issue.status == "submitted":
            transition(
                session,
                user,
                issue.id,
                "verify_ok",
                note=remark or f"巡查「{patrol.name}」核查通过",
            )
            summary["closed"].append(issue.id)
        elif result == "not_fixed" and issue is not None and issue.status == "submitted":
            if not remark:
                msg = f"{where}: 未整改须在备注中填写退回原因"
                raise ValidationError(msg)
            transition(session, user, issue.id, "verify_fail", note=remark)
            summary["sent_back"].append(issue.id)
        elif result == "new" and stop.new_issue_id is None:
            if not remark:
                msg = f"{where}: 新发现问题须在备注中描述问题"
                raise ValidationError(msg)
            category = (entry.get("category") or "").strip() or None
            try:
                created = create_issue(
                    session,
                    user,
                    IssueInput(
                        description=remark,
                        category=category,
                        lon=stop.lon,
                        lat=stop.lat,
                        address=((stop.info or {}).get("address") or stop.label),
                        source="县级督查",
                        extra={"note": f"巡查「{patrol.name}」新发现"},
                    ),
                    where=f"{where}: ",
                    via="patrol",
                )
            except GisError as exc:
                raise ValidationError(f"{where}: {exc}") from None
            stop.new_issue_id = created.id
            summary["created"].append(created.id)
        if result != stop.result or remark != stop.remark:
            summary["saved"] += 1
        stop.result, stop.remark = result, remark
    if patrol.stops and all(s.result for s in patrol.stops):
        patrol.status = "done"
    elif any(s.result for s in patrol.stops):
        patrol.status = "in_progress"
    session.flush()
    return summary


# ---- the planning form's select lists ----------------------------------------------------


def units_for_select(session, user: User) -> list[Unit]:
    """Active units the user may plan for, by name."""
    stmt = access.scope_units(select(Unit).where(Unit.active.is_(True)), user)
    return list(session.execute(stmt.order_by(Unit.name)).scalars())


def pickable_issues(session, user: User, *, limit: int = 300) -> list[Issue]:
    """Placed open problems for the hand-picked checkbox list (待核查 first)."""
    stmt = visible_placed_issues(user, *OPEN_STATUSES)
    rows = list(session.execute(stmt.limit(limit)).scalars())
    return sorted(rows, key=lambda i: (i.status != "submitted", i.id))


def inspectors(session) -> list[User]:
    """Active inspectors and admins, by user name."""
    stmt = select(User).where(User.role.in_(("inspector", "admin")), User.active.is_(True))
    return list(session.execute(stmt.order_by(User.username)).scalars())


def categories_for_select(session) -> list[Category]:
    """Level-2 categories, by code, for a 新发现 problem."""
    stmt = select(Category).where(Category.level == 2).order_by(Category.code)
    return list(session.execute(stmt).scalars())
