"""反馈批次 pages: progress, dispatch preview and confirm, conflicts, 整改台账, 复核 upload."""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from app.extensions import db
from app.maps.problems import build_batch_map
from app.services.batches import dispatch as batch_dispatch
from app.services.batches import ledger
from app.services.batches import queries as batch_queries
from app.services.batches import recheck as batch_recheck
from app.services.core import access
from app.services.core.errors import ServiceError, ValidationError
from app.services.grids.map_data import layer_fc
from app.services.issues import queries as issue_queries

bp = Blueprint("batches", __name__, url_prefix="/batches")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@bp.before_request
@login_required
def _require_login():
    """Every page here needs a signed-in user."""


@bp.get("/")
def list_batches():
    """List the feedback batches with their progress (a unit head: their share)."""
    items = batch_queries.list_batches(db.session, current_user)
    return render_template("batches/list.html", items=items)


@bp.get("/<int:batch_id>")
def show(batch_id: int):
    """Show one batch's progress, map, conflicts and re-check."""
    unit_id = request.args.get("unit", type=int)
    detail = batch_queries.batch_progress(db.session, current_user, batch_id, unit_id=unit_id)
    points = [
        {"lon": i.lon, "lat": i.lat, "status": i.status,
         "label": f"序号 {i.batch_seq or '—'} · #{i.id} {i.status_label}"}
        for i in detail["issues"]
        if i.lon is not None and i.lat is not None
    ]
    parts = build_batch_map(
        points, boundary_fc=layer_fc(db.session, "boundary"), roads_fc=layer_fc(db.session, "roads")
    ) if points else None
    return render_template(
        "batches/show.html",
        parts=parts,
        units=ledger.units_in(db.session, current_user, batch_id),
        unit_id=unit_id,
        may_dispatch=access.may(current_user, "dispatch"),
        may_import=access.may(current_user, "import"),
        may_export=access.may(current_user, "export"),
        **detail,
    )


@bp.post("/<int:batch_id>/conflicts")
def settle(batch_id: int):
    """Settle the ticked routing conflicts: keep the list's unit or follow the rules."""
    batch_queries.get_batch(db.session, current_user, batch_id)
    access.require(current_user, "reroute")
    back = url_for("batches.show", batch_id=batch_id) + "#conflicts"
    try:
        result = batch_dispatch.settle_conflicts(
            db.session, current_user, request.form.getlist("ids"),
            request.form.get("choice", ""), batch_id=batch_id,
        )
    except ValidationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(back)
    db.session.commit()
    done = result["kept"] + result["moved"]
    flash(f"已处理 {done} 个单位冲突 (按清单 {result['kept']} 个，按属地/类别 "
          f"{result['moved']} 个)", "ok")
    if result["ignored"]:
        flash(f"忽略 {result['ignored']} 个不属于本批次的问题", "warn")
    for message in result["errors"]:
        flash(message, "warn")
    return redirect(back)


@bp.get("/<int:batch_id>/dispatch")
def dispatch_preview(batch_id: int):
    """Preview a whole batch's dispatch: how many go to which unit, what is skipped."""
    preview = batch_dispatch.preview_batch(db.session, current_user, batch_id)
    batch = batch_queries.get_batch(db.session, current_user, batch_id)
    return render_template(
        "batches/dispatch.html", preview=preview, batch=batch,
        action=url_for("batches.dispatch", batch_id=batch_id), back=url_for(
            "batches.show", batch_id=batch_id),
    )


@bp.post("/<int:batch_id>/dispatch")
def dispatch(batch_id: int):
    """Dispatch every dispatchable problem of the batch in one step."""
    result = batch_dispatch.dispatch_batch(db.session, current_user, batch_id)
    db.session.commit()
    raced = sum(s["code"] in ("raced", "dispatched") for s in result.skipped)
    if not result.dispatched and raced:
        flash(f"本批次已在派遣中或已派遣 ({raced} 个问题已由其他操作派遣)，未重复派遣", "warn")
    else:
        flash(f"已派遣 {result.dispatched} 个问题"
              + (f"，跳过 {len(result.skipped)} 个" if result.skipped else ""), "ok")
    return redirect(url_for("batches.show", batch_id=batch_id))


@bp.get("/dispatch")
def dispatch_selection_preview():
    """Preview dispatching the problem list's current filter results."""
    access.require(current_user, "dispatch")
    filters = issue_queries.parse_filters(request.args)
    ids = batch_dispatch.filtered_issue_ids(db.session, current_user, filters)
    preview = batch_dispatch.preview_issues(db.session, current_user, ids)
    return render_template(
        "batches/dispatch.html", preview=preview, batch=None,
        action=url_for("batches.dispatch_selection"),
        back=url_for("issues.list_issues", **issue_queries.filter_args(filters)),
    )


@bp.post("/dispatch")
def dispatch_selection():
    """Dispatch the problems ticked on the preview."""
    access.require(current_user, "dispatch")
    ids = request.form.getlist("ids")
    if not ids:
        msg = "请至少勾选一个要派遣的问题"
        raise ValidationError(msg)
    result = batch_dispatch.dispatch_issues(db.session, current_user, ids)
    db.session.commit()
    flash(f"已派遣 {result.dispatched} 个问题"
          + (f"，跳过 {len(result.skipped)} 个" if result.skipped else ""), "ok")
    return redirect(url_for("issues.list_issues"))


def _send_ledger(batch_id: int, ext: str):
    unit_id = request.args.get("unit", type=int)
    data = ledger.build_ledger(db.session, current_user, batch_id, unit_id=unit_id,
                               photo_dir=current_app.config["PHOTO_DIR"])
    body = ledger.ledger_xlsx(data) if ext == "xlsx" else ledger.ledger_docx(data)
    response = send_file(io.BytesIO(body), mimetype=XLSX if ext == "xlsx" else DOCX)
    response.headers["Content-Disposition"] = ledger.content_disposition(data, ext)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<int:batch_id>/ledger.xlsx")
def ledger_xlsx(batch_id: int):
    """Download the batch's 整改台账 as an Excel workbook with photos."""
    return _send_ledger(batch_id, "xlsx")


@bp.get("/<int:batch_id>/ledger.docx")
def ledger_docx(batch_id: int):
    """Download the batch's 整改情况报告 as a Word document with photos."""
    return _send_ledger(batch_id, "docx")


@bp.post("/<int:batch_id>/recheck")
def recheck(batch_id: int):
    """Import the prefecture's 复核 of the returned list against the batch."""
    access.require(current_user, "import")
    batch = batch_queries.get_batch(db.session, current_user, batch_id)
    upload = request.files.get("file")
    data = upload.stream.read(current_app.config.get("MAX_CONTENT_LENGTH") or 32 << 20) \
        if upload and upload.filename else b""
    try:
        result = batch_recheck.import_recheck(db.session, current_user, batch_id, data,
                                        (upload.filename if upload else "") or "复核.xlsx")
    except ServiceError as exc:
        db.session.rollback()
        return render_template("batches/recheck.html", batch=batch, errors=[str(exc)],
                               result=None), exc.status
    if not result["applied"]:
        db.session.rollback()
        return render_template("batches/recheck.html", batch=batch, errors=result["errors"],
                               result=result), 400
    db.session.commit()
    flash(f"已导入州级复核: 通过 {result['passed']} 个，未通过 {result['failed']} 个 "
          f"(其中退回整改中并计返工 {result['reworked']} 个)", "ok")
    for message in result["warnings"][:50]:
        flash(message, "warn")
    if len(result["warnings"]) > 50:
        flash(f"另有 {len(result['warnings']) - 50} 条提示未显示", "warn")
    return redirect(url_for("batches.show", batch_id=batch_id))
