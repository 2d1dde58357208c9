"""The rectification workflow through the detail page's forms: roles, states, versions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Issue, IssueEvent, Photo
from tests.factories import jpeg_bytes, upload, west_point


@pytest.fixture(autouse=True)
def _own_photo_dir(app, tmp_path):
    """Each test stores photos in its own directory, so "nothing left behind" is checkable."""
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")


@pytest.fixture()
def town(factory):
    town = factory.town()
    lon, lat = west_point(0)
    town["issue"] = factory.issue(
        town["users"]["inspector"], lon=lon, lat=lat, description="背街小巷垃圾堆积"
    )
    return town


def _fresh(session, issue_id: int) -> Issue:
    session.expire_all()
    return session.get(Issue, issue_id)


def _act(
    client,
    session,
    issue_id: int,
    action: str,
    *,
    version=None,
    note: str = "",
    photos=None,
    **extra,
):
    if version is None:
        version = _fresh(session, issue_id).version
    data = {"version": str(version), "note": note, **extra}
    if photos is not None:
        data["photos"] = photos
        return client.post(
            f"/issues/{issue_id}/act/{action}", data=data, content_type="multipart/form-data"
        )
    return client.post(f"/issues/{issue_id}/act/{action}", data=data)


def test_full_workflow_walk(client, auth, town, session):
    issue_id = town["issue"].id
    steps = [
        ("admin", "dispatch", {}, "dispatched"),
        ("west", "start", {}, "rectifying"),
        (
            "west",
            "submit",
            {"note": "已清理", "photos": [upload(jpeg_bytes(), "after1.jpg")]},
            "submitted",
        ),
        ("inspector", "verify_fail", {"note": "墙角仍有垃圾"}, "rectifying"),
        (
            "west",
            "submit",
            {"note": "再次清理", "photos": [upload(jpeg_bytes(), "after2.jpg")]},
            "submitted",
        ),
        ("inspector", "verify_ok", {"note": "已整改到位"}, "closed"),
    ]
    for username, action, extra, expected in steps:
        auth.login(username)
        response = _act(client, session, issue_id, action, **extra)
        assert response.status_code == 302, (action, response.get_data(as_text=True)[:500])
        assert response.headers["Location"].endswith(f"/issues/{issue_id}")
        assert _fresh(session, issue_id).status == expected
    issue = _fresh(session, issue_id)
    assert issue.rework_count == 1
    assert issue.closed_at is not None and not issue.is_open
    events = (
        session.execute(
            select(IssueEvent).where(IssueEvent.issue_id == issue_id).order_by(IssueEvent.id)
        )
        .scalars()
        .all()
    )
    assert [(e.action, e.user.username, e.from_status, e.to_status) for e in events] == [
        ("report", "inspector", None, "reported"),
        ("dispatch", "admin", "reported", "dispatched"),
        ("start", "west", "dispatched", "rectifying"),
        ("submit", "west", "rectifying", "submitted"),
        ("verify_fail", "inspector", "submitted", "rectifying"),
        ("submit", "west", "rectifying", "submitted"),
        ("verify_ok", "inspector", "submitted", "closed"),
    ]
    assert events[4].note == "墙角仍有垃圾"
    after = session.execute(select(Photo).where(Photo.issue_id == issue_id)).scalars().all()
    assert sorted(p.event_id for p in after) == [events[3].id, events[5].id]
    assert {p.kind for p in after} == {"after"}
    # The detail page tells the whole story, photos included.
    html = client.get(f"/issues/{issue_id}").get_data(as_text=True)
    for label in (
        "派遣",
        "开始整改",
        "提交核查",
        "核查未通过，退回返工",
        "核查通过，销号",
        "墙角仍有垃圾",
    ):
        assert label in html
    assert html.count(f"/issues/{issue_id}/photos/") >= 4  # two photos: history + 整改后
    assert "/act/" in html and "/act/reopen" in html  # only reopen is left for an inspector


def test_wrong_state_actions_are_conflicts(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("inspector")
    response = _act(client, session, issue_id, "verify_ok")
    assert response.status_code == 409
    assert "不能执行" in response.get_data(as_text=True)
    auth.login("admin")
    response = _act(client, session, issue_id, "start")
    assert response.status_code == 409
    assert _fresh(session, issue_id).status == "reported"


def test_stale_version_loses_and_changes_nothing(client, auth, town, session):
    issue_id = town["issue"].id
    old_version = _fresh(session, issue_id).version
    auth.login("admin")
    assert _act(client, session, issue_id, "dispatch", version=old_version).status_code == 302
    # A second admin still holding the old page tries to reject it.
    response = _act(client, session, issue_id, "reject", version=old_version, note="不属实")
    assert response.status_code == 409
    assert "该问题已被他人修改，请刷新后重试" in response.get_data(as_text=True)
    issue = _fresh(session, issue_id)
    assert issue.status == "dispatched"
    assert [e.action for e in issue.events] == ["report", "dispatch"]


def test_missing_version_is_refused(client, auth, town, session):
    auth.login("admin")
    response = client.post(f"/issues/{town['issue'].id}/act/dispatch", data={"note": ""})
    assert response.status_code == 400
    assert _fresh(session, town["issue"].id).status == "reported"


def test_verify_fail_without_reason_is_400(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    _act(client, session, issue_id, "submit", note="已清理",
         photos=[upload(jpeg_bytes(), "a.jpg")])
    assert _fresh(session, issue_id).status == "submitted"
    auth.login("inspector")
    response = _act(client, session, issue_id, "verify_fail", note="   ")
    assert response.status_code == 400
    assert "原因" in response.get_data(as_text=True)
    issue = _fresh(session, issue_id)
    assert issue.status == "submitted" and issue.rework_count == 0


def test_submit_needs_an_after_photo(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    auth.login("west")
    response = _act(client, session, issue_id, "submit", note="已整改")
    assert response.status_code == 400 and "整改后照片" in response.get_data(as_text=True)
    assert _fresh(session, issue_id).status == "dispatched"


def test_forbidden_actions_are_403_and_foreign_unit_is_404(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("west")
    assert _act(client, session, issue_id, "dispatch").status_code == 403
    auth.login("leader")
    assert _act(client, session, issue_id, "dispatch").status_code == 403
    auth.login("inspector")
    assert _act(client, session, issue_id, "dispatch").status_code == 403
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    auth.login("inspector")
    assert _act(client, session, issue_id, "start").status_code == 403
    auth.login("east")
    response = _act(client, session, issue_id, "start")
    assert response.status_code == 404
    assert _fresh(session, issue_id).status == "dispatched"
    assert _act(client, session, issue_id, "bogus").status_code == 404  # not even visible


def test_reroute_needs_reason_and_moves_unit(client, auth, town, session):
    issue_id = town["issue"].id
    east_id = town["east"].id
    auth.login("admin")
    response = _act(client, session, issue_id, "reroute", unit_id=str(east_id), note="")
    assert response.status_code == 400
    assert _fresh(session, issue_id).unit_id == town["west"].id
    response = _act(client, session, issue_id, "reroute", unit_id=str(east_id), note="属东区管辖")
    assert response.status_code == 302
    issue = _fresh(session, issue_id)
    assert issue.unit_id == east_id
    assert issue.events[-1].data == {"from_unit": "西区单位", "to_unit": "东区单位"}
    # The west unit head no longer sees it; the east one does.
    auth.login("west")
    assert client.get(f"/issues/{issue_id}").status_code == 404
    auth.login("east")
    assert client.get(f"/issues/{issue_id}").status_code == 200
    auth.login("inspector")
    assert (
        _act(
            client, session, issue_id, "reroute", unit_id=str(town["west"].id), note="x"
        ).status_code
        == 403
    )


def test_mark_duplicate_links_the_original(client, auth, town, factory, session):
    lon, lat = west_point(0)
    dup = factory.issue(town["users"]["inspector"], lon=lon, lat=lat, description="重复上报")
    auth.login("admin")
    html = client.get(f"/issues/{dup.id}").get_data(as_text=True)
    assert f'name="duplicate_of" inputmode="numeric" value="{town["issue"].id}"' in html
    response = _act(client, session, dup.id, "mark_duplicate", duplicate_of=str(town["issue"].id))
    assert response.status_code == 302
    issue = _fresh(session, dup.id)
    assert issue.status == "duplicate" and issue.duplicate_of_id == town["issue"].id
    response = _act(
        client, session, town["issue"].id, "mark_duplicate", duplicate_of=str(town["issue"].id)
    )
    assert response.status_code == 400


def test_reject_ends_without_fix(client, auth, town, session):
    auth.login("admin")
    assert _act(client, session, town["issue"].id, "reject", note="不属实").status_code == 302
    issue = _fresh(session, town["issue"].id)
    assert issue.status == "rejected" and issue.closed_at is None
    html = client.get(f"/issues/{issue.id}").get_data(as_text=True)
    assert "/act/" not in html


# ---- 整改措施 and after photos: one rule for every door (issue #12) --------------------


def test_submit_needs_measures_and_keeps_nothing_when_refused(client, auth, town, session, app):
    from pathlib import Path

    issue_id = town["issue"].id
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    auth.login("west")
    response = _act(client, session, issue_id, "submit", note="  ",
                    photos=[upload(jpeg_bytes(), "after.jpg")])
    assert response.status_code == 400
    assert "整改措施" in response.get_data(as_text=True)
    issue = _fresh(session, issue_id)
    assert issue.status == "dispatched" and issue.measures is None
    assert not [p for p in issue.photos if p.kind == "after"]
    root = Path(app.config["PHOTO_DIR"])
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_after_photo_first_then_submit_with_measures_only(client, auth, town, session):
    issue_id = town["issue"].id
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    auth.login("west")
    response = _act(client, session, issue_id, "photo_after",
                    photos=[upload(jpeg_bytes(colour="green"), "done.jpg")])
    assert response.status_code == 302
    assert _fresh(session, issue_id).status == "dispatched"  # a photo is no workflow step
    response = _act(client, session, issue_id, "submit", note="清运垃圾 2 车，墙面复刷")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    issue = _fresh(session, issue_id)
    assert issue.status == "submitted"
    assert issue.measures == "清运垃圾 2 车，墙面复刷"
    html = client.get(f"/issues/{issue_id}").get_data(as_text=True)
    assert "整改措施" in html and "清运垃圾 2 车，墙面复刷" in html
    assert "整改前" in html and "整改后" in html


def test_submit_service_refuses_without_after_photo(town, session):
    """The door without uploads (JSON API) goes through issue_actions.submit_issue."""
    from app.services.core.errors import ValidationError
    from app.services.issues import actions as issue_actions
    from app.services.issues.intake import transition

    issue_id = town["issue"].id
    transition(session, town["users"]["admin"], issue_id, "dispatch")
    with pytest.raises(ValidationError, match="整改后照片"):
        issue_actions.submit_issue(session, town["users"]["west"], issue_id, measures="已清理")
    with pytest.raises(ValidationError, match="整改措施"):
        issue_actions.check_submission(_fresh(session, issue_id), measures="", new_after_photos=1)
    assert _fresh(session, issue_id).status == "dispatched"


def test_overdue_dispatched_problem_shows_the_unit_its_actions(client, auth, town, session):
    from datetime import timedelta

    from app.models import today_local

    issue_id = town["issue"].id
    issue = _fresh(session, issue_id)
    issue.deadline = today_local() - timedelta(days=30)
    session.commit()
    auth.login("admin")
    _act(client, session, issue_id, "dispatch")
    auth.login("west")
    html = client.get(f"/issues/{issue_id}").get_data(as_text=True)
    assert "已逾期" in html
    assert f"/issues/{issue_id}/act/start" in html and f"/issues/{issue_id}/act/submit" in html
    assert f"/issues/{issue_id}/act/photo_before" in html
