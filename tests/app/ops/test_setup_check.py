"""系统初始化检查 (service, ``check-setup`` and the admin page) and background layer uploads."""

from __future__ import annotations

import io
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import CalendarYear, CategoryAlias, Feature, Layer, Setting
from app.services.ops.setup_check import run_setup_check, strict_failures

FIXTURE_OSM = Path(__file__).parents[2] / "fixtures" / "first_day_town.osm"


def _by_key(checks):
    return {c.key: c for c in checks}


def test_empty_database_lacks_the_required_parts(session):
    checks = _by_key(run_setup_check(session, county_code="360681", today=date(2026, 12, 1)))
    for key in ("boundary", "roads", "grid", "assignment", "units", "accounts_admin",
                "categories", "holidays_2026"):
        assert checks[key].status == "missing", key
        assert checks[key].required
        assert checks[key].command or checks[key].link, key
    for key in ("pois", "addresses", "buildings", "communities", "subdistricts",
                "accounts_inspector", "category_aliases", "holidays_2027"):
        assert checks[key].status == "warning", key
        assert not checks[key].blocking
    assert checks["county_code"].status == "ready"
    assert "360681" in checks["county_code"].detail


def test_demo_county_code_warns_on_a_county_database(session):
    checks = _by_key(run_setup_check(session, county_code="532599"))
    assert checks["county_code"].status == "warning"
    assert "演示" in checks["county_code"].detail
    session.add(Setting(key="demo_seeded", value={"at": "x"}))
    session.flush()
    assert _by_key(run_setup_check(session, county_code="532599"))["county_code"].status == "ready"
    bad = _by_key(run_setup_check(session, county_code="5325"))["county_code"]
    assert bad.status == "missing" and "5325" in bad.detail


def test_town_with_grid_units_and_accounts_is_ready(session, factory):
    town = factory.town()
    session.add(CalendarYear(year=2026))
    session.add(CategoryAlias(alias="背街小港", category_code="0302"))
    session.commit()
    checks = _by_key(run_setup_check(session, county_code="360681", today=date(2026, 12, 1)))
    assert checks["grid"].status == "ready" and checks["grid"].count == 16
    assert checks["assignment"].status == "ready"
    assert "16/16" in checks["assignment"].detail
    assert checks["units"].count == 2
    assert checks["accounts_unit_head"].count == 2
    assert checks["categories"].status == "ready"
    assert checks["category_aliases"].count == 1
    assert checks["holidays_2026"].status == "ready"
    # Next year's table is not out before December: a warning, never a blocker.
    assert checks["holidays_2027"].status == "warning"
    # The factory town has no layers: roads and boundary are what remains.
    assert {c.key for c in strict_failures(list(checks.values()))} == {"boundary", "roads"}
    town["grid"].cells[0].unit_id = None
    session.commit()
    part = _by_key(run_setup_check(session, county_code="360681"))["assignment"]
    assert part.status == "warning" and "15/16" in part.detail


def test_cells_held_by_the_subdistrict_office_are_counted(session, factory):
    office = factory.unit("东门街道办事处", kind="subdistrict")
    other = factory.unit("城管局")
    factory.grid(office, other)
    session.commit()
    check = _by_key(run_setup_check(session))["assignment"]
    assert "其中 8 个由街道/乡镇兜底" in check.detail


def test_cli_prints_one_line_per_check_and_strict_fails(runner, session):
    result = runner.invoke(args=["check-setup"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    checks = run_setup_check(session)
    assert len(lines) == len(checks) + 1  # one per check and a summary
    assert lines[1].startswith("[缺少] 建成区边界")
    assert "flask --app app import-layer" in lines[1]
    strict = runner.invoke(args=["check-setup", "--strict"])
    assert strict.exit_code == 1
    assert "缺少必需项" in strict.output


def test_cli_strict_passes_when_everything_required_is_there(runner, session, factory):
    from app.models import today_local

    factory.town()
    session.add(CalendarYear(year=today_local().year))  # the county's year, not the server's
    session.commit()
    assert runner.invoke(args=["import-osm", str(FIXTURE_OSM)]).exit_code == 0
    result = runner.invoke(args=["check-setup", "--strict"])
    assert result.exit_code == 0, result.output
    assert "[就绪] 启用的网格 (16)" in result.output
    assert "[就绪] 门牌地址 (2)" in result.output


def test_setup_page_is_for_admins(client, auth, session, factory):
    factory.town()
    auth.login("inspector")
    assert client.get("/admin/setup/").status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/admin/setup/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "系统初始化检查" in html
    assert 'id="check-grid" data-status="ready"' in html
    assert 'id="check-roads" data-status="missing"' in html
    assert "import-osm" in html
    # In the admin's menu.
    assert 'href="/admin/setup/"' in client.get("/").get_data(as_text=True)


# ---------------------------------------------------------------- layer uploads from the web


@pytest.fixture()
def jobs(app, tmp_path):
    app.config["JOB_DIR"] = str(tmp_path / "jobs")
    return tmp_path / "jobs"


def _wait(client, url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).get_json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"import did not finish: {job}")


def test_osm_upload_runs_in_the_background_and_reports_counts(client, auth, session, factory, jobs):
    factory.town()
    auth.login("admin")
    answer = client.post(
        "/grids/layers",
        data={"file": (FIXTURE_OSM.open("rb"), "城区.osm"), "kind": ""},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    body = answer.get_json()
    job = _wait(client, body["status_url"])
    assert job["state"] == "done", job
    assert job["layers"] == {"roads": 2, "pois": 3, "buildings": 2, "addresses": 2,
                             "boundary": 1}
    assert job["fraction"] == 1.0
    session.expire_all()
    kinds = set(session.execute(select(Layer.kind).where(Layer.active.is_(True))).scalars())
    assert {"roads", "pois", "buildings", "addresses", "boundary"} <= kinds
    # The page shows the finished job; the saved upload is gone.
    page = client.get(f"/grids/layers?job={body['token']}").get_data(as_text=True)
    assert "门牌地址: 2 个要素" in page
    assert not (jobs / body["token"]).exists()
    # And the geocoder now uses the door plates and other names.
    from app.services.grids.geocoding import geocoder_for

    geocoder = geocoder_for(session)
    assert geocoder.geocode_address("人民路23号门前").method == "house_number"
    assert geocoder.geocode_address("第二中学对面").method == "alias"


def test_plain_form_upload_redirects_to_the_progress(
    client, auth, session, factory, jobs, tmp_path
):
    factory.town()
    plates = tmp_path / "门牌.geojson"
    plates.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"街路巷名": "人民路", "门牌号": "8号"}, "geometry": {"type": "Point", '
        '"coordinates": [103.501, 22.7995]}}]}',
        encoding="utf-8",
    )
    auth.login("admin")
    answer = client.post(
        "/grids/layers", data={"file": (plates.open("rb"), plates.name), "kind": "addresses"}
    )
    assert answer.status_code == 302
    token = answer.headers["Location"].split("job=")[1]
    job = _wait(client, f"/admin/setup/layer-jobs/{token}")
    assert job["state"] == "done" and job["layers"] == {"addresses": 1}
    session.expire_all()
    feature = session.execute(
        select(Feature).join(Layer).where(Layer.kind == "addresses", Layer.active.is_(True))
    ).scalar_one()
    assert feature.props["街路巷名"] == "人民路"


def test_bad_upload_ends_with_a_clear_error_and_stores_nothing(
    client, auth, session, factory, jobs
):
    factory.town()
    auth.login("admin")
    answer = client.post(
        "/grids/layers",
        data={"file": (FIXTURE_OSM.open("rb"), "坏文件.osm.pbf"), "kind": ""},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 202
    job = _wait(client, answer.get_json()["status_url"])
    assert job["state"] == "error"
    assert "坏文件.osm.pbf" in job["error"]
    session.expire_all()
    assert session.execute(select(Layer)).scalars().first() is None
    wrong = client.post(
        "/grids/layers", data={"file": (FIXTURE_OSM.open("rb"), "城区.txt"), "kind": "roads"}
    )
    assert wrong.status_code == 400
    assert "不支持的文件 城区.txt" in wrong.get_data(as_text=True)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml word/document.xml", "不是可识别的"),
        (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": ',
         "不完整"),
    ],
)
def test_an_unreadable_layer_upload_is_explained_in_chinese_without_server_paths(
    client, auth, session, factory, jobs, content, detail
):
    """Regression (#13): GDAL's English with /…/instance/jobs/<token>/d.geojson was shown."""
    factory.town()
    auth.login("admin")
    answer = client.post(
        "/grids/layers",
        data={"file": (io.BytesIO(content), "d.geojson"), "kind": "pois"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 202
    body = answer.get_json()
    job = _wait(client, body["status_url"])
    assert job["state"] == "error"
    assert job["error"].startswith("无法读取图层文件 d.geojson: "), job["error"]
    assert detail in job["error"]
    for leak in (str(jobs), body["token"], "recognized", "driver", "/tmp"):
        assert leak not in job["error"]
    page = client.get(f"/grids/layers?job={body['token']}").get_data(as_text=True)
    assert "无法读取图层文件 d.geojson" in page and str(jobs) not in page
    session.expire_all()
    assert session.execute(select(Layer)).scalars().first() is None


def test_a_layer_upload_stores_names_and_props_without_control_characters(
    client, auth, session, factory, jobs
):
    factory.town()
    auth.login("admin")
    data = (
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"name": "城东\\u0007农贸市场", "类型": "农贸\\u001b市场"}, "geometry": '
        '{"type": "Point", "coordinates": [103.501, 22.7995]}}]}'
    ).encode()
    answer = client.post(
        "/grids/layers", data={"file": (io.BytesIO(data), "市场.geojson"), "kind": "pois"},
        headers={"Accept": "application/json"},
    )
    job = _wait(client, answer.get_json()["status_url"])
    assert job["state"] == "done", job
    session.expire_all()
    feature = session.execute(
        select(Feature).join(Layer).where(Layer.kind == "pois", Layer.active.is_(True))
    ).scalar_one()
    assert feature.name == "城东农贸市场"
    assert feature.props["类型"] == "农贸市场"


def test_unknown_or_malformed_job_token_is_404(client, auth, session, factory, jobs):
    factory.town()
    auth.login("admin")
    assert client.get("/admin/setup/layer-jobs/not-a-token").status_code == 404
    assert client.get("/admin/setup/layer-jobs/" + "a" * 24).status_code == 404
    page = client.get("/grids/layers?job=../../etc/passwd")
    assert page.status_code == 200 and "导入任务编号无效" in page.get_data(as_text=True)


def test_import_layer_addresses_and_buildings_feed_the_geocoder(runner, session, tmp_path):
    import geopandas as gpd
    from shapely.geometry import LineString, Point, box

    from app.services.grids.geocoding import geocoder_for

    roads = tmp_path / "道路.geojson"
    gpd.GeoDataFrame({"name": ["人民路"]}, geometry=[LineString([(117.20, 28.305),
                     (117.21, 28.305)])], crs=4326).to_file(roads)
    plates = tmp_path / "门牌.geojson"
    gpd.GeoDataFrame({"街路巷名": ["人民路"], "门牌号": ["23号"]},
                     geometry=[Point(117.2020, 28.3051)], crs=4326).to_file(plates)
    buildings = tmp_path / "建筑.geojson"
    gpd.GeoDataFrame({"名称": ["财富大厦"]}, geometry=[box(117.203, 28.306, 117.204, 28.307)],
                     crs=4326).to_file(buildings)
    for path, kind in ((roads, "roads"), (plates, "addresses"), (buildings, "buildings")):
        result = runner.invoke(args=["import-layer", str(path), "--kind", kind])
        assert result.exit_code == 0, result.output
    geocoder = geocoder_for(session)
    plate = geocoder.geocode_address("人民路23号门前")
    assert plate.method == "house_number" and plate.confidence == 0.95
    assert geocoder.geocode_address("财富大厦后面").method == "poi"
    checks = _by_key(run_setup_check(session))
    assert checks["addresses"].status == "ready" and checks["addresses"].count == 1


def _big_osm(path: Path, n: int = 60, per_block: int = 4) -> Path:
    """A street grid of n×n crossings with door-plated buildings (about 6.5 MB of XML)."""
    lon0, lat0, step = 117.20, 28.28, 0.0008
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n']
    nid, wid, grid = 1, 1, {}
    for r in range(n):
        for c in range(n):
            grid[r, c] = nid
            out.append(f'<node id="{nid}" version="1" lat="{lat0 + r * step:.7f}" '
                       f'lon="{lon0 + c * step:.7f}"/>\n')
            nid += 1
    for r in range(n):
        refs = "".join(f'<nd ref="{grid[r, c]}"/>' for c in range(n))
        out.append(f'<way id="{wid}" version="1">{refs}<tag k="highway" v="residential"/>'
                   f'<tag k="name" v="东{r}路"/></way>\n')
        wid += 1
    for c in range(n):
        refs = "".join(f'<nd ref="{grid[r, c]}"/>' for r in range(n))
        out.append(f'<way id="{wid}" version="1">{refs}<tag k="highway" v="residential"/>'
                   f'<tag k="name" v="北{c}街"/></way>\n')
        wid += 1
    d = step / 10
    for r in range(n - 1):
        for c in range(n - 1):
            for k in range(per_block):
                x, y = lon0 + c * step + (2 * k + 1) * d, lat0 + r * step + 2 * d
                ids = []
                for dx, dy in ((0, 0), (d, 0), (d, d), (0, d)):
                    out.append(f'<node id="{nid}" version="1" lat="{y + dy:.7f}" '
                               f'lon="{x + dx:.7f}"/>\n')
                    ids.append(nid)
                    nid += 1
                refs = "".join(f'<nd ref="{i}"/>' for i in [*ids, ids[0]])
                out.append(f'<way id="{wid}" version="1">{refs}<tag k="building" v="yes"/>'
                           f'<tag k="addr:street" v="东{r}路"/>'
                           f'<tag k="addr:housenumber" v="{c * per_block + k + 1}"/></way>\n')
                wid += 1
    out.append("</osm>\n")
    path.write_text("".join(out), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_6_mb_osm_upload_answers_at_once_and_finishes_in_the_background(
    client, auth, session, factory, jobs, tmp_path
):
    factory.town()
    big = _big_osm(tmp_path / "county.osm")
    assert big.stat().st_size > 6_000_000
    auth.login("admin")
    started = time.monotonic()
    answer = client.post(
        "/grids/layers",
        data={"file": (big.open("rb"), big.name), "kind": ""},
        headers={"Accept": "application/json"},
    )
    answered = time.monotonic() - started
    assert answer.status_code == 202
    url = answer.get_json()["status_url"]
    seen = {client.get(url).get_json()["state"]}
    job = _wait(client, url, timeout=300)
    finished = time.monotonic() - started
    assert job["state"] == "done", job
    assert job["layers"]["buildings"] == job["layers"]["addresses"] == 59 * 59 * 4
    # The request came back long before the import was done.
    assert answered < 3.0 and finished > 2 * answered, (answered, finished)
    assert seen & {"queued", "running"}


def test_old_job_files_are_purged_when_a_new_upload_starts(tmp_path):
    """Progress records and leftover uploads do not pile up under instance/jobs."""
    import os

    from app.services.grids.layer_jobs import purge_jobs

    old = tmp_path / "old.json"
    fresh = tmp_path / "fresh.json"
    old.write_text("{}")
    fresh.write_text("{}")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    assert purge_jobs(tmp_path) == 1
    assert not old.exists() and fresh.exists()
