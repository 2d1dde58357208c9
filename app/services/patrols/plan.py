"""Planning patrols: the road graph of the roads layer, routing the stops, storing the patrols.

The route is planned by ``gis.routing`` over the active roads layer; the road graph is
cached per (layer, mode) because building it nodes every street (``core.cache``, reset
with ``reset_caches()``). ``plan_from_json`` is the JSON API's door to the same planning.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select

from app.models import Feature, Patrol, Stop, User, now_local, today_local
from app.services.core import access
from app.services.core import params as parsers
from app.services.core.cache import KeyedCache
from app.services.core.errors import FieldError, ValidationError
from app.services.grids.layers import active_layer, layer_gdf
from app.services.patrols.stops import (
    MAX_STOPS,
    StopSpec,
    choose_stops,
    parse_place,
    stops_issues,
    stops_points,
)
from gis.errors import GisError
from gis.routing.graph import RoadGraph, build_road_graph
from gis.routing.plan import plan_route, split_route

MODES = {"walk": "步行", "drive": "驾车"}
MAX_INSPECTORS = 10
# Names that mark the patrol's usual starting point, most specific first.
OFFICE_NAMES = ("创卫办", "爱卫办", "县人民政府")

# Keyed by (layer id, layer creation time[, mode]): a new roads layer is a new key.
ROAD_GRAPHS: KeyedCache[RoadGraph] = KeyedCache("patrol road graphs", maxsize=4)
ROAD_LAYERS: KeyedCache[Any] = KeyedCache("patrol roads layers", maxsize=2)


# ---- road network ------------------------------------------------------------------------


def _roads_key(session) -> tuple:
    layer = active_layer(session, "roads")
    if layer is None:
        msg = "尚未导入道路图层 (roads)，无法规划巡查路线"
        raise ValidationError(msg)
    # The creation time guards against a reused id after a layer was deleted.
    return (layer.id, layer.created_at.isoformat())


def roads_gdf(session):
    """Return the active roads layer as a GeoDataFrame, loaded once per layer.

    Raises
    ------
    ValidationError
        When no roads layer has been imported.
    """
    key = _roads_key(session)
    return ROAD_LAYERS.get_or_build(key, lambda: layer_gdf(session, key[0]))


def road_graph(session, mode: str) -> RoadGraph:
    """Return the routable graph of the active roads layer for ``mode``, built once per layer.

    Raises
    ------
    ValidationError
        For an unknown mode, a missing roads layer or roads that make no graph.
    """
    if mode not in MODES:
        msg = f"出行方式 mode 只能是 walk 或 drive，收到 {mode!r}"
        raise ValidationError(msg)
    key = (*_roads_key(session), mode)

    def build() -> RoadGraph:
        try:
            return build_road_graph(roads_gdf(session), mode=mode)
        except GisError as exc:
            raise ValidationError(str(exc)) from None

    return ROAD_GRAPHS.get_or_build(key, build)


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


# ---- planning ----------------------------------------------------------------------------


def find_inspector(session, value: Any) -> User | None:
    """The active inspector or admin named by id or user name; blank is nobody.

    Raises
    ------
    ValidationError
        When the value names no active inspector or admin.
    """
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
    who = find_inspector(session, inspector)
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


def create_patrols(
    session, user: User, selection: str, params: Mapping[str, Any], **options
) -> list[Patrol]:
    """Choose the stops by ``selection`` and plan them (options as in ``plan_patrols``)."""
    stops, record = choose_stops(session, user, selection, params)
    return plan_patrols(session, user, stops, selection=record, **options)


def plan_from_json(session, user: User, body: Any) -> Patrol:
    """POST /api/v1/patrols: ``issue_ids`` or ``points``, ``mode``, ``start``, ``name``…"""
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
        start = named(parse_place, "start", body["start"], field_name="start")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise FieldError(f"参数 name 应为字符串，收到 {name!r}", "name")
    inspector = named(find_inspector, "inspector", session, body.get("inspector"))
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
