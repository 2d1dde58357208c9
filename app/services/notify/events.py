"""Turn what the workflow has recorded into notices: dispatched, sent back, batch imported.

The services below notify (issues, batches, imports) may not import it, so this module reads
what they already write: ``IssueEvent`` rows and new ``Batch`` rows after a cursor kept in
the ``Setting`` table (key ``notify_cursor``). Bulk paths insert with Core statements; reading
the tables sees them too. Every notice has a key, so a re-run (or two runners at once)
only repeats work and never a notice.

A unit hears of one dispatch run once, not once per problem: the events of one run (same
unit, actor and batch, each within ``RUN_GAP`` of the previous) make one group, keyed by its
first event.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from app.models import Batch, Issue, IssueEvent, IssueUnit, Setting, Unit, User, now_local
from app.services.core.settings import Settings
from app.services.notify.inbox import notify_users

CURSOR_KEY = "notify_cursor"
RUN_GAP = timedelta(minutes=2)  # events of one dispatch run follow each other closely
FIRST_LOOKBACK = timedelta(days=1)  # a first run never floods anyone with old history
# The cursor never passes a row younger than this: a transaction that took an id earlier but
# commits later (PostgreSQL commits out of id order) is still read by the next run. Rows read
# twice are harmless, every notice has a key.
SETTLE = timedelta(minutes=5)
LISTED = 5  # problems named in a notice's body; the link shows the rest


@dataclass
class _Group:
    """The events of one run that concern one unit."""

    kind: str
    unit_id: int
    actor_id: int | None
    batch_id: int | None
    first_id: int
    last_at: datetime
    issues: list[tuple[int, str, str | None]] = field(default_factory=list)


def _read_cursor(session) -> dict | None:
    row = session.get(Setting, CURSOR_KEY)
    return dict(row.value) if row is not None and isinstance(row.value, dict) else None


def _write_cursor(session, value: dict) -> None:
    row = session.get(Setting, CURSOR_KEY)
    if row is not None:
        row.value = value
        session.flush()
        return
    try:
        with session.begin_nested():
            session.add(Setting(key=CURSOR_KEY, value=value))
    except IntegrityError:  # another runner made it first: ours is as good
        row = session.get(Setting, CURSOR_KEY)
        if row is not None:
            row.value = value
    session.flush()


def _kind_of(event: IssueEvent) -> str | None:
    if event.action == "dispatch":
        return "dispatched"
    if event.action == "verify_fail":
        return "sent_back"
    if event.action == "recheck" and event.from_status == "closed" \
            and event.to_status == "rectifying":
        return "sent_back"  # the prefecture's 复核 reopened a settled problem
    return None


def _unit_ids(session, issue_ids: set[int]) -> dict[int, list[int]]:
    """Each issue's lead unit, then its co-units."""
    units: dict[int, list[int]] = defaultdict(list)
    if not issue_ids:
        return units
    ids = sorted(issue_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for issue_id, unit_id in session.execute(
                select(Issue.id, Issue.unit_id).where(Issue.id.in_(chunk))):
            if unit_id is not None:
                units[issue_id].append(unit_id)
        for issue_id, unit_id in session.execute(
                select(IssueUnit.issue_id, IssueUnit.unit_id)
                .where(IssueUnit.issue_id.in_(chunk))):
            if unit_id not in units[issue_id]:
                units[issue_id].append(unit_id)
    return units


def unit_users(session, unit_id: int) -> list[User]:
    """The active accounts of a unit (who hears of its problems)."""
    stmt = select(User).where(User.unit_id == unit_id, User.active.is_(True)).order_by(User.id)
    return list(session.execute(stmt).scalars())


def _group_events(session, events: list[IssueEvent]) -> list[_Group]:
    """Split the events into runs per unit (see the module docstring)."""
    ids = sorted({e.issue_id for e in events})
    issues = {}
    for start in range(0, len(ids), 500):
        issues.update((row.id, row) for row in session.execute(
            select(Issue.id, Issue.batch_id, Issue.description)
            .where(Issue.id.in_(ids[start:start + 500]))))
    units = _unit_ids(session, set(ids))
    open_groups: dict[tuple, _Group] = {}
    groups: list[_Group] = []
    for event in events:
        kind = _kind_of(event)
        info = issues.get(event.issue_id)
        if kind is None or info is None:
            continue
        for unit_id in units.get(event.issue_id, []):
            slot = (kind, unit_id, event.user_id, info.batch_id)
            group = open_groups.get(slot)
            if group is None or event.at - group.last_at > RUN_GAP:
                group = _Group(kind, unit_id, event.user_id, info.batch_id, event.id, event.at)
                open_groups[slot] = group
                groups.append(group)
            group.last_at = event.at
            if all(i[0] != event.issue_id for i in group.issues):
                group.issues.append((event.issue_id, info.description, event.note))
    return groups


def _listing(group: _Group, *, with_note: bool) -> str:
    lines = []
    for issue_id, description, note in group.issues[:LISTED]:
        text = f"#{issue_id} {(description or '')[:40]}"
        if with_note and note:
            text += f" (原因: {note[:60]})"
        lines.append(text)
    if len(group.issues) > LISTED:
        lines.append(f"…等共 {len(group.issues)} 个")
    return "\n".join(lines)


def _notify_group(session, group: _Group, unit_name: str, *, settings: Settings,
                  now: datetime) -> int:
    count = len(group.issues)
    if group.kind == "dispatched":
        title = f"新派遣问题 {count} 个"
        body = f"{unit_name}收到新派遣的问题 {count} 个，请按期整改。\n" \
            + _listing(group, with_note=False)
        url = (f"/batches/{group.batch_id}" if group.batch_id
               else f"/issues/?status=dispatched&unit={group.unit_id}")
    else:
        title = f"退回返工问题 {count} 个"
        body = f"{unit_name}有 {count} 个问题核查未通过，已退回返工。\n" \
            + _listing(group, with_note=True)
        url = (f"/issues/{group.issues[0][0]}" if count == 1
               else f"/issues/?status=rectifying&unit={group.unit_id}")
    return notify_users(
        session, unit_users(session, group.unit_id), event=group.kind,
        key=f"{group.kind}:e{group.first_id}:unit{group.unit_id}", title=title, body=body,
        url=url, issue_id=group.issues[0][0] if count == 1 else None,
        batch_id=group.batch_id, settings=settings, now=now)


def _admins(session) -> list[User]:
    stmt = select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    return list(session.execute(stmt).scalars())


def _notify_batches(session, batches: list[Batch], *, settings: Settings,
                    now: datetime) -> int:
    if not batches:
        return 0
    counts = dict(session.execute(
        select(Issue.batch_id, func.count(Issue.id))
        .where(Issue.batch_id.in_([b.id for b in batches])).group_by(Issue.batch_id)).all())
    admins = _admins(session)
    added = 0
    for batch in batches:
        count = counts.get(batch.id, 0)
        added += notify_users(
            session, admins, event="batch_imported", key=f"batch_imported:{batch.id}",
            title=f"新反馈批次已导入: {batch.name}"[:200],
            body=f"来源 {batch.source}，共 {count} 个问题，请核对后派遣。",
            url=f"/batches/{batch.id}", batch_id=batch.id, settings=settings, now=now)
    return added


def collect_events(session, *, settings: Settings, now: datetime | None = None) -> dict:
    """Notify about everything recorded since the last run, and move the cursor on.

    Parameters
    ----------
    session
        The SQLAlchemy session; the caller commits (the cursor moves in the same
        transaction as the notices, so a failed run is repeated whole).
    settings
        The installation's settings (passed on to the outside channels).
    now
        Beijing time, naive; now by default. The first run ever looks back one day only.

    Returns
    -------
    dict
        ``{"events": N read, "dispatched": notices, "sent_back": notices,
        "batch_imported": notices}``.
    """
    now = now or now_local()
    cursor = _read_cursor(session)
    event_stmt = select(IssueEvent).where(
        or_(IssueEvent.action.in_(("dispatch", "verify_fail")),
            (IssueEvent.action == "recheck") & (IssueEvent.from_status == "closed")))
    batch_stmt = select(Batch)
    if cursor is None:
        since = now - FIRST_LOOKBACK
        event_stmt = event_stmt.where(IssueEvent.at >= since)
        batch_stmt = batch_stmt.where(Batch.created_at >= since)
        last_event = session.execute(select(func.max(IssueEvent.id))).scalar() or 0
        last_batch = session.execute(select(func.max(Batch.id))).scalar() or 0
    else:
        last_event = int(cursor.get("event_id") or 0)
        last_batch = int(cursor.get("batch_id") or 0)
        event_stmt = event_stmt.where(IssueEvent.id > last_event)
        batch_stmt = batch_stmt.where(Batch.id > last_batch)
    events = list(session.execute(event_stmt.order_by(IssueEvent.id)).scalars())
    batches = list(session.execute(batch_stmt.order_by(Batch.id)).scalars())
    result = {"events": len(events), "dispatched": 0, "sent_back": 0, "batch_imported": 0}
    groups = _group_events(session, events)
    names = {} if not groups else dict(session.execute(
        select(Unit.id, Unit.name).where(Unit.id.in_({g.unit_id for g in groups}))).all())
    for group in groups:
        result[group.kind] += _notify_group(session, group, names.get(group.unit_id, ""),
                                            settings=settings, now=now)
    result["batch_imported"] = _notify_batches(session, batches, settings=settings, now=now)
    # The cursor moves only past what has settled: a group still growing, or any row younger
    # than SETTLE, is read again next time (same first event, same key, no second notice).
    settled = now - SETTLE
    if cursor is None:  # a first run: everything before it counts as seen
        seen_event = last_event
    else:
        pending = [g.first_id for g in groups if g.last_at > settled]
        pending += [e.id for e in events if e.at > settled]
        # Not even to just below a young row: an id in the gap before it may still commit.
        below = min(pending) if pending else None
        seen_event = max([e.id for e in events if below is None or e.id < below],
                         default=last_event)
    young = [b.id for b in batches if b.created_at and b.created_at > settled]
    seen_batch = max([b.id for b in batches if cursor is None or not young or b.id < min(young)],
                     default=last_batch)
    _write_cursor(session, {
        "event_id": int(max(seen_event, last_event)),
        "batch_id": int(max(seen_batch, last_batch)),
    })
    return result
