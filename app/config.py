"""Configuration: a class of defaults, overridden by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from flask import current_app

from app.services.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class Config:
    """Defaults for a local run; production sets everything through the environment."""

    SECRET_KEY = "dev-only-change-me"
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{ROOT / 'instance' / 'sanigrid.db'}"
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    INSTANCE_DIR = str(ROOT / "instance")
    PHOTO_DIR = str(ROOT / "instance" / "photos")
    LAYERS_DIR = str(ROOT / "layers")
    DEMO_DIR = str(ROOT / "layers" / "demo")
    COUNTY_CODE = Settings.county_code
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024
    MAX_PHOTO_BYTES = 10 * 1024 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    # Login throttle (app/services/core/login_throttle.py): Redis when RATELIMIT_STORAGE_URI names
    # it, else the login_throttle table. None: on whenever RATELIMIT_ENABLED is.
    LOGIN_THROTTLE_ENABLED: bool | None = None
    # After `free` failures wait base_s × 2^(n - free) s (at most cap_s); forget after window_s.
    LOGIN_THROTTLE_ACCOUNT: dict = {"free": 5, "base_s": 15, "cap_s": 900, "window_s": 3600}
    # One office or training room behind a NAT shares an address: a much larger budget.
    LOGIN_THROTTLE_ADDRESS: dict = {"free": 100, "base_s": 15, "cap_s": 900, "window_s": 3600}
    DEVICE_COOKIE_DAYS = 180
    # Reverse proxies in front of the app (nginx: 1). Their X-Forwarded-For/-Proto are
    # trusted so rate limits and audit logs see the client's address, not nginx's.
    PROXY_COUNT = 0
    TESTING = False


def config_from_env() -> dict:
    """Read the documented environment variables (DATABASE_URL, SECRET_KEY, ...)."""
    env: dict = {}
    url = os.environ.get("DATABASE_URL")
    if url:
        # SQLAlchemy needs an explicit driver; deployments often write postgres:// URLs.
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        env["SQLALCHEMY_DATABASE_URI"] = url
    for name in ("SECRET_KEY", "COUNTY_CODE", "PHOTO_DIR", "RATELIMIT_STORAGE_URI", "BACKUP_DIR",
                 "SMTP_URL", "NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_KIND"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if os.environ.get("SANIGRID_CJK_FONT"):
        env["CJK_FONT"] = os.environ["SANIGRID_CJK_FONT"]
    if os.environ.get("PROXY_COUNT", "").isdigit():
        env["PROXY_COUNT"] = int(os.environ["PROXY_COUNT"])
    if os.environ.get("SESSION_COOKIE_SECURE", "").lower() in {"1", "true", "yes"}:
        env["SESSION_COOKIE_SECURE"] = True
    return env


def current_settings():
    """Return the services' ``Settings`` for the running Flask app (views and commands only)."""
    return Settings.from_config(current_app.config)
