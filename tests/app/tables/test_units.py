"""责任片区 pages: each unit head sees only their own area; county staff pick a unit."""

from __future__ import annotations

import json

import geopandas as gpd
from shapely.geometry import box
from sqlalchemy import select

from app.models import AuditLog, Unit, User
from app.services.grids.layers import store_layer
from tests.factories import BASE_LAT, BASE_LON, STEP, east_point, west_point


def _town(factory, session):
    town = factory.town()
    inspector = town["users"]["inspector"]
    for i in range(3):
        factory.issue(
            inspector, lon=west_point(i)[0], lat=west_point(i)[1], description=f"西区问题{i}"
        )
    factory.issue(inspector, lon=east_point(0)[0], lat=east_point(0)[1], description="东区问题")
    # Two communities split along the same line as the units, plus one far away.
    communities = gpd.GeoDataFrame(
        {"name": ["西街社区", "东街社区", "远郊社区"], "code": ["001", "002", "003"]},
        geometry=[
            box(BASE_LON, BASE_LAT - 4 * STEP, BASE_LON + 2 * STEP, BASE_LAT),
            box(BASE_LON + 2 * STEP, BASE_LAT - 4 * STEP, BASE_LON + 4 * STEP, BASE_LAT),
            box(BASE_LON + 0.1, BASE_LAT, BASE_LON + 0.11, BASE_LAT + 0.01),
        ],
        crs=4326,
    )
    store_layer(session, communities, kind="communities", name="社区")
    session.commit()
    return town


def test_unit_head_sees_own_area(client, auth, session, factory):
    town = _town(factory, session)
    auth.login("west")
    response = client.get("/units/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/units/{town['west'].id}")
    html = client.get(f"/units/{town['west'].id}").get_data(as_text=True)
    assert "西区单位" in html
    assert "<b>8</b>个" in html  # 8 of the 16 cells
    assert "<b>3</b>个" in html  # three open problems in the west
    assert "西街社区" in html and "东街社区" not in html and "远郊社区" not in html
    assert "联系人" in html and "13800000000" in html
    assert "folium-map" in html
    assert "东区单位" not in html and "查看单位" not in html
    # ~8 cells of ~100 m × 110 m: about 0.09 km²
    area = float(html.split("总面积<b>")[1].split("</b>")[0])
    assert 0.07 < area < 0.11


def test_unit_head_cannot_see_other_units_area(client, auth, session, factory):
    town = _town(factory, session)
    auth.login("west")
    assert client.get(f"/units/{town['east'].id}").status_code == 404
    assert (
        client.get(f"/units/?unit={town['east'].id}")
        .headers["Location"]
        .endswith(f"/units/{town['west'].id}")
    )
    assert client.get(f"/units/{town['east'].id}/cells.geojson").status_code == 404
    assert client.get("/units/9999").status_code == 404


def test_unit_head_exports_own_cells_only(client, auth, session, factory):
    town = _town(factory, session)
    auth.login("east")
    response = client.get(f"/units/{town['east'].id}/cells.geojson")
    assert response.status_code == 200
    data = json.loads(response.data)
    assert len(data["features"]) == 8
    assert {f["properties"]["unit"] for f in data["features"]} == {"东区单位"}
    kml = client.get(f"/units/{town['east'].id}/cells.kml")
    assert kml.status_code == 200 and b"<kml" in kml.data and b"532599001001003" in kml.data
    assert b"532599001001001" not in kml.data  # a west cell
    assert client.get(f"/units/{town['east'].id}/cells.gpkg").status_code == 400
    audit = (
        session.execute(select(AuditLog).where(AuditLog.action == "export_unit_cells"))
        .scalars()
        .all()
    )
    assert len(audit) == 2


def test_admin_and_leader_pick_any_unit(client, auth, session, factory):
    town = _town(factory, session)
    for username in ("admin", "leader", "inspector"):
        auth.login(username)
        page = client.get("/units/").get_data(as_text=True)
        assert "查看单位" in page and "西区单位" in page and "东区单位" in page
        html = client.get(f"/units/?unit={town['east'].id}", follow_redirects=True).get_data(
            as_text=True
        )
        assert "<b>1</b>个" in html and "东街社区" in html
        auth.logout()


def test_unit_head_without_unit_sees_notice(client, auth, session, factory):
    _town(factory, session)
    factory.user("lonely", "unit_head")
    session.commit()
    auth.login("lonely")
    response = client.get("/units/")
    assert response.status_code == 200
    assert "没有关联责任单位" in response.get_data(as_text=True)


def test_unit_without_cells_has_no_export_links(client, auth, session, factory):
    _town(factory, session)
    unit = factory.unit("新单位")
    session.commit()
    auth.login("admin")
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert "<b>0</b>个" in html and "cells.geojson" not in html
    assert client.get(f"/units/{unit.id}/cells.geojson").status_code == 400


def test_demo_unit_area(demo_client, demo_auth):
    from app.extensions import db

    head = db.session.execute(select(User).where(User.username == "unit01")).scalar_one()
    unit = db.session.get(Unit, head.unit_id)
    demo_auth.login("unit01", "demo1234")
    html = demo_client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert unit.name in html and "社区" in html and "folium-map" in html
    assert unit.contact in html
    other = db.session.execute(select(Unit).where(Unit.id != unit.id)).scalars().first()
    assert demo_client.get(f"/units/{other.id}").status_code == 404


def test_county_staff_see_every_unit_with_its_figures(client, auth, factory):
    town = factory.town()
    factory.issue(town["users"]["inspector"], lon=east_point(0)[0], lat=east_point(0)[1])
    auth.login("leader")
    html = client.get("/units/").get_data(as_text=True)
    assert "西区单位" in html and "东区单位" in html
    # Each unit holds 8 cells of 10,000 m² (0.080 km²); the east unit has the open problem.
    assert html.count("<td>8</td>") == 2 and "0.080" in html
    assert "<td>1</td>" in html
