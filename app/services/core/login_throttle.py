"""Login throttling: a delay that grows per account and per address, shared by every worker.

Only failures count. Each attempt is charged *before* the password is checked (so a burst of
parallel guesses cannot slip past the limit while the hash is computed) and refunded when the
password turns out right. After ``free`` failures a key must wait ``base_s × 2^(n - free)``
seconds before the next try, capped at ``cap_s``; failures are forgotten ``window_s`` after the
last one. A correct password from a device that signed in to the account before is charged
against that device only, so an attacker elsewhere cannot lock the owner out.

Two stores sit behind :class:`ThrottleStore`: :class:`RedisStore` (production, when
``RATELIMIT_STORAGE_URI`` names Redis) and :class:`DatabaseStore` (the ``login_throttle``
table). Never per-process memory: with N workers it multiplies every limit by N.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import LoginThrottle as LoginThrottleRow
from app.models import now_local

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Policy:
    """How many failures a key gets for free and how the delay grows after that."""

    free: int = 5
    base_s: float = 15.0
    cap_s: float = 900.0
    window_s: float = 3600.0

    def delay(self, failures: int) -> timedelta:
        """Return the wait imposed after ``failures`` consecutive failures."""
        if failures < self.free:
            return timedelta(0)
        # 2 ** 40 overflows nothing in Python, but keep the exponent small anyway.
        seconds = self.base_s * 2 ** min(failures - self.free, 40)
        return timedelta(seconds=min(seconds, self.cap_s))


ACCOUNT_POLICY = Policy(free=5, base_s=15, cap_s=900, window_s=3600)
# Fifty honest people behind one NAT (an office, a training room) share an address.
ADDRESS_POLICY = Policy(free=100, base_s=15, cap_s=900, window_s=3600)


@dataclass
class Counter:
    """The stored state of one key."""

    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None


class ThrottleStore(Protocol):
    """Shared storage of counters; ``update`` must be atomic across workers."""

    def update(
        self, key: str, change: Callable[[Counter], Counter], *, ttl_s: float
    ) -> Counter:
        """Apply ``change`` to the key's counter atomically; return the new counter."""
        ...

    def get(self, key: str) -> Counter:
        """Return the key's counter (a zero counter when there is none)."""
        ...


class DatabaseStore:
    """Counters in the ``login_throttle`` table, for when Redis is not configured.

    Each update is its own committed transaction, so it is visible to every other worker
    before the (slow) password check starts. It therefore commits ``session``: call it before
    the request has changes of its own.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert_missing(self, key: str):
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return (
            insert(LoginThrottleRow.__table__)
            .values(key=key, failures=0)
            .on_conflict_do_nothing(index_elements=["key"])
        )

    def update(
        self, key: str, change: Callable[[Counter], Counter], *, ttl_s: float
    ) -> Counter:
        """Apply ``change`` under a row lock (PostgreSQL) or the write lock (SQLite)."""
        table = LoginThrottleRow.__table__
        try:
            # The INSERT opens a write transaction: on SQLite it takes the database's write
            # lock, so concurrent workers queue here; on PostgreSQL FOR UPDATE locks the row.
            self.session.execute(self._insert_missing(key))
            row = self.session.execute(
                select(table.c.failures, table.c.last_failure_at, table.c.blocked_until)
                .where(table.c.key == key)
                .with_for_update()
            ).one()
            new = change(Counter(row.failures or 0, row.last_failure_at, row.blocked_until))
            if new.failures <= 0:
                self.session.execute(delete(table).where(table.c.key == key))
            else:
                if not row.failures and new.last_failure_at is not None:
                    # A key's first failure: forget keys nobody has tried for longer than
                    # they are remembered, so guessed names do not pile up for ever.
                    stale = new.last_failure_at - timedelta(seconds=ttl_s)
                    self.session.execute(
                        delete(table).where(
                            table.c.key != key,
                            table.c.last_failure_at < stale,
                            (table.c.blocked_until.is_(None))
                            | (table.c.blocked_until < new.last_failure_at),
                        )
                    )
                self.session.execute(
                    update(table)
                    .where(table.c.key == key)
                    .values(
                        failures=new.failures,
                        last_failure_at=new.last_failure_at,
                        blocked_until=new.blocked_until,
                    )
                )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return new

    def get(self, key: str) -> Counter:
        """Return the key's counter as stored."""
        table = LoginThrottleRow.__table__
        row = self.session.execute(
            select(table.c.failures, table.c.last_failure_at, table.c.blocked_until).where(
                table.c.key == key
            )
        ).first()
        if row is None:
            return Counter()
        return Counter(row.failures or 0, row.last_failure_at, row.blocked_until)


class RedisStore:
    """Counters in Redis hashes (WATCH/MULTI), expiring on their own."""

    def __init__(self, client, *, prefix: str = "sanigrid") -> None:
        self.client = client
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}:login-throttle:{key}"

    @staticmethod
    def _decode(raw: dict) -> Counter:
        def when(name: bytes) -> datetime | None:
            value = raw.get(name)
            return datetime.fromisoformat(value.decode()) if value else None

        return Counter(int(raw.get(b"failures", 0) or 0), when(b"last"), when(b"blocked"))

    def update(
        self, key: str, change: Callable[[Counter], Counter], *, ttl_s: float
    ) -> Counter:
        """Apply ``change`` in an optimistic transaction, retried when another worker won."""
        name = self._name(key)
        result: list[Counter] = []

        def transaction(pipe) -> None:
            result.clear()
            new = change(self._decode(pipe.hgetall(name)))
            pipe.multi()
            if new.failures <= 0:
                pipe.delete(name)
            else:
                pipe.hset(
                    name,
                    mapping={
                        "failures": new.failures,
                        "last": new.last_failure_at.isoformat() if new.last_failure_at else "",
                        "blocked": new.blocked_until.isoformat() if new.blocked_until else "",
                    },
                )
                pipe.expire(name, max(1, int(ttl_s)))
            result.append(new)

        self.client.transaction(transaction, name)
        return result[-1]

    def get(self, key: str) -> Counter:
        """Return the key's counter as stored."""
        return self._decode(self.client.hgetall(self._name(key)))


class FallbackStore:
    """Use ``primary`` (Redis) and, while it does not answer, ``fallback`` (the database).

    A Redis outage must not turn every login into a 500, nor switch the throttle off.
    """

    def __init__(
        self,
        primary: ThrottleStore,
        fallback: ThrottleStore,
        *,
        errors: tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], None] = lambda _exc: None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.errors = errors
        self.on_error = on_error

    def update(
        self, key: str, change: Callable[[Counter], Counter], *, ttl_s: float
    ) -> Counter:
        """Update in the primary store, or in the fallback when the primary fails."""
        try:
            return self.primary.update(key, change, ttl_s=ttl_s)
        except self.errors as exc:
            self.on_error(exc)
            return self.fallback.update(key, change, ttl_s=ttl_s)

    def get(self, key: str) -> Counter:
        """Read from the primary store, or from the fallback when the primary fails."""
        try:
            return self.primary.get(key)
        except self.errors as exc:
            self.on_error(exc)
            return self.fallback.get(key)


@dataclass(frozen=True)
class Charge:
    """One key charged for an attempt, with its counter after the charge."""

    kind: str  # "account", "address" or "device"
    key: str
    label: str  # what the audit log shows: the account name or the address
    policy: Policy
    counter: Counter


@dataclass
class Attempt:
    """The outcome of :meth:`LoginThrottle.begin`: go ahead, or wait ``wait``."""

    wait: timedelta = timedelta(0)
    blocked: Charge | None = None
    charges: list[Charge] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        """Whether the password may be checked now."""
        return self.wait <= timedelta(0)


def _safe(part: str) -> str:
    # Keys are at most 160 characters; a long (hostile) name is hashed instead.
    return part if len(part) <= 100 else "sha256-" + hashlib.sha256(part.encode()).hexdigest()


def normalize_username(username: str) -> str:
    """Return the form of a submitted name that accounts are throttled by."""
    return (username or "").strip().lower()


class LoginThrottle:
    """Charge, refund and check login attempts against a shared store.

    Parameters
    ----------
    store
        Where counters live (:class:`RedisStore` or :class:`DatabaseStore`).
    clock
        Returns the current (naive, county) time; :func:`app.models.now_local` by default.
    account, address
        The policies of an account (also used per known device) and of a client address.
    """

    def __init__(
        self,
        store: ThrottleStore,
        *,
        clock: Clock = now_local,
        account: Policy = ACCOUNT_POLICY,
        address: Policy = ADDRESS_POLICY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.account = account
        self.address = address

    def keys_for(
        self, *, username: str, address: str | None, device: str | None = None
    ) -> list[tuple[str, str, str, Policy]]:
        """Return ``(kind, key, label, policy)`` for each key an attempt is charged to."""
        name = normalize_username(username)
        if device:
            # A known device answers for its own failures only: the account's and the
            # address's locks (which strangers can run up) do not apply to it.
            key = f"device:{_safe(device)}:{_safe(name)}"
            return [("device", key, name, self.account)]
        keys = [("account", f"account:{_safe(name)}", name, self.account)]
        if address:
            keys.append(("address", f"address:{_safe(address)}", address, self.address))
        return keys

    def _ttl(self, policy: Policy) -> float:
        return policy.window_s + policy.cap_s

    def begin(self, *, username: str, address: str | None, device: str | None = None) -> Attempt:
        """Charge one failure in advance to each key, unless one of them must still wait.

        Returns
        -------
        Attempt
            ``allowed`` with the charges to settle through :meth:`succeed` or :meth:`fail`;
            or the longest ``wait`` and the key that imposes it (nothing stays charged).
        """
        attempt = Attempt()
        for kind, key, label, policy in self.keys_for(
            username=username, address=address, device=device
        ):
            now = self.clock()
            refused: list[timedelta] = []

            def charge(current: Counter, policy=policy, now=now, refused=refused) -> Counter:
                refused.clear()  # Redis may run this again when another worker won the race
                if current.blocked_until is not None and current.blocked_until > now:
                    refused.append(current.blocked_until - now)
                    return current
                failures = current.failures
                if current.last_failure_at is None or (
                    now - current.last_failure_at
                ).total_seconds() > policy.window_s:
                    failures = 0
                failures += 1
                delay = policy.delay(failures)
                return Counter(failures, now, now + delay if delay else None)

            counter = self.store.update(key, charge, ttl_s=self._ttl(policy))
            entry = Charge(kind, key, label, policy, counter)
            if refused:
                attempt.wait = max(attempt.wait, refused[0])
                attempt.blocked = entry
                break
            attempt.charges.append(entry)
        if not attempt.allowed:
            self._refund(attempt.charges, reset=False)
            attempt.charges = []
        return attempt

    def succeed(self, attempt: Attempt) -> None:
        """Take back the advance charges: a correct password is not a failure.

        The account's (or device's) counter starts again from zero; an address's only loses
        this attempt's charge, so an attacker cannot clear it by signing in to their own
        account now and then.
        """
        self._refund(attempt.charges, reset=True)

    def fail(self, attempt: Attempt) -> list[Charge]:
        """Keep the charges; return those whose key now has to wait (for the audit log)."""
        return [c for c in attempt.charges if c.counter.blocked_until is not None]

    def _refund(self, charges: list[Charge], *, reset: bool) -> None:
        for entry in charges:
            if reset and entry.kind != "address":
                self.store.update(entry.key, lambda _c: Counter(), ttl_s=1)
                continue

            def refund(current: Counter, policy=entry.policy) -> Counter:
                failures = max(0, current.failures - 1)
                if failures == 0:
                    return Counter()
                delay = policy.delay(failures)
                last = current.last_failure_at
                return Counter(failures, last, last + delay if delay and last else None)

            self.store.update(entry.key, refund, ttl_s=self._ttl(entry.policy))

    def wait_for(self, *, username: str, address: str | None, device: str | None = None) -> timedelta:
        """Return how long an attempt would have to wait now (read only)."""
        now = self.clock()
        wait = timedelta(0)
        for _kind, key, _label, _policy in self.keys_for(
            username=username, address=address, device=device
        ):
            counter = self.store.get(key)
            if counter.blocked_until is not None and counter.blocked_until > now:
                wait = max(wait, counter.blocked_until - now)
        return wait


def describe_wait(wait: timedelta) -> str:
    """Return a wait in Chinese words, rounded up to the second ("2 分 5 秒")."""
    seconds = max(1, int(-(-wait.total_seconds() // 1)))
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} 秒"
    return f"{minutes} 分钟" if not rest else f"{minutes} 分 {rest} 秒"
