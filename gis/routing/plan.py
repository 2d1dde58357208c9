"""Patrol routes: plan one route through every stop, or share the stops among inspectors.

``plan_route`` snaps the stops, runs the searches, orders the stops with ``solve_tour``
and stitches the legs back from the edge geometries into a ``Route``; ``split_route``
groups a large stop set by capacity-balanced k-medoids and rebalances the routes'
lengths.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import LineString, mapping

from gis.errors import CoordinateError, RoutingError
from gis.routing.graph import RoadGraph
from gis.routing.search import Search, leg_coords, search_all
from gis.routing.snap import SNAP_WARN_M, Snap, snap_points
from gis.routing.tour import solve_tour

#: Average speeds used for the time estimate, km/h.
SPEED_KMH = {"walk": 4.5, "drive": 25.0}
#: Minutes spent at each stop (looking, photographing, talking to the unit).
DWELL_MIN = 3.0


@dataclass
class Route:
    """A planned patrol along the roads.

    Attributes
    ----------
    order : list of int
        Stop indices (into the stops given) in visiting order, without start/end.
    length_m : float
        Road length of the whole route.
    legs : list of LineString
        WGS-84 lines along the roads, one per consecutive pair of the visiting
        sequence (start, stops..., end or back to start).
    leg_lengths_m : list of float
    snaps : list of Snap
        ``snaps[i]`` is where stop i joins the road (aligned with the stops given).
    est_minutes : float
        Travel time at the mode's speed plus a dwell per stop.
    mode : {"walk", "drive"}
    stops : list of (lon, lat)
        The stops as given (aligned with ``snaps``).
    start, end : (lon, lat) or None
    closed : bool
        True when the route returns to where it started.
    """

    order: list[int]
    length_m: float
    legs: list[LineString]
    leg_lengths_m: list[float]
    snaps: list[Snap]
    est_minutes: float
    mode: str
    stops: list[tuple[float, float]]
    start: tuple[float, float] | None = None
    end: tuple[float, float] | None = None
    closed: bool = True
    start_snap: Snap | None = None
    end_snap: Snap | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def far_stops(self) -> list[int]:
        """Indices of stops more than 300 m from any road."""
        return [i for i, s in enumerate(self.snaps) if s.far]

    def to_geojson(self) -> dict:
        """Return the legs as a GeoJSON FeatureCollection (a dict, ready for json.dumps)."""
        seq = self._sequence_labels()
        features = []
        for k, (leg, length) in enumerate(zip(self.legs, self.leg_lengths_m, strict=True)):
            features.append(
                {
                    "type": "Feature",
                    "geometry": mapping(leg),
                    "properties": {
                        "leg": k + 1,
                        "from": seq[k],
                        "to": seq[k + 1],
                        "length_m": round(length, 1),
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features}

    def _sequence_labels(self) -> list[str | int]:
        labels: list[str | int] = []
        if self.start is not None:
            labels.append("start")
        labels.extend(self.order)
        if self.end is not None:
            labels.append("end")
        elif self.closed and labels:
            labels.append(labels[0])
        return labels


def _as_lonlat(value: Any, what: str) -> tuple[float, float]:
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        msg = f"{what} 坐标格式错误, 应为 (经度, 纬度): {value!r}"
        raise CoordinateError(msg) from None
    if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        msg = f"{what} 坐标无效: 经度 {x}, 纬度 {y}"
        raise CoordinateError(msg)
    return x, y


def _order_points(
    m: np.ndarray,
    ids: list[int],
    *,
    start: int | None,
    end: int | None,
    closed: bool,
    time_limit_s: float | None,
    seed: int,
) -> tuple[list[int], float]:
    """Order point ids (rows of m) and return the full visiting sequence and its cost.

    The sequence includes ``start`` first and ``end`` last when given, and repeats the
    first point at the end for a closed route. Free path ends use a zero-cost dummy.
    """
    pts = ([start] if start is not None else []) + list(ids) + ([end] if end is not None else [])
    if not ids:
        seq = pts + ([pts[0]] if closed and pts and end is None else [])
        return seq, _seq_cost(m, seq)
    sub = m[np.ix_(pts, pts)]
    k = len(pts)
    s_loc = 0 if start is not None else None
    e_loc = k - 1 if end is not None else None
    if end is None and closed:
        order = solve_tour(sub, start=0, time_limit_s=time_limit_s, seed=seed)
        seq = [pts[i] for i in order] + [pts[order[0]]]
        return seq, _seq_cost(m, seq)
    if s_loc is not None and e_loc is not None:
        order = solve_tour(sub, start=s_loc, end=e_loc, time_limit_s=time_limit_s, seed=seed)
        seq = [pts[i] for i in order]
        return seq, _seq_cost(m, seq)
    # A free end: add a dummy point k, free to reach (or leave) from anywhere.
    aug = np.zeros((k + 1, k + 1))
    aug[:k, :k] = sub
    if s_loc is not None:  # fixed start, free end
        order = solve_tour(aug, start=s_loc, end=k, time_limit_s=time_limit_s, seed=seed)[:-1]
    elif e_loc is not None:  # free start, fixed end
        order = solve_tour(aug, start=k, end=e_loc, time_limit_s=time_limit_s, seed=seed)[1:]
    else:  # both free
        order = solve_tour(aug, start=k, time_limit_s=time_limit_s, seed=seed)[1:]
    seq = [pts[i] for i in order]
    return seq, _seq_cost(m, seq)


def _seq_cost(m: np.ndarray, seq: list[int]) -> float:
    return float(sum(m[a, b] for a, b in itertools.pairwise(seq)))


def _check_reachable(m: np.ndarray, labels: list[str]) -> None:
    bad = ~np.isfinite(m)
    np.fill_diagonal(bad, False)
    if bad.any():
        counts = bad.sum(axis=0) + bad.sum(axis=1)
        worst = int(np.argmax(counts))
        msg = f"{labels[worst]} 与其他巡查点之间没有可通行的道路 (道路网不连通或单行限制)"
        raise RoutingError(msg)


def _prepare(
    graph: RoadGraph,
    stops_lonlat: Sequence[tuple[float, float]],
    start: tuple | None,
    end: tuple | None,
) -> tuple[
    list[tuple[float, float]], list[Snap], np.ndarray, list[Search], int | None, int | None
]:
    if not isinstance(graph, RoadGraph):
        msg = f"需要由 build_road_graph 生成的道路图, 收到 {type(graph).__name__}"
        raise RoutingError(msg)
    if stops_lonlat is None or len(stops_lonlat) == 0:
        msg = "没有巡查点, 无法规划巡查路线"
        raise RoutingError(msg)
    stops = [_as_lonlat(p, f"第 {i + 1} 个巡查点") for i, p in enumerate(stops_lonlat)]
    pts = list(stops)
    labels = [f"第 {i + 1} 个巡查点" for i in range(len(stops))]
    s_id = e_id = None
    if start is not None:
        s_id = len(pts)
        pts.append(_as_lonlat(start, "起点"))
        labels.append("起点")
    if end is not None:
        e_id = len(pts)
        pts.append(_as_lonlat(end, "终点"))
        labels.append("终点")
    snaps = snap_points(graph, [p[0] for p in pts], [p[1] for p in pts])
    m, searches = search_all(graph, snaps)
    _check_reachable(m, labels)
    return stops, snaps, m, searches, s_id, e_id


def _make_route(
    graph: RoadGraph,
    *,
    seq: list[int],
    stops: list[tuple[float, float]],
    snaps: list[Snap],
    searches: list[Search],
    s_id: int | None,
    e_id: int | None,
    closed: bool,
    speed_kmh: float | None,
    dwell_min: float,
) -> Route:
    n = len(stops)
    legs, lengths = [], []
    for a, b in itertools.pairwise(seq):
        coords, cost = leg_coords(graph, searches[a], snaps[a], snaps[b])
        xs, ys = zip(*coords, strict=True)
        lon, lat = graph.unproject(np.array(xs), np.array(ys))
        legs.append(LineString(np.column_stack([lon, lat])))
        lengths.append(float(cost))
    order = [i for i in dict.fromkeys(seq) if i < n]
    speed = speed_kmh or SPEED_KMH[graph.mode]
    length = float(sum(lengths))
    minutes = length / (speed * 1000.0 / 60.0) + dwell_min * len(order)
    warnings = [
        f"第 {i + 1} 个巡查点距最近道路 {snaps[i].distance_m:.0f} 米, 超过 {SNAP_WARN_M:.0f} 米"
        for i in order
        if snaps[i].far
    ]
    return Route(
        order=order,
        length_m=length,
        legs=legs,
        leg_lengths_m=lengths,
        snaps=snaps[:n],
        est_minutes=minutes,
        mode=graph.mode,
        stops=stops,
        start=(snaps[s_id].lon, snaps[s_id].lat) if s_id is not None else None,
        end=(snaps[e_id].lon, snaps[e_id].lat) if e_id is not None else None,
        closed=closed and e_id is None,
        start_snap=snaps[s_id] if s_id is not None else None,
        end_snap=snaps[e_id] if e_id is not None else None,
        warnings=warnings,
    )


def plan_route(
    roads_graph: RoadGraph,
    stops_lonlat: Sequence[tuple[float, float]],
    *,
    start: tuple[float, float] | None = None,
    end: tuple[float, float] | None = None,
    return_to_start: bool = True,
    speed_kmh: float | None = None,
    dwell_min: float = DWELL_MIN,
    time_limit_s: float | None = None,
    seed: int = 0,
) -> Route:
    """Plan one patrol through every stop along the roads.

    Parameters
    ----------
    roads_graph : RoadGraph
    stops_lonlat : sequence of (lon, lat)
        WGS-84 stops; a stop more than 300 m off the roads is kept and flagged.
    start : (lon, lat), optional
        Where the inspector sets off (e.g. the 创卫办). Without it the route starts at a
        stop of the tour.
    end : (lon, lat), optional
        Where the route must finish; makes an open route.
    return_to_start : bool
        Without ``end``: True for a closed round trip, False to finish at the last stop.
    speed_kmh : float, optional
        Defaults to 4.5 (walk) or 25 (drive, in town).
    dwell_min : float
        Minutes spent at each stop.
    time_limit_s : float, optional
        Budget of the tour solver (see ``solve_tour``).
    seed : int

    Returns
    -------
    Route

    Raises
    ------
    RoutingError
        No stops, or stops that cannot reach each other (names the stop).
    CoordinateError
        A stop, start or end is not a valid lon/lat.
    """
    stops, snaps, m, searches, s_id, e_id = _prepare(roads_graph, stops_lonlat, start, end)
    closed = return_to_start and e_id is None
    seq, _ = _order_points(
        m,
        list(range(len(stops))),
        start=s_id,
        end=e_id,
        closed=closed,
        time_limit_s=time_limit_s,
        seed=seed,
    )
    return _make_route(
        roads_graph,
        seq=seq,
        stops=stops,
        snaps=snaps,
        searches=searches,
        s_id=s_id,
        e_id=e_id,
        closed=closed,
        speed_kmh=speed_kmh,
        dwell_min=dwell_min,
    )


def _cluster_stops(sym: np.ndarray, k: int, rng: random.Random) -> list[list[int]]:
    """Capacity-balanced k-medoids on a symmetric distance matrix (stops only)."""
    n = sym.shape[0]
    cap = math.ceil(n / k)
    # k-means++ style seeding, deterministic under the seed.
    medoids = [rng.randrange(n)]
    while len(medoids) < k:
        dmin = sym[:, medoids].min(axis=1)
        weights = dmin**2
        total = float(weights.sum())
        if total <= 0:
            rest = [i for i in range(n) if i not in medoids]
            medoids.append(rest[0])
            continue
        r = rng.random() * total
        medoids.append(int(np.searchsorted(np.cumsum(weights), r)))
    clusters: list[list[int]] = []
    for _ in range(20):
        # Greedy balanced assignment: shortest (stop, medoid) pairs first, capacity-capped.
        dist = sym[:, medoids]
        pairs = np.dstack(np.unravel_index(np.argsort(dist, axis=None), dist.shape))[0]
        owner = [-1] * n
        size = [0] * k
        for i, c in pairs:
            if owner[i] < 0 and size[c] < cap:
                owner[i] = int(c)
                size[c] += 1
        clusters = [[i for i in range(n) if owner[i] == c] for c in range(k)]
        new = []
        for c, members in enumerate(clusters):
            if not members:
                new.append(medoids[c])
                continue
            sub = sym[np.ix_(members, members)]
            new.append(members[int(np.argmin(sub.sum(axis=1)))])
        if new == medoids:
            break
        medoids = new
    return clusters


def split_route(
    graph: RoadGraph,
    stops: Sequence[tuple[float, float]],
    *,
    n_inspectors: int,
    start: tuple[float, float] | None = None,
    return_to_start: bool = True,
    speed_kmh: float | None = None,
    dwell_min: float = DWELL_MIN,
    time_limit_s: float | None = None,
    seed: int = 0,
) -> list[Route]:
    """Share the stops among several inspectors with balanced route lengths.

    Stops are grouped by capacity-balanced k-medoids on the (symmetrised) network
    distances, each group is ordered with ``solve_tour``, then single stops are moved
    from the longest route to where they are cheapest to insert while that lowers the
    longest route's length.

    Parameters
    ----------
    graph : RoadGraph
    stops : sequence of (lon, lat)
    n_inspectors : int
        Number of routes wanted (at least 1).
    start : (lon, lat), optional
        Common starting point of every route (e.g. the 创卫办).
    return_to_start : bool
    speed_kmh, dwell_min, time_limit_s, seed
        As in ``plan_route``; ``time_limit_s`` is the budget of the whole split.

    Returns
    -------
    list of Route
        ``n_inspectors`` routes; ``Route.order`` holds indices into ``stops``. Every
        stop appears in exactly one route; with more inspectors than stops the extra
        routes are empty.
    """
    if not isinstance(n_inspectors, int) or n_inspectors < 1:
        msg = f"巡查员人数 n_inspectors 必须是正整数, 收到 {n_inspectors!r}"
        raise RoutingError(msg)
    stops_l, snaps, m, searches, s_id, _ = _prepare(graph, stops, start, None)
    n = len(stops_l)
    k = min(n_inspectors, n)
    rng = random.Random(seed)
    closed = return_to_start
    budget = time_limit_s if time_limit_s is not None else min(10.0, 0.5 + 0.02 * n)
    t_end = time.perf_counter() + budget
    per_solve = max(0.05, budget / (4 * k))

    sym = (m[:n, :n] + m[:n, :n].T) / 2
    clusters = _cluster_stops(sym, k, rng)

    def solve(ids: list[int], limit: float) -> tuple[list[int], float]:
        return _order_points(
            m, ids, start=s_id, end=None, closed=closed, time_limit_s=limit, seed=seed
        )

    seqs: list[list[int]] = []
    costs: list[float] = []
    for ids in clusters:
        seq, cost = solve(ids, per_solve)
        seqs.append(seq)
        costs.append(cost)

    def removal(seq: list[int], pos: int) -> float:
        """Change of a route's length when the stop at ``pos`` leaves it (<= 0)."""
        b = seq[pos]
        if closed and s_id is None:
            # A start-less closed tour repeats its first stop at the end: treat it as a cycle.
            cyc = seq[:-1]
            if len(cyc) <= 1:
                return 0.0
            a, c = cyc[pos - 1], cyc[(pos + 1) % len(cyc)]
            return m[a, c] - m[a, b] - m[b, c]
        a = seq[pos - 1] if pos > 0 else None
        c = seq[pos + 1] if pos + 1 < len(seq) else None
        if a is None:
            return -m[b, c] if c is not None else 0.0
        if c is None:
            return -m[a, b]
        return m[a, c] - m[a, b] - m[b, c]

    def insertion(seq: list[int], b: int) -> float:
        """Cheapest extra length of putting stop b into a route."""
        if not seq:
            return 0.0
        best = math.inf
        if s_id is None and not closed:
            best = m[b, seq[0]]
        if not closed:
            best = min(best, m[seq[-1], b])
        for p in range(1, len(seq)):
            best = min(best, m[seq[p - 1], b] + m[b, seq[p]] - m[seq[p - 1], seq[p]])
        return float(best)

    # Rebalance: move one stop off the longest route while that lowers the maximum.
    for _ in range(4 * n):
        if time.perf_counter() > t_end:
            break
        longest = int(np.argmax(costs))
        cur_max = costs[longest]
        best_move = None
        seq = seqs[longest]
        movable = [p for p, i in enumerate(seq) if i < n]
        if closed and s_id is None:
            movable = movable[:-1]  # the last entry repeats the first stop
        for p in movable:
            b = seq[p]
            new_long = cur_max + removal(seq, p)
            for r in range(k):
                if r == longest:
                    continue
                add = insertion(seqs[r], b)
                new_r = costs[r] + add
                new_max = max(
                    [new_long, new_r] + [c for q, c in enumerate(costs) if q not in (r, longest)]
                )
                if new_max < cur_max - 1e-6 and (best_move is None or new_max < best_move[0]):
                    best_move = (new_max, p, r)
        if best_move is None:
            break
        _, p, r = best_move
        b = seqs[longest][p]
        clusters[longest].remove(b)
        clusters[r].append(b)
        for q in (longest, r):
            seqs[q], costs[q] = solve(clusters[q], per_solve / 4)

    routes = []
    for q in range(n_inspectors):
        if q < k and clusters[q]:
            seq = seqs[q]
        else:
            seq = (
                [s_id, s_id]
                if (s_id is not None and closed)
                else ([s_id] if s_id is not None else [])
            )
        route = _make_route(
            graph,
            seq=seq,
            stops=stops_l,
            snaps=snaps,
            searches=searches,
            s_id=s_id,
            e_id=None,
            closed=closed,
            speed_kmh=speed_kmh,
            dwell_min=dwell_min,
        )
        routes.append(route)
    return routes
