"""Schemathesis against /api/v1/openapi.json through the WSGI app: whatever it sends, valid
or not, the API never answers with a server error (5xx).

Each operation runs on the small factory town with an admin's bearer token (admins may
do everything, so every route is exercised past its access check). Kept fast: a few
examples per operation.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from app.services.core.passwords import issue_token  # noqa: E402
from tests.factories import west_point  # noqa: E402


@pytest.fixture()
def admin_token(app, factory, session) -> str:
    town = factory.town()
    users = town["users"]
    for i in range(3):
        lon, lat = west_point(i)
        factory.issue(users["inspector"], lon=lon, lat=lat, description=f"样例问题 {i}")
    token = issue_token(session, users["admin"])
    session.commit()
    return token


def test_api_never_answers_with_a_server_error(app, admin_token):
    # One test walking every operation (schemathesis' lazy pytest fixture loader does not
    # run on this pytest); each operation gets its own hypothesis run and its own verdict.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:800]
    assert operations >= 10
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_the_document_is_served_and_names_every_resource(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    for resource in ("cells", "issues", "units", "patrols", "reports"):
        assert any(p.startswith(f"/{resource}") or f"/{resource}" in p for p in paths), resource


def test_ids_beyond_the_database_range_are_not_found(client, admin_token):
    """Found by schemathesis: a 30-digit id in a path overflowed the driver (500)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    for path in (
        "/api/v1/issues/96929003139227233288192",
        "/api/v1/cells/2147483648",
        "/api/v1/units/99999999999999999999",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, path
    response = client.post(
        "/api/v1/issues/96929003139227233288192/place",
        json={"lon": 103.5, "lat": 22.8},
        headers=headers,
    )
    assert response.status_code == 404
