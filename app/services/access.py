"""The one access rule: what each user may read or change.

Every page, export, map layer and API goes through these functions. A unit head sees only
the cells and problems of their own unit; reads of anything else answer 404 (the object's
existence is not revealed), forbidden actions on visible objects answer 403.
"""

from __future__ import annotations

from sqlalchemy import Select, false, select

from app.models import Cell, Issue, Patrol, Unit, User
from app.services.errors import ForbiddenError, NotFoundError

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


def scope_issues(stmt: Select, user: User) -> Select:
    """Narrow a SELECT over Issue to what the user may read."""
    if is_unit_scoped(user):
        if user.unit_id is None:
            return stmt.where(false())
        return stmt.where(Issue.unit_id == user.unit_id)
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


def can_read_issue(user: User, issue: Issue) -> bool:
    if not may(user, "read"):
        return False
    return not is_unit_scoped(user) or (
        user.unit_id is not None and issue.unit_id == user.unit_id
    )


def can_read_cell(user: User, cell: Cell) -> bool:
    if not may(user, "read"):
        return False
    return not is_unit_scoped(user) or (user.unit_id is not None and cell.unit_id == user.unit_id)


def get_issue(session, user: User, issue_id: int, *, action: str = "read") -> Issue:
    """Load an issue the user may see, then check the action (404 before 403)."""
    issue = session.get(Issue, issue_id)
    if issue is None or not can_read_issue(user, issue):
        msg = f"问题 {issue_id} 不存在"
        raise NotFoundError(msg)
    if action != "read":
        require(user, action)
    return issue


def get_cell(session, user: User, cell_id: int) -> Cell:
    cell = session.get(Cell, cell_id)
    if cell is None or not can_read_cell(user, cell):
        msg = f"网格 {cell_id} 不存在"
        raise NotFoundError(msg)
    return cell


def get_unit(session, user: User, unit_id: int) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or (is_unit_scoped(user) and unit.id != user.unit_id):
        msg = f"单位 {unit_id} 不存在"
        raise NotFoundError(msg)
    return unit


def get_patrol(session, user: User, patrol_id: int) -> Patrol:
    patrol = session.get(Patrol, patrol_id)
    if patrol is None or is_unit_scoped(user):
        msg = f"巡查 {patrol_id} 不存在"
        raise NotFoundError(msg)
    return patrol


def visible_issue_select(user: User) -> Select:
    return scope_issues(select(Issue), user)


def visible_cell_select(user: User, grid_id: int) -> Select:
    return scope_cells(select(Cell).where(Cell.grid_id == grid_id), user)
