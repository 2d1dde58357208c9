"""The density map home page: what each role sees, and that every asset is local."""

import re

from tests.factories import east_point, west_point


def _town_with_issues(factory):
    town = factory.town()
    inspector = town["users"]["inspector"]
    for i in range(3):
        factory.issue(inspector, lon=west_point(0)[0], lat=west_point(0)[1],
                      description=f"西区问题{i}")
    factory.issue(inspector, lon=east_point(1)[0], lat=east_point(1)[1], description="东区问题")
    return town


def _layers(client, query: str = ""):
    cells = client.get("/map/cells.geojson").get_json()
    counts = client.get(f"/map/counts.json{query}").get_json()
    issues = client.get(f"/map/issues.geojson{query}").get_json()
    return cells, counts, issues


def test_admin_sees_every_cell_coloured_by_density(client, auth, factory):
    _town_with_issues(factory)
    auth.login("admin")
    assert client.get("/").status_code == 200
    cells, counts, issues = _layers(client)
    assert len(cells["features"]) == 16
    assert counts["total"] == 4
    by_code = {f["properties"]["i"]: f["properties"]["c"] for f in cells["features"]}
    assert sorted(counts["counts"].values()) == [1, 3]
    assert all(int(cell_id) in by_code for cell_id in counts["counts"])
    assert {f["properties"]["d"] for f in issues["features"]} == {
        "西区问题0", "西区问题1", "西区问题2", "东区问题"}


def test_unit_head_sees_only_own_cells_and_problems(client, auth, factory):
    _town_with_issues(factory)
    auth.login("east")
    cells, counts, issues = _layers(client)
    assert len(cells["features"]) == 8
    assert cells["units"] == ["东区单位"]
    assert counts["total"] == 1
    assert [f["properties"]["d"] for f in issues["features"]] == ["东区问题"]
    # Filters naming the other unit reveal nothing either.
    west_id = factory.session.execute(
        __import__("sqlalchemy").text("select id from unit where name='西区单位'")).scalar()
    _, counts, issues = _layers(client, f"?unit={west_id}")
    assert counts["total"] == 0 and issues["features"] == []


def test_counts_follow_filters_and_changes(client, auth, factory, session):
    from app.services.issues.intake import transition

    town = _town_with_issues(factory)
    auth.login("admin")
    _, counts, _ = _layers(client)
    assert counts["total"] == 4
    # A problem change must show at once: the cached counts are keyed by the newest event.
    issue = factory.issue(town["users"]["inspector"], lon=west_point(3)[0], lat=west_point(3)[1])
    transition(session, town["users"]["admin"], issue.id, "reject", note="不属实")
    session.commit()
    _, counts, _ = _layers(client)
    assert counts["total"] == 4
    _, counts, _ = _layers(client, "?status=rejected")
    assert counts["total"] == 1


def test_map_layers_are_gzip_compressed_and_cacheable(client, auth, factory):
    _town_with_issues(factory)
    auth.login("admin")
    response = client.get("/map/cells.geojson", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    etag = response.headers["ETag"]
    again = client.get("/map/cells.geojson", headers={"If-None-Match": etag})
    assert again.status_code == 304
    plain = client.get("/map/cells.geojson").get_json()
    coords = plain["features"][0]["geometry"]["coordinates"][0][0]
    assert all(len(str(v).split(".")[-1]) <= 6 for v in coords)


def test_map_layers_need_login(client):
    for url in ("/map/cells.geojson", "/map/counts.json", "/map/issues.geojson"):
        assert client.get(url).status_code in (302, 401)


def test_map_page_names_no_outside_host(client, auth, factory):
    _town_with_issues(factory)
    auth.login("admin")
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


def test_worker_warm_up_builds_the_county_payload(client, auth, factory):
    from app.services.grids import map_layers

    _town_with_issues(factory)
    map_layers.warm_caches(factory.session)
    assert len(map_layers._CELLS) == 1
    auth.login("leader")  # a county-wide scope: served from the warmed entry
    assert len(client.get("/map/cells.geojson").get_json()["features"]) == 16
    assert len(map_layers._CELLS) == 1


def test_home_page_is_warmed_for_county_wide_roles(app, client, auth, factory):
    from app.services.grids import map_layers
    from app.views.main import warm_home_map

    town = _town_with_issues(factory)
    with app.test_request_context("/"):
        warm_home_map(town["users"]["admin"])
    assert len(map_layers._PAGES) == 1
    auth.login("inspector")
    assert client.get("/").status_code == 200
    assert len(map_layers._PAGES) == 1  # served from the warmed page
    auth.login("east")
    assert client.get("/").status_code == 200
    assert len(map_layers._PAGES) == 2  # a unit head's scope is its own page


def test_map_builder_imports_no_flask_or_database():
    """app/maps/ takes plain GeoJSON from the services: no Flask, no SQL, no models."""
    import ast
    from pathlib import Path

    maps_dir = Path(__file__).resolve().parents[3] / "app" / "maps"
    banned = ("flask", "flask_login", "werkzeug", "sqlalchemy", "app.extensions", "app.models",
              "app.views")
    bad = []
    for path in sorted(maps_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name}:{node.lineno} {n}" for n in names
                    if any(n == b or n.startswith(b + ".") for b in banned)]
    assert not bad, bad
