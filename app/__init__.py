"""SaniGrid's Flask adapter: create_app() wires config, extensions and blueprints."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app.config import ROOT, Config, config_from_env
from app.extensions import csrf, db, limiter, login_manager, migrate


class IdConverter(IntegerConverter):
    """``<int:...>`` bounded to a database id: ids are 32-bit on PostgreSQL, and a larger
    number in a path is simply not found (404) instead of overflowing the driver (500)."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(config: dict | None = None) -> Flask:
    """Build the application; ``config`` overrides the class and the environment."""
    app = Flask(
        __name__,
        static_folder=str(ROOT / "static"),
        static_url_path="/static",
        instance_path=str(ROOT / "instance"),
    )
    app.url_map.converters["int"] = IdConverter
    app.config.from_object(Config)
    app.config.update(config_from_env())
    if config:
        app.config.update(config)
    if app.config.get("PROXY_COUNT"):
        n = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    Path(app.config["INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(app.config["PHOTO_DIR"]).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录。"

    # Imported here, not at the top: they are this package's children, so a top-level import
    # would make every `import app.<module>` (services, tests, migrations) load all the
    # blueprints and the CLI first (about 0.4 s).
    from app import auth, errors
    from app.views import register_blueprints

    auth.register(app)
    errors.register(app)
    register_blueprints(app)

    from app.cli import register_cli

    register_cli(app)
    return app
