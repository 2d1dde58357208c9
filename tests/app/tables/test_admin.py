"""Account administration: users, units, roster import, API tokens and the audit log."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app.models import ApiToken, AuditLog, Unit, User
from app.services.core.errors import ForbiddenError, ValidationError
from app.services.tables import accounts, roster
from tests.factories import AuthActions


@pytest.fixture()
def town(factory, app, tmp_path):
    app.config["ROSTER_UPLOAD_DIR"] = str(tmp_path / "roster")
    return factory.town()


def _user(session, username: str) -> User:
    session.expire_all()
    return session.execute(select(User).where(User.username == username)).scalar_one()


def _audit_actions(session) -> list[str]:
    return list(session.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars())


def _count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def _roster(rows, header=("单位", "姓名", "手机号", "角色")) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------------- who may enter


@pytest.mark.parametrize("username", ["inspector", "leader", "west"])
def test_non_admins_get_403_on_every_admin_page(client, auth, town, username):
    auth.login(username)
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    response = client.post("/admin/units", data={"name": "偷建单位"})
    assert response.status_code == 403
    assert "没有权限" in response.get_data(as_text=True)


def test_anonymous_is_sent_to_login(client, town):
    response = client.get("/admin/users")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_services_refuse_non_admins(session, town):
    with pytest.raises(ForbiddenError):
        accounts.reset_password(session, town["users"]["inspector"], town["users"]["west"].id)
    with pytest.raises(ForbiddenError):
        accounts.create_unit(session, town["users"]["leader"], name="某单位")


# ---------------------------------------------------------------------- users


def test_user_list_shows_role_unit_and_last_login(client, auth, town):
    auth.login("west")
    other = client.application.test_client()
    AuthActions(other).login("admin")
    page = other.get("/admin/users").get_data(as_text=True)
    assert "西区单位" in page and "责任单位" in page and "从未登录" in page  # leader never did
    assert page.count("从未登录") == 3  # inspector, leader, east; admin and west logged in


def test_create_user_shows_temporary_password_once(client, auth, town, session):
    auth.login("admin")
    response = client.post(
        "/admin/users",
        data={
            "username": "zhao",
            "role": "unit_head",
            "unit_id": town["east"].id,
            "display_name": "赵六",
        },
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    import re

    password = re.search(r'<code class="secret">([^<]+)</code>', html).group(1)
    user = _user(session, "zhao")
    assert user.must_change_password and user.unit_id == town["east"].id
    assert password not in user.password_hash
    # The new user signs in with it and is sent to change it.
    newcomer = client.application.test_client()
    assert AuthActions(newcomer).login("zhao", password).headers["Location"].endswith("/password")
    assert "user_created" in _audit_actions(session)


def test_create_unit_head_without_unit_is_refused(client, auth, town, session):
    auth.login("admin")
    before = _count(session, User)
    response = client.post("/admin/users", data={"username": "nobody", "role": "unit_head"})
    assert response.status_code == 400
    assert "必须指定" in response.get_data(as_text=True)
    assert _count(session, User) == before


def test_role_change_is_audited_and_ends_sessions(client, auth, app, town, session):
    victim = app.test_client()
    AuthActions(victim).login("west")
    assert victim.get("/").status_code == 200
    auth.login("admin")
    response = client.post(
        f"/admin/users/{town['users']['west'].id}",
        data={"role": "unit_head", "unit_id": town["east"].id},
    )
    assert response.status_code == 302
    user = _user(session, "west")
    assert user.unit_id == town["east"].id
    assert victim.get("/").status_code == 302  # must sign in again with the new scope
    detail = session.execute(
        select(AuditLog.detail).where(AuditLog.action == "unit_changed")
    ).scalar_one()
    assert "西区单位" in detail and "东区单位" in detail
    client.post(f"/admin/users/{town['users']['leader'].id}", data={"role": "inspector"})
    detail = session.execute(
        select(AuditLog.detail).where(AuditLog.action == "role_changed")
    ).scalar_one()
    assert detail == "leader: leader → inspector"


def test_bad_role_and_self_demotion_are_refused(client, auth, town, session):
    auth.login("admin")
    admin_id = town["users"]["admin"].id
    bad = client.post(f"/admin/users/{town['users']['leader'].id}", data={"role": "superuser"})
    assert bad.status_code == 400 and "superuser" in bad.get_data(as_text=True)
    self_demote = client.post(f"/admin/users/{admin_id}", data={"role": "leader"})
    assert self_demote.status_code == 400
    assert _user(session, "admin").role == "admin"
    assert _user(session, "leader").role == "leader"
    assert client.get("/admin/users/99999").status_code == 404


def test_reset_password(client, auth, app, town, session):
    victim = app.test_client()
    AuthActions(victim).login("east")
    auth.login("admin")
    response = client.post(f"/admin/users/{town['users']['east'].id}/reset-password")
    assert response.status_code == 200
    import re

    password = re.search(
        r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True)
    ).group(1)
    assert victim.get("/").status_code == 302  # old session is dead
    assert AuthActions(app.test_client()).login("east").status_code == 401  # old password is dead
    fresh = app.test_client()
    assert AuthActions(fresh).login("east", password).headers["Location"].endswith("/password")
    assert _user(session, "east").must_change_password
    assert "password_reset" in _audit_actions(session)


def test_disable_revokes_tokens_and_enable(client, auth, app, town, session):
    from app.services.core.passwords import issue_token

    token = issue_token(session, town["users"]["inspector"])
    session.commit()
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/issues", headers=headers).status_code == 200
    auth.login("admin")
    uid = town["users"]["inspector"].id
    assert client.post(f"/admin/users/{uid}/disable").status_code == 302
    assert api.get("/api/v1/issues", headers=headers).status_code == 401
    assert AuthActions(app.test_client()).login("inspector").status_code == 401
    assert session.execute(select(ApiToken.revoked_at)).scalar_one() is not None
    assert client.post(f"/admin/users/{uid}/enable").status_code == 302
    assert AuthActions(app.test_client()).login("inspector").status_code == 302
    # Re-enabling does not bring a revoked token back.
    assert api.get("/api/v1/issues", headers=headers).status_code == 401
    assert {"user_disabled", "user_enabled"} <= set(_audit_actions(session))


def test_admin_cannot_disable_self(client, auth, town, session):
    auth.login("admin")
    response = client.post(f"/admin/users/{town['users']['admin'].id}/disable")
    assert response.status_code == 400 and "自己" in response.get_data(as_text=True)
    assert _user(session, "admin").active


def test_logout_everywhere_for_a_user(client, auth, app, town):
    victim = app.test_client()
    AuthActions(victim).login("leader")
    auth.login("admin")
    client.post(f"/admin/users/{town['users']['leader'].id}/logout-everywhere")
    assert victim.get("/").status_code == 302
    assert client.get("/admin/users").status_code == 200


# ---------------------------------------------------------------------- tokens


def test_token_created_once_listed_and_revoked(client, auth, app, town, session):
    auth.login("admin")
    uid = town["users"]["inspector"].id
    response = client.post(f"/admin/users/{uid}/tokens", data={"name": "12345 热线"})
    import re

    token = re.search(
        r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True)
    ).group(1)
    assert token.startswith("sg_")
    listing = client.get(f"/admin/users/{uid}/tokens").get_data(as_text=True)
    assert token not in listing and token[:10] in listing and "12345 热线" in listing
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/issues", headers=headers).status_code == 200
    token_id = session.execute(select(ApiToken.id)).scalar_one()
    assert client.post(f"/admin/tokens/{token_id}/revoke").status_code == 302
    assert app.test_client().get("/api/v1/issues", headers=headers).status_code == 401
    assert {"token_created", "token_revoked"} <= set(_audit_actions(session))
    assert client.post("/admin/tokens/99999/revoke").status_code == 404


# ---------------------------------------------------------------------- units


def test_units_create_edit_and_duplicate(client, auth, town, session):
    auth.login("admin")
    assert (
        client.post(
            "/admin/units",
            data={
                "name": "县城管局",
                "kind": "department",
                "contact": "李四",
                "phone": "0873-1234567",
            },
        ).status_code
        == 302
    )
    dup = client.post("/admin/units", data={"name": "县城管局"})
    assert dup.status_code == 400 and "已存在" in dup.get_data(as_text=True)
    bad_phone = client.post("/admin/units", data={"name": "某局", "phone": "<b>x</b>"})
    assert bad_phone.status_code == 400
    unit = session.execute(select(Unit).where(Unit.name == "县城管局")).scalar_one()
    assert (
        client.post(
            f"/admin/units/{unit.id}",
            data={"name": "县城市管理局", "kind": "department", "contact": "王五", "phone": ""},
        ).status_code
        == 302
    )
    session.expire_all()
    assert unit.name == "县城市管理局" and unit.contact == "王五"
    rename_clash = client.post(f"/admin/units/{unit.id}", data={"name": "西区单位"})
    assert rename_clash.status_code == 400
    assert "县城市管理局" in client.get("/admin/units").get_data(as_text=True)


def test_disabling_a_unit_disables_its_heads(client, auth, app, town, session):
    auth.login("admin")
    assert client.post(f"/admin/units/{town['west'].id}/disable").status_code == 302
    assert not _user(session, "west").active
    assert AuthActions(app.test_client()).login("west").status_code == 401
    assert _user(session, "east").active


# ---------------------------------------------------------------------- roster import


def _upload_roster(client, data: bytes, name: str = "花名册.xlsx"):
    return client.post(
        "/admin/roster", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def test_roster_import_creates_all_and_passwords_download_once(client, auth, app, town, session):
    auth.login("admin")
    data = _roster(
        [
            ("西区单位", "张三", "138 0000 1111", "单位负责人"),
            ("", "李督查", "13900002222", "督查员"),
            ("县创卫办", "王主任", "13700003333", "创卫办"),
            ("", "赵领导", "+8613600004444", "领导"),
        ]
    )
    response = _upload_roster(client, data)
    assert response.status_code == 302
    preview_url = response.headers["Location"]
    preview = client.get(preview_url)
    text = preview.get_data(as_text=True)
    assert "县创卫办" in text and "不存在" in text  # unknown unit without the checkbox
    refused = client.post(preview_url)
    assert refused.status_code == 400 and "第4行" in refused.get_data(as_text=True)
    assert _count(session, User) == 5
    done = client.post(preview_url, data={"create_units": "1"})
    assert done.status_code == 200
    assert _count(session, User) == 9
    user = _user(session, "13800001111")
    assert user.role == "unit_head" and user.unit.name == "西区单位"
    assert user.display_name == "张三" and user.must_change_password
    assert _user(session, "13600004444").role == "leader"
    assert session.execute(select(Unit).where(Unit.name == "县创卫办")).scalar_one()
    sheet = client.get(preview_url + "/passwords.xlsx")
    assert sheet.status_code == 200
    ws = load_workbook(io.BytesIO(sheet.data)).active
    rows = {r[4]: r[5] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert set(rows) == {"13800001111", "13900002222", "13700003333", "13600004444"}
    signed_in = AuthActions(app.test_client()).login("13900002222", rows["13900002222"])
    assert signed_in.status_code == 302
    again = client.get(preview_url + "/passwords.xlsx")
    assert again.status_code == 404 and "已下载" in again.get_data(as_text=True)
    assert "roster_imported" in _audit_actions(session)


def test_roster_with_bad_rows_imports_nothing(client, auth, town, session):
    auth.login("admin")
    data = _roster(
        [
            ("西区单位", "张三", "13800001111", "单位负责人"),
            ("西区单位", "李四", "1380000", "单位负责人"),
            ("东区单位", "王五", "13800001111", "督查员"),
            ("", "赵六", "13900009999", "局长"),
            ("", "钱七", "13900008888", "单位负责人"),
        ]
    )
    preview_url = _upload_roster(client, data).headers["Location"]
    response = client.post(preview_url, data={"create_units": "1"})
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "第3行" in text and "1380000" in text  # bad phone
    assert "与第2行重复" in text
    assert "局长" in text
    assert "第6行" in text and "必须填写单位" in text
    assert _count(session, User) == 5 and _count(session, Unit) == 2


def test_roster_existing_account_and_unreadable_files(client, auth, town, session):
    auth.login("admin")
    client.post("/admin/roster", data={})  # no file
    assert _upload_roster(client, b"MZ\x90\x00\x03" + b"\x00" * 200, "名单.xlsx").status_code == 400
    no_header = _upload_roster(client, _roster([("x", "y")], header=("甲", "乙")))
    assert no_header.status_code == 400 and "找不到表头" in no_header.get_data(as_text=True)
    csv = "单位,姓名,手机号,角色\n,钱七,13900008888,督查员\n".encode("gb18030")
    url = _upload_roster(client, csv, "名单.csv").headers["Location"]
    assert client.post(url).status_code == 200
    url = _upload_roster(client, csv, "名单.csv").headers["Location"]
    again = client.post(url)
    assert again.status_code == 400 and "已有账号" in again.get_data(as_text=True)


def test_roster_upload_belongs_to_its_uploader(client, auth, app, town, factory, session):
    factory.user("admin2", "admin")
    session.commit()
    auth.login("admin")
    url = _upload_roster(client, _roster([("", "钱七", "13900008888", "督查员")])).headers[
        "Location"
    ]
    other = app.test_client()
    AuthActions(other).login("admin2")
    assert other.get(url).status_code == 404
    assert other.post(url).status_code == 404
    assert client.get("/admin/roster/../../etc/passwd").status_code == 404
    assert _count(session, User) == 6


def test_roster_service_row_errors_are_numbered(session, town):
    data = _roster([("不存在的局", "甲", "13800001111", "单位负责人")])
    with pytest.raises(ValidationError, match="第2行: 单位「不存在的局」不存在"):
        roster.import_roster(session, town["users"]["admin"], data, "a.xlsx")


# ---------------------------------------------------------------------- audit log


def test_audit_page_filters(client, auth, app, town, session):
    AuthActions(app.test_client()).login("west", "wrong-password")
    auth.login("admin")
    client.post(f"/admin/users/{town['users']['east'].id}/reset-password")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "登录失败" in page and "重置密码" in page
    only_failed = client.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert "登录失败" in only_failed and "重置密码</td>" not in only_failed
    by_user = client.get("/admin/audit?user=west").get_data(as_text=True)
    assert "登录失败" in by_user
    bad = client.get("/admin/audit?from=2024-13-40")
    assert bad.status_code == 400 and "2024-13-40" in bad.get_data(as_text=True)
    future = client.get("/admin/audit?from=2999-01-01").get_data(as_text=True)
    assert "没有记录" in future
