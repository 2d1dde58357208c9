"""Routing a problem to its responsible unit: the cell decides (属地) unless a category names
a functional unit (先属主后属地), and an admin may re-route with a reason."""

from __future__ import annotations

from app.models import Issue


def territorial_unit_applies(issue: Issue) -> bool:
    """Whether the issue's unit follows its cell (no functional unit, no manual re-route)."""
    if issue.category is not None and issue.category.functional_unit_id:
        return False
    return not any(e.action == "reroute" for e in issue.events)


def decide_unit(issue: Issue, cell) -> int | None:
    """The unit that answers for an issue at a cell."""
    if issue.category is not None and issue.category.functional_unit_id:
        return issue.category.functional_unit_id
    if cell is not None:
        return cell.unit_id
    return None
