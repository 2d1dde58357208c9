"""The one set of parameter parsers for the whole site (query strings, forms, JSON bodies).

Every door (JSON API, OGC API, Open311, map layers, patrol planning) reads its numbers,
ids, dates, boxes and points through these functions, so a bad value is always the same
clear 400 naming the parameter and the value (cut to 40 characters), never a 500 from an
overflowing database driver or an unparsable date further down. Flask-free: the views
pass ``request.args``, ``request.form`` or a decoded JSON body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from app.models import COUNTY_TZ
from app.services.core.errors import FieldError, MediaTypeError, ValidationError

# Ids are 32-bit integers on PostgreSQL; anything larger cannot exist.
MAX_ID = 2**31 - 1
# ``offset`` beyond this is no page of a county's data, and keeps the driver's BIGINT safe.
MAX_OFFSET = 10_000_000
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Dates a county's campaign can mean: earlier or later is a typo (0001-01-01, 9999-12-31).
MIN_YEAR, MAX_YEAR = 2000, 2100
# Request bodies: deeper nesting than this is no honest client (a 100,000-level array
# would exhaust the JSON decoder's recursion).
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_ID_LIST = 1000
# No number parameter needs more characters than this (a 400-digit ``lon`` is refused
# before ``float`` or ``int`` ever sees it).
MAX_NUMBER_CHARS = 40


def shown(value: Any, *, limit: int = 40) -> str:
    """The value as a message shows it: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bad(name: str, value: Any, hint: str = "") -> FieldError:
    """The one error of this module: names the parameter, the (cut) value and a hint."""
    msg = f"参数 {name} 的值无效: {shown(value)}" + (f" ({hint})" if hint else "")
    return FieldError(msg, name)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _int_text(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise bad(name, value, "应为整数")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise bad(name, value, "应为整数")
        return int(value)
    text = str(value).strip()
    # ASCII digits only: ``int("²")`` raises, ``"١٢".isdigit()`` is true, both are no id.
    body = text[1:] if text[:1] in "+-" else text
    if not body or len(text) > MAX_NUMBER_CHARS or not body.isascii() or not body.isdigit():
        raise bad(name, value, "应为整数")
    return int(text)


def parse_int(
    value: Any,
    *,
    name: str,
    low: int | None = None,
    high: int | None = None,
    default: int | None = None,
) -> int | None:
    """Parse an integer within ``[low, high]``; blank gives ``default``.

    Parameters
    ----------
    value : Any
        The raw value (text from a query string, or a JSON number).
    name : str
        The parameter's name, for the message.
    low, high : int, optional
        Inclusive bounds.
    default : int, optional
        What a missing or blank value means.

    Returns
    -------
    int or None

    Raises
    ------
    FieldError
        When the value is not an integer or lies outside the bounds.
    """
    if _blank(value):
        return default
    number = _int_text(value, name)
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            hint = f"应在 {low} 到 {high} 之间"
        elif low is not None:
            hint = f"不能小于 {low}"
        else:
            hint = f"不能大于 {high}"
        raise bad(name, value, hint)
    return number


def parse_limit(
    value: Any, *, name: str = "limit", default: int = DEFAULT_LIMIT, high: int = MAX_LIMIT,
    clamp: bool = False,
) -> int:
    """A page size from 1 to ``high``; ``clamp`` caps a larger one (the OGC standard's way)."""
    if clamp and not _blank(value):
        number = parse_int(value, name=name, low=1)
        return min(int(number), high)
    return int(parse_int(value, name=name, low=1, high=high, default=default))


def parse_offset(value: Any, *, name: str = "offset") -> int:
    """A page offset from 0 to MAX_OFFSET (default 0)."""
    return int(parse_int(value, name=name, low=0, high=MAX_OFFSET, default=0))


def parse_id(value: Any, *, name: str = "id", default: int | None = None) -> int | None:
    """A database id (1 to 2**31 - 1)."""
    return parse_int(value, name=name, low=1, high=MAX_ID, default=default)


def parse_typed_id(value: Any, *, what: str) -> int:
    """An id a person typed or a form sent (``12`` or ``#12``), for an object named ``what``.

    Parameters
    ----------
    value : Any
        The raw value.
    what : str
        The object's Chinese name, for the message ("单位" gives "单位编号 'x' 无效").

    Returns
    -------
    int

    Raises
    ------
    FieldError
        When the value is blank or not an id from 1 to MAX_ID.
    """
    text = value.strip().lstrip("#") if isinstance(value, str) else value
    try:
        number = parse_id(text, name=what)
    except ValidationError:
        number = None
    if number is None:
        msg = f"{what}编号 {shown(value)} 无效"
        raise FieldError(msg, what)
    return number


def is_id(value: Any) -> bool:
    """Whether the value is a plain id a database can hold (for "not found" answers)."""
    try:
        return parse_id(value) is not None
    except ValidationError:
        return False


def parse_id_list(
    value: Any, *, name: str = "ids", max_items: int = MAX_ID_LIST
) -> list[int]:
    """A list of ids: a JSON array, or comma-separated text; order kept, duplicates dropped."""
    if _blank(value):
        return []
    if isinstance(value, str):
        items: list[Any] = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise bad(name, value, "应为编号列表")
    if len(items) > max_items:
        msg = f"参数 {name} 的编号过多: {len(items)} 个 (最多 {max_items} 个)"
        raise FieldError(msg, name)
    out: list[int] = []
    for item in items:
        try:
            number = parse_id(item, name=name)
        except FieldError:
            raise bad(name, item, f"应为 1 到 {MAX_ID} 之间的整数编号") from None
        if number is None:
            raise bad(name, item, "编号不能为空")
        if number not in out:
            out.append(number)
    return out


def parse_float(
    value: Any, *, name: str, low: float | None = None, high: float | None = None,
    default: float | None = None,
) -> float | None:
    """A finite decimal number within ``[low, high]``."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        raise bad(name, value, "应为数字")
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) < 10**18 else math.inf
    else:
        text = str(value).strip()
        if len(text) > MAX_NUMBER_CHARS or not text.isascii():
            raise bad(name, value, "应为数字")
        try:
            number = float(text)
        except ValueError:
            raise bad(name, value, "应为数字") from None
    if not math.isfinite(number):
        raise bad(name, value, "应为有限的数字")
    if (low is not None and number < low) or (high is not None and number > high):
        raise bad(name, value, f"应在 {low:g} 到 {high:g} 之间" if low is not None
                  and high is not None else "超出范围")
    return number


def parse_lonlat(
    lon: Any, lat: Any, *, name: str = "lon/lat", required: bool = False
) -> tuple[float, float] | None:
    """A WGS-84 longitude/latitude pair (both or neither)."""
    if _blank(lon) and _blank(lat):
        if required:
            msg = f"参数 {name} 不能为空"
            raise FieldError(msg, name)
        return None
    lon_name, _, lat_name = name.partition("/")
    lat_name = lat_name or "lat"
    if _blank(lon) or _blank(lat):
        missing = lon_name if _blank(lon) else lat_name
        msg = f"参数 {missing} 缺失: {lon_name} 和 {lat_name} 必须同时提供"
        raise FieldError(msg, missing)
    x = parse_float(lon, name=lon_name, low=-180.0, high=180.0)
    y = parse_float(lat, name=lat_name, low=-90.0, high=90.0)
    return float(x), float(y)


def parse_point(value: Any, *, name: str = "point") -> tuple[float, float]:
    """A ``[lon, lat]`` pair (JSON array) or ``"lon,lat"`` text."""
    if isinstance(value, str):
        parts: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise bad(name, value, "应为 [经度, 纬度]")
    if len(parts) != 2:
        raise bad(name, value, "应为 [经度, 纬度]")
    point = parse_lonlat(parts[0], parts[1], name=f"{name}/{name}", required=True)
    assert point is not None
    return point


def parse_bbox(value: Any, *, name: str = "bbox", allow_3d: bool = False
               ) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` in WGS-84 degrees (6 numbers with ``allow_3d``)."""
    if _blank(value):
        return None
    text = str(value)
    parts = [p.strip() for p in text.split(",")]
    sizes = (4, 6) if allow_3d else (4,)
    if len(parts) not in sizes:
        raise bad(name, value, "格式应为 minlon,minlat,maxlon,maxlat")
    numbers = [parse_float(p, name=name) for p in parts]
    if any(n is None for n in numbers):
        raise bad(name, value, "格式应为 minlon,minlat,maxlon,maxlat")
    if len(numbers) == 6:
        minx, miny, maxx, maxy = numbers[0], numbers[1], numbers[3], numbers[4]
    else:
        minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise bad(name, value, "经度超出 -180..180")
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise bad(name, value, "纬度超出 -90..90")
    if minx > maxx or miny > maxy:
        raise bad(name, value, "最小值大于最大值")
    return float(minx), float(miny), float(maxx), float(maxy)


def _in_years(moment: date, name: str, value: Any) -> None:
    if not (MIN_YEAR <= moment.year <= MAX_YEAR):
        raise bad(name, value, f"年份应在 {MIN_YEAR} 到 {MAX_YEAR} 之间")


def parse_date(value: Any, *, name: str = "date", default: date | None = None) -> date | None:
    """An ISO date ``YYYY-MM-DD`` between MIN_YEAR and MAX_YEAR."""
    if _blank(value):
        return default
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        _in_years(value, name, value)
        return value
    text = str(value).strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise bad(name, value, "应为日期, 如 2026-03-01")
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise bad(name, value, "应为日期, 如 2026-03-01") from None
    _in_years(parsed, name, value)
    return parsed


def parse_datetime(value: Any, *, name: str = "datetime",
                   default: datetime | None = None) -> datetime | None:
    """ISO 8601 date or date-time, as naive county time.

    A zone, if given, is converted to the county's (Asia/Shanghai) before it is dropped:
    times are stored naive in county time. A bare date means its midnight.
    """
    if _blank(value):
        return default
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if len(text) > MAX_NUMBER_CHARS or not text.isascii():
            raise bad(name, value, "应为 ISO 8601 日期时间, 如 2026-03-01T08:00:00")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise bad(name, value, "应为 ISO 8601 日期时间, 如 2026-03-01T08:00:00") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(COUNTY_TZ).replace(tzinfo=None)
    _in_years(parsed, name, value)
    return parsed


def _interval_end(text: str, *, name: str, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    if len(text) == 10:  # a date: the whole day
        day = datetime.combine(parse_date(text, name=name), datetime.min.time())
        return day.replace(hour=23, minute=59, second=59, microsecond=999999) if end else day
    # A zone, if given, becomes county time (how times are stored).
    return parse_datetime(text, name=name)


def parse_interval(value: Any, *, name: str = "datetime"
                   ) -> tuple[datetime | None, datetime | None] | None:
    """An instant or ``start/end`` interval (``..`` or blank for an open end), as OGC API writes it.

    Parameters
    ----------
    value : Any
        ``2026-03-01``, ``2026-03-01T08:00:00Z``, ``2026-03-01/..`` or ``../2026-03-31``.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    tuple of (datetime or None, datetime or None), or None
        Naive county times, both ends inclusive; a bare date spans its whole day.
        None when the value is blank.

    Raises
    ------
    FieldError
        When an end is not a date or date-time, both ends are open, or start is after end.
    """
    if _blank(value):
        return None
    text = str(value)
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2 or all(p.strip() in ("", "..") for p in parts):
            raise bad(name, value, "应为时刻或区间 start/end")
        start = _interval_end(parts[0], name=name, end=False)
        stop = _interval_end(parts[1], name=name, end=True)
        if start and stop and start > stop:
            raise bad(name, value, f"开始 {parts[0]} 晚于结束 {parts[1]}")
        return start, stop
    return _interval_end(text, name=name, end=False), _interval_end(text, name=name, end=True)


def parse_bool(value: Any, *, name: str, default: bool | None = None) -> bool | None:
    """``1/true/yes/on`` or ``0/false/no/off``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise bad(name, value, "应为 true 或 false")


def arg(args: Mapping, name: str) -> Any:
    """One parameter from a mapping (a MultiDict's first value)."""
    return args.get(name) if args is not None else None


# ---- request bodies --------------------------------------------------------------------


def json_depth_exceeds(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays/objects deeper than ``limit`` (strings skipped).

    Scans the raw text before any decoding, so a 100,000-level array costs one pass and
    never reaches the recursive decoder.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def is_json_mimetype(mimetype: str | None) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``)."""
    mimetype = (mimetype or "").lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def parse_json_body(
    data: bytes, *, mimetype: str | None = "application/json", length: int | None = None,
    max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES,
) -> Any:
    """Decode a request body as JSON ({} when empty), refusing oversized or deep bodies.

    Parameters
    ----------
    data : bytes
        The raw body.
    mimetype : str, optional
        The request's Content-Type without parameters; a non-empty body must be JSON.
    length : int, optional
        The declared Content-Length, checked before the body is read.

    Raises
    ------
    FieldError
        "请求体过大", "请求体过深" or "请求体不是有效的 JSON".
    MediaTypeError
        A non-empty body that is not declared as JSON (415).
    """
    if (length or 0) > max_bytes or len(data) > max_bytes:
        msg = f"请求体过大 (超过 {max_bytes // 1024} KB)"
        raise FieldError(msg)
    if not data.strip():
        return {}
    if not is_json_mimetype(mimetype):
        msg = f"请求体应为 JSON (Content-Type: application/json)，收到 {shown(mimetype or '无')}"
        raise MediaTypeError(msg)
    if json_depth_exceeds(data, max_depth):
        msg = f"请求体过深 (JSON 嵌套超过 {max_depth} 层)"
        raise FieldError(msg)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        msg = "请求体不是有效的 JSON"
        raise FieldError(msg) from None
