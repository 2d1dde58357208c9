"""Workbook and CSV bytes → grids of cell values: the file-format half of ``core.tabular``.

Sniffs the kind from the content (never the name alone), refuses zip bombs before openpyxl
parses, keeps the text of formulas saved without a computed value, collects pictures pasted
into rows and fills vertically merged cells into every row they span. Only ``tabular``
imports it; everything else reads lists through ``tabular``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import xlrd
from openpyxl import load_workbook

from app.services.core.errors import ValidationError

EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".csv")
INVALID_FILE = "不是有效的 Excel/CSV 文件"
# A workbook is a zip of XML: refuse one that would expand past these before openpyxl parses
# it (a 0.8 MB "zip bomb" of 122 MB XML held a worker for minutes at 1.7 GB).
MAX_XLSX_UNCOMPRESSED = 60 * 1024 * 1024
MAX_XLSX_RATIO = 100
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"


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


def read_grid(
    data: bytes, filename: str, *, images: list[dict[int, list[bytes]]] | None = None
) -> list[list[list]]:
    """Every worksheet of a workbook or CSV as a grid of raw cell values.

    Parameters
    ----------
    data
        The file's bytes; its kind is sniffed from the content (the name's suffix must be
        one of ``EXTENSIONS``).
    filename
        Named in the messages.
    images
        When given (and the file is .xlsx), gets each worksheet's pictures by row.

    Returns
    -------
    list of grids
        One per worksheet (one for a CSV): rows of values, vertical merges filled.

    Raises
    ------
    ValidationError
        When the file is empty, of another kind, unreadable or a zip bomb.
    """
    kind = _sniff(data, filename)
    if kind == "xlsx":
        return _grid_xlsx(data, filename, images)
    if kind == "xls":
        return _grid_xls(data, filename)
    return _grid_csv(data, filename)


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
