"""Appeals (申诉) against a published month: a unit head objects, an admin answers.

A unit head appeals their own unit's row, one open appeal at a time; the answer never
changes the published figures (an admin republishes to correct them).
"""

from __future__ import annotations

from sqlalchemy import select

from app.models import Assessment, AssessmentAppeal, Unit, User, now_local
from app.services.assessment.months import month_period
from app.services.assessment.scoring import published_snapshot
from app.services.core import access, audit
from app.services.core.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError


def list_appeals(session, user: User, assessment: Assessment) -> list[dict]:
    """Appeals of a published month: admins, leaders and inspectors see all, a unit head theirs."""
    stmt = select(AssessmentAppeal).where(AssessmentAppeal.assessment_id == assessment.id)
    if access.is_unit_scoped(user):
        stmt = stmt.where(AssessmentAppeal.unit_id == (user.unit_id or -1))
    return [
        {
            "id": a.id,
            "unit": a.unit.name,
            "unit_id": a.unit_id,
            "note": a.note,
            "created_at": a.created_at.strftime("%Y-%m-%d %H:%M"),
            "resolved": a.resolved_at is not None,
            "resolution": a.resolution,
            "resolved_at": a.resolved_at.strftime("%Y-%m-%d %H:%M") if a.resolved_at else None,
        }
        for a in session.execute(stmt.order_by(AssessmentAppeal.id)).scalars()
    ]


def attach_appeal(session, user: User, month: str, note: str) -> AssessmentAppeal:
    """A unit head objects to their own row of a published month (one open appeal at a time)."""
    if user.role != "unit_head" or user.unit_id is None:
        msg = "只有责任单位可以对本单位的考核结果提出申诉"
        raise ForbiddenError(msg)
    period = month_period(month)
    snap = published_snapshot(session, period.month, "unit")
    if snap is None:
        msg = f"{period.month} 的考核尚未发布，发布后才能申诉"
        raise ConflictError(msg)
    note = (note or "").strip()
    if not note:
        msg = "申诉理由 不能为空"
        raise ValidationError(msg)
    if len(note) > 2000:
        msg = "申诉理由 过长 (超过 2000 字)"
        raise ValidationError(msg)
    unit = session.get(Unit, user.unit_id)
    if not any(r["unit"] == unit.name for r in snap.data.get("ranking", [])):
        msg = f"{period.month} 的考核中没有 {unit.name}"
        raise NotFoundError(msg)
    pending = session.execute(
        select(AssessmentAppeal.id).where(
            AssessmentAppeal.assessment_id == snap.id,
            AssessmentAppeal.unit_id == unit.id,
            AssessmentAppeal.resolved_at.is_(None),
        )
    ).scalar()
    if pending:
        msg = f"{unit.name} 对 {period.month} 的申诉尚在处理中，请等待答复"
        raise ConflictError(msg)
    appeal = AssessmentAppeal(
        assessment_id=snap.id, unit_id=unit.id, note=note, created_by_id=user.id
    )
    session.add(appeal)
    audit.record(session, user, "assessment_appeal", f"{period.month} {unit.name}: {note[:200]}")
    session.flush()
    return appeal


def resolve_appeal(session, user: User, appeal_id: int, resolution: str) -> AssessmentAppeal:
    """An admin answers an appeal; the published figures stay (republish to correct them)."""
    access.require(user, "publish")
    appeal = session.get(AssessmentAppeal, appeal_id)
    if appeal is None:
        msg = f"申诉 {appeal_id} 不存在"
        raise NotFoundError(msg)
    if appeal.resolved_at is not None:
        msg = f"申诉 {appeal_id} 已于 {appeal.resolved_at:%Y-%m-%d %H:%M} 答复"
        raise ConflictError(msg)
    resolution = (resolution or "").strip()
    if not resolution:
        msg = "答复意见 不能为空"
        raise ValidationError(msg)
    appeal.resolution = resolution
    appeal.resolved_at = now_local()
    appeal.resolved_by_id = user.id
    audit.record(session, user, "assessment_appeal_resolved", f"{appeal_id}: {resolution[:200]}")
    session.flush()
    return appeal
