"""The density map home page."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.maps.cells import build_density_map
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
    suffix = f"?{query}" if query else ""
    return build_density_map(
        visible_bounds(db.session, user),
        cells_url=url_for("mapdata.cells"),
        counts_url=url_for("mapdata.counts") + suffix,
        problems_url=url_for("mapdata.issues") + suffix,
        boundary_fc=layer_fc(db.session, "boundary"),
        water_fc=layer_fc(db.session, "water"),
        roads_fc=layer_fc(db.session, "roads"),
    )


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
