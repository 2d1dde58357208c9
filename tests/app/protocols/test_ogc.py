"""OGC API – Features at /ogc: shape, paging, bbox, access scope, and GDAL as a real client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from functools import partial
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import pytest
from shapely.geometry import LineString
from sqlalchemy import func, select

from app.extensions import db
from app.models import Cell, Feature, Issue, User, today_local
from app.services.core.passwords import issue_token
from app.services.grids.cells import active_grid
from app.services.grids.layers import active_layer, store_layer
from app.services.protocols.ogc_items import parse_item_query
from tests.factories import BASE_LAT, BASE_LON, STEP, east_point, west_point

TOWN_BBOX = f"{BASE_LON - 0.01},{BASE_LAT - 0.01},{BASE_LON + 0.01},{BASE_LAT + 0.01}"


@pytest.fixture()
def town(factory, session):
    """The factory town plus API tokens, two problems per unit and a small roads layer."""
    world = factory.town()
    users = world["users"]
    world["issues"] = {
        "west": [
            factory.issue(users["inspector"], lon=lon, lat=lat, description=f"西区问题{i}")
            for i, (lon, lat) in enumerate([west_point(0), west_point(3)])
        ],
        "east": [
            factory.issue(users["inspector"], lon=lon, lat=lat, description=f"东区问题{i}")
            for i, (lon, lat) in enumerate([east_point(0), east_point(5)])
        ],
    }
    # A diagonal road: its bounding box covers the whole grid, the line only the diagonal.
    roads = gpd.GeoDataFrame(
        {"name": ["迎宾大道", "北环路"], "highway": ["primary", "secondary"]},
        geometry=[
            LineString([(BASE_LON, BASE_LAT), (BASE_LON + 4 * STEP, BASE_LAT - 4 * STEP)]),
            LineString([(BASE_LON, BASE_LAT + STEP), (BASE_LON + 4 * STEP, BASE_LAT + STEP)]),
        ],
        crs=4326,
    )
    store_layer(session, roads, kind="roads", name="测试道路")
    world["tokens"] = {name: issue_token(session, user) for name, user in users.items()}
    session.commit()
    return world


def get(client, url: str, token: str | None = None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url, headers=headers, **kw)


def codes(body: dict) -> list[str]:
    return [f["properties"]["code"] for f in body["features"]]


def link(body: dict, rel: str) -> dict | None:
    return next((lk for lk in body["links"] if lk["rel"] == rel), None)


def relative(href: str) -> str:
    parts = urlsplit(href)
    return f"{parts.path}?{parts.query}"


# ---- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/ogc/",
        "/ogc",
        "/ogc/conformance",
        "/ogc/collections",
        "/ogc/collections/cells/items",
        "/ogc/collections/cells/items/1",
        "/ogc/api",
    ],
)
def test_every_route_needs_authentication(client, town, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response.is_json and response.json["code"] == "Unauthorized"
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_bad_token_is_401_even_with_a_session(client, auth, town):
    auth.login("admin")
    response = get(client, "/ogc/collections", "sg_not-a-token")
    assert response.status_code == 401


def test_browser_session_is_accepted(client, auth, town):
    auth.login("west")
    response = client.get("/ogc/collections/cells/items")
    assert response.status_code == 200
    assert response.json["numberMatched"] == 8


# ---- landing, conformance, collections -----------------------------------------------


def test_landing_page_links(client, town):
    token = town["tokens"]["admin"]
    response = get(client, "/ogc/?f=json", token)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    rels = {lk["rel"]: lk for lk in response.json["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["data"]["href"].endswith("/ogc/collections?f=json")
    api = get(client, relative(rels["service-desc"]["href"]), token)
    assert api.status_code == 200
    assert api.json["openapi"].startswith("3.0")
    assert "/collections/cells/items" in api.json["paths"]
    assert "application/vnd.oai.openapi+json" in api.headers["Content-Type"]


def test_conformance_classes(client, town):
    body = get(client, "/ogc/conformance", town["tokens"]["leader"]).json
    conf = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {conf + "core", conf + "geojson", conf + "oas30"} <= set(body["conformsTo"])


@pytest.mark.parametrize(
    "url",
    [
        "/ogc/?f=xml",
        "/ogc/collections?f=html",
        "/ogc/collections/cells/items?f=csv",
        "/ogc/collections/cells/items/1?f=kml",
    ],
)
def test_unknown_format_is_400(client, town, url):
    response = get(client, url, town["tokens"]["admin"])
    assert response.status_code == 400
    assert "f 参数无效" in response.json["description"]


def test_collections_list_with_extents(client, town):
    body = get(client, "/ogc/collections", town["tokens"]["admin"]).json
    by_id = {c["id"]: c for c in body["collections"]}
    assert {"cells", "issues", "roads", "pois", "boundary"} <= set(by_id)
    assert "communities" not in by_id  # listed only when that layer has been loaded
    cells = by_id["cells"]
    assert cells["itemType"] == "feature"
    bbox = cells["extent"]["spatial"]["bbox"][0]
    assert bbox == pytest.approx([BASE_LON, BASE_LAT - 4 * STEP, BASE_LON + 4 * STEP, BASE_LAT])
    assert any(lk["rel"] == "items" for lk in cells["links"])
    assert "extent" not in by_id["pois"]  # no pois layer loaded: nothing to bound


def test_unit_head_extent_covers_only_their_cells(client, town):
    body = get(client, "/ogc/collections/cells", town["tokens"]["west"]).json
    assert body["extent"]["spatial"]["bbox"][0] == pytest.approx(
        [BASE_LON, BASE_LAT - 4 * STEP, BASE_LON + 2 * STEP, BASE_LAT]
    )
    issues = get(client, "/ogc/collections/issues", town["tokens"]["west"]).json
    minx, _, maxx, _ = issues["extent"]["spatial"]["bbox"][0]
    assert maxx < BASE_LON + 2 * STEP  # no east problem stretches it


def test_unknown_collection_is_404(client, town):
    token = town["tokens"]["admin"]
    assert get(client, "/ogc/collections/buildings", token).status_code == 404
    assert get(client, "/ogc/collections/buildings/items", token).status_code == 404
    assert get(client, "/ogc/collections/communities/items", token).status_code == 404


# ---- items: paging, bbox, limits -----------------------------------------------------


def test_items_page_through_next_links(client, town):
    token = town["tokens"]["admin"]
    response = get(client, "/ogc/collections/cells/items?limit=5", token)
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    body = response.json
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 16 and body["numberReturned"] == 5
    assert body["timeStamp"].endswith("Z")
    assert link(body, "prev") is None
    seen = codes(body)
    pages = 1
    while link(body, "next"):
        body = get(client, relative(link(body, "next")["href"]), token).json
        assert body["numberMatched"] == 16
        seen += codes(body)
        pages += 1
    assert pages == 4
    assert len(seen) == 16 and len(set(seen)) == 16
    assert link(body, "prev") is not None
    assert all(len(code) == 15 and code.isdigit() for code in seen)


def test_offset_and_feature_properties(client, town):
    body = get(
        client, "/ogc/collections/cells/items?limit=10&offset=15", town["tokens"]["admin"]
    ).json
    assert body["numberReturned"] == 1 and link(body, "next") is None
    assert parse_qs(urlsplit(link(body, "prev")["href"]).query)["offset"] == ["5"]
    props = body["features"][0]["properties"]
    assert props["code"] == "532599001001016"
    assert props["unit"] == "东区单位"
    assert props["area_m2"] == 10_000.0
    assert {"subdistrict_code", "community_code", "open_count"} <= set(props)
    assert body["features"][0]["geometry"]["type"] == "Polygon"


def test_open_count_per_cell(client, town):
    body = get(
        client, "/ogc/collections/cells/items?code=532599001001001", town["tokens"]["admin"]
    ).json
    assert body["numberMatched"] == 1
    assert body["features"][0]["properties"]["open_count"] == 1  # west_point(0) is in cell 001


def test_default_limit_comes_from_config(app, client, town):
    app.config["OGC_DEFAULT_LIMIT"] = 3
    body = get(client, "/ogc/collections/cells/items", town["tokens"]["admin"]).json
    assert body["numberReturned"] == 3
    assert "limit=3" in link(body, "next")["href"]


def test_limit_is_clamped_to_maximum(client, town):
    body = get(client, "/ogc/collections/cells/items?limit=50000", town["tokens"]["admin"]).json
    assert body["numberReturned"] == 16
    assert "limit=10000" in link(body, "self")["href"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "offset=-1", "offset=x"])
def test_bad_paging_is_400(client, town, query):
    response = get(client, f"/ogc/collections/cells/items?{query}", town["tokens"]["admin"])
    assert response.status_code == 400
    name = query.split("=")[0]
    assert f"参数 {name} 的值无效" in response.json["description"]


def test_bbox_selects_intersecting_cells(client, town):
    token = town["tokens"]["admin"]
    # Strictly inside the first column.
    inner = f"{BASE_LON + 0.0002},{BASE_LAT - 0.0038},{BASE_LON + 0.0008},{BASE_LAT - 0.0002}"
    body = get(client, f"/ogc/collections/cells/items?bbox={inner}", token).json
    assert body["numberMatched"] == 4
    assert sorted(codes(body)) == [f"532599001001{n:03d}" for n in (1, 5, 9, 13)]
    # Straddling columns 1-2 and rows 1-2: four cells, the paging link keeps the bbox.
    mid = f"{BASE_LON + 0.0005},{BASE_LAT - 0.0015},{BASE_LON + 0.0015},{BASE_LAT - 0.0005}"
    body = get(client, f"/ogc/collections/cells/items?bbox={mid}&limit=3", token).json
    assert body["numberMatched"] == 4 and body["numberReturned"] == 3
    assert parse_qs(urlsplit(link(body, "next")["href"]).query)["bbox"] == [mid]
    # Nowhere near the town.
    body = get(client, "/ogc/collections/cells/items?bbox=0,0,1,1", token).json
    assert body["numberMatched"] == 0 and body["features"] == []


def test_bbox_tests_the_geometry_not_its_box(client, town):
    token = town["tokens"]["west"]
    # The north-east corner of the grid: inside the diagonal road's box, off the line.
    corner = f"{BASE_LON + 3.2 * STEP},{BASE_LAT - 0.8 * STEP},{BASE_LON + 3.8 * STEP},{BASE_LAT - 0.2 * STEP}"
    body = get(client, f"/ogc/collections/roads/items?bbox={corner}", token).json
    assert body["numberMatched"] == 0
    on_line = f"{BASE_LON + 1.8 * STEP},{BASE_LAT - 2.2 * STEP},{BASE_LON + 2.2 * STEP},{BASE_LAT - 1.8 * STEP}"
    body = get(client, f"/ogc/collections/roads/items?bbox={on_line}", token).json
    assert [f["properties"]["name"] for f in body["features"]] == ["迎宾大道"]
    assert body["features"][0]["properties"]["ftype"] == "primary"


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "a,b,c,d",
        "1,2,3,4,5",
        "103,23,104,22",
        "104,22,103,23",
        "103,22,104,95",
        "nan,22,104,23",
        "",
    ],
)
def test_bad_bbox_is_400(client, town, bbox):
    response = get(client, f"/ogc/collections/cells/items?bbox={bbox}", town["tokens"]["admin"])
    if bbox == "":  # an empty bbox means no bbox
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json["description"].startswith("参数 bbox 的值无效: ")
    assert response.json["code"] == "InvalidParameterValue"


def test_other_crs_is_400(client, town):
    token = town["tokens"]["admin"]
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert get(client, f"/ogc/collections/cells/items?crs={crs84}", token).status_code == 200
    response = get(client, "/ogc/collections/cells/items?crs=EPSG:3857", token)
    assert response.status_code == 400
    response = get(client, "/ogc/collections/cells/items?bbox=0,0,1,1&bbox-crs=EPSG:3857", token)
    assert response.status_code == 400 and "bbox-crs" in response.json["description"]


# ---- single items --------------------------------------------------------------------


def test_single_item(client, town):
    token = town["tokens"]["admin"]
    first = get(client, "/ogc/collections/cells/items?limit=1", token).json["features"][0]
    response = get(client, f"/ogc/collections/cells/items/{first['id']}", token)
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    assert response.json["properties"]["code"] == first["properties"]["code"]
    assert link(response.json, "collection") is not None
    issue = town["issues"]["east"][0]
    body = get(client, f"/ogc/collections/issues/items/{issue.id}?f=json", token).json
    assert body["geometry"] == {"type": "Point", "coordinates": [issue.lon, issue.lat]}
    assert body["properties"]["unit"] == "东区单位"
    assert body["properties"]["category_code"] == "0302"
    assert body["properties"]["cell_code"].startswith("532599001001")
    assert body["properties"]["status"] == issue.status


@pytest.mark.parametrize(
    "url",
    [
        "/ogc/collections/cells/items/999999",
        "/ogc/collections/cells/items/abc",
        "/ogc/collections/issues/items/999999",
        "/ogc/collections/roads/items/999999",
        "/ogc/collections/nothing/items/1",
    ],
)
def test_unknown_item_is_404(client, town, url):
    response = get(client, url, town["tokens"]["admin"])
    assert response.status_code == 404
    assert response.json["code"] == "NotFound"


def test_unplaced_problem_is_not_a_feature(client, town, session):
    queued = Issue(description="地址不详的问题", address="某处", needs_placement=True)
    session.add(queued)
    session.commit()
    token = town["tokens"]["admin"]
    body = get(client, "/ogc/collections/issues/items", token).json
    assert body["numberMatched"] == 4
    assert queued.id not in [f["id"] for f in body["features"]]
    assert get(client, f"/ogc/collections/issues/items/{queued.id}", token).status_code == 404


def test_property_filters(client, town):
    token = town["tokens"]["admin"]
    body = get(client, "/ogc/collections/issues/items?unit=西区单位", token).json
    assert body["numberMatched"] == 2
    assert {f["properties"]["unit"] for f in body["features"]} == {"西区单位"}
    assert (
        get(client, "/ogc/collections/issues/items?category=03", token).json["numberMatched"] == 4
    )
    assert (
        get(client, "/ogc/collections/issues/items?status=closed", token).json["numberMatched"] == 0
    )


def test_datetime_filters_problems_by_found_at(client, town):
    token = town["tokens"]["admin"]
    url = "/ogc/collections/issues/items?datetime="
    assert get(client, url + "2000-01-01/2000-12-31", token).json["numberMatched"] == 0
    assert get(client, url + "../2100-01-01T00:00:00Z", token).json["numberMatched"] == 4
    body = get(client, url + "2000-01-01/..&limit=1", token).json
    assert body["numberMatched"] == 4
    assert "datetime=2000-01-01" in link(body, "next")["href"]
    today = today_local().isoformat()  # found_at is stored in county (Beijing) time
    assert get(client, url + today, token).json["numberMatched"] == 4
    for bad in ("yesterday", "../..", "2024-05-01/2024-04-01", "2024-13-01"):
        response = get(client, url + bad, token)
        assert response.status_code == 400, bad
        assert response.json["description"].startswith("参数 datetime 的值无效")


# ---- unit heads see only their own -----------------------------------------------------


def test_unit_head_whole_town_bbox_returns_only_theirs(client, town):
    token = town["tokens"]["west"]
    cells = get(client, f"/ogc/collections/cells/items?bbox={TOWN_BBOX}", token).json
    assert cells["numberMatched"] == 8
    assert {f["properties"]["unit"] for f in cells["features"]} == {"西区单位"}
    issues = get(client, f"/ogc/collections/issues/items?bbox={TOWN_BBOX}", token).json
    assert issues["numberMatched"] == 2
    assert {f["id"] for f in issues["features"]} == {i.id for i in town["issues"]["west"]}
    # Filters cannot widen the scope.
    assert (
        get(client, "/ogc/collections/issues/items?unit=东区单位", token).json["numberMatched"] == 0
    )


def test_unit_head_guessing_ids_gets_404(client, town, session):

    token = town["tokens"]["west"]
    east_cell = (
        session.execute(select(Cell.id).where(Cell.unit_id == town["east"].id)).scalars().first()
    )
    east_issue = town["issues"]["east"][0].id
    assert get(client, f"/ogc/collections/cells/items/{east_cell}", token).status_code == 404
    assert get(client, f"/ogc/collections/issues/items/{east_issue}", token).status_code == 404
    own = town["issues"]["west"][0].id
    assert get(client, f"/ogc/collections/issues/items/{own}", token).status_code == 200


def test_base_layers_are_readable_by_every_role(client, town):
    for name in ("admin", "inspector", "leader", "west", "east"):
        body = get(client, "/ogc/collections/roads/items", town["tokens"][name]).json
        assert body["numberMatched"] == 2, name
        fid = body["features"][0]["id"]
        assert (
            get(client, f"/ogc/collections/roads/items/{fid}", town["tokens"][name]).status_code
            == 200
        )


def test_empty_base_layer_is_an_empty_collection(client, town):
    body = get(client, "/ogc/collections/boundary/items", town["tokens"]["admin"]).json
    assert body["numberMatched"] == 0 and body["features"] == []


# ---- GDAL's OAPIF driver as a real client -------------------------------------------------

# pyogrio reads features without releasing the GIL, so GDAL runs in its own process while
# the server answers from a thread of this one.
GDAL_CLIENT = """
import json, sys
import pyogrio
url, layer, page_size = sys.argv[1:4]
df = pyogrio.read_dataframe(url, layer=layer, PAGE_SIZE=page_size)
print(json.dumps({
    "layers": [str(name) for name, _ in pyogrio.list_layers(url)],
    "codes": [str(c) for c in df["code"]],
    "valid": bool(df.geometry.is_valid.all()),
    "empty": bool(df.geometry.is_empty.any()),
    "crs": df.crs.to_string() if df.crs else None,
}))
"""


@pytest.fixture()
def served_demo(demo_app):
    """The demo county served on a free port; yields (base URL, requested paths)."""
    from werkzeug.serving import make_server

    requested: list[str] = []

    def recording(environ, start_response):
        requested.append(environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", ""))
        return demo_app(environ, start_response)

    server = make_server("127.0.0.1", 0, recording, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/ogc", requested
    finally:
        server.shutdown()
        thread.join(timeout=10)


def demo_token(demo_app, username: str | None = None, *, role: str | None = None):
    """An API token for a demo user; returns (token, user id, unit id)."""

    with demo_app.app_context():
        stmt = select(User)
        if username:
            stmt = stmt.where(User.username == username)
        else:
            # A unit head who answers for some cells of the active grid.
            stmt = stmt.where(User.role == role, User.unit_id.in_(select(Cell.unit_id)))
        user = db.session.execute(stmt.order_by(User.id)).scalars().first()
        token = issue_token(db.session, user, name="ogc-test")
        db.session.commit()
        result = token, user.id, user.unit_id
        db.session.remove()
    return result


def visible_codes(demo_app, unit_id: int | None) -> set[str]:

    with demo_app.app_context():
        stmt = select(Cell.code).where(Cell.grid_id == active_grid(db.session).id)
        if unit_id is not None:
            stmt = stmt.where(Cell.unit_id == unit_id)
        codes = set(db.session.execute(stmt).scalars())
        db.session.remove()
    return codes


def read_with_gdal(url: str, token: str, *, layer: str = "cells", page_size: int = 200) -> dict:
    env = dict(os.environ)
    # GDAL's OAPIF driver sends its own Accept header, which replaces GDAL_HTTP_HEADERS
    # (GDAL 3.12); GDAL_HTTP_AUTH=BEARER is how GDAL passes a bearer token.
    env.update(GDAL_HTTP_AUTH="BEARER", GDAL_HTTP_BEARER=token)
    env.pop("GDAL_HTTP_HEADERS", None)
    result = subprocess.run(
        [sys.executable, "-c", GDAL_CLIENT, f"OAPIF:{url}", layer, str(page_size)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_gdal_reads_all_cells_as_admin(served_demo, demo_app):
    url, requested = served_demo
    token, _, _ = demo_token(demo_app, "admin")
    expected = visible_codes(demo_app, None)
    got = read_with_gdal(url, token, page_size=200)
    assert {"cells", "issues", "roads", "pois", "boundary"} <= set(got["layers"])
    assert len(got["codes"]) == len(expected) > 200
    assert set(got["codes"]) == expected
    assert all(len(code) == 15 and code.isdigit() for code in got["codes"])
    assert got["valid"] and not got["empty"]
    assert got["crs"] in ("OGC:CRS84", "EPSG:4326")  # WGS-84 longitude/latitude
    # GDAL followed our next links: several pages of cells, each asked with an offset.
    pages = [
        p for p in requested if p.startswith("/ogc/collections/cells/items?") and "offset=" in p
    ]
    assert len(pages) >= len(expected) // 200


def test_gdal_as_unit_head_gets_only_their_cells(served_demo, demo_app):
    url, _ = served_demo
    token, _, unit_id = demo_token(demo_app, role="unit_head")
    expected = visible_codes(demo_app, unit_id)
    everything = visible_codes(demo_app, None)
    got = read_with_gdal(url, token, page_size=25)
    assert 0 < len(expected) < len(everything)
    assert len(got["codes"]) == len(expected)
    assert set(got["codes"]) == expected
    assert got["valid"]


def test_gdal_reads_base_layers(served_demo, demo_app):
    url, _ = served_demo
    token, _, _ = demo_token(demo_app, role="unit_head")

    with demo_app.app_context():
        roads = db.session.execute(
            select(func.count()).where(Feature.layer_id == active_layer(db.session, "roads").id)
        ).scalar_one()
        db.session.remove()
    script_env = dict(os.environ, GDAL_HTTP_AUTH="BEARER", GDAL_HTTP_BEARER=token)
    script = (
        "import sys, pyogrio; df = pyogrio.read_dataframe(sys.argv[1], layer='roads', "
        "PAGE_SIZE=500); print(len(df), df.geometry.geom_type.unique().tolist())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, f"OAPIF:{url}"],
        env=script_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    count, types = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) == roads
    assert "LineString" in types


def test_gdal_without_token_is_refused(served_demo):
    url, _ = served_demo
    script = "import sys, pyogrio; pyogrio.list_layers(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDAL_HTTP")}
    result = subprocess.run(
        [sys.executable, "-c", script, f"OAPIF:{url}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "401" in result.stderr


def test_parse_bbox_accepts_the_3d_form():
    query = partial(parse_item_query, "cells")

    assert query({"bbox": "103.5,22.7,103.6,22.8"}).bbox == (103.5, 22.7, 103.6, 22.8)
    # minx,miny,minz,maxx,maxy,maxz: heights are dropped.
    assert query({"bbox": "103.5,22.7,0,103.6,22.8,100"}).bbox == (103.5, 22.7, 103.6, 22.8)
