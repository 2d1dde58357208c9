"""The county's offline geocoder, built from its own layers and alias table."""

from __future__ import annotations

import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Feature, Layer, Setting, User
from app.services.core.access import require_table_admin
from app.services.core.audit import record
from app.services.core.cache import KeyedCache
from app.services.core.errors import ConflictError, NotFoundError, TableRowsError, ValidationError
from app.services.core.tabular import read_named_columns
from app.services.grids.layers import layer_gdf
from gis.address import normalize_address
from gis.geocode.geocoder import Geocoder

# One geocoder: the key names every input, so a changed layer or alias builds a new one.
_GEOCODERS: KeyedCache[Geocoder] = KeyedCache("geocoders", maxsize=1)
ALIAS_KEY = "geocode_aliases"


def aliases(session) -> dict[str, str]:
    row = session.get(Setting, ALIAS_KEY)
    return dict(row.value) if row else {}


def set_aliases(session, mapping: dict[str, str]) -> None:
    row = session.get(Setting, ALIAS_KEY) or Setting(key=ALIAS_KEY, value={})
    row.value = dict(mapping)
    session.add(row)
    session.flush()


def geocoder_for(session: Session) -> Geocoder | None:
    """Return a Geocoder over the active layers (cached until a layer or alias changes).

    Roads, POIs, communities, door plates and buildings all feed it: a named building
    is a landmark, one with a street and number a door plate, and every layer's
    ``alt_name``/``old_name``/``short_name`` an alias beneath the admin's own table.
    """
    layers = {
        layer.kind: layer.id
        for layer in session.execute(
            select(Layer).where(Layer.active.is_(True)).order_by(Layer.id)
        ).scalars()
    }
    if "roads" not in layers:
        return None
    alias_map = aliases(session)
    county = session.get(Setting, "county")
    prefixes = tuple(
        str(county.value[k]) for k in ("county_name", "seat_name") if county and county.value.get(k)
    )
    key = (tuple(sorted(layers.items())), tuple(sorted(alias_map.items())), prefixes)
    cached = _GEOCODERS.get(key)
    if cached is not None:
        return cached

    def gdf(kind):
        return layer_gdf(session, layers[kind]) if kind in layers else None

    geocoder = Geocoder.from_layers(
        roads=gdf("roads"), pois=gdf("pois"), communities=gdf("communities"),
        addresses=gdf("addresses"), buildings=gdf("buildings"), aliases=alias_map,
        strip_prefixes=prefixes,
    )
    return _GEOCODERS.put(key, geocoder)


# ---------------------------------------------------------------------- the alias table
# Inspectors write places as people say them ("老车站", "一中"); the admin keeps a table
# of those names → the road, POI or community name in the county's own layers.

ALIAS_KINDS = ("roads", "pois", "communities")
KIND_LABELS = {"roads": "道路", "pois": "兴趣点", "communities": "社区"}
MAX_ALIAS_LEN = 60
ALIAS_COLUMNS = {
    "alias": ("别名", "俗称", "常用名", "alias"),
    "canonical": ("标准名称", "标准名", "规范名称", "正式名称", "名称", "canonical"),
}


def _light(name) -> str:
    """A name as written, only unified in width and blanks."""
    return "".join(unicodedata.normalize("NFKC", str(name or "")).split())


def known_places(session) -> dict[str, tuple[str, str]]:
    """Road, POI and community names of the active layers: lookup key → (name, kind)."""
    rows = session.execute(
        select(Feature.name, Layer.kind)
        .join(Layer, Feature.layer_id == Layer.id)
        .where(Layer.active.is_(True), Layer.kind.in_(ALIAS_KINDS), Feature.name.is_not(None))
        .distinct()
    ).all()
    places: dict[str, tuple[str, str]] = {}
    for name, kind in sorted(rows, key=lambda r: (ALIAS_KINDS.index(r[1]), r[0])):
        for key in (_light(name), normalize_address(name)):
            if key:
                places.setdefault(key, (name, kind))
    return places


def place_names(session) -> list[dict]:
    """Distinct known names with their kind, for the page's datalist."""
    seen: dict[str, str] = {}
    for name, kind in known_places(session).values():
        seen.setdefault(name, kind)
    return [{"name": n, "kind": KIND_LABELS[k]} for n, k in sorted(seen.items())]


def _check_pair(places: dict, alias: str, canonical: str, where: str) -> tuple[str, str]:
    """Return (alias, the layer's spelling of canonical); raise naming ``where``."""
    alias, canonical = _light(alias), _light(canonical)
    if not alias:
        msg = f"{where}别名为空"
        raise ValidationError(msg)
    if not canonical:
        msg = f"{where}别名「{alias}」的标准名称为空"
        raise ValidationError(msg)
    if len(alias) > MAX_ALIAS_LEN:
        msg = f"{where}别名「{alias[:20]}…」过长 (最多 {MAX_ALIAS_LEN} 字)"
        raise ValidationError(msg)
    hit = places.get(canonical) or places.get(normalize_address(canonical))
    if hit is None:
        msg = (f"{where}标准名称「{canonical}」不在当前道路、兴趣点或社区图层中"
               f" (请先导入图层，或检查名称是否写错)")
        raise ValidationError(msg)
    if alias == hit[0] or alias == canonical:
        msg = f"{where}别名「{alias}」与标准名称相同"
        raise ValidationError(msg)
    own = places.get(alias) or places.get(normalize_address(alias))
    if own is not None:
        # The geocoder matches a layer's own name first, so such an alias never applies.
        msg = f"{where}别名「{alias}」本身就是图层中的{KIND_LABELS[own[1]]}名称「{own[0]}」"
        raise ValidationError(msg)
    return alias, hit[0]


def list_aliases(session, user: User | None) -> list[dict]:
    """The alias table with each target's kind (or a note when it left the layers)."""
    require_table_admin(user)
    places = known_places(session)
    out = []
    for alias, canonical in sorted(aliases(session).items()):
        hit = places.get(_light(canonical)) or places.get(normalize_address(canonical))
        out.append({"alias": alias, "canonical": canonical,
                    "kind": KIND_LABELS[hit[1]] if hit else None})
    return out


def save_alias(session, user: User | None, alias: str, canonical: str, *,
               old_alias: str | None = None, ip: str | None = None) -> tuple[str, str]:
    """Add or change one alias (``old_alias`` renames an entry); return the stored pair."""
    require_table_admin(user)
    alias, canonical = _check_pair(known_places(session), alias, canonical, "")
    mapping = aliases(session)
    old = _light(old_alias) if old_alias else None
    if old and old not in mapping:
        msg = f"别名「{old}」不存在 (可能已被他人删除)"
        raise NotFoundError(msg)
    if alias in mapping and alias != old:
        msg = f"别名「{alias}」已存在 (对应「{mapping[alias]}」)，请直接修改该行"
        raise ConflictError(msg)
    if old:
        mapping.pop(old)
    mapping[alias] = canonical
    set_aliases(session, mapping)
    detail = f"{old} → {alias}: {canonical}" if old and old != alias else f"{alias}: {canonical}"
    record(session, user, "alias_saved", detail, ip)
    return alias, canonical


def delete_alias(session, user: User | None, alias: str, *, ip: str | None = None) -> str:
    """Remove one alias."""
    require_table_admin(user)
    key = _light(alias)
    mapping = aliases(session)
    if key not in mapping:
        msg = f"别名「{alias}」不存在"
        raise NotFoundError(msg)
    canonical = mapping.pop(key)
    set_aliases(session, mapping)
    record(session, user, "alias_deleted", f"{key}: {canonical}", ip)
    return key


def read_alias_table(data: bytes, filename: str) -> list[dict]:
    """Parse an alias table (.xlsx/.xls/.csv; columns 别名, 标准名称) into numbered rows."""
    return read_named_columns(data, filename, ALIAS_COLUMNS, required={"alias", "canonical"},
                              label="别名、标准名称")


def import_aliases(session, user: User | None, data: bytes, filename: str, *,
                   replace: bool = False, ip: str | None = None) -> dict:
    """Merge (or with ``replace`` substitute) an uploaded alias table; all rows or none."""
    require_table_admin(user)
    rows = read_alias_table(data, filename)
    if not rows:
        raise TableRowsError("别名表", [f"{filename}: 没有数据行"])
    places = known_places(session)
    errors: list[str] = []
    found: dict[str, tuple[int, str]] = {}
    for row in rows:
        where = f"第 {row['row']} 行: "
        try:
            alias, canonical = _check_pair(places, row["alias"], row["canonical"], where)
        except ValidationError as exc:
            errors.append(str(exc))
            continue
        if alias in found and found[alias][1] != canonical:
            errors.append(f"{where}别名「{alias}」与第 {found[alias][0]} 行重复且标准名称不同")
            continue
        found.setdefault(alias, (row["row"], canonical))
    if errors:
        raise TableRowsError("别名表", errors)
    mapping = {} if replace else aliases(session)
    before = dict(mapping)
    for alias, (_, canonical) in found.items():
        mapping[alias] = canonical
    set_aliases(session, mapping)
    added = sum(1 for a in found if a not in before)
    changed = sum(1 for a, (_, c) in found.items() if a in before and before[a] != c)
    record(session, user, "aliases_imported",
           f"{filename}: 新增 {added}, 修改 {changed}{', 替换全部' if replace else ''}", ip)
    return {"rows": len(rows), "added": added, "changed": changed, "total": len(mapping)}
