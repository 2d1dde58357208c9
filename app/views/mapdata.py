"""Map layers for the browser: compact, gzip-compressed, cached, scoped to the user."""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask_login import current_user, login_required

from app.extensions import db
from app.services.core import params
from app.services.core.errors import NoActiveGridError
from app.services.grids.cells import active_grid
from app.services.grids.map_data import IssueFilters
from app.services.grids.map_layers import Payload, cells_payload, counts_payload, issues_payload
from app.views.main import filters_from_args

bp = Blueprint("mapdata", __name__, url_prefix="/map")


def _filters(args) -> IssueFilters:
    """The map's filters, with ids and dates checked by the site's parameter parsers."""
    filters = filters_from_args(args)
    filters.unit_id = params.parse_id(args.get("unit"), name="unit")
    day_from = params.parse_date(args.get("from"), name="from")
    day_to = params.parse_date(args.get("to"), name="to")
    if day_from and day_to and day_from > day_to:
        raise params.bad("to", args.get("to"), "早于 from")
    filters.date_from = day_from.isoformat() if day_from else None
    filters.date_to = day_to.isoformat() if day_to else None
    return filters


def _send(payload: Payload, *, max_age: int) -> Response:
    if request.if_none_match and payload.etag in request.if_none_match:
        return Response(status=304, headers={"ETag": f'"{payload.etag}"'})
    accept_gzip = "gzip" in (request.headers.get("Accept-Encoding") or "")
    response = Response(payload.body(accept_gzip), mimetype="application/geo+json")
    if accept_gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding, Cookie, Authorization"
    response.headers["ETag"] = f'"{payload.etag}"'
    response.headers["Cache-Control"] = f"private, max-age={max_age}"
    return response


@bp.get("/cells.geojson")
@login_required
def cells():
    """Return the active grid's cells the user may see."""
    grid = active_grid(db.session)
    if grid is None:
        raise NoActiveGridError()
    return _send(cells_payload(db.session, current_user, grid), max_age=3600)


@bp.get("/counts.json")
@login_required
def counts():
    """Return open-problem counts per visible cell under the map's filters."""
    grid = active_grid(db.session)
    if grid is None:
        raise NoActiveGridError()
    filters = _filters(request.args)
    return _send(counts_payload(db.session, current_user, grid, filters), max_age=0)


@bp.get("/issues.geojson")
@login_required
def issues():
    """Return the placed problems the user may see under the map's filters."""
    filters = _filters(request.args)
    return _send(issues_payload(db.session, current_user, filters), max_age=0)
