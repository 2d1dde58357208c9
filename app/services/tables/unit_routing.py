"""Routing a problem to its responsible unit.

The list a prefecture sends back names the unit it holds to account, and that is who the
problem goes to (``unit_source="list"``). Without a name the list gives (or with one the
unit table does not know) the rules decide: the category's functional unit first, else the
cell's unit (先属主后属地). Where the list and the rules disagree the problem still follows the
list, and the disagreement is kept (``routing_conflict``) for the office to settle. An
admin may re-route with a reason (``unit_source="manual"``); nothing automatic overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.models import Issue

UNIT_SOURCES = ("list", "category", "cell", "manual")
UNIT_SOURCE_LABELS = {"list": "按清单", "category": "按类别", "cell": "按网格", "manual": "人工改派"}


@dataclass
class Routing:
    """The unit chosen for a problem, why, its co-units and any disagreement to show."""

    unit_id: int | None
    unit_source: str | None
    co_unit_ids: list[int] = field(default_factory=list)
    conflict: dict | None = None


def territorial_unit_applies(issue: Issue) -> bool:
    """Whether the issue's unit follows its cell (no list unit, functional unit or re-route)."""
    if issue.unit_source in ("list", "manual"):
        return False
    if issue.category is not None and issue.category.functional_unit_id:
        return False
    return not any(e.action == "reroute" for e in issue.events)


def decide_unit(issue: Issue, cell) -> int | None:
    """The unit the rules give an issue at a cell: functional unit, else the cell's unit."""
    if issue.category is not None and issue.category.functional_unit_id:
        return issue.category.functional_unit_id
    if cell is not None:
        return cell.unit_id
    return None


def choose_routing(
    *,
    list_ids: list[int],
    listed_text: str | None,
    category_unit_id: int | None,
    cell_unit_id: int | None,
    name_of,
) -> Routing:
    """Decide the unit from the list's units and the rules' two candidates.

    Parameters
    ----------
    list_ids
        Ids of the units the list's 责任单位 matched, lead first (empty: none matched).
    listed_text
        The list's 责任单位 as written (None or "" when the row names none).
    category_unit_id, cell_unit_id
        The category's functional unit and the cell's unit, when there are.
    name_of
        ``unit id -> name``, to word the conflict.

    Returns
    -------
    Routing
        The lead unit, ``unit_source``, co-units, and ``conflict`` as
        ``{"list": name, "category": name|None, "cell": name|None}`` when the list names a
        unit the rules would not choose (or one the table does not know).
    """
    rule_id = category_unit_id or cell_unit_id
    rule_source = "category" if category_unit_id else ("cell" if cell_unit_id else None)

    def names() -> dict:
        return {
            "category": name_of(category_unit_id) if category_unit_id else None,
            "cell": name_of(cell_unit_id) if cell_unit_id else None,
        }

    if list_ids:
        conflict = None
        if rule_id is not None and rule_id not in list_ids:
            conflict = {"list": name_of(list_ids[0]), **names()}
        return Routing(list_ids[0], "list", list(list_ids[1:]), conflict)
    text = (listed_text or "").strip()
    conflict = {"list": text, **names()} if text else None
    return Routing(rule_id, rule_source, [], conflict)
