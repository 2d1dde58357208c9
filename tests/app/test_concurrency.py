"""Two people verifying the same problem at the same moment: exactly one wins, the other
gets a clear conflict message, and the history holds one verification.

Each request runs in its own thread with its own app context, session and database
connection; a barrier holds both just before they write, so both have read the problem
in the same state and neither has seen the other's change.
"""

from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.models import Issue, IssueEvent
from app.services.core.passwords import issue_token
from app.services.issues.intake import transition
from tests.factories import west_point

STALE = "该问题已被他人修改"


@pytest.fixture()
def submitted(factory, session):
    """A problem waiting for verification, and API tokens for two verifiers."""
    town = factory.town()
    users = town["users"]
    lon, lat = west_point(0)
    issue = factory.issue(users["inspector"], lon=lon, lat=lat)
    for user, action in (
        (users["admin"], "dispatch"),
        (users["west"], "start"),
        (users["west"], "submit"),
    ):
        transition(session, user, issue.id, action)
        session.commit()
    tokens = {name: issue_token(session, users[name]) for name in ("admin", "inspector")}
    session.commit()
    return {"id": issue.id, "version": session.get(Issue, issue.id).version, "tokens": tokens}


class _WriteBarrier:
    """Hold every flush that changes a problem's status until ``parties`` have arrived."""

    def __init__(self, parties: int = 2) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.arrived = 0

    def __call__(self, session, flush_context, instances):
        if any(isinstance(obj, Issue) for obj in session.dirty):
            self.arrived += 1
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()


@pytest.fixture()
def write_barrier():
    hook = _WriteBarrier()
    event.listen(Session, "before_flush", hook)
    yield hook
    event.remove(Session, "before_flush", hook)


def _race(app, submitted, bodies: list[tuple[str, dict]]) -> list:
    results: list = [None] * len(bodies)

    def worker(i: int, who: str, body: dict) -> None:
        client = app.test_client()
        response = client.post(
            f"/api/v1/issues/{submitted['id']}/actions",
            json=body,
            headers={"Authorization": f"Bearer {submitted['tokens'][who]}"},
        )
        results[i] = (response.status_code, response.get_json())

    threads = [
        threading.Thread(target=worker, args=(i, who, body)) for i, (who, body) in enumerate(bodies)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), results
    return results


@pytest.mark.parametrize("with_version", [True, False], ids=["version-sent", "no-version"])
def test_two_verifiers_at_once_exactly_one_wins(
    app, session, submitted, write_barrier, with_version
):
    version = {"version": submitted["version"]} if with_version else {}
    results = _race(
        app,
        submitted,
        [
            ("admin", {"action": "verify_ok", **version}),
            ("inspector", {"action": "verify_fail", "note": "垃圾仍在", **version}),
        ],
    )
    assert write_barrier.arrived == 2, "both requests must have reached the write together"
    codes = sorted(code for code, _ in results)
    assert codes == [200, 409], results
    winner = next(body for code, body in results if code == 200)
    loser = next(body for code, body in results if code == 409)
    assert STALE in loser["error"]
    session.expire_all()
    issue = session.get(Issue, submitted["id"])
    assert issue.status == winner["status"]
    assert issue.version == submitted["version"] + 1
    verifications = (
        session.execute(
            select(IssueEvent).where(
                IssueEvent.issue_id == issue.id, IssueEvent.action.in_(("verify_ok", "verify_fail"))
            )
        )
        .scalars()
        .all()
    )
    assert len(verifications) == 1
    assert issue.rework_count == (1 if winner["status"] == "rectifying" else 0)


def test_same_action_twice_at_once_is_recorded_once(app, session, submitted, write_barrier):
    results = _race(
        app, submitted, [("admin", {"action": "verify_ok"}), ("inspector", {"action": "verify_ok"})]
    )
    assert sorted(code for code, _ in results) == [200, 409], results
    session.expire_all()
    events = (
        session.execute(
            select(IssueEvent).where(
                IssueEvent.issue_id == submitted["id"], IssueEvent.action == "verify_ok"
            )
        )
        .scalars()
        .all()
    )
    assert len(events) == 1


def test_late_verifier_with_an_old_version_gets_409_and_changes_nothing(client, session, submitted):
    headers = {"Authorization": f"Bearer {submitted['tokens']['admin']}"}
    url = f"/api/v1/issues/{submitted['id']}/actions"
    first = client.post(
        url, json={"action": "verify_ok", "version": submitted["version"]}, headers=headers
    )
    assert first.status_code == 200
    late = client.post(
        url,
        json={"action": "verify_fail", "note": "x", "version": submitted["version"]},
        headers={"Authorization": f"Bearer {submitted['tokens']['inspector']}"},
    )
    assert late.status_code == 409
    assert STALE in late.get_json()["error"]
    session.expire_all()
    assert session.get(Issue, submitted["id"]).status == "closed"
