"""Login throttle shared across workers: with RATELIMIT_STORAGE_URI=redis://... every worker
counts into the same Redis keys, and without Redis into the database (never per-process
memory), so N gunicorn workers do not multiply the login limit by N.

Two app instances stand in for two worker processes (each builds its own store from the
configuration, as each forked worker does). Redis tests skip when no Redis answers.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tests.factories import app_config

REDIS_URI = "redis://127.0.0.1:6379/0"


def _redis():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URI, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return client


@pytest.fixture()
def worker_config(app, _unit_database):
    """Build worker configurations on the (emptied) test database."""

    url, tmp = _unit_database
    prefix = f"sanigrid-test-{uuid.uuid4().hex[:8]}"

    def make(storage: str) -> dict:
        if storage.startswith("redis") and make.redis is None:
            make.redis = _redis()  # skips the test when no Redis answers
        config = app_config(url, tmp)
        config.update(
            RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=storage, RATELIMIT_KEY_PREFIX=prefix
        )
        return config

    make.prefix = prefix
    make.redis = None
    yield make
    if make.redis is not None:
        for key in make.redis.scan_iter(f"*{prefix}*"):
            make.redis.delete(key)


def _attempts(app, n: int, username: str = "west", ip: str = "10.2.0.1") -> list[int]:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return [
        client.post("/login", data={"username": username, "password": f"x{i}"}).status_code
        for i in range(n)
    ]


def test_account_limit_is_shared_between_workers_through_redis(worker_config, session):
    from app import create_app
    from app.models import LoginThrottle

    first = create_app(worker_config(REDIS_URI))
    assert _attempts(first, 3, ip="10.2.0.1") == [401] * 3
    # A second worker, with its own Redis client, carries on from the same count.
    second = create_app(worker_config(REDIS_URI))
    assert _attempts(second, 3, ip="10.2.0.2") == [401, 401, 429]
    page = first.test_client().post("/login", data={"username": "west", "password": "x"})
    assert page.status_code == 429 and "秒后再试" in page.get_data(as_text=True)
    # The counters live in Redis (expiring on their own), not in the database.
    keys = list(worker_config.redis.scan_iter(f"{worker_config.prefix}:login-throttle:*"))
    assert any(b"account:west" in key for key in keys)
    assert all(0 < worker_config.redis.ttl(key) <= 3600 + 900 for key in keys)
    assert session.execute(select(LoginThrottle)).first() is None


def test_memory_uri_falls_back_to_the_shared_database(worker_config, session):
    """memory:// would be per worker; the throttle uses the database table instead."""
    from app import create_app
    from app.models import LoginThrottle

    first = create_app(worker_config("memory://"))
    assert _attempts(first, 4) == [401] * 4
    second = create_app(worker_config("memory://"))
    assert _attempts(second, 2) == [401, 429]
    row = session.get(LoginThrottle, "account:west")
    assert row.failures == 5 and row.blocked_until is not None


def test_storage_uri_comes_from_the_environment(monkeypatch):
    from app.config import config_from_env

    monkeypatch.setenv("RATELIMIT_STORAGE_URI", REDIS_URI)
    assert config_from_env()["RATELIMIT_STORAGE_URI"] == REDIS_URI


def test_behind_nginx_each_client_has_its_own_address_budget(worker_config):
    """PROXY_COUNT=1 trusts nginx's X-Forwarded-For: one client's lockout is not everyone's."""
    from app import create_app

    config = worker_config(REDIS_URI)
    config["PROXY_COUNT"] = 1
    config["LOGIN_THROTTLE_ADDRESS"] = {"free": 10}
    app = create_app(config)
    client = app.test_client()

    def attempt(ip: str, name: str) -> int:
        return client.post(
            "/login",
            data={"username": name, "password": "x"},
            headers={"X-Forwarded-For": ip},
        ).status_code

    # One guess at each of many names: only the address budget applies.
    assert [attempt("10.0.0.1", f"u{i}") for i in range(11)] == [401] * 10 + [429]
    assert attempt("10.0.0.2", "u99") == 401


def test_an_unreachable_redis_falls_back_to_the_database(worker_config, session):
    """A Redis outage neither breaks logins (500) nor switches the throttle off."""
    from app import create_app
    from app.models import LoginThrottle

    config = worker_config("memory://")
    config["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app = create_app(config)
    assert _attempts(app, 6) == [401] * 5 + [429]
    assert session.get(LoginThrottle, "account:west").failures == 5
