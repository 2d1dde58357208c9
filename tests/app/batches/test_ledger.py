"""整改台账: the batch's ledger as Excel (embedded thumbnails) and Word (the report)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from app.config import current_settings
from app.models import Batch, Issue, Setting, today_local
from app.services.issues import photos as photo_service
from app.services.issues.intake import transition
from tests.factories import east_point, jpeg_bytes, west_point


@pytest.fixture(autouse=True)
def _own_photo_dir(app, tmp_path):
    app.config["PHOTO_DIR"] = str(tmp_path / "photos")


def _photo(session, user, issue, kind: str, colour: str = "red"):
    upload = photo_service.PhotoUpload(filename=f"{kind}.jpg", data=jpeg_bytes(colour=colour))
    return photo_service.save_photo(session, user, issue, upload, kind=kind, settings=current_settings())


@pytest.fixture()
def world(factory, session):
    town = factory.town()
    users = town["users"]
    session.add(Setting(key="county", value={"county_name": "云岭县"}))
    batch = Batch(name="州级交叉检查反馈问题清单", source="州级交叉检查")
    session.add(batch)
    session.flush()
    rows = []
    # 序号 as the prefecture numbered them: 10 sorts after 2, not before.
    for seq, (lon, lat) in zip(("2", "10", "1"), (west_point(0), west_point(1), east_point(0)),
                               strict=True):
        issue = factory.issue(users["inspector"], lon=lon, lat=lat,
                              description=f"=HYPERLINK(\"http://x\") 问题{seq}",
                              source="州级交叉检查")
        issue.batch_id, issue.batch_seq = batch.id, seq
        rows.append(issue)
    session.commit()
    first = rows[0]
    _photo(session, users["inspector"], first, "before")
    transition(session, users["admin"], first.id, "dispatch")
    _photo(session, users["west"], first, "after", colour="green")
    first.measures = "清运垃圾，墙面复刷"
    transition(session, users["west"], first.id, "submit")
    transition(session, users["inspector"], first.id, "verify_ok")
    rows[1].deadline = today_local() - timedelta(days=2)
    session.commit()
    return {**town, "batch": batch, "issues": rows}


def test_xlsx_has_rows_in_list_order_real_images_and_print_setup(world, client, auth):
    auth.login("admin")
    response = client.get(f"/batches/{world['batch'].id}/ledger.xlsx")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert f"{today_local():%Y%m%d}.xlsx" in disposition
    wb = load_workbook(io.BytesIO(response.data))
    ws = wb.active
    assert ws["A1"].value == "云岭县关于州级交叉检查反馈问题整改情况的报告"
    assert [c.value for c in ws[3]][:8] == ["序号", "问题描述", "问题地点", "责任单位", "整改措施",
                                           "整改时限", "完成时间", "状态"]
    assert [ws.cell(row=r, column=1).value for r in (4, 5, 6)] == ["1", "2", "10"]
    row2 = [c.value for c in ws[5]]
    assert row2[4] == "清运垃圾，墙面复刷" and row2[7] == "已销号" and row2[6]
    # User text that looks like a formula stays text.
    assert ws.cell(row=5, column=2).data_type == "s"
    assert ws.cell(row=5, column=2).value.startswith("=HYPERLINK")
    images = ws._images
    assert len(images) == 2  # the before and after of 序号 2
    anchors = sorted((i.anchor._from.row, i.anchor._from.col) for i in images)
    assert anchors == [(4, 8), (4, 9)]  # zero-based: row 5, columns I and J
    from PIL import Image

    for image in images:
        with Image.open(io.BytesIO(image._data())) as pic:
            assert pic.width > 50
    assert ws.page_setup.orientation == "landscape"
    assert str(ws.page_setup.paperSize) == str(ws.PAPERSIZE_A4)
    assert ws.print_title_rows == "$3:$3"
    assert "逾期 1 个" in ws["A2"].value


def test_docx_report_table_photos_and_signature(world, client, auth):
    auth.login("leader")
    response = client.get(f"/batches/{world['batch'].id}/ledger.docx")
    assert response.status_code == 200
    doc = Document(io.BytesIO(response.data))
    texts = [p.text for p in doc.paragraphs]
    assert texts[0] == "云岭县关于州级交叉检查反馈问题整改情况的报告"
    assert any("共反馈问题 3 个，已整改销号 1 个" in t and "逾期 1 个" in t for t in texts)
    today = today_local()
    assert any(t.startswith("单位盖章") for t in texts)
    assert any(f"{today.year} 年 {today.month} 月 {today.day} 日" in t for t in texts)
    table = doc.tables[0]
    assert len(table.rows) == 1 + 3
    assert [table.rows[r].cells[0].text for r in (1, 2, 3)] == ["1", "2", "10"]
    pictured = table.rows[2]
    blips = pictured._tr.xpath(".//*[local-name()='blip']")
    assert len(blips) == 2  # before and after side by side
    assert not table.rows[1]._tr.xpath(".//*[local-name()='blip']")
    assert table.rows[0]._tr.xpath(".//*[local-name()='tblHeader']")
    section = doc.sections[0]
    assert section.page_width > section.page_height  # landscape
    assert abs(section.page_width.cm - 29.7) < 0.1
    assert doc.styles["Normal"].font.name == "仿宋"


def test_unit_head_gets_only_their_share(world, client, auth, session):
    auth.login("west")
    wb = load_workbook(io.BytesIO(client.get(
        f"/batches/{world['batch'].id}/ledger.xlsx").data))
    ws = wb.active
    assert "西区单位" in ws["A1"].value
    units = {ws.cell(row=r, column=4).value for r in range(4, ws.max_row + 1)}
    assert units == {"西区单位"} and ws.max_row == 5
    doc = Document(io.BytesIO(client.get(f"/batches/{world['batch'].id}/ledger.docx").data))
    assert len(doc.tables[0].rows) == 1 + 2
    assert "东区" not in "\n".join(c.text for r in doc.tables[0].rows for c in r.cells)
    # An admin may ask for one unit's part; the east head cannot ask for the west's.
    auth.login("admin")
    east = world["east"].id
    ws = load_workbook(io.BytesIO(client.get(
        f"/batches/{world['batch'].id}/ledger.xlsx?unit={east}").data)).active
    assert ws.max_row == 4 and ws.cell(row=4, column=4).value == "东区单位"
    auth.login("east")
    west = world["west"].id
    assert client.get(f"/batches/{world['batch'].id}/ledger.docx?unit={west}").status_code == 404


def test_unit_head_with_nothing_in_the_batch_gets_404(world, client, auth, session):
    east_issue = session.execute(
        select(Issue).where(Issue.batch_id == world["batch"].id, Issue.batch_seq == "1")
    ).scalar_one()
    east_issue.unit_id = world["west"].id
    session.commit()
    auth.login("east")
    assert client.get(f"/batches/{world['batch'].id}/ledger.xlsx").status_code == 404
    assert client.get(f"/batches/{world['batch'].id}").status_code == 404


# ---------------------------------------------------------------------- review of issue #12


def _recheck(session, admin, batch_id, rows, name="rc.xlsx"):
    from openpyxl import Workbook

    from app.services.batches import recheck

    wb = Workbook()
    ws = wb.active
    ws.append(["序号", "问题描述", "复核", "复核意见"])
    for row in rows:
        ws.append(list(row))
    out = io.BytesIO()
    wb.save(out)
    result = recheck.import_recheck(session, admin, batch_id, out.getvalue(), name)
    session.commit()
    return result


def _summary(client, batch_id, query=""):
    ws = load_workbook(io.BytesIO(client.get(
        f"/batches/{batch_id}/ledger.xlsx{query}").data)).active
    doc = Document(io.BytesIO(client.get(f"/batches/{batch_id}/ledger.docx{query}").data))
    return ws["A2"].value, doc.paragraphs[1].text


def test_recheck_line_counts_the_ledgers_own_problems_over_every_upload(
    world, client, auth, session
):
    """#2 and #3: a unit's ledger speaks of its own 复核 only; counts span all uploads."""
    admin, batch_id = world["users"]["admin"], world["batch"].id
    _recheck(session, admin, batch_id, [("1", "", "未通过", "东区没改")], "rc_4.xlsx")
    _recheck(session, admin, batch_id, [("2", "", "通过", "")], "rc_5.xlsx")
    auth.login("west")
    for text in _summary(client, batch_id):
        assert "州级复核 1 个，通过 1 个，未通过 0 个" in text
    auth.login("east")
    for text in _summary(client, batch_id):
        assert "州级复核 1 个，通过 0 个，未通过 1 个" in text
    auth.login("admin")
    for text in _summary(client, batch_id):
        assert "州级复核 2 个，通过 1 个，未通过 1 个" in text
    for text in _summary(client, batch_id, f"?unit={world['west'].id}"):
        assert "州级复核 1 个，通过 1 个，未通过 0 个" in text


def test_summary_counts_each_status_under_its_own_label(world, client, auth, session):
    """#14: 已上报 problems are 未派遣, not 整改中."""
    auth.login("admin")
    xlsx, docx = _summary(client, world["batch"].id)
    for text in (xlsx, docx):
        assert "共反馈问题 3 个，已整改销号 1 个(按期完成 1 个)，未派遣 2 个，逾期 1 个" in text
        assert "整改中" not in text
    users, issue = world["users"], world["issues"][1]
    transition(session, users["admin"], issue.id, "dispatch")
    transition(session, users["west"], issue.id, "start")
    world["issues"][2].status = "rejected"
    session.commit()
    xlsx, _ = _summary(client, world["batch"].id)
    assert "整改中 1 个" in xlsx and "不予立案 1 个" in xlsx and "未派遣" not in xlsx


def test_title_does_not_double_the_county_and_ascii_name_is_readable(world, client, auth, session):
    """#14: 县住房和城乡建设局 is not prefixed with 云岭县; the ASCII fallback is readable."""
    world["west"].name = "县住房和城乡建设局"
    world["east"].name = "云岭县城市管理局"
    session.commit()
    auth.login("west")
    response = client.get(f"/batches/{world['batch'].id}/ledger.xlsx")
    ws = load_workbook(io.BytesIO(response.data)).active
    assert ws["A1"].value == "县住房和城乡建设局关于州级交叉检查反馈问题整改情况的报告"
    day = f"{today_local():%Y%m%d}"
    disposition = response.headers["Content-Disposition"]
    assert (f'filename="ledger-batch{world["batch"].id}-unit{world["west"].id}-{day}.xlsx"'
            in disposition)
    assert "filename*=UTF-8''" in disposition and "%E6%95%B4%E6%94%B9" in disposition  # 整改
    auth.login("east")
    doc = Document(io.BytesIO(client.get(f"/batches/{world['batch'].id}/ledger.docx").data))
    assert doc.paragraphs[0].text == "云岭县城市管理局关于州级交叉检查反馈问题整改情况的报告"
    auth.login("admin")
    response = client.get(f"/batches/{world['batch'].id}/ledger.docx")
    assert (f'filename="ledger-batch{world["batch"].id}-{day}.docx"'
            in response.headers["Content-Disposition"])


def _portrait(session, world):
    """A portrait before photo (137×320) on 序号 10."""
    users, issue = world["users"], world["issues"][1]
    upload = photo_service.PhotoUpload(filename="tall.jpg",
                                       data=jpeg_bytes(size=(137, 320), colour="blue"))
    photo_service.save_photo(session, users["inspector"], issue, upload, kind="before", settings=current_settings())
    session.commit()


def test_docx_has_real_column_widths_and_thumbnails_fit_them(world, client, auth, session):
    """#13: fixed widths summing to the text width; pictures inside their column, ≤ 3 cm."""
    from docx.shared import Cm

    from app.services.batches.ledger import DOCX_WIDTHS_CM

    _portrait(session, world)
    auth.login("admin")
    doc = Document(io.BytesIO(client.get(f"/batches/{world['batch'].id}/ledger.docx").data))
    section = doc.sections[0]
    text_width = section.page_width - section.left_margin - section.right_margin
    table = doc.tables[0]
    assert not table.autofit
    grid = [int(c.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}w"))
            for c in table._tbl.xpath("./w:tblGrid/w:gridCol")]
    assert len(grid) == 10 and grid[0] < grid[1] / 3  # 序号 is narrow, 问题描述 wide
    assert abs(sum(grid) * 635 - text_width) < Cm(0.05)  # twips → EMU
    for row in table.rows:
        assert [round(c.width.cm, 1) for c in row.cells] == list(DOCX_WIDTHS_CM)
    extents = table._tbl.xpath(".//wp:inline/wp:extent")
    assert len(extents) == 3  # 序号 2: before and after; 序号 10: the portrait before
    for extent in extents:
        cx, cy = int(extent.get("cx")), int(extent.get("cy"))
        assert cx <= Cm(DOCX_WIDTHS_CM[8] - 0.3) and cy <= Cm(3.0) + 1
    tall = max(extents, key=lambda e: int(e.get("cy")))
    assert abs(int(tall.get("cx")) / int(tall.get("cy")) - 137 / 320) < 0.02


def test_xlsx_thumbnails_fit_the_cell(world, client, auth, session):
    """#13: a portrait thumbnail fits its column and its 90 pt row (no spill below)."""
    from app.services.batches.ledger import ROW_HEIGHT_PT, WIDTHS

    _portrait(session, world)
    auth.login("admin")
    ws = load_workbook(io.BytesIO(client.get(
        f"/batches/{world['batch'].id}/ledger.xlsx").data)).active
    row_px = ROW_HEIGHT_PT * 96 / 72
    col_px = WIDTHS[8] * 7 + 5
    assert len(ws._images) == 3
    for image in ws._images:
        assert image.height <= row_px and image.width <= col_px
    tall = max(ws._images, key=lambda i: i.height)
    assert tall.height > tall.width and abs(tall.width / tall.height - 137 / 320) < 0.03
