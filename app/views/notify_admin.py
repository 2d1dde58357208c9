"""消息通道 (admins only): channel settings, a test message per channel, the outbox's failures."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth import admins_only
from app.config import current_settings
from app.extensions import db
from app.services.core.errors import ServiceError, ValidationError
from app.services.notify import outbox, prefs
from app.services.notify.channels import CHANNEL_LABELS, KIND_LABELS, ChannelError

bp = Blueprint("notify_admin", __name__, url_prefix="/admin/notify")


admins_only(bp)


def _page(status: int = 200, error: str | None = None, form: dict | None = None):
    settings = current_settings()
    defaults = prefs.env_defaults(settings)
    values = form if form is not None else prefs.stored_config(db.session)
    values = dict(values)
    values["smtp_url"] = prefs.mask_url(values.get("smtp_url"))
    response = render_template(
        "notify_admin/settings.html",
        values=values,
        defaults={"smtp_url": prefs.mask_url(defaults.smtp_url),
                  "webhook_url": defaults.webhook_url or "",
                  "webhook_kind": defaults.webhook_kind},
        kinds=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        status_labels=outbox.STATUS_LABELS,
        messages=outbox.list_messages(db.session),
        counts=outbox.status_counts(db.session),
        max_attempts=outbox.MAX_ATTEMPTS,
        error=error,
    ), status
    return response


@bp.get("/")
def settings():
    """Show the channel settings and the outbox's failed and waiting messages."""
    return _page()


@bp.post("/")
def save_settings():
    """Save the channel settings (blank fields use the environment's values)."""
    try:
        prefs.save_channel_config(db.session, current_user, request.form.to_dict(),
                                  ip=request.remote_addr)
    except ValidationError as exc:
        db.session.rollback()
        return _page(400, str(exc), form=request.form.to_dict())
    db.session.commit()
    flash("消息通道设置已保存", "ok")
    return redirect(url_for("notify_admin.settings"))


@bp.post("/test/<channel>")
def send_test(channel: str):
    """Send a test message through one channel now and say whether it arrived."""
    try:
        target = outbox.send_test(db.session, current_settings(), channel,
                                  request.form.get("address"), user=current_user)
    except ChannelError as exc:
        return _page(502, str(exc))
    except ServiceError as exc:
        return _page(exc.status, str(exc))
    flash(f"测试消息已发出 ({CHANNEL_LABELS.get(channel, channel)} → {prefs.mask_url(target)})",
          "ok")
    return redirect(url_for("notify_admin.settings"))


@bp.post("/outbox/<int:message_id>/retry")
def retry(message_id: int):
    """Queue a failed message again, due now (the next outbox run sends it)."""
    row = outbox.retry(db.session, current_user, message_id, ip=request.remote_addr)
    db.session.commit()
    flash(f"消息 {row.id} 已重新排队，下次发送时投递", "ok")
    return redirect(url_for("notify_admin.settings"))
