"""JSON API: POST /api/v1/patrols plans a patrol (reads are in app/views/api.py)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, url_for

from app.errors import answer_errors
from app.extensions import csrf, db
from app.services.patrols import plan as planner
from app.services.patrols import records
from app.views.api import api_error, authenticate, json_body

bp = Blueprint("patrol_api", __name__, url_prefix="/api/v1")
# Bearer tokens only, never cookies: a cross-site form cannot carry the token, so no CSRF.
csrf.exempt(bp)


# The same bearer-token check and JSON error shape as the rest of /api/v1.
bp.before_request(authenticate)
answer_errors(bp, api_error)


@bp.post("/patrols")
def create_patrol():
    """Plan a patrol through issues or points along the roads."""
    patrol = planner.plan_from_json(db.session, g.api_user, json_body())
    db.session.commit()
    data = records.patrol_summary(patrol)
    data["pdf_url"] = url_for("patrols.pdf", patrol_id=patrol.id, _external=True)
    data["url"] = url_for("patrols.show", patrol_id=patrol.id, _external=True)
    return jsonify(data), 201
