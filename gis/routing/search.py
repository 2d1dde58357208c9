"""Shortest-path searches between snapped stops: one Dijkstra per stop, the leg geometry.

``search_all`` runs one search per snap and fills the network distance matrix (the
searches are kept to stitch the legs back later with ``leg_coords``); ``distance_matrix``
is the matrix alone.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString
from shapely.ops import substring

from gis.errors import RoutingError
from gis.routing.graph import RoadGraph
from gis.routing.snap import Snap

# Source-side markers in the predecessor array of a search.
_FROM_U = -2
_FROM_V = -3


@dataclass
class Search:
    """One Dijkstra search from a snapped point (distances and predecessors by node)."""

    dist: list[float]
    pred_node: list[int]
    pred_edge: list[int]
    pred_fwd: list[bool]


def _search_from(graph: RoadGraph, snap: Snap, targets: set[int]) -> Search:
    """Run Dijkstra from a point inside an edge until every target node is settled."""
    n = graph.n_nodes
    dist = [math.inf] * n
    pred_node = [-1] * n
    pred_edge = [-1] * n
    pred_fwd = [True] * n
    e = snap.edge
    u, v = int(graph.edge_u[e]), int(graph.edge_v[e])
    length = float(graph.edge_length[e])
    heap: list[tuple[float, int]] = []
    if graph.edge_bwd[e]:
        dist[u] = snap.offset_m
        pred_node[u] = _FROM_U
        heap.append((snap.offset_m, u))
    if graph.edge_fwd[e]:
        d = length - snap.offset_m
        if d < dist[v]:
            dist[v] = d
            pred_node[v] = _FROM_V
            heap.append((d, v))
    heapq.heapify(heap)
    adj = graph.adj
    left = set(targets)
    done = [False] * n
    while heap and left:
        d, a = heapq.heappop(heap)
        if done[a]:
            continue
        done[a] = True
        left.discard(a)
        for b, w, eid, fw in adj[a]:
            nd = d + w
            if nd < dist[b]:
                dist[b] = nd
                pred_node[b] = a
                pred_edge[b] = eid
                pred_fwd[b] = fw
                heapq.heappush(heap, (nd, b))
    return Search(dist, pred_node, pred_edge, pred_fwd)


def _connect(graph: RoadGraph, search: Search, s: Snap, t: Snap) -> tuple[float, str]:
    """Return the cost from snap ``s`` to snap ``t`` and how the path arrives.

    The second value is ``"direct"`` (along the shared edge), ``"u"`` (arrive at the
    target edge's u node, then forward) or ``"v"`` (arrive at v, then backward).
    """
    e = t.edge
    best, how = math.inf, "none"
    if s.edge == e:
        if graph.edge_fwd[e] and t.offset_m >= s.offset_m:
            best, how = t.offset_m - s.offset_m, "direct"
        elif graph.edge_bwd[e] and t.offset_m <= s.offset_m:
            best, how = s.offset_m - t.offset_m, "direct"
    if graph.edge_fwd[e]:
        c = search.dist[int(graph.edge_u[e])] + t.offset_m
        if c < best:
            best, how = c, "u"
    if graph.edge_bwd[e]:
        c = search.dist[int(graph.edge_v[e])] + float(graph.edge_length[e]) - t.offset_m
        if c < best:
            best, how = c, "v"
    return best, how


def search_all(graph: RoadGraph, snaps: Sequence[Snap]) -> tuple[np.ndarray, list[Search]]:
    """Run one search per snap and return the distance matrix with the searches.

    Parameters
    ----------
    graph : RoadGraph
    snaps : sequence of Snap
        From ``snap_points`` on the same graph.

    Returns
    -------
    matrix : numpy.ndarray
        As ``distance_matrix``.
    searches : list of Search
        ``searches[i]`` is the search from snap i, for ``leg_coords``.
    """
    targets = set()
    for s in snaps:
        targets.add(int(graph.edge_u[s.edge]))
        targets.add(int(graph.edge_v[s.edge]))
    n = len(snaps)
    matrix = np.zeros((n, n), dtype=float)
    searches = []
    for i, s in enumerate(snaps):
        search = _search_from(graph, s, targets)
        searches.append(search)
        for j, t in enumerate(snaps):
            if i != j:
                matrix[i, j] = _connect(graph, search, s, t)[0]
    return matrix, searches


def distance_matrix(graph: RoadGraph, snaps: Sequence[Snap]) -> np.ndarray:
    """Return network distances in metres between snapped points.

    Parameters
    ----------
    graph : RoadGraph
    snaps : sequence of Snap
        From ``snap_points`` on the same graph.

    Returns
    -------
    numpy.ndarray
        ``(n, n)``; entry ``[i, j]`` is the shortest road distance from snap i to snap j,
        starting and ending at the projections inside the edges. Asymmetric for
        ``drive`` (one-way streets); ``inf`` where j cannot be reached from i.
    """
    return search_all(graph, snaps)[0]


def leg_coords(
    graph: RoadGraph, search: Search, s: Snap, t: Snap
) -> tuple[list[tuple[float, float]], float]:
    """Return the UTM coordinates of the road path from snap s to snap t and its length.

    Parameters
    ----------
    graph : RoadGraph
    search : Search
        The search from ``s`` (from ``search_all``).
    s, t : Snap

    Returns
    -------
    coords : list of (x, y)
        UTM metres, at least two points.
    cost : float
        Metres along the roads.

    Raises
    ------
    RoutingError
        If ``t`` cannot be reached from ``s``.
    """
    cost, how = _connect(graph, search, s, t)
    if how == "none":
        msg = "两个巡查点之间没有可通行的道路"
        raise RoutingError(msg)
    parts: list[LineString] = []
    te = t.edge
    if how == "direct":
        parts.append(substring(graph.edge_geoms[te], s.offset_m, t.offset_m))
    else:
        tail_node = int(graph.edge_u[te]) if how == "u" else int(graph.edge_v[te])
        t_len = float(graph.edge_length[te])
        tail = substring(graph.edge_geoms[te], 0.0 if how == "u" else t_len, t.offset_m)
        chain: list[LineString] = []
        node = tail_node
        while search.pred_node[node] >= 0:
            eid = search.pred_edge[node]
            geom = graph.edge_geoms[eid]
            chain.append(geom if search.pred_fwd[node] else geom.reverse())
            node = search.pred_node[node]
        se = s.edge
        s_len = float(graph.edge_length[se])
        head_end = 0.0 if search.pred_node[node] == _FROM_U else s_len
        parts.append(substring(graph.edge_geoms[se], s.offset_m, head_end))
        parts.extend(reversed(chain))
        parts.append(tail)
    coords: list[tuple[float, float]] = []
    for part in parts:
        if part.geom_type != "LineString":
            continue  # zero-length partial edge comes back as a Point
        for c in part.coords:
            if not coords or (abs(c[0] - coords[-1][0]) > 1e-6 or abs(c[1] - coords[-1][1]) > 1e-6):
                coords.append((c[0], c[1]))
    if len(coords) == 1:
        coords.append(coords[0])
    if not coords:
        p = graph.edge_geoms[s.edge].interpolate(s.offset_m)
        coords = [(p.x, p.y), (p.x, p.y)]
    return coords, cost
