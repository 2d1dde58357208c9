"""The monthly 通报 workbook, laid out the way county offices circulate it.

Sheet 1 ranks the responsible units under a merged title and subtitle; further sheets rank
sub-districts and communities and break deductions down by level-1 category. Headers are
filled and frozen, every cell has a border, and pages print A4 landscape fitted to width.
"""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from app.services.assessment.months import month_label
from app.services.assessment.rules import FORMULA_LABELS
from app.services.core.xlsx import text_cell

RANKING_HEADERS = [
    "排名",
    "责任单位",
    "受理问题数",
    "已销号",
    "按期销号率",
    "返工率",
    "反弹率",
    "超期未销号",
    "扣分",
    "得分",
    "名次变化",
    "红黑榜",
]
RANKING_WIDTHS = [7, 30, 11, 9, 11, 9, 9, 11, 9, 9, 10, 9]
LIST_LABELS = {"red": "红榜", "black": "黑榜"}

_THIN = Side(style="thin", color="000000")
BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
HEADER_FILL = PatternFill("solid", fgColor="D9D9D9")
RED_FILL = PatternFill("solid", fgColor="F8CBAD")
BLACK_FILL = PatternFill("solid", fgColor="404040")
TITLE_FONT = Font(name="宋体", size=16, bold=True)
BODY_FONT = Font(name="宋体", size=11)
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)


def movement_text(row: dict) -> str:
    """↑2 / ↓1 / — (unchanged) / 新 (not ranked last month)."""
    move = row.get("movement")
    if move is None:
        return "新"
    if move > 0:
        return f"↑{move}"
    if move < 0:
        return f"↓{-move}"
    return "—"


def _date_cn(iso: str | None) -> str:
    if not iso:
        return ""
    day = datetime.fromisoformat(iso)
    return f"{day.year}年{day.month}月{day.day}日"


def subtitle(report: dict) -> str:
    period = report["period"]
    text = f"考核期间：{_date_cn(period['start'])}—{_date_cn(period['end'])}"
    if report.get("published"):
        text += f"　　发布日期：{_date_cn(report['published_at'])}"
    else:
        text += f"　　未发布（实时计算，截至{_date_cn(period['as_of'])}）"
    return text


def _print_setup(ws: Worksheet, header_row: int) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def _title(ws: Worksheet, title: str, sub: str, ncols: int) -> None:
    last = get_column_letter(ncols)
    ws.merge_cells(f"A1:{last}1")
    ws.merge_cells(f"A2:{last}2")
    text_cell(ws, 1, 1, title)
    ws["A1"].font = TITLE_FONT
    ws["A1"].alignment = CENTER
    ws.row_dimensions[1].height = 36
    text_cell(ws, 2, 1, sub)
    ws["A2"].font = BODY_FONT
    ws["A2"].alignment = CENTER
    ws.row_dimensions[2].height = 22


def _header(ws: Worksheet, row: int, headers: list[str], widths: list[int]) -> None:
    for col, (text, width) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = text_cell(ws, row, col, text)
        cell.font = Font(name="黑体", size=11, bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = CENTER
        cell.border = BORDER
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.row_dimensions[row].height = 30
    ws.freeze_panes = ws.cell(row=row + 1, column=1)


def _ranking_sheet(ws: Worksheet, report: dict, title: str, name_header: str) -> None:
    headers = list(RANKING_HEADERS)
    headers[1] = name_header
    _title(ws, title, subtitle(report), len(headers))
    _header(ws, 3, headers, RANKING_WIDTHS)
    row_no = 4
    for row in report["ranking"]:
        values = [
            row["rank"],
            row["unit"],
            row["received"],
            row["closed"],
            row["on_time_rate"],
            row["rework_rate"],
            row["recurrence_rate"],
            row["overdue_open"],
            row["deductions"],
            row["score"],
            movement_text(row),
            LIST_LABELS.get(row.get("list"), ""),
        ]
        for col, value in enumerate(values, start=1):
            cell = text_cell(ws, row_no, col, value)
            cell.border = BORDER
            cell.font = BODY_FONT
            cell.alignment = LEFT if col == 2 else CENTER
            if col in (5, 6, 7):
                cell.number_format = "0.0%"
            elif col in (9, 10):
                cell.number_format = "0.00"
        if row.get("list") == "red":
            for col in range(1, len(values) + 1):
                ws.cell(row=row_no, column=col).fill = RED_FILL
        elif row.get("list") == "black":
            for col in range(1, len(values) + 1):
                ws.cell(row=row_no, column=col).fill = BLACK_FILL
                ws.cell(row=row_no, column=col).font = Font(
                    name="宋体", size=11, bold=True, color="FFFFFF"
                )
        if row.get("interview"):
            text_cell(ws, row_no, 12, "黑榜·约谈")
        row_no += 1
    _notes(ws, report, row_no + 1, len(headers))
    _print_setup(ws, 3)


def _notes(ws: Worksheet, report: dict, row_no: int, ncols: int) -> None:
    last = get_column_letter(ncols)
    formula = report["formula"]
    rule = report["lists_rule"]
    lines = [
        "红榜：" + ("、".join(report["red_list"]) or "无"),
        "黑榜：" + ("、".join(report["black_list"]) or "无"),
    ]
    if report.get("interviews"):
        lines.append(
            f"连续 {rule['interview_after']} 个月上黑榜，约谈主要负责人："
            + "、".join(report["interviews"])
        )
    lines.append(
        "计分办法：得分 = "
        + f"{formula['base']:g} − 扣分；扣分 = "
        + "；".join(
            f"{FORMULA_LABELS[k]} {formula[k]:g}" for k in formula if k not in ("base", "floor")
        )
    )
    lines.append(
        "按期销号率 = 本月到期问题中按期销号数 ÷ 本月到期问题数；返工率 = 本月核查退回的问题数 ÷ "
        "本月提交核查的问题数；反弹率 = 本月受理问题中反弹问题数 ÷ 本月受理问题数。"
    )
    for offset, text in enumerate(lines):
        ws.merge_cells(f"A{row_no + offset}:{last}{row_no + offset}")
        cell = text_cell(ws, row_no + offset, 1, text)
        cell.font = BODY_FONT
        cell.alignment = LEFT
        ws.row_dimensions[row_no + offset].height = 30 if len(text) > 60 else 18


def _category_sheet(ws: Worksheet, report: dict, title: str) -> None:
    headers = ["类别编码", "一级类别", "问题数", "扣分合计", "扣分最多的单位 (前五)"]
    widths = [10, 24, 10, 11, 70]
    _title(ws, title, subtitle(report), len(headers))
    _header(ws, 3, headers, widths)
    row_no = 4
    for cat in report["category_deductions"]:
        top = "、".join(f"{g['unit']} {g['points']:g}" for g in cat["by_group"][:5])
        for col, value in enumerate(
            [cat["code"], cat["name"], cat["count"], cat["points"], top], start=1
        ):
            cell = text_cell(ws, row_no, col, value)
            cell.border = BORDER
            cell.font = BODY_FONT
            cell.alignment = LEFT if col in (2, 5) else CENTER
        row_no += 1
    total = [
        ("合计", None),
        ("", None),
        (sum(c["count"] for c in report["category_deductions"]), None),
        (round(sum(c["points"] for c in report["category_deductions"]), 2), None),
        ("", None),
    ]
    for col, (value, _) in enumerate(total, start=1):
        cell = text_cell(ws, row_no, col, value)
        cell.border = BORDER
        cell.font = Font(name="宋体", size=11, bold=True)
        cell.alignment = CENTER
    _print_setup(ws, 3)


def build_workbook(reports: dict[str, dict]) -> bytes:
    """Write the 通报 for a month; ``reports`` maps scope -> get_report() result."""
    unit = reports["unit"]
    title = unit["title"]
    wb = Workbook()
    ws = wb.active
    ws.title = "单位排名"
    _ranking_sheet(ws, unit, title, "责任单位")
    if "subdistrict" in reports:
        _ranking_sheet(
            wb.create_sheet("街道乡镇排名"),
            reports["subdistrict"],
            f"{title}（街道、乡镇）",
            "街道(乡镇)",
        )
    if "community" in reports:
        _ranking_sheet(
            wb.create_sheet("社区排名"), reports["community"], f"{title}（社区）", "社区"
        )
    _category_sheet(wb.create_sheet("类别扣分"), unit, f"{title}（分类别扣分）")
    wb.properties.title = title
    wb.properties.creator = "创卫网格 SaniGrid"
    buffer = BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def workbook_filename(report: dict) -> str:
    return f"{report['county']}{month_label(report['month'])}考核通报.xlsx"
