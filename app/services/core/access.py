"""The one access rule: what each user may read or change.

Every page, export, map layer and API goes through these functions. A unit head sees only
the cells and problems of their own unit (as lead or co-unit, 协办); reads of anything else
answer 404 (the object's existence is not revealed), forbidden actions on visible objects
answer 403. Filing is ruled here too (``check_filing``, called by the one intake service):
units are ranked against each other, so a unit head reports only as 自查 inside its own
cells, only admins and inspectors set an outside source, and nobody back-dates a report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, false, or_, select

from app.models import (
    SOURCES,
    Cell,
    Issue,
    IssueUnit,
    Notification,
    Patrol,
    Unit,
    User,
    now_local,
)
from app.services.core.errors import ForbiddenError, NotFoundError, ValidationError
from app.services.core.params import MAX_ID

# Actions each role may take at all; the object check below narrows unit heads further.
ROLE_ACTIONS: dict[str, set[str]] = {
    "admin": {
        "read", "report", "dispatch", "rectify", "submit", "verify", "reject", "reroute",
        "place", "import", "manage_grid", "manage_users", "plan_patrol", "publish", "export",
    },
    "inspector": {"read", "report", "verify", "reject", "place", "plan_patrol", "export"},
    "unit_head": {"read", "rectify", "submit", "export", "report"},
    "leader": {"read", "export"},
}


def is_unit_scoped(user: User) -> bool:
    """True when the user sees only their own unit's objects."""
    return user.role == "unit_head"


def may(user: User, action: str) -> bool:
    """Whether the user's role allows an action at all."""
    return bool(user and user.is_active and action in ROLE_ACTIONS.get(user.role, set()))


def require(user: User, action: str) -> None:
    """Raise ForbiddenError unless the role allows the action."""
    if not may(user, action):
        msg = "没有权限执行此操作"
        raise ForbiddenError(msg)


def require_table_admin(user: User | None) -> None:
    """Refuse anyone but an admin the county's base tables; ``None`` is the command line."""
    if user is not None:
        require(user, "manage_users")


def _co_unit_of(unit_id: int):
    """SQL: the issue has ``unit_id`` among its co-units (协办单位)."""
    return exists().where(IssueUnit.issue_id == Issue.id, IssueUnit.unit_id == unit_id)


def scope_issues(stmt: Select, user: User) -> Select:
    """Narrow a SELECT over Issue to what the user may read (lead or co-unit)."""
    if is_unit_scoped(user):
        if user.unit_id is None:
            return stmt.where(false())
        return stmt.where(or_(Issue.unit_id == user.unit_id, _co_unit_of(user.unit_id)))
    return stmt


def scope_cells(stmt: Select, user: User) -> Select:
    """Narrow a SELECT over Cell to what the user may read."""
    if is_unit_scoped(user):
        if user.unit_id is None:
            return stmt.where(false())
        return stmt.where(Cell.unit_id == user.unit_id)
    return stmt


def scope_units(stmt: Select, user: User) -> Select:
    """Unit heads see their own unit only (rankings are published separately)."""
    if is_unit_scoped(user):
        return stmt.where(Unit.id == (user.unit_id or -1))
    return stmt


def scope_patrols(stmt: Select, user: User) -> Select:
    """Patrols are for inspectors, admins and leaders; unit heads see none."""
    if is_unit_scoped(user):
        return stmt.where(false())
    return stmt


def scope_notifications(stmt: Select, user: User) -> Select:
    """Narrow a SELECT over Notification to the user's own: nobody reads another's bell."""
    return stmt.where(Notification.user_id == (user.id if user and user.is_active else -1))


def is_issue_unit(user: User, issue: Issue) -> bool:
    """Whether the user's unit is the issue's lead unit or one of its co-units."""
    if user.unit_id is None:
        return False
    if issue.unit_id == user.unit_id:
        return True
    return any(co.unit_id == user.unit_id for co in issue.co_units)


def can_read_issue(user: User, issue: Issue) -> bool:
    """Unit heads read their unit's problems, as lead or co-unit; the others read all."""
    if not may(user, "read"):
        return False
    return not is_unit_scoped(user) or is_issue_unit(user, issue)


def readable_issue_ids(session, user: User, ids: Iterable[int | None]) -> set[int]:
    """The ids among ``ids`` that name problems the user may read (for cross-links such as
    ``recurrence_of``: a link never points into problems the reader cannot see)."""
    wanted = {i for i in ids if isinstance(i, int) and 0 < i <= MAX_ID}
    if not wanted or not may(user, "read"):
        return set()
    stmt = scope_issues(select(Issue.id).where(Issue.id.in_(wanted)), user)
    return set(session.execute(stmt).scalars())


def can_read_cell(user: User, cell: Cell) -> bool:
    if not may(user, "read"):
        return False
    return not is_unit_scoped(user) or (user.unit_id is not None and cell.unit_id == user.unit_id)


def _get(session, model, object_id):
    """``session.get`` for ids a database can hold; anything else is simply not found."""
    if isinstance(object_id, bool) or not isinstance(object_id, int):
        return None
    if not 0 < object_id <= MAX_ID:
        return None
    return session.get(model, object_id)


def get_issue(session, user: User, issue_id: int, *, action: str = "read") -> Issue:
    """Load an issue the user may see, then check the action (404 before 403)."""
    issue = _get(session, Issue, issue_id)
    if issue is None or not can_read_issue(user, issue):
        msg = f"问题 {issue_id} 不存在"
        raise NotFoundError(msg)
    if action != "read":
        require(user, action)
    return issue


def get_cell(session, user: User, cell_id: int) -> Cell:
    cell = _get(session, Cell, cell_id)
    if cell is None or not can_read_cell(user, cell):
        msg = f"网格 {cell_id} 不存在"
        raise NotFoundError(msg)
    return cell


def get_unit(session, user: User, unit_id: int) -> Unit:
    unit = _get(session, Unit, unit_id)
    if unit is None or (is_unit_scoped(user) and unit.id != user.unit_id):
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)
    return unit


def get_patrol(session, user: User, patrol_id: int) -> Patrol:
    patrol = _get(session, Patrol, patrol_id)
    if patrol is None or is_unit_scoped(user):
        msg = f"巡查 {patrol_id} 不存在"
        raise NotFoundError(msg)
    return patrol


def visible_issue_select(user: User) -> Select:
    return scope_issues(select(Issue), user)


def visible_cell_select(user: User, grid_id: int) -> Select:
    return scope_cells(select(Cell).where(Cell.grid_id == grid_id), user)


# ---- filing: who may report what, where and when ----------------------------------------

# Outside sources are inspections and the public line: only the office and its inspectors
# enter them. A unit head files its own findings (自查), and only inside its own cells.
SELF_CHECK = "自查"
FILING_SOURCES: dict[str, tuple[str, ...]] = {
    "admin": SOURCES,
    "inspector": SOURCES,
    "unit_head": (SELF_CHECK,),
}
DEFAULT_SOURCE = {"admin": "县级督查", "inspector": "县级督查", "unit_head": SELF_CHECK}
# A report describes what is seen now: found_at may lag a little (a form filled in after the
# walk, a phone's clock), but not by days, and not into the future.
BACKDATE_TOLERANCE = timedelta(hours=2)
FUTURE_TOLERANCE = timedelta(minutes=10)


def filing_sources(user: User | None) -> tuple[str, ...]:
    """The sources a user may set on a report (a report form offers only these)."""
    if user is None:
        return SOURCES
    if not may(user, "report"):
        return ()
    return FILING_SOURCES.get(user.role, ())


def default_source(user: User | None) -> str:
    """The source of a report that names none: 自查 for a unit head, else 县级督查."""
    if user is None:
        return "县级督查"
    return DEFAULT_SOURCE.get(user.role, SELF_CHECK)


def check_filing(
    user: User | None,
    *,
    source: str,
    found_at: datetime | None,
    cell: Cell | None,
    unit_id: int | None = None,
    placed: bool = True,
    via: str = "web",
    trusted_import: bool = False,
    now: datetime | None = None,
) -> None:
    """Refuse a report the user may not file: the rule every intake door goes through.

    Parameters
    ----------
    user : User or None
        The reporter; None is the system itself (CLI import, seed), which may file anything.
    source : str
        The report's source (already normalised to one of ``SOURCES``).
    found_at : datetime or None
        When the problem was found, naive county time; None means now.
    cell : Cell or None
        The cell the point fell into (None when outside the grid or not placed).
    unit_id : int or None
        The unit the problem was routed to (what it is scored to).
    placed : bool
        False when the problem has no point yet (queued for manual placement by the
        office); the cell rule is then applied by whoever places it.
    via : str
        The door, for messages and audit ("web", "api", "open311", "patrol", "import").
    trusted_import : bool
        The caller replays a list with its own dates (the admin's spreadsheet import, the
        demo history): found_at is then not checked. A code-level flag: no door passes it
        from a request, and the importer passes it only for an admin.
    now : datetime, optional
        County time now (tests).

    Raises
    ------
    ForbiddenError
        The role may not set this source, or a unit head reports outside its own cells.
    ValidationError
        ``found_at`` is back-dated beyond the tolerance, or in the future.
    """
    if user is None:
        return
    require(user, "report")
    allowed = filing_sources(user)
    if source not in allowed:
        msg = (
            f"无权以「{source}」为来源上报问题 (可用来源: {'、'.join(allowed)})"
            if allowed else "没有权限上报问题"
        )
        raise ForbiddenError(msg)
    if found_at is not None and not trusted_import:
        now = now or now_local()
        if found_at < now - BACKDATE_TOLERANCE:
            msg = (
                f"发现时间 {found_at:%Y-%m-%d %H:%M} 早于现在超过 2 小时，不能补记过去的时间"
                "；历史清单请交创卫办导入"
            )
            raise ValidationError(msg)
        if found_at > now + FUTURE_TOLERANCE:
            msg = f"发现时间 {found_at:%Y-%m-%d %H:%M} 晚于现在，不能填写将来的时间"
            raise ValidationError(msg)
    if is_unit_scoped(user):
        if user.unit_id is None:
            msg = "账号未关联责任单位，不能上报问题；请联系创卫办"
            raise ForbiddenError(msg)
        # Never name the owner of a point: a unit head learns nothing of other units' cells.
        own_cell = cell is not None and user.unit_id is not None and cell.unit_id == user.unit_id
        if placed and not own_cell:
            msg = "该位置不在本单位的责任网格内：责任单位只能在本单位网格内上报自查问题"
            raise ForbiddenError(msg)
        # Placed or not, what a unit head files is scored to that unit and no other
        # (an address the geocoder cannot place must not route it to a functional unit).
        if (placed or unit_id is not None) and unit_id != user.unit_id:
            msg = "该类别的问题由职能部门负责，责任单位不能以自查上报；请联系创卫办"
            raise ForbiddenError(msg)
