"""整改台账: the ledger of a feedback batch the county sends back, as Excel and as Word.

One row per problem in the prefecture's own numbering (序号), with the before and after
photos side by side. A unit head gets only their own share (the same access scope as the
batch page). Every user-typed text goes through ``clean_text``; spreadsheet text cells are
stored as strings (never formulas) through ``app.services.core.xlsx.text_cell``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import quote

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from PIL import Image as PILImage
from sqlalchemy import select

from app.models import STATUS_LABELS, Batch, Issue, Photo, Setting, Unit, User, today_local
from app.services.batches.queries import batch_issues, check_unit_id, get_batch, summarize
from app.services.core import access
from app.services.core.errors import NotFoundError
from app.services.core.text import clean_text
from app.services.core.xlsx import text_cell
from app.services.issues.photos import thumb_path

COLUMNS = ("序号", "问题描述", "问题地点", "责任单位", "整改措施", "整改时限", "完成时间", "状态",
           "整改前照片", "整改后照片")
# Column widths in Excel characters; the photo columns hold a thumbnail about 4 cm wide.
WIDTHS = (6, 34, 20, 16, 30, 11, 11, 8, 22, 22)
ROW_HEIGHT_PT = 90  # rows with a picture are this tall (points)
# The Excel picture box: a 22-character column is about 159 px, a 90 pt row 120 px;
# a thumbnail fits inside both with a small margin (a portrait photo no longer spills).
THUMB_BOX_PX = (150, 112)
# Word: real column widths (cm) summing to the A4-landscape text width (29.7 - 2 × 1.8).
DOCX_WIDTHS_CM = (1.0, 4.6, 2.8, 2.3, 3.8, 1.9, 1.9, 1.4, 3.2, 3.2)
DOCX_CELL_PAD_CM = 0.4  # Word's default left + right cell margins (0.19 cm each), rounded up
DOCX_THUMB_MAX_H_CM = 3.0
BODY_FONT = "仿宋"
TITLE_FONT = "宋体"


@dataclass
class LedgerRow:
    """One problem of the ledger with the files of its first before/after photos."""

    seq: str
    description: str
    address: str
    unit: str
    measures: str
    deadline: str
    finished: str
    status: str
    before: list[Path] = field(default_factory=list)
    after: list[Path] = field(default_factory=list)


# How the summary names each status that has problems (the pages' words; 已上报 is
# "not dispatched yet" from the office's point of view).
SUMMARY_LABELS = (("reported", "未派遣"), ("dispatched", "已派遣"), ("rectifying", "整改中"),
                  ("submitted", "待核查"))


@dataclass
class Ledger:
    title: str
    batch: Batch
    unit: str | None
    rows: list[LedgerRow]
    counts: dict
    today: date
    unit_id: int | None = None

    @property
    def summary(self) -> str:
        """One paragraph: totals, each status under its own label, overdue and the 复核.

        The 复核 part counts the ledger's own problems' results (every upload), so a
        unit's ledger speaks only of that unit's problems.
        """
        c = self.counts
        s = c["by_status"]
        text = (
            f"{clean_text(self.batch.source or '')}共反馈问题 {c['total']} 个，"
            f"已整改销号 {s.get('closed', 0)} 个(按期完成 {c['closed_on_time']} 个)"
        )
        for key, label in SUMMARY_LABELS:
            if s.get(key):
                text += f"，{label} {s[key]} 个"
        text += f"，逾期 {c['overdue']} 个"
        for key in ("rejected", "duplicate"):
            if s.get(key):
                text += f"，{STATUS_LABELS[key]} {s[key]} 个"
        recheck = c.get("recheck") or {}
        if recheck.get("rows"):
            text += (f"；州级复核 {recheck['rows']} 个，通过 {recheck['passed']} 个，"
                     f"未通过 {recheck['failed']} 个")
        return text + "。"


def county_name(session) -> str:
    """The county's name as the office set it (Setting "county"), else 本县."""
    row = session.get(Setting, "county")
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    return clean_text(str(value.get("county_name") or value.get("name") or "本县"))


def _photo_files(photos: list[Photo], kind: str, root: Path) -> list[Path]:
    out = []
    for photo in sorted((p for p in photos if p.kind == kind), key=lambda p: p.id):
        for rel in (thumb_path(photo.path), photo.path):
            path = root / rel
            if path.is_file():
                out.append(path)
                break
    return out


def build_ledger(session, user: User, batch_id: int, *, photo_dir: Path | str,
                 unit_id: int | None = None, today: date | None = None) -> Ledger:
    """Collect the ledger of a batch (or of one unit's share) the user may see.

    Parameters
    ----------
    photo_dir
        Where the photo service stored the files (``PHOTO_DIR``).
    unit_id
        Only this unit's problems; a unit head always gets their own share only.
    """
    access.require(user, "export")
    batch = get_batch(session, user, batch_id)
    unit_name = None
    if unit_id:
        check_unit_id(unit_id)
        unit = access.get_unit(session, user, unit_id)
        unit_name = unit.name
    elif access.is_unit_scoped(user) and user.unit_id:
        unit_name = session.get(Unit, user.unit_id).name
    issues = batch_issues(session, user, batch.id, unit_id=unit_id)
    if unit_id and not issues:
        msg = f"反馈批次 {batch_id} 中没有单位 {unit_name} 的问题"
        raise NotFoundError(msg)
    today = today or today_local()
    root = Path(photo_dir)
    rows = [_row(issue, root) for issue in issues]
    source = clean_text(batch.source or "")
    title = f"{report_author(county_name(session), unit_name)}关于{source}反馈问题整改情况的报告"
    scoped_unit = unit_id or (user.unit_id if access.is_unit_scoped(user) else None)
    return Ledger(title=title, batch=batch, unit=unit_name, rows=rows,
                  counts=summarize(issues, today=today), today=today, unit_id=scoped_unit)


def report_author(county: str, unit: str | None) -> str:
    """Who the report is from: the county, then the unit unless its name already says so.

    "县住房和城乡建设局" and "云岭县住建局" are not prefixed again ("云岭县县住房…").
    """
    unit = clean_text(unit or "")
    if not unit:
        return county
    if unit.startswith(("县", county)):
        return unit
    return f"{county}{unit}"


def _row(issue: Issue, root: Path) -> LedgerRow:
    finished = issue.closed_at.date().isoformat() if issue.closed_at else ""
    return LedgerRow(
        seq=clean_text(issue.batch_seq or str(issue.id)),
        description=clean_text(issue.description),
        address=clean_text(issue.address or ""),
        unit=clean_text(issue.unit.name if issue.unit else "未分配"),
        measures=clean_text(issue.measures or ""),
        deadline=issue.deadline.isoformat() if issue.deadline else "",
        finished=finished,
        status=STATUS_LABELS.get(issue.status, issue.status),
        before=_photo_files(issue.photos, "before", root),
        after=_photo_files(issue.photos, "after", root),
    )


def ledger_filename(ledger: Ledger, ext: str) -> str:
    """整改台账-<batch>[-unit]-YYYYMMDD.<ext>, dated by the county's day."""
    name = clean_text(ledger.batch.name or f"批次{ledger.batch.id}")
    for bad in '\\/:*?"<>|':
        name = name.replace(bad, "_")
    unit = f"-{ledger.unit}" if ledger.unit else ""
    return f"整改台账-{name[:60]}{unit}-{ledger.today:%Y%m%d}.{ext}"


def ascii_filename(ledger: Ledger, ext: str) -> str:
    """The plain-ASCII fallback name: ``ledger-batch1[-unit3]-YYYYMMDD.<ext>``."""
    unit = f"-unit{ledger.unit_id}" if ledger.unit_id else ""
    return f"ledger-batch{ledger.batch.id}{unit}-{ledger.today:%Y%m%d}.{ext}"


def content_disposition(ledger: Ledger, ext: str) -> str:
    """``attachment`` with the readable ASCII name and the Chinese name as UTF-8 ``filename*``."""
    return (f'attachment; filename="{ascii_filename(ledger, ext)}"; '
            f"filename*=UTF-8''{quote(ledger_filename(ledger, ext), safe='')}")


# ---------------------------------------------------------------------- Excel


def _thumbnail(path: Path, max_w: int, max_h: int) -> tuple[io.BytesIO, int, int]:
    """A small JPEG of a stored photo that fits a ``max_w`` × ``max_h`` px box (aspect kept).

    Returns the JPEG and its width and height in pixels; never upscales.
    """
    with PILImage.open(path) as image:
        image = image.convert("RGB")
        ratio = min(max_w / max(image.width, 1), max_h / max(image.height, 1), 1.0)
        size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
        image = image.resize(size)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
    out.seek(0)
    return out, size[0], size[1]


def ledger_xlsx(ledger: Ledger) -> bytes:
    """The ledger as an A4-landscape workbook with embedded thumbnails."""
    wb = Workbook()
    ws = wb.active
    ws.title = "整改台账"
    last = get_column_letter(len(COLUMNS))
    text_cell(ws, 1, 1, ledger.title)
    ws.merge_cells(f"A1:{last}1")
    ws["A1"].font = Font(name=TITLE_FONT, size=16, bold=True)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 30
    text_cell(ws, 2, 1, ledger.summary)
    ws.merge_cells(f"A2:{last}2")
    ws["A2"].alignment = Alignment(wrap_text=True, vertical="center")
    ws["A2"].font = Font(name=BODY_FONT, size=11)
    ws.row_dimensions[2].height = 36
    thin = Side(style="thin", color="666666")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    for col, (label, width) in enumerate(zip(COLUMNS, WIDTHS, strict=True), start=1):
        cell = text_cell(ws, 3, col, label)
        cell.font = Font(name=TITLE_FONT, bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = border
        ws.column_dimensions[get_column_letter(col)].width = width
    body = Font(name=BODY_FONT, size=10)
    wrap = Alignment(wrap_text=True, vertical="center")
    for offset, row in enumerate(ledger.rows):
        r = 4 + offset
        values = (row.seq, row.description, row.address, row.unit, row.measures, row.deadline,
                  row.finished, row.status)
        for col, value in enumerate(values, start=1):
            cell = text_cell(ws, r, col, value)
            cell.font, cell.alignment, cell.border = body, wrap, border
        for col, files in ((9, row.before), (10, row.after)):
            cell = ws.cell(row=r, column=col)
            cell.border = border
            if files:
                data, width, height = _thumbnail(files[0], *THUMB_BOX_PX)
                image = Image(data)
                image.width, image.height = width, height
                image.anchor = f"{get_column_letter(col)}{r}"
                ws.add_image(image)
        if row.before or row.after:
            ws.row_dimensions[r].height = ROW_HEIGHT_PT
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "3:3"
    ws.freeze_panes = "A4"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------- Word


def _font(run, name: str, size: float | None = None, bold: bool = False) -> None:
    """Set a run's Latin and East-Asian font by name (Word reads w:eastAsia for CJK)."""
    run.font.name = name
    rpr = run._element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), name)
    if size:
        run.font.size = Pt(size)
    run.font.bold = bold


def _repeat_header(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    header = tr_pr.makeelement(qn("w:tblHeader"), {qn("w:val"): "true"})
    tr_pr.append(header)


def _docx_picture(path: Path, column_cm: float) -> tuple:
    """A thumbnail and its size that fit a Word column: its width, at most 3 cm tall."""
    data, width, height = _thumbnail(path, 320, 320)
    box_w = column_cm - DOCX_CELL_PAD_CM
    scale = min(box_w / width, DOCX_THUMB_MAX_H_CM / height)
    return data, Cm(width * scale), Cm(height * scale)


def ledger_docx(ledger: Ledger) -> bytes:
    """The ledger as the report such ledgers circulate as (A4 landscape, 仿宋/宋体)."""
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.font.size = Pt(12)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21.0)
    for side in ("left_margin", "right_margin"):
        setattr(section, side, Cm(1.8))
    for side in ("top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.6))

    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _font(title.add_run(ledger.title), TITLE_FONT, 18, bold=True)
    intro = doc.add_paragraph()
    intro.paragraph_format.first_line_indent = Pt(24)
    _font(intro.add_run(ledger.summary + "现将整改情况报告如下："), BODY_FONT, 14)

    table = doc.add_table(rows=1, cols=len(COLUMNS))
    table.style = "Table Grid"
    table.autofit = False  # fixed layout: Word keeps the widths below
    widths = tuple(Cm(w) for w in DOCX_WIDTHS_CM)
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width  # the tblGrid/gridCol widths
    for cell, label, width in zip(table.rows[0].cells, COLUMNS, widths, strict=True):
        cell.width = width
        paragraph = cell.paragraphs[0]
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        _font(paragraph.add_run(label), TITLE_FONT, 10.5, bold=True)
    _repeat_header(table.rows[0])
    for row in ledger.rows:
        cells = table.add_row().cells
        values = (row.seq, row.description, row.address, row.unit, row.measures, row.deadline,
                  row.finished, row.status)
        for cell, value, width in zip(cells, values, widths, strict=False):
            cell.width = width
            _font(cell.paragraphs[0].add_run(value), BODY_FONT, 10)
        for cell, files, width in ((cells[8], row.before, widths[8]),
                                   (cells[9], row.after, widths[9])):
            cell.width = width
            if files:
                run = cell.paragraphs[0].add_run()
                run.add_picture(*_docx_picture(files[0], width.cm))
            else:
                _font(cell.paragraphs[0].add_run("—"), BODY_FONT, 10)

    doc.add_paragraph()
    for text in ("单位盖章：", f"日期：{ledger.today.year} 年 {ledger.today.month} 月 "
                 f"{ledger.today.day} 日"):
        paragraph = doc.add_paragraph()
        paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        _font(paragraph.add_run(text), BODY_FONT, 14)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def units_in(session, user: User, batch_id: int) -> list[Unit]:
    """Units with problems in the batch, for choosing one unit's ledger (scoped)."""
    stmt = access.scope_issues(
        select(Issue.unit_id).where(Issue.batch_id == batch_id, Issue.unit_id.is_not(None)), user
    ).distinct()
    ids = list(session.execute(stmt).scalars())
    if not ids:
        return []
    return list(session.execute(select(Unit).where(Unit.id.in_(ids)).order_by(Unit.name))
                .scalars())
