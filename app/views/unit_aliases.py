"""The admin's table of unit aliases: how feedback lists write a unit's name."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth import admins_only
from app.extensions import db
from app.services.core.errors import ServiceError, TableRowsError, ValidationError
from app.services.tables import unit_names

bp = Blueprint("unit_aliases", __name__, url_prefix="/admin/tables/unit-aliases")


admins_only(bp)


def _page(status: int = 200, error: str | None = None, errors=None):
    units = unit_names.unit_name_choices(db.session)
    return render_template(
        "unit_aliases/index.html",
        tab="unit_aliases",
        rows=unit_names.list_unit_aliases(db.session, current_user),
        units=units,
        short_forms=unit_names.SHORT_FORMS,
        error=error,
        errors=errors or [],
        form=request.form,
        edit=request.args.get("edit", type=int),
    ), status


@bp.get("/")
def index():
    """List the unit aliases; offer add, edit, delete and upload."""
    return _page()


@bp.post("/")
def save():
    """Add an alias, or change one (``alias_id`` names the row being edited)."""
    form = request.form
    alias_id = form.get("alias_id")  # checked by the service: a bad id is 404, not a 500
    try:
        row = unit_names.save_unit_alias(
            db.session, current_user, form.get("alias", ""), form.get("unit", ""),
            alias_id=alias_id, ip=request.remote_addr,
        )
    except ServiceError as exc:  # bad pair (400), row gone (404), taken alias (409)
        db.session.rollback()
        return _page(exc.status, str(exc))
    db.session.commit()
    flash(f"单位别名「{row.alias}」→「{row.unit.name}」已保存", "ok")
    return redirect(url_for("unit_aliases.index"))


@bp.post("/delete")
def delete():
    """Delete one alias."""
    alias = unit_names.delete_unit_alias(
        db.session, current_user, request.form.get("alias_id", ""), ip=request.remote_addr
    )
    db.session.commit()
    flash(f"单位别名「{alias}」已删除", "ok")
    return redirect(url_for("unit_aliases.index"))


@bp.post("/import")
def upload():
    """Merge an uploaded table (别名, 责任单位) into the aliases, all rows or none."""
    file = request.files.get("file")
    if file is None or not file.filename:
        return _page(400, "请选择单位别名表文件 (.xlsx/.xls/.csv)")
    try:
        result = unit_names.import_unit_aliases(
            db.session, current_user, file.read(), file.filename,
            replace=request.form.get("replace") == "1", ip=request.remote_addr,
        )
    except TableRowsError as exc:
        db.session.rollback()
        return _page(400, str(exc), errors=exc.errors)
    except ValidationError as exc:
        db.session.rollback()
        return _page(400, str(exc))
    db.session.commit()
    flash(
        f"单位别名表已导入: 新增 {result['added']} 条, 修改 {result['changed']} 条, "
        f"共 {result['total']} 条",
        "ok",
    )
    return redirect(url_for("unit_aliases.index"))
