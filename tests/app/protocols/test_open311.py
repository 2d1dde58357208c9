"""Open311 GeoReport v2: read with the real ``georeport`` client, write via the test client."""

from __future__ import annotations

import threading
from xml.etree import ElementTree as ET

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.models import Issue
from app.services.core.passwords import issue_token
from tests.factories import east_point, west_point


@pytest.fixture()
def town(factory, session):
    world = factory.town()
    factory.category("0303", "乱贴乱画", days=3)
    world["tokens"] = {name: issue_token(session, user) for name, user in world["users"].items()}
    session.commit()
    inspector = world["users"]["inspector"]
    world["west_issues"] = [
        factory.issue(
            inspector, lon=west_point(i)[0], lat=west_point(i)[1], description=f"西区问题 {i}"
        )
        for i in range(2)
    ]
    world["east_issues"] = [
        factory.issue(
            inspector,
            lon=east_point(i)[0],
            lat=east_point(i)[1],
            description=f"东区问题 {i}",
            category="0303",
        )
        for i in range(2)
    ]
    return world


@pytest.fixture()
def server(app, town):
    """Serve the app on a free local port in a background thread."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=5)


def georeport(server: str, token: str | None):
    """The PyPI client; it sends no key on reads, so the token rides as Basic-auth user."""
    from georeport import GeoReport

    root = f"http://{token}:@{server}/open311/v2" if token else f"http://{server}/open311/v2"
    return GeoReport(root, api_key=token)


def test_services_with_georeport_client(server, town):
    services = georeport(server, town["tokens"]["west"]).get_service_list()
    codes = {s["service_code"]: s for s in services}
    assert set(codes) == {"0302", "0303"}  # level-1 "03" has children, so it is a group
    backstreet = codes["0302"]
    assert backstreet["service_name"] == "背街小巷"
    assert backstreet["group"] == "市容环境卫生"
    assert backstreet["metadata"] is False and backstreet["type"] == "realtime"
    assert "背街小巷" in backstreet["keywords"] and backstreet["description"]


def test_requests_with_georeport_client(server, town):
    admin = georeport(server, town["tokens"]["admin"])
    everything = admin.get_service_requests()
    assert len(everything) == 4
    one = next(r for r in everything if r["description"] == "西区问题 0")
    for key in (
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "address",
        "lat",
        "long",
        "media_url",
    ):
        assert key in one, key
    assert one["status"] == "open" and one["service_code"] == "0302"
    assert one["agency_responsible"] == "西区单位"
    assert one["long"] == pytest.approx(west_point(0)[0])
    assert one["lat"] == pytest.approx(west_point(0)[1])
    assert admin.get_service_requests(service_code="0303")[0]["service_code"] == "0303"
    assert len(admin.get_service_requests(service_code="0303")) == 2
    assert len(admin.get_service_requests(service_code="03")) == 4
    assert admin.get_service_requests(status="closed") == []
    assert len(admin.get_service_requests(status="open")) == 4
    ids = f"{town['west_issues'][0].id},{town['east_issues'][1].id}"
    assert {
        r["service_request_id"] for r in admin.get_service_requests(service_request_id=ids)
    } == {town["west_issues"][0].id, town["east_issues"][1].id}
    assert (
        admin.get_service_requests(
            start_date="2000-01-01T00:00:00Z", end_date="2000-12-31T00:00:00Z"
        )
        == []
    )
    single = admin.get_service_request(str(town["east_issues"][0].id))
    assert single["service_request_id"] == town["east_issues"][0].id
    assert single["agency_responsible"] == "东区单位"


def test_unit_head_reads_only_own_unit(server, town):
    west = georeport(server, town["tokens"]["west"])
    mine = west.get_service_requests()
    assert {r["agency_responsible"] for r in mine} == {"西区单位"} and len(mine) == 2
    # Asking for the other unit's ids by number returns nothing of theirs.
    ids = ",".join(str(i.id) for i in town["east_issues"])
    assert west.get_service_requests(service_request_id=ids) == []
    with pytest.raises(requests.HTTPError) as info:
        west.get_service_request(str(town["east_issues"][0].id))
    assert info.value.response.status_code == 404
    assert info.value.response.json()[0]["code"] == 404


def test_reads_need_a_token(server, town, client):
    with pytest.raises(requests.HTTPError) as info:
        georeport(server, None).get_service_list()
    assert info.value.response.status_code == 401
    assert info.value.response.json() == [
        {"code": 401, "description": info.value.response.json()[0]["description"]}
    ]
    with pytest.raises(requests.HTTPError):
        georeport(server, "sg_wrong").get_service_requests()
    assert client.get("/open311/v2/requests.json").status_code == 401
    # api_key as a query parameter, and a bearer header, both work.
    token = town["tokens"]["leader"]
    assert client.get(f"/open311/v2/requests.json?api_key={token}").status_code == 200
    assert (
        client.get(
            "/open311/v2/requests.json", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    assert (
        requests.get(
            f"http://{server}/open311/v2/services.json", auth=("apikey", token)
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=pending", "status"),
        ("service_code=9999", "service_code"),
        ("start_date=yesterday", "start_date"),
        ("service_request_id=1,abc", "service_request_id"),
        ("start_date=2026-02-01&end_date=2026-01-01", "end_date"),
    ],
)
def test_bad_read_parameters(client, town, query, name):
    response = client.get(f"/open311/v2/requests.json?{query}&api_key={town['tokens']['admin']}")
    assert response.status_code == 400
    error = response.get_json()[0]
    assert error["code"] == 400 and name in error["description"]


def test_post_request(client, town, session):
    lon, lat = west_point(3)
    response = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": town["tokens"]["inspector"],
            "service_code": "0303",
            "lat": str(lat),
            "long": str(lon),
            "description": "电线杆上有小广告",
            "media_url": "https://example.org/a.jpg",
            "first_name": "张",
            "phone": "13900000000",
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert len(body) == 1 and isinstance(body[0]["service_request_id"], int)
    issue = session.get(Issue, body[0]["service_request_id"])
    assert issue.category.code == "0303" and issue.unit.name == "西区单位"
    assert issue.source == "群众投诉/12345"
    assert "example.org/a.jpg" in issue.events[0].note
    read = client.get(f"/open311/v2/requests/{issue.id}.json?api_key={town['tokens']['west']}")
    assert read.status_code == 200 and read.get_json()[0]["service_code"] == "0303"


def test_post_by_address_is_kept_for_placement(client, town, session):
    response = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": town["tokens"]["admin"],
            "service_code": "0302",
            "address_string": "不知道哪条街",
            "description": "路边有垃圾",
        },
    )
    assert response.status_code == 201
    issue = session.get(Issue, response.get_json()[0]["service_request_id"])
    assert issue.needs_placement and issue.address == "不知道哪条街"


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ({"lat": "22.7995", "long": "103.5005", "description": "x"}, "service_code"),
        (
            {"service_code": "9999", "lat": "22.7995", "long": "103.5005", "description": "x"},
            "service_code",
        ),
        ({"service_code": "0302", "lat": "22.7995", "long": "103.5005"}, "description"),
        ({"service_code": "0302", "lat": "22.7995", "description": "x"}, "long"),
        ({"service_code": "0302", "description": "x"}, "address_string"),
        ({"service_code": "0302", "lat": "abc", "long": "103.5005", "description": "x"}, "lat"),
        ({"service_code": "0302", "lat": "39.9", "long": "116.4", "description": "x"}, "lat"),
        (
            {
                "service_code": "0302",
                "lat": "22.7995",
                "long": "103.5005",
                "description": "x",
                "media_url": "javascript:alert(1)",
            },
            "media_url",
        ),
    ],
)
def test_post_errors_follow_the_spec(client, town, session, form, name):
    before = session.execute(select(Issue.id)).all()
    response = client.post(
        "/open311/v2/requests.json", data={"api_key": town["tokens"]["inspector"], **form}
    )
    assert response.status_code == 400
    error = response.get_json()
    assert isinstance(error, list) and error[0]["code"] == 400
    assert name in error[0]["description"]
    assert session.execute(select(Issue.id)).all() == before


def test_post_permissions(client, town, session):
    lon, lat = east_point(0)
    form = {"service_code": "0302", "lat": str(lat), "long": str(lon), "description": "积水"}
    leader = client.post(
        "/open311/v2/requests.json", data={"api_key": town["tokens"]["leader"], **form}
    )
    assert leader.status_code == 403 and leader.get_json()[0]["code"] == 403
    assert client.post("/open311/v2/requests.json", data=form).status_code == 401
    # A unit head reports only inside its own cells, as 自查: the east cell is refused
    # without naming its unit, and nothing is stored.
    before = session.execute(select(func.count(Issue.id))).scalar_one()
    west = client.post(
        "/open311/v2/requests.json", data={"api_key": town["tokens"]["west"], **form}
    )
    assert west.status_code == 403 and "东区" not in west.get_json()[0]["description"]
    assert session.execute(select(func.count(Issue.id))).scalar_one() == before
    wlon, wlat = west_point(4)
    own = client.post(
        "/open311/v2/requests.json",
        data={"api_key": town["tokens"]["west"], **form, "lat": str(wlat), "long": str(wlon)},
    )
    assert own.status_code == 201
    new_id = own.get_json()[0]["service_request_id"]
    issue = session.get(Issue, new_id)
    assert issue.unit.name == "西区单位" and issue.source == "自查"
    # The office's token files the public line's source.
    admin = client.post(
        "/open311/v2/requests.json", data={"api_key": town["tokens"]["admin"], **form}
    )
    assert admin.status_code == 201
    assert session.get(Issue, admin.get_json()[0]["service_request_id"]).source == "群众投诉/12345"


def test_closed_status_and_xml(client, town, session):
    issue = session.get(Issue, town["west_issues"][1].id)
    issue.status = "closed"
    session.commit()
    token = town["tokens"]["admin"]
    closed = client.get(f"/open311/v2/requests.json?status=closed&api_key={token}").get_json()
    assert [r["service_request_id"] for r in closed] == [issue.id]
    assert closed[0]["status"] == "closed"
    xml = client.get(f"/open311/v2/requests.xml?status=closed&api_key={token}")
    assert xml.status_code == 200 and xml.mimetype == "text/xml"
    root = ET.fromstring(xml.data)
    assert root.tag == "service_requests"
    assert root.find("request/service_request_id").text == str(issue.id)
    services = ET.fromstring(client.get(f"/open311/v2/services.xml?api_key={token}").data)
    assert services.tag == "services" and services.find("service/metadata").text == "false"
    assert client.get(f"/open311/v2/services.csv?api_key={token}").status_code == 404
