"""The feedback batch an import belongs to: found again by its file, opened, counted, sent.

Every import of a list is one feedback batch (``Batch``): the same file (by SHA-256), or a
re-saved copy whose rows are all stored already, finds the batch it made before. After the
rows are stored the batch's summary is counted again, the pictures pasted into the rows
become 整改前 photos, and (the "导入后立即派遣" option) the batch can be dispatched at once.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select

from app.models import Batch, Issue, Photo, User, today_local
from app.services.batches.dispatch import dispatch_batch
from app.services.core.errors import ValidationError
from app.services.core.tabular import Sheet
from app.services.core.text import clean_text
from app.services.core.uploads import file_base_name, readable_stem
from app.services.imports.rows import ImportResult
from app.services.issues.photos import PhotoUpload, remove_files, store_image


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
    return readable_stem(filename)[:200] or f"导入清单 {(today or today_local()).isoformat()}"


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


def finish_batch(session, sheet: Sheet, batch: Batch | None, result: ImportResult, *,
                 photo_dir: Path | None = None) -> ImportResult:
    """Attach the rows' pictures, count the import and write the batch's summary.

    Parameters
    ----------
    session
        The database session (flushed, never committed).
    sheet
        The list the rows came from (its pictures by row).
    batch
        The batch the rows joined; None (nothing stored) returns ``result`` unchanged.
    result
        The import's result, completed with the batch and its counts.
    photo_dir
        Where the rows' pictures are stored (``Settings.photo_dir``); without it each
        picture is named in ``result.photo_errors`` and not stored.
    """
    if batch is None or result.aborted:
        return result
    result.batch_id, result.batch_name = batch.id, batch.name
    if not result.dry_run and sheet.images:
        attach_row_photos(session, sheet, result, photo_dir=photo_dir)
    mine = set(result.issue_ids)
    batch_counts = _new_counts()
    import_counts = _new_counts()
    rows = session.execute(
        select(
            Issue.id,
            Issue.needs_placement,
            Issue.category_pending,
            Issue.unit_source,
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
        "filename": result.filename,
        "imported": result.imported,
        "skipped": result.skipped,
        "rejected": len(result.rejected),
        "photos": result.photos,
    }
    batch.summary = summary
    session.flush()
    if result.dry_run:
        result.batch_id = None  # rolled back with the rest
    return result


def _new_counts() -> dict:
    return {
        "imported": 0,
        "placed": 0,
        "queued": 0,
        "pending_category": 0,
        "by_unit_source": {},
        "conflicts": 0,
    }


def attach_row_photos(session, sheet: Sheet, result: ImportResult, *,
                      photo_dir: Path | None) -> None:
    """Store the pictures pasted into each imported row as its problem's 整改前 photos.

    Every picture goes through the photo service (Pillow verifies it, EXIF is kept
    private and stripped from the served copy) into ``photo_dir``; one that is not a
    usable image (or any, with no ``photo_dir``) is named in ``result.photo_errors`` and
    its row still imports.
    """
    issue_of_row = dict(zip(result.issue_rows, result.issue_ids, strict=True))
    stored: list[Photo] = []
    try:
        for row, pictures in sorted(sheet.images.items()):
            issue_id = issue_of_row.get(row)
            if issue_id is None:
                continue
            for n, data in enumerate(pictures, start=1):
                upload = PhotoUpload(filename=f"第{row}行图片{n}", data=data)
                if photo_dir is None:
                    result.photo_errors.append((row, f"{upload.filename} 未保存 (没有照片目录)"))
                    continue
                try:
                    fields = store_image(upload, photo_dir=photo_dir)
                except ValidationError as exc:
                    result.photo_errors.append((row, str(exc)))
                    continue
                photo = Photo(issue_id=issue_id, kind="before", **fields)
                session.add(photo)
                stored.append(photo)
        session.flush()
    except BaseException:
        remove_files(stored, photo_dir=photo_dir)
        raise
    result.photos += len(stored)


def dispatch_imported(session, user: User | None, result: ImportResult):
    """Dispatch an import's batch at once (the "导入后立即派遣" option); None when nothing ran.

    Calls ``batches.dispatch.dispatch_batch`` and sets ``result.dispatched``. From the
    command line (``user`` None) the first active admin dispatches, as ``dispatch`` does.
    """
    if result.aborted or result.dry_run or result.batch_id is None:
        return None
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
