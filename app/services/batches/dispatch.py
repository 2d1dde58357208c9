"""反馈批次, dispatched: preview and one-step dispatch, and settling routing conflicts.

Dispatch goes through the one workflow (``issues.intake.transition``), so each dispatched
problem gets its event and only admins may do it; a second dispatch of the same batch
dispatches nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.models import Cell, Issue, Unit, User
from app.services.batches.queries import get_batch, natural_key
from app.services.core import access
from app.services.core.errors import ConflictError, NotFoundError, ValidationError
from app.services.core.params import parse_typed_id
from app.services.core.text import clean_text
from app.services.issues.intake import add_event, reroute, transition
from app.services.tables.unit_routing import decide_unit

# Why a problem is not dispatched, in the order they are checked.
SKIP_REASONS = {
    "closed": "已结束 (销号/不予立案/重复)",
    "dispatched": "已派遣",
    "needs_placement": "待定位，请先定位",
    "pending_category": "待分类，请先确定类别",
    "no_unit": "没有责任单位",
    "raced": "已被另一次派遣处理 (本批次已在派遣中或已派遣)",
}
MAX_DISPATCH = 20_000


@dataclass
class DispatchResult:
    """What one dispatch did: problems per unit and those skipped with the reason."""

    per_unit: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    @property
    def dispatched(self) -> int:
        return sum(self.per_unit.values())

    def to_dict(self) -> dict:
        return {"dispatched": self.dispatched, "per_unit": dict(self.per_unit),
                "skipped": list(self.skipped)}


def skip_reason(issue: Issue) -> str | None:
    """Why this problem cannot be dispatched now (a key of SKIP_REASONS), or None."""
    if not issue.is_open:
        return "closed"
    if issue.status != "reported":
        return "dispatched"
    if issue.needs_placement and issue.unit_id is None:
        return "needs_placement"
    if issue.category_pending:
        return "pending_category"
    if issue.unit_id is None:
        return "no_unit"
    return None


def _load(session, user: User, issue_ids) -> list[Issue]:
    ids = sorted({parse_typed_id(value, what="问题") for value in issue_ids or ()})
    if len(ids) > MAX_DISPATCH:
        msg = f"一次最多派遣 {MAX_DISPATCH} 个问题 (选择了 {len(ids)} 个)"
        raise ValidationError(msg)
    rows = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stmt = access.scope_issues(select(Issue).where(Issue.id.in_(chunk)), user).options(
            selectinload(Issue.unit))
        rows.extend(session.execute(stmt).scalars())
    found = {i.id for i in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        msg = f"问题 {missing[0]} 不存在"
        raise NotFoundError(msg)
    rows.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
    return rows


def preview_issues(session, user: User, issue_ids) -> DispatchResult:
    """How many of these problems would go to which unit, and which are skipped and why."""
    access.require(user, "dispatch")
    result = DispatchResult()
    for issue in _load(session, user, issue_ids):
        reason = skip_reason(issue)
        if reason:
            result.skipped.append({"id": issue.id, "seq": issue.batch_seq,
                                   "reason": SKIP_REASONS[reason], "code": reason})
            continue
        name = issue.unit.name
        result.per_unit[name] = result.per_unit.get(name, 0) + 1
        result.ids.append(issue.id)
    return result


def _begin_write(session) -> None:
    """On SQLite, open the write transaction now (``BEGIN IMMEDIATE``) unless one is open.

    pysqlite starts a transaction only before a data change, so a SAVEPOINT issued first
    would itself start one and its RELEASE would commit: each problem's savepoint would
    commit on its own. Taking the write lock up front also makes a second, simultaneous
    dispatch wait for the first and then read its result (every problem already
    dispatched). PostgreSQL needs nothing: its SAVEPOINTs nest in the open transaction.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def dispatch_issues(session, user: User, issue_ids, *, note: str | None = None) -> DispatchResult:
    """Dispatch every dispatchable problem of a selection through the workflow (admins).

    Idempotent: problems already dispatched are skipped, so a second call dispatches
    nothing new. A problem another request dispatched meanwhile (a double click: its
    version moved on, or its status did) is skipped with reason ``raced``, never a 409.
    """
    _begin_write(session)
    preview = preview_issues(session, user, issue_ids)
    note = clean_text(note or "").strip() or "批量派遣"
    done = DispatchResult(skipped=list(preview.skipped))
    for issue_id in preview.ids:
        issue = session.get(Issue, issue_id)
        name, seq = issue.unit.name, issue.batch_seq
        try:
            with session.begin_nested():
                transition(session, user, issue_id, "dispatch", note=note)
        except (StaleDataError, ConflictError):
            session.expire_all()
            done.skipped.append({"id": issue_id, "seq": seq, "reason": SKIP_REASONS["raced"],
                                 "code": "raced"})
            continue
        done.per_unit[name] = done.per_unit.get(name, 0) + 1
        done.ids.append(issue_id)
    session.flush()
    return done


def batch_issue_ids(session, user: User, batch_id: int) -> list[int]:
    """Ids of the batch's problems the user may see."""
    get_batch(session, user, batch_id)
    stmt = access.scope_issues(select(Issue.id).where(Issue.batch_id == batch_id), user)
    return list(session.execute(stmt).scalars())


def preview_batch(session, user: User, batch_id: int) -> DispatchResult:
    """The dispatch preview of a whole batch."""
    access.require(user, "dispatch")
    return preview_issues(session, user, batch_issue_ids(session, user, batch_id))


def acting_admin(session, username: str | None = None) -> User:
    """The account a command line dispatches as: ``username`` if active, else the first admin.

    Raises
    ------
    NotFoundError
        If the named account is missing or inactive, or no active admin exists.
    """
    stmt = select(User).where(User.active.is_(True))
    if username:
        user = session.execute(stmt.where(User.username == username)).scalar()
        if user is None:
            msg = f"用户 {username} 不存在或已停用"
            raise NotFoundError(msg)
        return user
    user = session.execute(stmt.where(User.role == "admin").order_by(User.id)).scalar()
    if user is None:
        msg = "没有可用的管理员账号 (用 --user 指定，或先 create-user --role admin)"
        raise NotFoundError(msg)
    return user


def dispatch_batch(session, user: User, batch_id: int) -> DispatchResult:
    """Dispatch a whole batch in one step (admins); a second call dispatches nothing new.

    Parameters
    ----------
    session
        The SQLAlchemy session; the caller commits.
    user
        The acting user (must be allowed to dispatch).
    batch_id
        The 反馈批次.

    Returns
    -------
    DispatchResult
        ``per_unit`` counts by unit name and ``skipped`` as ``{"id", "reason"}``.
    """
    access.require(user, "dispatch")
    batch = get_batch(session, user, batch_id)
    return dispatch_issues(session, user, batch_issue_ids(session, user, batch_id),
                           note=f"批量派遣: {batch.name}")


def filtered_issue_ids(session, user: User, filters) -> list[int]:
    """Ids of the problems the list's filters select (an ``IssueFilters``), scoped."""
    stmt = filters.apply(access.scope_issues(select(Issue.id), user)).limit(MAX_DISPATCH + 1)
    return list(session.execute(stmt).scalars())


def rule_unit(session, issue: Issue) -> Unit | None:
    """The unit the routing rules (category's functional unit, else the cell) would choose."""
    cell = session.get(Cell, issue.cell_id) if issue.cell_id else None
    unit_id = decide_unit(issue, cell)
    return session.get(Unit, unit_id) if unit_id else None


def settle_conflicts(session, user: User, issue_ids, choice: str, *,
                     batch_id: int | None = None) -> dict:
    """Settle routing conflicts in bulk: keep the list's unit, or follow the rules.

    ``choice`` is ``"list"`` (按清单: keep the unit, clear the flag) or ``"rule"``
    (按属地/类别: re-route to the rule's unit, ``unit_source="manual"``, event recorded).
    With ``batch_id`` only that batch's problems are touched; other ids are ignored and
    counted in ``ignored``.
    """
    access.require(user, "reroute")
    if choice not in ("list", "rule"):
        msg = f"处理方式 {clean_text(str(choice))[:20]!r} 无效 (可选: list 按清单、rule 按属地/类别)"
        raise ValidationError(msg)
    ignored = 0
    if batch_id is None:
        issues = _load(session, user, issue_ids)
    else:
        ids = sorted({parse_typed_id(value, what="问题") for value in issue_ids or ()})
        if len(ids) > MAX_DISPATCH:
            msg = f"一次最多处理 {MAX_DISPATCH} 个问题 (选择了 {len(ids)} 个)"
            raise ValidationError(msg)
        issues = []
        for start in range(0, len(ids), 500):
            stmt = access.scope_issues(select(Issue).where(
                Issue.id.in_(ids[start:start + 500]), Issue.batch_id == batch_id), user)
            issues.extend(session.execute(stmt).scalars())
        issues.sort(key=lambda i: (natural_key(i.batch_seq), i.id))
        ignored = len(ids) - len(issues)
        if ids and not issues:
            msg = f"勾选的 {ignored} 个问题都不属于本批次，未处理"
            raise ValidationError(msg)
    if not issues:
        msg = "请先勾选要处理的问题"
        raise ValidationError(msg)
    kept = moved = 0
    errors = []
    for issue in issues:
        conflict = issue.routing_conflict
        if not conflict:
            errors.append(f"问题 #{issue.id} 没有单位冲突")
            continue
        if choice == "list":
            add_event(session, issue, user, "settle", issue.status, issue.status,
                      note="单位冲突: 按清单", data={"choice": "list", "conflict": conflict})
            issue.routing_conflict = None
            kept += 1
            continue
        target = rule_unit(session, issue)
        if target is None:
            errors.append(f"问题 #{issue.id} 按属地/类别找不到责任单位")
            continue
        if target.id != issue.unit_id:
            reroute(session, user, issue.id, target.id, reason="单位冲突: 按属地/类别")
        else:
            add_event(session, issue, user, "settle", issue.status, issue.status,
                      note="单位冲突: 按属地/类别", data={"choice": "rule", "conflict": conflict})
        issue.unit_source = "manual"
        issue.routing_conflict = None
        moved += 1
    session.flush()
    return {"kept": kept, "moved": moved, "errors": errors, "ignored": ignored}
