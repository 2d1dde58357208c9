"""Login, logout, password changes, sessions and the account commands."""

from sqlalchemy import select

from app.models import ApiToken, AuditLog, User
from tests.factories import AuthActions


def test_login_page_and_wrong_password(client, auth, factory):
    factory.user("alice", "inspector")
    page = client.get("/login")
    assert page.status_code == 200 and "用户名" in page.get_data(as_text=True)
    bad = auth.login("alice", "wrong-password")
    assert bad.status_code == 401 and "用户名或密码错误" in bad.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still signed out


def test_login_then_logout(client, auth, factory, session):
    factory.user("alice", "inspector")
    response = auth.login("alice")
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert session.execute(select(AuditLog).where(AuditLog.action == "login")).scalar()
    auth.logout()
    assert client.get("/").status_code == 302


def test_disabled_account_cannot_log_in(client, auth, factory):
    factory.user("bob", "inspector", active=False)
    assert auth.login("bob").status_code == 401


def test_open_redirect_is_refused(client, factory):
    factory.user("alice", "inspector")
    response = client.post("/login?next=//evil.example/", data={
        "username": "alice", "password": "password123"})
    assert response.headers["Location"] in ("/", "http://localhost/")


def test_forced_password_change_and_logout_everywhere(app, factory, session):
    factory.user("carol", "unit_head", factory.unit("某单位"), must_change_password=True)
    session.commit()
    first, second = app.test_client(), app.test_client()
    response = AuthActions(first).login("carol")
    assert response.headers["Location"].endswith("/password")
    AuthActions(second).login("carol")
    changed = first.post("/password", data={"old_password": "password123",
                                            "new_password": "newpassword1",
                                            "confirm_password": "newpassword1"})
    assert changed.status_code == 302
    # The other browser's session died with the password change; this one lives on.
    assert second.get("/").status_code == 302
    assert first.get("/").status_code == 200
    user = session.execute(select(User).where(User.username == "carol")).scalar()
    session.refresh(user)
    assert user.must_change_password is False
    short = first.post("/password", data={"old_password": "newpassword1",
                                          "new_password": "short", "confirm_password": "short"})
    assert short.status_code == 400 and "至少 8 位" in short.get_data(as_text=True)


def test_session_cookie_flags(client, auth, factory):
    factory.user("alice", "inspector")
    response = auth.login("alice")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_create_user_and_token_commands(runner, factory, session):
    factory.unit("城管局")
    session.commit()
    ok = runner.invoke(args=["create-user", "zhang", "--role", "unit_head", "--password",
                             "secret123", "--unit", "城管局"])
    assert ok.exit_code == 0, ok.output
    missing_unit = runner.invoke(args=["create-user", "li", "--role", "unit_head",
                                       "--password", "secret123"])
    assert missing_unit.exit_code != 0 and "--unit" in missing_unit.output
    bad_unit = runner.invoke(args=["create-user", "wang", "--role", "unit_head", "--password",
                                   "secret123", "--unit", "不存在的局"])
    assert bad_unit.exit_code != 0 and "不存在的局" in bad_unit.output
    token_out = runner.invoke(args=["create-token", "zhang"])
    assert token_out.exit_code == 0
    token = token_out.output.strip().splitlines()[-1]
    assert token.startswith("sg_")
    stored = session.execute(select(ApiToken)).scalar()
    assert stored.token_hash != token and len(stored.token_hash) == 64
    assert runner.invoke(args=["create-token", "nobody"]).exit_code != 0


def test_pages_require_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
