"""The density map home page: what each role sees, and that every asset is local."""

import re

from tests.conftest import east_point, login, west_point


def _town_with_issues(factory):
    town = factory.town()
    inspector = town["users"]["inspector"]
    for i in range(3):
        factory.issue(inspector, lon=west_point(0)[0], lat=west_point(0)[1],
                      description=f"西区问题{i}")
    factory.issue(inspector, lon=east_point(1)[0], lat=east_point(1)[1], description="东区问题")
    return town


def test_admin_sees_every_cell_coloured_by_density(client, factory):
    _town_with_issues(factory)
    login(client, "admin")
    html = client.get("/").get_data(as_text=True)
    assert "16</b> 个责任网格" in html
    assert "4</b> 个未销号问题" in html
    assert "西区问题0" in html and "东区问题" in html


def test_unit_head_sees_only_own_cells_and_problems(client, factory):
    _town_with_issues(factory)
    login(client, "east")
    html = client.get("/").get_data(as_text=True)
    assert "8</b> 个责任网格" in html
    assert "东区问题" in html
    assert "西区问题" not in html
    assert "西区单位" not in html


def test_map_page_names_no_outside_host(client, factory):
    _town_with_issues(factory)
    login(client, "admin")
    html = client.get("/").get_data(as_text=True)
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    outside = [u for u in urls if u.startswith(("http:", "https:", "//"))]
    assert outside == []
    assert "/vendor/leaflet/leaflet.js" in html
    assert "cdn" not in html.lower()


def test_vendor_assets_are_served(client):
    assert client.get("/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/vendor/d3/d3.js").status_code == 200
    assert client.get("/vendor/markercluster/leaflet.markercluster.js").status_code == 200
    assert client.get("/vendor/nothing/x.js").status_code == 404
    assert client.get("/vendor/leaflet/../../../etc/passwd").status_code == 404


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors" in csp and "http" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
