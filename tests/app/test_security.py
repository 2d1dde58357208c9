"""Cross-cutting hardening: CSRF, login lockout, cookies, session fixation, error pages,
security headers, audit rows, and hostile uploads (polyglot photos, a disguised .exe)."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.models import ApiToken, AuditLog, Issue, Photo, Unit, User
from tests.factories import (
    AuthActions,
    Factory,
    app_config,
    empty_tables,
    fresh_user_per_request,
    west_point,
)

CSRF_MESSAGE = "缺少安全令牌 (CSRF)"


def _make_app(_unit_database, tmp_path, **overrides):
    from app import create_app
    from app.services.core.cache import reset_caches

    url, tmp = _unit_database
    config = app_config(url, tmp)
    config.update(
        PHOTO_DIR=str(tmp_path / "photos"),
        IMPORT_UPLOAD_DIR=str(tmp_path / "imp"),
        ROSTER_UPLOAD_DIR=str(tmp_path / "roster"),
        **overrides,
    )
    app = create_app(config)
    fresh_user_per_request(app)

    @app.before_request
    def _forget_csrf_token():
        # Like the signed-in user, Flask-WTF caches the raw token in ``g``; the tests keep
        # one app context open, so one client's token would leak into the next request.
        from flask import g

        g.pop("csrf_token", None)

    empty_tables(app)
    reset_caches()
    return app


@pytest.fixture()
def secure_app(_unit_database, tmp_path):
    """The app as production runs it: CSRF on, login rate limits on (memory storage)."""
    from app.extensions import db, limiter

    app = _make_app(
        _unit_database,
        tmp_path,
        WTF_CSRF_ENABLED=True,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
    )
    with app.app_context():
        limiter.reset()
        yield app
        limiter.reset()
        db.session.remove()


@pytest.fixture()
def world(secure_app):
    from app.extensions import db

    factory = Factory(db.session)
    town = factory.town()
    lon, lat = west_point(0)
    town["issue"] = factory.issue(town["users"]["inspector"], lon=lon, lat=lat)
    return town


def _token_from(page) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, "form without a csrf_token field"
    return match.group(1)


def _login_with_token(client, username: str):
    token = _token_from(client.get("/login"))
    response = client.post(
        "/login", data={"username": username, "password": "password123", "csrf_token": token}
    )
    assert response.status_code == 302
    return _token_from(client.get("/password"))


def _counts(session) -> dict:
    session.expire_all()
    return {
        m.__name__: session.execute(select(func.count()).select_from(m)).scalar_one()
        for m in (User, Unit, Issue, ApiToken, Photo)
    }


# ---------------------------------------------------------------------- CSRF


def test_login_without_csrf_token_is_refused(secure_app, world):
    from app.extensions import db

    client = secure_app.test_client()
    client.get("/login")  # a session exists, but the form lacks its token
    response = client.post("/login", data={"username": "admin", "password": "password123"})
    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not signed in
    assert not db.session.execute(select(AuditLog).where(AuditLog.action == "login")).scalar()


def test_forms_without_csrf_token_change_nothing(secure_app, world):
    from app.extensions import db

    client = secure_app.test_client()
    token = _login_with_token(client, "admin")
    west_id, issue = world["users"]["west"].id, world["issue"]
    before = _counts(db.session)
    hash_before = world["users"]["west"].password_hash
    forged = [
        ("/logout", {}),
        ("/logout-everywhere", {}),
        (
            "/password",
            {
                "old_password": "password123",
                "new_password": "hijacked123",
                "confirm_password": "hijacked123",
            },
        ),
        ("/admin/users", {"username": "mole", "role": "admin"}),
        (f"/admin/users/{west_id}", {"role": "admin"}),
        (f"/admin/users/{west_id}/reset-password", {}),
        (f"/admin/users/{west_id}/disable", {}),
        (f"/admin/users/{west_id}/tokens", {"name": "stolen"}),
        ("/admin/units", {"name": "伪造单位"}),
        (f"/issues/{issue.id}/act/dispatch", {"version": issue.version}),
        (f"/issues/{issue.id}/act/reject", {"version": issue.version, "note": "x"}),
        (
            "/issues/new",
            {"description": "伪造问题", "lon": west_point(1)[0], "lat": west_point(1)[1]},
        ),
    ]
    for url, data in forged:
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert CSRF_MESSAGE in response.get_data(as_text=True), url
    assert _counts(db.session) == before
    west = db.session.get(User, west_id)
    assert west.role == "unit_head" and west.active and west.password_hash == hash_before
    assert db.session.get(Issue, issue.id).status == "reported"
    # Still signed in (the forged logouts did nothing), and a real token works.
    assert client.get("/admin/users").status_code == 200
    ok = client.post("/admin/units", data={"name": "真单位", "csrf_token": token})
    assert ok.status_code == 302


def test_bearer_api_is_csrf_exempt(secure_app, world):
    """Token requests carry no cookie, so a cross-site form cannot forge them."""
    from app.extensions import db
    from app.services.core.passwords import issue_token

    token = issue_token(db.session, world["users"]["inspector"])
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    client = secure_app.test_client()
    lon, lat = west_point(2)
    created = client.post(
        "/api/v1/issues",
        headers=headers,
        json={"description": "接口上报", "lon": lon, "lat": lat, "category": "0302"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    open311 = client.post(
        "/open311/v2/requests.json",
        headers=headers,
        data={
            "service_code": "0302",
            "description": "热线转办",
            "long": west_point(3)[0],
            "lat": west_point(3)[1],
        },
    )
    assert open311.status_code != 400 or CSRF_MESSAGE not in open311.get_data(as_text=True)
    assert client.get("/ogc/collections", headers=headers).status_code == 200
    # Without a token the API does not fall back to the cookie session.
    login_client = secure_app.test_client()
    _login_with_token(login_client, "inspector")
    assert login_client.post("/api/v1/issues", json={"description": "x"}).status_code == 401


# ---------------------------------------------------------------------- login lockout


def test_one_account_is_locked_against_many_addresses(secure_app, world):
    statuses = []
    for i in range(6):
        client = secure_app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.0.0.{i + 1}"
        token = _token_from(client.get("/login"))
        response = client.post(
            "/login", data={"username": "west", "password": f"guess{i}", "csrf_token": token}
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    assert "锁定" in response.get_data(as_text=True)
    # Another account from a fresh address is not affected.
    other = secure_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.0.1.1"
    _login_with_token(other, "east")


def test_successful_logins_do_not_count_towards_the_account_limit(secure_app, world):
    for i in range(7):
        client = secure_app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.0.2.{i + 1}"
        _login_with_token(client, "leader")


def test_rate_limit_storage_comes_from_the_environment(monkeypatch):
    from app.config import config_from_env

    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379")
    assert config_from_env()["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379"


# ---------------------------------------------------------------------- sessions


def test_session_cookie_flags(_unit_database, tmp_path, monkeypatch):
    from app.extensions import db

    app = _make_app(_unit_database, tmp_path)
    with app.app_context():
        Factory(db.session).user("alice", "inspector")
        db.session.commit()
        cookie = AuthActions(app.test_client()).login("alice").headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        db.session.remove()
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "1")
    secure = _make_app(_unit_database, tmp_path)
    with secure.app_context():
        Factory(db.session).user("alice", "inspector")
        db.session.commit()
        cookie = AuthActions(secure.test_client()).login("alice").headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        db.session.remove()


def test_login_starts_a_fresh_session(secure_app, world):
    client = secure_app.test_client()
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by-attacker"  # e.g. a session cookie fixed before login
    before = client.get_cookie("session").value
    _login_with_token(client, "inspector")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("_user_id")
    assert client.get_cookie("session").value != before
    # The pre-login cookie does not carry the signed-in user.
    replay = secure_app.test_client()
    replay.set_cookie("session", before)
    assert replay.get("/").status_code == 302


def test_logout_everywhere_kills_a_copied_cookie(secure_app, world):
    client = secure_app.test_client()
    token = _login_with_token(client, "inspector")
    stolen = client.get_cookie("session").value
    client.post("/logout-everywhere", data={"csrf_token": token})
    thief = secure_app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302


# ---------------------------------------------------------------------- errors, headers


def test_error_pages_leak_no_stack_trace(_unit_database, tmp_path):
    from app.extensions import db

    app = _make_app(_unit_database, tmp_path)

    @app.get("/_test/boom")
    def _boom():
        msg = f"secret detail in {__file__}"
        raise RuntimeError(msg)

    with app.app_context():
        Factory(db.session).user("alice", "inspector")
        db.session.commit()
        client = app.test_client()
        AuthActions(client).login("alice")
        for headers in ({}, {"Accept": "application/json"}):
            response = client.get("/_test/boom", headers=headers)
            body = response.get_data(as_text=True)
            assert response.status_code == 500
            message = response.get_json()["error"] if response.is_json else body
            assert "服务器内部错误" in message
            for leak in ("Traceback", "RuntimeError", "secret detail", "/work/", ".py"):
                assert leak not in body
        missing = client.get("/no/such/page")
        assert missing.status_code == 404 and "页面或对象不存在" in missing.get_data(as_text=True)
        db.session.remove()


def test_security_headers_on_every_response(secure_app, world):
    client = secure_app.test_client()
    _login_with_token(client, "admin")
    responses = [
        client.get(u)
        for u in (
            "/",
            "/login",
            "/static/css/app.css",
            "/admin/users",
            "/no/such/page",
            "/api/v1/openapi.json",
            "/api/v1/issues",
            f"/issues/{world['issue'].id}",
        )
    ]
    responses.append(secure_app.test_client().get("/"))  # redirect to login
    for response in responses:
        csp = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors" in csp, response.request.path
        assert not re.search(r"https?://|//[a-z]", csp), csp  # no outside hosts
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


# ---------------------------------------------------------------------- audit


def test_audit_rows_for_logins_and_admin_actions(secure_app, world):
    from app.extensions import db

    bad = secure_app.test_client()
    token = _token_from(bad.get("/login"))
    bad.post("/login", data={"username": "west", "password": "nope", "csrf_token": token})
    bad.post("/login", data={"username": "ghost", "password": "nope", "csrf_token": token})
    admin = secure_app.test_client()
    token = _login_with_token(admin, "admin")
    west_id = world["users"]["west"].id
    admin.post(
        f"/admin/users/{west_id}",
        data={"role": "unit_head", "csrf_token": token, "unit_id": world["east"].id},
    )
    admin.post(
        f"/admin/users/{world['users']['leader'].id}",
        data={"role": "inspector", "csrf_token": token},
    )
    admin.post(f"/admin/users/{west_id}/reset-password", data={"csrf_token": token})
    admin.post(f"/admin/users/{west_id}/tokens", data={"csrf_token": token})
    admin.post(f"/admin/users/{west_id}/disable", data={"csrf_token": token})
    rows = db.session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
    actions = [r.action for r in rows]
    for action in (
        "login_failed",
        "login",
        "role_changed",
        "unit_changed",
        "password_reset",
        "token_created",
        "user_disabled",
    ):
        assert action in actions, action
    failed = [r for r in rows if r.action == "login_failed"]
    assert {r.detail for r in failed} == {"west", "ghost"}  # the attempted names are kept
    assert all(r.ip for r in rows)
    admin_rows = [r for r in rows if r.action in ("role_changed", "password_reset")]
    assert all(r.user_id == world["users"]["admin"].id for r in admin_rows)


def test_exports_are_audited(client, auth, factory, session):
    factory.town()
    auth.login("leader")
    assert client.get("/issues/export.xlsx").status_code == 200
    assert session.execute(select(AuditLog).where(AuditLog.action.like("export%"))).scalar()


# ---------------------------------------------------------------------- hostile uploads


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), "blue").save(buf, format="JPEG")
    return buf.getvalue()


def _gifar_tail() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("evil.html", "<html><script>alert(document.cookie)</script></html>")
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        _jpeg() + b"<html><script>alert(document.cookie)</script></html>",
        _jpeg()[:2] + b"\xff\xfe\x00\x20<script>alert(1)</script>" + _jpeg()[2:],
        _jpeg() + _gifar_tail(),
    ],
    ids=["script-appended", "script-in-comment", "gifar-zip"],
)
def test_polyglot_photo_is_refused_or_served_clean(
    client, auth, factory, session, app, tmp_path, payload
):
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")
    factory.town()
    auth.login("inspector")
    lon, lat = west_point(0)
    response = client.post(
        "/issues/new",
        data={
            "description": "带照片的问题",
            "category": "0302",
            "lon": lon,
            "lat": lat,
            "photos": [(io.BytesIO(payload), "photo.jpg")],
        },
        content_type="multipart/form-data",
    )
    stored = session.execute(select(Photo)).scalars().all()
    if response.status_code >= 400:
        assert not stored
        assert session.execute(select(func.count()).select_from(Issue)).scalar_one() == 0
        return
    assert stored, "accepted but no photo stored"
    photo = stored[0]
    for suffix in ("", "/thumb"):
        served = client.get(f"/issues/{photo.issue_id}/photos/{photo.id}{suffix}")
        assert served.status_code == 200
        assert served.mimetype.startswith("image/")
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        body = served.get_data()
        assert b"<script" not in body.lower() and b"PK\x03\x04" not in body
        Image.open(io.BytesIO(body)).verify()


def test_renamed_exe_is_refused_by_the_importer(client, auth, factory, session, app, tmp_path):
    app.config["IMPORT_UPLOAD_DIR"] = str(tmp_path / "uploads")
    factory.town()
    auth.login("admin")
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64 + b"PE\x00\x00"
    for name in ("问题清单.xlsx", "问题清单.xls", "问题清单.csv", "setup.exe"):
        response = client.post(
            "/issues/import/",
            data={"file": (io.BytesIO(exe), name)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 400, name
        text = response.get_data(as_text=True)
        assert "不是有效的 Excel/CSV 文件" in text and name in text
    assert session.execute(select(func.count()).select_from(Issue)).scalar_one() == 0
    stored = list((tmp_path / "uploads").glob("*")) if (tmp_path / "uploads").exists() else []
    assert stored == []
