"""Problem pages: list and export, report form, detail with workflow actions, photos, 待定位."""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required

from app.config import current_settings
from app.extensions import db
from app.maps.problems import build_picker_map, build_problem_map
from app.models import today_local
from app.services.core import access
from app.services.core.errors import ServiceError
from app.services.issues import actions as issue_actions
from app.services.issues import photos
from app.services.issues import queries as issue_queries
from app.services.issues.intake import IssueInput

bp = Blueprint("issues", __name__, url_prefix="/issues")


@bp.before_request
@login_required
def _require_login():
    """Every page here needs a signed-in user."""


def _commit(new_photos) -> None:
    """Commit, and take stored photo files back if the commit itself fails."""
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        photos.remove_files(new_photos, photo_dir=current_settings().photo_dir)
        raise


@bp.get("/")
def list_issues():
    """List the problems the user may see, filtered and paginated."""
    filters = issue_queries.parse_filters(request.args)
    page = issue_queries.list_issues(
        db.session, current_user, filters, page=request.args.get("page", 1, type=int)
    )
    args = issue_queries.filter_args(filters)
    return render_template(
        "issues/list.html",
        page=page,
        filters=filters,
        args=args,
        choices=issue_queries.filter_choices(db.session, current_user),
        may_export=access.may(current_user, "export"),
    )


@bp.get("/export.xlsx")
def export():
    """Download the filtered list as an Excel workbook."""
    filters = issue_queries.parse_filters(request.args)
    data = issue_queries.export_issues_xlsx(db.session, current_user, filters)
    db.session.commit()  # the audit row
    response = send_file(
        io.BytesIO(data),
        as_attachment=True,
        download_name=f"问题清单-{today_local():%Y%m%d}.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/new", methods=["GET", "POST"])
def new_issue():
    """Show the report form; report a problem with its photos."""
    access.require(current_user, "report")
    form = request.form
    status = 200
    error = None
    if request.method == "POST":
        data = IssueInput(
            description=form.get("description", ""),
            category=form.get("category") or None,
            address=form.get("address") or None,
            lon=form.get("lon") or None,
            lat=form.get("lat") or None,
            coord_system=form.get("crs") or "wgs84",
            # Blank: the reporter's default source; the access rule refuses any other
            # source than the form offers (a unit head: 自查 only).
            source=form.get("source") or None,
        )
        files = [f for f in request.files.getlist("photos") if f and f.filename]
        try:
            result = issue_actions.report_issue(db.session, current_user, data, files,
                                                settings=current_settings())
            _commit(result.photos)
        except ServiceError as exc:
            db.session.rollback()
            error, status = str(exc), exc.status
        else:
            issue = result.issue
            for message in result.warnings:
                flash(message, "warn")
            if access.can_read_issue(current_user, issue):
                flash(f"问题 #{issue.id} 已上报", "ok")
                return redirect(url_for("issues.show", issue_id=issue.id))
            # Never name the unit a point belongs to: the reporter may not read it.
            flash(f"问题 #{issue.id} 已上报，等待创卫办定位和派遣", "ok")
            return redirect(url_for("issues.list_issues"))
    layers = issue_actions.picker_layers(db.session, current_user)
    return render_template(
        "issues/new.html",
        form=form,
        error=error,
        sources=access.filing_sources(current_user),
        default_source=access.default_source(current_user),
        groups=issue_queries.category_groups(db.session),
        coord_systems=issue_actions.COORD_SYSTEMS,
        parts=build_picker_map(layers),
    ), status


@bp.get("/queue")
def placement_queue():
    """List problems waiting for manual placement (待定位) with a map to place them."""
    items = issue_queries.placement_queue(db.session, current_user)
    layers = issue_actions.picker_layers(db.session, current_user)
    selected = request.args.get("selected", type=int)
    return render_template(
        "issues/queue.html", items=items, parts=build_picker_map(layers), selected=selected
    )


@bp.get("/<int:issue_id>")
def show(issue_id: int):
    """Show one problem: map, fields, photos, history and the actions the user may take."""
    detail = issue_actions.issue_detail(db.session, current_user, issue_id)
    pick_parts = None
    if "place" in detail["actions"]:
        pick_parts = build_picker_map(issue_actions.picker_layers(db.session, current_user))
    issue = detail["issue"]
    parts = build_problem_map(
        lon=issue.lon, lat=issue.lat, label=f"#{issue.id} {issue.status_label}",
        cell_feature=detail["cell_fc"],
    )
    return render_template("issues/show.html", parts=parts, pick_parts=pick_parts, **detail)


@bp.post("/<int:issue_id>/act/<action>")
def act(issue_id: int, action: str):
    """Take a workflow action (dispatch, start, submit, verify, reject, reroute...)."""
    form = request.form
    files = [f for f in request.files.getlist("photos") if f and f.filename]
    issue, new_photos = issue_actions.act(
        db.session,
        current_user,
        issue_id,
        action,
        expected_version=form.get("version"),
        settings=current_settings(),
        note=form.get("note", ""),
        files=files,
        unit_id=form.get("unit_id"),
        duplicate_of=form.get("duplicate_of"),
    )
    _commit(new_photos)
    label = issue_actions.ACTION_LABELS.get(action, action)
    flash(f"问题 #{issue_id}: 已{label}", "ok")
    if not access.can_read_issue(current_user, issue):
        return redirect(url_for("issues.list_issues"))
    return redirect(url_for("issues.show", issue_id=issue_id))


@bp.post("/<int:issue_id>/place")
def place(issue_id: int):
    """Place a 待定位 problem at a clicked point or a geocoder candidate."""
    form = request.form
    issue = issue_actions.place(
        db.session,
        current_user,
        issue_id,
        form.get("lon"),
        form.get("lat"),
        expected_version=form.get("version"),
    )
    db.session.commit()
    cell = issue.cell.code if issue.cell else "网格外"
    flash(f"问题 #{issue_id} 已定位 (网格 {cell})", "ok")
    if form.get("next") == "queue":
        return redirect(url_for("issues.placement_queue"))
    return redirect(url_for("issues.show", issue_id=issue_id))


def _send_photo(issue_id: int, photo_id: int, *, thumb: bool):
    path = photos.photo_file(db.session, current_user, issue_id, photo_id,
                             photo_dir=current_settings().photo_dir, thumb=thumb)
    response = send_file(path, max_age=3600, conditional=True)
    # Photos are evidence about named units: never in shared caches.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/<int:issue_id>/photos/<int:photo_id>")
def photo(issue_id: int, photo_id: int):
    """Send a photo (EXIF stripped) of a problem the user may see."""
    return _send_photo(issue_id, photo_id, thumb=False)


@bp.get("/<int:issue_id>/photos/<int:photo_id>/thumb")
def photo_thumb(issue_id: int, photo_id: int):
    """Send a photo's thumbnail."""
    return _send_photo(issue_id, photo_id, thumb=True)
