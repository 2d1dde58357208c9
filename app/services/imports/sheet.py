"""Importing a problem list: a read ``Sheet`` → stored problems, in one transaction.

``import_file`` reads a list (``core.tabular``) and ``import_sheet`` validates every row
(``imports.rows``) before it writes any, then feeds the valid ones through the one intake
service (``create_issue``) and the list's feedback batch (``imports.batching``); a long list
with coordinates takes the column-wise path (``imports.bulk``) to the same result.

All-or-nothing by default: if any row is wrong nothing is written and the rows are
listed; ``skip_errors`` imports the valid rows and reports the rejected ones
(``rejected_workbook`` gives them back with an added 错误原因 column). Between the preview
and the import the upload waits in the upload store (``store_list``, ``load_list``).
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select

from app.models import SOURCES, User
from app.services.core import access, uploads
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.tabular import (
    Sheet,
    cell_text,
    check_mapping,
    load_sheet,
    read_source,
    sheet_records,
)
from app.services.core.xlsx import write_row
from app.services.grids.geocoding import geocoder_for
from app.services.imports import bulk as bulk_import  # ``bulk`` is import_sheet's flag
from app.services.imports.batching import finish_batch, open_batch
from app.services.imports.rows import (
    DEFAULT_SOURCE,
    ImportResult,
    PreparedRow,
    check_source,
    existing_refs,
    prepare_row,
)
from app.services.issues.intake import create_issue, route_issue
from app.services.tables.category_match import CategoryMatcher
from app.services.tables.unit_names import UnitMatcher
from app.services.tables.workdays import load_calendar

ERROR_COLUMN = "错误原因"
UPLOAD_TTL_S = 24 * 3600  # a previewed list never imported is purged after a day
_UPLOAD = "导入任务"  # the upload as messages name it


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
    photo_dir: Path | None = None,
) -> ImportResult:
    """Validate every row, then create the valid ones through ``create_issue``.

    Writes happen only in the caller's transaction (flushed, never committed): the
    caller commits, or rolls back for a dry run. When a row is wrong and ``skip_errors``
    is false, nothing is written at all and ``aborted`` is set.

    Every import is a feedback batch (``Batch``, found again by the file's SHA-256): each
    issue gets ``batch_id`` and ``batch_seq`` (序号, else the row number), follows the
    list's 责任单位 where it names a known unit (``route_issue``), and gets the pictures
    pasted into its row as 整改前 photos (stored under ``photo_dir``, ``Settings.photo_dir``).

    A list longer than ``bulk_threshold`` rows (default
    ``bulk.BULK_THRESHOLD``) with coordinate columns takes the bulk path, which
    stores the same result column by column; ``bulk`` forces (True) or forbids (False) it.
    """
    if user is not None:
        access.require(user, "import")
    source = check_source(source)
    mapping = mapping if mapping is not None else sheet.mapping
    check_mapping(sheet, mapping)
    records = sheet_records(sheet, mapping)
    result = ImportResult(filename=sheet.filename, total=len(records), dry_run=dry_run)
    if not records:
        msg = f"{sheet.filename}: 表头 (第{sheet.header_row}行) 下面没有问题记录"
        raise ValidationError(msg)
    threshold = bulk_import.BULK_THRESHOLD if bulk_threshold is None else bulk_threshold
    if bulk or (bulk is None and bulk_import.wants_bulk(records, mapping, threshold=threshold)):
        batch = open_batch(
            session,
            user,
            sheet=sheet,
            source=_batch_source(records, source),
            received_on=received_on,
        )
        result = bulk_import.import_records_bulk(
            session,
            user,
            records,
            filename=sheet.filename,
            source=source,
            skip_errors=skip_errors,
            geocoder=geocoder,
            dry_run=dry_run,
            batch_id=batch.id,
        )
        return finish_batch(session, sheet, batch, result, photo_dir=photo_dir)
    calendar = load_calendar(session)
    categories = CategoryMatcher(session)
    prepared: list[PreparedRow] = []
    for record in records:
        try:
            prepared.append(
                prepare_row(
                    session,
                    record,
                    source=source,
                    calendar=calendar,
                    filename=sheet.filename,
                    matcher=categories,
                )
            )
        except ValidationError as exc:
            result.rejected.append((record["_row"], str(exc)))
    existing = existing_refs(session, [p.ref for p in prepared])
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
        session,
        user,
        sheet=sheet,
        source=_batch_source(records, source),
        received_on=received_on,
        existing_refs=existing if not todo else None,
        create=bool(todo),
    )
    if todo and geocoder is None:
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
    return finish_batch(session, sheet, batch, result, photo_dir=photo_dir)


def _batch_source(records: list[dict], default: str) -> str:
    """The batch's source: what most rows' 来源 say (when known), else the form's choice."""
    counts = Counter(cell_text(r.get("source")) for r in records if cell_text(r.get("source")))
    for text, _ in counts.most_common():
        if text in SOURCES:
            return text
    return default


def import_file(
    session, user: User | None, path_or_bytes, filename: str | None = None, **options
) -> tuple[Sheet, ImportResult]:
    """Read a list from a path or bytes and import it (see ``import_sheet``)."""
    data, filename = read_source(path_or_bytes, filename)
    sheet = load_sheet(data, filename)
    return sheet, import_sheet(session, user, sheet, **options)


def import_demo_workbook(session, path) -> ImportResult:
    """Import the demo county's cross-inspection workbook as 州级交叉检查 (idempotent)."""
    admin = session.execute(select(User).where(User.role == "admin").order_by(User.id)).scalar()
    _, result = import_file(session, admin, Path(path), source="州级交叉检查", skip_errors=True)
    return result


def rejected_workbook(sheet: Sheet, result: ImportResult) -> bytes:
    """The rejected rows with the list's own columns plus 错误原因, as .xlsx bytes."""
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


# ---------------------------------------------------------------------- upload store


def store_list(directory: Path, user: User, data: bytes, filename: str) -> str:
    """Check the file reads as a list, then keep it in the upload store; return its token."""
    access.require(user, "import")
    load_sheet(data, filename)  # refuse before storing anything
    return uploads.store_upload(directory, user, data, filename, ttl_s=UPLOAD_TTL_S)


def load_list(directory: Path, user: User, token: str) -> dict:
    """The stored list's metadata (and bytes when still kept); 404 for another user."""
    access.require(user, "import")
    return uploads.load_upload(directory, user, token, what=_UPLOAD)


def finish_list(
    directory: Path,
    token: str,
    result: ImportResult,
    rejected_xlsx: bytes | None,
    *,
    keep_file: bool,
) -> None:
    """Record the import's result and its rejected rows; drop the list unless kept."""
    uploads.finish_upload(
        directory, token, result=result.to_dict(), output=rejected_xlsx, keep_file=keep_file
    )


def rejected_file(directory: Path, user: User, token: str) -> tuple[bytes, str]:
    """The rejected-rows workbook of an import the user ran, with its download name."""
    info = load_list(directory, user, token)
    data = uploads.read_output(directory, user, token, what=_UPLOAD)
    if data is None:
        msg = "这次导入没有被拒绝的行"
        raise NotFoundError(msg)
    return data, f"{Path(info['filename']).stem}_未导入的行.xlsx"
