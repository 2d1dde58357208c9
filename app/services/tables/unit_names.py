"""Unit names as lists write them: 县住建局, 东风社区, 城管局 → the units in the table.

A prefecture's feedback list names the responsible unit in its own words: short forms
(县住建局 for 县住房和城乡建设局), without the county prefix (云岭县) or the 居委会 suffix, with
bracketed notes ("(牵头)"), full-width characters and several units in one cell
("县城管局、东风社区"). ``match_units`` reads such a cell into a lead unit, co-units and the
names it could not match; the office's alias table (``UnitAlias``) is consulted first, so a
name the rules miss can be taught once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select

from app.models import Setting, Unit, UnitAlias, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import ConflictError, NotFoundError, TableRowsError, ValidationError
from app.services.core.params import is_id, parse_id, shown
from app.services.core.tabular import read_named_columns
from app.services.core.text import clean_text

# Separators between several units in one cell; whitespace is tried last (a name may
# itself have been typed with a space).
_SPLIT = re.compile(r"[、,，;；/／|｜\n]+|及|以及")
_BRACKETS = re.compile(r"[(（\[【〔<《].*?[)）\]】〕>》]")
_ROLE_WORDS = re.compile(r"(牵头|负责|配合|协助|协办|主办|主责|督促|等单位|等部门)$")
# Suffixes that name the same body (east → west): 东风社区居委会 = 东风社区.
_SUFFIXES = (
    ("社区居民委员会", "社区"),
    ("社区居委会", "社区"),
    ("居民委员会", ""),
    ("居委会", ""),
    ("街道办事处", "街道"),
    ("街道办", "街道"),
    ("镇人民政府", "镇"),
    ("乡人民政府", "乡"),
    ("镇政府", "镇"),
    ("乡政府", "乡"),
)
# Short forms of county departments and the full names they stand for, in the order tried
# (城管局 is 城市管理局 where one exists, else the 综合行政执法局 that took over its work).
SHORT_FORMS: dict[str, tuple[str, ...]] = {
    "住建局": ("住房和城乡建设局",),
    "城管局": ("城市管理局", "综合行政执法局", "城市管理综合行政执法局"),
    "城管执法局": ("城市管理综合行政执法局", "综合行政执法局", "城市管理局"),
    "执法局": ("综合行政执法局", "城市管理综合行政执法局"),
    "综合执法局": ("综合行政执法局",),
    "市监局": ("市场监督管理局",),
    "市场监管局": ("市场监督管理局",),
    "卫健局": ("卫生健康局",),
    "卫生局": ("卫生健康局",),
    "教体局": ("教育体育局",),
    "教育局": ("教育体育局", "教育局"),
    "交通局": ("交通运输局",),
    "交运局": ("交通运输局",),
    "文旅局": ("文化和旅游局",),
    "环保局": ("生态环境局", "生态环境分局"),
    "生态环境局": ("生态环境分局",),
    "自然资源局": ("自然资源和规划局",),
    "资规局": ("自然资源和规划局", "自然资源局"),
    "水利局": ("水务局",),
    "商务局": ("商务局",),
    "环卫公司": ("城乡环卫有限公司", "环卫有限公司"),
}


@dataclass
class UnitMatch:
    """What a 责任单位 cell names: the lead unit, its co-units and the names not found."""

    lead: Unit | None
    co_units: list[Unit] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[Unit]:
        return ([self.lead] if self.lead is not None else []) + list(self.co_units)


def _county_prefixes(session) -> tuple[str, ...]:
    setting = session.get(Setting, "county")
    value = setting.value if setting is not None and isinstance(setting.value, dict) else {}
    name = str(value.get("county_name") or "").strip()
    prefixes = [name] if name else []
    for key in ("prefecture", "province"):
        if value.get(key):
            prefixes.append(str(value[key]).strip())
    return tuple(p for p in prefixes if p)


def unit_key(text: object, *, prefixes: tuple[str, ...] = ()) -> str:
    """A unit name folded for comparison: no spaces, notes, county prefix or 居委会 suffix.

    Parameters
    ----------
    text
        A name as written.
    prefixes
        Place names to strip from the front (the county's name, e.g. 云岭县).
    """
    key = unicodedata.normalize("NFKC", clean_text(text, multiline=False))
    key = _BRACKETS.sub("", key)
    key = re.sub(r"\s+", "", key)
    key = _ROLE_WORDS.sub("", key)
    changed = True
    while changed:  # "红河州云岭县…" carries two prefixes
        changed = False
        for prefix in prefixes:
            if prefix and key.startswith(prefix) and len(key) > len(prefix):
                key, changed = key[len(prefix):], True
    if key.startswith("县") and len(key) > 2:
        key = key[1:]
    for suffix, replacement in _SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)] + replacement
            break
    return key


class UnitMatcher:
    """Units, their keys and the alias table, loaded once; ``match`` is cheap per cell."""

    def __init__(self, session) -> None:
        self.prefixes = _county_prefixes(session)
        units = list(
            session.execute(select(Unit).where(Unit.active.is_(True)).order_by(Unit.id)).scalars()
        )
        self.by_name = {u.name: u for u in units}
        self.by_key: dict[str, Unit] = {}
        for unit in units:
            self.by_key.setdefault(unit_key(unit.name, prefixes=self.prefixes), unit)
        for unit in units:
            # "口岸居委会" names 口岸社区居委会 too (a full name keeps its own key first).
            key = unit_key(unit.name, prefixes=self.prefixes)
            if key.endswith("社区") and len(key) >= 4:
                self.by_key.setdefault(key[:-2], unit)
        self.aliases: dict[str, Unit] = {}
        for alias in session.execute(select(UnitAlias).order_by(UnitAlias.id)).scalars():
            unit = alias.unit
            if unit is None or not unit.active:
                continue
            self.aliases.setdefault(clean_text(alias.alias, multiline=False), unit)
            self.aliases.setdefault(unit_key(alias.alias, prefixes=self.prefixes), unit)
        self._cache: dict[str, UnitMatch] = {}

    def one(self, name: str) -> Unit | None:
        """The unit one name stands for, or None."""
        plain = clean_text(name, multiline=False)
        if not plain:
            return None
        if plain in self.aliases:
            return self.aliases[plain]
        if plain in self.by_name:
            return self.by_name[plain]
        key = unit_key(plain, prefixes=self.prefixes)
        if not key:
            return None
        for table in (self.aliases, self.by_key):
            if key in table:
                return table[key]
        for full in SHORT_FORMS.get(key, ()):
            if full in self.by_key:
                return self.by_key[full]
        # "云岭县住建局" reads as 住建局 once the prefix is gone; "县城管局" likewise.
        for short, fulls in SHORT_FORMS.items():
            if key.endswith(short) and len(key) - len(short) <= 1:
                for full in fulls:
                    if full in self.by_key:
                        return self.by_key[full]
        return None

    def match(self, text: object) -> UnitMatch:
        """Read a 责任单位 cell: the first unit found leads, the others are co-units."""
        raw = clean_text(text, multiline=True)
        if raw in self._cache:
            return self._cache[raw]
        found: list[Unit] = []
        unmatched: list[str] = []
        cell = unicodedata.normalize("NFKC", raw)
        cell = _BRACKETS.sub(" ", cell)
        for piece in _SPLIT.split(cell):
            piece = piece.strip()
            if not piece:
                continue
            unit = self.one(piece)
            if unit is not None:
                found.append(unit)
                continue
            words = piece.split()
            if len(words) > 1:
                units = [self.one(w) for w in words]
                for word, unit in zip(words, units, strict=True):
                    if unit is not None:
                        found.append(unit)
                    else:
                        unmatched.append(word)
                continue
            unmatched.append(piece)
        seen: set[int] = set()
        ordered = []
        for unit in found:
            if unit.id not in seen:
                seen.add(unit.id)
                ordered.append(unit)
        result = UnitMatch(
            lead=ordered[0] if ordered else None, co_units=ordered[1:], unmatched=unmatched
        )
        self._cache[raw] = result
        return result


def match_units(session, text: object) -> UnitMatch:
    """Match a 责任单位 cell to units (see ``UnitMatcher.match``).

    Parameters
    ----------
    session
        A database session.
    text
        The cell as written, e.g. "县城管局、东风社区".

    Returns
    -------
    UnitMatch
        ``lead`` (the first unit matched, or None), ``co_units`` (the other units matched,
        in the cell's order, without repeats) and ``unmatched`` (names that matched none).
    """
    return UnitMatcher(session).match(text)


# ---------------------------------------------------------------------- the alias table


ALIAS_COLUMNS = {
    "alias": {"别名", "简称", "清单写法", "alias"},
    "unit": {"责任单位", "单位", "单位名称", "标准名称", "unit"},
}


def list_unit_aliases(session, user: User | None) -> list[dict]:
    """Every alias with its unit, sorted by unit then alias."""
    access.require_table_admin(user)
    rows = session.execute(
        select(UnitAlias, Unit).join(Unit, UnitAlias.unit_id == Unit.id)
        .order_by(Unit.name, UnitAlias.alias)
    ).all()
    return [{"id": a.id, "alias": a.alias, "unit": u.name, "unit_id": u.id} for a, u in rows]


def unit_name_choices(session) -> list[str]:
    """Every unit's name, sorted: the choices of the alias form's unit picker."""
    return list(session.execute(select(Unit.name).order_by(Unit.name)).scalars().all())


def _unit_named(session, name: str, *, where: str = "") -> Unit:
    name = clean_text(name, multiline=False)
    if not name:
        msg = f"{where}责任单位 不能为空"
        raise ValidationError(msg)
    unit = session.execute(select(Unit).where(Unit.name == name)).scalar()
    if unit is None:
        msg = f"{where}责任单位 {name!r} 不存在 (须与单位管理中的名称一致)"
        raise ValidationError(msg)
    return unit


def _check_alias(alias: str, *, where: str = "") -> str:
    alias = clean_text(alias, multiline=False)
    if not alias:
        msg = f"{where}别名 不能为空"
        raise ValidationError(msg)
    if len(alias) > 120:
        msg = f"{where}别名 过长 (超过 120 字): {alias[:20]}…"
        raise ValidationError(msg)
    return alias


def _alias_row(session, alias_id: object, hint: str = "") -> UnitAlias:
    """The alias row with this id as a form sent it; NotFoundError for anything else.

    Parameters
    ----------
    session
        The database session.
    alias_id
        The id as sent (text from a form, or an int); a value no database id can be
        (``99999999999999999999``, ``abc``) is "not found", never an overflow in the driver.
    hint
        Appended to the message (e.g. why a row may be gone).
    """
    row = session.get(UnitAlias, parse_id(alias_id)) if is_id(alias_id) else None
    if row is None:
        msg = f"别名 {shown(alias_id)} 不存在" + (f" {hint}" if hint else "")
        raise NotFoundError(msg)
    return row


def save_unit_alias(
    session, user: User | None, alias: str, unit_name: str, *,
    alias_id: object = None, ip: str | None = None,
) -> UnitAlias:
    """Add an alias, or change one (``alias_id``); refuse a name another unit already has."""
    access.require_table_admin(user)
    alias = _check_alias(alias)
    unit = _unit_named(session, unit_name)
    row = None
    if alias_id is not None and str(alias_id).strip() != "":
        row = _alias_row(session, alias_id, "(可能已被他人删除)")
    taken = session.execute(select(UnitAlias).where(UnitAlias.alias == alias)).scalar()
    if taken is not None and taken is not row:
        msg = f"别名「{alias}」已存在 (对应「{taken.unit.name}」)，请直接修改该行"
        raise ConflictError(msg)
    clash = session.execute(select(Unit).where(Unit.name == alias)).scalar()
    if clash is not None and clash.id != unit.id:
        msg = f"「{alias}」是另一个单位的正式名称，不能作为「{unit.name}」的别名"
        raise ConflictError(msg)
    if row is None:
        row = UnitAlias(alias=alias, unit_id=unit.id)
        session.add(row)
    else:
        row.alias, row.unit_id = alias, unit.id
    session.flush()
    record(session, user, "unit_alias_saved", f"{alias}: {unit.name}", ip)
    return row


def delete_unit_alias(
    session, user: User | None, alias_id: object, *, ip: str | None = None
) -> str:
    """Remove one alias; return its text."""
    access.require_table_admin(user)
    row = _alias_row(session, alias_id)
    alias = row.alias
    session.delete(row)
    session.flush()
    record(session, user, "unit_alias_deleted", alias, ip)
    return alias


def import_unit_aliases(
    session, user: User | None, data: bytes, filename: str, *,
    replace: bool = False, ip: str | None = None,
) -> dict:
    """Merge (or replace with) an uploaded table of 别名, 责任单位; all rows or none.

    Raises
    ------
    TableRowsError
        Naming every wrong row ("第 3 行: 责任单位 '县环卫局' 不存在").
    """
    access.require_table_admin(user)
    rows = read_named_columns(
        data, filename, ALIAS_COLUMNS, required={"alias", "unit"}, label="别名、责任单位"
    )
    units = {u.name: u for u in session.execute(select(Unit)).scalars()}
    errors: list[str] = []
    pairs: dict[str, tuple[int, Unit]] = {}
    for item in rows:
        where = f"第 {item['row']} 行: "
        try:
            alias = _check_alias(item.get("alias", ""), where=where)
        except ValidationError as exc:
            errors.append(str(exc))
            continue
        name = clean_text(item.get("unit", ""), multiline=False)
        unit = units.get(name)
        if unit is None:
            errors.append(f"{where}责任单位 {name!r} 不存在" if name else f"{where}责任单位 不能为空")
            continue
        if alias in units and units[alias].id != unit.id:
            errors.append(f"{where}别名「{alias}」是另一个单位的正式名称")
            continue
        if alias in pairs and pairs[alias][1].id != unit.id:
            errors.append(
                f"{where}别名「{alias}」与第 {pairs[alias][0]} 行重复但对应不同单位"
            )
            continue
        pairs[alias] = (item["row"], unit)
    if errors:
        raise TableRowsError("单位别名表", errors, outcome="未导入任何别名")
    if not pairs:
        msg = f"{filename}: 表中没有别名"
        raise ValidationError(msg)
    existing = {a.alias: a for a in session.execute(select(UnitAlias)).scalars()}
    added = changed = 0
    if replace:
        for alias, row in existing.items():
            if alias not in pairs:
                session.delete(row)
    for alias, (_, unit) in pairs.items():
        row = existing.get(alias)
        if row is None:
            session.add(UnitAlias(alias=alias, unit_id=unit.id))
            added += 1
        elif row.unit_id != unit.id:
            row.unit_id = unit.id
            changed += 1
    session.flush()
    total = session.execute(select(UnitAlias.id)).scalars().all()
    record(session, user, "unit_aliases_imported", f"{filename}: +{added} ~{changed}", ip)
    return {"added": added, "changed": changed, "total": len(total)}
