"""Normalise and parse the free-text addresses of Chinese inspection problem lists.

Pure text: no geometry here. Inspection lists sent back by prefecture or province
inspectors describe places the way people talk ("人民路与建设路交叉口东北角",
"农贸市场内", "解放路二十三号门前"); :func:`normalize_address` turns such text into
one canonical spelling and :func:`parse_address` recognises its form so that
:mod:`gis.geocode` can look the parts up in the county's own layers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import cn2an

__all__ = [
    "CORNERS",
    "POI_PARTS",
    "ROAD_SUFFIXES",
    "ParsedAddress",
    "door_plate_fields",
    "normalize_address",
    "parse_address",
    "split_road_suffix",
]

# Longest first, so that "大道" wins over "道" and "大街" over "街".
ROAD_SUFFIXES: tuple[str, ...] = ("大道", "大街", "小街", "路", "街", "巷", "坡", "道", "弄")
CORNERS: tuple[str, ...] = ("东北", "西北", "东南", "西南", "东", "西", "南", "北")
# Where at a place the problem is; longest first so "东门口" is not read as "口".
POI_PARTS: tuple[str, ...] = (
    "东门口",
    "西门口",
    "南门口",
    "北门口",
    "大门口",
    "门口处",
    "周边",
    "周围",
    "附近",
    "对面",
    "旁边",
    "门口",
    "门前",
    "北门",
    "南门",
    "东门",
    "西门",
    "后门",
    "正门",
    "大门",
    "北侧",
    "南侧",
    "东侧",
    "西侧",
    "后面",
    "后侧",
    "里面",
    "内",
    "旁",
    "外",
    "前",
    "后",
)
# Words that mark a road-wide problem rather than a point on it.
_ROAD_SPANS = (
    "中段",
    "沿线",
    "两侧",
    "两旁",
    "全线",
    "一带",
    "路段",
    "沿街",
    "北段",
    "南段",
    "东段",
    "西段",
)
# Text with these is a paperwork or county-wide problem: no single place to put it.
_VAGUE_MARKERS = (
    "多处",
    "各处",
    "全县",
    "全城",
    "县城区域",
    "城区范围",
    "档案",
    "资料",
    "台账",
    "制度",
    "不全",
    "未建立",
    "未落实",
    "未开展",
    "方案",
    "会议",
    "记录",
    "部分单位",
    "各单位",
    "各乡镇",
    "辖区内",
)

_CN_DIGITS = "零〇一二两三四五六七八九十百千"
# Only numerals directly followed by a unit of a house number or a distance are numbers;
# "三道巷" and "第一中学" keep their characters.
_CN_NUMBER = re.compile(rf"([{_CN_DIGITS}]+)(?=号|栋|幢|单元|米|层|楼|室|弄|户|组|附)")
_NOISE = re.compile(r"[\s\"'“”‘’`《》<>「」『』:;,.!?。，、；：！？·•*#…_]+")
_SLASHES = re.compile(r"[\\|]")
_OPEN = re.compile(r"[\[【〔{]")
_CLOSE = re.compile(r"[\]】〕}]")
_CONNECTORS = re.compile(r"与|和|同|跟|及|/|&|×|\+")
_RANGE = re.compile(r"至|到|~|-|—")
_ROAD_TOKEN = re.compile(r"(.+?(?:大道|大街|小街|路|街|巷|坡|弄|道(?![路街巷口])))")
_NUMBER = re.compile(r"(\d+)(?:-\d+)?号")
_CORNER = re.compile(r"(东北|西北|东南|西南|东|西|南|北)(?:角|侧|面|边|方向|方)?")
_INTERSECTION_WORDS = ("十字路口", "交叉路口", "丁字路口", "交汇处", "交汇口", "交界处", "交叉处")
# Admin prefixes at the start: province, prefecture (州/地区), city, county. A prefix is
# made of name characters only (no road suffix or connector: "建设路与信州路" is no
# prefecture) and is not itself the start of a road ("城市路", "广州街").
_ADMIN_CHAR = r"(?:(?![路街巷道坡弄与和同及号口交/])[\u4e00-\u9fff])"
_NOT_ROAD = r"(?![路街巷道坡弄大])"
_ADMIN_PREFIXES = (
    re.compile(r"^中国"),
    re.compile(rf"^{_ADMIN_CHAR}{{2,7}}?(?:省|自治区){_NOT_ROAD}"),
    re.compile(rf"^{_ADMIN_CHAR}{{2,10}}?自治州{_NOT_ROAD}"),
    re.compile(rf"^{_ADMIN_CHAR}{{2,4}}?(?:州|地区|盟){_NOT_ROAD}"),
    # "超市", "菜市" and the like are shops, not cities.
    re.compile(
        rf"^{_ADMIN_CHAR}{{2,4}}?(?<![超菜夜门集街早花鱼果肉城都])市(?![场民政区容貌]){_NOT_ROAD}"
    ),
    re.compile(rf"^{_ADMIN_CHAR}{{2,12}}?自治县{_NOT_ROAD}"),
    re.compile(rf"^{_ADMIN_CHAR}{{2,4}}?县(?![城委政级直]){_NOT_ROAD}"),
)


@dataclass(frozen=True)
class ParsedAddress:
    """The recognised form of one address.

    Attributes
    ----------
    kind : str
        One of ``"intersection"``, ``"segment"``, ``"house_number"``, ``"poi"``,
        ``"road"``, ``"unknown"``.
    road : str or None
        The main road (intersection: the first road; segment: the road the segment is on).
    cross_road : str or None
        The second road of an intersection.
    from_road, to_road : str or None
        The roads bounding a segment.
    number : int or None
        The house number (门牌号).
    corner : str or None
        A compass corner or side of an intersection (东北, 西北, 东南, 西南, 东, 西, 南, 北).
    poi : str or None
        A place name (market, school, estate ...).
    poi_part : str or None
        Where at the place: 内, 门口, 旁, 对面, 北门 ...
    raw : str
        The text as given.
    normalized : str
        The text after :func:`normalize_address`.
    """

    kind: str
    raw: str
    normalized: str
    road: str | None = None
    cross_road: str | None = None
    from_road: str | None = None
    to_road: str | None = None
    number: int | None = None
    corner: str | None = None
    poi: str | None = None
    poi_part: str | None = None


def _convert_cn_number(match: re.Match[str]) -> str:
    text = match.group(1)
    try:
        return str(int(cn2an.cn2an(text, "smart")))
    except (ValueError, KeyError, TypeError):
        # Not a well-formed number ("十百"): keep the characters.
        return text


def _strip_prefixes(text: str, prefixes: Sequence[str]) -> str:
    extra = sorted((p for p in prefixes if p), key=len, reverse=True)
    changed = True
    while changed:
        changed = False
        for prefix in extra:
            if text.startswith(prefix) and len(text) > len(prefix):
                text = text[len(prefix) :]
                changed = True
        for pattern in _ADMIN_PREFIXES:
            match = pattern.match(text)
            # Keep the text when the prefix is all there is ("某某县"): it is the place.
            if match and len(text) > match.end():
                text = text[match.end() :]
                changed = True
    return text


def normalize_address(text: str, *, strip_prefixes: Sequence[str] = ()) -> str:
    """Return one canonical spelling of a free-text address.

    Full-width characters become half-width (NFKC), blanks and punctuation noise go,
    Chinese numerals of house numbers and distances become Arabic ("二十三号" → "23号";
    "三道巷" and "第一中学" stay), province/prefecture/city/county prefixes and the
    given ``strip_prefixes`` are removed from the start, the many words for a crossing
    (交汇处, 十字路口, 路口 ...) become "交叉口", and every bracket becomes ``(`` ``)``.

    Parameters
    ----------
    text : str
        The address as typed by an inspector.
    strip_prefixes : sequence of str
        Extra prefixes to remove from the start (e.g. the county seat's town name).

    Returns
    -------
    str
        The normalised address; ``""`` for blank input.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text))
    text = _OPEN.sub("(", text)
    text = _CLOSE.sub(")", text)
    text = _SLASHES.sub("/", text)
    # Dropping a blank can bring a combining mark next to a letter: compose again.
    text = unicodedata.normalize("NFKC", _NOISE.sub("", text))
    # Empty brackets go before anything reads neighbours: "人民路（）口" is "人民路口".
    while "()" in text:  # "(())" leaves "()" after one pass
        text = text.replace("()", "")
    text = _CN_NUMBER.sub(_convert_cn_number, text)
    for word in _INTERSECTION_WORDS:
        text = text.replace(word, "交叉口")
    # "人民路建设路路口" and "人民路/建设路口": the 路 belongs to the road's name.
    text = text.replace("路路口", "路交叉口")
    text = re.sub(r"(?<=[路街道])口", "交叉口", text)
    text = text.replace("交叉交叉口", "交叉口")
    return _strip_prefixes(text, strip_prefixes)


def split_road_suffix(name: str) -> tuple[str, str]:
    """Split a road name into its core and its suffix ("人民路" → ("人民", "路")).

    Parameters
    ----------
    name : str
        A road name, possibly without a suffix.

    Returns
    -------
    tuple of str
        ``(core, suffix)``; ``suffix`` is ``""`` when the name has none.
    """
    for suffix in ROAD_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def _is_road(name: str) -> bool:
    return bool(split_road_suffix(name)[1])


def _split_two_roads(text: str) -> tuple[str, str | None]:
    """Split "A与B" or "A路B路" into two names; the second is None when it cannot."""
    # "和" and "同" also occur inside names ("和平路", "永和街"): prefer a connector
    # right after a road suffix, else the first one that leaves a two-character name.
    cuts = [m for m in _CONNECTORS.finditer(text) if m.start() >= 2 and m.end() < len(text)]
    after_road = [m for m in cuts if _is_road(text[: m.start()])]
    if after_road or cuts:
        cut = (after_road or cuts)[0]
        return text[: cut.start()], text[cut.end() :]
    match = _ROAD_TOKEN.match(text)
    if match and match.end() < len(text):
        return match.group(1), text[match.end() :]
    return text, None


def _clean_segment_end(name: str) -> str:
    if name.endswith("段"):
        name = name[:-1]
    if name.endswith("路路"):
        name = name[:-1]
    return name


def _parse_corner(text: str) -> str | None:
    match = _CORNER.match(text)
    return match.group(1) if match else None


def parse_address(text: str) -> ParsedAddress:
    """Recognise the form of an address and pull out its parts.

    Forms: intersections ("A路与B路交叉口东北角", "A路B路路口", "A路/B路口"), house
    numbers ("A路23号(门前)"), segments ("A路(B路至C路段)", "A路B路至C路段"), places
    with a part ("XX市场内", "XX小区北门", "XX医院对面"), plain roads ("A路",
    "A路中段", "A路沿线"); county-wide or paperwork problems ("县城区域内多处",
    "档案资料不全") are ``"unknown"``.

    Parameters
    ----------
    text : str
        The address, raw or already normalised.

    Returns
    -------
    ParsedAddress
        Never raises; unrecognised text gives ``kind="unknown"``.
    """
    raw = "" if text is None else str(text)
    norm = normalize_address(raw)
    if not norm or any(marker in norm for marker in _VAGUE_MARKERS):
        return ParsedAddress(kind="unknown", raw=raw, normalized=norm)

    # Bracketed remarks: a segment "(B路至C路段)" or a note "(门前)".
    paren = "".join(re.findall(r"\(([^()]*)\)", norm))
    main = re.sub(r"\([^()]*\)", "", norm).replace("(", "").replace(")", "")
    if not main:
        main, paren = paren, ""

    if "交叉口" in main:
        before, _, after = main.partition("交叉口")
        before = before.rstrip("的")
        if before:
            road, cross = _split_two_roads(before)
            return ParsedAddress(
                kind="intersection",
                raw=raw,
                normalized=norm,
                road=road,
                cross_road=cross,
                corner=_parse_corner(after) or _parse_corner(paren),
            )

    if paren and _RANGE.search(paren) and main:
        start, end = _RANGE.split(paren, maxsplit=1)
        road = main
        for span in _ROAD_SPANS:
            road = road.removesuffix(span)
        return ParsedAddress(
            kind="segment",
            raw=raw,
            normalized=norm,
            road=road,
            from_road=start.removeprefix("从").removeprefix("自") or None,
            to_road=_clean_segment_end(end) or None,
        )
    segment = re.match(r"^(.+?)(?:从|自)?([^从自]+?)(?:至|到|~|-|—)(.+?)段?$", main)
    if segment and _RANGE.search(main) and ("段" in main or _is_road(main)):
        head, start, end = segment.groups()
        road, rest = _split_two_roads(head + start)
        if rest:
            return ParsedAddress(
                kind="segment",
                raw=raw,
                normalized=norm,
                road=road,
                from_road=rest.removeprefix("从").removeprefix("自"),
                to_road=_clean_segment_end(end) or None,
            )

    number = _NUMBER.search(main)
    # "第5号市场" is a name, not a door plate.
    if number and number.start() >= 2 and not main[: number.start()].endswith("第"):
        road = main[: number.start()].removesuffix("门牌")
        return ParsedAddress(
            kind="house_number", raw=raw, normalized=norm, road=road, number=int(number.group(1))
        )

    stem = main
    for span in _ROAD_SPANS:
        if stem.endswith(span) and len(stem) > len(span):
            stem = stem[: -len(span)]
            break
    if _is_road(stem):
        return ParsedAddress(kind="road", raw=raw, normalized=norm, road=stem)

    for part in POI_PARTS:
        if main.endswith(part) and len(main) > len(part):
            poi = main[: -len(part)]
            if _is_road(poi) and part in ("旁", "旁边", "附近", "周边", "周围", "两侧"):
                return ParsedAddress(kind="road", raw=raw, normalized=norm, road=poi)
            return ParsedAddress(kind="poi", raw=raw, normalized=norm, poi=poi, poi_part=part)
    if len(main) >= 2:
        return ParsedAddress(kind="poi", raw=raw, normalized=norm, poi=main)
    return ParsedAddress(kind="unknown", raw=raw, normalized=norm)


# Column names a county's own address or building layer uses for street and number.
STREET_FIELDS: tuple[str, ...] = (
    "street",
    "addr:street",
    "addr_street",
    "街路巷",
    "街路巷名",
    "路名",
    "道路名称",
    "街道名称",
    "jlx",
    "JLX",
)
NUMBER_FIELDS: tuple[str, ...] = (
    "number",
    "addr:housenumber",
    "addr_housenumber",
    "housenumber",
    "门牌号",
    "门牌",
    "门牌号码",
    "mph",
    "MPH",
)
# A whole address in one field ("人民路23号"), as many 标准地址 layers have it.
ADDRESS_FIELDS: tuple[str, ...] = ("address", "addr", "地址", "门牌地址", "标准地址", "dz", "DZ")
_PLATE = re.compile(r"^(.+?(?:大道|大街|小街|路|街|巷|坡|弄|道))(\d+)号")


def door_plate_fields(record: dict) -> tuple[str, int] | None:
    """Return ``(street, number)`` of one feature's attributes, or None.

    Reads the street and number fields an OSM export (``addr:street`` /
    ``addr:housenumber``), this project (``street`` / ``number``) or a county's own
    door-plate layer (街路巷名 / 门牌号, or one 地址 field "人民路23号") uses.

    Parameters
    ----------
    record : dict
        The feature's attributes (missing values as None or NaN).

    Returns
    -------
    tuple of (str, int) or None
        None when the feature has no street or no number.
    """
    street = _first_text(record, STREET_FIELDS)
    number_text = _first_text(record, NUMBER_FIELDS)
    if street and number_text:
        number = re.search(r"\d+", normalize_address(number_text))
        if number:
            return normalize_address(street), int(number.group())
    full = _first_text(record, ADDRESS_FIELDS)
    if full:
        match = _PLATE.match(normalize_address(full))
        if match:
            return match.group(1), int(match.group(2))
    return None


def _first_text(record: dict, fields: Sequence[str]) -> str | None:
    for name in fields:
        value = record.get(name)
        if value is None or (isinstance(value, float) and value != value):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if text and text.lower() not in ("nan", "none", "<na>"):
            return text
    return None
