"""网格管理: grid versions, make/preview, upload with check, reports, assignment, layers."""

from __future__ import annotations

import io

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from app.background import job_dir, run_in_background
from app.config import current_settings
from app.extensions import db
from app.maps.cells import build_assign_map
from app.maps.zones import build_preview_map, build_zone_map
from app.services.core.access import may, require
from app.services.core.errors import ServiceError
from app.services.grids import build, export, layer_jobs, uploads, versions
from app.services.grids.assign import assign_selected, list_units
from app.services.grids.layers import KIND_LABELS, LAYER_KINDS, list_layers
from app.services.grids.map_data import layer_fc
from gis.errors import GisError

bp = Blueprint("grids", __name__, url_prefix="/grids")


@bp.context_processor
def _permissions():
    return {"may": lambda action: may(current_user, action)}


def _download(data: bytes, mime: str, filename: str):
    response = send_file(
        io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=filename, max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _base_layers() -> dict:
    return {
        "boundary_fc": layer_fc(db.session, "boundary"),
        "roads_fc": layer_fc(db.session, "roads"),
    }


@bp.get("/")
@login_required
def list_grids():
    """List grid versions with their check state, activation and export links."""
    versions.require_grid_reader(current_user)
    return render_template(
        "grids/list.html",
        grids=versions.list_grids(db.session),
        labels=build.METHOD_LABELS,
        formats=export.FORMAT_LABELS,
    )


@bp.post("/<int:grid_id>/activate")
@login_required
def activate(grid_id: int):
    """Activate a checked grid version; problems move to its cells."""
    result = versions.activate(
        db.session, current_user, grid_id, ip=request.remote_addr,
        county_code=current_settings().county_code,
    )
    db.session.commit()
    flash(
        f"网格图层 {grid_id} 已启用: {result['reassigned']} 个问题重新归属网格，"
        f"{result['outside']} 个在网格外",
        "ok",
    )
    return redirect(url_for("grids.list_grids"))


@bp.get("/<int:grid_id>/export/<fmt>")
@login_required
def export_grid(grid_id: int, fmt: str):
    """Download a grid version (a unit head gets their own cells only)."""
    data, mime, filename = export.export_grid(
        db.session, current_user, grid_id, fmt, ip=request.remote_addr
    )
    db.session.commit()
    return _download(data, mime, filename)


@bp.get("/<int:grid_id>/report")
@login_required
def report(grid_id: int):
    """Show the check report of a stored grid with the findings on a map."""
    versions.require_grid_reader(current_user)
    result = versions.grid_report(
        db.session, grid_id, county_code=current_settings().county_code)
    cells, bounds = versions.grid_cells_fc(db.session, current_user, grid_id)
    parts = build_zone_map(cells, bounds, findings=result["findings"], **_base_layers())
    return render_template(
        "grids/report.html",
        grid=result["grid"],
        report=result,
        parts=parts,
        labels=build.METHOD_LABELS,
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def make_grid():
    """Build a candidate grid, preview it on a map with its check, save it as a version."""
    require(current_user, "manage_grid")
    form = {
        k: (request.form.get(k) or "").strip()
        for k in ("method", "boundary", "target_area", "size", "resolution", "name")
    }
    form["method"] = form["method"] or "block"
    context = {
        "form": form,
        "methods": build.METHODS,
        "labels": build.METHOD_LABELS,
        "boundaries": build.boundary_choices(db.session),
        "candidate": None,
        "parts": None,
        "error": None,
    }
    if request.method == "GET":
        return render_template("grids/new.html", **context)
    args = {
        "county_code": current_settings().county_code,
        "boundary_name": form["boundary"] or None,
        "target_area": form["target_area"],
        "size": form["size"],
        "resolution": form["resolution"],
    }
    try:
        if request.form.get("action") == "save":
            grid = build.make_grid(
                db.session, form["method"], **args, user=current_user, name=form["name"] or None
            )
            db.session.commit()
            flash(f"已保存为新版本: 网格图层 {grid.id} ({grid.cell_count} 个网格，未启用)", "ok")
            return redirect(url_for("grids.list_grids"))
        candidate = build.build_candidate(db.session, form["method"], **args)
    except (ServiceError, GisError) as exc:
        db.session.rollback()
        context["error"] = str(exc)
        return render_template("grids/new.html", **context), 400
    cells, bounds = build.candidate_fc(candidate)
    context["candidate"] = candidate
    context["parts"] = build_zone_map(
        cells, bounds, findings=candidate.report["findings"], **_base_layers()
    )
    return render_template("grids/new.html", **context)


@bp.route("/upload", methods=["GET", "POST"])
@login_required
def upload():
    """Upload a grid file; store it as a new version only if it passes the check."""
    require(current_user, "manage_grid")
    if request.method == "GET":
        return render_template("grids/upload.html", report=None, error=None, parts=None)
    upload_file = request.files.get("file")
    try:
        grid = uploads.import_grid_upload(
            db.session,
            current_user,
            upload_file.read() if upload_file else b"",
            upload_file.filename if upload_file else None,
            county_code=current_settings().county_code,
        )
    except versions.GridCheckError as exc:
        db.session.rollback()
        return render_template(
            "grids/upload.html",
            report=exc.report,
            error=str(exc),
            parts=build_preview_map(
                {"type": "FeatureCollection", "features": []},
                _finding_bounds(exc.report),
                findings=exc.report["findings"],
                **_base_layers(),
            ),
        ), 400
    except (ServiceError, GisError) as exc:
        db.session.rollback()
        return render_template("grids/upload.html", report=None, error=str(exc), parts=None), 400
    db.session.commit()
    flash(f"网格已通过检查并导入为网格图层 {grid.id} ({grid.cell_count} 个网格，未启用)", "ok")
    return redirect(url_for("grids.report", grid_id=grid.id))


def _finding_bounds(report: dict):
    points = [f["location"] for f in report["findings"] if f.get("location")]
    if not points:
        return None
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    pad = 0.002
    return (min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad)


@bp.get("/<int:grid_id>/assign")
@login_required
def assign(grid_id: int):
    """Show the grid coloured by unit; pick cells on the map or upload a table."""
    require(current_user, "manage_grid")
    grid = versions.get_grid(db.session, grid_id)
    cells, bounds = versions.grid_cells_fc(db.session, current_user, grid_id)
    parts, layer_name = build_assign_map(cells, bounds, **_base_layers())
    return render_template(
        "grids/assign.html",
        grid=grid,
        parts=parts,
        layer_name=layer_name,
        units=list_units(db.session, current_user),
        error=None,
    )


@bp.post("/<int:grid_id>/assign")
@login_required
def assign_cells(grid_id: int):
    """Assign the cells picked on the map to the chosen unit."""
    count = assign_selected(
        db.session,
        current_user,
        grid_id,
        request.form.get("codes", ""),
        request.form.get("unit_id"),
    )
    db.session.commit()
    flash(f"已分配 {count} 个网格", "ok")
    return redirect(url_for("grids.assign", grid_id=grid_id))


@bp.post("/<int:grid_id>/assign/table")
@login_required
def assign_table(grid_id: int):
    """Assign cells from an uploaded CSV/XLSX of code,unit (all rows or none)."""
    upload_file = request.files.get("file")
    count = uploads.assign_table_upload(
        db.session,
        current_user,
        grid_id,
        upload_file.read() if upload_file else b"",
        upload_file.filename if upload_file else None,
    )
    db.session.commit()
    flash(f"已按表格分配 {count} 个网格", "ok")
    return redirect(url_for("grids.assign", grid_id=grid_id))


@bp.route("/layers", methods=["GET", "POST"])
@login_required
def layers():
    """List the county's layers; admins upload one (imported in the background)."""
    versions.require_grid_reader(current_user)
    error, job = None, None
    wants_json = request.accept_mimetypes.best == "application/json"
    if request.method == "POST":
        require(current_user, "manage_grid")
        upload_file = request.files.get("file")
        try:
            started = layer_jobs.start_layer_job(
                job_dir(),
                current_user,
                upload_file.read() if upload_file else b"",
                upload_file.filename if upload_file else None,
                request.form.get("kind", ""),
                request.form.get("crs") or None,
            )
        except (ServiceError, GisError) as exc:
            error = str(exc)
            if wants_json:
                return {"error": error}, 400
        else:
            token = started["token"]
            run_in_background(
                layer_jobs.run_layer_job, job_dir(), token, current_user.id, name="layer-import"
            )
            status_url = url_for("setup.layer_job", token=token)
            if wants_json:
                return {"token": token, "status_url": status_url}, 202
            return redirect(url_for("grids.layers", job=token))
    elif request.args.get("job"):
        try:
            job = layer_jobs.read_job(job_dir(), request.args["job"], current_user)
            job["token"] = request.args["job"]
        except ServiceError as exc:
            error = str(exc)
    return render_template(
        "grids/layers.html",
        layers=list_layers(db.session),
        formats=export.FORMAT_LABELS,
        kinds=LAYER_KINDS,
        kind_labels=KIND_LABELS,
        error=error,
        job=job,
    ), (400 if error and request.method == "POST" else 200)


@bp.get("/layers/<int:layer_id>/export/<fmt>")
@login_required
def export_layer(layer_id: int, fmt: str):
    """Download a layer in one of the four formats."""
    data, mime, filename = export.export_layer(
        db.session, current_user, layer_id, fmt, ip=request.remote_addr
    )
    db.session.commit()
    return _download(data, mime, filename)
