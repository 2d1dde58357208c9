"""Bad input on every listed route is a clear 400 (or 404), never a 500.

One set of parameter parsers (app/services/core/params.py) reads every door's numbers, ids,
dates, boxes and bodies; these tests walk the inputs that used to crash a route (30-digit
paging and ids, ``unit=²``, unchecked map dates, a 400-digit longitude, year 1, 100,000
nested arrays, an id beyond any integer column) against each route, and the login's
``next`` redirect.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Issue, Patrol
from app.services.core import params
from app.services.core.errors import ValidationError
from app.services.core.passwords import issue_token
from tests.factories import west_point

HUGE = "1" * 30
LONG_NUMBER = "1" * 400
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def town(factory, session):
    town = factory.town()
    town["tokens"] = {name: issue_token(session, user) for name, user in town["users"].items()}
    lon, lat = west_point(0)
    town["issue"] = factory.issue(town["users"]["inspector"], lon=lon, lat=lat)
    session.commit()
    return town


def _auth(town, who: str = "admin") -> dict:
    return {"Authorization": f"Bearer {town['tokens'][who]}"}


def _message(response) -> str:
    body = response.get_json(silent=True)
    if isinstance(body, list):  # Open311's error list
        return body[0]["description"]
    if isinstance(body, dict):
        return body.get("error") or body.get("description") or ""
    return response.get_data(as_text=True)


def _assert_clear(response, *statuses: int, word: str | None = None) -> None:
    statuses = statuses or (400,)
    assert response.status_code in statuses, (response.status_code, _message(response)[:200])
    message = _message(response)
    assert message, "an error needs a message"
    if word:
        assert word in message, message[:200]


# ---- the parsers themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: params.parse_limit(HUGE), "limit"),
        (lambda: params.parse_offset(HUGE), "offset"),
        (lambda: params.parse_offset("-1"), "offset"),
        (lambda: params.parse_id(HUGE, name="unit"), "unit"),
        (lambda: params.parse_id("²", name="unit"), "unit"),
        (lambda: params.parse_id("١٢", name="unit"), "unit"),
        (lambda: params.parse_date("2026-13-01", name="from"), "from"),
        (lambda: params.parse_date("0001-01-01", name="from"), "from"),
        (lambda: params.parse_datetime("0001-01-01", name="found_at"), "found_at"),
        (lambda: params.parse_datetime("昨天", name="found_at"), "found_at"),
        (lambda: params.parse_lonlat(LONG_NUMBER, "22.8"), "lon"),
        (lambda: params.parse_lonlat(int(LONG_NUMBER), 22.8), "lon"),
        (lambda: params.parse_lonlat("nan", "22.8"), "lon"),
        (lambda: params.parse_bbox("1,2,3"), "bbox"),
        (lambda: params.parse_bbox("104,23,103,22"), "bbox"),
        (lambda: params.parse_id_list([10**30], name="issue_ids"), "issue_ids"),
        (lambda: params.parse_id_list("1,x", name="ids"), "ids"),
        (lambda: params.parse_interval("2026-03-02/2026-03-01"), "datetime"),
        (lambda: params.parse_interval("../.."), "datetime"),
        (lambda: params.parse_interval("2026-03-01/昨天"), "datetime"),
    ],
)
def test_each_parser_names_the_parameter_and_a_cut_value(call, name):
    with pytest.raises(ValidationError) as caught:
        call()
    message = str(caught.value)
    assert f"参数 {name}" in message
    # The value is shown, but never more than 40 characters of it.
    assert LONG_NUMBER[:41] not in message
    assert getattr(caught.value, "field", None) == name


def test_parsers_accept_good_values():
    assert params.parse_limit(None) == params.DEFAULT_LIMIT
    assert params.parse_limit("20000", high=10_000, clamp=True) == 10_000
    assert params.parse_offset("30") == 30
    assert params.parse_id("7") == 7
    assert params.parse_id_list("3,1,3") == [3, 1]
    assert params.parse_date("2026-03-01").isoformat() == "2026-03-01"
    # A zone becomes county time (UTC+8), as found_at is stored.
    assert params.parse_datetime("2026-03-01T00:00:00Z").isoformat() == "2026-03-01T08:00:00"
    assert params.parse_bbox("103,22,104,23") == (103.0, 22.0, 104.0, 23.0)
    assert params.parse_lonlat("103.5", 22.8) == (103.5, 22.8)
    assert params.parse_typed_id("#12", what="单位") == 12


def test_an_interval_spans_whole_days_and_may_be_open():
    start, end = params.parse_interval("2026-03-01/..")
    assert start.isoformat() == "2026-03-01T00:00:00" and end is None
    start, end = params.parse_interval("2026-03-01")
    assert (start.isoformat(), end.isoformat()) == ("2026-03-01T00:00:00",
                                                    "2026-03-01T23:59:59.999999")
    assert params.parse_interval(" ") is None


def test_a_typed_id_names_the_object():
    for value in ("abc", "0", HUGE, ""):
        with pytest.raises(ValidationError, match="单位编号 .* 无效"):
            params.parse_typed_id(value, what="单位")


def test_deep_json_is_refused_before_decoding():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValidationError, match="请求体过深"):
        params.parse_json_body(deep)
    # Brackets inside strings are text, not nesting.
    assert params.parse_json_body(b'{"description": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    with pytest.raises(ValidationError) as caught:
        params.parse_json_body(b'{"a": 1}', mimetype="text/plain")
    assert caught.value.status == 415


# ---- every route ---------------------------------------------------------------------------

LIST_ROUTES = [
    "/api/v1/issues",
    "/api/v1/cells",
    "/api/v1/units",
    "/api/v1/patrols",
    "/api/v1/reports",
    "/ogc/collections/cells/items",
    "/ogc/collections/issues/items",
    "/ogc/collections/roads/items",
]


@pytest.mark.parametrize("route", LIST_ROUTES)
@pytest.mark.parametrize("query", [f"offset={HUGE}", f"limit={HUGE}", "offset=-1", "limit=x",
                                   f"offset=1{'0' * 8}"])
def test_paging_parameters_on_every_list(client, town, route, query):
    response = client.get(f"{route}?{query}", headers=_auth(town))
    if route.startswith("/ogc/") and query.startswith("limit=1"):
        assert response.status_code == 200  # the standard clamps a large limit
        return
    _assert_clear(response, word=query.split("=")[0])


@pytest.mark.parametrize(
    "route",
    [
        f"/api/v1/issues/{HUGE}",
        f"/api/v1/cells/{HUGE}",
        f"/api/v1/units/{HUGE}",
        f"/api/v1/patrols/{HUGE}",
        f"/api/v1/issues/{HUGE}/photos/1",
        f"/ogc/collections/issues/items/{HUGE}",
        f"/ogc/collections/cells/items/{HUGE}",
        f"/ogc/collections/roads/items/{HUGE}",
        f"/open311/v2/requests/{HUGE}.json",
        f"/issues/{HUGE}",
        f"/reports/2026-11/units/{HUGE}",
    ],
)
def test_thirty_digit_ids_are_not_found(client, auth, town, route):
    auth.login("admin")
    _assert_clear(client.get(route, headers=_auth(town)), 404)


def test_thirty_digit_id_in_a_post_is_not_found(client, town):
    response = client.post(f"/api/v1/issues/{HUGE}/actions", json={"action": "dispatch"},
                           headers=_auth(town))
    _assert_clear(response, 404)


@pytest.mark.parametrize(
    "url",
    [
        "/open311/v2/requests.json?service_request_id=" + HUGE,
        "/open311/v2/requests.json?service_request_id=1,²",
        "/open311/v2/requests.json?start_date=0001-01-01",
        "/open311/v2/requests.json?end_date=2026-02-30",
        "/api/v1/issues?unit=²",
        "/api/v1/issues?unit=" + HUGE,
        "/api/v1/cells?unit=²",
        "/api/v1/issues?updated_since=0001-01-01",
        "/api/v1/issues?bbox=" + ",".join([LONG_NUMBER] * 4),
        "/api/v1/cells?bbox=nan,1,2,3",
        "/ogc/collections/issues/items?datetime=0001-01-01",
        "/ogc/collections/issues/items?datetime=9999-12-31T00:00:00Z",
        "/ogc/collections/cells/items?bbox=" + ",".join([LONG_NUMBER] * 4),
    ],
)
def test_bad_filters_are_400(client, town, url):
    _assert_clear(client.get(url, headers=_auth(town)), 400)


@pytest.mark.parametrize("route", ["/map/counts.json", "/map/issues.geojson"])
@pytest.mark.parametrize(
    "query", ["unit=²", f"unit={HUGE}", "from=2026-13-01", "to=abc", "from=0001-01-01",
              "from=2026-05-01&to=2026-04-01"],
)
def test_map_layers_check_ids_and_dates(client, auth, town, route, query):
    auth.login("admin")
    response = client.get(f"{route}?{query}", headers={"Accept": "application/json"})
    _assert_clear(response, 400)
    good = client.get(f"{route}?from=2026-01-01&to=2026-12-31&unit={town['west'].id}")
    assert good.status_code == 200


def _issue_count(session) -> int:
    session.expire_all()
    return session.execute(select(func.count(Issue.id))).scalar_one()


@pytest.mark.parametrize(
    "body",
    [
        {"description": "x", "lon": LONG_NUMBER, "lat": 22.7995},
        {"description": "x", "lon": "103.5005", "lat": LONG_NUMBER},
        {"description": "x", "lon": 103.5005, "lat": 22.7995, "found_at": "0001-01-01"},
        {"description": "x", "lon": 103.5005, "lat": 22.7995, "found_at": 10**30},
    ],
)
def test_bad_numbers_and_dates_in_a_report(client, town, session, body):
    before = _issue_count(session)
    response = client.post("/api/v1/issues", json=body, headers=_auth(town, "inspector"))
    _assert_clear(response, 400)
    assert _issue_count(session) == before


def test_a_400_digit_number_in_json(client, town, session):
    before = _issue_count(session)
    raw = '{"description": "x", "lon": ' + LONG_NUMBER + ', "lat": 22.7995}'
    response = client.post("/api/v1/issues", data=raw, content_type="application/json",
                           headers=_auth(town, "inspector"))
    _assert_clear(response, 400, word="lon")
    assert _issue_count(session) == before
    o311 = client.post("/open311/v2/requests.json", data={
        "api_key": town["tokens"]["inspector"], "service_code": "0302", "description": "x",
        "lat": LONG_NUMBER, "long": "103.5"})
    _assert_clear(o311, 400)
    assert _issue_count(session) == before


@pytest.mark.parametrize(
    "route", ["/api/v1/issues", "/api/v1/patrols", "/api/v1/issues/{id}/actions",
              "/api/v1/issues/{id}/place"],
)
def test_deep_json_bodies_are_400(client, town, session, route):
    before = _issue_count(session)
    deep = "[" * 100_000 + "]" * 100_000
    url = route.format(id=town["issue"].id)
    response = client.post(url, data=deep, content_type="application/json",
                           headers=_auth(town))
    _assert_clear(response, 400, word="请求体过深")
    assert _issue_count(session) == before


@pytest.mark.parametrize("route", ["/api/v1/issues", "/api/v1/patrols",
                                   "/api/v1/issues/{id}/actions"])
def test_json_api_requires_a_json_content_type(client, town, session, route):
    before = _issue_count(session)
    url = route.format(id=town["issue"].id)
    response = client.post(url, data='{"description": "x", "address": "人民路"}',
                           content_type="text/plain", headers=_auth(town))
    _assert_clear(response, 415)
    assert _issue_count(session) == before


@pytest.mark.parametrize("ids", [[10**30], [HUGE], [1, -5], ["²"], [2**31]])
def test_patrol_issue_ids_beyond_any_id(client, town, session, ids):
    patrols = session.execute(select(func.count(Patrol.id))).scalar_one()
    response = client.post("/api/v1/patrols", json={"issue_ids": ids}, headers=_auth(town))
    _assert_clear(response, 400, 404)
    assert response.get_json()["field"] == "issue_ids"
    assert session.execute(select(func.count(Patrol.id))).scalar_one() == patrols


@pytest.mark.parametrize("points", [[[LONG_NUMBER, 22.8]], [[103.5, "nan"]], [[1e308 * 10, 1]]])
def test_patrol_points_beyond_any_number(client, town, points):
    raw = '{"points": ' + str(points).replace("'", "").replace("inf", "1e999") + "}"
    response = client.post("/api/v1/patrols", data=raw, content_type="application/json",
                           headers=_auth(town))
    _assert_clear(response, 400)


# ---- login: next ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example/phish",
        "/%0D%0ASet-Cookie:%20x=1",
        "//evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%20/evil.example",
    ],
)
def test_login_never_redirects_off_site(client, town, target):
    response = client.post(f"/login?next={target}",
                           data={"username": "admin", "password": "password123"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.endswith("/") and "evil" not in location and "Set-Cookie" not in location


def test_login_keeps_a_same_site_next(client, town):
    response = client.post("/login?next=/issues/%3Fstatus%3Dopen",
                           data={"username": "admin", "password": "password123"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/issues/")


# ---- Open311 api_key in the URL is never logged ----------------------------------------------


def _gunicorn_conf():
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_access_log_blanks_the_api_key(client, town):
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    conf = _gunicorn_conf()
    assert conf.logger_class is conf.RedactingLogger
    token = town["tokens"]["admin"]
    cfg = Config()
    logger = conf.RedactingLogger(cfg)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/open311/v2/requests.json?status=open&api_key={token}",
        "QUERY_STRING": f"status=open&api_key={token}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "PATH_INFO": "/open311/v2/requests.json",
    }
    resp = SimpleNamespace(status="200 OK", sent=10, headers=[])
    req = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {token}")])
    atoms = logger.atoms(resp, req, environ, timedelta(milliseconds=5))
    line = conf.access_log_format % atoms
    assert token not in line and "api_key=[REDACTED]" in line
    assert all(token not in str(v) for v in atoms.values())
    # The key still works in the URL (the spec allows it), with a Warning to use the header.
    response = client.get(f"/open311/v2/requests.json?api_key={token}")
    assert response.status_code == 200 and "Authorization" in response.headers["Warning"]
    header = client.get("/open311/v2/requests.json", headers=_auth(town))
    assert header.status_code == 200 and "Warning" not in header.headers
