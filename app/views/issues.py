"""Problem pages: list and export, report form, detail with workflow actions, photos, 待定位."""

from __future__ import annotations

import folium
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

from app.extensions import db
from app.maps import add_area, add_lines, new_map, render_parts
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


def _picker_map(layers: dict, *, point: tuple[float, float] | None = None):
    """A small map of the visible cells (and roads) to click a point on."""
    m = new_map(bounds=layers["bounds"])
    if layers["cells"]["features"]:
        add_area(m, layers["cells"], name="责任网格", colour="#555555", weight=0.8)
    if layers.get("roads"):
        add_lines(m, layers["roads"], name="道路", colour="#8a8a8a", weight=1.2)
    if point is not None:
        folium.CircleMarker(
            [point[1], point[0]], radius=8, color="#b71c1c", weight=3, fill=True, fill_opacity=0.4
        ).add_to(m)
    return render_parts(m)


def _detail_map(detail: dict):
    issue = detail["issue"]
    if issue.lon is None:
        return None
    if detail["cell_fc"] is not None:
        minx, miny, maxx, maxy = _bounds(detail["cell_fc"]["geometry"])
    else:
        minx, miny, maxx, maxy = issue.lon, issue.lat, issue.lon, issue.lat
    pad = 0.0006  # about 60 m around the cell: close enough to see the street
    m = new_map(
        bounds=(
            min(minx, issue.lon) - pad,
            min(miny, issue.lat) - pad,
            max(maxx, issue.lon) + pad,
            max(maxy, issue.lat) + pad,
        )
    )
    if detail["cell_fc"] is not None:
        add_area(
            m,
            {"type": "FeatureCollection", "features": [detail["cell_fc"]]},
            name=f"网格 {issue.cell.code}",
            colour="#1f78b4",
            fill="#a6cee3",
            weight=2,
        )
    folium.CircleMarker(
        [issue.lat, issue.lon],
        radius=8,
        color="#ffffff",
        weight=2,
        fill=True,
        fill_color="#b71c1c",
        fill_opacity=0.95,
        tooltip=f"#{issue.id} {issue.status_label}",
    ).add_to(m)
    return render_parts(m)


def _bounds(geometry: dict) -> tuple[float, float, float, float]:
    xs, ys = [], []

    def walk(coords):
        if coords and isinstance(coords[0], (int, float)):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for part in coords:
                walk(part)

    walk(geometry["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def _commit(new_photos) -> None:
    """Commit, and take stored photo files back if the commit itself fails."""
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        photos.remove_files(new_photos)
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
    import io

    from app.models import today_local

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
            result = issue_actions.report_issue(db.session, current_user, data, files)
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
        parts=_picker_map(layers),
    ), status


@bp.get("/queue")
def placement_queue():
    """List problems waiting for manual placement (待定位) with a map to place them."""
    items = issue_queries.placement_queue(db.session, current_user)
    layers = issue_actions.picker_layers(db.session, current_user)
    selected = request.args.get("selected", type=int)
    return render_template(
        "issues/queue.html", items=items, parts=_picker_map(layers), selected=selected
    )


@bp.get("/<int:issue_id>")
def show(issue_id: int):
    """Show one problem: map, fields, photos, history and the actions the user may take."""
    detail = issue_actions.issue_detail(db.session, current_user, issue_id)
    pick_parts = None
    if "place" in detail["actions"]:
        pick_parts = _picker_map(issue_actions.picker_layers(db.session, current_user))
    return render_template(
        "issues/show.html", parts=_detail_map(detail), pick_parts=pick_parts, **detail
    )


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
    path = photos.photo_file(db.session, current_user, issue_id, photo_id, thumb=thumb)
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
