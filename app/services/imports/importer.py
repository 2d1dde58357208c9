"""Spreadsheet intake: inspection feedback lists (.xlsx, .xls, .csv) → problems.

Lists sent back by prefecture and province inspections are messy: a merged title row
above the headers, blank rows, full-width digits, dates typed in four ways, deadlines
written as "7个工作日" or "立行立改", coordinates from 高德 (GCJ-02) noted in 备注. This
module finds the header row, maps the Chinese headers, validates every row and feeds the
valid ones through the one intake service (``create_issue``) in one transaction.

All-or-nothing by default: if any row is wrong nothing is written and the rows are
listed; ``skip_errors`` imports the valid rows and reports the rejected ones. A row's
``external_ref`` is a hash of its content, so importing the same list again (even
re-saved) creates no duplicates.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select

from app.models import SOURCES, Batch, Issue, Photo, User, today_local
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.text import clean_text
from app.services.issues.intake import (
    IssueInput,
    check_in_county,
    create_issue,
    route_issue,
    validate_input,
)
from app.services.tables.workdays import WorkCalendar, load_calendar

# Canonical field → (Chinese label, accepted headers). Order is the preview's order.
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "seq": ("序号", ("序号", "编号", "no", "no.")),
    "description": ("问题描述", ("问题描述", "存在问题", "问题", "问题内容")),
    "address": ("问题地点", ("问题地点", "位置", "地点", "地址", "问题位置")),
    "category": ("问题类别", ("问题类别", "类别", "问题类型", "分类")),
    "unit": ("责任单位", ("责任单位", "整改单位", "责任部门")),
    "found_at": ("发现时间", ("发现时间", "检查时间", "时间", "日期")),
    "deadline": ("整改时限", ("整改时限", "时限", "整改期限")),
    "lon": ("经度", ("经度", "lon", "lng", "longitude")),
    "lat": ("纬度", ("纬度", "lat", "latitude")),
    "source": ("来源", ("来源", "问题来源")),
    "remark": ("备注", ("备注",)),
    "coord_system": ("坐标系", ("坐标系", "坐标系统", "坐标类型")),
}
FIELD_LABELS = {key: label for key, (label, _) in FIELDS.items()}
EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".csv")
HEADER_SCAN_ROWS = 10
PREVIEW_ROWS = 10
ERROR_COLUMN = "错误原因"
INVALID_FILE = "不是有效的 Excel/CSV 文件"
DEFAULT_SOURCE = "州级交叉检查"

# A workbook is a zip of XML: refuse one that would expand past these before openpyxl parses
# it (a 0.8 MB "zip bomb" of 122 MB XML held a worker for minutes at 1.7 GB).
MAX_XLSX_UNCOMPRESSED = 60 * 1024 * 1024
MAX_XLSX_RATIO = 100
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_IMMEDIATE = ("立行立改", "立即整改", "即知即改", "立即", "马上整改")
_CN_DIGITS = "零〇一二两三四五六七八九十百"


# ---------------------------------------------------------------------- reading files


@dataclass
class Sheet:
    """One worksheet's raw cells: the header row found and the data rows below it."""

    filename: str
    headers: list[str]
    header_row: int  # the spreadsheet's own 1-based row number
    rows: list[tuple[int, list]]  # (spreadsheet row number, values by column)
    mapping: dict[str, int]  # field → column index, as detected
    title: str | None = None  # the title row above the headers ("…反馈问题清单")
    images: dict[int, list[bytes]] = field(default_factory=dict)  # row number → pictures
    sha256: str | None = None  # of the file's bytes: the same file finds the same batch

    @property
    def unmapped(self) -> list[str]:
        used = set(self.mapping.values())
        return [h for i, h in enumerate(self.headers) if i not in used and h]


def _text(value) -> str:
    """Cell value as normalised text: NFKC folds full-width digits and punctuation; control
    and invisible characters are dropped (``clean_text``)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str):
        return unicodedata.normalize("NFKC", str(value)).strip()
    if value.isascii() and value.isprintable():
        return value.strip()  # the common case (numbers, codes) needs no cleaning
    return unicodedata.normalize("NFKC", clean_text(value, multiline=False)).strip()


def _header_key(value) -> str:
    text = _text(value).lower()
    # "经度(WGS84)", "问题描述*" and line breaks inside header cells are common.
    text = re.sub(r"[(\[（【].*?[)\]）】]", "", text)
    return re.sub(r"[\s*:：]", "", text)


def match_header(value) -> str | None:
    """Return the field a header cell names, or None."""
    key = _header_key(value)
    if not key:
        return None
    for name, (_, synonyms) in FIELDS.items():
        if key in synonyms:
            return name
    # Longer forms such as "问题地点描述" or "整改时限要求": the longest synonym wins.
    best = None
    for name, (_, synonyms) in FIELDS.items():
        for syn in synonyms:
            # Only longer Chinese names by prefix: "no" must not claim "note", nor
            # "问题" a title row such as "问题清单".
            if syn.isascii() or len(syn) < 3 or len(key) > 12 or not key.startswith(syn):
                continue
            if best is None or len(syn) > best[1]:
                best = (name, len(syn))
    return best[0] if best else None


def detect_mapping(headers: list) -> dict[str, int]:
    """Map fields to column indexes; the first column naming a field keeps it."""
    mapping: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = match_header(header)
        if name and name not in mapping:
            mapping[name] = index
    return mapping


def _sniff(data: bytes, filename: str) -> str:
    """Return "xlsx", "xls" or "csv" from the content; refuse anything else."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in EXTENSIONS:
        msg = f"{INVALID_FILE}: {filename or '(无文件名)'} (只接受 .xlsx、.xls、.csv)"
        raise ValidationError(msg)
    if not data:
        msg = f"{INVALID_FILE}: {filename} 是空文件"
        raise ValidationError(msg)
    if data.startswith(_ZIP_MAGIC):
        return "xlsx"
    if data.startswith(_OLE_MAGIC):
        return "xls"
    if suffix == ".csv" and b"\x00" not in data[:4096]:
        return "csv"
    msg = f"{INVALID_FILE}: {filename}"
    raise ValidationError(msg)


def check_zip_size(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = MAX_XLSX_UNCOMPRESSED,
    max_ratio: float = MAX_XLSX_RATIO,
) -> None:
    """Refuse a workbook whose members would expand too far, reading only the zip directory.

    Parameters
    ----------
    data
        The .xlsx bytes.
    filename
        Named in the message.
    max_bytes, max_ratio
        Limits on the members' uncompressed total and on its ratio to the compressed total.
    """
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        msg = f"{INVALID_FILE}: {filename}"
        raise ValidationError(msg) from None
    total = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members) or 1
    mb = total / (1024 * 1024)
    if total > max_bytes:
        msg = (
            f"{filename}: 工作簿解压后约 {mb:.0f} MB，超过上限 {max_bytes // (1024 * 1024)} MB，"
            "已拒绝 (疑似压缩炸弹；很大的清单请另存为 CSV 后导入)"
        )
        raise ValidationError(msg)
    if total / packed > max_ratio and total > 1024 * 1024:
        msg = (
            f"{filename}: 工作簿压缩比异常 ({total / packed:.0f} 倍，上限 {max_ratio:.0f} 倍)，"
            "疑似压缩炸弹，已拒绝"
        )
        raise ValidationError(msg)


def _grid_xlsx(data: bytes, filename: str, images: list | None = None) -> list[list[list]]:
    """Each worksheet's cells; ``images`` (when given) gets each sheet's pictures by row."""
    from openpyxl import load_workbook

    check_zip_size(data, filename)
    try:
        wb = load_workbook(io.BytesIO(data), data_only=True)
    except Exception:  # a zip that is not a workbook (docx, jar, broken file)
        msg = f"{INVALID_FILE}: {filename}"
        raise ValidationError(msg) from None
    formulas = _uncached_formulas(data) if _has_formulas(data) else {}
    sheets = []
    for n, ws in enumerate(wb.worksheets):
        grid = [list(row) for row in ws.iter_rows(values_only=True)]
        for (r, c), text in formulas.get(n, {}).items():
            if r < len(grid) and c < len(grid[r]) and grid[r][c] is None:
                grid[r][c] = text
        merges = [(r.min_row, r.min_col, r.max_row, r.max_col) for r in ws.merged_cells.ranges]
        sheets.append(_fill_merges(grid, merges))
        if images is not None:
            images.append(_sheet_images(ws))
    return sheets


def _has_formulas(data: bytes) -> bool:
    """Whether any worksheet of the workbook holds a formula (``<f>`` element)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                if member.startswith("xl/worksheets/") and member.endswith(".xml"):
                    with zf.open(member) as part:
                        while chunk := part.read(1 << 20):
                            if b"<f>" in chunk or b"<f " in chunk:
                                return True
    except (zipfile.BadZipFile, OSError, KeyError):
        return False
    return False


_HYPERLINK = re.compile(r'\s*HYPERLINK\(\s*"([^"]*)"\s*(?:,\s*"([^"]*)"\s*)?\)\s*', re.I)


def formula_text(formula: str) -> str:
    """The text a formula cell stands for when it has no computed value.

    ``=HYPERLINK("http://…","人民路23号")`` gives its label (or the address when it has
    none); any other formula gives its text without the leading ``=``.
    """
    body = formula[1:] if formula.startswith("=") else formula
    if m := _HYPERLINK.fullmatch(body):
        return m[2] or m[1]
    return body


def _uncached_formulas(data: bytes) -> dict[int, dict[tuple[int, int], str]]:
    """Formula text (without the ``=``) of every formula cell, by sheet and 0-based cell.

    A list saved by a program that does not compute formulas (WPS exports, generators,
    ``=HYPERLINK("…","某某路")`` typed into 问题地点) has formulas without a cached value;
    read with ``data_only`` they are empty, and the row would lose its place or words.
    Their text is kept instead: a person can read it, and the row is kept, not dropped
    (a text written to a spreadsheet later is guarded by ``safe_cell``). Read-only mode
    streams the sheets, so a second pass costs little memory.
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:  # the data_only pass read it; a failure here only loses the fallback
        return {}
    out: dict[int, dict[tuple[int, int], str]] = {}
    try:
        for n, ws in enumerate(wb.worksheets):
            cells: dict[tuple[int, int], str] = {}
            for r, row in enumerate(ws.iter_rows(min_row=1, min_col=1, values_only=True)):
                for c, value in enumerate(row):
                    if isinstance(value, str) and value.startswith("=") and len(value) > 1:
                        cells[(r, c)] = formula_text(value)
            out[n] = cells
    finally:
        wb.close()
    return out


def _sheet_images(ws) -> dict[int, list[bytes]]:
    """Pictures pasted into a worksheet, by the 1-based row their top-left corner sits in."""
    found: dict[int, list[bytes]] = {}
    for image in getattr(ws, "_images", []):
        anchor = getattr(image, "anchor", None)
        start = getattr(anchor, "_from", None)
        if start is None:
            continue  # an absolutely placed picture belongs to no row
        try:
            data = image._data()
        except Exception:  # a broken picture part; the row itself still imports
            continue
        found.setdefault(int(start.row) + 1, []).append(data)
    return found


def _grid_xls(data: bytes, filename: str) -> list[list[list]]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, formatting_info=True)
    except Exception:
        try:
            book = xlrd.open_workbook(file_contents=data)
        except Exception:
            msg = f"{INVALID_FILE}: {filename}"
            raise ValidationError(msg) from None
    sheets = []
    for sh in book.sheets():
        grid = []
        for r in range(sh.nrows):
            row = []
            for c in range(sh.ncols):
                cell = sh.cell(r, c)
                if cell.ctype == xlrd.XL_CELL_DATE:
                    row.append(xlrd.xldate_as_datetime(cell.value, book.datemode))
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    row.append(None)
                else:
                    row.append(cell.value)
            grid.append(row)
        # xlrd ranges are 0-based, end-exclusive.
        merges = [(r0 + 1, c0 + 1, r1, c1) for r0, r1, c0, c1 in getattr(sh, "merged_cells", [])]
        sheets.append(_fill_merges(grid, merges))
    return sheets


def _grid_csv(data: bytes, filename: str) -> list[list[list]]:
    text = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        msg = f"{INVALID_FILE}: {filename} (无法识别文字编码，请另存为 UTF-8 或 GBK 编码的 CSV)"
        raise ValidationError(msg)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        # newline="" hands line ends to the csv module, which knows quoted ones.
        return [[list(row) for row in csv.reader(io.StringIO(text, newline=""), dialect)]]
    except csv.Error as exc:
        msg = f"{INVALID_FILE}: {filename} (CSV 格式有误: {exc})"
        raise ValidationError(msg) from None


def _fill_merges(grid: list[list], merges: list[tuple[int, int, int, int]]) -> list[list]:
    """Copy a vertically merged cell's value into every row it spans.

    Lists merge 责任单位 or 发现时间 over several problems; each problem needs the value.
    Merges within one row (titles, footnotes) are left alone.
    """
    for min_row, min_col, max_row, max_col in merges:
        if max_row == min_row or min_row > len(grid):
            continue
        value = grid[min_row - 1][min_col - 1] if min_col - 1 < len(grid[min_row - 1]) else None
        for r in range(min_row, min(max_row, len(grid)) + 1):
            row = grid[r - 1]
            for c in range(min_col, max_col + 1):
                while len(row) < c:
                    row.append(None)
                row[c - 1] = value
    return grid


def _find_header(grid: list[list]) -> tuple[int, dict[str, int]] | None:
    """Index of the row among the first ten naming the most known headers."""
    best = None
    for index, row in enumerate(grid[:HEADER_SCAN_ROWS]):
        mapping = detect_mapping(row)
        if mapping and (best is None or len(mapping) > len(best[1])):
            best = (index, mapping)
    return best


def _synonyms(name: str) -> str:
    return "/".join(FIELDS[name][1][:4])


def load_sheet(data: bytes, filename: str) -> Sheet:
    """Read a workbook or CSV and find its header row; raise naming what is wrong."""
    kind = _sniff(data, filename)
    pictures: list[dict[int, list[bytes]]] = []
    if kind == "xlsx":
        every = _grid_xlsx(data, filename, pictures)
    else:
        every = {"xls": _grid_xls, "csv": _grid_csv}[kind](data, filename)
    keep = [i for i, g in enumerate(every) if any(_text(v) for row in g for v in row)]
    grids = [every[i] for i in keep]
    if not grids:
        msg = f"文件 {filename} 中没有数据 (空工作簿)"
        raise ValidationError(msg)
    found = [(g, hit) for g in grids if (hit := _find_header(g)) and "description" in hit[1]]
    if not found:
        hit = _find_header(grids[0])
        seen = [FIELD_LABELS[k] for k in (hit[1] if hit else {})]
        msg = (
            f"{filename}: 前 {HEADER_SCAN_ROWS} 行中找不到表头「问题描述」"
            f"(可写作 {_synonyms('description')})"
        )
        if seen:
            msg += f"；已识别的列: {'、'.join(seen)}"
        raise ValidationError(msg)
    grid, (index, mapping) = found[0]
    position = next(i for i, g in enumerate(grids) if g is grid)
    images = pictures[keep[position]] if pictures else {}
    width = max(len(r) for r in grid)
    headers = [_text(v) for v in grid[index]] + [""] * (width - len(grid[index]))
    header_keys = [_header_key(h) for h in headers]
    rows = []
    for offset, row in enumerate(grid[index + 1 :], start=index + 2):
        row = list(row) + [None] * (width - len(row))
        if _is_header_repeat(row, header_keys):
            continue  # a header row repeated further down (pasted lists)
        rows.append((offset, row))
    sheet = Sheet(
        filename=filename,
        headers=headers,
        header_row=index + 1,
        rows=rows,
        mapping=mapping,
        title=_title_of(grid[:index]),
        images=images,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    check_mapping(sheet, mapping)
    return sheet


def _title_of(rows: list[list]) -> str | None:
    """The list's title: the first row above the headers holding a single text."""
    for row in rows:
        texts = list(dict.fromkeys(_text(v) for v in row if _text(v)))
        if len(texts) == 1 and not texts[0].replace(".", "").isdigit():
            return texts[0][:200]
    return None


def _is_header_repeat(row: list, header_keys: list[str]) -> bool:
    """Whether a data row repeats the header; stops at the first differing cell, since
    normalising every cell of a 100,000-row list would cost seconds."""
    return len(row) == len(header_keys) and all(
        _may_match(v, key) and _header_key(v) == key
        for v, key in zip(row, header_keys, strict=True)
    )


def _may_match(value, key: str) -> bool:
    """Cheap necessary test: ASCII cells (serial numbers, coordinates) keep an ASCII key,
    so they cannot repeat a Chinese header; saves normalising them one by one."""
    if not key or key.isascii():
        return True
    if isinstance(value, str):
        return not value.isascii()
    return not isinstance(value, (int, float))


def check_mapping(sheet: Sheet, mapping: dict[str, int]) -> None:
    """Refuse a mapping without a description or any place column, or out of range."""
    for name, index in mapping.items():
        if name not in FIELDS:
            msg = f"未知字段: {name}"
            raise ValidationError(msg)
        if not 0 <= index < len(sheet.headers):
            msg = f"「{FIELD_LABELS[name]}」对应的列 {index + 1} 不存在"
            raise ValidationError(msg)
    if "description" not in mapping:
        msg = f"缺少必需的列「问题描述」(可写作 {_synonyms('description')})"
        raise ValidationError(msg)
    if "address" not in mapping and not {"lon", "lat"} <= mapping.keys():
        msg = f"缺少必需的列「问题地点」(可写作 {_synonyms('address')})，或「经度」和「纬度」两列"
        raise ValidationError(msg)


def _read_bytes(path_or_bytes, filename: str | None) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return bytes(path_or_bytes), filename or "upload"
    path = Path(path_or_bytes)
    return path.read_bytes(), filename or path.name


def _records(sheet: Sheet, mapping: dict[str, int]) -> list[dict]:
    records = []
    for number, values in sheet.rows:
        record = {name: values[index] for name, index in mapping.items()}
        # A row with nothing but a serial number (or a footnote in its cell) is blank.
        if not any(_text(v) for k, v in record.items() if k != "seq"):
            continue
        record["_row"] = number
        records.append(record)
    return records


def read_table(
    path_or_bytes, filename: str | None = None, *, mapping: dict[str, int] | None = None
) -> list[dict]:
    """Read a feedback list into one dict per non-empty row (fields + ``_row``)."""
    data, filename = _read_bytes(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    if mapping is not None:
        check_mapping(sheet, mapping)
    return _records(sheet, mapping if mapping is not None else sheet.mapping)


def preview_table(
    path_or_bytes,
    filename: str | None = None,
    *,
    mapping: dict[str, int] | None = None,
    limit: int = PREVIEW_ROWS,
) -> dict:
    """Detected mapping, unmapped columns and the first rows, for the user to confirm."""
    data, filename = _read_bytes(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    mapping = mapping if mapping is not None else sheet.mapping
    check_mapping(sheet, mapping)
    first = []
    for number, values in sheet.rows:
        if not any(_text(v) for v in values):
            continue
        first.append({"row": number, "values": [_display(v) for v in values]})
        if len(first) >= limit:
            break
    records = _records(sheet, mapping)
    return {
        "filename": filename,
        "header_row": sheet.header_row,
        "headers": sheet.headers,
        "mapping": mapping,
        "columns": {index: name for name, index in mapping.items()},
        "unmapped": [
            h for i, h in enumerate(sheet.headers) if h and i not in set(mapping.values())
        ],
        "rows": first,
        "total": len(records),
    }


def _display(value) -> str:
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%d")
            if value.time() == datetime.min.time()
            else (value.strftime("%Y-%m-%d %H:%M"))
        )
    if isinstance(value, date):
        return value.isoformat()
    return _text(value)


# ---------------------------------------------------------------------- parsing values


def parse_date(value, *, field_name: str, today: date | None = None) -> date | None:
    """Parse the date forms lists use; raise naming the field and the value."""
    if value is None or _text(value) == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # An Excel serial day number (CSV exports, cells formatted as 常规).
        if 20_000 <= value <= 80_000:
            return date(1899, 12, 30) + timedelta(days=int(value))
        if 19_000_101 <= value <= 29_991_231:
            value = str(int(value))
    text = _text(value).replace(" ", "")
    today = today or today_local()
    try:
        if m := re.fullmatch(r"(\d{4})[./\-年](\d{1,2})[./\-月](\d{1,2})日?(?:\D.*)?", text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := re.fullmatch(r"(\d{1,2})月(\d{1,2})日?(?:\D.*)?", text):
            return date(today.year, int(m[1]), int(m[2]))
    except ValueError:
        pass  # 2026.13.40: fall through to the message naming it
    msg = f"{field_name} 无法识别为日期: {_text(value)!r} (如 2026-10-28、2026年10月28日)"
    raise ValidationError(msg)


# A list may be dated by a clock a day ahead of the county's (another time zone, a
# late-evening entry); anything later is a typo (2030 for 2026) and would push the
# problem's deadline years ahead.
FUTURE_TOLERANCE = timedelta(days=1)


def parse_found_date(value, *, field_name: str, today: date | None = None) -> date | None:
    """发现时间 as a date, refused when it lies after the county's today (+1 day).

    Parameters
    ----------
    value
        The cell's value (text, date, datetime or an Excel serial number).
    field_name
        The field as the message names it (with the row: "第5行: 发现时间").
    today
        The county's date (default ``today_local()``).

    Returns
    -------
    date or None
        None for an empty cell.

    Raises
    ------
    ValidationError
        When the value is no date, or a date in the future.
    """
    today = today or today_local()
    found = parse_date(value, field_name=field_name, today=today)
    if found is not None and found > today + FUTURE_TOLERANCE:
        msg = f"{field_name} {found.isoformat()} 晚于今天 ({today.isoformat()})"
        raise ValidationError(msg)
    return found


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    import cn2an

    return int(cn2an.cn2an(text.replace("两", "二"), "smart"))


def parse_deadline(value, found: date, calendar: WorkCalendar, *, field_name: str) -> date | None:
    """整改时限 as a date: 立行立改, N个工作日, N日内, or a date (never before ``found``)."""
    if value is None or _text(value) == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1000:
        return calendar.add_workdays(found, int(value))
    text = _text(value).replace(" ", "")
    if any(word in text for word in _IMMEDIATE):
        return found
    if re.fullmatch(r"\d{1,3}", text):
        return calendar.add_workdays(found, int(text))
    digits = rf"(\d+|[{_CN_DIGITS}]+)"
    # "2026年11月15日" is a date, not "15日" of working days: dates are tried first.
    looks_like_date = re.search(r"\d{4}[./\-年]|月", text)
    if not looks_like_date and (m := re.search(digits + r"个?(?:工作日|工作天|日|天)", text)):
        return calendar.add_workdays(found, _number(m[1]))
    try:
        deadline = parse_date(value, field_name=field_name)
    except ValidationError:
        msg = f"{field_name} 无法识别: {_text(value)!r} (可写 立行立改、7个工作日、7日内 或日期)"
        raise ValidationError(msg) from None
    if deadline < found:
        msg = f"{field_name} {deadline.isoformat()} 早于发现时间 {found.isoformat()}"
        raise ValidationError(msg)
    return deadline


def coord_system_of(record: dict) -> str:
    """GCJ-02 / BD-09 when 坐标系 or 备注 says the point came from 高德/腾讯 or 百度."""
    text = (_text(record.get("coord_system")) + " " + _text(record.get("remark"))).lower()
    if "百度" in text or "bd" in text:
        return "bd09"
    if any(word in text for word in ("高德", "腾讯", "微信", "gcj", "火星")):
        return "gcj02"
    return "wgs84"


def _seq_key(value) -> str:
    return _text(value)


def _norm_text(value) -> str:
    return re.sub(r"\s+", "", _text(value))


def row_ref(record: dict, found: date | None) -> str:
    """The import key: the same row of the same list hashes alike even when re-saved."""
    parts = [
        _seq_key(record.get("seq")),
        _norm_text(record.get("description")),
        _norm_text(record.get("address")),
        found.isoformat() if found else "",
    ]
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"import:{digest}"


# ---------------------------------------------------------------------- importing


@dataclass
class ImportResult:
    """What happened to each row of one import."""

    filename: str
    total: int = 0
    imported: int = 0
    placed: int = 0
    queued: int = 0
    skipped: int = 0
    valid: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)
    issue_ids: list[int] = field(default_factory=list)
    issue_rows: list[int] = field(default_factory=list)  # spreadsheet row of each issue_ids
    aborted: bool = False  # errors and no skip_errors: nothing was written
    dry_run: bool = False
    batch_id: int | None = None
    batch_name: str | None = None
    pending: int = 0  # 待分类: the category matched nothing
    by_unit_source: dict[str, int] = field(default_factory=dict)  # list/category/cell/…
    conflicts: int = 0  # the list named a unit the rules would not choose
    photos: int = 0
    photo_errors: list[tuple[int, str]] = field(default_factory=list)
    dispatched: int | None = None
    dispatch_error: str | None = None

    def summary(self) -> str:
        return (
            f"imported={self.imported} placed={self.placed} queued={self.queued} "
            f"rejected={len(self.rejected)} skipped={self.skipped}"
        )

    def to_dict(self) -> dict:
        return {
            "filename": self.filename,
            "total": self.total,
            "imported": self.imported,
            "placed": self.placed,
            "queued": self.queued,
            "skipped": self.skipped,
            "valid": self.valid,
            "rejected": [list(r) for r in self.rejected],
            "skipped_rows": [list(r) for r in self.skipped_rows],
            "aborted": self.aborted,
            "dry_run": self.dry_run,
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "pending": self.pending,
            "by_unit_source": dict(self.by_unit_source),
            "conflicts": self.conflicts,
            "photos": self.photos,
            "photo_errors": [list(r) for r in self.photo_errors],
            "dispatched": self.dispatched,
            "dispatch_error": self.dispatch_error,
        }


@dataclass
class _Prepared:
    row: int
    ref: str
    data: IssueInput
    seq: str | None = None
    listed: str | None = None


MISSING_DESCRIPTION = "（清单未填写问题描述）"


def describe_row(description: str, *, category: object, address: object, has_point: bool) -> str:
    """The row's 问题描述; a row with a place but no words keeps the category and place.

    Lists sometimes leave 问题描述 empty and put everything in 问题类别 and 地点: such a row
    is still a problem at a place, so it is kept under a visible marker; only a row with
    neither words nor place is unusable (and rejected by the intake's check).
    """
    if description:
        return description
    address_text = clean_text(address, multiline=False)
    if not (address_text or has_point):
        return ""
    parts = [t for t in (clean_text(category, multiline=False), address_text) if t]
    return MISSING_DESCRIPTION + (" " + " ".join(parts) if parts else "")


def _prepare(
    session, record: dict, *, source: str, calendar: WorkCalendar, filename: str, matcher=None
) -> _Prepared:
    """Turn one row into an IssueInput, raising ValidationError naming row and field."""
    row = record["_row"]
    where = f"第{row}行: "
    found = parse_found_date(record.get("found_at"), field_name=f"{where}发现时间")
    deadline = parse_deadline(
        record.get("deadline"), found or today_local(), calendar, field_name=f"{where}整改时限"
    )
    lon, lat = record.get("lon"), record.get("lat")
    remark = _text(record.get("remark"))
    data = IssueInput(
        description=describe_row(
            clean_text(record.get("description")), category=record.get("category"),
            address=record.get("address"),
            has_point=_text(lon) != "" and _text(lat) != ""),
        category=_text(record.get("category")) or None,
        address=clean_text(record.get("address"), multiline=False) or None,
        lon=_text(lon) if isinstance(lon, str) else lon,
        lat=_text(lat) if isinstance(lat, str) else lat,
        coord_system=coord_system_of(record),
        source=_text(record.get("source")) or source,
        found_at=datetime.combine(found, datetime.min.time()) if found else None,
        deadline=deadline,
        unit_name=_text(record.get("unit")) or None,
        external_ref=row_ref(record, found),
        extra={"note": f"导入自 {filename} 第{row}行" + (f"；备注: {remark}" if remark else "")},
    )
    # The checks create_issue would make, run first so that no row is written when
    # another row is wrong (all-or-nothing without savepoints).
    clean = validate_input(session, data, where=where, **({"matcher": matcher} if matcher else {}))
    if clean["lon"] is not None:
        check_in_county(session, clean["lon"], clean["lat"], field_name=f"{where}经纬度")
    return _Prepared(
        row=row,
        ref=data.external_ref,
        data=data,
        seq=batch_seq_of(record),
        listed=clean_text(record.get("unit"), max_len=200) or None,
    )


def batch_seq_of(record: dict) -> str:
    """The row's place in its list: the 序号 column when given, else the row number."""
    seq = _text(record.get("seq"))
    return (seq or str(record["_row"]))[:20]


def _existing_refs(session, refs: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        found |= set(
            session.execute(
                select(Issue.external_ref).where(Issue.external_ref.in_(chunk))
            ).scalars()
        )
    return found


def check_source(source: str | None) -> str:
    """The list's default source; refuse names outside the source table."""
    source = (source or DEFAULT_SOURCE).strip()
    if source not in SOURCES:
        msg = f"来源 无法识别: {source!r} (可选: {'、'.join(SOURCES)})"
        raise ValidationError(msg)
    return source


def import_sheet(
    session,
    user: User | None,
    sheet: Sheet,
    *,
    mapping: dict[str, int] | None = None,
    source: str | None = DEFAULT_SOURCE,
    skip_errors: bool = False,
    geocoder=None,
    dry_run: bool = False,
    bulk: bool | None = None,
    bulk_threshold: int | None = None,
    received_on: date | None = None,
) -> ImportResult:
    """Validate every row, then create the valid ones through ``create_issue``.

    Writes happen only in the caller's transaction (flushed, never committed): the
    caller commits, or rolls back for a dry run. When a row is wrong and ``skip_errors``
    is false, nothing is written at all and ``aborted`` is set.

    Every import is a feedback batch (``Batch``, found again by the file's SHA-256): each
    issue gets ``batch_id`` and ``batch_seq`` (序号, else the row number), follows the
    list's 责任单位 where it names a known unit (``route_issue``), and gets the pictures
    pasted into its row as 整改前 photos.

    A list longer than ``bulk_threshold`` rows (default
    ``bulk_import.BULK_THRESHOLD``) with coordinate columns takes the bulk path, which
    stores the same result column by column; ``bulk`` forces (True) or forbids (False) it.
    """
    from app.services.core import access
    from app.services.tables.categories import CategoryMatcher
    from app.services.tables.unit_names import UnitMatcher

    if user is not None:
        access.require(user, "import")
    source = check_source(source)
    mapping = mapping if mapping is not None else sheet.mapping
    check_mapping(sheet, mapping)
    records = _records(sheet, mapping)
    result = ImportResult(filename=sheet.filename, total=len(records), dry_run=dry_run)
    if not records:
        msg = f"{sheet.filename}: 表头 (第{sheet.header_row}行) 下面没有问题记录"
        raise ValidationError(msg)
    from app.services.imports import bulk as bulk_import

    threshold = bulk_import.BULK_THRESHOLD if bulk_threshold is None else bulk_threshold
    if bulk or (bulk is None and bulk_import.wants_bulk(records, mapping, threshold=threshold)):
        batch = open_batch(
            session, user, sheet=sheet, source=_batch_source(records, source),
            received_on=received_on,
        )
        result = bulk_import.import_records_bulk(
            session, user, records, filename=sheet.filename, source=source,
            skip_errors=skip_errors, geocoder=geocoder, dry_run=dry_run, batch_id=batch.id,
        )
        return _finish_import(session, sheet, batch, result)
    calendar = load_calendar(session)
    categories = CategoryMatcher(session)
    prepared: list[_Prepared] = []
    for record in records:
        try:
            prepared.append(
                _prepare(
                    session, record, source=source, calendar=calendar,
                    filename=sheet.filename, matcher=categories,
                )
            )
        except ValidationError as exc:
            result.rejected.append((record["_row"], str(exc)))
    existing = _existing_refs(session, [p.ref for p in prepared])
    seen: dict[str, int] = {}
    todo = []
    for item in prepared:
        if item.ref in existing:
            result.skipped_rows.append((item.row, "已导入过 (跳过)"))
        elif item.ref in seen:
            result.skipped_rows.append((item.row, f"与第{seen[item.ref]}行重复 (跳过)"))
        else:
            seen[item.ref] = item.row
            todo.append(item)
    result.skipped = len(result.skipped_rows)
    result.valid = len(todo)
    if result.rejected and not skip_errors:
        result.aborted = True
        return result
    batch = open_batch(
        session, user, sheet=sheet, source=_batch_source(records, source),
        received_on=received_on, existing_refs=existing if not todo else None,
        create=bool(todo),
    )
    if todo and geocoder is None:
        from app.services.grids.geocoding import geocoder_for

        geocoder = geocoder_for(session)
    units = UnitMatcher(session)
    for item in todo:
        issue = create_issue(
            session,
            user,
            item.data,
            calendar=calendar,
            geocoder=geocoder,
            where=f"第{item.row}行: ",
            matcher=categories,
            via="import",
            # An inspection's list carries its own dates; only an admin imports (above).
            trusted_import=user is None or user.role == "admin",
        )
        issue.batch_id, issue.batch_seq = batch.id, item.seq
        if item.listed:
            route_issue(session, issue, listed=item.listed, matcher=units)
        result.imported += 1
        if issue.needs_placement:
            result.queued += 1
        else:
            result.placed += 1
        result.issue_ids.append(issue.id)
        result.issue_rows.append(item.row)
    session.flush()
    return _finish_import(session, sheet, batch, result)


def _batch_source(records: list[dict], default: str) -> str:
    """The batch's source: what most rows' 来源 say (when known), else the form's choice."""
    from collections import Counter

    counts = Counter(_text(r.get("source")) for r in records if _text(r.get("source")))
    for text, _ in counts.most_common():
        if text in SOURCES:
            return text
    return default


# A script or style element goes with its content; any other tag leaves its text.
_TAG = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<[^>]*>", re.I | re.S)
# Characters Windows refuses in a file name: never part of a list's name, often of an attack.
_NAME_JUNK = re.compile(r'[<>:"|?*\ufffd]')
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def file_base_name(filename: object) -> str:
    """A file's own name as a person would read it: no folders, escapes or control chars.

    ``..\\..\\<script>…</script>"名单\\x07%0d%0a.xlsx`` gives ``名单.xlsx``: percent-escapes
    are decoded (then their control characters dropped), tags and characters no file name
    may hold are removed, and only the part after the last ``/`` or ``\\`` is kept.

    Parameters
    ----------
    filename
        The name as uploaded or given on the command line.

    Returns
    -------
    str
        The readable name with its extension; "清单" (plus the extension) when nothing
        readable is left.
    """
    raw = _readable_name(filename)
    ext = _EXTENSION.search(raw)
    suffix = ext.group(0).lower() if ext else ""
    stem = (raw[: ext.start()] if ext else raw).strip(" .")
    return (stem or "清单") + suffix


def _readable_name(filename: object) -> str:
    text = unquote(str(filename or ""), errors="replace")
    text = _TAG.sub("", text)
    text = re.split(r"[\\/]", text)[-1]
    # A decoded %0d%0a (or a pasted tab) is no part of a name: drop it, not fold it.
    text = _NAME_JUNK.sub("", re.sub(r"[\t\r\n]", "", text))
    return clean_text(text, multiline=False)


def batch_name_of_file(filename: object, *, today: date | None = None) -> str:
    """The name a batch gets from its file: the readable base name without the extension.

    Parameters
    ----------
    filename
        The name as uploaded.
    today
        The county's date for the fallback (default ``today_local()``).

    Returns
    -------
    str
        At most 200 characters; "导入清单 <date>" when nothing readable is left.
    """
    name = _EXTENSION.sub("", _readable_name(filename)).strip(" .")
    return name[:200] or f"导入清单 {(today or today_local()).isoformat()}"


def open_batch(
    session,
    user: User | None,
    *,
    sheet: Sheet | None = None,
    filename: str | None = None,
    source: str,
    received_on: date | None = None,
    existing_refs: set[str] | None = None,
    create: bool = True,
) -> Batch | None:
    """The feedback batch an import belongs to: the same file's batch, or a new one.

    Parameters
    ----------
    session
        The database session (the batch is flushed, never committed).
    user
        Who imports (None from the command line).
    sheet
        The list read by ``load_sheet``: its title names the batch, its SHA-256 finds it.
    filename
        Used when there is no sheet (the bulk path called directly).
    source
        The batch's 来源.
    received_on
        The date the list arrived (default the county's today).
    existing_refs
        Import keys of rows already stored: when a re-saved copy of a list imports nothing
        new, its batch is the one those rows belong to.
    create
        False: only find a batch (an import that stores nothing makes no empty batch).
    """
    sha = sheet.sha256 if sheet is not None else None
    if sha:
        found = session.execute(
            select(Batch).where(Batch.file_sha256 == sha).order_by(Batch.id)
        ).scalar()
        if found is not None:
            return found
    if existing_refs:
        batch_id = session.execute(
            select(Issue.batch_id)
            .where(Issue.external_ref.in_(sorted(existing_refs)[:500]), Issue.batch_id.is_not(None))
            .order_by(Issue.id)
        ).scalar()
        if batch_id is not None:
            return session.get(Batch, batch_id)
    if not create:
        return None
    name_of_file = (sheet.filename if sheet is not None else filename) or ""
    title = clean_text(sheet.title, multiline=False) if sheet is not None else ""
    batch = Batch(
        name=(title or batch_name_of_file(name_of_file))[:200],
        source=source,
        received_on=received_on or today_local(),
        filename=file_base_name(name_of_file)[:255],
        file_sha256=sha,
        created_by_id=user.id if user is not None else None,
        summary={},
    )
    session.add(batch)
    session.flush()
    return batch


def _finish_import(
    session, sheet: Sheet, batch: Batch | None, result: ImportResult
) -> ImportResult:
    """Attach the rows' pictures, count the import and write the batch's summary."""
    if batch is None or result.aborted:
        return result
    result.batch_id, result.batch_name = batch.id, batch.name
    if not result.dry_run and sheet.images:
        attach_row_photos(session, sheet, result)
    mine = set(result.issue_ids)
    batch_counts = _new_counts()
    import_counts = _new_counts()
    rows = session.execute(
        select(
            Issue.id, Issue.needs_placement, Issue.category_pending, Issue.unit_source,
            Issue.routing_conflict,
        ).where(Issue.batch_id == batch.id)
    ).all()
    for issue_id, queued, pending, unit_source, conflict in rows:
        targets = (batch_counts, import_counts) if issue_id in mine else (batch_counts,)
        for counts in targets:
            counts["imported"] += 1
            counts["queued" if queued else "placed"] += 1
            counts["pending_category"] += bool(pending)
            key = unit_source or "none"
            counts["by_unit_source"][key] = counts["by_unit_source"].get(key, 0) + 1
            counts["conflicts"] += bool(conflict)
    result.pending = import_counts["pending_category"]
    result.by_unit_source = import_counts["by_unit_source"]
    result.conflicts = import_counts["conflicts"]
    photos = session.execute(
        select(Photo.id).join(Issue, Photo.issue_id == Issue.id).where(Issue.batch_id == batch.id)
    ).all()
    summary = dict(batch.summary or {})
    summary.update(batch_counts)
    summary["rejected"] = len(result.rejected)
    summary["photos"] = len(photos)
    summary["imports"] = int(summary.get("imports", 0)) + 1
    summary["last_import"] = {
        "filename": result.filename, "imported": result.imported, "skipped": result.skipped,
        "rejected": len(result.rejected), "photos": result.photos,
    }
    batch.summary = summary
    session.flush()
    if result.dry_run:
        result.batch_id = None  # rolled back with the rest
    return result


def _new_counts() -> dict:
    return {
        "imported": 0, "placed": 0, "queued": 0, "pending_category": 0,
        "by_unit_source": {}, "conflicts": 0,
    }


def attach_row_photos(session, sheet: Sheet, result: ImportResult) -> None:
    """Store the pictures pasted into each imported row as its problem's 整改前 photos.

    Every picture goes through the photo service (Pillow verifies it, EXIF is kept
    private and stripped from the served copy); one that is not a usable image is named
    in ``result.photo_errors`` and its row still imports.
    """
    from app.services.issues.photos import PhotoUpload, remove_files, store_image

    issue_of_row = dict(zip(result.issue_rows, result.issue_ids, strict=True))
    stored: list[Photo] = []
    try:
        for row, pictures in sorted(sheet.images.items()):
            issue_id = issue_of_row.get(row)
            if issue_id is None:
                continue
            for n, data in enumerate(pictures, start=1):
                upload = PhotoUpload(filename=f"第{row}行图片{n}", data=data)
                try:
                    fields = store_image(upload)
                except ValidationError as exc:
                    result.photo_errors.append((row, str(exc)))
                    continue
                photo = Photo(issue_id=issue_id, kind="before", **fields)
                session.add(photo)
                stored.append(photo)
        session.flush()
    except BaseException:
        remove_files(stored)
        raise
    result.photos += len(stored)


def parse_received_on(value: str | None) -> date | None:
    """The form's 收到日期 (YYYY-MM-DD); empty means today; refuse the future."""
    text = _text(value)
    if not text:
        return None
    found = parse_date(text, field_name="收到日期")
    if found > today_local():
        msg = f"收到日期 {found.isoformat()} 晚于今天"
        raise ValidationError(msg)
    return found


def dispatch_imported(session, user: User | None, result: ImportResult):
    """Dispatch an import's batch at once (the "导入后立即派遣" option); None when nothing ran.

    Calls ``app.services.batches.batches.dispatch_batch`` and sets ``result.dispatched``. From the
    command line (``user`` None) the first active admin dispatches, as ``dispatch`` does.
    """
    if result.aborted or result.dry_run or result.batch_id is None:
        return None
    from app.services.batches.batches import dispatch_batch

    if user is None:
        user = session.execute(
            select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
        ).scalar()
        if user is None:
            msg = "没有可用的管理员账号，无法派遣 (先 create-user --role admin)"
            raise ValidationError(msg)

    outcome = dispatch_batch(session, user, result.batch_id)
    per_unit = getattr(outcome, "per_unit", None) or {}
    result.dispatched = int(sum(per_unit.values()))
    return outcome


def import_file(
    session, user: User | None, path_or_bytes, filename: str | None = None, **options
) -> tuple[Sheet, ImportResult]:
    """Read a list from a path or bytes and import it (see ``import_sheet``)."""
    data, filename = _read_bytes(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    return sheet, import_sheet(session, user, sheet, **options)


def import_demo_workbook(session, path) -> ImportResult:
    """Import the demo county's cross-inspection workbook as 州级交叉检查 (idempotent)."""
    from app.models import User as UserModel

    admin = session.execute(
        select(UserModel).where(UserModel.role == "admin").order_by(UserModel.id)
    ).scalar()
    _, result = import_file(session, admin, Path(path), source="州级交叉检查", skip_errors=True)
    return result


def rejected_workbook(sheet: Sheet, result: ImportResult) -> bytes:
    """The rejected rows with the list's own columns plus 错误原因, as .xlsx bytes."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from app.services.core.xlsx import write_row

    reasons = {row: reason for row, reason in result.rejected}
    wb = Workbook()
    ws = wb.active
    ws.title = "未导入的行"
    headers = [h or f"列{i + 1}" for i, h in enumerate(sheet.headers)]
    write_row(ws, ["原行号", *headers, ERROR_COLUMN])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for number, values in sheet.rows:
        if number in reasons:
            reason = reasons[number].removeprefix(f"第{number}行: ")
            # Plain text cells: a rejected "=HYPERLINK(...)" goes back as typed, not armed.
            write_row(ws, [number, *[_cell_value(v) for v in values], reason])
    ws.column_dimensions["A"].width = 8
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _cell_value(value):
    if isinstance(value, (int, float, datetime, date)) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------------- upload storage
# Between preview and import the upload is kept under a random name (never the user's
# file name), with a small JSON beside it naming its owner.

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_TTL_S = 24 * 3600


def _paths(directory: Path, token: str) -> tuple[Path, Path, Path]:
    if not _TOKEN.match(token or ""):
        msg = "导入任务不存在或已过期"
        raise NotFoundError(msg)
    return directory / f"{token}.bin", directory / f"{token}.json", directory / f"{token}.xlsx"


def store_upload(directory: Path, user: User, data: bytes, filename: str) -> str:
    """Check the file reads as a list, then keep it; return the token naming it."""
    from app.services.core import access

    access.require(user, "import")
    load_sheet(data, filename)  # refuse before storing anything
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    purge_uploads(directory)
    token = secrets.token_hex(16)
    blob, meta, _ = _paths(directory, token)
    blob.write_bytes(data)
    meta.write_text(
        json.dumps(
            {"user_id": user.id, "filename": file_base_name(filename), "at": time.time()},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return token


def load_upload(directory: Path, user: User, token: str) -> dict:
    """The stored upload's metadata (and bytes when still kept); 404 for another user."""
    from app.services.core import access

    access.require(user, "import")
    blob, meta, _ = _paths(Path(directory), token)
    if not meta.exists():
        msg = "导入任务不存在或已过期，请重新上传"
        raise NotFoundError(msg)
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("user_id") != user.id:
        msg = "导入任务不存在或已过期"
        raise NotFoundError(msg)
    info["data"] = blob.read_bytes() if blob.exists() else None
    return info


def finish_upload(
    directory: Path,
    token: str,
    result: ImportResult,
    rejected_xlsx: bytes | None,
    *,
    keep_file: bool,
) -> None:
    """Record the result; delete the upload unless it may be imported again."""
    blob, meta, rejected = _paths(Path(directory), token)
    info = json.loads(meta.read_text(encoding="utf-8"))
    info["result"] = result.to_dict()
    meta.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    if rejected_xlsx:
        rejected.write_bytes(rejected_xlsx)
    if not keep_file:
        blob.unlink(missing_ok=True)


def rejected_file(directory: Path, user: User, token: str) -> tuple[bytes, str]:
    """The rejected-rows workbook of an import the user ran."""
    info = load_upload(directory, user, token)
    _, _, rejected = _paths(Path(directory), token)
    if not rejected.exists():
        msg = "这次导入没有被拒绝的行"
        raise NotFoundError(msg)
    return rejected.read_bytes(), f"{Path(info['filename']).stem}_未导入的行.xlsx"


def purge_uploads(directory: Path, *, older_than_s: float = UPLOAD_TTL_S) -> int:
    """Delete abandoned uploads (previewed but never imported)."""
    cutoff = time.time() - older_than_s
    removed = 0
    for path in Path(directory).glob("*"):
        if path.suffix in (".bin", ".json", ".xlsx") and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def parse_mapping_form(form, width: int) -> dict[str, int]:
    """Mapping from the preview's selects (``col_<i>`` = field); refuse doubles."""
    mapping: dict[str, int] = {}
    for index in range(width):
        name = (form.get(f"col_{index}") or "").strip()
        if not name:
            continue
        if name not in FIELDS:
            msg = f"第 {index + 1} 列: 未知字段 {name!r}"
            raise ValidationError(msg)
        if name in mapping:
            msg = (
                f"「{FIELD_LABELS[name]}」同时指定给了第 {mapping[name] + 1} 列和第 {index + 1} 列"
            )
            raise ValidationError(msg)
        mapping[name] = index
    return mapping


def read_named_columns(data: bytes, filename: str, columns: dict[str, set[str]], *,
                       required: set[str], label: str) -> list[dict]:
    """Read a small admin table (holidays, aliases, ...) whose columns are found by header.

    ``columns`` maps a field to the header spellings it may have (compared without spaces
    and colons, lower-case); the header row is looked for in the first 10 rows of each
    sheet. Returns ``{"row": spreadsheet row number, field: text, ...}`` for every
    non-empty row; raises ValidationError naming ``label`` when no header is found.
    """
    kind = _sniff(data, filename)
    grids = {"xlsx": _grid_xlsx, "xls": _grid_xls, "csv": _grid_csv}[kind](data, filename)
    for grid in grids:
        for index, row in enumerate(grid[:10]):
            keys = [re.sub(r"[\s*:：]", "", _display(v)).lower() for v in row]
            found: dict[str, int] = {}
            for fieldname, names in columns.items():
                for col, key in enumerate(keys):
                    if key in names and fieldname not in found:
                        found[fieldname] = col
            if required <= found.keys():
                rows = []
                for number, values in enumerate(grid[index + 1:], start=index + 2):
                    cells = {f: _display(values[c]) if c < len(values) else ""
                             for f, c in found.items()}
                    if any(cells.values()):
                        rows.append({"row": number, **cells})
                return rows
    msg = f"{filename}: 找不到表头 (需要列: {label})"
    raise ValidationError(msg)
