"""JSON API /api/v1: bearer auth, the unit-head access rule, filters, paging, locking."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, Assessment, Issue, IssueEvent, Patrol, Stop, User, now_local
from app.services.core.passwords import issue_token
from app.services.protocols.openapi import build_openapi
from gis.crs import wgs84_to_gcj02
from tests.factories import BASE_LAT, BASE_LON, STEP, AuthActions, east_point, png_bytes, west_point

TOWN_BBOX = f"{BASE_LON - 0.01},{BASE_LAT - 0.01},{BASE_LON + 0.01},{BASE_LAT + 0.01}"


@pytest.fixture()
def town(factory, session):
    """The factory town plus a token per user and three issues on each side."""
    world = factory.town()
    tokens = {name: issue_token(session, user) for name, user in world["users"].items()}
    session.commit()
    inspector = world["users"]["inspector"]
    world["west_issues"] = [
        factory.issue(
            inspector, lon=west_point(i)[0], lat=west_point(i)[1], description=f"西区问题 {i}"
        )
        for i in range(3)
    ]
    world["east_issues"] = [
        factory.issue(
            inspector, lon=east_point(i)[0], lat=east_point(i)[1], description=f"东区问题 {i}"
        )
        for i in range(3)
    ]
    world["tokens"] = tokens
    return world


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def get(client, town, who: str, url: str, **kw):
    return client.get(url, headers=auth(town["tokens"][who]), **kw)


def post(client, town, who: str, url: str, body=None, **kw):
    return client.post(url, json=body, headers=auth(town["tokens"][who]), **kw)


def upload_after_photo(client, town, who: str, issue_id: int, version: int):
    """POST an 整改后 photo through the API; return the response."""
    return client.post(
        f"/api/v1/issues/{issue_id}/photos",
        data={"kind": "after", "version": str(version),
              "photo": (io.BytesIO(png_bytes()), "after.png")},
        content_type="multipart/form-data",
        headers=auth(town["tokens"][who]),
    )


# ---- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/issues",
        "/api/v1/issues/1",
        "/api/v1/cells",
        "/api/v1/units",
        "/api/v1/patrols",
        "/api/v1/reports",
    ],
)
def test_reads_need_a_token(client, town, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response.get_json()["status"] == 401
    assert "error" in response.get_json()
    assert client.get(url, headers=auth("sg_not-a-real-token")).status_code == 401
    assert (
        client.get(url, headers={"Authorization": "Basic YWRtaW46cGFzc3dvcmQxMjM="}).status_code
        == 401
    )


@pytest.mark.parametrize("header", ["Bearer ", "bearer  ", "Bearer", "Bearer \t "])
def test_an_empty_bearer_token_is_refused_like_a_bad_one(client, town, header):
    """Regression (#13): an empty token was an IndexError (500) at every token door."""
    bad = {"Authorization": "Bearer sg_not-a-real-token"}
    empty = {"Authorization": header}
    for url in ("/api/v1/issues", "/api/v1/batches", "/ogc/collections",
                "/open311/v2/requests.json"):
        expected = client.get(url, headers=bad).status_code
        response = client.get(url, headers=empty)
        assert response.status_code == expected, (url, response.status_code)
        assert response.status_code < 500
    assert client.get("/api/v1/issues", headers=empty).status_code == 401
    assert client.get("/api/v1/batches", headers=empty).status_code == 401
    assert client.get("/ogc/collections", headers=empty).status_code == 401
    # A good token still works after the stricter parse.
    good = {"Authorization": f"Bearer  {town['tokens']['admin']} "}
    assert client.get("/api/v1/issues", headers=good).status_code == 200


def test_session_cookie_is_not_enough(client, town):
    AuthActions(client).login("admin")
    assert client.get("/api/v1/issues").status_code == 401
    assert client.post("/api/v1/issues", json={"description": "x"}).status_code == 401


def test_revoked_token_and_disabled_user_are_refused(client, town, session):
    token = town["tokens"]["inspector"]
    assert get(client, town, "inspector", "/api/v1/issues").status_code == 200
    row = session.execute(
        select(ApiToken).where(ApiToken.user_id == town["users"]["inspector"].id)
    ).scalar_one()
    row.revoked_at = now_local()
    session.commit()
    assert client.get("/api/v1/issues", headers=auth(token)).status_code == 401
    town["users"]["admin"].active = False
    session.commit()
    assert get(client, town, "admin", "/api/v1/issues").status_code == 401


def test_create_token_command_makes_a_working_token(runner, client, town):
    result = runner.invoke(args=["create-token", "west"])
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    response = client.get("/api/v1/issues", headers=auth(token))
    assert response.status_code == 200 and response.get_json()["total"] == 3


# ---- issues: read ---------------------------------------------------------------------


def test_issue_list_shape_and_fields(client, town):
    body = get(client, town, "admin", "/api/v1/issues").get_json()
    assert body["total"] == 6 and len(body["items"]) == 6
    item = next(i for i in body["items"] if i["description"] == "西区问题 0")
    for key in (
        "id",
        "status",
        "status_label",
        "category",
        "category_name",
        "description",
        "address",
        "lon",
        "lat",
        "cell_code",
        "unit",
        "unit_id",
        "geocode",
        "needs_placement",
        "source",
        "found_at",
        "deadline",
        "overdue",
        "rework_count",
        "recurrence_of",
        "version",
        "created_at",
    ):
        assert key in item, key
    assert item["status"] == "reported" and item["status_label"] == "已上报"
    assert item["category"] == "0302" and item["category_name"] == "背街小巷"
    assert item["unit"] == "西区单位" and item["unit_id"] == town["west"].id
    assert re.fullmatch(r"\d{15}", item["cell_code"])
    assert item["lon"] == pytest.approx(west_point(0)[0])
    assert item["geocode"]["method"] == "coordinates" and item["geocode"]["confidence"] == 1.0
    assert isinstance(item["version"], int) and item["deadline"]
    assert "events" not in item


def test_issue_detail_has_events(client, town):
    issue = town["west_issues"][0]
    body = get(client, town, "west", f"/api/v1/issues/{issue.id}").get_json()
    assert body["id"] == issue.id
    assert body["events"][0]["action"] == "report"
    assert body["events"][0]["user"] == "inspector"
    assert body["events"][0]["to_status"] == "reported"
    assert body["photos"] == []


def test_unit_head_sees_only_own_unit(client, town):
    west = get(client, town, "west", "/api/v1/issues").get_json()
    assert west["total"] == 3
    assert {i["unit"] for i in west["items"]} == {"西区单位"}
    # A bbox over the whole town does not widen the scope.
    whole = get(client, town, "west", f"/api/v1/issues?bbox={TOWN_BBOX}").get_json()
    assert whole["total"] == 3
    # Naming the other unit (by name or id) matches nothing rather than leaking.
    by_name = get(client, town, "west", "/api/v1/issues?unit=东区单位").get_json()
    assert by_name == {"items": [], "total": 0, "limit": 50, "offset": 0}
    by_id = get(client, town, "west", f"/api/v1/issues?unit={town['east'].id}").get_json()
    assert by_id["total"] == 0
    # Guessing ids one by one finds nothing of the other unit's.
    own = {i.id for i in town["west_issues"]}
    for issue_id in range(1, max(i.id for i in town["east_issues"]) + 3):
        response = get(client, town, "west", f"/api/v1/issues/{issue_id}")
        assert response.status_code == (200 if issue_id in own else 404), issue_id


def test_unit_head_cannot_act_on_or_verify(client, town):
    other = town["east_issues"][0]
    response = post(
        client,
        town,
        "west",
        f"/api/v1/issues/{other.id}/actions",
        {"action": "submit", "version": other.version},
    )
    assert response.status_code == 404
    assert (
        post(
            client,
            town,
            "west",
            f"/api/v1/issues/{other.id}/place",
            {"lon": west_point()[0], "lat": west_point()[1]},
        ).status_code
        == 404
    )
    own = town["west_issues"][0]
    url = f"/api/v1/issues/{own.id}/actions"
    step = post(client, town, "admin", url, {"action": "dispatch", "version": own.version})
    assert step.status_code == 200
    photo = upload_after_photo(client, town, "west", own.id, step.get_json()["version"])
    assert photo.status_code == 201, photo.get_json()
    step = post(
        client, town, "west", url,
        {"action": "submit", "measures": "已清运", "version": photo.get_json()["version"]},
    )
    assert step.status_code == 200
    response = post(
        client, town, "west", url, {"action": "verify_ok", "version": step.get_json()["version"]}
    )
    assert response.status_code == 403
    assert get(client, town, "west", f"/api/v1/issues/{own.id}").get_json()["status"] == (
        "submitted"
    )


def test_filters(client, town, session):
    admin = town["tokens"]["admin"]
    by_unit = client.get("/api/v1/issues?unit=东区单位", headers=auth(admin)).get_json()
    assert by_unit["total"] == 3 and {i["unit"] for i in by_unit["items"]} == {"东区单位"}
    by_id = client.get(f"/api/v1/issues?unit={town['west'].id}", headers=auth(admin)).get_json()
    assert by_id["total"] == 3
    assert client.get("/api/v1/issues?category=03", headers=auth(admin)).get_json()["total"] == 6
    assert client.get("/api/v1/issues?status=open", headers=auth(admin)).get_json()["total"] == 6
    assert client.get("/api/v1/issues?status=closed", headers=auth(admin)).get_json()["total"] == 0
    assert (
        client.get("/api/v1/issues?source=县级督查", headers=auth(admin)).get_json()["total"] == 6
    )
    # A bbox around the west half only.
    west_box = f"{BASE_LON},{BASE_LAT - 4 * STEP},{BASE_LON + 2 * STEP},{BASE_LAT}"
    boxed = client.get(f"/api/v1/issues?bbox={west_box}", headers=auth(admin)).get_json()
    assert {i["unit"] for i in boxed["items"]} == {"西区单位"} and boxed["total"] == 3
    code = town["west_issues"][0].cell.code
    by_cell = client.get(f"/api/v1/issues?cell={code}", headers=auth(admin)).get_json()
    assert by_cell["total"] >= 1 and {i["cell_code"] for i in by_cell["items"]} == {code}
    # Make one issue overdue.
    issue = session.get(Issue, town["east_issues"][0].id)
    issue.deadline = issue.deadline.replace(year=2000)
    session.commit()
    overdue = client.get("/api/v1/issues?overdue=true", headers=auth(admin)).get_json()
    assert [i["id"] for i in overdue["items"]] == [issue.id] and overdue["items"][0]["overdue"]
    assert client.get("/api/v1/issues?overdue=false", headers=auth(admin)).get_json()["total"] == 5


def test_updated_since(client, town, session):
    admin = town["tokens"]["admin"]
    for issue in town["west_issues"] + town["east_issues"]:
        row = session.get(Issue, issue.id)
        row.created_at = row.created_at.replace(year=2020)
        for event in row.events:
            event.at = event.at.replace(year=2020)
    session.commit()
    target = town["east_issues"][1]
    assert (
        post(
            client, town, "admin", f"/api/v1/issues/{target.id}/actions", {"action": "dispatch"}
        ).status_code
        == 200
    )
    since = client.get(
        "/api/v1/issues?updated_since=2025-01-01T00:00:00", headers=auth(admin)
    ).get_json()
    assert [i["id"] for i in since["items"]] == [target.id]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=fixed", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=104,23,103,22", "bbox"),
        ("overdue=maybe", "overdue"),
        ("updated_since=yesterday", "updated_since"),
        ("category=9999", "category"),
        ("source=微博", "source"),
        ("cell=12AB", "cell"),
        ("unit=不存在的单位", "unit"),
    ],
)
def test_bad_parameters_are_named(client, town, query, name):
    response = get(client, town, "admin", f"/api/v1/issues?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == 400 and name in body["error"] and body["field"] == name
    value = query.split("=", 1)[1]
    assert value in body["error"]


def test_pagination(client, town):
    page1 = get(client, town, "admin", "/api/v1/issues?limit=4").get_json()
    page2 = get(client, town, "admin", "/api/v1/issues?limit=4&offset=4").get_json()
    assert page1["total"] == page2["total"] == 6
    assert len(page1["items"]) == 4 and len(page2["items"]) == 2
    ids = [i["id"] for i in page1["items"] + page2["items"]]
    assert len(set(ids)) == 6 and ids == sorted(ids, reverse=True)
    beyond = get(client, town, "admin", "/api/v1/issues?offset=100").get_json()
    assert beyond["items"] == [] and beyond["total"] == 6


# ---- issues: write --------------------------------------------------------------------


def test_create_issue_with_coordinates(client, town, session):
    lon, lat = west_point(3)
    # Found an hour ago (within the tolerance for filling the report in after the walk).
    found = (now_local() - timedelta(hours=1)).replace(microsecond=0).isoformat()
    response = post(
        client,
        town,
        "inspector",
        "/api/v1/issues",
        {
            "description": "绿化带内有白色垃圾",
            "category": "0302",
            "lon": lon,
            "lat": lat,
            "source": "县级督查",
            "found_at": found,
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "reported" and body["unit"] == "西区单位"
    assert body["found_at"] == found and body["cell_code"]
    assert body["events"][0]["action"] == "report"
    assert session.get(Issue, body["id"]).created_by_id == town["users"]["inspector"].id


def test_create_issue_converts_gcj02(client, town):
    lon, lat = west_point(1)
    glon, glat = wgs84_to_gcj02(lon, lat)
    body = post(
        client,
        town,
        "inspector",
        "/api/v1/issues",
        {
            "description": "路面破损",
            "category": "0302",
            "lon": float(glon),
            "lat": float(glat),
            "coord_system": "gcj02",
        },
    ).get_json()
    assert body["lon"] == pytest.approx(lon, abs=1e-5)
    assert body["lat"] == pytest.approx(lat, abs=1e-5)
    assert body["unit"] == "西区单位"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "0302", "lon": 103.5005, "lat": 22.7995}, "description"),
        ({"description": "   ", "lon": 103.5005, "lat": 22.7995}, "description"),
        ({"description": 42, "lon": 103.5005, "lat": 22.7995}, "description"),
        ({"description": "x", "category": "9999", "lon": 103.5005, "lat": 22.7995}, "category"),
        ({"description": "x", "lon": 103.5005}, "lat"),
        ({"description": "x", "lon": "东经", "lat": 22.7995}, "lon"),
        ({"description": "x", "lon": 200, "lat": 22.7995}, "lon"),
        ({"description": "x", "lon": 116.4, "lat": 39.9}, "lon"),  # Beijing: not this county
        (
            {"description": "x", "lon": 103.5005, "lat": 22.7995, "coord_system": "utm"},
            "coord_system",
        ),
        ({"description": "x", "lon": 103.5005, "lat": 22.7995, "source": "微博"}, "source"),
        ({"description": "x", "lon": 103.5005, "lat": 22.7995, "found_at": "昨天"}, "found_at"),
        ({"description": "x"}, "address"),
    ],
)
def test_create_issue_validation_names_the_field(client, town, session, body, field):
    before = session.execute(select(Issue.id)).all()
    response = post(client, town, "inspector", "/api/v1/issues", body)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert answer["field"] == field and answer["error"]
    assert session.execute(select(Issue.id)).all() == before  # nothing half-written


def test_create_issue_rejects_non_json(client, town):
    response = client.post(
        "/api/v1/issues",
        data="description=x",
        headers={**auth(town["tokens"]["inspector"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "JSON" in response.get_json()["error"]
    assert post(client, town, "inspector", "/api/v1/issues", [1, 2]).status_code == 400


def test_leader_is_read_only(client, town):
    issue = town["west_issues"][0]
    assert get(client, town, "leader", "/api/v1/issues").get_json()["total"] == 6
    lon, lat = west_point()
    assert (
        post(
            client, town, "leader", "/api/v1/issues", {"description": "x", "lon": lon, "lat": lat}
        ).status_code
        == 403
    )
    assert (
        post(
            client,
            town,
            "leader",
            f"/api/v1/issues/{issue.id}/actions",
            {"action": "dispatch", "version": 1},
        ).status_code
        == 403
    )
    assert (
        post(
            client, town, "leader", f"/api/v1/issues/{issue.id}/place", {"lon": lon, "lat": lat}
        ).status_code
        == 403
    )


def test_unit_head_report_in_another_units_cell_is_refused(client, town, session):
    before = session.execute(select(func.count(Issue.id))).scalar_one()
    lon, lat = east_point(2)
    response = post(
        client,
        town,
        "west",
        "/api/v1/issues",
        {"description": "东区路口积水", "category": "0302", "lon": lon, "lat": lat},
    )
    assert response.status_code == 403
    # The refusal does not tell the reporter whose cell the point is in.
    assert "东区" not in response.get_json()["error"] and "网格" in response.get_json()["error"]
    assert session.execute(select(func.count(Issue.id))).scalar_one() == before
    own = post(
        client,
        town,
        "west",
        "/api/v1/issues",
        {"description": "西区路口积水", "lon": west_point(2)[0], "lat": west_point(2)[1]},
    )
    assert own.status_code == 201 and own.get_json()["unit"] == "西区单位"
    assert own.get_json()["source"] == "自查"  # a unit head's report is its own finding


def test_workflow_and_optimistic_locking(client, town, session):
    issue = town["west_issues"][1]
    url = f"/api/v1/issues/{issue.id}/actions"
    read = get(client, town, "admin", f"/api/v1/issues/{issue.id}").get_json()
    first = post(client, town, "admin", url, {"action": "dispatch", "version": read["version"]})
    assert first.status_code == 200
    v = first.get_json()["version"]
    assert first.get_json()["status"] == "dispatched" and v > read["version"]
    # Submitting needs the measures and an after photo, through the API as on the web.
    bare = post(client, town, "west", url, {"action": "submit", "note": "已清理", "version": v})
    assert bare.status_code == 400 and bare.get_json()["field"] == "measures"
    assert "整改措施" in bare.get_json()["error"] and "照片" in bare.get_json()["error"]
    photo = upload_after_photo(client, town, "west", issue.id, v)
    assert photo.status_code == 201 and photo.get_json()["status"] == "dispatched"
    v = photo.get_json()["version"]
    # Two clients both read version v; the second writer loses and changes nothing.
    a = post(client, town, "west", url,
             {"action": "submit", "note": "已清理", "measures": "已清理路面", "version": v})
    assert a.status_code == 200 and a.get_json()["status"] == "submitted"
    b = post(client, town, "admin", url, {"action": "reject", "note": "不立案", "version": v})
    assert b.status_code == 409 and b.get_json()["error"]
    session.expire_all()
    row = session.get(Issue, issue.id)
    assert row.status == "submitted" and row.version == a.get_json()["version"]
    assert [p.kind for p in row.photos] == ["after"]
    actions = [
        e.action
        for e in session.execute(
            select(IssueEvent).where(IssueEvent.issue_id == issue.id)
        ).scalars()
    ]
    assert actions == ["report", "dispatch", "photo", "submit"]
    assert row.measures == "已清理路面"
    # Send back without a reason → 400 naming note; with one → rework counted.
    v = row.version
    bad = post(client, town, "inspector", url, {"action": "verify_fail", "version": v})
    assert bad.status_code == 400 and bad.get_json()["field"] == "note"
    back = post(
        client, town, "inspector", url, {"action": "verify_fail", "note": "仍有垃圾", "version": v}
    ).get_json()
    assert back["status"] == "rectifying" and back["rework_count"] == 1
    # A workflow step from the wrong state is a conflict too.
    wrong = post(
        client, town, "inspector", url, {"action": "verify_ok", "version": back["version"]}
    )
    assert wrong.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "version": 1}, "action"),
        ({"version": 1}, "action"),
        ({"action": "dispatch", "version": "one"}, "version"),
    ],
)
def test_action_validation(client, town, body, field):
    issue = town["west_issues"][0]
    response = post(client, town, "admin", f"/api/v1/issues/{issue.id}/actions", body)
    assert response.status_code == 400 and response.get_json()["field"] == field


def test_place_a_queued_issue(client, town, session):
    response = post(
        client,
        town,
        "inspector",
        "/api/v1/issues",
        {"description": "地址不详的问题", "address": "某某巷子里"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["needs_placement"] is True and body["lon"] is None and body["lat"] is None
    url = f"/api/v1/issues/{body['id']}/place"
    assert post(client, town, "inspector", url, {"lon": 1.0, "lat": 22.8}).status_code == 400
    missing = post(client, town, "inspector", url, {"lon": 103.5005})
    assert missing.status_code == 400 and missing.get_json()["field"] == "lat"
    lon, lat = east_point(1)
    placed = post(client, town, "inspector", url, {"lon": lon, "lat": lat}).get_json()
    assert placed["needs_placement"] is False and placed["unit"] == "东区单位"
    assert placed["geocode"]["method"] == "manual" and placed["cell_code"]
    assert post(client, town, "west", url, {"lon": lon, "lat": lat}).status_code == 404


# ---- cells, units, patrols, reports ----------------------------------------------------


def test_cells_list_geojson_and_scope(client, town):
    all_cells = get(client, town, "admin", "/api/v1/cells?limit=500").get_json()
    assert all_cells["total"] == 16
    cell = all_cells["items"][0]
    assert {"id", "code", "unit", "unit_id", "open_count", "bbox"} <= set(cell)
    assert sum(c["open_count"] for c in all_cells["items"]) == 6
    west = get(client, town, "west", f"/api/v1/cells?bbox={TOWN_BBOX}").get_json()
    assert west["total"] == 8 and {c["unit"] for c in west["items"]} == {"西区单位"}
    assert get(client, town, "west", "/api/v1/cells?unit=东区单位").get_json()["total"] == 0
    assert get(client, town, "admin", "/api/v1/cells?unit=东区单位").get_json()["total"] == 8
    code = cell["code"]
    assert get(client, town, "admin", f"/api/v1/cells?code={code}").get_json()["total"] == 1
    assert get(client, town, "admin", "/api/v1/cells?code=x1").status_code == 400
    assert get(client, town, "admin", "/api/v1/cells?format=kml").status_code == 400
    geo = get(client, town, "east", "/api/v1/cells?format=geojson")
    assert geo.status_code == 200 and geo.mimetype == "application/geo+json"
    fc = geo.get_json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 8
    feature = fc["features"][0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["unit"] == "东区单位"
    paged = get(client, town, "admin", "/api/v1/cells?limit=5&offset=15").get_json()
    assert len(paged["items"]) == 1 and paged["total"] == 16


def test_cell_detail_and_guessing(client, town):
    cells = get(client, town, "admin", "/api/v1/cells?limit=500").get_json()["items"]
    for cell in cells:
        detail = get(client, town, "west", f"/api/v1/cells/{cell['id']}")
        if cell["unit"] == "西区单位":
            assert detail.status_code == 200
            assert detail.get_json()["geometry"]["type"] == "Polygon"
        else:
            assert detail.status_code == 404
    assert get(client, town, "admin", "/api/v1/cells/999999").status_code == 404


def test_units(client, town):
    units = get(client, town, "admin", "/api/v1/units").get_json()
    assert units["total"] == 2
    west = next(u for u in units["items"] if u["name"] == "西区单位")
    assert west["cell_count"] == 8 and west["open_count"] == 3
    mine = get(client, town, "west", "/api/v1/units").get_json()
    assert [u["name"] for u in mine["items"]] == ["西区单位"]
    assert get(client, town, "west", f"/api/v1/units/{town['east'].id}").status_code == 404
    assert get(client, town, "west", f"/api/v1/units/{town['west'].id}").status_code == 200
    assert (
        get(client, town, "leader", f"/api/v1/units/{town['east'].id}").get_json()["name"]
        == "东区单位"
    )


def test_patrols(client, town, session):
    issue = town["west_issues"][0]
    patrol = Patrol(
        name="周一巡查",
        mode="walk",
        inspector_id=town["users"]["inspector"].id,
        length_m=1234.5,
        est_minutes=20,
    )
    patrol.stops = [
        Stop(seq=1, issue_id=issue.id, lon=issue.lon, lat=issue.lat, label="起点"),
        Stop(seq=2, issue_id=None, lon=BASE_LON, lat=BASE_LAT, label="终点"),
    ]
    session.add(patrol)
    session.commit()
    listed = get(client, town, "inspector", "/api/v1/patrols").get_json()
    assert listed["total"] == 1 and listed["items"][0]["stop_count"] == 2
    assert listed["items"][0]["inspector"] == "inspector"
    detail = get(client, town, "leader", f"/api/v1/patrols/{patrol.id}").get_json()
    assert [s["seq"] for s in detail["stops"]] == [1, 2] and detail["order"] == [issue.id, None]
    assert "pdf" in detail["pdf_url"]
    assert get(client, town, "west", "/api/v1/patrols").get_json()["total"] == 0
    assert get(client, town, "west", f"/api/v1/patrols/{patrol.id}").status_code == 404


def test_reports(client, town, session):
    assert get(client, town, "leader", "/api/v1/reports").get_json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    session.add(
        Assessment(
            month="2026-03",
            scope="unit",
            data={"red_list": ["西区单位"], "black_list": ["东区单位"]},
        )
    )
    session.commit()
    body = get(client, town, "west", "/api/v1/reports").get_json()
    assert body["total"] == 1
    assert body["items"][0]["month"] == "2026-03"
    assert body["items"][0]["black_list"] == ["东区单位"]


# ---- the OpenAPI document -------------------------------------------------------------


def test_openapi_is_public_and_lists_every_route(client, app):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.0.3"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], f"{method} {path}"
            checked += 1
    assert checked >= 14
    issue = doc["components"]["schemas"]["Issue"]["properties"]
    for key in (
        "id",
        "status",
        "category",
        "description",
        "address",
        "lon",
        "lat",
        "cell_code",
        "unit",
        "geocode",
        "deadline",
        "version",
    ):
        assert key in issue
    # Every $ref points at something that exists.
    text = response.get_data(as_text=True)
    for kind, name in re.findall(r'"#/components/(\w+)/(\w+)"', text):
        assert name in doc["components"][kind], name


def test_openapi_validates_when_validator_available():
    validator = pytest.importorskip("openapi_spec_validator")

    validator.validate(build_openapi())


# ---- the seeded demo county -----------------------------------------------------------


def test_demo_county_unit_head_scope(demo_app, demo_client):
    head = db.session.execute(select(User).where(User.username == "unit01")).scalar_one()
    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    head_token, admin_token = issue_token(db.session, head), issue_token(db.session, admin)
    db.session.commit()
    everything = demo_client.get("/api/v1/issues?limit=500", headers=auth(admin_token)).get_json()
    mine = demo_client.get("/api/v1/issues?limit=500", headers=auth(head_token)).get_json()
    assert everything["total"] > mine["total"] > 0
    assert {i["unit_id"] for i in mine["items"]} == {head.unit_id}
    assert mine["total"] == sum(1 for i in everything["items"] if i["unit_id"] == head.unit_id)
    cells = demo_client.get(
        "/api/v1/cells?format=geojson&limit=500", headers=auth(head_token)
    ).get_json()
    assert cells["features"]
    assert {f["properties"]["unit_id"] for f in cells["features"]} == {head.unit_id}
