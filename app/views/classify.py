"""The 待分类 queue: problems whose category matched nothing, classified in bulk (admins)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db, login_manager
from app.services.core.access import require
from app.services.core.errors import ServiceError
from app.services.core.params import is_id
from app.services.issues import classify
from app.services.issues.queries import category_groups
from app.services.tables import category_match

bp = Blueprint("classify", __name__, url_prefix="/issues/pending")


@bp.before_request
def _admins_only():
    """Sign-in first (redirect), then the admin permission (403 for everyone else)."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    require(current_user, classify.PERMISSION)
    return None


def _page(status: int = 200, error: str | None = None, picked=()):
    items, total = classify.pending_queue(db.session, current_user)
    return render_template(
        "classify/queue.html",
        items=items,
        total=total,
        groups=_groups(),
        default_days=category_match.pending_deadline_days(db.session),
        error=error,
        picked={str(p) for p in picked},
        chosen=request.form.get("category", ""),
    ), status


def _groups():
    return category_groups(db.session)


@bp.get("/")
def queue():
    """List the 待分类 problems with a category picker to classify the ticked ones."""
    return _page()


@bp.post("/")
def apply():
    """Set the chosen category on the ticked problems."""
    picked = request.form.getlist("issue_id")
    # A number no database id can be (2147483648, 99999999999999999999) names no problem:
    # 404 here, before the driver overflows on it (PostgreSQL's ids are 32-bit).
    beyond = next((p.strip() for p in picked if p.strip().isdigit() and not is_id(p)), None)
    if beyond is not None:
        cut = beyond if len(beyond) <= 24 else beyond[:23] + "…"
        return _page(404, f"问题 #{cut} 不存在", picked)
    try:
        result = classify.classify_issues(db.session, current_user, picked,
                                          request.form.get("category"))
    except ServiceError as exc:
        db.session.rollback()
        return _page(exc.status, str(exc), picked)
    db.session.commit()
    message = f"已将 {len(result['classified'])} 条问题分类为「{result['category'].label}」"
    if result["deadlines"]:
        message += f"，其中 {len(result['deadlines'])} 条按该类别时限重算整改时限"
    flash(message, "ok")
    if result["skipped"]:
        flash(f"{len(result['skipped'])} 条问题已被他人分类，未改动", "warn")
    return redirect(url_for("classify.queue"))


@bp.post("/settings")
def save_default():
    """Change the default deadline (working days) a 待分类 problem gets."""
    try:
        days = category_match.set_pending_deadline_days(db.session, current_user,
                                                    request.form.get("days", ""))
    except ServiceError as exc:
        db.session.rollback()
        return _page(exc.status, str(exc))
    db.session.commit()
    flash(f"待分类问题的默认整改时限已设为 {days} 个工作日", "ok")
    return redirect(url_for("classify.queue"))
