"""Rate limits shared across workers: with RATELIMIT_STORAGE_URI=redis://... every worker
counts into the same buckets, so N gunicorn workers do not multiply the login limit by N.

Two app instances stand in for two worker processes (each builds its own limiter storage
from the URI, as each forked worker does). Skipped when no Redis answers on 127.0.0.1.
"""

from __future__ import annotations

import uuid

import pytest

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
def worker_config(_unit_database):
    from tests.conftest import _config

    url, tmp = _unit_database
    prefix = f"sanigrid-test-{uuid.uuid4().hex[:8]}"
    client = _redis()

    def make(storage: str) -> dict:
        config = _config(url, tmp)
        config.update(
            RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=storage, RATELIMIT_KEY_PREFIX=prefix
        )
        return config

    yield make
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def _login_attempts(app, n: int, username: str = "nobody") -> list[int]:
    client = app.test_client()
    with app.app_context():
        return [
            client.post("/login", data={"username": f"{username}{i}", "password": "x"}).status_code
            for i in range(n)
        ]


def test_login_limit_is_shared_between_workers_through_redis(worker_config):
    from app import create_app

    first = create_app(worker_config(REDIS_URI))
    codes = _login_attempts(first, 11)
    assert codes[:10] == [401] * 10 and codes[10] == 429
    # a second worker, with its own limiter built from the same URI, sees the same count
    second = create_app(worker_config(REDIS_URI))
    assert _login_attempts(second, 1) == [429]
    page = second.test_client().post("/login", data={"username": "a", "password": "b"})
    assert page.status_code == 429
    assert "登录" in page.get_data(as_text=True) or "频繁" in page.get_data(as_text=True)


def test_memory_storage_is_per_process(worker_config):
    """Why production must not use memory://: another worker starts from zero."""
    from app import create_app

    first = create_app(worker_config("memory://"))
    assert _login_attempts(first, 11)[-1] == 429
    second = create_app(worker_config("memory://"))
    assert _login_attempts(second, 1) == [401]


def test_storage_uri_comes_from_the_environment(monkeypatch):
    from app.config import config_from_env

    monkeypatch.setenv("RATELIMIT_STORAGE_URI", REDIS_URI)
    assert config_from_env()["RATELIMIT_STORAGE_URI"] == REDIS_URI


def test_behind_nginx_each_client_has_its_own_login_limit(worker_config):
    """PROXY_COUNT=1 trusts nginx's X-Forwarded-For: one client's lockout is not everyone's."""
    from app import create_app

    config = worker_config("memory://")
    config["PROXY_COUNT"] = 1
    app = create_app(config)
    client = app.test_client()
    with app.app_context():

        def attempt(ip: str) -> int:
            return client.post(
                "/login",
                data={"username": f"u{ip}", "password": "x"},
                headers={"X-Forwarded-For": ip},
            ).status_code

        assert [attempt("10.0.0.1") for _ in range(11)][-1] == 429
        assert attempt("10.0.0.2") == 401
