"""Inspection patrols: choose stops, plan a route over the roads, persist it, record results.

Stops come from one of six selections (待核查 problems, the densest cells, a unit's open
problems, hand-picked problems, places clicked on the map, or a mock 暗访 sample of POI
sites drawn by type quotas with a seed). The route is planned by ``gis.routing`` over the
active roads layer; the road graph is cached per (layer, mode) for the process because
building it nodes every street. Results close the loop through the issue workflow.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shapely.geometry import shape
from shapely.ops import linemerge, unary_union
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models import (
    OPEN_STATUSES,
    Cell,
    Feature,
    Issue,
    Patrol,
    Stop,
    Unit,
    User,
    now_local,
    today_local,
)
from app.services.core import access
from app.services.core import params as parsers
from app.services.core.errors import ValidationError
from app.services.grids.cells import active_grid, locate_cell
from app.services.grids.layers import active_layer, layer_gdf
from app.services.grids.map_data import open_counts
from gis.crs import parse_coordinate
from gis.errors import GisError
from gis.routing import RoadGraph, Route, Snap, build_road_graph, plan_route, split_route

MODES = {"walk": "步行", "drive": "驾车"}
SELECTIONS = {
    "submitted": "待核查问题",
    "density": "问题密度最高的网格",
    "unit": "某单位全部未销号问题",
    "issues": "手选问题",
    "points": "地图选点",
    "sample": "模拟暗访抽样",
}
RESULTS = {"fixed": "已整改", "not_fixed": "未整改", "new": "新发现"}
# 背街小巷 are not POIs: they are the roads whose name ends with 巷.
LANE_TYPE = "背街小巷"
DEFAULT_QUOTAS = {"农贸市场": 2, LANE_TYPE: 3, "餐饮": 5, "公厕": 2, "居民小区": 2}
MAX_STOPS = 80
MAX_INSPECTORS = 10
# Names that mark the patrol's usual starting point, most specific first.
OFFICE_NAMES = ("创卫办", "爱卫办", "县人民政府")

_GRAPHS: dict[tuple, RoadGraph] = {}
_ROADS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def clear_caches() -> None:
    """Forget cached road graphs (tests that recreate the database call this)."""
    with _LOCK:
        _GRAPHS.clear()
        _ROADS.clear()


@dataclass
class StopSpec:
    """One place to visit, before routing."""

    lon: float
    lat: float
    kind: str  # issue | cell | poi | lane | point
    label: str
    issue_id: int | None = None
    info: dict = field(default_factory=dict)


# ---- road network ------------------------------------------------------------------------


def _roads_key(session) -> tuple:
    layer = active_layer(session, "roads")
    if layer is None:
        msg = "尚未导入道路图层 (roads)，无法规划巡查路线"
        raise ValidationError(msg)
    # The creation time guards against a reused id after a layer was deleted.
    return (layer.id, layer.created_at.isoformat())


def roads_gdf(session):
    """The active roads layer as a GeoDataFrame, loaded once per process per layer."""
    key = _roads_key(session)
    with _LOCK:
        cached = _ROADS.get(key)
    if cached is None:
        cached = layer_gdf(session, key[0])
        with _LOCK:
            _ROADS[key] = cached
    return cached


def road_graph(session, mode: str) -> RoadGraph:
    """The routable graph of the active roads layer for a mode, cached per process."""
    if mode not in MODES:
        msg = f"出行方式 mode 只能是 walk 或 drive，收到 {mode!r}"
        raise ValidationError(msg)
    key = (*_roads_key(session), mode)
    with _LOCK:
        cached = _GRAPHS.get(key)
    if cached is not None:
        return cached
    try:
        graph = build_road_graph(roads_gdf(session), mode=mode)
    except GisError as exc:
        raise ValidationError(str(exc)) from None
    with _LOCK:
        _GRAPHS[key] = graph
    return graph


def default_start(session) -> tuple[float, float, str] | None:
    """The county office POI (创卫办, else 县人民政府) as (lon, lat, name), if any."""
    layer = active_layer(session, "pois")
    if layer is None:
        return None
    for word in OFFICE_NAMES:
        feature = (
            session.execute(
                select(Feature)
                .where(Feature.layer_id == layer.id, Feature.name.contains(word))
                .order_by(Feature.id)
            )
            .scalars()
            .first()
        )
        if feature is not None:
            point = feature.shape.representative_point()
            return float(point.x), float(point.y), feature.name
    return None


# ---- choosing stops ----------------------------------------------------------------------


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


def _visible_open_issues(session, user: User, *statuses: str):
    stmt = select(Issue).where(Issue.lon.is_not(None), Issue.status.in_(statuses))
    return access.scope_issues(stmt, user).order_by(Issue.id)


def stops_submitted(session, user: User, *, limit: int = MAX_STOPS) -> list[StopSpec]:
    """Placed problems waiting for verification (待核查)."""
    issues = session.execute(_visible_open_issues(session, user, "submitted").limit(limit))
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
        msg = "没有启用的网格图层"
        raise ValidationError(msg)
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
    stmt = _visible_open_issues(session, user, *OPEN_STATUSES).where(Issue.unit_id == unit.id)
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


def parse_lonlat(value: Any, *, field_name: str) -> tuple[float, float]:
    """One [lon, lat] pair (WGS-84) from JSON or form input, naming the field when wrong."""
    if isinstance(value, str):
        value = value.replace("，", ",").split(",")
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        msg = f"{field_name} 应为 [经度, 纬度]，收到 {value!r}"
        raise ValidationError(msg)
    # Finite, short numbers first (a 400-digit JSON integer overflows float()).
    try:
        parsers.parse_lonlat(value[0], value[1], name=f"{field_name} 经度/{field_name} 纬度")
    except ValidationError as exc:
        # The client's field is the pair (start, points[2]), the message names which half.
        raise parsers.ParamError(str(exc), field_name) from None
    try:
        lon = parse_coordinate(value[0], field=f"{field_name} 经度", low=73.0, high=136.0)
        lat = parse_coordinate(value[1], field=f"{field_name} 纬度", low=3.0, high=54.0)
    except GisError as exc:
        raise ValidationError(str(exc)) from None
    return lon, lat


def stops_points(
    session, user: User, points: Sequence[Any], *, field_name: str = "points"
) -> list[StopSpec]:
    """Places clicked on the map (or sent as [lon, lat] pairs)."""
    from app.services.issues.intake import check_in_county

    if not isinstance(points, (list, tuple)) or not points:
        msg = f"{field_name} 应为非空的 [[经度, 纬度], ...] 列表"
        raise ValidationError(msg)
    stops = []
    for k, value in enumerate(points):
        where = f"{field_name}[{k}]"
        lon, lat = parse_lonlat(value, field_name=where)
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
        top = _int(params.get("top"), "top", default=10)
        record["top"] = top
        stops = stops_density(session, user, top=top)
    elif selection == "unit":
        unit_id = _int(params.get("unit_id"), "unit_id", default=None)
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
        seed = _int(params.get("seed"), "seed", default=None)
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


def _int(value: Any, name: str, *, default: int | None) -> int | None:
    return parsers.parse_int(
        value, name=name, low=-parsers.MAX_ID, high=parsers.MAX_ID, default=default
    )


# ---- planning ----------------------------------------------------------------------------


def _inspector(session, value: Any) -> User | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    user = (session.get(User, int(text)) if parsers.is_id(text) else None) or session.execute(
        select(User).where(User.username == text)
    ).scalar_one_or_none()
    if user is None or user.role not in ("inspector", "admin") or not user.active:
        msg = f"巡查人 inspector 无效: {value!r} (须为督查员或创卫办账号)"
        raise ValidationError(msg)
    return user


def plan_patrols(
    session,
    user: User,
    stops: list[StopSpec],
    *,
    mode: str = "walk",
    start: tuple[float, float] | None = None,
    use_office_start: bool = True,
    end: tuple[float, float] | None = None,
    return_to_start: bool = True,
    n_inspectors: int = 1,
    name: str | None = None,
    inspector: Any = None,
    planned_for: date | None = None,
    selection: dict | None = None,
    time_limit_s: float | None = None,
) -> list[Patrol]:
    """Route the stops over the roads (split among inspectors if asked) and store patrols."""
    access.require(user, "plan_patrol")
    if not stops:
        msg = "没有巡查点：请先选择问题或地点"
        raise ValidationError(msg)
    if len(stops) > MAX_STOPS:
        msg = f"巡查点过多 ({len(stops)} 个)，一次最多 {MAX_STOPS} 个"
        raise ValidationError(msg)
    if not isinstance(n_inspectors, int) or not 1 <= n_inspectors <= MAX_INSPECTORS:
        msg = f"巡查人数应在 1 到 {MAX_INSPECTORS} 之间，收到 {n_inspectors!r}"
        raise ValidationError(msg)
    if n_inspectors > 1 and end is not None:
        msg = "多人分组巡查时不能指定终点 (各组从同一起点出发)"
        raise ValidationError(msg)
    graph = road_graph(session, mode)
    start_name = "指定起点" if start is not None else None
    if start is None and use_office_start:
        office = default_start(session)
        if office is not None:
            start, start_name = (office[0], office[1]), office[2]
    who = _inspector(session, inspector)
    points = [(s.lon, s.lat) for s in stops]
    try:
        if n_inspectors > 1:
            routes = split_route(
                graph,
                points,
                n_inspectors=n_inspectors,
                start=start,
                return_to_start=return_to_start,
                time_limit_s=time_limit_s,
            )
        else:
            routes = [
                plan_route(
                    graph,
                    points,
                    start=start,
                    end=end,
                    return_to_start=return_to_start,
                    time_limit_s=time_limit_s,
                )
            ]
    except GisError as exc:
        raise ValidationError(f"无法规划路线: {exc}") from None
    name = (name or "").strip()[:100] or f"{(planned_for or today_local()).isoformat()} 巡查"
    batch = f"b{now_local():%Y%m%d%H%M%S%f}" if n_inspectors > 1 else None
    record = {**(selection or {}), "start_name": start_name}
    patrols = []
    routes = [r for r in routes if r.order]
    for k, route in enumerate(routes, start=1):
        patrol = Patrol(
            name=f"{name} ({k}/{len(routes)})" if len(routes) > 1 else name,
            mode=mode,
            inspector_id=who.id if who else None,
            created_by_id=user.id,
            planned_for=planned_for,
            length_m=float(route.length_m),
            est_minutes=float(route.est_minutes),
            start=list(route.start) if route.start else None,
            end=list(route.end) if route.end else None,
            return_to_start=bool(route.closed),
            legs=route.to_geojson(),
            selection=record,
            batch=batch,
            status="planned",
        )
        for seq, idx in enumerate(route.order, start=1):
            spec = stops[idx]
            info = {
                **spec.info,
                "snap_m": round(float(route.snaps[idx].distance_m), 1),
                "index": spec.info.get("index", idx),
            }
            patrol.stops.append(
                Stop(
                    seq=seq,
                    issue_id=spec.issue_id,
                    lon=spec.lon,
                    lat=spec.lat,
                    label=spec.label[:255],
                    kind=spec.kind,
                    info=info,
                )
            )
        session.add(patrol)
        patrols.append(patrol)
    session.flush()
    return patrols


def plan_from_json(session, user: User, body: Any) -> Patrol:
    """POST /api/v1/patrols: ``issue_ids`` or ``points``, ``mode``, ``start``, ``name``…"""
    from app.services.protocols.api import FieldError

    access.require(user, "plan_patrol")
    if not isinstance(body, dict):
        msg = "请求体应为 JSON 对象"
        raise FieldError(msg)
    mode = body.get("mode", "walk")
    if mode not in MODES:
        raise FieldError(f"参数 mode 无效: {mode!r} (可选: walk、drive)", "mode")
    has_ids, has_points = body.get("issue_ids") is not None, body.get("points") is not None
    if has_ids == has_points:
        raise FieldError("请提供 issue_ids 或 points 其中之一", "issue_ids")

    def named(func, json_field, *args, **kwargs):
        """Call a service; its ValidationError becomes a 400 naming ``json_field``."""
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            if getattr(exc, "field", None):
                raise
            raise FieldError(str(exc), json_field) from None

    if has_ids:
        ids = body["issue_ids"]
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise FieldError(f"参数 issue_ids 应为整数列表，收到 {parsers.shown(ids)}", "issue_ids")
        stops = named(stops_issues, "issue_ids", session, user, ids)
        selection = {"kind": "issues", "issue_ids": ids}
    else:
        stops = named(stops_points, "points", session, user, body["points"])
        selection = {"kind": "points"}
    start = None
    if body.get("start") is not None:
        start = named(parse_lonlat, "start", body["start"], field_name="start")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise FieldError(f"参数 name 应为字符串，收到 {name!r}", "name")
    inspector = named(_inspector, "inspector", session, body.get("inspector"))
    patrols = named(
        plan_patrols,
        "issue_ids" if has_ids else "points",
        session,
        user,
        stops,
        mode=mode,
        start=start,
        name=name,
        inspector=inspector.id if inspector else None,
        selection=selection,
    )
    return patrols[0]


def patrol_summary(patrol: Patrol) -> dict:
    """The API's answer for a planned patrol (without the PDF link, which needs a URL)."""
    order = [
        s.issue_id if s.kind == "issue" else (s.info or {}).get("index", s.seq - 1)
        for s in patrol.stops
    ]
    return {
        "id": patrol.id,
        "name": patrol.name,
        "mode": patrol.mode,
        "order": order,
        "length_m": round(patrol.length_m, 1),
        "legs": patrol.legs,
        "est_minutes": round(patrol.est_minutes, 1),
        "start": patrol.start,
        "stop_count": len(patrol.stops),
    }


# ---- reading -----------------------------------------------------------------------------


def get_patrol(session, user: User, patrol_id: int) -> Patrol:
    """A patrol the user may see (unit heads see none: 404)."""
    return access.get_patrol(session, user, patrol_id)


def list_patrols(session, user: User, *, limit: int = 30) -> list[Patrol]:
    stmt = access.scope_patrols(select(Patrol), user).options(selectinload(Patrol.stops))
    return list(session.execute(stmt.order_by(Patrol.id.desc()).limit(limit)).scalars())


def stop_rows(session, user: User, patrol: Patrol) -> list[dict]:
    """What the sheet shows per stop: address, cell, unit, summary, photo."""
    rows = []
    for stop in patrol.stops:
        info = dict(stop.info or {})
        issue = stop.issue
        row = {
            "stop": stop,
            "seq": stop.seq,
            "kind": stop.kind,
            "label": stop.label,
            "address": info.get("address") or stop.label or "",
            "cell_code": info.get("cell_code") or "",
            "unit": info.get("unit") or "",
            "summary": info.get("summary") or "",
            "photo": None,
            "issue": None,
            "status_label": None,
            "snap_m": info.get("snap_m"),
        }
        if issue is not None and access.can_read_issue(user, issue):
            category = issue.category.name if issue.category else "未分类"
            row.update(
                issue=issue,
                address=issue.address or stop.label or f"问题 #{issue.id}",
                cell_code=issue.cell.code if issue.cell else "",
                unit=issue.unit.name if issue.unit else "未分配",
                summary=f"#{issue.id} {category}: {issue.description}",
                status_label=issue.status_label,
            )
            photos = sorted(issue.photos, key=lambda p: (p.kind != "before", p.id))
            row["photo"] = photos[0] if photos else None
        rows.append(row)
    return rows


def route_of(patrol: Patrol) -> Route:
    """Rebuild a gis Route from a stored patrol (for GPX/KML export)."""
    stops = [(s.lon, s.lat) for s in patrol.stops]
    snaps = [
        Snap(
            lon=s.lon,
            lat=s.lat,
            edge=-1,
            offset_m=0.0,
            distance_m=float((s.info or {}).get("snap_m") or 0.0),
            snapped_lon=s.lon,
            snapped_lat=s.lat,
            far=False,
        )
        for s in patrol.stops
    ]
    features = (patrol.legs or {}).get("features", [])
    return Route(
        order=list(range(len(stops))),
        length_m=patrol.length_m,
        legs=[shape(f["geometry"]) for f in features],
        leg_lengths_m=[float(f["properties"].get("length_m", 0.0)) for f in features],
        snaps=snaps,
        est_minutes=patrol.est_minutes,
        mode=patrol.mode,
        stops=stops,
        start=tuple(patrol.start) if patrol.start else None,
        end=tuple(patrol.end) if patrol.end else None,
        closed=bool(patrol.return_to_start),
    )


def export_route(session, user: User, patrol_id: int, fmt: str) -> tuple[str, str]:
    """The patrol as GPX or KML text; returns (text, file name)."""
    from gis.routing import route_to_gpx, route_to_kml

    patrol = get_patrol(session, user, patrol_id)
    names = [(s.label or f"巡查点 {s.seq}") for s in patrol.stops]
    route = route_of(patrol)
    if fmt == "gpx":
        return route_to_gpx(route, name=patrol.name, stop_names=names), f"patrol-{patrol.id}.gpx"
    if fmt == "kml":
        return route_to_kml(route, name=patrol.name, stop_names=names), f"patrol-{patrol.id}.kml"
    msg = f"导出格式无效: {fmt!r} (可选: gpx、kml)"
    raise ValidationError(msg)


# ---- results -----------------------------------------------------------------------------


def record_results(
    session, user: User, patrol_id: int, entries: Sequence[Mapping[str, Any]]
) -> dict:
    """Save each stop's result and remark, closing, sending back or reporting problems.

    已整改 closes a 待核查 problem (verify_ok); 未整改 sends it back (verify_fail, the remark
    is the reason); 新发现 reports a new problem at the stop described by the remark. The
    caller commits once, so a bad entry leaves nothing half-written.
    """
    from app.services.issues.intake import IssueInput, create_issue, transition

    access.require(user, "verify")
    patrol = get_patrol(session, user, patrol_id)
    stops = {s.id: s for s in patrol.stops}
    summary = {"closed": [], "sent_back": [], "created": [], "saved": 0}
    for entry in entries:
        stop = stops.get(_int(entry.get("stop_id"), "stop_id", default=-1))
        if stop is None:
            msg = f"巡查点 {entry.get('stop_id')!r} 不属于巡查 {patrol.id}"
            raise ValidationError(msg)
        where = f"第 {stop.seq} 个巡查点"
        result = (entry.get("result") or "").strip() or None
        remark = (entry.get("remark") or "").strip() or None
        if result is not None and result not in RESULTS:
            msg = f"{where}: 核查结果无效 {result!r} (可选: 已整改、未整改、新发现)"
            raise ValidationError(msg)
        if remark and len(remark) > 2000:
            msg = f"{where}: 备注过长 (超过 2000 字)"
            raise ValidationError(msg)
        issue = stop.issue
        if result == "fixed" and issue is not None and issue.status == "submitted":
            transition(
                session,
                user,
                issue.id,
                "verify_ok",
                note=remark or f"巡查「{patrol.name}」核查通过",
            )
            summary["closed"].append(issue.id)
        elif result == "not_fixed" and issue is not None and issue.status == "submitted":
            if not remark:
                msg = f"{where}: 未整改须在备注中填写退回原因"
                raise ValidationError(msg)
            transition(session, user, issue.id, "verify_fail", note=remark)
            summary["sent_back"].append(issue.id)
        elif result == "new" and stop.new_issue_id is None:
            if not remark:
                msg = f"{where}: 新发现问题须在备注中描述问题"
                raise ValidationError(msg)
            category = (entry.get("category") or "").strip() or None
            try:
                created = create_issue(
                    session,
                    user,
                    IssueInput(
                        description=remark,
                        category=category,
                        lon=stop.lon,
                        lat=stop.lat,
                        address=((stop.info or {}).get("address") or stop.label),
                        source="县级督查",
                        extra={"note": f"巡查「{patrol.name}」新发现"},
                    ),
                    where=f"{where}: ",
                    via="patrol",
                )
            except GisError as exc:
                raise ValidationError(f"{where}: {exc}") from None
            stop.new_issue_id = created.id
            summary["created"].append(created.id)
        if result != stop.result or remark != stop.remark:
            summary["saved"] += 1
        stop.result, stop.remark = result, remark
    if patrol.stops and all(s.result for s in patrol.stops):
        patrol.status = "done"
    elif any(s.result for s in patrol.stops):
        patrol.status = "in_progress"
    session.flush()
    return summary


def units_for_select(session, user: User) -> list[Unit]:
    stmt = access.scope_units(select(Unit).where(Unit.active.is_(True)), user)
    return list(session.execute(stmt.order_by(Unit.name)).scalars())


def pickable_issues(session, user: User, *, limit: int = 300) -> list[Issue]:
    """Placed open problems for the hand-picked checkbox list (待核查 first)."""
    stmt = _visible_open_issues(session, user, *OPEN_STATUSES)
    rows = list(session.execute(stmt.limit(limit)).scalars())
    return sorted(rows, key=lambda i: (i.status != "submitted", i.id))


def inspectors(session) -> list[User]:
    stmt = select(User).where(User.role.in_(("inspector", "admin")), User.active.is_(True))
    return list(session.execute(stmt.order_by(User.username)).scalars())


def create_patrols(
    session, user: User, selection: str, params: Mapping[str, Any], **options
) -> list[Patrol]:
    """Choose the stops by ``selection`` and plan them (options as in ``plan_patrols``)."""
    stops, record = choose_stops(session, user, selection, params)
    return plan_patrols(session, user, stops, selection=record, **options)


def categories_for_select(session) -> list:
    from app.models import Category

    stmt = select(Category).where(Category.level == 2).order_by(Category.code)
    return list(session.execute(stmt).scalars())
