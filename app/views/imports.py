"""Import inspection feedback lists: upload, confirm the column mapping, import, result."""

from __future__ import annotations

import io
from importlib.util import find_spec
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from app.config import current_settings
from app.extensions import db
from app.models import SOURCES, today_local
from app.services.core import tabular
from app.services.core.access import require
from app.services.core.errors import ServiceError, ValidationError
from app.services.imports import batching, rows
from app.services.imports import sheet as list_import  # ``sheet`` names the Sheet read
from app.services.tables.unit_routing import UNIT_SOURCE_LABELS

bp = Blueprint("issue_import", __name__, url_prefix="/issues/import")


def _upload_dir() -> Path:
    configured = current_app.config.get("IMPORT_UPLOAD_DIR")
    return Path(configured or Path(current_app.config["INSTANCE_DIR"]) / "uploads")


@bp.route("/", methods=["GET", "POST"])
@login_required
def import_form():
    """Show the upload form; keep a valid upload and go to its preview."""
    require(current_user, "import")
    if request.method == "GET":
        return render_template("imports/upload.html")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("imports/upload.html", error="请选择要导入的文件"), 400
    try:
        token = list_import.store_list(_upload_dir(), current_user, upload.read(), upload.filename)
    except ValidationError as exc:
        return render_template("imports/upload.html", error=str(exc)), 400
    return redirect(url_for("issue_import.preview", token=token))


@bp.route("/<token>", methods=["GET", "POST"])
@login_required
def preview(token: str):
    """Show the detected column mapping and first rows; import on confirmation."""
    info = list_import.load_list(_upload_dir(), current_user, token)
    if info["data"] is None:
        return redirect(url_for("issue_import.result", token=token))
    sheet = tabular.load_sheet(info["data"], info["filename"])
    mapping = None
    error = None
    if request.method == "POST":
        try:
            mapping = tabular.parse_mapping_form(request.form, len(sheet.headers))
            result = list_import.import_sheet(
                db.session,
                current_user,
                sheet,
                mapping=mapping,
                source=request.form.get("source"),
                skip_errors=request.form.get("skip_errors") == "1",
                received_on=rows.parse_received_on(request.form.get("received_on")),
                photo_dir=current_settings().photo_dir,
            )
        except ValidationError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            if result.aborted:
                db.session.rollback()
            else:
                db.session.commit()
                if request.form.get("dispatch") == "1":
                    _dispatch(result)
            rejected = list_import.rejected_workbook(sheet, result) if result.rejected else None
            list_import.finish_list(
                _upload_dir(), token, result, rejected, keep_file=result.aborted
            )
            return redirect(url_for("issue_import.result", token=token))
    try:
        view = tabular.preview_table(info["data"], info["filename"], mapping=mapping)
    except ValidationError as exc:
        # The user's own mapping lacks a required column: show the detected one again.
        error = error or str(exc)
        view = tabular.preview_table(info["data"], info["filename"])
    status = 400 if error else 200
    return render_template(
        "imports/preview.html",
        token=token,
        view=view,
        error=error,
        fields=tabular.FIELD_LABELS,
        sources=SOURCES,
        default_source=request.form.get("source") or rows.DEFAULT_SOURCE,
        skip_errors=request.form.get("skip_errors") == "1",
        received_on=request.form.get("received_on") or today_local().isoformat(),
        dispatch=request.form.get("dispatch") == "1",
        can_dispatch=_can_dispatch(),
    ), status


def _can_dispatch() -> bool:
    return find_spec("app.services.batches.dispatch") is not None


def _dispatch(result) -> None:
    """Dispatch the batch just imported; the import stays even when dispatching fails."""
    try:
        batching.dispatch_imported(db.session, current_user, result)
    except (ServiceError, ImportError) as exc:
        db.session.rollback()
        result.dispatch_error = str(exc)
    else:
        db.session.commit()


@bp.get("/<token>/result")
@login_required
def result(token: str):
    """Show an import's summary and the rows it rejected."""
    info = list_import.load_list(_upload_dir(), current_user, token)
    if "result" not in info:
        return redirect(url_for("issue_import.preview", token=token))
    queue = "issues.placement_queue"
    queue_url = url_for(queue) if queue in current_app.view_functions else None
    batch_id = info["result"].get("batch_id")
    batch_url = (
        url_for("batches.show", batch_id=batch_id)
        if batch_id and "batches.show" in current_app.view_functions
        else None
    )
    return render_template(
        "imports/result.html",
        token=token,
        info=info,
        res=info["result"],
        can_retry=info["data"] is not None,
        queue_url=queue_url,
        batch_url=batch_url,
        source_labels=UNIT_SOURCE_LABELS,
    )


@bp.get("/<token>/rejected.xlsx")
@login_required
def rejected(token: str):
    """Download the rejected rows with an added 错误原因 column."""
    data, name = list_import.rejected_file(_upload_dir(), current_user, token)
    return send_file(
        io.BytesIO(data),
        as_attachment=True,
        download_name=name,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
