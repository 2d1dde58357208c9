"""Choosing a patrol's stops: the places to visit, before any routing.

Stops come from one of six selections: 待核查 problems, the densest cells, a unit's open
problems, hand-picked problems, places clicked on the map, or a mock 暗访 sample of POI
sites drawn by type quotas with a seed (the same seed draws the same sites).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import shape
from shapely.ops import linemerge, unary_union
from sqlalchemy import select

from app.models import OPEN_STATUSES, Cell, Feature, Issue, User
from app.services.core import access
from app.services.core import params as parsers
from app.services.core.errors import FieldError, NoActiveGridError, ValidationError
from app.services.grids.cells import active_grid, locate_cell
from app.services.grids.layers import active_layer
from app.services.grids.map_data import open_counts
from app.services.issues.intake import check_in_county

SELECTIONS = {
    "submitted": "待核查问题",
    "density": "问题密度最高的网格",
    "unit": "某单位全部未销号问题",
    "issues": "手选问题",
    "points": "地图选点",
    "sample": "模拟暗访抽样",
}
# 背街小巷 are not POIs: they are the roads whose name ends with 巷.
LANE_TYPE = "背街小巷"
DEFAULT_QUOTAS = {"农贸市场": 2, LANE_TYPE: 3, "餐饮": 5, "公厕": 2, "居民小区": 2}
MAX_STOPS = 80
# Where a patrol can go: China's extent, so a swapped or mistyped pair is caught here.
LON_RANGE = (73.0, 136.0)
LAT_RANGE = (3.0, 54.0)


@dataclass
class StopSpec:
    """One place to visit, before routing."""

    lon: float
    lat: float
    kind: str  # issue | cell | poi | lane | point
    label: str
    issue_id: int | None = None
    info: dict = field(default_factory=dict)


def parse_place(value: Any, *, field_name: str) -> tuple[float, float]:
    """Read one [lon, lat] pair (WGS-84, inside China) from JSON or form input.

    Parameters
    ----------
    value
        A ``[lon, lat]`` list or ``"lon,lat"`` text (a full-width comma is accepted).
    field_name
        The client's field (``start``, ``points[2]``), named by every error.

    Raises
    ------
    ValidationError
        When the value is not a pair, or a half is no number or lies outside China
        (a ``FieldError`` carrying ``field_name`` when a half is no number).
    """
    if isinstance(value, str):
        value = value.replace("，", ",").split(",")
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        msg = f"{field_name} 应为 [经度, 纬度]，收到 {value!r}"
        raise ValidationError(msg)
    try:
        point = parsers.parse_lonlat(
            value[0], value[1], name=f"{field_name} 经度/{field_name} 纬度", required=True
        )
    except ValidationError as exc:
        # The client's field is the pair (start, points[2]), the message names which half.
        raise FieldError(str(exc), field_name) from None
    assert point is not None
    for number, raw, half, (low, high) in (
        (point[0], value[0], "经度", LON_RANGE),
        (point[1], value[1], "纬度", LAT_RANGE),
    ):
        if not low <= number <= high:
            msg = f"{field_name} {half} 超出范围 [{low}, {high}]: {raw!r}"
            raise ValidationError(msg)
    return point


def _place_info(session, lon: float, lat: float) -> dict:
    cell = locate_cell(session, lon, lat)
    return {
        "cell_code": cell.code if cell else None,
        "unit": cell.unit.name if cell and cell.unit else None,
    }


def _issue_stop(issue: Issue) -> StopSpec:
    category = issue.category.name if issue.category else "未分类"
    label = issue.address or f"问题 #{issue.id}"
    return StopSpec(
        lon=float(issue.lon),
        lat=float(issue.lat),
        kind="issue",
        label=label,
        issue_id=issue.id,
        info={"summary": f"{category}: {issue.description}"},
    )


def visible_placed_issues(user: User, *statuses: str):
    """The select of placed problems in ``statuses`` the user may see, oldest first."""
    stmt = select(Issue).where(Issue.lon.is_not(None), Issue.status.in_(statuses))
    return access.scope_issues(stmt, user).order_by(Issue.id)


def stops_submitted(session, user: User, *, limit: int = MAX_STOPS) -> list[StopSpec]:
    """Placed problems waiting for verification (待核查)."""
    issues = session.execute(visible_placed_issues(user, "submitted").limit(limit))
    stops = [_issue_stop(i) for i in issues.scalars()]
    if not stops:
        msg = "当前没有已定位的待核查问题"
        raise ValidationError(msg)
    return stops


def stops_density(session, user: User, *, top: int = 10) -> list[StopSpec]:
    """The representative points of the ``top`` cells with the most open problems."""
    if not 1 <= top <= MAX_STOPS:
        msg = f"网格数 top 应在 1 到 {MAX_STOPS} 之间，收到 {top!r}"
        raise ValidationError(msg)
    grid = active_grid(session)
    if grid is None:
        raise NoActiveGridError
    counts = open_counts(session, user, grid.id)
    if not counts:
        msg = "当前没有未销号问题，无法按问题密度选择网格"
        raise ValidationError(msg)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    cells = {
        c.id: c
        for c in session.execute(
            access.scope_cells(
                select(Cell).where(Cell.grid_id == grid.id, Cell.id.in_([k for k, _ in ranked])),
                user,
            )
        ).scalars()
    }
    stops = []
    for cell_id, count in ranked:
        cell = cells.get(cell_id)
        if cell is None:
            continue
        point = cell.shape.representative_point()
        unit = cell.unit.name if cell.unit else None
        stops.append(
            StopSpec(
                lon=float(point.x),
                lat=float(point.y),
                kind="cell",
                label=f"网格 {cell.code}",
                info={
                    "cell_code": cell.code,
                    "unit": unit,
                    "open": int(count),
                    "summary": f"该网格有 {count} 个未销号问题",
                },
            )
        )
        if len(stops) >= top:
            break
    return stops


def stops_unit(session, user: User, unit_id: int) -> list[StopSpec]:
    """All placed open problems of one unit."""
    unit = access.get_unit(session, user, unit_id)
    stmt = visible_placed_issues(user, *OPEN_STATUSES).where(Issue.unit_id == unit.id)
    stops = [_issue_stop(i) for i in session.execute(stmt.limit(MAX_STOPS + 1)).scalars()]
    if not stops:
        msg = f"单位「{unit.name}」没有已定位的未销号问题"
        raise ValidationError(msg)
    if len(stops) > MAX_STOPS:
        msg = f"单位「{unit.name}」的未销号问题超过 {MAX_STOPS} 个，请分多次巡查或手选问题"
        raise ValidationError(msg)
    return stops


def stops_issues(
    session, user: User, issue_ids: Iterable[Any], *, field_name: str = "issue_ids"
) -> list[StopSpec]:
    """Hand-picked problems; unknown or invisible ids are 404, unplaced ones 400."""
    ids = parsers.parse_id_list(list(issue_ids), name=field_name)
    if not ids:
        msg = f"{field_name} 不能为空：请至少选择一个问题"
        raise ValidationError(msg)
    stops = []
    for issue_id in ids:
        issue = access.get_issue(session, user, issue_id)
        if issue.lon is None:
            msg = f"问题 {issue_id} 尚未定位 (待定位)，不能作为巡查点"
            raise ValidationError(msg)
        stops.append(_issue_stop(issue))
    return stops


def stops_points(
    session, user: User, points: Sequence[Any], *, field_name: str = "points"
) -> list[StopSpec]:
    """Places clicked on the map (or sent as [lon, lat] pairs)."""
    if not isinstance(points, (list, tuple)) or not points:
        msg = f"{field_name} 应为非空的 [[经度, 纬度], ...] 列表"
        raise ValidationError(msg)
    stops = []
    for k, value in enumerate(points):
        where = f"{field_name}[{k}]"
        lon, lat = parse_place(value, field_name=where)
        check_in_county(session, lon, lat, field_name=where)
        stops.append(
            StopSpec(
                lon=lon,
                lat=lat,
                kind="point",
                label=f"选点 {k + 1}",
                info={"index": k, **_place_info(session, lon, lat)},
            )
        )
    return stops


def parse_quotas(text: str | Mapping | None) -> dict[str, int]:
    """Quotas like "农贸市场 2, 背街小巷 3" (or a mapping) → {"农贸市场": 2, ...}."""
    if text is None or text == "":
        return dict(DEFAULT_QUOTAS)
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in str(text).replace("，", ",").replace("、", ",").replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            name, _, number = part.replace("：", " ").replace(":", " ").rpartition(" ")
            items.append((name.strip() or number, number if name.strip() else ""))
    quotas: dict[str, int] = {}
    for name, number in items:
        try:
            count = int(str(number).strip())
        except ValueError:
            msg = f"抽样配额「{name}」的数量无效: {number!r} (格式如: 农贸市场 2, 餐饮 5)"
            raise ValidationError(msg) from None
        if not 0 <= count <= 50:
            msg = f"抽样配额「{name}」的数量应在 0 到 50 之间，收到 {count}"
            raise ValidationError(msg)
        if count:
            quotas[str(name).strip()] = count
    if not quotas:
        msg = "抽样配额为空：至少为一种场所类型指定数量"
        raise ValidationError(msg)
    return quotas


def _lane_sites(session) -> list[tuple[str, float, float, dict]]:
    """One site per lane (road named …巷): the middle of its longest merged run."""
    layer = active_layer(session, "roads")
    if layer is None:
        return []
    rows = session.execute(
        select(Feature.name, Feature.geom).where(
            Feature.layer_id == layer.id, Feature.name.like("%巷")
        )
    ).all()
    by_name: dict[str, list] = {}
    for name, geom in rows:
        by_name.setdefault(name, []).append(shape(json.loads(geom)))
    sites = []
    for name, geoms in by_name.items():
        union = unary_union(geoms)
        merged = linemerge(union) if union.geom_type == "MultiLineString" else union
        parts = list(getattr(merged, "geoms", [merged]))
        longest = max(parts, key=lambda g: g.length)
        point = longest.interpolate(0.5, normalized=True)
        sites.append((name, float(point.x), float(point.y), {"address": name}))
    return sites


def _poi_sites(session, kind: str) -> list[tuple[str, float, float, dict]]:
    layer = active_layer(session, "pois")
    if layer is None:
        return []
    features = session.execute(
        select(Feature).where(Feature.layer_id == layer.id, Feature.ftype == kind)
    ).scalars()
    sites = []
    for f in features:
        point = f.shape.representative_point()
        props = f.props or {}
        sites.append(
            (
                f.name or kind,
                float(point.x),
                float(point.y),
                {"address": props.get("address") or f.name},
            )
        )
    return sites


def sample_types(session) -> list[str]:
    """The site types a mock 暗访 can draw from (POI types plus 背街小巷)."""
    layer = active_layer(session, "pois")
    types = []
    if layer is not None:
        types = sorted(
            t
            for (t,) in session.execute(
                select(Feature.ftype).where(Feature.layer_id == layer.id).distinct()
            )
            if t
        )
    return [LANE_TYPE, *types]


def stops_sample(session, user: User, quotas: Mapping[str, int], *, seed: int) -> list[StopSpec]:
    """A mock 暗访: draw sites per type quota; the same seed draws the same sites."""
    available = set(sample_types(session))
    unknown = [name for name in quotas if name not in available]
    if unknown:
        msg = (
            f"抽样配额中的场所类型不存在: {'、'.join(unknown)} "
            f"(可选: {'、'.join(sorted(available))})"
        )
        raise ValidationError(msg)
    stops = []
    # Types in a fixed order and sites sorted by name and place: the draw depends on the
    # seed only, not on the order of the quota text or of rows in the database.
    for kind in sorted(quotas):
        sites = _lane_sites(session) if kind == LANE_TYPE else _poi_sites(session, kind)
        sites.sort(key=lambda s: (s[0], round(s[1], 7), round(s[2], 7)))
        rng = random.Random(f"{seed}:{kind}")
        for name, lon, lat, info in rng.sample(sites, min(quotas[kind], len(sites))):
            stops.append(
                StopSpec(
                    lon=lon,
                    lat=lat,
                    kind="lane" if kind == LANE_TYPE else "poi",
                    label=name,
                    info={
                        **info,
                        "type": kind,
                        "summary": f"暗访抽样: {kind}",
                        **_place_info(session, lon, lat),
                    },
                )
            )
    if not stops:
        msg = "按抽样配额没有抽到任何场所 (图层中没有这些类型的场所)"
        raise ValidationError(msg)
    return stops


def choose_stops(
    session, user: User, selection: str, params: Mapping[str, Any]
) -> tuple[list[StopSpec], dict]:
    """Choose stops by one selection; return them and a record of how (for the patrol)."""
    access.require(user, "plan_patrol")
    record: dict[str, Any] = {"kind": selection}
    if selection == "submitted":
        stops = stops_submitted(session, user)
    elif selection == "density":
        top = parsers.parse_int(params.get("top"), name="top", default=10)
        record["top"] = top
        stops = stops_density(session, user, top=top)
    elif selection == "unit":
        unit_id = parsers.parse_id(params.get("unit_id"), name="unit_id")
        if unit_id is None:
            msg = "请选择责任单位 (unit_id)"
            raise ValidationError(msg)
        record["unit_id"] = unit_id
        stops = stops_unit(session, user, unit_id)
    elif selection == "issues":
        ids = params.get("issue_ids") or []
        record["issue_ids"] = list(ids)
        stops = stops_issues(session, user, ids)
    elif selection == "points":
        stops = stops_points(session, user, params.get("points") or [])
    elif selection == "sample":
        quotas = parse_quotas(params.get("quotas"))
        seed = parsers.parse_int(
            params.get("seed"), name="seed", low=-parsers.MAX_ID, high=parsers.MAX_ID
        )
        if seed is None:
            # Recorded with the patrol, so even an unseeded draw can be reproduced.
            seed = random.SystemRandom().randrange(1, 1_000_000)
        record.update(quotas=quotas, seed=seed)
        stops = stops_sample(session, user, quotas, seed=seed)
    else:
        msg = f"选点方式 selection 无效: {selection!r} (可选: {'、'.join(SELECTIONS)})"
        raise ValidationError(msg)
    if len(stops) > MAX_STOPS:
        msg = f"巡查点过多 ({len(stops)} 个)，一次最多 {MAX_STOPS} 个"
        raise ValidationError(msg)
    return stops, record
