"""Web-form use-cases around one problem: report with photos, act on it, place it, show it.

These wrap the one intake service and the one workflow (app.services.issues.intake) with what
the pages add: photos stored before anything is written (so a bad photo leaves no half
problem behind), the issue's ``version`` carried by every form (two people acting at once
cannot both win), and the detail page's context. Where photos go and how large they may
be comes from the caller's ``Settings``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from app.models import STATUS_LABELS, Issue, Photo, Unit, User, today_local
from app.services.core import access
from app.services.core.errors import ConflictError, ForbiddenError, ValidationError
from app.services.core.settings import Settings
from app.services.core.text import clean_text
from app.services.grids.map_data import cells_fc, layer_fc
from app.services.issues import photos
from app.services.issues.intake import ACTION_LABELS as WORKFLOW_LABELS
from app.services.issues.intake import (
    TRANSITIONS,
    IssueInput,
    add_event,
    check_in_county,
    create_issue,
    place_manually,
    reroute,
    transition,
)
from app.services.tables.workdays import load_calendar
from gis.errors import GisError
from gis.exif import read_exif_gps

COORD_SYSTEMS = {
    "wgs84": "WGS-84 (GPS 原始坐标)",
    "gcj02": "GCJ-02 (高德/腾讯/微信)",
    "bd09": "BD-09 (百度)",
}
MAX_PHOTOS = 9
MAX_MEASURES = 2000
STALE_MESSAGE = "该问题已被他人修改，请刷新后重试"
# Accountability: a unit cannot submit a fix for checking without showing it.
REQUIRE_AFTER_PHOTO = True
# Adding photos outside a workflow step: the kind is part of the action's name.
PHOTO_ACTIONS = {"photo_before": "before", "photo_after": "after"}
ACTION_LABELS = {
    **WORKFLOW_LABELS,
    "photo_before": "上传整改前照片",
    "photo_after": "上传整改后照片",
    "settle": "确认责任单位",
    "recheck": "州级复核",
}


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


def _read_uploads(files, settings: Settings) -> list[photos.PhotoUpload]:
    uploads = [
        f if isinstance(f, photos.PhotoUpload)
        else photos.read_upload(f, max_bytes=settings.max_photo_bytes)
        for f in files or ()
    ]
    if len(uploads) > MAX_PHOTOS:
        msg = f"一次最多上传 {MAX_PHOTOS} 张照片 (收到 {len(uploads)} 张)"
        raise ValidationError(msg)
    return uploads


def _store_all(uploads: list[photos.PhotoUpload], settings: Settings) -> list[dict]:
    """Decode and store every photo first; on any bad one remove those already written."""
    stored: list[dict] = []
    try:
        for upload in uploads:
            stored.append(photos.store_image(upload, photo_dir=settings.photo_dir))
    except BaseException:
        _remove_stored(stored, settings)
        raise
    return stored


def _remove_stored(stored: list[dict], settings: Settings) -> None:
    photos.remove_files([Photo(path=s["path"]) for s in stored], photo_dir=settings.photo_dir)


def _attach(session, issue: Issue, stored: list[dict], *, kind: str, event) -> list[Photo]:
    rows = [
        Photo(issue=issue, kind=kind, event_id=event.id if event is not None else None, **fields)
        for fields in stored
    ]
    session.add_all(rows)
    session.flush()
    return rows


def report_issue(session, user: User, data: IssueInput, files=(), *, settings: Settings,
                 geocoder=None) -> ReportResult:
    """Report a problem from the web form with its "before" photos.

    With no point and no address, the first photo whose EXIF carries a GPS fix inside the
    county places the problem (phone cameras write WGS-84). ``settings`` says where photos
    are stored and how large one may be.
    """
    access.require(user, "report")
    if (data.coord_system or "wgs84") not in COORD_SYSTEMS:
        msg = f"坐标系 {data.coord_system!r} 无效 (可选: wgs84、gcj02、bd09)"
        raise ValidationError(msg)
    uploads = _read_uploads(files, settings)
    warnings: list[str] = []
    by_photo = None
    has_point = data.lon not in (None, "") or data.lat not in (None, "")
    if not has_point and not (data.address or "").strip():
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
    stored = _store_all(uploads, settings)
    try:
        issue = create_issue(session, user, data, geocoder=geocoder)
        if by_photo:
            issue.geocode_method = "photo_exif"
            warnings.append(f"已按照片 {by_photo} 的 GPS 位置定位")
        event = issue.events[-1] if issue.events else None
        rows = _attach(session, issue, stored, kind="before", event=event)
    except BaseException:
        _remove_stored(stored, settings)
        raise
    if issue.needs_placement:
        warnings.append("未能自动确定位置，已进入待定位队列")
    return ReportResult(issue=issue, photos=rows, warnings=warnings)


def may_add_photos(user: User) -> bool:
    """Units (rectify) and inspectors/admins (verify) add photos; leaders only read."""
    return access.may(user, "rectify") or access.may(user, "verify")


def submission_problems(issue: Issue, *, measures: str | None, new_after_photos: int = 0,
                        ) -> list[str]:
    """What is missing before ``issue`` may be submitted for verification (empty: ready).

    The one rule of every door: the unit's 整改措施 and at least one 整改后 photo (already
    on the problem or uploaded with the submission).
    """
    missing = []
    if not (measures or issue.measures or "").strip():
        missing.append("填写整改措施")
    if REQUIRE_AFTER_PHOTO and not new_after_photos and not any(
        p.kind == "after" for p in issue.photos
    ):
        missing.append("上传至少一张整改后照片")
    return missing


def check_submission(issue: Issue, *, measures: str | None = None,
                     new_after_photos: int = 0) -> str | None:
    """Raise ValidationError naming what is missing to submit; return the cleaned measures.

    Doors call this before ``transition(..., "submit")``: the web form through ``act``,
    the JSON API and any other door with the body's ``measures``.
    """
    text = clean_text(measures or "").strip() or None
    if text and len(text) > MAX_MEASURES:
        msg = f"整改措施 过长 (超过 {MAX_MEASURES} 字)"
        raise ValidationError(msg)
    missing = submission_problems(issue, measures=text, new_after_photos=new_after_photos)
    if missing:
        msg = f"提交核查前必须{'并'.join(missing)}"
        raise ValidationError(msg)
    return text


def submit_issue(session, user: User, issue_id: int, *, measures: str | None = None,
                 note: str | None = None, expected_version=None) -> Issue:
    """Submit a fix for verification with its 整改措施 (no new photos: they must be there).

    For doors that take no upload (the JSON API): the after photo must already be on the
    problem, added from the problem page.
    """
    issue = access.get_issue(session, user, issue_id, action="submit")
    text = check_submission(issue, measures=measures)
    issue = transition(session, user, issue_id, "submit", note=clean_text(note or "") or None,
                       expected_version=expected_version)
    if text:
        issue.measures = text
    session.flush()
    return issue


def add_photos(session, user: User, issue_id: int, kind: str, files, *, expected_version,
               settings: Settings, note: str | None = None) -> tuple[Issue, list[Photo]]:
    """Add 整改前 or 整改后 photos to an open problem outside a workflow step."""
    issue = access.get_issue(session, user, issue_id)
    if not may_add_photos(user):
        msg = "没有权限上传照片"
        raise ForbiddenError(msg)
    if kind not in photos.PHOTO_KINDS:
        msg = f"照片类型 {kind!r} 无效 (可选: before 整改前、after 整改后)"
        raise ValidationError(msg)
    _check_version(issue, expected_version)
    if not issue.is_open:
        msg = f"问题 {issue_id} 已「{issue.status_label}」，不能再上传照片"
        raise ConflictError(msg)
    uploads = _read_uploads(files, settings)
    if not uploads:
        msg = "请选择要上传的照片"
        raise ValidationError(msg)
    stored = _store_all(uploads, settings)
    try:
        event = add_event(session, issue, user, "photo", issue.status, issue.status,
                          note=note, data={"kind": kind, "count": len(stored)})
        session.flush()
        rows = _attach(session, issue, stored, kind=kind, event=event)
    except BaseException:
        _remove_stored(stored, settings)
        raise
    return issue, rows


def act(
    session,
    user: User,
    issue_id: int,
    action: str,
    *,
    expected_version,
    settings: Settings,
    note: str = "",
    files=(),
    unit_id=None,
    duplicate_of=None,
    measures: str | None = None,
) -> tuple[Issue, list[Photo]]:
    """Take one workflow action from a detail-page form, guarded by the issue's version.

    ``photo_before``/``photo_after`` add photos of that kind; ``submit`` takes the
    整改措施 from ``measures`` (the submit form's text box is its ``note``). ``settings``
    says where photos are stored and how large one may be.
    """
    note = clean_text(note) or None
    access.get_issue(session, user, issue_id)  # an invisible issue is 404 whatever the action
    if action in PHOTO_ACTIONS:
        return add_photos(session, user, issue_id, PHOTO_ACTIONS[action], files,
                          expected_version=expected_version, settings=settings, note=note)
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
    uploads = _read_uploads(files, settings) if action == "submit" else []
    measures_text = None
    if action == "submit":
        if issue.status not in TRANSITIONS["submit"][0]:
            msg = f"当前状态为「{issue.status_label}」，不能执行「{ACTION_LABELS['submit']}」"
            raise ConflictError(msg)
        measures_text = check_submission(
            issue, measures=measures if measures is not None else note,
            new_after_photos=len(uploads),
        )
    target = None
    if action == "mark_duplicate" and str(duplicate_of or "").strip():
        text = str(duplicate_of).strip().lstrip("#")
        if not text.isdigit() or int(text) == issue.id:
            msg = f"重复问题编号 {duplicate_of!r} 无效"
            raise ValidationError(msg)
        target = access.get_issue(session, user, int(text))
    stored = _store_all(uploads, settings)
    try:
        if target is not None:
            note = f"与问题 #{target.id} 重复" + (f"：{note}" if note else "")
        issue = transition(
            session, user, issue_id, action, note=note, expected_version=expected_version
        )
        if target is not None:
            issue.duplicate_of_id = target.id
            session.flush()
        if measures_text:
            issue.measures = measures_text
            session.flush()
        rows = _attach(session, issue, stored, kind="after", event=issue.events[-1])
    except BaseException:
        _remove_stored(stored, settings)
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
    if issue.is_open and may_add_photos(user):
        actions.append("photo")
    return actions


def issue_detail(session, user: User, issue_id: int, *, today: date | None = None) -> dict:
    """Everything the detail page shows, for an issue the user may see."""
    issue = access.get_issue(session, user, issue_id)
    today = today or today_local()
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
        "submit_missing": submission_problems(issue, measures=None),
        "co_unit_names": [c.unit.name for c in issue.co_units if c.unit is not None],
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
    cells, bounds = cells_fc(session, user)
    return {"cells": cells, "bounds": bounds, "roads": layer_fc(session, "roads")}
