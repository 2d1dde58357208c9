"""Account administration: users, units, roster import, API tokens, audit log (admins only)."""

from __future__ import annotations

import io
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from app.auth import admins_only
from app.extensions import db
from app.models import ROLE_LABELS, ROLES
from app.services.core import audit
from app.services.core.errors import ValidationError
from app.services.tables import accounts
from app.services.tables import roster as roster_import  # ``roster`` is a view here

bp = Blueprint("admin", __name__, url_prefix="/admin")


admins_only(bp)


def _ip() -> str | None:
    return request.remote_addr


def _roster_dir() -> Path:
    configured = current_app.config.get("ROSTER_UPLOAD_DIR")
    return Path(configured or Path(current_app.config["INSTANCE_DIR"]) / "roster")


def _no_store(response):
    # Pages carrying a password or token must not stay in any cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _users_page(status: int = 200, error: str | None = None):
    return render_template(
        "admin/users.html",
        rows=accounts.list_users(db.session, current_user),
        units=accounts.list_units(db.session, current_user, active_only=True),
        roles=ROLES,
        role_labels=ROLE_LABELS,
        error=error,
        form=request.form,
    ), status


# ---------------------------------------------------------------------- users


@bp.get("/users")
def users():
    """List accounts with role, unit, state and last login; offer the create form."""
    return _users_page()


@bp.post("/users")
def create_user():
    """Create an account with a temporary password shown once."""
    form = request.form
    try:
        user, password = accounts.admin_create_user(
            db.session,
            current_user,
            username=form.get("username", ""),
            role=form.get("role", ""),
            unit_id=form.get("unit_id") or None,
            display_name=form.get("display_name"),
            phone=form.get("phone"),
            ip=_ip(),
        )
    except ValidationError as exc:
        db.session.rollback()
        return _users_page(400, str(exc))
    db.session.commit()
    return _no_store(
        current_app.make_response(
            render_template(
                "admin/secret.html", title="账号已创建", user=user, secret=password, kind="password"
            )
        )
    )


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    """Show an account; change its role, unit and contact fields."""
    user, tokens = accounts.list_tokens(db.session, current_user, user_id)
    error = None
    if request.method == "POST":
        form = request.form
        try:
            accounts.update_user(
                db.session,
                current_user,
                user_id,
                role=form.get("role", ""),
                unit_id=form.get("unit_id") or None,
                display_name=form.get("display_name"),
                phone=form.get("phone"),
                ip=_ip(),
            )
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash(f"账号 {user.username} 已保存", "ok")
            return redirect(url_for("admin.edit_user", user_id=user_id))
    return render_template(
        "admin/user_edit.html",
        user=user,
        tokens=tokens,
        error=error,
        roles=ROLES,
        role_labels=ROLE_LABELS,
        units=accounts.list_units(db.session, current_user, active_only=True),
    ), 400 if error else 200


@bp.post("/users/<int:user_id>/reset-password")
def reset_password(user_id: int):
    """Reset an account's password to a temporary one shown once."""
    password = accounts.reset_password(db.session, current_user, user_id, ip=_ip())
    db.session.commit()
    user, _ = accounts.list_tokens(db.session, current_user, user_id)
    return _no_store(
        current_app.make_response(
            render_template(
                "admin/secret.html", title="密码已重置", user=user, secret=password, kind="password"
            )
        )
    )


@bp.post("/users/<int:user_id>/disable")
def disable_user(user_id: int):
    """Disable an account: its sessions end and its API tokens are revoked."""
    user = accounts.set_user_active(db.session, current_user, user_id, False, ip=_ip())
    db.session.commit()
    flash(f"账号 {user.username} 已停用，API 令牌已吊销", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/enable")
def enable_user(user_id: int):
    """Enable a disabled account."""
    user = accounts.set_user_active(db.session, current_user, user_id, True, ip=_ip())
    db.session.commit()
    flash(f"账号 {user.username} 已启用", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/logout-everywhere")
def logout_user_everywhere(user_id: int):
    """Sign an account out of every browser."""
    user = accounts.end_sessions(db.session, current_user, user_id, ip=_ip())
    db.session.commit()
    flash(f"账号 {user.username} 已在所有设备上退出", "ok")
    return redirect(url_for("admin.edit_user", user_id=user_id))


# ---------------------------------------------------------------------- tokens


@bp.get("/users/<int:user_id>/tokens")
def tokens(user_id: int):
    """List an account's API tokens."""
    user, rows = accounts.list_tokens(db.session, current_user, user_id)
    return render_template("admin/tokens.html", user=user, tokens=rows)


@bp.post("/users/<int:user_id>/tokens")
def create_token(user_id: int):
    """Create an API token for an account; it is shown once."""
    token = accounts.create_token(
        db.session, current_user, user_id, name=request.form.get("name"), ip=_ip()
    )
    db.session.commit()
    user, _ = accounts.list_tokens(db.session, current_user, user_id)
    return _no_store(
        current_app.make_response(
            render_template(
                "admin/secret.html", title="API 令牌已创建", user=user, secret=token, kind="token"
            )
        )
    )


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    """Revoke an API token."""
    token = accounts.revoke_token(db.session, current_user, token_id, ip=_ip())
    db.session.commit()
    flash(f"令牌 {token.prefix}… 已吊销", "ok")
    return redirect(url_for("admin.tokens", user_id=token.user_id))


# ---------------------------------------------------------------------- units


@bp.get("/units")
def units():
    """List responsible units; offer the create form."""
    return render_template(
        "admin/units.html",
        units=accounts.list_units(db.session, current_user),
        kinds=accounts.UNIT_KINDS,
        error=None,
        form={},
    )


@bp.post("/units")
def create_unit():
    """Create a responsible unit."""
    form = request.form
    try:
        unit = accounts.create_unit(
            db.session,
            current_user,
            name=form.get("name", ""),
            kind=form.get("kind", "department"),
            contact=form.get("contact"),
            phone=form.get("phone"),
            ip=_ip(),
        )
    except ValidationError as exc:
        db.session.rollback()
        return render_template(
            "admin/units.html",
            units=accounts.list_units(db.session, current_user),
            kinds=accounts.UNIT_KINDS,
            error=str(exc),
            form=form,
        ), 400
    db.session.commit()
    flash(f"单位「{unit.name}」已创建", "ok")
    return redirect(url_for("admin.units"))


@bp.route("/units/<int:unit_id>", methods=["GET", "POST"])
def edit_unit(unit_id: int):
    """Show a unit; change its name, kind, contact person and phone."""
    unit = accounts.unit_for_edit(db.session, current_user, unit_id)
    error = None
    if request.method == "POST":
        form = request.form
        try:
            accounts.update_unit(
                db.session,
                current_user,
                unit_id,
                name=form.get("name", ""),
                kind=form.get("kind", "department"),
                contact=form.get("contact"),
                phone=form.get("phone"),
                ip=_ip(),
            )
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash("单位信息已保存", "ok")
            return redirect(url_for("admin.units"))
    return render_template(
        "admin/unit_edit.html", unit=unit, kinds=accounts.UNIT_KINDS, error=error
    ), 400 if error else 200


@bp.post("/units/<int:unit_id>/disable")
def disable_unit(unit_id: int):
    """Disable a unit and its unit-head accounts."""
    unit = accounts.set_unit_active(db.session, current_user, unit_id, False, ip=_ip())
    db.session.commit()
    flash(f"单位「{unit.name}」已停用，其责任单位账号已停用", "ok")
    return redirect(url_for("admin.units"))


@bp.post("/units/<int:unit_id>/enable")
def enable_unit(unit_id: int):
    """Enable a disabled unit (its accounts stay disabled until enabled one by one)."""
    unit = accounts.set_unit_active(db.session, current_user, unit_id, True, ip=_ip())
    db.session.commit()
    flash(f"单位「{unit.name}」已启用", "ok")
    return redirect(url_for("admin.units"))


# ---------------------------------------------------------------------- roster import


@bp.route("/roster", methods=["GET", "POST"])
def roster():
    """Show the roster upload form; keep a readable upload and go to its preview."""
    if request.method == "GET":
        return render_template("admin/roster_upload.html", error=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("admin/roster_upload.html", error="请选择花名册文件"), 400
    try:
        token = roster_import.store_roster_upload(
            _roster_dir(), current_user, upload.read(), upload.filename
        )
    except ValidationError as exc:
        return render_template("admin/roster_upload.html", error=str(exc)), 400
    return redirect(url_for("admin.roster_preview", token=token))


@bp.route("/roster/<token>", methods=["GET", "POST"])
def roster_preview(token: str):
    """Preview every roster row with its problems; import all rows on confirmation."""
    info = roster_import.load_roster_upload(_roster_dir(), current_user, token)
    if info["data"] is None:
        return redirect(url_for("admin.roster"))
    create_units = request.values.get("create_units") == "1"
    error = None
    if request.method == "POST":
        try:
            rows = roster_import.import_roster(
                db.session,
                current_user,
                info["data"],
                info["filename"],
                create_units=create_units,
                ip=_ip(),
            )
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            roster_import.keep_passwords(_roster_dir(), current_user, token, rows)
            return _no_store(
                current_app.make_response(
                    render_template(
                        "admin/roster_result.html", rows=rows, token=token, role_labels=ROLE_LABELS
                    )
                )
            )
    rows = roster_import.check_roster(
        db.session,
        roster_import.read_roster(info["data"], info["filename"]),
        create_units=create_units,
    )
    return render_template(
        "admin/roster_preview.html",
        rows=rows,
        token=token,
        filename=info["filename"],
        create_units=create_units,
        error=error,
        role_labels=ROLE_LABELS,
        error_count=sum(len(r["errors"]) for r in rows),
    ), 400 if error else 200


@bp.get("/roster/<token>/passwords.xlsx")
def roster_passwords(token: str):
    """Download the new accounts' temporary passwords (once)."""
    data = roster_import.take_passwords(_roster_dir(), current_user, token)
    response = send_file(
        io.BytesIO(data),
        as_attachment=True,
        download_name="临时密码.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    return _no_store(response)


# ---------------------------------------------------------------------- audit log


@bp.get("/audit")
def audit_log():
    """List audit entries, newest first, filtered by action, user and dates."""
    filters = audit.parse_filters(request.args)
    page = audit.list_entries(
        db.session, current_user, filters, page=request.args.get("page", 1, type=int)
    )
    return render_template(
        "admin/audit.html",
        page=page,
        filters=filters,
        actions=audit.known_actions(db.session),
        args={k: v for k, v in request.args.items() if k != "page" and v},
    )
