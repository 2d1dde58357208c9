"""JSON API: POST /api/v1/patrols plans a patrol (reads are in app/views/api.py)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request, url_for

from app.auth import user_from_bearer
from app.extensions import csrf, db
from app.services import patrols as service
from app.services.errors import ServiceError

bp = Blueprint("patrol_api", __name__, url_prefix="/api/v1")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)


def _error(status: int, message: str, **extra):
    response = jsonify({"error": message, "status": status, **extra})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="sanigrid"'
    return response


@bp.before_request
def _authenticate():
    user = user_from_bearer(request.headers.get("Authorization"))
    if user is None:
        return _error(401, "缺少或无效的 API 令牌 (Authorization: Bearer <token>)")
    g.api_user = user
    return None


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    db.session.rollback()
    field = getattr(exc, "field", None)
    return _error(exc.status, str(exc), **({"field": field} if field else {}))


@bp.post("/patrols")
def create_patrol():
    """Plan a patrol through issues or points along the roads."""
    if not request.get_data().strip():
        body = {}
    else:
        body = request.get_json(force=True, silent=True)
        if body is None:
            return _error(400, "请求体不是有效的 JSON")
    patrol = service.plan_from_json(db.session, g.api_user, body)
    db.session.commit()
    data = service.patrol_summary(patrol)
    data["pdf_url"] = url_for("patrols.pdf", patrol_id=patrol.id, _external=True)
    data["url"] = url_for("patrols.show", patrol_id=patrol.id, _external=True)
    return jsonify(data), 201
