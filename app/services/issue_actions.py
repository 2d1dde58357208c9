"""Web-form use-cases around one problem: report with photos, act on it, place it, show it.

These wrap the one intake service and the one workflow (app.services.issues) with what
the pages add: photos stored before anything is written (so a bad photo leaves no half
problem behind), the issue's ``version`` carried by every form (two people acting at once
cannot both win), and the detail page's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from app.models import STATUS_LABELS, Issue, Photo, Unit, User
from app.services import access, photos
from app.services.errors import ConflictError, ValidationError
from app.services.issues import (
    ACTION_LABELS,
    TRANSITIONS,
    IssueInput,
    check_in_county,
    create_issue,
    place_manually,
    reroute,
    transition,
)
from app.services.workdays import load_calendar

COORD_SYSTEMS = {
    "wgs84": "WGS-84 (GPS 原始坐标)",
    "gcj02": "GCJ-02 (高德/腾讯/微信)",
    "bd09": "BD-09 (百度)",
}
MAX_PHOTOS = 9
STALE_MESSAGE = "该问题已被他人修改，请刷新后重试"
# Accountability: a unit cannot submit a fix for checking without showing it.
REQUIRE_AFTER_PHOTO = True


@dataclass
class ReportResult:
    issue: Issue
    photos: list[Photo]
    warnings: list[str] = field(default_factory=list)


def _check_version(issue: Issue, expected_version) -> None:
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        msg = "表单缺少问题版本号，请刷新页面后重试"
        raise ValidationError(msg) from None
    if expected != issue.version:
        raise ConflictError(STALE_MESSAGE)


def _read_uploads(files) -> list[photos.PhotoUpload]:
    uploads = [
        f if isinstance(f, photos.PhotoUpload) else photos.read_upload(f) for f in files or ()
    ]
    if len(uploads) > MAX_PHOTOS:
        msg = f"一次最多上传 {MAX_PHOTOS} 张照片 (收到 {len(uploads)} 张)"
        raise ValidationError(msg)
    return uploads


def _store_all(uploads: list[photos.PhotoUpload]) -> list[dict]:
    """Decode and store every photo first; on any bad one remove those already written."""
    stored: list[dict] = []
    try:
        for upload in uploads:
            stored.append(photos.store_image(upload))
    except BaseException:
        photos.remove_files([Photo(path=s["path"]) for s in stored])
        raise
    return stored


def _attach(session, issue: Issue, stored: list[dict], *, kind: str, event) -> list[Photo]:
    rows = [
        Photo(issue=issue, kind=kind, event_id=event.id if event is not None else None, **fields)
        for fields in stored
    ]
    session.add_all(rows)
    session.flush()
    return rows


def report_issue(session, user: User, data: IssueInput, files=(), *, geocoder=None) -> ReportResult:
    """Report a problem from the web form with its "before" photos.

    With no point and no address, the first photo whose EXIF carries a GPS fix inside the
    county places the problem (phone cameras write WGS-84).
    """
    access.require(user, "report")
    if (data.coord_system or "wgs84") not in COORD_SYSTEMS:
        msg = f"坐标系 {data.coord_system!r} 无效 (可选: wgs84、gcj02、bd09)"
        raise ValidationError(msg)
    uploads = _read_uploads(files)
    warnings: list[str] = []
    by_photo = None
    has_point = data.lon not in (None, "") or data.lat not in (None, "")
    if not has_point and not (data.address or "").strip():
        from gis.exif import read_exif_gps

        for upload in uploads:
            gps = read_exif_gps(upload.data)
            if gps is None:
                continue
            try:
                check_in_county(
                    session, gps[0], gps[1], field_name=f"照片 {upload.filename} 的 GPS 位置"
                )
            except ValidationError as exc:
                warnings.append(f"{exc}，未用于定位")
                continue
            by_photo = upload.filename
            data.lon, data.lat, data.coord_system = gps[0], gps[1], "wgs84"
            break
    stored = _store_all(uploads)
    try:
        issue = create_issue(session, user, data, geocoder=geocoder)
        if by_photo:
            issue.geocode_method = "photo_exif"
            warnings.append(f"已按照片 {by_photo} 的 GPS 位置定位")
        event = issue.events[-1] if issue.events else None
        rows = _attach(session, issue, stored, kind="before", event=event)
    except BaseException:
        photos.remove_files([Photo(path=s["path"]) for s in stored])
        raise
    if issue.needs_placement:
        warnings.append("未能自动确定位置，已进入待定位队列")
    return ReportResult(issue=issue, photos=rows, warnings=warnings)


def act(
    session,
    user: User,
    issue_id: int,
    action: str,
    *,
    expected_version,
    note: str = "",
    files=(),
    unit_id=None,
    duplicate_of=None,
) -> tuple[Issue, list[Photo]]:
    """Take one workflow action from a detail-page form, guarded by the issue's version."""
    note = (note or "").strip() or None
    access.get_issue(session, user, issue_id)  # an invisible issue is 404 whatever the action
    if action == "reroute":
        issue = access.get_issue(session, user, issue_id, action="reroute")
        _check_version(issue, expected_version)
        if not str(unit_id or "").isdigit():
            msg = "改派时必须选择责任单位"
            raise ValidationError(msg)
        return reroute(session, user, issue_id, int(unit_id), reason=note or ""), []
    if action not in TRANSITIONS:
        msg = f"未知操作: {action}"
        raise ValidationError(msg)
    permission = TRANSITIONS[action][2]
    issue = access.get_issue(session, user, issue_id, action=permission)
    _check_version(issue, expected_version)
    uploads = _read_uploads(files) if action == "submit" else []
    if action == "submit" and REQUIRE_AFTER_PHOTO and not uploads:
        msg = "提交核查时必须上传至少一张整改后照片"
        raise ValidationError(msg)
    target = None
    if action == "mark_duplicate" and str(duplicate_of or "").strip():
        text = str(duplicate_of).strip().lstrip("#")
        if not text.isdigit() or int(text) == issue.id:
            msg = f"重复问题编号 {duplicate_of!r} 无效"
            raise ValidationError(msg)
        target = access.get_issue(session, user, int(text))
    stored = _store_all(uploads)
    try:
        if target is not None:
            note = f"与问题 #{target.id} 重复" + (f"：{note}" if note else "")
        issue = transition(
            session, user, issue_id, action, note=note, expected_version=expected_version
        )
        if target is not None:
            issue.duplicate_of_id = target.id
            session.flush()
        rows = _attach(session, issue, stored, kind="after", event=issue.events[-1])
    except BaseException:
        photos.remove_files([Photo(path=s["path"]) for s in stored])
        raise
    return issue, rows


def place(session, user: User, issue_id: int, lon, lat, *, expected_version) -> Issue:
    """Place a 待定位 problem at a clicked point or a geocoder candidate (WGS-84)."""
    issue = access.get_issue(session, user, issue_id, action="place")
    _check_version(issue, expected_version)
    if not issue.needs_placement:
        msg = f"问题 {issue_id} 已定位，无需手动定位"
        raise ConflictError(msg)
    if not issue.is_open:
        msg = f"问题 {issue_id} 已「{issue.status_label}」，不能再定位"
        raise ConflictError(msg)
    if lon in (None, "") or lat in (None, ""):
        msg = "请在地图上点选位置或选择一个候选地点"
        raise ValidationError(msg)
    from gis.errors import GisError

    try:
        return place_manually(session, user, issue_id, lon, lat)
    except GisError as exc:
        raise ValidationError(str(exc)) from None


def allowed_actions(user: User, issue: Issue) -> list[str]:
    """The workflow actions this user may take on this issue in its current status."""
    actions = [
        name
        for name, (froms, _to, permission) in TRANSITIONS.items()
        if issue.status in froms and access.may(user, permission)
    ]
    if issue.is_open and access.may(user, "reroute"):
        actions.append("reroute")
    if issue.is_open and issue.needs_placement and access.may(user, "place"):
        actions.append("place")
    return actions


def issue_detail(session, user: User, issue_id: int, *, today: date | None = None) -> dict:
    """Everything the detail page shows, for an issue the user may see."""
    issue = access.get_issue(session, user, issue_id)
    today = today or date.today()
    calendar = load_calendar(session)
    days_left = None
    if issue.deadline and issue.is_open:
        days_left = calendar.workdays_between(today, issue.deadline)
    report = next((e for e in issue.events if e.action == "report"), None)
    report_data = report.data if report else {}

    def visible(ids):
        out = []
        for other_id in ids or []:
            other = session.get(Issue, other_id)
            if other is not None and access.can_read_issue(user, other):
                out.append(other)
        return out

    duplicates = visible(report_data.get("possible_duplicates"))
    recurrence = visible([issue.recurrence_of_id] if issue.recurrence_of_id else [])
    duplicate_of = visible([issue.duplicate_of_id] if issue.duplicate_of_id else [])
    by_event: dict[int | None, list[Photo]] = {}
    for photo in issue.photos:
        by_event.setdefault(photo.event_id, []).append(photo)
    units = []
    actions = allowed_actions(user, issue)
    if "reroute" in actions:
        units = list(
            session.execute(select(Unit).where(Unit.active.is_(True)).order_by(Unit.name)).scalars()
        )
    cell_fc = None
    if issue.cell is not None:
        import json

        cell_fc = {
            "type": "Feature",
            "geometry": json.loads(issue.cell.geom),
            "properties": {"code": issue.cell.code},
        }
    return {
        "issue": issue,
        "events": list(issue.events),
        "photos_before": [p for p in issue.photos if p.kind == "before"],
        "photos_after": [p for p in issue.photos if p.kind == "after"],
        "photos_by_event": by_event,
        "overdue": issue.is_overdue(today),
        "days_left": days_left,
        "calendar_warnings": sorted(calendar.warnings),
        "duplicates": duplicates,
        "recurrence": recurrence,
        "duplicate_of": duplicate_of,
        "actions": actions,
        "units": units,
        "cell_fc": cell_fc,
        "candidates": list(issue.geocode_candidates or []),
        "action_labels": ACTION_LABELS,
        "status_labels": STATUS_LABELS,
    }


def picker_layers(session, user: User) -> dict:
    """Cells and roads for a point-picking map, with the bounds to open it at."""
    from app.services.map_data import cells_fc, layer_fc

    cells, bounds = cells_fc(session, user)
    return {"cells": cells, "bounds": bounds, "roads": layer_fc(session, "roads")}
