"""The county's clock (Asia/Shanghai) decides every day boundary, whatever the server's zone.

The server runs in UTC (or Los Angeles); at 15:30 UTC it is 23:30 in the county, at 16:30
UTC it is already 00:30 the next day. Each door a user relies on must follow the county.
"""

import os
import time
from datetime import UTC, date, datetime
from urllib.parse import unquote

import pytest
import time_machine
from sqlalchemy import select

from app.models import Issue
from tests.factories import west_point

BEFORE = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 2026-12-01 23:30 in the county
AFTER = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)  # 2026-12-02 00:30 in the county


@pytest.fixture(params=["UTC", "America/Los_Angeles"])
def server_tz(request):
    """Run the process in a server time zone that is not the county's."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def _report(client, description: str) -> None:
    lon, lat = west_point(0)
    response = client.post(
        "/issues/new",
        data={
            "description": description,
            "category": "0302",
            "source": "县级督查",
            "lon": str(lon),
            "lat": str(lat),
            "crs": "wgs84",
        },
    )
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]


def test_a_problem_is_found_on_the_county_date_with_its_deadline_from_there(
    server_tz, factory, client, auth, session
):
    factory.town()  # category 0302: 5 working days
    with at(BEFORE):
        auth.login("inspector")
        _report(client, "晚间上报的问题")
    with at(AFTER):
        _report(client, "午夜后上报的问题")
        # "From today" in the list is the county's today: only the problem after midnight.
        listed = client.get("/issues/?from=2026-12-02").get_data(as_text=True)
        assert "午夜后上报的问题" in listed and "晚间上报的问题" not in listed
    late = session.execute(select(Issue).where(Issue.description == "晚间上报的问题")).scalar_one()
    night = session.execute(
        select(Issue).where(Issue.description == "午夜后上报的问题")
    ).scalar_one()
    assert late.found_at == datetime(2026, 12, 1, 23, 30)
    assert night.found_at == datetime(2026, 12, 2, 0, 30)
    # Tue 1 Dec + 5 working days = Tue 8 Dec; Wed 2 Dec + 5 = Wed 9 Dec.
    assert late.deadline == date(2026, 12, 8)
    assert night.deadline == date(2026, 12, 9)


def test_overdue_filters_turn_at_the_county_midnight(server_tz, factory, client, auth, session):
    from app.services.core.passwords import issue_token

    world = factory.town()
    with at(BEFORE):
        issue = factory.issue(world["users"]["inspector"], lon=west_point(0)[0],
                              lat=west_point(0)[1], description="今天到期的问题")
        issue.deadline = date(2026, 12, 1)
        token = issue_token(session, world["users"]["admin"])
        session.commit()
        auth.login("admin")
        page = client.get("/issues/?overdue=1").get_data(as_text=True)
        assert "今天到期的问题" not in page
        api = client.get("/api/v1/issues?overdue=true",
                         headers={"Authorization": f"Bearer {token}"}).json
        assert api["total"] == 0
        session.expire_all()
        assert not session.get(Issue, issue.id).is_overdue()
    with at(AFTER):
        page = client.get("/issues/?overdue=1").get_data(as_text=True)
        assert "今天到期的问题" in page
        api = client.get("/api/v1/issues?overdue=true",
                         headers={"Authorization": f"Bearer {token}"}).json
        assert api["total"] == 1
        assert session.get(Issue, issue.id).is_overdue()


def test_export_name_and_patrol_date_are_the_county_date(server_tz, factory, client, auth):
    factory.town()
    with at(AFTER):
        auth.login("admin")
        response = client.get("/issues/export.xlsx")
        assert response.status_code == 200
        assert "问题清单-20261202.xlsx" in unquote(response.headers["Content-Disposition"])
        plan = client.get("/patrols/")
        assert plan.status_code == 200
        assert 'value="2026-12-02"' in plan.get_data(as_text=True)


def test_ogc_datetime_filter_reads_dates_in_county_time(server_tz, factory, client, session):
    from app.services.core.passwords import issue_token

    world = factory.town()
    with at(AFTER):
        factory.issue(world["users"]["inspector"], lon=west_point(0)[0], lat=west_point(0)[1],
                      description="午夜后发现")
        token = issue_token(session, world["users"]["admin"])
        session.commit()

        def matched(value: str) -> int:
            response = client.get(f"/ogc/collections/issues/items?datetime={value}",
                                  headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.get_data(as_text=True)
            return response.json["numberMatched"]

        assert matched("2026-12-02") == 1  # the county's date
        assert matched("2026-12-01") == 0
        # An instant in UTC is the same moment in the county: found 16:30Z = 00:30 Beijing.
        assert matched("2026-12-01T16:30:00Z") == 1
        assert matched("2026-12-01T16:31:00Z/..") == 0
        assert matched("../2026-12-01T16:29:00Z") == 0
        assert matched("2026-12-02T00:30:00%2B08:00") == 1


def test_the_monthly_report_defaults_to_the_month_the_county_just_finished(
    server_tz, factory, client, auth
):
    from app.services.assessment.months import default_month

    factory.town()
    with at(datetime(2026, 11, 30, 15, 30, tzinfo=UTC)):  # still 30 Nov in the county
        assert default_month() == "2026-10"
    with at(datetime(2026, 11, 30, 16, 30, tzinfo=UTC)):  # 1 Dec 00:30 in the county
        assert default_month() == "2026-11"
        auth.login("admin")
        page = client.get("/reports/")
        assert page.status_code == 200
        assert "2026年11月" in page.get_data(as_text=True)
