"""The category table (问题类别) and how people write categories.

Lists sent back by the prefecture write a problem's category in many ways: a code
("0302"), a level-2 name ("背街小巷"), "一级-二级" ("市容环境卫生-背街小巷"), a level-1
name alone ("环境卫生"), a word of their own ("四害", "牛皮癣") or a typo ("背街小港").
``CategoryMatcher`` tries these in that order; what still matches nothing is 待分类
(``CategoryMatch.category is None``) and the caller keeps the problem, never drops it.

The tables come from ``layers/categories.csv`` and ``layers/category_aliases.csv``;
``seed_categories`` and ``seed_aliases`` only add what is missing, so an office's edits
survive every ``init-db``.
"""

from __future__ import annotations

import csv
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session as OrmSession

from app.models import Category, CategoryAlias, Issue, Setting, Unit, UnitAlias, User
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.text import clean_text

PENDING_LABEL = "待分类"
PENDING_DAYS_KEY = "category_pending_days"
DEFAULT_PENDING_DAYS = 5
REMOVED_ALIASES_KEY = "category_aliases_removed"
DEFERRED_UNITS_KEY = "category_units_deferred"
# rapidfuzz's ratio is 75 for one wrong character in four ("背街小港" → "背街小巷"), the
# least we accept; a rival of another branch within the margin makes the text ambiguous.
FUZZY_THRESHOLD = 0.75
FUZZY_MARGIN = 0.05
MAX_ALIAS_LEN = 60

_QUOTES = re.compile("[\"'“”‘’「」『』《》〈〉]")
_SEPARATORS = re.compile(r"\s*[-—–－―/／>＞→|｜·・:：]+\s*|[（(【\[]|[）)】\]]")
_SUFFIXES = ("类问题", "方面问题", "问题", "方面", "类")
_CODE = re.compile(r"^(\d{1,10})(?:\.0+)?$")
_CODE_PREFIX = re.compile(r"^(\d{2,10})(?=\D)")


def category_key(text: object) -> str:
    """Return the form texts are compared in: cleaned, NFKC, no blanks or quotes, lower-case.

    Parameters
    ----------
    text
        A category as written (any type; ``None`` gives "").
    """
    value = unicodedata.normalize("NFKC", clean_text(text, multiline=False))
    return _QUOTES.sub("", "".join(value.split())).lower()


def _strip_suffix(key: str) -> str:
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and len(key) - len(suffix) >= 2:
            return key[: -len(suffix)]
    return key


@dataclass(frozen=True)
class CategoryMatch:
    """The category a text names, and how it was found.

    ``category`` is None for 待分类; ``method`` is one of "code", "name", "path",
    "level1", "alias", "fuzzy", "none"; ``score`` runs from 1.0 (exact) to 0.0 (none);
    ``text`` is the cleaned text as written (what ``Issue.category_text`` stores).
    """

    category: Category | None
    method: str
    score: float
    text: str

    @property
    def pending(self) -> bool:
        return self.category is None


class _Cat(NamedTuple):
    """The columns of a category the matcher reads (a plain, session-free record)."""

    id: int
    code: str
    level: int
    parent_code: str | None


class _Index(NamedTuple):
    by_code: dict[str, _Cat]
    level2: dict[str, _Cat]
    level1: dict[str, _Cat]
    aliases: dict[str, _Cat]
    candidates: list[tuple[str, _Cat]]
    memo: dict[str, CategoryMatch]


# The matcher's lookup tables, keyed by the exact rows they were built from: building
# them (ORM rows, name normalisation) was ~7 ms of every report, twice per API request.
_INDEXES: dict[tuple, _Index] = {}
_INDEX_LOCK = threading.Lock()


def _build_index(cat_rows, alias_rows) -> _Index:
    by_code: dict[str, _Cat] = {}
    level2: dict[str, _Cat] = {}
    level1: dict[str, _Cat] = {}
    for cid, code, name, level, parent_code in cat_rows:
        cat = _Cat(cid, code, level, parent_code)
        by_code[code] = cat
        (level1 if level == 1 else level2).setdefault(category_key(name), cat)
    aliases: dict[str, _Cat] = {}
    for alias, code in alias_rows:
        cat = by_code.get(code)
        if cat is not None:
            aliases.setdefault(category_key(alias), cat)
    # Fuzzy candidates: every name and alias, each with its category.
    candidates = [*level2.items(), *level1.items(), *aliases.items()]
    return _Index(by_code, level2, level1, aliases, candidates, {})


class CategoryMatcher:
    """Loads categories and aliases once; match() is cheap (the bulk importer calls it per row).

    Parameters
    ----------
    session
        The database session; categories and aliases are read at construction only, so
        build a new matcher after changing either table. The lookup tables are shared
        between matchers built from identical rows (read with two plain SELECTs), so a
        new matcher costs two small queries, not a rebuild.
    """

    def __init__(self, session) -> None:
        self._session = session
        cat_rows = tuple(tuple(r) for r in session.execute(
            select(Category.id, Category.code, Category.name, Category.level,
                   Category.parent_code).order_by(Category.code)))
        alias_rows = tuple(tuple(r) for r in session.execute(
            select(CategoryAlias.alias, CategoryAlias.category_code)
            .order_by(CategoryAlias.id)))
        key = (cat_rows, alias_rows)
        with _INDEX_LOCK:
            index = _INDEXES.get(key)
        if index is None:
            index = _build_index(cat_rows, alias_rows)
            with _INDEX_LOCK:
                if len(_INDEXES) >= 8:
                    _INDEXES.clear()
                _INDEXES[key] = index
        self._by_code = index.by_code
        self._level2 = index.level2
        self._level1 = index.level1
        self._aliases = index.aliases
        self._candidates = index.candidates
        self._shared_memo = index.memo
        self._memo: dict[str, CategoryMatch] = {}

    # -------------------------------------------------------------- exact steps

    def _exact(self, key: str) -> tuple[Category, str] | None:
        """A level-2 name, a level-1 name or an alias, exactly (also without "类/问题")."""
        for candidate in dict.fromkeys((key, _strip_suffix(key))):
            if candidate in self._level2:
                return self._level2[candidate], "name"
            if candidate in self._level1:
                return self._level1[candidate], "level1"
            if candidate in self._aliases:
                return self._aliases[candidate], "alias"
        return None

    def _code(self, key: str) -> Category | None:
        hit = _CODE.match(key) or _CODE_PREFIX.match(key)
        if hit is None:
            return None
        code = hit[1]
        if code in self._by_code:
            return self._by_code[code]
        if len(code) % 2:  # Excel drops the leading zero of 0302 when the cell is a number
            return self._by_code.get("0" + code)
        return None

    def _branch(self, cat: Category) -> str:
        return cat.code if cat.level == 1 else (cat.parent_code or cat.code[:2])

    # -------------------------------------------------------------- fuzzy step

    def _fuzzy(self, key: str, *, within: str | None = None) -> tuple[Category, float] | None:
        """The one category clearly nearest to ``key`` by spelling, or None."""
        if len(key) < 2:
            return None
        from rapidfuzz import fuzz

        scored: list[tuple[float, Category]] = []
        for name, cat in self._candidates:
            if within is not None and self._branch(cat) != within:
                continue
            score = fuzz.ratio(key, name) / 100.0
            short, long_ = sorted((key, name), key=len)
            if len(short) >= 2 and short in long_:
                # A name inside the text ("公厕卫生差") or the text inside a name ("市容环境").
                score = max(score, 0.75 + 0.25 * len(short) / len(long_))
            if score >= FUZZY_THRESHOLD:
                scored.append((score, cat))
        if not scored:
            return None
        scored.sort(key=lambda s: (-s[0], -s[1].level))
        best_score, best = scored[0]
        near = {cat.id: cat for score, cat in scored if best_score - score <= FUZZY_MARGIN}
        branches = {self._branch(cat) for cat in near.values()}
        if len(branches) > 1:
            return None  # "卫生" is as near to 市容环境卫生 as to 重点场所卫生
        level2 = [cat for cat in near.values() if cat.level == 2]
        if len(level2) == 1:
            best = level2[0]  # a level-2 hit consistent with a level-1 one is the sharper answer
        elif len(level2) > 1:
            # Siblings ("食品" → 食品摊贩, 食品生产经营): the branch they share is what is known.
            best = self._by_code.get(branches.pop())
            if best is None:
                return None
        return best, round(best_score, 3)

    # -------------------------------------------------------------- the matcher

    def match(self, text: object) -> CategoryMatch:
        """Return the category ``text`` names, or a 待分类 match (category None).

        Parameters
        ----------
        text
            The category as written: code, name, "一级-二级", level-1 name, synonym or typo.
        """
        written = clean_text(text, multiline=False, max_len=120)
        key = category_key(written)
        found = self._memo.get(key)
        if found is None:
            light = self._shared_memo.get(key)
            if light is None:
                light = self._match_key(key)
                self._shared_memo[key] = light
            # The shared tables hold plain records; the caller gets this session's row.
            cat = (self._session.get(Category, light.category.id)
                   if light.category is not None else None)
            found = CategoryMatch(cat, light.method if cat is not None or light.category is None
                                  else "none", light.score if cat is not None else 0.0,
                                  light.text)
            self._memo[key] = found
        return CategoryMatch(found.category, found.method, found.score, written)

    def _match_key(self, key: str) -> CategoryMatch:
        none = CategoryMatch(None, "none", 0.0, key)
        if not key:
            return none
        cat = self._code(key)
        if cat is not None:
            return CategoryMatch(cat, "code", 1.0, key)
        exact = self._exact(key)
        if exact is not None:
            return CategoryMatch(exact[0], exact[1], 1.0, key)
        parts = [p for p in _SEPARATORS.split(key) if p]
        if len(parts) >= 2:
            found = self._match_path(parts)
            if found is not None:
                return found
        fuzzy = self._fuzzy(key)
        if fuzzy is not None:
            return CategoryMatch(fuzzy[0], "fuzzy", fuzzy[1], key)
        return none

    def _match_path(self, parts: list[str]) -> CategoryMatch | None:
        """"一级-二级" (or "二级(一级)"): the most specific part that names a category."""
        hits = [(part, self._code(part) or (self._exact(part) or (None,))[0]) for part in parts]
        known = [cat for _, cat in hits if cat is not None]
        level2 = [cat for cat in known if cat.level == 2]
        if level2:
            return CategoryMatch(level2[-1], "path", 1.0, "")
        level1 = known[-1] if known else None
        if level1 is not None:
            # The branch is named; look for the level-2 part among its children only.
            for part, cat in reversed(hits):
                if cat is None:
                    fuzzy = self._fuzzy(part, within=level1.code)
                    if fuzzy is not None and fuzzy[0].level == 2:
                        return CategoryMatch(fuzzy[0], "path", fuzzy[1], "")
            return CategoryMatch(level1, "level1", 1.0, "")
        return None


def category_event_data(found: CategoryMatch, *, deadline_given: bool) -> dict:
    """What a "report" IssueEvent records of the category (``data["category"]``).

    ``deadline_default`` tells the 待分类 queue that the deadline came from the default,
    so classifying recomputes it with the chosen category's own deadline. Every intake
    (``create_issue``, the bulk importer) should store this.

    Parameters
    ----------
    found
        The match of the category as written.
    deadline_given
        Whether the list or form gave a deadline of its own.
    """
    return {"method": found.method, "score": found.score,
            "deadline_default": found.category is None and not deadline_given}


_SESSION_KEY = "sanigrid_category_matcher"


def session_matcher(session) -> CategoryMatcher:
    """A matcher shared by the calls within one session's transaction (one request).

    An API report read its category twice (the request check, then the intake service),
    building a matcher each time. The shared one is dropped when the session writes to
    the category or alias tables, commits or rolls back (see the listeners below); with
    such changes still pending, a fresh matcher is built (its queries flush them first).

    Parameters
    ----------
    session
        The database session.
    """
    pending = (session.new, session.dirty, session.deleted)
    if any(isinstance(obj, (Category, CategoryAlias)) for objs in pending for obj in objs):
        session.info.pop(_SESSION_KEY, None)
        return CategoryMatcher(session)
    matcher = session.info.get(_SESSION_KEY)
    if matcher is None:
        matcher = CategoryMatcher(session)
        session.info[_SESSION_KEY] = matcher
    return matcher


def _forget_matcher(session, *_args) -> None:
    session.info.pop(_SESSION_KEY, None)


def _forget_after_flush(session, _context) -> None:
    pending = (session.new, session.dirty, session.deleted)
    if any(isinstance(obj, (Category, CategoryAlias)) for objs in pending for obj in objs):
        session.info.pop(_SESSION_KEY, None)


def _forget_on_write(state) -> None:
    if not state.is_select:
        state.session.info.pop(_SESSION_KEY, None)


event.listen(OrmSession, "after_commit", _forget_matcher)
event.listen(OrmSession, "after_soft_rollback", _forget_matcher)
event.listen(OrmSession, "after_flush", _forget_after_flush)
event.listen(OrmSession, "do_orm_execute", _forget_on_write)


def match_category(session, text: object) -> CategoryMatch:
    """Match one category text (with the session's shared matcher, see session_matcher).

    Parameters
    ----------
    session
        The database session.
    text
        The category as written.
    """
    return session_matcher(session).match(text)


def find_category(session, text: object) -> Category | None:
    """Return the category a text names, or None (kept for older callers)."""
    return match_category(session, text).category


# ---------------------------------------------------------------------- the 待分类 deadline


def pending_deadline_days(session) -> int:
    """Working days a 待分类 problem gets when its list gives no deadline (a Setting).

    Parameters
    ----------
    session
        The database session.
    """
    row = session.get(Setting, PENDING_DAYS_KEY)
    try:
        days = int((row.value or {}).get("days")) if row is not None else DEFAULT_PENDING_DAYS
    except (TypeError, ValueError):
        days = DEFAULT_PENDING_DAYS
    return days if days > 0 else DEFAULT_PENDING_DAYS


def set_pending_deadline_days(session, user: User | None, days: object) -> int:
    """Store the 待分类 default deadline (1–60 working days); return it.

    Parameters
    ----------
    session
        The database session.
    user
        The admin (None from the command line).
    days
        The number of working days, as typed.
    """
    _admin(user)
    try:
        value = int(str(days).strip())
    except ValueError:
        msg = f"待分类默认时限: {str(days)!r} 不是整数"
        raise ValidationError(msg) from None
    if not 1 <= value <= 60:
        msg = f"待分类默认时限: {value} 超出范围 (1–60 个工作日)"
        raise ValidationError(msg)
    row = session.get(Setting, PENDING_DAYS_KEY) or Setting(key=PENDING_DAYS_KEY, value={})
    row.value = {"days": value}
    session.add(row)
    session.flush()
    return value


def _admin(user: User | None) -> None:
    # None is the command line, run by whoever holds the server.
    if user is not None:
        from app.services.core.access import require

        require(user, "manage_users")


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


class CategoryTableError(ValidationError):
    """A category or synonym table with row errors; ``errors`` lists every one."""

    def __init__(self, errors: list[str], *, what: str = "类别表"):
        self.errors = errors
        shown = "；".join(errors[:5])
        if len(errors) > 5:
            shown += f"；另有 {len(errors) - 5} 处错误"
        super().__init__(f"{what}有 {len(errors)} 处错误，未导入: {shown}")


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
            raise CategoryTableError(errors)
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


def load_categories(session, path: Path) -> int:
    """Add the categories of a CSV that are missing (kept for older callers)."""
    return seed_categories(session, path)


def read_category_table(data: bytes, filename: str) -> list[dict]:
    """Parse an uploaded category table (.xlsx/.xls/.csv) into numbered rows."""
    from app.services.imports.importer import read_named_columns

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
    from app.services.core.audit import record

    _admin(user)
    rows = read_category_table(data, filename)
    if not rows:
        raise CategoryTableError([f"{filename}: 没有数据行"])
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
        raise CategoryTableError(errors)
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
    _admin(user)
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
    from app.services.core.audit import record

    _admin(user)
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
    _admin(user)
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
    from app.services.core.audit import record

    _admin(user)
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
        from app.services.core.errors import ConflictError

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
    from app.services.core.audit import record

    _admin(user)
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
    from app.services.core.audit import record
    from app.services.imports.importer import read_named_columns

    _admin(user)
    rows = read_named_columns(data, filename, ALIAS_COLUMNS, required={"alias", "code"},
                              label="别名、类别编码")
    if not rows:
        raise CategoryTableError([f"{filename}: 没有数据行"], what="类别别名表")
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
        raise CategoryTableError(errors, what="类别别名表")
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
