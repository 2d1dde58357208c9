"""The category table (问题类别) and its synonym table: seed, import, list and edit them.

The tables come from ``layers/categories.csv`` and ``layers/category_aliases.csv``;
``seed_categories`` and ``seed_aliases`` only add what is missing, so an office's edits
survive every ``init-db``. How a written category is matched against them is
``tables.category_match``.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from app.models import Category, CategoryAlias, Issue, Setting, Unit, UnitAlias, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import ConflictError, NotFoundError, TableRowsError, ValidationError
from app.services.core.tabular import read_named_columns
from app.services.core.text import clean_text
from app.services.tables.category_match import category_key

REMOVED_ALIASES_KEY = "category_aliases_removed"
DEFERRED_UNITS_KEY = "category_units_deferred"
MAX_ALIAS_LEN = 60


# ---------------------------------------------------------------------- the category table

CATEGORY_COLUMNS = {
    "code": {"code", "编码", "类别编码", "代码", "类别代码"},
    "name": {"name", "名称", "类别名称", "类别"},
    "level": {"level", "级别", "层级"},
    "parent": {"parent", "上级", "上级编码", "上级类别", "一级编码"},
    "deadline_days": {"deadline_days", "时限", "整改时限", "时限(工作日)", "时限（工作日）",
                      "整改时限(工作日)", "整改时限（工作日）", "工作日"},
    "points": {"points", "扣分", "分值", "扣分值"},
    "functional_unit": {"functional_unit", "职能部门", "主管部门", "责任单位", "行业主管部门"},
}
ALIAS_COLUMNS = {
    "alias": {"alias", "别名", "同义词", "写法", "常见写法"},
    "code": {"code", "类别编码", "编码", "category_code", "类别", "问题类别"},
}


@dataclass
class _CategoryRow:
    row: int
    code: str
    name: str
    level: int
    parent: str | None
    deadline_days: int
    points: float
    functional_unit: Unit | None


def _unit_lookup(session) -> dict[str, Unit]:
    units = {category_key(u.name): u for u in session.execute(select(Unit)).scalars()}
    for alias in session.execute(select(UnitAlias)).scalars():
        units.setdefault(category_key(alias.alias), alias.unit)
    return units


def _check_category_row(raw: dict, units: dict[str, Unit], where: str,
                        errors: list[str]) -> _CategoryRow | None:
    """Parse one row of a category table; append row-numbered errors and return None if bad."""
    before = len(errors)
    code = unicodedata.normalize("NFKC", clean_text(raw.get("code"), multiline=False))
    code = re.sub(r"\.0+$", "", code)
    if not re.fullmatch(r"\d{2,10}", code):
        errors.append(f"{where}编码: {code!r} 不是 2–10 位数字")
    name = clean_text(raw.get("name"), multiline=False)
    if not name:
        errors.append(f"{where}名称: 不能为空")
    elif len(name) > 60:
        errors.append(f"{where}名称: 「{name[:20]}…」过长 (最多 60 字)")
    level_text = clean_text(raw.get("level"), multiline=False)
    level = 1 if len(code) <= 2 else 2
    if level_text:
        try:
            level = int(float(level_text))
        except ValueError:
            errors.append(f"{where}级别: {level_text!r} 不是数字")
        else:
            if level not in (1, 2):
                errors.append(f"{where}级别: {level_text!r} 只能是 1 或 2")
    parent = re.sub(r"\.0+$", "", clean_text(raw.get("parent"), multiline=False)) or None
    if level == 2 and parent is None and len(code) >= 4:
        parent = code[:2]
    if level == 1:
        parent = None
    days_text = clean_text(raw.get("deadline_days"), multiline=False)
    days = 5
    if days_text:
        days_plain = re.sub(r"(个)?工作日$|天$", "", unicodedata.normalize("NFKC", days_text))
        try:
            days = int(float(days_plain))
        except ValueError:
            errors.append(f"{where}时限: {days_text!r} 不是数字")
        else:
            if not 0 <= days <= 365:
                errors.append(f"{where}时限: {days_text!r} 超出范围 (0–365 个工作日)")
    points_text = clean_text(raw.get("points"), multiline=False)
    points = 1.0
    if points_text:
        try:
            points = float(unicodedata.normalize("NFKC", points_text))
        except ValueError:
            errors.append(f"{where}扣分: {points_text!r} 不是数字")
        else:
            if not 0 <= points <= 100:
                errors.append(f"{where}扣分: {points_text!r} 超出范围 (0–100)")
    unit_text = clean_text(raw.get("functional_unit"), multiline=False)
    unit = None
    if unit_text:
        unit = units.get(category_key(unit_text))
        if unit is None:
            errors.append(f"{where}职能部门: 「{unit_text}」不是已有的责任单位")
    if len(errors) > before:
        return None
    return _CategoryRow(raw.get("row", 0), code, name, level, parent, days, points, unit)


def _apply_row(cat: Category, row: _CategoryRow) -> None:
    cat.name, cat.level, cat.parent_code = row.name, row.level, row.parent
    cat.deadline_days, cat.points = row.deadline_days, row.points
    cat.functional_unit = row.functional_unit


def _read_category_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [{"row": n, **row} for n, row in enumerate(csv.DictReader(handle), start=2)]


def seed_categories(session, path: Path) -> int:
    """Add the standard categories that are missing; never change an office's edit.

    A category whose functional unit does not exist yet (a new database has no units) is
    added without it and remembered; a later run (``seed-demo`` after ``init-db``, or
    ``init-db`` after the units were loaded) sets that unit, unless the office has edited
    the category meanwhile.

    Parameters
    ----------
    session
        The database session.
    path
        ``layers/categories.csv`` (code,name,level,parent,deadline_days,points,functional_unit).

    Returns
    -------
    int
        How many categories were added (0 on a second run).
    """
    units = _unit_lookup(session)
    existing = {c.code: c for c in session.execute(select(Category)).scalars()}
    deferred = _deferred_units(session)
    before = dict(deferred)
    added = 0
    for raw in _read_category_csv(path):
        errors: list[str] = []
        unit_name = clean_text(raw.get("functional_unit"), multiline=False)
        if unit_name and category_key(unit_name) not in units:
            raw = {**raw, "functional_unit": ""}
        row = _check_category_row(raw, units, f"{path.name} 第 {raw['row']} 行 ", errors)
        if row is None:
            raise TableRowsError("类别表", errors)
        cat = existing.get(row.code)
        if cat is not None:
            waiting = deferred.get(row.code)
            if waiting and category_key(waiting) in units:
                if cat.functional_unit_id is None:
                    cat.functional_unit = units[category_key(waiting)]
                deferred.pop(row.code)
            continue
        cat = Category(code=row.code)
        _apply_row(cat, row)
        session.add(cat)
        existing[row.code] = cat
        if unit_name and row.functional_unit is None:
            deferred[row.code] = unit_name
        added += 1
    if deferred != before:
        _set_deferred_units(session, deferred)
    session.flush()
    return added


def _deferred_units(session) -> dict[str, str]:
    row = session.get(Setting, DEFERRED_UNITS_KEY)
    return dict((row.value or {}).get("codes", {})) if row else {}


def _set_deferred_units(session, deferred: dict[str, str]) -> None:
    row = session.get(Setting, DEFERRED_UNITS_KEY) or Setting(key=DEFERRED_UNITS_KEY, value={})
    row.value = {"codes": dict(sorted(deferred.items()))}
    session.add(row)


def _forget_deferred(session, codes: set[str]) -> None:
    """The office decided these categories' functional units: init-db leaves them alone."""
    deferred = _deferred_units(session)
    if deferred.keys() & codes:
        _set_deferred_units(session, {k: v for k, v in deferred.items() if k not in codes})


def read_category_table(data: bytes, filename: str) -> list[dict]:
    """Parse an uploaded category table (.xlsx/.xls/.csv) into numbered rows."""
    return read_named_columns(data, filename, CATEGORY_COLUMNS, required={"code", "name"},
                              label="编码、名称 (可选: 级别、上级编码、时限、扣分、职能部门)")


def import_categories(session, user: User | None, data: bytes, filename: str, *,
                      replace: bool = False, ip: str | None = None) -> dict:
    """Add or update categories from a table; with ``replace`` remove the unlisted ones.

    All rows or none: every bad row is named ("第 5 行 时限: 'abc' 不是数字"). A category
    still used by a problem is never removed.

    Parameters
    ----------
    session
        The database session.
    user
        The admin (None from the command line).
    data, filename
        The uploaded file.
    replace
        Remove categories the file does not list (refused for those in use).
    ip
        For the audit log.

    Returns
    -------
    dict
        ``rows``, ``added``, ``changed``, ``removed``, ``total``.
    """
    access.require_table_admin(user)
    rows = read_category_table(data, filename)
    if not rows:
        raise TableRowsError("类别表", [f"{filename}: 没有数据行"])
    units = _unit_lookup(session)
    errors: list[str] = []
    parsed: dict[str, _CategoryRow] = {}
    for raw in rows:
        where = f"第 {raw['row']} 行 "
        row = _check_category_row(raw, units, where, errors)
        if row is None:
            continue
        if row.code in parsed:
            errors.append(f"{where}编码: {row.code} 与第 {parsed[row.code].row} 行重复")
            continue
        parsed[row.code] = row
    existing = {c.code: c for c in session.execute(select(Category)).scalars()}
    known = set(parsed) | (set() if replace else set(existing))
    for row in parsed.values():
        if row.level == 2 and row.parent not in known:
            errors.append(f"第 {row.row} 行 上级编码: {row.parent!r} 不是已有或表中的一级类别")
    removed = [c for code, c in existing.items() if replace and code not in parsed]
    if removed:
        used = dict(session.execute(
            select(Issue.category_id, func.count(Issue.id))
            .where(Issue.category_id.in_([c.id for c in removed]))
            .group_by(Issue.category_id)
        ).all())
        for cat in removed:
            if used.get(cat.id):
                errors.append(f"类别 {cat.code} {cat.name} 有 {used[cat.id]} 条问题使用，"
                              f"不能删除 (请在表中保留该行)")
    if errors:
        raise TableRowsError("类别表", errors)
    added = changed = 0
    for row in parsed.values():
        cat = existing.get(row.code)
        if cat is None:
            cat = Category(code=row.code)
            added += 1
        elif (cat.name, cat.level, cat.parent_code, cat.deadline_days, cat.points,
              cat.functional_unit_id) != (row.name, row.level, row.parent, row.deadline_days,
                                          row.points, row.functional_unit.id
                                          if row.functional_unit else None):
            changed += 1
        _apply_row(cat, row)
        session.add(cat)
    for cat in removed:
        session.delete(cat)
    _forget_deferred(session, set(parsed))
    session.flush()
    total = session.execute(select(func.count(Category.id))).scalar_one()
    record(session, user, "categories_imported",
           f"{filename}: 新增 {added}, 修改 {changed}, 删除 {len(removed)}", ip)
    return {"rows": len(rows), "added": added, "changed": changed, "removed": len(removed),
            "total": total}


def list_categories(session, user: User | None) -> list[dict]:
    """The category table with each category's open and total problem counts."""
    access.require_table_admin(user)
    counts = dict(session.execute(
        select(Issue.category_id, func.count(Issue.id)).group_by(Issue.category_id)
    ).all())
    return [
        {"category": c, "issues": counts.get(c.id, 0)}
        for c in session.execute(select(Category).order_by(Category.code)).scalars()
    ]


def update_category(session, user: User | None, code: str, *, name: object,
                    deadline_days: object, points: object, functional_unit: object = "",
                    ip: str | None = None) -> Category:
    """Change one category's name, deadline, points or functional unit (an office's edit).

    Parameters
    ----------
    session
        The database session.
    user
        The admin (None from the command line).
    code
        The category's code (unchanged).
    name, deadline_days, points, functional_unit
        The new values as typed; the functional unit may be empty.
    ip
        For the audit log.
    """
    access.require_table_admin(user)
    cat = session.execute(select(Category).where(Category.code == code)).scalar()
    if cat is None:
        msg = f"类别 {code!r} 不存在"
        raise NotFoundError(msg)
    errors: list[str] = []
    row = _check_category_row(
        {"code": cat.code, "name": name, "level": cat.level, "parent": cat.parent_code or "",
         "deadline_days": deadline_days, "points": points,
         "functional_unit": functional_unit}, _unit_lookup(session), f"类别 {cat.code} ", errors)
    if row is None:
        raise ValidationError("；".join(errors))
    _apply_row(cat, row)
    _forget_deferred(session, {cat.code})
    session.flush()
    record(session, user, "category_saved",
           f"{cat.code} {cat.name}: 时限 {cat.deadline_days}, 扣分 {cat.points}", ip)
    return cat


def unit_choices(session) -> list[Unit]:
    """Every unit by name, for the functional-unit picker."""
    return list(session.execute(select(Unit).order_by(Unit.name)).scalars())


def category_choices(session) -> list[Category]:
    """Every category in code order, for pickers."""
    return list(session.execute(select(Category).order_by(Category.code)).scalars())


# ---------------------------------------------------------------------- the synonym table


def _removed_aliases(session) -> set[str]:
    row = session.get(Setting, REMOVED_ALIASES_KEY)
    return set((row.value or {}).get("aliases", [])) if row else set()


def _set_removed_aliases(session, keys: set[str]) -> None:
    row = session.get(Setting, REMOVED_ALIASES_KEY) or Setting(key=REMOVED_ALIASES_KEY, value={})
    row.value = {"aliases": sorted(keys)}
    session.add(row)


def seed_aliases(session, path: Path) -> int:
    """Add the standard synonyms that are missing (``layers/category_aliases.csv``).

    A synonym the office edited is never changed, one it deleted is not brought back, and
    one whose category is not in the table is skipped.

    Parameters
    ----------
    session
        The database session.
    path
        The CSV (alias,code).

    Returns
    -------
    int
        How many synonyms were added or brought in step with the file.
    """
    codes = set(session.execute(select(Category.code)).scalars())
    rows = {category_key(r.alias): r for r in session.execute(select(CategoryAlias)).scalars()}
    removed = _removed_aliases(session)
    count = 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for raw in csv.DictReader(handle):
            alias = clean_text(raw.get("alias"), multiline=False)
            code = clean_text(raw.get("code"), multiline=False)
            key = category_key(alias)
            if not key or code not in codes or key in removed:
                continue
            row = rows.get(key)
            if row is None:
                row = CategoryAlias(alias=alias, category_code=code, edited=False)
                session.add(row)
                rows[key] = row
                count += 1
            elif not row.edited and row.category_code != code:
                row.category_code = code
                count += 1
    session.flush()
    return count


def list_aliases(session, user: User | None) -> list[dict]:
    """The synonym table with each target category (None when it left the table)."""
    access.require_table_admin(user)
    cats = {c.code: c for c in session.execute(select(Category)).scalars()}
    return [
        {"alias": a.alias, "code": a.category_code, "category": cats.get(a.category_code),
         "edited": a.edited}
        for a in session.execute(select(CategoryAlias).order_by(CategoryAlias.alias)).scalars()
    ]


def _check_alias(session, matcher_names: dict[str, Category], codes: dict[str, Category],
                 alias: object, target: object, where: str) -> tuple[str, Category]:
    alias_text = clean_text(alias, multiline=False)
    key = category_key(alias_text)
    if not key:
        msg = f"{where}别名为空"
        raise ValidationError(msg)
    if len(alias_text) > MAX_ALIAS_LEN:
        msg = f"{where}别名「{alias_text[:20]}…」过长 (最多 {MAX_ALIAS_LEN} 字)"
        raise ValidationError(msg)
    target_text = unicodedata.normalize("NFKC", clean_text(target, multiline=False))
    code = target_text.split()[0] if target_text else ""
    cat = codes.get(code) or codes.get(re.sub(r"\.0+$", "", code)) or matcher_names.get(
        category_key(target_text))
    if cat is None:
        msg = f"{where}类别: {target_text!r} 不是已有的类别编码或名称"
        raise ValidationError(msg)
    own = matcher_names.get(key)
    if own is not None and own.id != cat.id:
        # A category's own name is matched before any synonym, so this one would never apply.
        msg = f"{where}别名「{alias_text}」本身就是另一类别的名称 ({own.label})"
        raise ValidationError(msg)
    return alias_text, cat


def _alias_context(session) -> tuple[dict[str, Category], dict[str, Category]]:
    cats = list(session.execute(select(Category)).scalars())
    return {category_key(c.name): c for c in cats}, {c.code: c for c in cats}


def save_alias(session, user: User | None, alias: object, target: object, *,
               old_alias: str | None = None, ip: str | None = None) -> CategoryAlias:
    """Add or change one synonym (``old_alias`` renames a row); the row is marked edited.

    Parameters
    ----------
    session
        The database session.
    user
        The admin (None from the command line).
    alias
        The word as inspectors write it ("四害").
    target
        The category's code or name.
    old_alias
        The synonym being edited, when renaming.
    ip
        For the audit log.
    """
    access.require_table_admin(user)
    names, codes = _alias_context(session)
    alias_text, cat = _check_alias(session, names, codes, alias, target, "")
    rows = {category_key(r.alias): r for r in session.execute(select(CategoryAlias)).scalars()}
    key = category_key(alias_text)
    old = rows.get(category_key(old_alias)) if old_alias else None
    if old_alias and old is None:
        msg = f"别名「{old_alias}」不存在 (可能已被他人删除)"
        raise NotFoundError(msg)
    clash = rows.get(key)
    if clash is not None and clash is not old:
        msg = f"别名「{clash.alias}」已存在 (对应 {clash.category_code})，请直接修改该行"
        raise ConflictError(msg)
    row = old or CategoryAlias()
    row.alias, row.category_code, row.edited = alias_text, cat.code, True
    session.add(row)
    removed = _removed_aliases(session)
    if key in removed:
        _set_removed_aliases(session, removed - {key})
    session.flush()
    record(session, user, "category_alias_saved", f"{alias_text}: {cat.label}", ip)
    return row


def delete_alias(session, user: User | None, alias: object, *, ip: str | None = None) -> str:
    """Remove one synonym; ``init-db`` will not bring a standard one back."""
    access.require_table_admin(user)
    key = category_key(alias)
    row = next((r for r in session.execute(select(CategoryAlias)).scalars()
                if category_key(r.alias) == key), None)
    if row is None:
        msg = f"别名「{clean_text(alias, multiline=False)}」不存在"
        raise NotFoundError(msg)
    session.delete(row)
    _set_removed_aliases(session, _removed_aliases(session) | {key})
    session.flush()
    record(session, user, "category_alias_deleted", f"{row.alias}: {row.category_code}", ip)
    return row.alias


def import_aliases(session, user: User | None, data: bytes, filename: str, *,
                   replace: bool = False, ip: str | None = None) -> dict:
    """Merge (or with ``replace`` substitute) a synonym table (别名, 类别编码); all rows or none.

    Returns
    -------
    dict
        ``rows``, ``added``, ``changed``, ``total``.
    """
    access.require_table_admin(user)
    rows = read_named_columns(data, filename, ALIAS_COLUMNS, required={"alias", "code"},
                              label="别名、类别编码")
    if not rows:
        raise TableRowsError("类别别名表", [f"{filename}: 没有数据行"])
    names, codes = _alias_context(session)
    errors: list[str] = []
    found: dict[str, tuple[int, str, Category]] = {}
    for raw in rows:
        where = f"第 {raw['row']} 行 "
        try:
            alias_text, cat = _check_alias(session, names, codes, raw["alias"], raw["code"], where)
        except ValidationError as exc:
            errors.append(str(exc))
            continue
        key = category_key(alias_text)
        if key in found and found[key][2].code != cat.code:
            errors.append(f"{where}别名「{alias_text}」与第 {found[key][0]} 行重复且类别不同")
            continue
        found.setdefault(key, (raw["row"], alias_text, cat))
    if errors:
        raise TableRowsError("类别别名表", errors)
    existing = {category_key(r.alias): r for r in session.execute(select(CategoryAlias)).scalars()}
    removed_keys = _removed_aliases(session)
    if replace:
        for key, row in existing.items():
            if key not in found:
                session.delete(row)
                removed_keys.add(key)
        existing = {k: r for k, r in existing.items() if k in found}
    added = changed = 0
    for key, (_, alias_text, cat) in found.items():
        row = existing.get(key)
        if row is None:
            session.add(CategoryAlias(alias=alias_text, category_code=cat.code, edited=True))
            added += 1
        else:
            if row.category_code != cat.code:
                changed += 1
            row.category_code, row.edited = cat.code, True
    _set_removed_aliases(session, removed_keys - set(found))
    session.flush()
    total = session.execute(select(func.count(CategoryAlias.id))).scalar_one()
    record(session, user, "category_aliases_imported",
           f"{filename}: 新增 {added}, 修改 {changed}{', 替换全部' if replace else ''}", ip)
    return {"rows": len(rows), "added": added, "changed": changed, "total": total}
