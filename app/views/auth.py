"""Login, logout and password change."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app.auth import hash_password, verify_password
from app.extensions import db, limiter
from app.models import User
from app.services.accounts import validate_password
from app.services.audit import record
from app.services.errors import ValidationError

bp = Blueprint("auth", __name__)


LOCKOUT_MESSAGE = "登录尝试过于频繁，账号已暂时锁定，请稍后再试"


def _audit(action: str, user: User | None, detail: str | None = None) -> None:
    record(db.session, user, action, detail, request.remote_addr)


def _submitted_username() -> str:
    # A second limit keyed by the account, not the address: a brute force spread over many
    # addresses against one account is slowed too. Only failed attempts count (below).
    name = (request.form.get("username") or "").strip().lower()
    return f"login-user:{name}"


def _failed(response) -> bool:
    return response.status_code == 401


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;30 per hour", methods=["POST"], error_message=LOCKOUT_MESSAGE)
@limiter.limit("5 per minute;20 per hour", methods=["POST"], key_func=_submitted_username,
               deduct_when=_failed, error_message=LOCKOUT_MESSAGE)
def login():
    """Show the login form; sign the user in."""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        user = db.session.execute(select(User).where(User.username == username)).scalar()
        if user is None or not user.active or not verify_password(user, password):
            _audit("login_failed", user, username)
            db.session.commit()
            flash("用户名或密码错误", "error")
            return render_template("login.html", username=username), 401
        # A fresh session on login prevents session fixation.
        session.clear()
        login_user(user)
        _audit("login", user)
        db.session.commit()
        if user.must_change_password:
            return redirect(url_for("auth.change_password"))
        target = request.args.get("next") or ""
        if not target.startswith("/") or target.startswith("//"):
            target = url_for("main.index")
        return redirect(target)
    return render_template("login.html", username="")


@bp.post("/logout")
@login_required
def logout():
    """Sign out of this browser."""
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/logout-everywhere")
@login_required
def logout_everywhere():
    """Sign out of every browser and token-less session of this account."""
    user = db.session.get(User, current_user.id)
    user.session_version += 1
    _audit("logout_everywhere", user)
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's own password (forced after an admin reset)."""
    if request.method == "POST":
        user = db.session.get(User, current_user.id)
        old = request.form.get("old_password") or ""
        new = request.form.get("new_password") or ""
        if not verify_password(user, old):
            flash("原密码错误", "error")
        elif new != request.form.get("confirm_password"):
            flash("两次输入的新密码不一致", "error")
        else:
            try:
                validate_password(new)
            except ValidationError as exc:
                flash(str(exc), "error")
                return render_template("password.html"), 400
            user.password_hash = hash_password(new)
            user.must_change_password = False
            user.session_version += 1
            _audit("password_changed", user)
            db.session.commit()
            login_user(user)
            flash("密码已修改", "ok")
            return redirect(url_for("main.index"))
        return render_template("password.html"), 400
    return render_template("password.html")
