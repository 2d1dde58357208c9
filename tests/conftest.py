"""Shared fixtures: real databases (SQLite, or PostgreSQL when DATABASE_URL is set).

Two databases per run: ``app`` gives each test an empty schema with small factories;
``demo_app`` is seeded once with the demo county seat for tests that need a whole town.
The builders themselves live in ``tests/factories.py``; here they become fixtures
(``factory``, and ``auth``/``demo_auth`` to sign a client in).
"""

from __future__ import annotations

import os

import pytest

from tests.factories import (
    ROOT,
    AuthActions,
    Factory,
    app_config,
    empty_tables,
    fresh_user_per_request,
    make_database,
    migrate,
)

# Property tests explore new random inputs on every developer run, but CI must not fail
# one day and pass the next on the same code: there they replay a fixed sequence.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a dev dependency
    pass


@pytest.fixture(scope="session")
def _unit_database(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("db")
    url, drop = make_database("unit", tmp)
    from app import create_app

    app = create_app(app_config(url, tmp))
    migrate(app)
    yield url, tmp
    with app.app_context():
        drop()


@pytest.fixture()
def app(_unit_database):
    """An app on an empty (migrated) database; each test starts from no rows."""
    from app import create_app
    from app.services.core.cache import reset_caches

    url, tmp = _unit_database
    app = create_app(app_config(url, tmp))
    fresh_user_per_request(app)
    empty_tables(app)
    reset_caches()  # ids and versions restart with every emptied database
    with app.app_context():
        yield app
        from app.extensions import db

        db.session.remove()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def session(app):
    from app.extensions import db

    return db.session


@pytest.fixture(scope="session")
def demo_app(tmp_path_factory):
    """An app whose database holds the seeded demo county seat (built once per run)."""
    tmp = tmp_path_factory.mktemp("demo")
    url, drop = make_database("demo", tmp)
    from app import create_app

    app = create_app(app_config(url, tmp))
    fresh_user_per_request(app)
    migrate(app)
    with app.app_context():
        from app.extensions import db
        from app.services.ops.seed import seed_demo

        seed_demo(db.session, ROOT / "layers" / "demo", county_code="532599", log=lambda *_: None)
        db.session.commit()
        db.session.remove()
    yield app
    with app.app_context():
        drop()


@pytest.fixture()
def demo_client(demo_app):
    with demo_app.app_context():
        yield demo_app.test_client()


@pytest.fixture()
def factory(session):
    """Small builders: units, users, a 4×4 grid split between two units, categories."""
    return Factory(session)


@pytest.fixture()
def auth(client):
    """Sign ``client`` in and out: ``auth.login("west")``, ``auth.logout()``."""
    return AuthActions(client)


@pytest.fixture()
def demo_auth(demo_client):
    """Sign ``demo_client`` in: ``demo_auth.login("admin", "demo1234")``."""
    return AuthActions(demo_client)
