"""JSON API /api/v1/batches: feedback batches' progress and one-step dispatch."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from app.errors import answer_errors
from app.extensions import csrf, db
from app.services.batches import dispatch as batch_dispatch
from app.services.batches import queries as batch_queries
from app.views.api import api_error, authenticate

bp = Blueprint("batch_api", __name__, url_prefix="/api/v1/batches")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)


# The same bearer-token check and JSON error shape as the rest of /api/v1.
bp.before_request(authenticate)
answer_errors(bp, api_error)


@bp.get("")
def list_batches():
    """List the feedback batches the token's user may see, with their counts."""
    items = batch_queries.list_batches(db.session, g.api_user)
    return jsonify({"items": items, "total": len(items)})


@bp.get("/<int:batch_id>")
def get_batch(batch_id: int):
    """Show one batch's progress (a unit head: their share only)."""
    return jsonify(batch_queries.batch_detail_dict(db.session, g.api_user, batch_id))


@bp.post("/<int:batch_id>/dispatch")
def dispatch(batch_id: int):
    """Dispatch every dispatchable problem of the batch (admins)."""
    result = batch_dispatch.dispatch_batch(db.session, g.api_user, batch_id)
    db.session.commit()
    return jsonify(result.to_dict())
