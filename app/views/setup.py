"""系统初始化检查: the admin's page of what the county has and lacks; layer-job progress."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user, login_required

from app.background import job_dir
from app.extensions import db
from app.services.core.access import require
from app.services.grids import layer_jobs
from app.services.ops.setup_check import run_setup_check, strict_failures, summary

bp = Blueprint("setup", __name__, url_prefix="/admin/setup")


@bp.get("/")
@login_required
def check():
    """Show every setup check with its status, count and the link or command that fixes it."""
    require(current_user, "manage_users")
    checks = run_setup_check(db.session, county_code=current_app.config.get("COUNTY_CODE"))
    return render_template(
        "setup/check.html",
        checks=checks,
        counts=summary(checks),
        failures=strict_failures(checks),
    )


@bp.get("/layer-jobs/<token>")
@login_required
def layer_job(token: str):
    """Answer a background layer import's progress as JSON (polled by the layers page)."""
    require(current_user, "manage_grid")
    record = layer_jobs.read_job(job_dir(), token, current_user)
    record.pop("user_id", None)
    return record
