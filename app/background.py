"""Run a service on a worker thread with an app context and a session of its own."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import current_app

from app.extensions import db


def job_dir() -> Path:
    """Return the folder for background jobs' uploads and progress files (created)."""
    folder = current_app.config.get("JOB_DIR") or Path(current_app.config["INSTANCE_DIR"]) / "jobs"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_in_background(func, *args, name: str = "sanigrid-job") -> threading.Thread:
    """Start ``func(session, *args)`` on a daemon thread; the session is removed after."""
    app = current_app._get_current_object()

    def work() -> None:
        with app.app_context():
            try:
                func(db.session, *args)
            finally:
                db.session.remove()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread
