"""Layer uploads that run in the background, with a progress record the page polls.

A county's OpenStreetMap extract or building layer takes longer to read and store
than a web request may last, so the page saves the upload, starts the import on a
worker thread and answers at once with a token. The worker writes its progress to a
small JSON file ``<job dir>/<token>.json`` (a file rather than a database row: the
import's own transaction must not block or hide the progress writes); the page polls
it until the import ends with counts per kind or a clear error.

No Flask here: the caller passes the job directory and runs :func:`run_layer_job`
on a thread of its own with a session of its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from app.models import User, now_local
from app.services.core import access, audit
from app.services.core.errors import NotFoundError, ServiceError, ValidationError
from app.services.grids.layers import (
    KIND_LABELS,
    LAYER_KINDS,
    OSM_SUFFIXES,
    VECTOR_SUFFIXES,
    activate_layers,
    delete_layers,
    import_osm_file,
    is_osm_file,
    store_layer,
)
from gis.errors import GisError
from gis.layer_io.read import read_layer

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (*VECTOR_SUFFIXES, *OSM_SUFFIXES)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _path(directory: str | Path, token: str) -> Path:
    if not _TOKEN.match(token or ""):
        msg = "导入任务编号无效"
        raise NotFoundError(msg)
    return Path(directory) / f"{token}.json"


def _write(directory: str | Path, token: str, record: dict) -> None:
    path = _path(directory, token)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    # Replace in one step so a poll never reads half a file.
    os.replace(tmp, path)


def read_job(directory: str | Path, token: str, user: User | None = None) -> dict:
    """Return a job's progress record; only its starter or an admin may read it.

    Parameters
    ----------
    directory : str or Path
        The job directory.
    token : str
        The job's token.
    user : User, optional
        Who asks (None: the command line).

    Returns
    -------
    dict
        ``state`` (``queued``, ``running``, ``done``, ``error``), ``stage``,
        ``fraction`` (0..1), ``filename``, ``kind``, and when done ``layers``
        (kind → feature count) and ``warnings``; when failed ``error``.

    Raises
    ------
    NotFoundError
        For an unknown token or someone else's job.
    """
    path = _path(directory, token)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        msg = "找不到该导入任务 (可能已过期)"
        raise NotFoundError(msg) from None
    if user is not None and record.get("user_id") != user.id and user.role != "admin":
        msg = "找不到该导入任务"
        raise NotFoundError(msg)
    return record


JOB_KEEP_S = 7 * 24 * 3600


def purge_jobs(directory: str | Path, *, older_than_s: float = JOB_KEEP_S) -> int:
    """Remove progress records and leftover uploads older than a week; return how many."""
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # another worker removed it first
            continue
    return removed


def start_layer_job(
    directory: str | Path,
    user: User,
    data: bytes,
    filename: str | None,
    kind: str | None,
    source_crs: str | None = None,
) -> dict:
    """Check an upload, save it under the job directory and create its progress record.

    Parameters
    ----------
    directory : str or Path
        The job directory (created when missing).
    user : User
        The admin uploading.
    data : bytes
        The file's content.
    filename : str or None
        The uploaded file's name; its suffix decides the reader.
    kind : str or None
        The layer kind for GIS files; OSM files fill every kind they carry.
    source_crs : str, optional
        ``wgs84``, ``gcj02`` or ``bd09`` for GIS files.

    Returns
    -------
    dict
        ``token`` and the saved file's ``path`` (for :func:`run_layer_job`).

    Raises
    ------
    ValidationError
        For a missing or unsupported file or kind (nothing is saved).
    """
    access.require(user, "manage_grid")
    purge_jobs(directory)
    name = Path((filename or "").replace("\\", "/")).name
    if not name or not name.lower().endswith(UPLOAD_SUFFIXES):
        msg = (
            f"不支持的文件 {name or '(未选择文件)'} (可用: OSM .osm/.osm.gz/.osm.pbf，"
            f"GeoJSON、GeoPackage、Shapefile .zip、KML)"
        )
        raise ValidationError(msg)
    if not data:
        msg = f"文件 {name} 是空的"
        raise ValidationError(msg)
    osm = is_osm_file(name)
    if not osm:
        if kind == "grid":
            msg = "网格请在「导入网格」页面上传 (需先检查)"
            raise ValidationError(msg)
        if kind not in LAYER_KINDS:
            msg = f"请选择图层类型 (收到 {kind!r})"
            raise ValidationError(msg)
    token = secrets.token_urlsafe(18)
    folder = Path(directory) / token
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    _write(
        directory,
        token,
        {
            "state": "queued",
            "stage": "等待开始",
            "fraction": 0.0,
            "filename": name,
            "kind": "osm" if osm else kind,
            "crs": source_crs or None,
            "user_id": user.id,
            "started_at": now_local().isoformat(timespec="seconds"),
        },
    )
    return {"token": token, "path": str(path)}


def run_layer_job(session, directory: str | Path, token: str, user_id: int | None) -> dict:
    """Run one saved upload's import to the end, recording progress; never raises.

    Parameters
    ----------
    session : Session
        A session of this thread's own; committed on success, rolled back on error.
    directory : str or Path
        The job directory.
    token : str
        The job's token (from :func:`start_layer_job`).
    user_id : int or None
        The uploading user's id (for the audit log).

    Returns
    -------
    dict
        The final progress record.
    """
    record = read_job(directory, token)
    folder = Path(directory) / token
    path = folder / record["filename"]
    user = session.get(User, user_id) if user_id else None

    def progress(stage: str, fraction: float) -> None:
        record.update(state="running", stage=stage, fraction=round(fraction, 3))
        _write(directory, token, record)

    staged: list[int] = []
    try:
        progress("开始导入", 0.01)
        if record["kind"] == "osm":
            result = import_osm_file(
                session, path, user=user, progress=progress, checkpoint=session.commit,
                staged=staged,
            )
            layers, warnings = result["layers"], result["warnings"]
        else:
            layers, warnings = _import_gis_file(session, path, record, user, progress, staged)
        session.commit()
        record.update(state="done", stage="完成", fraction=1.0, layers=layers,
                      warnings=warnings[:50], warning_count=len(warnings))
    except Exception as exc:  # noqa: BLE001 - the page must hear of every failure
        session.rollback()
        # Layers written in chunks before the failure were never switched on: remove them.
        delete_layers(session, staged)
        session.commit()
        known = isinstance(exc, ServiceError | GisError)
        if not known:
            log.exception("layer import %s failed", token)
        message = str(exc) if known else f"导入失败 (内部错误: {type(exc).__name__})"
        # Never show the server's folders: a message that quotes a path keeps the file's name.
        for place in (str(folder.resolve()), str(folder), str(Path(directory).resolve())):
            message = message.replace(place + os.sep, "").replace(place, "")
        record.update(state="error", stage="失败", error=message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record["finished_at"] = now_local().isoformat(timespec="seconds")
    _write(directory, token, record)
    return record


def _import_gis_file(session, path: Path, record: dict, user, progress, staged: list[int]):
    """Read one GIS file as its kind; write it inactive in chunks, then switch it on."""
    kind = record["kind"]
    label = KIND_LABELS.get(kind, kind)
    progress("读取图层文件", 0.1)
    gdf = read_layer(path, kind=kind, source_crs=record.get("crs"))
    progress(f"保存{label} ({len(gdf)} 个)", 0.4)
    layer = store_layer(
        session, gdf, kind=kind, name=f"{path.name} {label}", source=path.name,
        active=False, checkpoint=session.commit,
    )
    staged.append(layer.id)
    activate_layers(session, [layer.id])
    audit.record(session, user, "import_layer", f"{kind} {path.name}: {len(gdf)} 个要素")
    return {kind: len(gdf)}, []
