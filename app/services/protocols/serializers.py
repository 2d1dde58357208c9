"""Plain-dict views of the models, shared by the JSON API, Open311 and other exports.

Serializers never query for access: callers hand them objects the user may already see
(through app/services/core/access.py). Datetimes are written as ISO 8601 without a zone, the
way they are stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime

from app.models import STATUS_LABELS, Assessment, Cell, Issue, IssueEvent, Patrol, Photo, Unit

PhotoUrl = Callable[[Photo], str]


def iso(value: date | datetime | None) -> str | None:
    """Write a date or datetime as ISO 8601 (seconds precision), or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat()
    return value.isoformat()


def default_photo_url(photo: Photo) -> str:
    return f"/api/v1/issues/{photo.issue_id}/photos/{photo.id}"


def event_to_dict(event: IssueEvent) -> dict:
    """One 处置记录 entry."""
    return {
        "id": event.id,
        "action": event.action,
        "at": iso(event.at),
        "user": event.user.username if event.user else None,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "note": event.note,
    }


def photo_to_dict(photo: Photo, *, photo_url: PhotoUrl = default_photo_url) -> dict:
    return {
        "id": photo.id,
        "kind": photo.kind,
        "url": photo_url(photo),
        "width": photo.width,
        "height": photo.height,
        "created_at": iso(photo.created_at),
    }


def issue_updated_at(issue: Issue) -> datetime | None:
    """The time of the issue's latest event (its creation when it has none)."""
    times = [e.at for e in issue.events if e.at is not None]
    return max(times) if times else issue.created_at


def issue_to_dict(
    issue: Issue,
    *,
    detail: bool = False,
    today: date | None = None,
    photo_url: PhotoUrl = default_photo_url,
) -> dict:
    """An issue as the API shows it; ``detail`` adds its events and photos."""
    category = issue.category
    data = {
        "id": issue.id,
        "status": issue.status,
        "status_label": STATUS_LABELS.get(issue.status, issue.status),
        "category": category.code if category else None,
        "category_name": category.name if category else None,
        "description": issue.description,
        "address": issue.address,
        "lon": issue.lon,
        "lat": issue.lat,
        "cell_code": issue.cell.code if issue.cell else None,
        "unit": issue.unit.name if issue.unit else None,
        "unit_id": issue.unit_id,
        "geocode": {
            "method": issue.geocode_method,
            "confidence": issue.geocode_confidence,
            "candidates": list(issue.geocode_candidates or []),
        },
        "needs_placement": bool(issue.needs_placement),
        "outside_grid": bool(issue.outside_grid),
        "source": issue.source,
        "found_at": iso(issue.found_at),
        "deadline": iso(issue.deadline),
        "overdue": issue.is_overdue(today),
        "closed_at": iso(issue.closed_at),
        "rework_count": issue.rework_count or 0,
        "recurrence_of": issue.recurrence_of_id,
        "duplicate_of": issue.duplicate_of_id,
        "version": issue.version,
        "batch": issue.batch_id,
        "batch_seq": issue.batch_seq,
        "unit_source": issue.unit_source,
        "listed_unit": issue.listed_unit,
        "routing_conflict": dict(issue.routing_conflict) if issue.routing_conflict else None,
        "co_units": [c.unit.name for c in issue.co_units if c.unit is not None],
        "category_pending": bool(issue.category_pending),
        "category_text": issue.category_text,
        "measures": issue.measures,
        "recheck_result": issue.recheck_result,
        "recheck_note": issue.recheck_note,
        "created_at": iso(issue.created_at),
        "updated_at": iso(issue_updated_at(issue)),
    }
    if detail:
        data["events"] = [event_to_dict(e) for e in issue.events]
        data["photos"] = [photo_to_dict(p, photo_url=photo_url) for p in issue.photos]
    return data


def cell_to_dict(cell: Cell, *, open_count: int | None = None, geometry: bool = False) -> dict:
    """A grid cell; ``geometry`` adds its GeoJSON geometry."""
    data = {
        "id": cell.id,
        "code": cell.code,
        "grid_id": cell.grid_id,
        "subdistrict_code": cell.subdistrict_code,
        "community_code": cell.community_code,
        "area_m2": round(cell.area_m2 or 0.0, 1),
        "unit": cell.unit.name if cell.unit else None,
        "unit_id": cell.unit_id,
        "bbox": [cell.minx, cell.miny, cell.maxx, cell.maxy],
    }
    if open_count is not None:
        data["open_count"] = int(open_count)
    if geometry:
        data["geometry"] = json.loads(cell.geom)
    return data


def cell_feature(cell: Cell, *, open_count: int | None = None) -> dict:
    """A grid cell as a GeoJSON Feature (properties are cell_to_dict without geometry)."""
    props = cell_to_dict(cell, open_count=open_count)
    return {
        "type": "Feature",
        "id": cell.id,
        "geometry": json.loads(cell.geom),
        "properties": props,
    }


def unit_to_dict(
    unit: Unit, *, cell_count: int | None = None, open_count: int | None = None
) -> dict:
    data = {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind,
        "contact": unit.contact,
        "phone": unit.phone,
        "active": bool(unit.active),
    }
    if cell_count is not None:
        data["cell_count"] = int(cell_count)
    if open_count is not None:
        data["open_count"] = int(open_count)
    return data


def patrol_to_dict(patrol: Patrol, *, detail: bool = False) -> dict:
    """A patrol; ``detail`` adds its stops in visiting order and the route legs."""
    data = {
        "id": patrol.id,
        "name": patrol.name,
        "mode": patrol.mode,
        "status": patrol.status,
        "inspector": patrol.inspector.username if patrol.inspector else None,
        "planned_for": iso(patrol.planned_for),
        "length_m": round(patrol.length_m or 0.0, 1),
        "est_minutes": round(patrol.est_minutes or 0.0, 1),
        "stop_count": len(patrol.stops),
        "created_at": iso(patrol.created_at),
    }
    if detail:
        data["start"] = patrol.start
        data["order"] = [s.issue_id for s in patrol.stops]
        data["stops"] = [
            {
                "seq": s.seq,
                "issue_id": s.issue_id,
                "lon": s.lon,
                "lat": s.lat,
                "label": s.label,
                "result": s.result,
                "remark": s.remark,
            }
            for s in patrol.stops
        ]
        data["legs"] = patrol.legs
    return data


def assessment_to_dict(assessment: Assessment) -> dict:
    """A published monthly assessment's headline: month, red and black lists."""
    data = assessment.data if isinstance(assessment.data, dict) else {}
    return {
        "id": assessment.id,
        "month": assessment.month,
        "scope": assessment.scope,
        "published_at": iso(assessment.published_at),
        "red_list": list(data.get("red_list") or []),
        "black_list": list(data.get("black_list") or []),
    }
