"""通知: the signed-in user's own notices (the bell), their list and marking them read."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.services.notify.inbox import list_notifications, mark_read, unread_count

bp = Blueprint("notifications", __name__, url_prefix="/notifications")
PAGE = 30


@bp.app_context_processor
def _bell():
    def unread_notifications() -> int:
        if not current_user.is_authenticated:
            return 0
        return unread_count(db.session, current_user)

    return {"unread_notifications": unread_notifications}


@bp.get("/")
@login_required
def index():
    """List the user's own notices, unread first."""
    page = max(1, request.args.get("page", 1, type=int) or 1)
    unread_only = request.args.get("unread") in ("1", "on", "true")
    data = list_notifications(db.session, current_user, limit=PAGE, offset=(page - 1) * PAGE,
                              unread_only=unread_only)
    return render_template("notifications/list.html", data=data, page=page, per_page=PAGE,
                           unread_only=unread_only)


@bp.post("/mark-read")
@login_required
def mark():
    """Mark the chosen notices (or all) read, then follow a notice's link if one was opened."""
    ids = "all" if request.form.get("all") else request.form.getlist("id")
    mark_read(db.session, current_user, ids)
    db.session.commit()
    target = request.form.get("next") or ""
    # Only links inside the site: a notice's url is a path such as /issues/12.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return redirect(target)
    return redirect(url_for("notifications.index"))


@bp.get("/count.json")
@login_required
def count():
    """Answer the bell's unread count as JSON."""
    return jsonify({"unread": unread_count(db.session, current_user)})
