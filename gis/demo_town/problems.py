"""Problems of the demo town: the cross-inspection workbook and months of handling history.

``Places`` lists what an inspector can name (POIs, door plates, intersections, lane
segments, short roads); ``build_workbook`` writes the prefecture's 126-row workbook the
sloppy ways real sheets are written (prefixes, full-width digits, typos, GCJ-02
coordinates) with the truth of where each problem is; ``build_history`` invents earlier
problems with their dispatch, rectification and verification events.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import cn2an
import numpy as np
from shapely.geometry import Point
from shapely.ops import linemerge

from gis.crs import wgs84_to_gcj02
from gis.demo_town.data import COUNTY_NAME, POOLS, PREFECTURE, PROVINCE, SOURCES
from gis.demo_town.places import Streets

WORKBOOK_ROWS = 126


def _fullwidth(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _corner(point: Point, direction: str, *, dist: float = 12.0) -> Point:
    vec = {"东北角": (1, 1), "西北角": (-1, 1), "东南角": (1, -1), "西南角": (-1, -1)}[direction]
    k = dist / math.sqrt(2)
    return Point(point.x + vec[0] * k, point.y + vec[1] * k)


class Places:
    """Findable places of the town, with their addresses as inspectors write them."""

    def __init__(self, streets: Streets, pois: list[dict], plates: list[dict]) -> None:
        self.streets = streets
        self.pois = pois
        self.plates = plates
        roads = streets.roads_m
        node_names: dict[tuple, set[str]] = {}
        degree: dict[tuple, int] = {}
        for seg, name in zip(roads.geometry, roads["name"], strict=True):
            for c in (seg.coords[0], seg.coords[-1]):
                node_names.setdefault(c, set()).add(name)
                degree[c] = degree.get(c, 0) + 1
        main = {n for n, h in streets.highway.items() if h in ("primary", "secondary", "tertiary")}
        self.intersections = sorted(
            (c, tuple(sorted(ns & main)))
            for c, ns in node_names.items()
            if len(ns & main) >= 2 and degree[c] >= 3  # a junction, not a change of name
        )
        self.segments = []
        self.short_roads = []
        for name, geom in sorted(streets.geoms.items()):
            if streets.highway[name] not in ("residential", "living_street", "service"):
                continue
            merged = linemerge(geom) if geom.geom_type == "MultiLineString" else geom
            if merged.geom_type != "LineString":
                continue
            ends = []
            for c in (merged.coords[0], merged.coords[-1]):
                others = sorted(node_names.get(c, set()) - {name})
                ends.append(others[0] if others else None)
            if ends[0] and ends[1] and ends[0] != ends[1] and merged.length > 60:
                self.segments.append((name, ends[0], ends[1], merged))
            if merged.length < 260:
                self.short_roads.append((name, merged))


def _make_problem(rng, form: str, places: Places, poi_type: str | None):
    """Return (address text, truth point in metres, pieces for variants)."""
    if form == "poi":
        pool = [p for p in places.pois if p["type"] == poi_type]
        poi = pool[int(rng.integers(len(pool)))]
        if poi_type in ("农贸市场", "城中村", "医院", "学校") and rng.random() < 0.6:
            suffix = "内"
        elif poi_type == "居民小区":
            suffix = ("北门", "南门", "内", "东门")[int(rng.integers(4))]
        elif poi_type in ("公厕", "垃圾收集点", "垃圾中转站"):
            suffix = ""
        else:
            suffix = ("旁", "", "门口")[int(rng.integers(3))]
        return f"{poi['name']}{suffix}", poi["geometry"], {"kind": "poi", "poi": poi}
    if form == "house_number":
        plate = places.plates[int(rng.integers(len(places.plates)))]
        suffix = ("门前", "", "旁", "门口")[int(rng.integers(4))]
        return (
            f"{plate['street']}{plate['number']}号{suffix}",
            plate["geometry"],
            {
                "kind": "house_number",
                "street": plate["street"],
                "number": plate["number"],
                "suffix": suffix,
            },
        )
    if form == "intersection":
        coord, names = places.intersections[int(rng.integers(len(places.intersections)))]
        a, b = rng.permutation(list(names))[:2]
        corner = ("东北角", "西北角", "东南角", "西南角", "")[int(rng.integers(5))]
        point = _corner(Point(coord), corner) if corner else Point(coord)
        return (
            f"{a}与{b}交叉口{corner}",
            point,
            {"kind": "intersection", "a": a, "b": b, "corner": corner},
        )
    if form == "segment":
        name, a, b, line = places.segments[int(rng.integers(len(places.segments)))]
        return (
            f"{name}({a}至{b}段)",
            line.interpolate(0.5, normalized=True),
            {"kind": "segment", "name": name},
        )
    if form == "road":
        name, line = places.short_roads[int(rng.integers(len(places.short_roads)))]
        return name, line.interpolate(0.5, normalized=True), {"kind": "road", "name": name}
    msg = f"未知地址形式: {form}"
    raise ValueError(msg)


def _vary_address(text: str, info: dict, variant: str) -> str:
    """Write an address the sloppy ways real inspection sheets do."""
    if variant == "prefix":
        return f"{PROVINCE}{PREFECTURE}{COUNTY_NAME}{text}"
    if variant == "fullwidth" and info["kind"] == "house_number":
        return _fullwidth(text)
    if variant == "chinese" and info["kind"] == "house_number":
        cn = cn2an.an2cn(info["number"])
        return f"{info['street']}{cn}号{info['suffix']}"
    if variant == "nosuffix" and info["kind"] == "intersection":
        b = info["b"]
        if b.endswith(("路", "街")) and len(b) > 2:
            return text.replace(f"与{b}", f"与{b[:-1]}")
    if variant == "typo":
        for right, wrong in POOLS["typos"].items():
            if right in text:
                return text.replace(right, wrong, 1)
    return text


def _unit_for(rng, code: str, community: dict | None, functional_units: dict[str, str]) -> str:
    functional = functional_units.get(code, "")
    if functional and rng.random() < 0.7:
        return functional
    if community is not None:
        return f"{community['name']}居委会"
    return ""


def _categories_by_form() -> dict[str, list[str]]:
    """Map an address form (``poi``, ``house_number`` ...) to ``code`` or ``code:POI type``."""
    cats_by_form: dict[str, list[str]] = {}
    for code, problem in POOLS["problems"].items():
        for w in problem["forms"]:
            cats_by_form.setdefault(w.split(":")[0], []).append(
                code + (":" + w.split(":")[1] if ":" in w else "")
            )
    return cats_by_form


def build_workbook(
    rng: np.random.Generator,
    places: Places,
    *,
    to_lonlat: Callable[[Point], tuple[float, float]],
    locate_community: Callable[[Point], dict | None],
    units: list[dict],
    categories: list[dict],
) -> tuple[list[tuple], list[dict]]:
    """Write the prefecture's cross-inspection workbook rows and where each problem truly is.

    Parameters
    ----------
    rng : numpy.random.Generator
    places : Places
    to_lonlat : callable
        UTM point → (lon, lat) in WGS-84.
    locate_community : callable
        UTM point → the community record containing it, or None.
    units : list of dict
        From ``build_units``.
    categories : list of dict
        From ``read_categories``.

    Returns
    -------
    rows : list of tuple
        ``WORKBOOK_ROWS`` rows in the column order of the standard problem workbook: seq,
        description, place, category, unit, found, deadline, lon, lat, note (``None``
        for an empty coordinate, ``""`` for other empty text).
    truth : list of dict
        One per row: ``seq, lon, lat, category_code, address_form, address``.
    """
    forms = (
        ["poi"] * 45
        + ["house_number"] * 34
        + ["intersection"] * 24
        + ["segment"] * 11
        + ["road"] * 8
    )
    cats_by_form = _categories_by_form()
    plan = list(forms)
    rng.shuffle(plan)
    none_at = sorted(rng.choice(np.arange(5, WORKBOOK_ROWS), 4, replace=False).tolist())
    for i in none_at:
        plan.insert(int(i), "none")
    plan = plan[:WORKBOOK_ROWS]
    variants = (
        ["prefix"] * 9 + ["fullwidth"] * 4 + ["chinese"] * 4 + ["nosuffix"] * 4 + ["typo"] * 4
    )
    variant_rows = set(rng.choice(np.arange(WORKBOOK_ROWS), len(variants), replace=False).tolist())
    variant_for = dict(zip(sorted(variant_rows), rng.permutation(variants), strict=True))
    coord_rows = set(rng.choice(np.arange(WORKBOOK_ROWS), 27, replace=False).tolist())
    rows, truth = [], []
    unplaceable = list(POOLS["unplaceable"]["rows"])
    unplaceable_unit = POOLS["unplaceable"]["unit"]
    names = {c["code"]: c["name"] for c in categories}
    functional_units = {c["code"]: c["functional_unit"] for c in categories}
    for index, form in enumerate(plan):
        seq = index + 1
        found = dt.date(2026, 10, 26) + dt.timedelta(days=int(rng.integers(0, 12)))
        found_cell = (
            found.strftime("%Y.%m.%d")
            if rng.random() < 0.18
            else dt.datetime.combine(found, dt.time())
        )
        limit = ("立行立改", "7个工作日", "15个工作日", "3个工作日", "date")[int(rng.integers(5))]
        if limit == "date":
            limit = dt.datetime.combine(found + dt.timedelta(days=14), dt.time())
        if form == "none":
            code, desc, where = unplaceable.pop(0)
            cat_text = names[code]
            rows.append(
                (
                    seq,
                    desc,
                    where,
                    cat_text,
                    "" if rng.random() < 0.5 else unplaceable_unit,
                    found_cell,
                    limit,
                    None,
                    None,
                    "",
                )
            )
            truth.append(
                {
                    "seq": seq,
                    "lon": "",
                    "lat": "",
                    "category_code": code,
                    "address_form": "none",
                    "address": where,
                }
            )
            continue
        key = "poi" if form == "poi" else form
        choice = cats_by_form[key][int(rng.integers(len(cats_by_form[key])))]
        code, _, poi_type = choice.partition(":")
        descs = POOLS["problems"][code]["descriptions"]
        desc = descs[int(rng.integers(len(descs)))]
        address, point, info = _make_problem(rng, form, places, poi_type or None)
        variant = variant_for.get(index)
        if variant:
            address = _vary_address(address, info, str(variant))
        lon, lat = to_lonlat(point)
        community = locate_community(point)
        unit = _unit_for(rng, code, community, functional_units) if rng.random() < 0.85 else ""
        cat_text = names[code]
        if rng.random() < 0.25:
            cat_text = f"{names[code[:2]]}-{cat_text}"
        c_lon = c_lat = None
        note = ""
        if index in coord_rows:
            if rng.random() < 0.45:
                g_lon, g_lat = wgs84_to_gcj02(lon, lat)
                c_lon, c_lat = round(float(g_lon), 6), round(float(g_lat), 6)
                note = "坐标来源:高德"
            else:
                c_lon, c_lat = round(lon, 6), round(lat, 6)
                note = "坐标来源:GPS"
        rows.append(
            (seq, desc, address, cat_text, unit, found_cell, limit, c_lon, c_lat, note)
        )
        truth.append(
            {
                "seq": seq,
                "lon": f"{lon:.7f}",
                "lat": f"{lat:.7f}",
                "category_code": code,
                "address_form": form,
                "address": address,
            }
        )
    return rows, truth



_HOLIDAYS_2026 = {dt.date(2026, 10, d) for d in range(1, 9)} | {dt.date(2026, 9, 25)}


def _is_workday(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _HOLIDAYS_2026


def _add_workdays(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if _is_workday(day):
            n -= 1
    return day


def _at(rng, day: dt.date) -> dt.datetime:
    minutes = int(rng.integers(8 * 60 + 30, 17 * 60 + 30))
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60))


def build_history(
    rng: np.random.Generator,
    places: Places,
    *,
    to_lonlat: Callable[[Point], tuple[float, float]],
    categories: list[dict],
) -> list[dict]:
    """Return earlier problems (Aug–Nov 2026) with their handling events.

    Parameters
    ----------
    rng : numpy.random.Generator
    places : Places
    to_lonlat : callable
        UTM point → (lon, lat) in WGS-84.
    categories : list of dict
        From ``read_categories`` (their ``deadline_days`` pace the handling).

    Returns
    -------
    list of dict
        ``ref, category_code, description, address, lon, lat, source, reported_at,
        events`` (each event ``action, at, note``), ordered by ``reported_at``.
    """
    now = dt.date(2026, 11, 30)
    days = [dt.date(2026, 8, 1) + dt.timedelta(days=i) for i in range(120)]
    workdays = [d for d in days if _is_workday(d) and d < dt.date(2026, 11, 28)]
    forms = ["poi", "house_number", "intersection", "segment", "road"]
    deadlines = {c["code"]: c["deadline_days"] for c in categories}
    cats_by_form = _categories_by_form()
    src_p = np.array([0.18, 0.08, 0.02, 0.32, 0.22, 0.18])
    records = []
    closed: list[dict] = []
    total = 320
    for i in range(total):
        reported = workdays[int(rng.integers(len(workdays)))]
        recurrence = closed and i > 200 and rng.random() < 0.08
        if recurrence:
            base = closed[int(rng.integers(len(closed)))]
            code, address = base["category_code"], base["address"]
            lon = base["lon"] + float(rng.normal(0, 0.00008))
            lat = base["lat"] + float(rng.normal(0, 0.00008))
            last = dt.datetime.fromisoformat(base["events"][-1]["at"]).date()
            reported = _add_workdays(last, int(rng.integers(3, 15)))
            if reported >= now:
                recurrence = False
        if not recurrence:
            form = forms[int(rng.choice(5, p=[0.45, 0.25, 0.15, 0.1, 0.05]))]
            choice = cats_by_form[form][int(rng.integers(len(cats_by_form[form])))]
            code, _, poi_type = choice.partition(":")
            address, point, _info = _make_problem(rng, form, places, poi_type or None)
            lon, lat = to_lonlat(point)
        descs = POOLS["problems"][code]["descriptions"]
        description = descs[int(rng.integers(len(descs)))]
        at = _at(rng, reported)
        events = []
        outcome = rng.random()
        t = reported
        if outcome < 0.04:
            events.append(
                {
                    "action": "reject",
                    "at": _at(rng, t).isoformat(),
                    "note": POOLS["history_notes"]["reject"],
                }
            )
        else:
            t = _add_workdays(t, int(rng.integers(0, 2)))
            events.append(
                {
                    "action": "dispatch",
                    "at": _at(rng, t).isoformat(),
                    "note": POOLS["history_notes"]["dispatch"],
                }
            )
            deadline = _add_workdays(reported, deadlines[code])
            late = rng.random() < 0.12
            rounds = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.04)
            t = _add_workdays(t, int(rng.integers(0, 2)))
            if t < now:
                events.append(
                    {
                        "action": "start",
                        "at": _at(rng, t).isoformat(),
                        "note": POOLS["history_notes"]["start"],
                    }
                )
            for r in range(rounds):
                span = deadlines[code] + (int(rng.integers(2, 8)) if late else 0)
                t = _add_workdays(t, int(rng.integers(1, max(2, span))))
                if t >= now:
                    break
                events.append(
                    {
                        "action": "submit",
                        "at": _at(rng, t).isoformat(),
                        "note": POOLS["history_notes"]["submit"],
                    }
                )
                t = _add_workdays(t, int(rng.integers(1, 4)))
                if t >= now:
                    break
                ok = r == rounds - 1
                action = "verify_ok" if ok else "verify_fail"
                events.append(
                    {
                        "action": action,
                        "at": _at(rng, t).isoformat(),
                        "note": POOLS["history_notes"][action],
                    }
                )
            del deadline
        # keep events time-ordered even when two fall on the same day
        for a, b in zip(events[:-1], events[1:], strict=False):
            if b["at"] <= a["at"]:
                b["at"] = (
                    dt.datetime.fromisoformat(a["at"]) + dt.timedelta(minutes=30)
                ).isoformat()
        if events and events[0]["at"] <= at.isoformat():
            events[0]["at"] = (at + dt.timedelta(minutes=20)).isoformat()
            for a, b in zip(events[:-1], events[1:], strict=False):
                if b["at"] <= a["at"]:
                    b["at"] = (
                        dt.datetime.fromisoformat(a["at"]) + dt.timedelta(minutes=30)
                    ).isoformat()
        record = {
            "ref": "",
            "category_code": code,
            "description": description,
            "address": address,
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "source": SOURCES[int(rng.choice(6, p=src_p))],
            "reported_at": at.isoformat(),
            "events": events,
        }
        records.append(record)
        if events and events[-1]["action"] == "verify_ok":
            closed.append(record)
    records.sort(key=lambda r: r["reported_at"])
    for i, r in enumerate(records, start=1):
        r["ref"] = f"YL2026-{i:04d}"
    return records
