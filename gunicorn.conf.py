"""Gunicorn settings for SaniGrid: `gunicorn -c gunicorn.conf.py "app:create_app()"`.

Everything comes from the environment (see docs/deploy.md); the defaults suit the
county's 2-core server behind nginx on the same machine.
"""

import multiprocessing
import os
import re

from gunicorn.glogging import Logger

# nginx talks to us on the loopback only; never expose gunicorn directly.
bind = os.environ.get("SANIGRID_BIND", "127.0.0.1:8000")
# Workers are separate processes: nothing a request needs may live in one worker's memory
# (sessions are signed cookies, rate-limit counters are in Redis, data in PostgreSQL).
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
# Threads let a worker overlap database waits; sync workers with 2 threads each.
threads = int(os.environ.get("SANIGRID_THREADS", "2"))
worker_class = "gthread" if threads > 1 else "sync"
# A spreadsheet import or a 30,000-cell map build can take a while; a stuck worker is
# killed and replaced after this many seconds.
timeout = int(os.environ.get("SANIGRID_TIMEOUT", "120"))
graceful_timeout = 30
# Longer than a person pauses between clicks (and than nginx's upstream keep-alive): a
# client reusing a connection the server has just closed gets a reset instead of an answer.
keepalive = int(os.environ.get("SANIGRID_KEEPALIVE", "65"))
# Recycle workers now and then so a slow leak never accumulates. Not too often: a new
# worker rebuilds its caches (map payloads, locator, home page: ~1-2 s of CPU), and at
# 100 requests/s a limit of 2,000 recycled each of 4 workers about every 80 s.
max_requests = int(os.environ.get("SANIGRID_MAX_REQUESTS", "20000"))
max_requests_jitter = 200
# Photos up to 32 MB arrive through nginx, which buffers them; gunicorn sees whole bodies.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips
# Logs to stdout/stderr: systemd's journal keeps them (journalctl -u sanigrid).
accesslog = os.environ.get("SANIGRID_ACCESS_LOG", "-")
errorlog = os.environ.get("SANIGRID_ERROR_LOG", "-")
loglevel = os.environ.get("SANIGRID_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
# Open311 clients may send their token as ``api_key`` in a GET query string; the request
# line is logged, so every secret-bearing parameter is blanked before it is written.
SECRET_PARAMS = re.compile(r"(?i)([?&;](?:api_key|token|access_token|key|password)=)[^&;\s\"]*")


def redact_secrets(text: str) -> str:
    """Blank the values of secret query parameters in a logged request line or URL."""
    return SECRET_PARAMS.sub(r"\1[REDACTED]", text) if text else text


class RedactingLogger(Logger):
    """Gunicorn's logger with secrets blanked in every access-log atom.

    Covers the request line (``%(r)s``), the query (``%(q)s``), the referer and the
    ``{...}i``/``{...}e`` header and environ atoms a custom format might name.
    """

    HIDDEN_HEADERS = ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e")
    QUERY_ATOMS = ("q", "{query_string}e")

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in list(atoms.items()):
            if not isinstance(value, str):
                continue
            if key in self.HIDDEN_HEADERS:
                atoms[key] = "[REDACTED]"
            elif key in self.QUERY_ATOMS:
                atoms[key] = redact_secrets("?" + value)[1:]
            else:
                atoms[key] = redact_secrets(value)
        return atoms


logger_class = RedactingLogger
# Each worker builds its own app (and database pool) after the fork: no connection is
# ever shared between processes.
preload_app = False
proc_name = "sanigrid"


def post_worker_init(worker):
    """Build each worker's cached map payloads and cell locator before it takes traffic.

    A cold 30,000-cell payload takes seconds to build; without this the first map load
    after every start or restart (max_requests recycles workers) would pay for it.
    """
    from app.services.grids.map_layers import warm_caches

    app = worker.wsgi
    try:
        with app.app_context():
            from app.extensions import db

            warm_caches(db.session)
            db.session.remove()
        with app.test_request_context("/"):
            # The home page's Folium HTML for county-wide roles (built once per worker).
            from sqlalchemy import select

            from app.extensions import db
            from app.models import User
            from app.views.main import warm_home_map

            admin = db.session.execute(
                select(User).where(User.role == "admin").limit(1)).scalar()
            if admin is not None:
                warm_home_map(admin)
    except Exception as exc:  # a warm-up must never keep a worker from serving
        worker.log.warning("cache warm-up skipped: %s", exc)
