"""JSON API: POST /api/v1/patrols plans a patrol (reads are in app/views/api.py)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, url_for

from app.extensions import csrf, db
from app.services.core.errors import ServiceError
from app.services.patrols import patrols as service
from app.views.api import authenticate, json_body, service_error

bp = Blueprint("patrol_api", __name__, url_prefix="/api/v1")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)


# The same bearer-token check and JSON error shape as the rest of /api/v1.
bp.before_request(authenticate)
bp.register_error_handler(ServiceError, service_error)


@bp.post("/patrols")
def create_patrol():
    """Plan a patrol through issues or points along the roads."""
    patrol = service.plan_from_json(db.session, g.api_user, json_body())
    db.session.commit()
    data = service.patrol_summary(patrol)
    data["pdf_url"] = url_for("patrols.pdf", patrol_id=patrol.id, _external=True)
    data["url"] = url_for("patrols.show", patrol_id=patrol.id, _external=True)
    return jsonify(data), 201
