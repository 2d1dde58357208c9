"""A unit head who wants a rival ranked lower: every filing trick, through every door.

Units are ranked against each other on the problems scored to them. The access rule
(``access.check_filing``, applied once in ``create_issue``) lets a unit head report only as
自查, only inside its own cells, and nobody back-date a report; these tests try each trick
through the web form, the JSON API, Open311, patrol results and the importer, and check
that nothing is stored and that ``flask report --month`` ranks everyone as before.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.models import Issue, IssueEvent, IssueUnit, Patrol, Stop, now_local, today_local
from tests.factories import AuthActions, east_point, west_point

OUTSIDE_SOURCES = ("州级交叉检查", "省级暗访", "国家评估", "县级督查", "群众投诉/12345")


@pytest.fixture()
def town(factory, session):
    """The factory town, a token per user and a problem on each side (so both are ranked)."""
    from app.services.core.passwords import issue_token

    town = factory.town()
    users = town["users"]
    town["tokens"] = {name: issue_token(session, user) for name, user in users.items()}
    factory.issue(users["inspector"], lon=west_point(0)[0], lat=west_point(0)[1])
    factory.issue(users["inspector"], lon=east_point(0)[0], lat=east_point(0)[1])
    session.commit()
    return town


def _count(session) -> int:
    session.expire_all()
    return session.execute(select(func.count(Issue.id))).scalar_one()


def _ranking(runner, month: str) -> list[tuple[str, float]]:
    result = runner.invoke(args=["report", "--month", month, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    return sorted((row["unit"], row["score"]) for row in report["ranking"])


def _months() -> list[str]:
    this = today_local().replace(day=1)
    last = (this - timedelta(days=1)).replace(day=1)
    return [f"{last:%Y-%m}", f"{this:%Y-%m}"]


def _api(client, town, who: str, body: dict):
    headers = {"Authorization": f"Bearer {town['tokens'][who]}"}
    return client.post("/api/v1/issues", json=body, headers=headers)


def _open311(client, town, who: str, form: dict):
    return client.post(
        "/open311/v2/requests.json", data={"api_key": town["tokens"][who], **form}
    )


def _web(client, who: str, form: dict):
    AuthActions(client).login(who)
    response = client.post("/issues/new", data=form)
    client.post("/logout")
    return response


# ---- the tricks, door by door ------------------------------------------------------------

EAST = east_point(3)
WEST = west_point(3)
LONG_AGO = (now_local() - timedelta(days=20)).replace(microsecond=0)


def _tricks():
    """(name, door, payload maker, expected status) for every filing trick."""
    rival = {"description": "东区路面有积存垃圾", "category": "0302"}
    own = {"description": "西区路面有积存垃圾", "category": "0302"}
    cases = []
    for source in OUTSIDE_SOURCES:
        cases.append((f"api-source-{source}", "api",
                      {**own, "lon": WEST[0], "lat": WEST[1], "source": source}, 403))
        cases.append((f"web-source-{source}", "web",
                      {**own, "lon": WEST[0], "lat": WEST[1], "source": source}, 403))
    cases += [
        ("api-rival-cell", "api", {**rival, "lon": EAST[0], "lat": EAST[1]}, 403),
        ("api-rival-cell-selfcheck", "api",
         {**rival, "lon": EAST[0], "lat": EAST[1], "source": "自查"}, 403),
        ("api-national-rival-backdated", "api",
         {**rival, "lon": EAST[0], "lat": EAST[1], "source": "国家评估",
          "found_at": LONG_AGO.isoformat()}, 403),
        ("api-backdated-own-cell", "api",
         {**own, "lon": WEST[0], "lat": WEST[1], "found_at": LONG_AGO.isoformat()}, 400),
        ("api-future-own-cell", "api",
         {**own, "lon": WEST[0], "lat": WEST[1],
          "found_at": (now_local() + timedelta(days=3)).isoformat()}, 400),
        ("api-year-one", "api",
         {**own, "lon": WEST[0], "lat": WEST[1], "found_at": "0001-01-01"}, 400),
        ("api-outside-grid", "api",
         {**own, "lon": WEST[0] - 0.01, "lat": WEST[1]}, 403),
        ("web-rival-cell", "web", {**rival, "lon": EAST[0], "lat": EAST[1]}, 403),
        ("open311-rival-cell", "open311",
         {"service_code": "0302", "description": "东区路面有积存垃圾",
          "lat": EAST[1], "long": EAST[0]}, 403),
    ]
    return cases


@pytest.mark.parametrize(("name", "door", "payload", "status"), _tricks(),
                         ids=[c[0] for c in _tricks()])
def test_filing_trick_is_refused_and_stores_nothing(
    client, runner, town, session, name, door, payload, status
):
    before = _count(session)
    months = _months()
    scores = {m: _ranking(runner, m) for m in months}
    for _ in range(4):  # the defect took four reports to move a rank
        if door == "api":
            response = _api(client, town, "west", payload)
            message = response.get_json()["error"]
        elif door == "open311":
            response = _open311(client, town, "west", payload)
            message = response.get_json()[0]["description"]
        else:
            response = _web(client, "west", payload)
            message = response.get_data(as_text=True)
        assert response.status_code == status, (name, message)
        # Never a hint of who owns the point.
        assert "东区单位" not in message
    assert _count(session) == before
    assert {m: _ranking(runner, m) for m in months} == scores


def test_patrol_results_door_is_closed_to_unit_heads(client, auth, town, session):
    inspector = town["users"]["inspector"]
    patrol = Patrol(name="东区巡查", inspector_id=inspector.id, created_by_id=inspector.id)
    patrol.stops = [Stop(seq=1, lon=EAST[0], lat=EAST[1], label="东区路口", kind="point")]
    session.add(patrol)
    session.commit()
    stop_id = patrol.stops[0].id
    before = _count(session)
    auth.login("west")
    response = client.post(
        f"/patrols/{patrol.id}/results",
        data={f"result_{stop_id}": "new", f"remark_{stop_id}": "东区有垃圾"},
    )
    assert response.status_code in (403, 404)
    assert _count(session) == before
    auth.logout()
    # The inspector's new finding goes through the same intake: 县级督查, found now.
    auth.login("inspector")
    response = client.post(
        f"/patrols/{patrol.id}/results",
        data={f"result_{stop_id}": "new", f"remark_{stop_id}": "东区有垃圾"},
    )
    assert response.status_code == 302
    created = session.execute(select(Issue).order_by(Issue.id.desc())).scalars().first()
    assert _count(session) == before + 1
    assert created.source == "县级督查" and created.unit_id == town["east"].id


def test_import_door_is_closed_to_unit_heads(client, auth, town, session):
    auth.login("west")
    assert client.get("/issues/import/").status_code == 403
    assert client.post("/issues/import/", data={}).status_code == 403


def test_unit_head_may_report_selfcheck_in_own_cell_everywhere(client, town, session):
    west = town["west"]
    body = {"description": "西区路面有积存垃圾", "category": "0302",
            "lon": WEST[0], "lat": WEST[1]}
    api = _api(client, town, "west", body)
    assert api.status_code == 201 and api.get_json()["source"] == "自查"
    found = (now_local() - timedelta(minutes=30)).replace(microsecond=0).isoformat()
    recent = _api(client, town, "west", {**body, "lon": west_point(1)[0], "found_at": found})
    assert recent.status_code == 201  # filled in after the walk: within the tolerance
    o311 = _open311(client, town, "west", {"service_code": "0302", "description": "西区垃圾",
                                           "lat": west_point(5)[1], "long": west_point(5)[0]})
    assert o311.status_code == 201
    web = _web(client, "west", {**body, "lon": west_point(6)[0], "lat": west_point(6)[1]})
    assert web.status_code == 302
    session.expire_all()
    mine = session.execute(
        select(Issue).where(Issue.created_by_id == town["users"]["west"].id)
    ).scalars().all()
    assert len(mine) == 4
    assert {i.source for i in mine} == {"自查"} and {i.unit_id for i in mine} == {west.id}


def test_report_form_offers_only_the_sources_the_user_may_set(client, auth, town):
    auth.login("west")
    html = client.get("/issues/new").get_data(as_text=True)
    assert 'value="自查"' in html
    for source in OUTSIDE_SOURCES:
        assert f'value="{source}"' not in html
    auth.logout()
    auth.login("inspector")
    html = client.get("/issues/new").get_data(as_text=True)
    for source in OUTSIDE_SOURCES:
        assert f'value="{source}"' in html


def test_unit_head_flash_does_not_name_the_owner_of_a_queued_report(client, auth, town, session):
    # No point, an address the (absent) geocoder cannot place: kept and queued, not refused.
    auth.login("west")
    response = client.post(
        "/issues/new",
        data={"description": "某处有垃圾", "category": "0302", "address": "不存在的街道 99 号"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "已上报" in html and "东区单位" not in html and "西区单位」负责" not in html
    queued = session.execute(select(Issue).order_by(Issue.id.desc())).scalars().first()
    assert queued.needs_placement and queued.source == "自查"


@pytest.mark.parametrize("door", ["web", "api", "open311"])
def test_an_unplaceable_selfcheck_stays_with_the_reporters_unit(
    client, town, session, factory, runner, door
):
    """An address nobody can place, in a category a functional unit answers for: the report
    is kept and queued, and scored to the reporter's own unit, never to the functional one."""
    functional = factory.unit("县城管局")
    factory.category("0304", "占道经营", functional_unit=functional)
    session.commit()
    before = _ranking(runner, _months()[1])
    text = f"审查测试 占道经营 {door}"
    if door == "web":
        response = _web(client, "west", {"description": text, "category": "0304",
                                         "address": "不存在的路九九九号"})
    elif door == "api":
        response = _api(client, town, "west", {"description": text, "category": "0304",
                                               "address": "不存在的路九九九号"})
    else:
        response = _open311(client, town, "west", {"service_code": "0304", "description": text,
                                                   "address_string": "不存在的路九九九号"})
    assert response.status_code in (201, 202, 302), response.status_code
    session.expire_all()
    issue = session.execute(select(Issue).where(Issue.description == text)).scalar_one()
    assert issue.needs_placement and issue.source == "自查"
    assert issue.unit_id == town["west"].id
    after = dict(_ranking(runner, _months()[1]))
    assert after.get("县城管局") == dict(before).get("县城管局")


def test_inspectors_may_set_outside_sources_but_not_back_date(client, town, session):
    body = {"description": "东区路面有积存垃圾", "category": "0302",
            "lon": EAST[0], "lat": EAST[1], "source": "国家评估"}
    assert _api(client, town, "inspector", body).status_code == 201
    before = _count(session)
    late = _api(client, town, "inspector", {**body, "found_at": LONG_AGO.isoformat()})
    assert late.status_code == 400 and "发现时间" in late.get_json()["error"]
    assert _api(client, town, "admin", {**body, "found_at": LONG_AGO.isoformat()}).status_code \
        == 400
    assert _count(session) == before
    # Leaders report nothing at all.
    assert _api(client, town, "leader", body).status_code == 403


def test_only_the_admin_import_keeps_a_lists_old_dates(session, town):
    from app.services.core.errors import ForbiddenError, ValidationError
    from app.services.issues.intake import IssueInput, create_issue

    users = town["users"]
    data = IssueInput(description="州级反馈: 路面垃圾", category="0302", lon=EAST[0],
                      lat=EAST[1], source="州级交叉检查", found_at=LONG_AGO)
    with pytest.raises(ValidationError):
        create_issue(session, users["admin"], data)
    session.rollback()
    issue = create_issue(session, users["admin"], data, trusted_import=True, via="import")
    assert issue.found_at == LONG_AGO
    session.rollback()
    # The flag never lets a unit head past the source or cell rule.
    with pytest.raises(ForbiddenError):
        create_issue(session, users["west"], data, trusted_import=True)
    session.rollback()


# ---- co-units ----------------------------------------------------------------------------


def test_co_unit_sees_and_acts_but_the_lead_is_scored(client, town, session):
    users = town["users"]
    lon, lat = east_point(5)
    from app.services.issues.intake import IssueInput, create_issue, transition

    issue = create_issue(session, users["inspector"], IssueInput(
        description="东西区交界处垃圾", category="0302", lon=lon, lat=lat))
    session.add(IssueUnit(issue_id=issue.id, unit_id=town["west"].id))
    transition(session, users["admin"], issue.id, "dispatch")
    session.commit()
    headers = {"Authorization": f"Bearer {town['tokens']['west']}"}
    assert client.get(f"/api/v1/issues/{issue.id}", headers=headers).status_code == 200
    ids = [i["id"] for i in client.get("/api/v1/issues?limit=500", headers=headers).json["items"]]
    assert issue.id in ids
    started = client.post(f"/api/v1/issues/{issue.id}/actions", json={"action": "start"},
                          headers=headers)
    assert started.status_code == 200 and started.json["status"] == "rectifying"
    # Scored to the lead (east), whoever acts on it.
    session.expire_all()
    assert session.get(Issue, issue.id).unit_id == town["east"].id
    # Once no longer a co-unit, the unit sees nothing of it.
    session.execute(IssueUnit.__table__.delete())
    session.commit()
    assert client.get(f"/api/v1/issues/{issue.id}", headers=headers).status_code == 404


def test_links_never_point_into_problems_the_reader_cannot_see(client, town, session):
    users = town["users"]
    from app.services.issues.intake import IssueInput, create_issue

    east_issue = session.execute(
        select(Issue).where(Issue.unit_id == town["east"].id)
    ).scalars().first()
    lon, lat = west_point(7)
    mine = create_issue(session, users["inspector"], IssueInput(
        description="西区路面有积存垃圾", category="0302", lon=lon, lat=lat))
    mine.recurrence_of_id = east_issue.id
    mine.duplicate_of_id = east_issue.id
    session.commit()
    west = {"Authorization": f"Bearer {town['tokens']['west']}"}
    body = client.get(f"/api/v1/issues/{mine.id}", headers=west).json
    assert body["recurrence_of"] is None and body["duplicate_of"] is None
    listed = client.get("/api/v1/issues?limit=500", headers=west).json["items"]
    assert all(i["recurrence_of"] != east_issue.id for i in listed)
    admin = {"Authorization": f"Bearer {town['tokens']['admin']}"}
    assert client.get(f"/api/v1/issues/{mine.id}", headers=admin).json["recurrence_of"] \
        == east_issue.id


def test_scored_problems_show_their_reporter_and_source(client, auth, town, session):
    month = f"{today_local():%Y-%m}"
    auth.login("admin")
    html = client.get(f"/reports/{month}/units/{town['east'].id}").get_data(as_text=True)
    assert "上报人" in html and "来源" in html
    assert "督查员" in html and "县级督查" in html
    events = session.execute(select(func.count(IssueEvent.id))).scalar_one()
    assert events >= 2
