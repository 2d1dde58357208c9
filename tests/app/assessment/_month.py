"""A hand-built month (September 2026) of problems with known assessment figures.

West unit (西区单位), categories 0302 (1 point) and 0305 (2 points):
  W0  found 08-25, deadline 09-01, submitted 09-04, closed 09-05 (late; due in September)
  W1  found 09-02, deadline 09-09, submitted 09-07, closed 09-08 (on time)
  W2  found 09-03, deadline 09-10, 0305, submitted 09-09, sent back 09-10 (rework),
      resubmitted 09-14, closed 09-15 (late)
  W3  found 09-20, deadline 10-05, still open (not due in September)
  W4  found 09-22 at W1's place, same category: a recurrence; deadline 09-29, open (overdue)
East unit (东区单位):
  E1  found 09-05, deadline 09-12, closed 09-11 (on time)
  E2  found 09-06, deadline 09-13, closed 09-12 (on time)
  E3  found 09-15, rejected (never counted)
North unit (北区单位): no problems at all.
"""

from __future__ import annotations

from datetime import date, datetime

from app.services.issues.intake import transition
from tests.factories import east_point, west_point

MONTH = "2026-09"
PREV = "2026-08"

# Expected figures, worked out by hand from the definitions.
EXPECTED = {
    "西区单位": {
        "received": 4,
        "closed": 2,
        "due": 4,
        "closed_on_time": 1,
        "on_time_rate": 0.25,
        "checked": 3,
        "reworked": 1,
        "rework_events": 1,
        "rework_rate": 0.3333,
        "recurrences": 1,
        "recurrence_rate": 0.25,
        "overdue_open": 1,
        "points": 5.0,
    },
    "东区单位": {
        "received": 2,
        "closed": 2,
        "due": 2,
        "closed_on_time": 2,
        "on_time_rate": 1.0,
        "checked": 2,
        "reworked": 0,
        "rework_events": 0,
        "rework_rate": 0.0,
        "recurrences": 0,
        "recurrence_rate": 0.0,
        "overdue_open": 0,
        "points": 2.0,
    },
    "北区单位": {
        "received": 0,
        "closed": 0,
        "due": 0,
        "closed_on_time": 0,
        "on_time_rate": 1.0,
        "checked": 0,
        "reworked": 0,
        "rework_events": 0,
        "rework_rate": 0.0,
        "recurrences": 0,
        "recurrence_rate": 0.0,
        "overdue_open": 0,
        "points": 0.0,
    },
}


def expected_score(figures: dict, formula: dict) -> tuple[float, float]:
    """(deductions, score) for one unit under a formula, straight from the published rule."""
    deductions = (
        formula["problem_weight"] * figures["points"]
        + formula["overdue_points"] * figures["overdue_open"]
        + formula["rework_points"] * figures["rework_events"]
        + formula["recurrence_points"] * figures["recurrences"]
        + formula["on_time_weight"] * (1 - figures["on_time_rate"])
    )
    return round(deductions, 2), round(max(formula["floor"], formula["base"] - deductions), 2)


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{hour:02d}:00:00")


def _run(session, users, head, issue, steps) -> None:
    actors = {
        "dispatch": users["admin"],
        "start": head,
        "submit": head,
        "verify_ok": users["inspector"],
        "verify_fail": users["inspector"],
        "reject": users["admin"],
    }
    for action, day in steps:
        note = "整改不到位" if action == "verify_fail" else None
        transition(session, actors[action], issue.id, action, at=at(day), note=note)
    session.commit()


def build_month(session, factory) -> dict:
    """Create the town and the problems above; return ids by label plus the town."""
    town = factory.town()
    factory.category("0305", "公厕", points=2.0)
    town["north"] = factory.unit("北区单位")
    session.commit()
    users = town["users"]
    west_head, east_head = users["west"], users["east"]
    inspector = users["inspector"]

    def make(point, found: str, deadline: date, category: str = "0302"):
        lon, lat = point
        return factory.issue(
            inspector, lon=lon, lat=lat, category=category, found_at=at(found, 9), deadline=deadline
        )

    ids = {}
    w0 = make(west_point(0), "08-25", date(2026, 9, 1))
    _run(
        session,
        users,
        west_head,
        w0,
        [("dispatch", "08-25"), ("submit", "09-04"), ("verify_ok", "09-05")],
    )
    w1 = make(west_point(1), "09-02", date(2026, 9, 9))
    _run(
        session,
        users,
        west_head,
        w1,
        [("dispatch", "09-02"), ("start", "09-03"), ("submit", "09-07"), ("verify_ok", "09-08")],
    )
    w2 = make(west_point(2), "09-03", date(2026, 9, 10), "0305")
    _run(
        session,
        users,
        west_head,
        w2,
        [
            ("dispatch", "09-03"),
            ("submit", "09-09"),
            ("verify_fail", "09-10"),
            ("submit", "09-14"),
            ("verify_ok", "09-15"),
        ],
    )
    w3 = make(west_point(3), "09-20", date(2026, 10, 5))
    _run(session, users, west_head, w3, [("dispatch", "09-20")])
    w4 = make(west_point(1), "09-22", date(2026, 9, 29))
    _run(session, users, west_head, w4, [("dispatch", "09-22"), ("start", "09-23")])
    e1 = make(east_point(0), "09-05", date(2026, 9, 12))
    _run(
        session,
        users,
        east_head,
        e1,
        [("dispatch", "09-05"), ("submit", "09-10"), ("verify_ok", "09-11")],
    )
    e2 = make(east_point(1), "09-06", date(2026, 9, 13))
    _run(
        session,
        users,
        east_head,
        e2,
        [("dispatch", "09-06"), ("submit", "09-11"), ("verify_ok", "09-12")],
    )
    e3 = make(east_point(2), "09-15", date(2026, 9, 22))
    _run(session, users, east_head, e3, [("reject", "09-15")])
    for label, issue in zip(
        ("W0", "W1", "W2", "W3", "W4", "E1", "E2", "E3"),
        (w0, w1, w2, w3, w4, e1, e2, e3),
        strict=True,
    ):
        ids[label] = issue.id
    return {"town": town, "ids": ids}
