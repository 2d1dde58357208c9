"""The admin's tables: holiday calendar, geocoder aliases, categories and their synonyms."""

from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth import admins_only
from app.extensions import db
from app.services.core.errors import ServiceError, TableRowsError, ValidationError
from app.services.grids import geocoding
from app.services.tables import categories, category_match, workdays

bp = Blueprint("tables", __name__, url_prefix="/admin/tables")


admins_only(bp)


def _upload() -> tuple[bytes, str] | None:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    return upload.read(), upload.filename


def _holidays_page(status: int = 200, error: str | None = None, errors=None, year=None):
    overview = workdays.calendar_overview(db.session, current_user)
    return render_template(
        "tables/holidays.html",
        error=error,
        errors=errors or [],
        form_year=year or overview["today"].year + 1,
        **overview,
    ), status


# ---------------------------------------------------------------------- holidays


@bp.get("/holidays")
def holidays():
    """List the years with a holiday table; warn of this year or next if missing."""
    return _holidays_page()


@bp.get("/holidays/<int:year>")
def holiday_year(year: int):
    """List one year's holidays and make-up workdays."""
    return render_template(
        "tables/holiday_year.html", **workdays.year_days(db.session, current_user, year)
    )


@bp.post("/holidays/import")
def holiday_preview():
    """Check an uploaded holiday table for one year and show it before replacing."""
    year = request.form.get("year", "")
    upload = _upload()
    if upload is None:
        return _holidays_page(400, "请选择节假日表文件 (.xlsx/.xls/.csv)", year=year)
    try:
        preview = workdays.preview_holiday_file(db.session, current_user, *upload, year)
    except ValidationError as exc:
        return _holidays_page(400, str(exc), year=year)
    payload = json.dumps(
        [{k: r[k] for k in ("row", "date", "type", "name")} for r in preview["rows"]],
        ensure_ascii=False,
    )
    status = 400 if preview["errors"] else 200
    return render_template("tables/holiday_preview.html", payload=payload, **preview), status


@bp.post("/holidays/import/confirm")
def holiday_import():
    """Replace one year's table with the previewed rows (all or nothing)."""
    year = request.form.get("year", "")
    try:
        rows = json.loads(request.form.get("payload") or "[]")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError
    except ValueError:
        return _holidays_page(400, "预览数据无效，请重新上传文件", year=year)
    try:
        result = workdays.import_holiday_rows(
            db.session, current_user, year, rows, ip=request.remote_addr
        )
    except TableRowsError as exc:
        db.session.rollback()
        return _holidays_page(400, str(exc), errors=exc.errors, year=year)
    except ValidationError as exc:
        db.session.rollback()
        return _holidays_page(400, str(exc), year=year)
    db.session.commit()
    flash(
        f"{result['year']} 年节假日已更新: 放假 {result['holidays']} 天, "
        f"调休上班 {result['workdays']} 天",
        "ok",
    )
    return redirect(url_for("tables.holiday_year", year=result["year"]))


# ---------------------------------------------------------------------- aliases


def _aliases_page(status: int = 200, error: str | None = None, errors=None):
    return render_template(
        "tables/aliases.html",
        rows=geocoding.list_aliases(db.session, current_user),
        places=geocoding.place_names(db.session),
        error=error,
        errors=errors or [],
        form=request.form,
        edit=request.args.get("edit"),
    ), status


@bp.get("/aliases")
def aliases():
    """List the geocoder's aliases; offer add, edit, delete and upload."""
    return _aliases_page()


@bp.post("/aliases")
def save_alias():
    """Add an alias, or change one (``old_alias`` names the row being edited)."""
    form = request.form
    try:
        alias, canonical = geocoding.save_alias(
            db.session,
            current_user,
            form.get("alias", ""),
            form.get("canonical", ""),
            old_alias=form.get("old_alias") or None,
            ip=request.remote_addr,
        )
    except ServiceError as exc:  # bad pair (400), renamed row gone (404), taken alias (409)
        db.session.rollback()
        return _aliases_page(exc.status, str(exc))
    db.session.commit()
    flash(f"别名「{alias}」→「{canonical}」已保存", "ok")
    return redirect(url_for("tables.aliases"))


@bp.post("/aliases/delete")
def delete_alias():
    """Delete one alias."""
    alias = geocoding.delete_alias(
        db.session, current_user, request.form.get("alias", ""), ip=request.remote_addr
    )
    db.session.commit()
    flash(f"别名「{alias}」已删除", "ok")
    return redirect(url_for("tables.aliases"))


@bp.post("/aliases/import")
def import_aliases():
    """Merge an uploaded alias table (别名, 标准名称) into the aliases, all rows or none."""
    upload = _upload()
    if upload is None:
        return _aliases_page(400, "请选择别名表文件 (.xlsx/.xls/.csv)")
    try:
        result = geocoding.import_aliases(
            db.session,
            current_user,
            *upload,
            replace=request.form.get("replace") == "1",
            ip=request.remote_addr,
        )
    except TableRowsError as exc:
        db.session.rollback()
        return _aliases_page(400, str(exc), errors=exc.errors)
    except ValidationError as exc:
        db.session.rollback()
        return _aliases_page(400, str(exc))
    db.session.commit()
    flash(
        f"别名表已导入: 新增 {result['added']} 条, 修改 {result['changed']} 条, "
        f"共 {result['total']} 条",
        "ok",
    )
    return redirect(url_for("tables.aliases"))


# ---------------------------------------------------------------------- categories


def _categories_page(status: int = 200, error: str | None = None, errors=None):
    return render_template(
        "tables/categories.html",
        rows=categories.list_categories(db.session, current_user),
        units=categories.unit_choices(db.session),
        pending_days=category_match.pending_deadline_days(db.session),
        error=error,
        errors=errors or [],
        form=request.form,
        edit=request.args.get("edit"),
    ), status


@bp.get("/categories")
def categories_table():
    """List the category table (问题类别); offer edit and upload."""
    return _categories_page()


@bp.post("/categories/<code>")
def save_category(code: str):
    """Change one category's name, deadline, points or functional unit."""
    form = request.form
    try:
        cat = categories.update_category(
            db.session, current_user, code, name=form.get("name", ""),
            deadline_days=form.get("deadline_days", ""), points=form.get("points", ""),
            functional_unit=form.get("functional_unit", ""), ip=request.remote_addr,
        )
    except ServiceError as exc:
        db.session.rollback()
        return _categories_page(exc.status, str(exc))
    db.session.commit()
    flash(f"类别 {cat.label} 已保存", "ok")
    return redirect(url_for("tables.categories_table"))


@bp.post("/categories/import")
def import_categories():
    """Add or update categories from an uploaded table, all rows or none."""
    upload = _upload()
    if upload is None:
        return _categories_page(400, "请选择类别表文件 (.xlsx/.xls/.csv)")
    try:
        result = categories.import_categories(
            db.session, current_user, *upload, replace=request.form.get("replace") == "1",
            ip=request.remote_addr,
        )
    except TableRowsError as exc:
        db.session.rollback()
        return _categories_page(400, str(exc), errors=exc.errors)
    except ValidationError as exc:
        db.session.rollback()
        return _categories_page(400, str(exc))
    db.session.commit()
    flash(
        f"类别表已导入: 新增 {result['added']} 个, 修改 {result['changed']} 个, "
        f"删除 {result['removed']} 个, 共 {result['total']} 个",
        "ok",
    )
    return redirect(url_for("tables.categories_table"))


def _category_aliases_page(status: int = 200, error: str | None = None, errors=None):
    return render_template(
        "tables/category_aliases.html",
        rows=categories.list_aliases(db.session, current_user),
        choices=categories.category_choices(db.session),
        error=error,
        errors=errors or [],
        form=request.form,
        edit=request.args.get("edit"),
    ), status


@bp.get("/category-aliases")
def category_aliases():
    """List the category synonyms (类别别名); offer add, edit, delete and upload."""
    return _category_aliases_page()


@bp.post("/category-aliases")
def save_category_alias():
    """Add a synonym, or change one (``old_alias`` names the row being edited)."""
    form = request.form
    try:
        row = categories.save_alias(
            db.session, current_user, form.get("alias", ""), form.get("category", ""),
            old_alias=form.get("old_alias") or None, ip=request.remote_addr,
        )
    except ServiceError as exc:  # bad pair (400), renamed row gone (404), taken alias (409)
        db.session.rollback()
        return _category_aliases_page(exc.status, str(exc))
    db.session.commit()
    flash(f"类别别名「{row.alias}」→ {row.category_code} 已保存", "ok")
    return redirect(url_for("tables.category_aliases"))


@bp.post("/category-aliases/delete")
def delete_category_alias():
    """Delete one synonym (init-db does not bring a standard one back)."""
    alias = categories.delete_alias(
        db.session, current_user, request.form.get("alias", ""), ip=request.remote_addr
    )
    db.session.commit()
    flash(f"类别别名「{alias}」已删除", "ok")
    return redirect(url_for("tables.category_aliases"))


@bp.post("/category-aliases/import")
def import_category_aliases():
    """Merge an uploaded synonym table (别名, 类别编码), all rows or none."""
    upload = _upload()
    if upload is None:
        return _category_aliases_page(400, "请选择类别别名表文件 (.xlsx/.xls/.csv)")
    try:
        result = categories.import_aliases(
            db.session, current_user, *upload, replace=request.form.get("replace") == "1",
            ip=request.remote_addr,
        )
    except TableRowsError as exc:
        db.session.rollback()
        return _category_aliases_page(400, str(exc), errors=exc.errors)
    except ValidationError as exc:
        db.session.rollback()
        return _category_aliases_page(400, str(exc))
    db.session.commit()
    flash(
        f"类别别名表已导入: 新增 {result['added']} 条, 修改 {result['changed']} 条, "
        f"共 {result['total']} 条",
        "ok",
    )
    return redirect(url_for("tables.category_aliases"))
