"""The density map home page."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.maps import (
    add_area,
    add_lines,
    add_remote_density,
    add_remote_issues,
    new_map,
    render_parts,
)
from app.services.grids.map_data import IssueFilters, layer_fc, visible_bounds
from app.services.grids.map_layers import cached_page, page_key

bp = Blueprint("main", __name__)


def filters_from_args(args) -> IssueFilters:
    unit = args.get("unit", type=int)
    return IssueFilters(
        status=args.get("status") or None, category=args.get("category") or None,
        source=args.get("source") or None, unit_id=unit, cell_code=args.get("cell") or None,
        overdue=args.get("overdue") in ("1", "on", "true"),
        date_from=args.get("from") or None, date_to=args.get("to") or None,
    )


def build_home_map(user, query: str = ""):
    """Render the home map's parts for a user's scope (also used to warm the cache)."""
    bounds = visible_bounds(db.session, user)
    m = new_map(bounds=bounds)
    boundary = layer_fc(db.session, "boundary")
    if boundary:
        add_area(m, boundary, name="建成区边界", colour="#333333", weight=2.5, dash="6 4")
    water = layer_fc(db.session, "water")
    if water:
        add_area(m, water, name="河流水系", colour="#4a90c2", fill="#a6cee3", weight=1)
    suffix = f"?{query}" if query else ""
    add_remote_density(m, cells_url=url_for("mapdata.cells"),
                       counts_url=url_for("mapdata.counts") + suffix, fit=False)
    roads = layer_fc(db.session, "roads")
    if roads:
        add_lines(m, roads, name="道路", colour="#7a7a7a", weight=1.4)
    add_remote_issues(m, url=url_for("mapdata.issues") + suffix)
    return render_parts(m)


@bp.get("/")
@login_required
def index():
    """Show the open-problem density map of what the user may see."""
    filters = filters_from_args(request.args)
    query = urlencode({k: v for k, v in request.args.items() if v})
    # Folium rendering and the base layers cost ~100 ms; the page is the same for every
    # user of a scope until a grid or layer changes, so it is built once per process.
    key = page_key(db.session, current_user, query)
    parts = cached_page(key, lambda: build_home_map(current_user, query))
    return render_template("map.html", parts=parts, filters=filters)


def warm_home_map(user) -> None:
    """Build the cached home page for a county-wide user (worker start-up)."""
    key = page_key(db.session, user, "")
    cached_page(key, lambda: build_home_map(user, ""))
