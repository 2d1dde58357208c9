"""How people write categories, and the one matcher that reads them (and the 待分类 deadline).

Lists sent back by the prefecture write a problem's category in many ways: a code
("0302"), a level-2 name ("背街小巷"), "一级-二级" ("市容环境卫生-背街小巷"), a level-1
name alone ("环境卫生"), a word of their own ("四害", "牛皮癣") or a typo ("背街小港").
``CategoryMatcher`` tries these in that order; what still matches nothing is 待分类
(``CategoryMatch.category is None``) and the caller keeps the problem, never drops it.
The table itself (seeding, import, edits, synonyms) is ``tables.categories``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from rapidfuzz import fuzz
from sqlalchemy import event, select
from sqlalchemy.orm import Session as OrmSession

from app.models import Category, CategoryAlias, Setting, User
from app.services.core import access
from app.services.core.cache import KeyedCache
from app.services.core.errors import ValidationError
from app.services.core.text import clean_text

PENDING_LABEL = "待分类"
PENDING_DAYS_KEY = "category_pending_days"
DEFAULT_PENDING_DAYS = 5
# rapidfuzz's ratio is 75 for one wrong character in four ("背街小港" → "背街小巷"), the
# least we accept; a rival of another branch within the margin makes the text ambiguous.
FUZZY_THRESHOLD = 0.75
FUZZY_MARGIN = 0.05

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
_INDEXES: KeyedCache[_Index] = KeyedCache("category index", maxsize=8)


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
        index = _INDEXES.get_or_build((cat_rows, alias_rows),
                                      lambda: _build_index(cat_rows, alias_rows))
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
    if user is not None:  # None is the command line, run by whoever holds the server
        access.require(user, "manage_users")
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
