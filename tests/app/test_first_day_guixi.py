"""The first day of a real county: from an empty database to placed, routed problems.

Guixi's own OpenStreetMap export (贵溪市城区, read in place from ../shared) goes through
the commands a county IT person types — ``init-db``, ``import-osm``, a boundary,
``make-grid --method block`` with no communities, ``activate-grid``, ``import-issues``
of a workbook written the way inspectors write it, ``report`` and ``check-setup`` — and
then through the web pages an admin clicks. Slow (a real extract, a real block grid).
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Issue, Unit, today_local
from tests.factories import SHARED_OSM

OSM_FILE = SHARED_OSM / "guixi.osm.gz"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not OSM_FILE.is_file(), reason=f"shared OSM data not at {SHARED_OSM}"),
]
COUNTY_CODE = "360681"  # 贵溪市 (GB/T 2260)

# (问题描述, 问题地点, 问题类别) as a prefecture cross-inspection sends them back: real
# Guixi streets, crossings and schools; level-1 and misspelt categories, an unknown one,
# a blank one, a paperwork problem with no place.
ROWS: list[tuple[str, str, str]] = [
    ("路口垃圾桶满溢，周边散落垃圾", "北大街与建设路交叉口东北角", "垃圾收运"),
    ("人行道有积存垃圾", "信州路与雄石路交叉口西南角", "环境卫生"),
    ("流动摊贩占道经营", "交通路与北大街交叉口", "占道经营"),
    ("电线杆乱贴小广告", "站前路与雄石路交叉口东南角", "乱贴乱画"),
    ("绿化带内有白色垃圾", "建设路与站前路交叉口西北角", "主次干道"),
    ("巷道路面破损积水", "西街与川心路交叉口", "背街小港"),
    ("墙面乱涂乱画", "复兴路与西街交叉口东北角", "乱贴乱画"),
    ("沿街店铺门前三包不落实", "永泰路与雄石路交叉口", "门前三包"),
    ("机动车乱停乱放", "交通路与信州路交叉口南侧", "其他问题"),
    ("路边堆放建筑垃圾", "建设路与贵溪大道交叉口", "环境卫生"),
    ("护栏破损未修复", "沿河路与站前路交叉口", ""),
    ("店外餐桌占道", "雄石路23号门前", "占道经营"),
    ("校门口流动摊点", "贵溪五中门口", "食品摊贩"),
    ("学校周边垃圾未清理", "贵溪市实验中学对面", "环境卫生"),
    ("健康教育宣传栏内容陈旧", "贵溪市第四中学北门", "健康教育"),
    ("围墙外杂草丛生", "第九中学旁", "背街小港"),
    ("公园内垃圾桶破损", "早闲公园内", "环境卫生"),
    ("办公区外乱堆杂物", "东门街道办事处旁", "其他问题"),
    ("城中村污水横流", "花园村", "城中村"),
    ("政府门前绿化带垃圾", "贵溪市人民政府门前", ""),
    ("巷内生活垃圾未及时清运", "川心路", "背街小巷"),
    ("交叉口东北角垃圾堆积", "建设路与信州路交叉口东北角", "环境卫生"),
    ("爱国卫生月活动档案资料不全", "", "爱国卫生组织管理"),
]


def _workbook(path: Path) -> Path:
    """Write the list the way inspectors do: a merged title, a two-row merged header."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "反馈问题"
    headers = ["序号", "问题描述", "问题地点", "问题类别", "发现时间"]
    ws.append(["鹰潭市创建国家卫生城市交叉检查反馈问题清单（贵溪市）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    ws.append(headers)
    ws.append([None] * len(headers))
    for col in range(1, len(headers) + 1):
        ws.merge_cells(start_row=2, start_column=col, end_row=3, end_column=col)
    found = today_local().replace(day=1).isoformat()
    for i, (description, place, category) in enumerate(ROWS, start=1):
        ws.append([i, description, place or None, category or None, found])
    wb.save(path)
    return path


def _run(runner, *args: str):
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, f"{' '.join(args)}\n{result.output}"
    return result


def _builtup_boundary(tmp_path: Path) -> Path:
    """The derived built-up polygon of the export (not an official boundary), alone."""
    data = json.loads((SHARED_OSM / "boundary.geojson").read_text(encoding="utf-8"))
    data["features"] = [f for f in data["features"] if f["properties"]["kind"] == "derived_builtup"]
    path = tmp_path / "建成区.geojson"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _check_problems(session) -> None:
    """The assertions of the issue (#11, 7) on whatever the import stored."""
    issues = session.execute(select(Issue).order_by(Issue.id)).scalars().all()
    by_description = {i.description: i for i in issues}
    # Every row kept: none rejected for its category (or anything else).
    assert len(issues) == len(ROWS), [i.description for i in issues]
    assert set(by_description) == {d for d, _, _ in ROWS}
    with_place = [by_description[d] for d, place, _ in ROWS if place]
    placed = [i for i in with_place if i.cell_id is not None and not i.needs_placement]
    missed = [(i.address, i.geocode_method, i.geocode_confidence) for i in with_place
              if i not in placed]
    assert len(placed) / len(with_place) >= 0.9, missed
    for issue in placed:
        code = issue.cell.code
        assert re.fullmatch(r"\d{15}", code), code
        assert code.startswith(COUNTY_CODE), code
        assert "000" not in (code[6:9], code[9:12], code[12:15]), (issue.address, code)
        assert issue.unit_id is not None, (issue.address, code)
    # Unknown or blank categories are kept as 待分类, with what the inspector wrote.
    for description, _, category in ROWS:
        issue = by_description[description]
        if category in ("其他问题", ""):
            assert issue.category_pending, (description, category)
            assert (issue.category_text or "") == category
    # The misspelt 背街小港 still finds 背街小巷; a level-1 name finds its level-1 class.
    lane = by_description["巷道路面破损积水"]
    assert lane.category is not None and lane.category.name == "背街小巷"
    env = by_description["人行道有积存垃圾"]
    assert env.category is not None and env.category.code.startswith("03")
    # The paperwork problem has no place and is kept, queued for nobody's map.
    paper = by_description["爱国卫生月活动档案资料不全"]
    assert paper.lon is None


def _no_phantom_unit(runner, session) -> None:
    month = today_local().strftime("%Y-%m")
    report = json.loads(_run(runner, "report", "--month", month, "--json").output)
    names = set(session.execute(select(Unit.name)).scalars())
    assert report["ranking"], report
    for row in report["ranking"]:
        assert "000" not in str(row["unit"]), row
        assert row["unit"] in names, row


def test_first_day_from_the_command_line(app, runner, session, tmp_path):
    app.config["COUNTY_CODE"] = COUNTY_CODE
    _run(runner, "init-db")
    osm = _run(runner, "import-osm", str(OSM_FILE)).output
    assert "道路 (roads): 176 个要素" in osm
    _run(runner, "import-layer", str(_builtup_boundary(tmp_path)), "--kind", "boundary")
    made = _run(runner, "make-grid", "--method", "block").output
    grid_id = made.strip().splitlines()[-1]
    assert grid_id.isdigit(), made
    _run(runner, "activate-grid", grid_id)
    summary = _run(runner, "import-issues", str(_workbook(tmp_path / "反馈问题清单.xlsx")))
    assert "rejected=0" in summary.output, summary.output
    session.expire_all()
    _check_problems(session)
    _no_phantom_unit(runner, session)
    setup = _run(runner, "check-setup").output
    assert re.search(r"^\[就绪\] 启用的网格 \(\d+\)", setup, re.M), setup
    assert re.search(r"^\[就绪\] 网格分配到责任单位", setup, re.M), setup
    assert "[就绪] 县级行政区划代码: 360681" in setup


def _wait_job(client, url: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).get_json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"layer import did not finish: {job}")


def test_first_day_through_the_web_pages(app, client, auth, runner, session, tmp_path):
    app.config["COUNTY_CODE"] = COUNTY_CODE
    app.config["JOB_DIR"] = str(tmp_path / "jobs")
    app.config["IMPORT_UPLOAD_DIR"] = str(tmp_path / "uploads")
    _run(runner, "init-db")
    _run(runner, "create-user", "chuangweiban", "--role", "admin", "--password", "Gx2026-first")
    assert auth.login("chuangweiban", "Gx2026-first").status_code == 302

    # The layer upload: the raw export, read in the background while the page polls.
    answer = client.post(
        "/grids/layers",
        data={"file": (io.BytesIO(OSM_FILE.read_bytes()), OSM_FILE.name), "kind": ""},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 202, answer.get_data(as_text=True)
    job = _wait_job(client, answer.get_json()["status_url"])
    assert job["state"] == "done", job
    assert job["layers"]["roads"] == 176 and job["layers"]["pois"] >= 13
    page = client.get("/grids/layers").get_data(as_text=True)
    assert "guixi.osm.gz 道路" in page
    # The same built-up outline as on the command line, as a plain form upload.
    outline = _builtup_boundary(tmp_path)
    sent = client.post(
        "/grids/layers",
        data={"file": (io.BytesIO(outline.read_bytes()), outline.name), "kind": "boundary"},
    )
    assert sent.status_code == 302
    token = sent.headers["Location"].split("job=")[1]
    job = _wait_job(client, f"/admin/setup/layer-jobs/{token}")
    assert job["state"] == "done" and job["layers"] == {"boundary": 1}, job

    # The grid page: build a block grid on the derived outline, save it, activate it.
    made = client.post("/grids/new", data={"method": "block", "action": "save"})
    assert made.status_code == 302, made.get_data(as_text=True)[:2000]
    from app.models import GridLayer

    grid = session.execute(select(GridLayer).order_by(GridLayer.id.desc())).scalars().first()
    assert client.post(f"/grids/{grid.id}/activate").status_code == 302

    # The import: upload, preview (columns detected under the merged header), confirm.
    book = _workbook(tmp_path / "反馈问题清单.xlsx")
    upload = client.post(
        "/issues/import/", data={"file": (io.BytesIO(book.read_bytes()), book.name)}
    )
    assert upload.status_code == 302, upload.get_data(as_text=True)[:2000]
    preview_url = upload.headers["Location"]
    preview = client.get(preview_url)
    assert preview.status_code == 200
    shown = preview.get_data(as_text=True)
    assert "北大街与建设路交叉口东北角" in shown and "问题地点" in shown
    fields = ["seq", "description", "address", "category", "found_at"]
    confirm = client.post(
        preview_url,
        data={**{f"col_{i}": f for i, f in enumerate(fields)}, "source": "州级交叉检查"},
    )
    assert confirm.status_code == 302, confirm.get_data(as_text=True)[:2000]
    result = client.get(confirm.headers["Location"]).get_data(as_text=True)
    assert "新导入" in result and "有错误未导入" in result
    session.expire_all()
    _check_problems(session)
    setup = client.get("/admin/setup/").get_data(as_text=True)
    assert 'id="check-grid" data-status="ready"' in setup
