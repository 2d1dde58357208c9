"""Monthly assessment report (考核通报), publishing, appeals and evaluation readiness."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.maps.cells import build_month_density_map
from app.services.assessment import appeals, months, readiness, rules, scoring
from app.services.assessment import excel as report_excel
from app.services.assessment import publish as publishing
from app.services.assessment.charts import line_chart, score_heatmap
from app.services.core import access
from app.services.core.audit import record

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.before_request
@login_required
def _login() -> None:
    """Every report page needs a signed-in user."""


def _scope() -> str:
    return request.values.get("scope") or "unit"


@bp.get("/")
def monthly():
    """Show a month's ranking, red and black lists, formula, map and trends."""
    page = publishing.monthly_page(db.session, current_user, request.args.get("month"), _scope())
    report, trend = page["report"], page["trend"]
    order = [row["unit"] for row in report["ranking"]]
    charts = {
        "categories": line_chart(
            trend["months"], trend["categories"], title="各类问题受理数 (按月)"
        ),
        "scores": score_heatmap(
            trend["months"], trend["scores"], order, title=f"{report['scope_label']}得分走势"
        ),
    }
    return render_template(
        "reports/monthly.html",
        page=page,
        report=report,
        charts=charts,
        parts=build_month_density_map(page["cells"], page["bounds"]),
        scopes=scoring.SCOPES,
        formula_labels=rules.FORMULA_LABELS,
        lists_labels=rules.LISTS_LABELS,
        movement=report_excel.movement_text,
    )


@bp.get("/print")
def print_version():
    """Show the 通报 as a plain A4 page for printing."""
    report = publishing.get_report(
        db.session, current_user, request.args.get("month") or months.default_month(), _scope()
    )
    return render_template(
        "reports/print.html",
        report=report,
        formula_labels=rules.FORMULA_LABELS,
        movement=report_excel.movement_text,
    )


@bp.get("/export.xlsx")
def export():
    """Download the month's 通报 workbook (units, sub-districts, communities, categories)."""
    access.require(current_user, "export")
    month = request.args.get("month") or months.default_month()
    reports = {
        scope: publishing.get_report(db.session, current_user, month, scope)
        for scope in scoring.SCOPES
    }
    body = report_excel.build_workbook(reports)
    record(db.session, current_user, "export_report", f"{month} 考核通报", ip=request.remote_addr)
    db.session.commit()
    name = quote(report_excel.workbook_filename(reports["unit"]))
    return Response(
        body,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


@bp.post("/publish")
def publish():
    """Publish (freeze) a month for every scope; a republish needs a reason."""
    month = request.form.get("month") or ""
    publishing.publish_all(db.session, current_user, month, reason=request.form.get("reason"))
    db.session.commit()
    flash(f"{month} 考核结果已发布", "ok")
    return redirect(url_for("reports.monthly", month=month))


@bp.post("/appeal")
def appeal():
    """Attach an appeal note to one's own unit's row of a published month."""
    month = request.form.get("month") or ""
    appeals.attach_appeal(db.session, current_user, month, request.form.get("note") or "")
    db.session.commit()
    flash("申诉已提交，等待创卫办答复", "ok")
    return redirect(url_for("reports.monthly", month=month))


@bp.post("/appeals/<int:appeal_id>/resolve")
def resolve(appeal_id: int):
    """Answer an appeal (admin)."""
    appeals.resolve_appeal(
        db.session, current_user, appeal_id, request.form.get("resolution") or ""
    )
    db.session.commit()
    flash("申诉已答复", "ok")
    return redirect(url_for("reports.monthly", month=request.form.get("month")))


@bp.post("/settings")
def settings():
    """Save the scoring formula and the red/black list rule (admin)."""
    rules.save_settings(db.session, current_user, request.form)
    db.session.commit()
    flash("计分办法已保存，未发布月份按新办法计算；已发布月份不变", "ok")
    return redirect(url_for("reports.monthly", month=request.form.get("month")))


@bp.get("/<month>/units/<int:unit_id>")
def unit_issues(month: str, unit_id: int):
    """List the problems behind one unit's row, as far as the user may see them."""
    unit, issues = publishing.month_issues(db.session, current_user, month, unit_id)
    return render_template("reports/unit_issues.html", unit=unit, issues=issues, month=month)


@bp.get("/readiness")
def readiness_page():
    """Show the countdown to each evaluation and the open problems that would cost most."""
    data = readiness.readiness(db.session, current_user)
    return render_template(
        "reports/readiness.html",
        data=data,
        levels=readiness.LEVELS,
        may_edit=access.may(current_user, "publish"),
    )


@bp.post("/readiness/calendar")
def readiness_calendar():
    """Save the evaluation dates (admin)."""
    readiness.save_calendar(db.session, current_user, request.form)
    db.session.commit()
    flash("迎检日期已保存", "ok")
    return redirect(url_for("reports.readiness_page"))
