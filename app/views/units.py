"""责任片区: a unit's cells, area, communities, contacts and open problems."""

from __future__ import annotations

import io

from flask import Blueprint, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.maps.cells import build_unit_area_map
from app.services.core.access import is_unit_scoped, require
from app.services.grids.assign import list_units, unit_area, units_overview
from app.services.grids.export import export_unit_cells
from app.services.grids.map_data import layer_fc

bp = Blueprint("units", __name__, url_prefix="/units")


@bp.get("/")
@login_required
def my_area():
    """Show the user's own 责任片区, or a unit picker for county staff."""
    require(current_user, "read")
    if is_unit_scoped(current_user):
        unit_id = current_user.unit_id
    else:
        unit_id = request.args.get("unit", type=int)
    if unit_id:
        return redirect(url_for("units.area", unit_id=unit_id))
    overview = units_overview(db.session, current_user)
    return render_template("units/area.html", area=None, parts=None,
                           units=[row["unit"] for row in overview], overview=overview)


@bp.get("/<int:unit_id>")
@login_required
def area(unit_id: int):
    """Show one unit's 责任片区 on a map with its figures and contacts."""
    data = unit_area(db.session, current_user, unit_id)
    parts = build_unit_area_map(
        data["cells_fc"],
        data["bounds"],
        boundary_fc=layer_fc(db.session, "boundary"),
        roads_fc=layer_fc(db.session, "roads"),
    )
    units = [] if is_unit_scoped(current_user) else list_units(db.session, current_user)
    return render_template("units/area.html", area=data, parts=parts, units=units)


@bp.get("/<int:unit_id>/cells.<fmt>")
@login_required
def export_cells(unit_id: int, fmt: str):
    """Download the unit's cells as GeoJSON or KML."""
    data, mime, filename = export_unit_cells(
        db.session, current_user, unit_id, fmt, ip=request.remote_addr
    )
    db.session.commit()
    response = send_file(
        io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=filename, max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response
