"""Spreadsheet and CSV reading: the one reader every table import goes through.

Lists people send are messy: a merged title row above the headers, blank rows, full-width
digits, dates typed in four ways, formulas without cached values, pictures pasted into
rows. The file is sniffed (.xlsx, .xls, .csv; never by its name alone) and every worksheet
read into a grid with vertical merges filled (``core._workbook``); this module finds the
header row by its Chinese names (``FIELDS`` and their synonyms) and hands back ``Sheet``
rows, a preview, or (``read_named_columns``) the rows of a small admin table whose columns
are given by the caller. It imports only the standard library, the models and ``core``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from app.models import today_local
from app.services.core._workbook import read_grid
from app.services.core.errors import ValidationError
from app.services.core.text import clean_text

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
HEADER_SCAN_ROWS = 10
PREVIEW_ROWS = 10


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
        """Headers of the columns no field is mapped to."""
        used = set(self.mapping.values())
        return [h for i, h in enumerate(self.headers) if i not in used and h]


def cell_text(value) -> str:
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
    text = cell_text(value).lower()
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
    pictures: list[dict[int, list[bytes]]] = []
    every = read_grid(data, filename, images=pictures)
    keep = [i for i, g in enumerate(every) if any(cell_text(v) for row in g for v in row)]
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
    headers = [cell_text(v) for v in grid[index]] + [""] * (width - len(grid[index]))
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
        texts = list(dict.fromkeys(cell_text(v) for v in row if cell_text(v)))
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


def read_source(path_or_bytes, filename: str | None) -> tuple[bytes, str]:
    """The bytes and file name of a list given as a path or as bytes (named ``filename``)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return bytes(path_or_bytes), filename or "upload"
    path = Path(path_or_bytes)
    return path.read_bytes(), filename or path.name


def sheet_records(sheet: Sheet, mapping: dict[str, int]) -> list[dict]:
    """One dict per non-blank data row: the mapped fields' raw values and ``_row``."""
    records = []
    for number, values in sheet.rows:
        record = {name: values[index] for name, index in mapping.items()}
        # A row with nothing but a serial number (or a footnote in its cell) is blank.
        if not any(cell_text(v) for k, v in record.items() if k != "seq"):
            continue
        record["_row"] = number
        records.append(record)
    return records


def read_table(
    path_or_bytes, filename: str | None = None, *, mapping: dict[str, int] | None = None
) -> list[dict]:
    """Read a feedback list into one dict per non-empty row (fields + ``_row``)."""
    data, filename = read_source(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    if mapping is not None:
        check_mapping(sheet, mapping)
    return sheet_records(sheet, mapping if mapping is not None else sheet.mapping)


def preview_table(
    path_or_bytes,
    filename: str | None = None,
    *,
    mapping: dict[str, int] | None = None,
    limit: int = PREVIEW_ROWS,
) -> dict:
    """Detected mapping, unmapped columns and the first rows, for the user to confirm."""
    data, filename = read_source(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    mapping = mapping if mapping is not None else sheet.mapping
    check_mapping(sheet, mapping)
    first = []
    for number, values in sheet.rows:
        if not any(cell_text(v) for v in values):
            continue
        first.append({"row": number, "values": [_display(v) for v in values]})
        if len(first) >= limit:
            break
    records = sheet_records(sheet, mapping)
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
    return cell_text(value)


# ---------------------------------------------------------------------- parsing values


def parse_date(value, *, field_name: str, today: date | None = None) -> date | None:
    """Parse the date forms lists use; raise naming the field and the value."""
    if value is None or cell_text(value) == "":
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
    text = cell_text(value).replace(" ", "")
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
    msg = f"{field_name} 无法识别为日期: {cell_text(value)!r} (如 2026-10-28、2026年10月28日)"
    raise ValidationError(msg)


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


def read_named_columns(
    data: bytes,
    filename: str,
    columns: dict[str, Collection[str]],
    *,
    required: set[str],
    label: str,
) -> list[dict]:
    """Read a small admin table (holidays, aliases, ...) whose columns are found by header.

    ``columns`` maps a field to the header spellings it may have (compared without spaces
    and colons, lower-case); the header row is looked for in the first 10 rows of each
    sheet. Returns ``{"row": spreadsheet row number, field: text, ...}`` for every
    non-empty row; raises ValidationError naming ``label`` when no header is found.
    """
    for grid in read_grid(data, filename):
        for index, row in enumerate(grid[:10]):
            keys = [re.sub(r"[\s*:：]", "", _display(v)).lower() for v in row]
            found: dict[str, int] = {}
            for fieldname, names in columns.items():
                for col, key in enumerate(keys):
                    if key in names and fieldname not in found:
                        found[fieldname] = col
            if required <= found.keys():
                rows = []
                for number, values in enumerate(grid[index + 1 :], start=index + 2):
                    cells = {
                        f: _display(values[c]) if c < len(values) else "" for f, c in found.items()
                    }
                    if any(cells.values()):
                        rows.append({"row": number, **cells})
                return rows
    msg = f"{filename}: 找不到表头 (需要列: {label})"
    raise ValidationError(msg)
