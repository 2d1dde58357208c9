"""Login, logout and password change."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    after_this_request,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import (
    DEVICE_COOKIE,
    SESSION_KEY,
    device_cookie,
    known_device,
    login_throttle,
    revoke_session,
    revoke_user_sessions,
    start_session,
)
from app.extensions import db
from app.models import User
from app.services.core.audit import record
from app.services.core.errors import ValidationError
from app.services.core.login_throttle import describe_wait
from app.services.core.passwords import (
    check_credentials,
    find_user,
    hash_password,
    verify_password,
)
from app.services.tables.accounts import validate_password

bp = Blueprint("auth", __name__)


LOCKOUT_MESSAGE = "登录失败次数过多，已暂时锁定，请 {wait}后再试"
LOCK_KINDS = {"account": "账号", "address": "地址", "device": "设备上的账号"}


def safe_next(url: str | None) -> str | None:
    """The ``next`` target if it is a same-site relative path, else None.

    Browsers strip tabs and newlines from URLs and treat ``\\`` like ``/``, so
    ``/\t/evil.example`` or ``/\\evil.example`` would leave the site: any control or
    whitespace character, any backslash, a leading ``//`` and any scheme or host refuse.
    """
    if not url or len(url) > 2000:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in url):
        return None
    # Percent-encoded control characters and backslashes decode to the same tricks.
    lowered = url.lower()
    if any(code in lowered for code in ("%09", "%0a", "%0d", "%00", "%5c")):
        return None
    if not url.startswith("/") or url.startswith("//"):
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    return url


def _audit(action: str, user: User | None, detail: str | None = None) -> None:
    record(db.session, user, action, detail, request.remote_addr)


def _refuse(username: str, attempt):
    """Answer 429 saying how long to wait; the password is not even checked."""
    seconds = int(-(-attempt.wait.total_seconds() // 1))
    flash(LOCKOUT_MESSAGE.format(wait=describe_wait(attempt.wait)), "error")
    page = render_template("login.html", username=username)
    return page, 429, {"Retry-After": str(max(1, seconds))}


def _audit_locks(locks, user: User | None) -> None:
    for charge in locks:
        wait = describe_wait(charge.counter.blocked_until - charge.counter.last_failure_at)
        _audit(
            "login_locked",
            user,
            f"{LOCK_KINDS[charge.kind]} {charge.label} 连续失败 {charge.counter.failures} 次，"
            f"需等待 {wait}",
        )


def _remember_device(username: str) -> None:
    value, max_age = device_cookie(request.cookies.get(DEVICE_COOKIE), username)

    @after_this_request
    def _set_cookie(response):
        response.set_cookie(
            DEVICE_COOKIE,
            value,
            max_age=max_age,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        )
        return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; sign the user in."""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        throttle = login_throttle()
        attempt = None
        if throttle is not None:
            # Charged before anything else: the store commits, so the view has no changes yet.
            attempt = throttle.begin(
                username=username,
                address=request.remote_addr,
                device=known_device(request.cookies.get(DEVICE_COOKIE), username),
            )
            if not attempt.allowed:
                return _refuse(username, attempt)
        user = find_user(db.session, username)
        if not check_credentials(user, password):
            _audit("login_failed", user, username)
            if attempt is not None:
                _audit_locks(throttle.fail(attempt), user)
            db.session.commit()
            flash("用户名或密码错误", "error")
            return render_template("login.html", username=username), 401
        if attempt is not None:
            throttle.succeed(attempt)
        # A fresh session on login prevents session fixation.
        session.clear()
        login_user(user)
        start_session(user, ip=request.remote_addr, user_agent=request.user_agent.string)
        _remember_device(username)
        _audit("login", user)
        db.session.commit()
        if user.must_change_password:
            return redirect(url_for("auth.change_password"))
        return redirect(safe_next(request.args.get("next")) or url_for("main.index"))
    return render_template("login.html", username="")


@bp.post("/logout")
@login_required
def logout():
    """Sign out of this browser."""
    revoke_session(session.get(SESSION_KEY))
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.post("/logout-everywhere")
@login_required
def logout_everywhere():
    """Sign out of every browser and token-less session of this account."""
    user = db.session.get(User, current_user.id)
    user.session_version += 1
    revoke_user_sessions(user)
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
            revoke_user_sessions(user, keep=session.get(SESSION_KEY))
            _audit("password_changed", user)
            db.session.commit()
            login_user(user)
            flash("密码已修改", "ok")
            return redirect(url_for("main.index"))
        return render_template("password.html"), 400
    return render_template("password.html")
