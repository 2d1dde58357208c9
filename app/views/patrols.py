"""Patrol pages: plan a route, see it on the map, print the sheet, download it, enter results."""

from __future__ import annotations

from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from app.config import current_settings
from app.extensions import db
from app.maps.routes import build_plan_map, build_route_map
from app.models import today_local
from app.services.core import access
from app.services.core.errors import ServiceError, ValidationError
from app.services.grids.map_data import layer_fc, visible_bounds
from app.services.patrols import pdf as pdf_service
from app.services.patrols import plan as planner
from app.services.patrols import records, stops

bp = Blueprint("patrols", __name__, url_prefix="/patrols")


@bp.before_request
@login_required
def _require_login():
    """Every page here needs a signed-in user."""


def _lonlat(text: str | None, field_name: str) -> tuple[float, float] | None:
    text = (text or "").strip()
    return stops.parse_place(text, field_name=field_name) if text else None


def _plan_context(form=None):
    bounds = visible_bounds(db.session, current_user)
    office = planner.default_start(db.session)
    return {
        "form": form or {},
        "selections": stops.SELECTIONS,
        "modes": planner.MODES,
        "units": records.units_for_select(db.session, current_user),
        "issues": records.pickable_issues(db.session, current_user),
        "inspectors": records.inspectors(db.session),
        "sample_types": stops.sample_types(db.session),
        "default_quotas": "，".join(f"{k} {v}" for k, v in stops.DEFAULT_QUOTAS.items()),
        "office": office,
        "patrols": records.list_patrols(db.session, current_user),
        "parts": build_plan_map(
            bounds,
            boundary_fc=layer_fc(db.session, "boundary"),
            roads_fc=layer_fc(db.session, "roads"),
        ),
        "today": today_local().isoformat(),
    }


@bp.get("/")
def plan():
    """Show the planning form and recent patrols."""
    access.require(current_user, "plan_patrol")
    return render_template("patrols/plan.html", **_plan_context())


@bp.post("/")
def create():
    """Choose the stops, plan the route(s) and store them."""
    access.require(current_user, "plan_patrol")
    form = request.form
    try:
        points = [line for line in form.get("points", "").splitlines() if line.strip()]
        planned_for = form.get("planned_for") or None
        if planned_for:
            try:
                planned_for = date.fromisoformat(planned_for)
            except ValueError:
                raise ValidationError(f"计划日期无效: {planned_for!r}") from None
        n_inspectors = form.get("n_inspectors", "1").strip() or "1"
        if not n_inspectors.isdigit():
            raise ValidationError(f"巡查人数应为整数，收到 {n_inspectors!r}")
        patrols = planner.create_patrols(
            db.session,
            current_user,
            form.get("selection", ""),
            {
                "top": form.get("top"),
                "unit_id": form.get("unit_id"),
                "issue_ids": form.getlist("issue_ids"),
                "points": points,
                "quotas": form.get("quotas"),
                "seed": form.get("seed"),
            },
            mode=form.get("mode", "walk"),
            start=_lonlat(form.get("start"), "起点"),
            use_office_start=form.get("office_start") == "1",
            end=_lonlat(form.get("end"), "终点"),
            return_to_start=form.get("return_to_start") == "1",
            n_inspectors=int(n_inspectors),
            name=form.get("name"),
            inspector=form.get("inspector") or None,
            planned_for=planned_for,
        )
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return render_template("patrols/plan.html", **_plan_context(form)), exc.status
    if len(patrols) > 1:
        flash(f"已生成 {len(patrols)} 条巡查路线 (按人数分组，长度均衡)", "ok")
    else:
        flash("巡查路线已生成", "ok")
    return redirect(url_for("patrols.show", patrol_id=patrols[0].id))


@bp.get("/<int:patrol_id>")
def show(patrol_id: int):
    """Show a patrol's route on the map with its stops in order."""
    patrol = records.get_patrol(db.session, current_user, patrol_id)
    rows = records.stop_rows(db.session, current_user, patrol)
    siblings = []
    if patrol.batch:
        siblings = [
            p
            for p in records.list_patrols(db.session, current_user, limit=200)
            if p.batch == patrol.batch
        ]
    return render_template(
        "patrols/show.html",
        patrol=patrol,
        rows=rows,
        siblings=siblings,
        parts=build_route_map(
            patrol.legs,
            start=patrol.start,
            stops=[
                {"lon": r["stop"].lon, "lat": r["stop"].lat, "seq": r["stop"].seq,
                 "address": r["address"]}
                for r in rows
            ],
            roads_fc=layer_fc(db.session, "roads"),
        ),
        modes=planner.MODES,
        results=records.RESULTS,
        may_verify=access.may(current_user, "verify"),
    )


@bp.get("/<int:patrol_id>/print")
def print_sheet(patrol_id: int):
    """Show the A4 print-styled patrol sheet."""
    patrol = records.get_patrol(db.session, current_user, patrol_id)
    rows = records.stop_rows(db.session, current_user, patrol)
    try:
        roads = planner.roads_gdf(db.session)
    except ServiceError:
        roads = None
    sketch = pdf_service.route_sketch(patrol, roads, width=720, height=400)
    return render_template(
        "patrols/print.html",
        patrol=patrol,
        rows=rows,
        sketch=sketch,
        modes=planner.MODES,
        today=today_local().isoformat(),
    )


@bp.get("/<int:patrol_id>/sheet.pdf")
def pdf(patrol_id: int):
    """Download the patrol sheet as an A4 PDF."""
    settings = current_settings()
    data = pdf_service.patrol_pdf(
        db.session,
        current_user,
        patrol_id,
        photo_root=settings.photo_dir,
        cjk_font=settings.cjk_font,
    )
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="patrol-{patrol_id}.pdf"'
    return response


@bp.get("/<int:patrol_id>/route.<fmt>")
def export(patrol_id: int, fmt: str):
    """Download the route as GPX or KML for a phone's navigation app."""
    if fmt not in ("gpx", "kml"):
        abort(404)
    text, filename = records.export_route(db.session, current_user, patrol_id, fmt)
    mimetype = "application/gpx+xml" if fmt == "gpx" else "application/vnd.google-earth.kml+xml"
    response = Response(text, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/<int:patrol_id>/results")
def results_form(patrol_id: int):
    """Show the per-stop results form (phone friendly)."""
    patrol = records.get_patrol(db.session, current_user, patrol_id)
    access.require(current_user, "verify")
    return render_template(
        "patrols/results.html",
        patrol=patrol,
        rows=records.stop_rows(db.session, current_user, patrol),
        results=records.RESULTS,
        categories=records.categories_for_select(db.session),
    )


@bp.post("/<int:patrol_id>/results")
def save_results(patrol_id: int):
    """Save results: close, send back or report problems, and keep remarks per stop."""
    patrol = records.get_patrol(db.session, current_user, patrol_id)
    form = request.form
    entries = [
        {
            "stop_id": stop.id,
            "result": form.get(f"result_{stop.id}"),
            "remark": form.get(f"remark_{stop.id}"),
            "category": form.get(f"category_{stop.id}"),
        }
        for stop in patrol.stops
        if f"result_{stop.id}" in form or f"remark_{stop.id}" in form
    ]
    try:
        summary = records.record_results(db.session, current_user, patrol_id, entries)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        patrol = records.get_patrol(db.session, current_user, patrol_id)
        return render_template(
            "patrols/results.html",
            patrol=patrol,
            form=form,
            rows=records.stop_rows(db.session, current_user, patrol),
            results=records.RESULTS,
            categories=records.categories_for_select(db.session),
        ), exc.status
    parts = []
    if summary["closed"]:
        parts.append(f"销号 {len(summary['closed'])} 个")
    if summary["sent_back"]:
        parts.append(f"退回返工 {len(summary['sent_back'])} 个")
    if summary["created"]:
        parts.append(f"新发现问题 {len(summary['created'])} 个 (已上报)")
    flash("巡查结果已保存" + (f"：{'，'.join(parts)}" if parts else ""), "ok")
    return redirect(url_for("patrols.results_form", patrol_id=patrol_id))
