"""Login throttling locks out attackers, not offices; logout ends the session (issue #13, 7-8).

The throttle runs on the database store here (no Redis configured); the Redis store and
two workers sharing it are in test_ratelimit_redis.py.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, LoginThrottle, UserSession
from app.services.core.login_throttle import (
    Counter,
    DatabaseStore,
    Policy,
    describe_wait,
)
from app.services.core.login_throttle import LoginThrottle as Throttle
from tests.factories import AuthActions, app_config, fresh_user_per_request


@pytest.fixture()
def throttled(app):
    """The app with the login throttle on, as production runs it."""
    app.config["LOGIN_THROTTLE_ENABLED"] = True
    return app


def _client(app, ip: str = "10.1.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _wrong(client, username: str, n: int = 1) -> list[int]:
    return [AuthActions(client).login(username, f"guess-{i}").status_code for i in range(n)]


def _expire_locks(session) -> None:
    """Let the current delays run out (as if the wait had passed) in the real store."""
    session.execute(update(LoginThrottle).values(blocked_until=None))
    session.commit()


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# ---------------------------------------------------------------- the service


def test_delay_doubles_after_five_failures_and_is_capped():
    policy = Policy(free=5, base_s=15, cap_s=900, window_s=3600)
    assert [policy.delay(n).total_seconds() for n in range(1, 12)] == [
        0, 0, 0, 0, 15, 30, 60, 120, 240, 480, 900
    ]
    assert policy.delay(60).total_seconds() == 900
    assert describe_wait(timedelta(seconds=15)) == "15 秒"
    assert describe_wait(timedelta(seconds=125.2)) == "2 分 6 秒"
    assert describe_wait(timedelta(minutes=15)) == "15 分钟"


def test_service_charges_waits_and_forgets(session):
    clock = FakeClock()
    throttle = Throttle(DatabaseStore(session), clock=clock)

    def attempt():
        return throttle.begin(username="West", address="10.0.0.9")

    for _ in range(5):
        a = attempt()
        assert a.allowed
        locks = throttle.fail(a)
    assert [(c.kind, c.counter.failures) for c in locks] == [("account", 5)]
    refused = attempt()
    assert not refused.allowed and refused.wait == timedelta(seconds=15)
    assert refused.blocked.kind == "account"
    # A refused attempt is not a failure: waiting out the 15 s gives exactly one more try.
    clock.advance(15)
    sixth = attempt()
    assert sixth.allowed
    throttle.fail(sixth)
    assert attempt().wait == timedelta(seconds=30)
    # The name is throttled case-insensitively; another account is untouched.
    assert throttle.begin(username=" west ", address=None).wait == timedelta(seconds=30)
    assert throttle.begin(username="east", address=None).allowed
    # An hour after the last failure everything is forgotten.
    clock.advance(3601)
    assert attempt().allowed


def test_forgotten_keys_are_removed_from_the_table(session):
    """Guessed names do not pile up: a new key's first failure sweeps keys past their window."""
    clock = FakeClock()
    throttle = Throttle(DatabaseStore(session), clock=clock)
    for name in ("guess1", "guess2", "guess3"):
        throttle.fail(throttle.begin(username=name, address=None))
    assert session.execute(select(LoginThrottle.key)).scalars().all() != []
    before = set(session.execute(select(LoginThrottle.key)).scalars())
    clock.advance(3600 + 900 + 1)  # the window after the last failure, plus the longest wait
    throttle.fail(throttle.begin(username="guess4", address=None))
    after = set(session.execute(select(LoginThrottle.key)).scalars())
    assert not (before & after) and len(after) == 1


def test_success_resets_the_account_but_only_refunds_the_address(session):
    clock = FakeClock()
    store = DatabaseStore(session)
    throttle = Throttle(store, clock=clock)
    for _ in range(4):
        throttle.fail(throttle.begin(username="west", address="10.0.0.9"))
    throttle.succeed(throttle.begin(username="west", address="10.0.0.9"))
    assert store.get("account:west") == Counter()
    assert store.get("address:10.0.0.9").failures == 4  # the success itself left no trace
    # So the owner's four typos do not add up with the next four.
    for _ in range(4):
        assert throttle.begin(username="west", address="10.0.0.9").allowed


def test_parallel_guesses_from_two_workers_get_exactly_five_tries(app, _unit_database):
    """Charged before the password check and locked in the database: no burst slips past."""
    from app import create_app
    from app.extensions import db

    url, tmp = _unit_database
    workers = [create_app(app_config(url, tmp)) for _ in range(2)]
    allowed: list[bool] = []
    errors: list[Exception] = []

    def guess(worker) -> None:
        try:
            with worker.app_context():
                throttle = Throttle(DatabaseStore(db.session))
                allowed.append(throttle.begin(username="west", address=None).allowed)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(workers[i % 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert allowed.count(True) == 5 and allowed.count(False) == 7


# ---------------------------------------------------------------- the login page


def test_forty_correct_logins_from_one_address_pass(throttled, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    for i in range(40):
        response = AuthActions(_client(throttled, "10.1.0.1")).login("alice")
        assert response.status_code == 302, i
    assert session.execute(select(LoginThrottle)).first() is None  # no failure was recorded


def test_wrong_passwords_delay_a_new_device_but_not_a_known_one(throttled, factory, session):
    factory.user("west", "unit_head", factory.unit("西区单位"))
    session.commit()
    owner = _client(throttled, "10.1.0.2")
    assert AuthActions(owner).login("west").status_code == 302
    cookie = owner.get_cookie("device")
    assert cookie is not None and cookie.http_only
    owner.post("/logout")

    attacker = _client(throttled, "10.1.0.3")
    assert _wrong(attacker, "west", 5) == [401] * 5
    refused = AuthActions(attacker).login("west")  # even the right password waits
    assert refused.status_code == 429
    body = refused.get_data(as_text=True)
    assert "15 秒后再试" in body and "锁定" in body
    assert refused.headers["Retry-After"] == "15"
    # A new device with the right password waits too ...
    assert AuthActions(_client(throttled, "10.1.0.4")).login("west").status_code == 429
    # ... but the owner's browser, which signed in before, is let in.
    assert AuthActions(owner).login("west").status_code == 302
    assert owner.get("/").status_code == 200
    # The lock is in the audit log.
    locked = session.execute(select(AuditLog).where(AuditLog.action == "login_locked")).scalars()
    details = [row.detail for row in locked]
    assert any("账号 west 连续失败 5 次" in d and "15 秒" in d for d in details), details
    # Once the delay has passed, the right password from a new device works again.
    _expire_locks(session)
    assert AuthActions(_client(throttled, "10.1.0.4")).login("west").status_code == 302


def test_a_forged_device_cookie_is_a_new_device(throttled, factory, session):
    factory.user("west", "unit_head", factory.unit("西区单位"))
    session.commit()
    attacker = _client(throttled, "10.1.0.3")
    attacker.set_cookie("device", "eyJkIjoiYWJjIiwidSI6WyJ3ZXN0Il19.forged.sig")
    assert _wrong(attacker, "west", 5) == [401] * 5
    assert AuthActions(attacker).login("west").status_code == 429


def test_failures_on_a_known_device_count_against_that_device(throttled, factory, session):
    factory.user("west", "unit_head", factory.unit("西区单位"))
    session.commit()
    office = _client(throttled, "10.1.0.5")
    assert AuthActions(office).login("west").status_code == 302
    office.post("/logout")
    assert _wrong(office, "west", 5) == [401] * 5
    assert AuthActions(office).login("west").status_code == 429  # that browser now waits
    # The account itself was not charged: the owner on a new phone gets straight in.
    assert AuthActions(_client(throttled, "10.1.0.6")).login("west").status_code == 302


def test_an_address_has_a_larger_budget_shared_by_its_accounts(throttled, factory, session):
    throttled.config["LOGIN_THROTTLE_ADDRESS"] = {"free": 8, "base_s": 15, "cap_s": 900}
    factory.user("alice", "inspector")
    factory.user("bob", "inspector")
    session.commit()
    known = _client(throttled, "10.1.0.7")
    assert AuthActions(known).login("bob").status_code == 302
    known.post("/logout")
    sprayer = _client(throttled, "10.1.0.7")
    # One guess each at many names: no account reaches its limit, the address does.
    assert [AuthActions(sprayer).login(f"name{i}", "x").status_code for i in range(8)] == [401] * 8
    assert AuthActions(sprayer).login("name8", "x").status_code == 429
    assert AuthActions(_client(throttled, "10.1.0.7")).login("alice").status_code == 429
    # Another address, and a browser that signed in here before, are not affected.
    assert AuthActions(_client(throttled, "10.1.0.8")).login("alice").status_code == 302
    assert AuthActions(known).login("bob").status_code == 302
    details = [
        row.detail
        for row in session.execute(
            select(AuditLog).where(AuditLog.action == "login_locked")
        ).scalars()
    ]
    assert any("地址 10.1.0.7 连续失败 8 次" in d for d in details), details


def test_two_workers_share_the_counters_through_the_database(throttled, factory, session,
                                                            _unit_database):
    from app import create_app

    factory.user("west", "unit_head", factory.unit("西区单位"))
    session.commit()
    url, tmp = _unit_database
    second = create_app({**app_config(url, tmp), "RATELIMIT_ENABLED": True,
                         "RATELIMIT_STORAGE_URI": "memory://"})
    fresh_user_per_request(second)
    first_client, second_client = _client(throttled), _client(second)
    codes = [AuthActions(c).login("west", f"guess{i}").status_code
             for i, c in enumerate([first_client, second_client] * 6)]
    assert codes == [401] * 5 + [429] * 7


def test_missing_and_real_accounts_take_as_long(app, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    client = app.test_client()

    def timed(username: str) -> float:
        start = time.perf_counter()
        assert AuthActions(client).login(username, "wrong-password").status_code == 401
        return time.perf_counter() - start

    timed("alice"), timed("nobody")  # warm up (the dummy hash is made once per process)
    # Interleaved, so a busy machine slows both sides alike.
    pairs = [(timed("alice"), timed("nobody")) for _ in range(7)]
    real = statistics.median(p[0] for p in pairs)
    missing = statistics.median(p[1] for p in pairs)
    assert 0.5 < missing / real < 2, (real, missing)


# ---------------------------------------------------------------- sessions


def test_a_cookie_captured_before_logout_is_refused(app, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    client = app.test_client()
    assert AuthActions(client).login("alice").status_code == 302
    row = session.execute(select(UserSession)).scalar_one()
    assert row.ip and row.revoked_at is None
    captured = app.test_client()
    for name in ("session", "device"):
        captured.set_cookie(name, client.get_cookie(name).value)
    assert captured.get("/").status_code == 200  # the copy works while the session lives
    client.post("/logout")
    assert client.get("/").status_code == 302
    replay = captured.get("/")
    assert replay.status_code == 302 and "/login" in replay.headers["Location"]
    session.expire_all()
    assert session.get(UserSession, row.id).revoked_at is not None
    # Signing in again starts a new session; the old one stays dead.
    assert AuthActions(client).login("alice").status_code == 302
    assert client.get("/").status_code == 200
    assert captured.get("/").status_code == 302


def test_an_unknown_session_id_signs_the_user_out(app, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    client = app.test_client()
    AuthActions(client).login("alice")
    with client.session_transaction() as sess:
        sess["sid"] = "made-up"
    assert client.get("/").status_code == 302
    with client.session_transaction() as sess:
        sess.pop("sid")
    assert client.get("/").status_code == 302


def test_last_seen_is_written_at_most_once_a_minute(app, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    client = app.test_client()
    AuthActions(client).login("alice")
    row = session.execute(select(UserSession)).scalar_one()
    old = row.last_seen_at - timedelta(minutes=5)
    session.execute(update(UserSession).values(last_seen_at=old))
    session.commit()
    client.get("/")
    session.expire_all()
    seen = session.get(UserSession, row.id).last_seen_at
    assert seen > old + timedelta(minutes=4)
    client.get("/")
    session.expire_all()
    assert session.get(UserSession, row.id).last_seen_at == seen  # within the minute: no write


def test_logout_everywhere_revokes_every_session(app, factory, session):
    factory.user("alice", "inspector")
    session.commit()
    phone, desk = app.test_client(), app.test_client()
    AuthActions(phone).login("alice")
    AuthActions(desk).login("alice")
    desk.post("/logout-everywhere")
    assert phone.get("/").status_code == 302
    session.expire_all()
    rows = session.execute(select(UserSession)).scalars().all()
    assert len(rows) == 2 and all(r.revoked_at is not None for r in rows)
