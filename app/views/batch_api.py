"""JSON API /api/v1/batches: feedback batches' progress and one-step dispatch."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from app.auth import user_from_bearer
from app.extensions import csrf, db
from app.services.batches import batches
from app.services.core.errors import ServiceError
from app.views.api import api_error

bp = Blueprint("batch_api", __name__, url_prefix="/api/v1/batches")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)


@bp.before_request
def authenticate():
    """Require a bearer token (never a cookie), as the rest of the API does."""
    user = user_from_bearer(request.headers.get("Authorization"))
    if user is None:
        return api_error(401, "缺少或无效的 API 令牌 (Authorization: Bearer <token>)")
    g.api_user = user
    return None


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError):
    """Map a service error to the API's JSON error shape."""
    db.session.rollback()
    field = getattr(exc, "field", None)
    return api_error(exc.status, str(exc), **({"field": field} if field else {}))


@bp.get("")
def list_batches():
    """List the feedback batches the token's user may see, with their counts."""
    items = batches.list_batches(db.session, g.api_user)
    return jsonify({"items": items, "total": len(items)})


@bp.get("/<int:batch_id>")
def get_batch(batch_id: int):
    """Show one batch's progress (a unit head: their share only)."""
    return jsonify(batches.batch_detail_dict(db.session, g.api_user, batch_id))


@bp.post("/<int:batch_id>/dispatch")
def dispatch(batch_id: int):
    """Dispatch every dispatchable problem of the batch (admins)."""
    result = batches.dispatch_batch(db.session, g.api_user, batch_id)
    db.session.commit()
    return jsonify(result.to_dict())
