"""JSON API /api/v1: bearer-token access to cells, issues, units, patrols and reports."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request, send_file, url_for

from app.auth import user_from_bearer
from app.config import current_settings
from app.errors import answer_errors
from app.extensions import csrf, db
from app.services.core import params
from app.services.issues import photos
from app.services.protocols import api as service
from app.services.protocols.openapi import build_openapi

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


def api_error(status: int, message: str, exc: Exception | None = None):
    """The API's JSON error body, naming the field when the error knows it; 401 also names
    the expected scheme."""
    field = getattr(exc, "field", None)
    response = jsonify({"error": message, "status": status, **({"field": field} if field else {})})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sanigrid"'
    return response


# Every /api/v1 blueprint answers errors in this shape (app/errors.py maps them).
answer_errors(bp, api_error)


@bp.before_request
def authenticate():
    """Require a bearer token (never a cookie) on every endpoint but the public ones."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user = user_from_bearer(request.headers.get("Authorization"))
    if user is None:
        return api_error(401, "缺少或无效的 API 令牌 (Authorization: Bearer <token>)")
    g.api_user = user
    return None


def json_body():
    """The request's JSON body ({} when empty): 415 unless declared JSON, 400 when too
    large, nested deeper than 32 levels or not JSON (checked before it is decoded)."""
    length = request.content_length
    if length is not None and length > params.MAX_JSON_BYTES:
        # Refused before the body is read at all.
        return params.parse_json_body(b"", length=length)
    return params.parse_json_body(
        request.get_data(cache=True), mimetype=request.mimetype, length=length
    )


@bp.get("/openapi.json")
def openapi():
    """Return the OpenAPI 3.0 document of this API (public)."""
    return jsonify(build_openapi())


@bp.get("/issues")
def list_issues():
    """List issues the token's user may see."""
    return jsonify(service.list_issues(db.session, g.api_user, request.args))


@bp.post("/issues")
def create_issue():
    """Report a new issue."""
    status, data = service.create_issue_from_json(db.session, g.api_user, json_body())
    db.session.commit()
    return jsonify(data), status


@bp.get("/issues/<int:issue_id>")
def get_issue(issue_id: int):
    """Show one issue with its events and photos."""
    return jsonify(service.issue_detail(db.session, g.api_user, issue_id))


@bp.post("/issues/<int:issue_id>/actions")
def act_on_issue(issue_id: int):
    """Move an issue along the workflow (optimistic locking by version)."""
    data = service.act_on_issue(db.session, g.api_user, issue_id, json_body())
    db.session.commit()
    return jsonify(data)


@bp.post("/issues/<int:issue_id>/photos")
def add_issue_photos(issue_id: int):
    """Add before/after photos to an issue (multipart: kind, version, photo files)."""
    files = request.files.getlist("photo") or request.files.getlist("photos")
    settings = current_settings()
    data, rows = service.add_issue_photos(db.session, g.api_user, issue_id, request.form, files,
                                          settings=settings)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        photos.remove_files(rows, photo_dir=settings.photo_dir)
        raise
    return jsonify(data), 201


@bp.post("/issues/<int:issue_id>/place")
def place_issue(issue_id: int):
    """Place a 待定位 issue at a coordinate."""
    data = service.place_issue(db.session, g.api_user, issue_id, json_body())
    db.session.commit()
    return jsonify(data)


@bp.get("/issues/<int:issue_id>/photos/<int:photo_id>")
def get_photo(issue_id: int, photo_id: int):
    """Send a photo of an issue the user may see."""
    path = service.photo_path(db.session, g.api_user, issue_id, photo_id,
                              photo_dir=current_settings().photo_dir)
    return send_file(path, max_age=0)


@bp.get("/cells")
def list_cells():
    """List the active grid's cells (JSON or GeoJSON)."""
    data = service.list_cells(db.session, g.api_user, request.args)
    response = jsonify(data)
    if data.get("type") == "FeatureCollection":
        response.mimetype = "application/geo+json"
    return response


@bp.get("/cells/<int:cell_id>")
def get_cell(cell_id: int):
    """Show one cell with its geometry."""
    return jsonify(service.cell_detail(db.session, g.api_user, cell_id))


@bp.get("/units")
def list_units():
    """List responsible units."""
    return jsonify(service.list_units(db.session, g.api_user, request.args))


@bp.get("/units/<int:unit_id>")
def get_unit(unit_id: int):
    """Show one responsible unit."""
    return jsonify(service.unit_detail(db.session, g.api_user, unit_id))


@bp.get("/patrols")
def list_patrols():
    """List planned patrols."""
    return jsonify(service.list_patrols(db.session, g.api_user, request.args))


@bp.get("/patrols/<int:patrol_id>")
def get_patrol(patrol_id: int):
    """Show one patrol with its stops in visiting order."""
    data = service.patrol_detail(db.session, g.api_user, patrol_id)
    # The route sheet lives in the patrols area; link it when that area is installed.
    if "patrols.pdf" in current_app.view_functions:
        data["pdf_url"] = url_for("patrols.pdf", patrol_id=patrol_id, _external=True)
    return jsonify(data)


@bp.get("/reports")
def list_reports():
    """List published monthly assessments."""
    return jsonify(service.list_reports(db.session, g.api_user, request.args))
