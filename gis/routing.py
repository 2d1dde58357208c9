"""Patrol routing over the county seat's real road network.

The pipeline is: ``build_road_graph`` nodes the road lines in the local UTM zone and keeps
the largest (strongly) connected part; ``snap_points`` puts every stop on the nearest road
edge (not the nearest junction, so a stop in the middle of a long street is reached there);
``distance_matrix`` runs one Dijkstra search per stop; ``solve_tour`` orders the stops with
an iterated local search (2-opt + Or-opt with neighbour lists, double-bridge kicks);
``plan_route`` stitches the legs back from the edge geometries; ``split_route`` shares a
large stop set among several inspectors; ``route_to_gpx``/``route_to_kml`` export for
phone navigation apps.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import LineString, mapping
from shapely.ops import substring

from gis.crs import WGS84, transformer, utm_crs_for
from gis.errors import CoordinateError, RoutingError
from gis.xmltext import xml_text

Mode = Literal["walk", "drive"]

#: A stop farther than this from every road is flagged (kept, not dropped).
SNAP_WARN_M = 300.0
#: Average speeds used for the time estimate, km/h.
SPEED_KMH = {"walk": 4.5, "drive": 25.0}
#: Minutes spent at each stop (looking, photographing, talking to the unit).
DWELL_MIN = 3.0

# Ways a car may not use. Footways etc. are walkable; "construction"/"proposed" are not
# open to traffic yet.
_NO_DRIVE = frozenset(
    {
        "footway",
        "steps",
        "path",
        "pedestrian",
        "cycleway",
        "bridleway",
        "corridor",
        "elevator",
        "platform",
        "construction",
        "proposed",
        "abandoned",
        "razed",
    }
)
# Ways that do not physically exist (yet or any more): nobody can walk them either.
_NO_WALK = frozenset({"proposed", "abandoned", "razed"})
_ONEWAY_FORWARD = frozenset({"yes", "true", "1"})
_ONEWAY_REVERSE = frozenset({"-1", "reverse"})
_INF = math.inf
# Road pieces shorter than this are noding artefacts; their two ends become one node.
_MERGE_M = 0.5
# Source-side markers in the predecessor array of a search.
_FROM_U = -2
_FROM_V = -3


# --------------------------------------------------------------------------- graph


class RoadGraph:
    """A noded road network in the local UTM zone, ready for snapping and searches.

    Attributes
    ----------
    graph : networkx.Graph or networkx.DiGraph
        ``Graph`` for ``walk``, ``DiGraph`` for ``drive``. Nodes are ints with ``x``/``y``
        (UTM metres); edges carry ``weight`` (metres), ``edge_id`` and ``geometry``
        (UTM LineString). Where two road pieces join the same pair of nodes only the
        shorter one is kept in this graph; every piece stays available for snapping.
    crs : pyproj.CRS
        The UTM CRS of every metric coordinate.
    mode : {"walk", "drive"}
    edge_geoms : list of LineString
        One per edge id, digitised from node ``edge_u`` to node ``edge_v``.
    edge_u, edge_v : numpy.ndarray
    edge_length : numpy.ndarray
        Metres.
    edge_fwd, edge_bwd : numpy.ndarray of bool
        Whether the edge may be travelled u→v / v→u.
    tree : shapely.STRtree
        Over ``edge_geoms``; used to snap points to the nearest edge.
    dropped : dict
        What was cut off because it was not connected to the main network:
        ``components``, ``edges`` and ``length_m``.
    """

    def __init__(
        self,
        *,
        mode: Mode,
        crs: CRS,
        node_xy: np.ndarray,
        edge_geoms: list[LineString],
        edge_u: np.ndarray,
        edge_v: np.ndarray,
        edge_fwd: np.ndarray,
        edge_bwd: np.ndarray,
        dropped: dict[str, float],
    ) -> None:
        self.mode = mode
        self.crs = crs
        self.node_xy = node_xy
        self.edge_geoms = edge_geoms
        self.edge_u = edge_u
        self.edge_v = edge_v
        self.edge_length = np.array([g.length for g in edge_geoms], dtype=float)
        self.edge_fwd = edge_fwd
        self.edge_bwd = edge_bwd
        self.dropped = dropped
        self.tree = shapely.STRtree(edge_geoms)
        self._to_utm = transformer(WGS84, crs)
        self._to_wgs = transformer(crs, WGS84)
        # Plain adjacency lists: the searches run in pure Python and list indexing is
        # several times faster than going through networkx' dict-of-dicts.
        n_nodes = len(node_xy)
        adj: list[list[tuple[int, float, int, bool]]] = [[] for _ in range(n_nodes)]
        for eid in range(len(edge_geoms)):
            u, v, length = int(edge_u[eid]), int(edge_v[eid]), float(self.edge_length[eid])
            if edge_fwd[eid]:
                adj[u].append((v, length, eid, True))
            if edge_bwd[eid]:
                adj[v].append((u, length, eid, False))
        self.adj = adj
        self.graph = self._build_nx()

    def _build_nx(self) -> nx.Graph:
        g: nx.Graph = nx.DiGraph() if self.mode == "drive" else nx.Graph()
        for i, (x, y) in enumerate(self.node_xy):
            g.add_node(i, x=float(x), y=float(y))
        for eid, geom in enumerate(self.edge_geoms):
            length = float(self.edge_length[eid])
            u, v = int(self.edge_u[eid]), int(self.edge_v[eid])
            pairs = []
            if self.edge_fwd[eid]:
                pairs.append((u, v))
            if self.edge_bwd[eid] and self.mode == "drive":
                pairs.append((v, u))
            for a, b in pairs:
                old = g.get_edge_data(a, b)
                if old is None or old["weight"] > length:
                    g.add_edge(a, b, weight=length, edge_id=eid, geometry=geom)
        return g

    @property
    def n_nodes(self) -> int:
        """Number of junction/end nodes."""
        return len(self.node_xy)

    @property
    def n_edges(self) -> int:
        """Number of road pieces between nodes."""
        return len(self.edge_geoms)

    def project(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Project WGS-84 lon/lat (scalars or arrays) to this graph's UTM metres."""
        x, y = self._to_utm.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def unproject(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return WGS-84 lon/lat for UTM metres (scalars or arrays)."""
        lon, lat = self._to_wgs.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def __repr__(self) -> str:
        return (
            f"RoadGraph(mode={self.mode!r}, nodes={self.n_nodes}, edges={self.n_edges}, "
            f"length_km={self.edge_length.sum() / 1000:.2f}, dropped={self.dropped})"
        )


def _oneway_code(value: Any) -> int:
    """Return 1 (forward only), -1 (reverse only) or 0 (both ways) for an OSM oneway tag."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    text = str(value).strip().lower()
    if text in _ONEWAY_FORWARD:
        return 1
    if text in _ONEWAY_REVERSE:
        return -1
    return 0


def build_road_graph(
    roads: gpd.GeoDataFrame,
    *,
    mode: Mode,
    node_crossings: bool = True,
    keep_largest: bool = True,
) -> RoadGraph:
    """Build a routable graph from a road layer.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        LineStrings (MultiLineStrings are split) with optional ``highway`` and ``oneway``
        columns, in any CRS with a defined ``crs``.
    mode : {"walk", "drive"}
        ``walk`` uses every way in both directions. ``drive`` leaves out footways, steps,
        paths, pedestrian streets and cycleways and honours ``oneway`` ("yes"/"true"/"1"
        forward only along the digitised direction, "-1" against it).
    node_crossings : bool
        Node the lines where they cross even without a shared vertex (data drawn outside
        OSM often has no vertex at junctions). OSM marks bridges by *not* sharing a
        vertex, so pass False for raw OSM ways over bridges if that matters.
    keep_largest : bool
        Keep only the largest connected (``walk``) or strongly connected (``drive``)
        part, so every stop can reach every other; what is cut off is reported in
        ``RoadGraph.dropped``.

    Returns
    -------
    RoadGraph

    Raises
    ------
    RoutingError
        If the layer has no usable road line for the mode.
    """
    if mode not in ("walk", "drive"):
        msg = f"出行方式 mode 只能是 walk 或 drive, 收到 {mode!r}"
        raise RoutingError(msg)
    if roads is None or len(roads) == 0:
        msg = "道路图层为空, 无法规划巡查路线"
        raise RoutingError(msg)
    if roads.crs is None:
        msg = "道路图层没有坐标参考系 (CRS)"
        raise RoutingError(msg)
    gdf = roads[roads.geometry.notna() & ~roads.geometry.is_empty].copy()
    if "highway" in gdf.columns:
        hw = gdf["highway"].fillna("").astype(str).str.strip().str.lower()
        banned = _NO_DRIVE if mode == "drive" else _NO_WALK
        gdf = gdf[~hw.isin(banned)]
    gdf = gdf[gdf.geom_type.isin(["LineString", "MultiLineString"])]
    if len(gdf) == 0:
        msg = f"道路图层中没有可用于 {'步行' if mode == 'walk' else '驾车'} 的道路线"
        raise RoutingError(msg)
    gdf = gdf.explode(index_parts=False, ignore_index=True)

    wgs = gdf.to_crs(WGS84) if not gdf.crs.equals(WGS84) else gdf
    minx, miny, maxx, maxy = wgs.total_bounds
    crs = utm_crs_for((minx + maxx) / 2, (miny + maxy) / 2)
    src = gdf.to_crs(crs)
    src_geoms = np.asarray(src.geometry.values, dtype=object)
    if mode == "drive" and "oneway" in src.columns:
        oneway = np.array([_oneway_code(v) for v in src["oneway"]], dtype=int)
    else:
        oneway = np.zeros(len(src), dtype=int)

    # Round to 1 cm so that ends which almost meet become one node.
    if node_crossings:
        noded = shapely.union_all(src_geoms, grid_size=0.01)
    else:
        noded = shapely.set_precision(shapely.MultiLineString(list(src_geoms)), 0.01)
    pieces = [p for p in shapely.get_parts(noded) if p.length > 0]
    if node_crossings is False:
        # Without union the lines are split only at their own ends; split them at every
        # vertex they share with another line so OSM-style junctions still connect.
        pieces = _split_at_shared_vertices(pieces)
    if not pieces:
        msg = "道路图层中没有长度大于 0 的道路线"
        raise RoutingError(msg)

    # Recover each piece's source line (for its oneway tag and digitised direction).
    src_tree = shapely.STRtree(shapely.set_precision(src_geoms, 0.01))
    mids = shapely.line_interpolate_point(np.asarray(pieces, dtype=object), 0.5, normalized=True)
    idx = src_tree.query_nearest(mids, all_matches=False)
    src_idx = idx[1][np.argsort(idx[0])]
    starts = shapely.points([p.coords[0] for p in pieces])
    ends = shapely.points([p.coords[-1] for p in pieces])
    lines = src_geoms[src_idx]
    along = shapely.line_locate_point(lines, ends) >= shapely.line_locate_point(lines, starts)
    code = oneway[src_idx]
    # Direction of travel allowed relative to the piece's own digitisation.
    fwd_src = code >= 0
    bwd_src = code <= 0
    fwd = np.where(along, fwd_src, bwd_src)
    bwd = np.where(along, bwd_src, fwd_src)

    node_ids: dict[tuple[float, float], int] = {}
    us, vs = [], []
    for p in pieces:
        a, b = p.coords[0], p.coords[-1]
        us.append(node_ids.setdefault((a[0], a[1]), len(node_ids)))
        vs.append(node_ids.setdefault((b[0], b[1]), len(node_ids)))
    lengths = np.array([p.length for p in pieces])
    # A T-junction whose end sits a few millimetres beside the crossing street (rounding,
    # reprojection) is noded into a centimetre-long stub: merge such stubs' two nodes.
    parent = list(range(len(node_ids)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for e in np.flatnonzero(lengths < _MERGE_M):
        ra, rb = root(us[e]), root(vs[e])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    us = [root(a) for a in us]
    vs = [root(b) for b in vs]
    us_a, vs_a = np.array(us), np.array(vs)
    stub = lengths < _MERGE_M
    if stub.all():
        msg = "道路图层中没有长度大于 0.5 米的道路线"
        raise RoutingError(msg)

    keep = ~stub
    dropped: dict[str, float] = {"components": 0, "edges": 0, "length_m": 0.0}
    if keep_largest:
        g = nx.DiGraph() if mode == "drive" else nx.Graph()
        g.add_nodes_from(range(len(node_ids)))
        for e in np.flatnonzero(~stub):
            if fwd[e]:
                g.add_edge(us[e], vs[e])
            if bwd[e]:
                g.add_edge(vs[e], us[e])
        comps = (
            list(nx.strongly_connected_components(g))
            if mode == "drive"
            else list(nx.connected_components(g))
        )
        # "Largest" by road length, not node count: a long arterial beats a dense stub.
        comp_of = np.full(len(node_ids), -1, dtype=int)
        for ci, comp in enumerate(comps):
            comp_of[list(comp)] = ci
        same = (comp_of[us_a] == comp_of[vs_a]) & ~stub
        comp_len = np.bincount(comp_of[us_a][same], weights=lengths[same], minlength=len(comps))
        best = int(np.argmax(comp_len))
        keep = same & (comp_of[us_a] == best)
        dropped = {
            # Every other component that a dropped piece touches (a one-way stub whose
            # ends fall in two different components counts both).
            "components": len(
                {int(c) for c in comp_of[np.r_[us_a[~keep & ~stub], vs_a[~keep & ~stub]]]} - {best}
            ),
            "edges": int(np.count_nonzero(~keep & ~stub)),
            "length_m": float(lengths[~keep & ~stub].sum()),
        }
    kept = np.flatnonzero(keep)
    old_nodes = np.unique(np.concatenate([us_a[kept], vs_a[kept]]))
    remap = {int(o): i for i, o in enumerate(old_nodes)}
    xy_all = np.array(list(node_ids.keys()), dtype=float)
    return RoadGraph(
        mode=mode,
        crs=crs,
        node_xy=xy_all[old_nodes],
        edge_geoms=[pieces[e] for e in kept],
        edge_u=np.array([remap[int(u)] for u in us_a[kept]], dtype=int),
        edge_v=np.array([remap[int(v)] for v in vs_a[kept]], dtype=int),
        edge_fwd=fwd[kept].astype(bool),
        edge_bwd=bwd[kept].astype(bool),
        dropped=dropped,
    )


def _split_at_shared_vertices(lines: list[LineString]) -> list[LineString]:
    """Split lines at vertices that also occur in another line or at another line's end."""
    counts: dict[tuple[float, float], int] = {}
    for line in lines:
        coords = list(line.coords)
        for c in set(coords):
            counts[c] = counts.get(c, 0) + 1
        # A line's own ends are nodes too; count them twice so they always split others.
        counts[coords[0]] = counts.get(coords[0], 0) + 1
        counts[coords[-1]] = counts.get(coords[-1], 0) + 1
    out = []
    for line in lines:
        coords = list(line.coords)
        cur = [coords[0]]
        for c in coords[1:]:
            cur.append(c)
            if counts[c] > 1 and len(cur) > 1 and c != coords[-1]:
                out.append(LineString(cur))
                cur = [c]
        if len(cur) > 1:
            out.append(LineString(cur))
    return [p for p in out if p.length > 0]


# --------------------------------------------------------------------------- snapping


@dataclass(frozen=True)
class Snap:
    """Where one stop joins the road network.

    Attributes
    ----------
    lon, lat : float
        The stop as given (WGS-84).
    edge : int
        Edge id in the ``RoadGraph``.
    offset_m : float
        Distance along the edge from its ``edge_u`` node to the projection.
    distance_m : float
        Straight-line distance from the stop to the road.
    snapped_lon, snapped_lat : float
        The projection on the road (WGS-84).
    far : bool
        True when ``distance_m`` exceeds ``SNAP_WARN_M`` (300 m): the stop is kept but
        the inspector should be told it is off the road network.
    """

    lon: float
    lat: float
    edge: int
    offset_m: float
    distance_m: float
    snapped_lon: float
    snapped_lat: float
    far: bool


def snap_points(graph: RoadGraph, lon: Sequence[float], lat: Sequence[float]) -> list[Snap]:
    """Snap each point to the nearest road edge.

    Parameters
    ----------
    graph : RoadGraph
    lon, lat : sequence of float
        WGS-84 degrees, same length.

    Returns
    -------
    list of Snap
        One per point, in input order; points farther than 300 m are flagged ``far``.

    Raises
    ------
    CoordinateError
        If a coordinate is not a finite number in range (names the point's index).
    """
    lon_a = np.atleast_1d(np.asarray(lon, dtype=float))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=float))
    if lon_a.shape != lat_a.shape:
        msg = f"经度与纬度个数不一致: {lon_a.size} 个经度, {lat_a.size} 个纬度"
        raise CoordinateError(msg)
    for i, (x, y) in enumerate(zip(lon_a, lat_a, strict=True)):
        if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
            msg = f"第 {i + 1} 个巡查点坐标无效: 经度 {x}, 纬度 {y}"
            raise CoordinateError(msg)
    if lon_a.size == 0:
        return []
    x, y = graph.project(lon_a, lat_a)
    pts = shapely.points(x, y)
    (pi, ei), dist = graph.tree.query_nearest(pts, all_matches=False, return_distance=True)
    order = np.argsort(pi)
    ei, dist = ei[order], dist[order]
    lines = np.asarray(graph.edge_geoms, dtype=object)[ei]
    offsets = shapely.line_locate_point(lines, pts)
    proj = shapely.line_interpolate_point(lines, offsets)
    slon, slat = graph.unproject(shapely.get_x(proj), shapely.get_y(proj))
    return [
        Snap(
            lon=float(lon_a[i]),
            lat=float(lat_a[i]),
            edge=int(ei[i]),
            offset_m=float(offsets[i]),
            distance_m=float(dist[i]),
            snapped_lon=float(slon[i]),
            snapped_lat=float(slat[i]),
            far=bool(dist[i] > SNAP_WARN_M),
        )
        for i in range(lon_a.size)
    ]


# --------------------------------------------------------------------------- searches


@dataclass
class _Search:
    """One Dijkstra search from a snapped point (distances and predecessors by node)."""

    dist: list[float]
    pred_node: list[int]
    pred_edge: list[int]
    pred_fwd: list[bool]


def _search_from(graph: RoadGraph, snap: Snap, targets: set[int]) -> _Search:
    """Run Dijkstra from a point inside an edge until every target node is settled."""
    n = graph.n_nodes
    dist = [_INF] * n
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
    return _Search(dist, pred_node, pred_edge, pred_fwd)


def _connect(graph: RoadGraph, search: _Search, s: Snap, t: Snap) -> tuple[float, str]:
    """Return the cost from snap ``s`` to snap ``t`` and how the path arrives.

    The second value is ``"direct"`` (along the shared edge), ``"u"`` (arrive at the
    target edge's u node, then forward) or ``"v"`` (arrive at v, then backward).
    """
    e = t.edge
    best, how = _INF, "none"
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


def _search_all(graph: RoadGraph, snaps: Sequence[Snap]) -> tuple[np.ndarray, list[_Search]]:
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
    return _search_all(graph, snaps)[0]


def _leg_coords(
    graph: RoadGraph, search: _Search, s: Snap, t: Snap
) -> tuple[list[tuple[float, float]], float]:
    """Return the UTM coordinates of the road path from snap s to snap t and its length."""
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


# --------------------------------------------------------------------------- tour solver


def _default_time_limit(n: int) -> float:
    return min(4.0, max(0.2, 0.015 * n))


def _tour_cost(d: list[list[float]], tour: list[int]) -> float:
    return sum(d[tour[i - 1]][tour[i]] for i in range(len(tour)))


def _nearest_neighbour(d: list[list[float]], start: int) -> list[int]:
    n = len(d)
    left = set(range(n))
    left.discard(start)
    tour = [start]
    cur = start
    while left:
        row = d[cur]
        cur = min(left, key=row.__getitem__)
        left.discard(cur)
        tour.append(cur)
    return tour


class _LocalSearch:
    """2-opt + Or-opt over a closed tour of an (a)symmetric matrix, with neighbour lists.

    Tours are plain position arrays. For asymmetric matrices the cost of reversing a
    segment is read from prefix sums of the forward and backward edge costs, so a 2-opt
    move is still evaluated in O(1).
    """

    def __init__(self, d: list[list[float]], neigh: list[list[int]], symmetric: bool) -> None:
        self.d = d
        self.neigh = neigh
        self.sym = symmetric
        self.n = len(d)
        self.t: list[int] = []
        self.pos = [0] * self.n
        self.fw: list[float] = []
        self.bw: list[float] = []

    def load(self, tour: list[int]) -> None:
        self.t = list(tour)
        self._reindex()

    def _reindex(self) -> None:
        t, pos = self.t, self.pos
        for i, c in enumerate(t):
            pos[c] = i
        if not self.sym:
            d = self.d
            n = self.n
            fw = [0.0] * (n + 1)
            bw = [0.0] * (n + 1)
            a = b = 0.0
            for i in range(n):
                x, y = t[i], t[i + 1 - n]  # t[i + 1 - n] wraps to t[0] at the end
                a += d[x][y]
                b += d[y][x]
                fw[i + 1] = a
                bw[i + 1] = b
            self.fw, self.bw = fw, bw

    def _two_opt_delta(self, p: int, q: int) -> float:
        """Gain of reversing positions p+1..q (p may be -1)."""
        t, d = self.t, self.d
        n = self.n
        a, b, c, e = t[p], t[p + 1], t[q], t[q + 1 - n]
        delta = d[a][c] + d[b][e] - d[a][b] - d[c][e]
        if not self.sym:
            delta += (self.bw[q] - self.bw[p + 1]) - (self.fw[q] - self.fw[p + 1])
        return delta

    def _apply_two_opt(self, p: int, q: int) -> list[int]:
        t = self.t
        lo = p + 1
        t[lo : q + 1] = t[lo : q + 1][::-1]
        if self.sym:
            pos = self.pos
            for i in range(lo, q + 1):
                pos[t[i]] = i
        else:
            self._reindex()
        n = self.n
        return [t[p], t[lo], t[q], t[q + 1 - n]]

    def _try_two_opt(self, a: int) -> list[int] | None:
        pos, n = self.pos, self.n
        i = pos[a]
        for c in self.neigh[a]:
            j = pos[c]
            lo, hi = (i, j) if i < j else (j, i)
            if hi - lo < 2:
                continue
            # Both reversals below create the edge t[lo] -> t[hi].
            if hi - lo < n - 1 and self._two_opt_delta(lo, hi) < -1e-9:
                return self._apply_two_opt(lo, hi)
            if self._two_opt_delta(lo - 1, hi - 1) < -1e-9:
                return self._apply_two_opt(lo - 1, hi - 1)
        return None

    def _try_or_opt(self, a: int) -> list[int] | None:
        t, pos, d, n = self.t, self.pos, self.d, self.n
        i0 = pos[a]
        for seg_len in (1, 2, 3):
            if n < seg_len + 3:
                break
            for i in (i0, i0 - seg_len + 1):
                if i < 0 or i + seg_len > n or (seg_len == 1 and i != i0):
                    continue
                s, e = t[i], t[i + seg_len - 1]
                p, nx_ = t[i - 1], t[(i + seg_len) % n]
                gain = d[p][s] + d[e][nx_] - d[p][nx_]
                if gain <= 1e-9:
                    continue
                if self.sym or seg_len == 1:
                    rev_extra = 0.0
                else:
                    rev_extra = (self.bw[i + seg_len - 1] - self.bw[i]) - (
                        self.fw[i + seg_len - 1] - self.fw[i]
                    )
                for c in itertools.chain(self.neigh[s], self.neigh[e]):
                    j = pos[c]
                    if i <= j < i + seg_len:
                        continue
                    for k in (j - 1, j):  # slots (pred c, c) and (c, succ c)
                        kk = k % n
                        if (kk - i + 1) % n <= seg_len:  # slot touches the segment
                            continue
                        x, y = t[kk], t[(kk + 1) % n]
                        base = d[x][y]
                        if d[x][s] + d[e][y] - base - gain < -1e-9:
                            return self._apply_or_opt(i, seg_len, kk, reverse=False)
                        if d[x][e] + d[s][y] - base + rev_extra - gain < -1e-9:
                            return self._apply_or_opt(i, seg_len, kk, reverse=True)
        return None

    def _apply_or_opt(self, i: int, seg_len: int, k: int, *, reverse: bool) -> list[int]:
        t, n = self.t, self.n
        seg = t[i : i + seg_len]
        touched = [t[i - 1], t[(i + seg_len) % n], t[k], t[(k + 1) % n], seg[0], seg[-1]]
        after = t[k]
        if reverse:
            seg = seg[::-1]
        rest = t[:i] + t[i + seg_len :]
        at = rest.index(after) + 1
        self.t = rest[:at] + seg + rest[at:]
        self._reindex()
        return touched

    def run(self, queue_nodes: Sequence[int]) -> None:
        """Improve the loaded tour until no move from any queued node helps."""
        queue = deque(queue_nodes)
        queued = [False] * self.n
        for a in queue_nodes:
            queued[a] = True
        while queue:
            a = queue.popleft()
            queued[a] = False
            touched = self._try_two_opt(a) or self._try_or_opt(a)
            if touched:
                for b in (*touched, a):
                    if not queued[b]:
                        queued[b] = True
                        queue.append(b)


def _brute_force(d: list[list[float]], start: int) -> list[int]:
    others = [i for i in range(len(d)) if i != start]
    best, best_cost = None, _INF
    for perm in itertools.permutations(others):
        tour = [start, *perm]
        c = _tour_cost(d, tour)
        if c < best_cost:
            best, best_cost = tour, c
    return best  # type: ignore[return-value]


def _solve_closed(d: list[list[float]], start: int, *, time_limit_s: float, seed: int) -> list[int]:
    """Return a short closed tour (as a permutation beginning with ``start``)."""
    n = len(d)
    if n <= 7:
        return _brute_force(d, start)
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    rng = random.Random(seed)
    arr = np.array(d)
    symmetric = bool(np.allclose(arr, arr.T))
    # min() rather than mean: a row forced to a huge cost (open-path end) still has
    # ordinary incoming neighbours that must be found.
    near = np.minimum(arr, arr.T)
    np.fill_diagonal(near, np.inf)
    k = min(10 if n <= 100 else 8, n - 1)
    neigh = np.argsort(near, axis=1, kind="stable")[:, :k].tolist()

    ls = _LocalSearch(d, neigh, symmetric)
    ls.load(_nearest_neighbour(d, start))
    ls.run(list(range(n)))
    cur = ls.t[:]
    cur_cost = _tour_cost(d, cur)
    best, best_cost = cur[:], cur_cost
    max_idle = 300 + 20 * n
    idle = 0
    max_seg = max(1, min(n // 4, 30))
    while idle < max_idle and time.perf_counter() < deadline:
        # Double-bridge kick on nearby segments ("segment" double-bridge): random ones
        # over the whole tour are almost always undone or rejected on larger n.
        rot = rng.randrange(n)
        base = cur[rot:] + cur[:rot]
        l1, l2 = rng.randint(1, max_seg), rng.randint(1, max_seg)
        gap = rng.randint(0, max_seg)
        if l1 + l2 + gap + 2 > n:
            l1, l2, gap = 1, 1, 0
        a = 1
        b, c = a + l1, a + l1 + gap
        e = c + l2
        new = base[:a] + base[c:e] + base[b:c] + base[a:b] + base[e:]
        ls.load(new)
        touched = {base[0], base[a], base[b - 1], base[b % n], base[c - 1], base[c % n]}
        touched |= {base[e - 1], base[e % n]}
        ls.run(list(touched))
        cost = _tour_cost(d, ls.t)
        if cost < cur_cost - 1e-9:
            cur, cur_cost = ls.t[:], cost
            idle = 0
            if cost < best_cost - 1e-9:
                best, best_cost = cur[:], cost
        else:
            idle += 1
            if cost <= cur_cost + 1e-9:
                cur = ls.t[:]
    i = best.index(start)
    return best[i:] + best[:i]


def solve_tour(
    matrix: np.ndarray,
    *,
    start: int = 0,
    end: int | None = None,
    time_limit_s: float | None = None,
    seed: int = 0,
) -> list[int]:
    """Order the points of a distance matrix into a short tour or path.

    Nearest-neighbour construction, then iterated local search: 2-opt and Or-opt
    (segments of 1-3, both orientations) over neighbour lists with don't-look queues,
    kicked by local double-bridge moves and accepted when not worse. Asymmetric
    matrices are handled exactly (reversal costs come from prefix sums).

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(n, n)`` costs, ``matrix[i, j]`` from i to j; finite, non-negative.
    start : int
        First point.
    end : int, optional
        Last point of an open path. None (default) makes a closed tour back to start.
    time_limit_s : float, optional
        Wall-clock budget; defaults to about 15 ms per point (0.2-4 s). The search also
        stops early once many kicks in a row brought no improvement.
    seed : int
        Seed of the kicks, for repeatable results under the same time budget.

    Returns
    -------
    list of int
        Every index once, beginning with ``start`` (and ending with ``end`` if given);
        a closed tour does not repeat ``start`` at the end.

    Raises
    ------
    RoutingError
        On an empty, non-square or non-finite matrix, or bad start/end.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        msg = f"距离矩阵必须是方阵, 收到形状 {m.shape}"
        raise RoutingError(msg)
    n = m.shape[0]
    if n == 0:
        msg = "没有巡查点, 无法排序"
        raise RoutingError(msg)
    if not (0 <= start < n) or (end is not None and not (0 <= end < n)):
        msg = f"起点/终点序号超出范围: start={start}, end={end}, 共 {n} 个点"
        raise RoutingError(msg)
    bad = ~np.isfinite(m)
    np.fill_diagonal(bad, False)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        msg = f"第 {i + 1} 个点到第 {j + 1} 个点之间没有可通行的道路"
        raise RoutingError(msg)
    m = m.copy()
    np.fill_diagonal(m, 0.0)
    if n == 1:
        return [start]
    if end is not None and end == start:
        end = None
    if n == 2:
        return [start, 1 - start]
    if end is not None:
        # Open path start→end as a closed tour where end must go straight back to start.
        big = float(m.max()) * n + 1.0
        m[end, :] = big
        m[end, start] = 0.0
    limit = _default_time_limit(n) if time_limit_s is None else max(0.0, float(time_limit_s))
    tour = _solve_closed(m.tolist(), start, time_limit_s=limit, seed=seed)
    if end is not None and tour[-1] != end:  # cannot happen unless the budget was 0
        tour.remove(end)
        tour.append(end)
    return tour


# --------------------------------------------------------------------------- routes


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
    list[tuple[float, float]], list[Snap], np.ndarray, list[_Search], int | None, int | None
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
    m, searches = _search_all(graph, snaps)
    _check_reachable(m, labels)
    return stops, snaps, m, searches, s_id, e_id


def _make_route(
    graph: RoadGraph,
    *,
    seq: list[int],
    stops: list[tuple[float, float]],
    snaps: list[Snap],
    searches: list[_Search],
    s_id: int | None,
    e_id: int | None,
    closed: bool,
    speed_kmh: float | None,
    dwell_min: float,
) -> Route:
    n = len(stops)
    legs, lengths = [], []
    for a, b in itertools.pairwise(seq):
        coords, cost = _leg_coords(graph, searches[a], snaps[a], snaps[b])
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
        best = _INF
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


# --------------------------------------------------------------------------- export

_GPX_NS = "http://www.topografix.com/GPX/1/1"
_KML_NS = "http://www.opengis.net/kml/2.2"


def _stop_label(route: Route, rank: int, idx: int, stop_names: Sequence[str] | None) -> str:
    if stop_names is not None:
        if len(stop_names) != len(route.stops):
            msg = f"stop_names 个数 ({len(stop_names)}) 与巡查点个数 ({len(route.stops)}) 不一致"
            raise RoutingError(msg)
        return f"{rank}. {stop_names[idx]}"
    return f"{rank}. 巡查点 {idx + 1}"


def route_to_gpx(route: Route, *, name: str, stop_names: Sequence[str] | None = None) -> str:
    """Return the route as GPX 1.1: numbered ``<wpt>`` per stop and a ``<trk>`` of the legs.

    Parameters
    ----------
    route : Route
    name : str
        Track name shown in the navigation app.
    stop_names : sequence of str, optional
        One per stop as given to ``plan_route`` (indexed like ``route.stops``).
    """
    ET.register_namespace("", _GPX_NS)
    gpx = ET.Element(f"{{{_GPX_NS}}}gpx", {"version": "1.1", "creator": "SaniGrid 创卫网格"})
    meta = ET.SubElement(gpx, f"{{{_GPX_NS}}}metadata")
    ET.SubElement(meta, f"{{{_GPX_NS}}}name").text = xml_text(name)
    if route.start is not None:
        w = ET.SubElement(
            gpx,
            f"{{{_GPX_NS}}}wpt",
            {"lat": f"{route.start[1]:.7f}", "lon": f"{route.start[0]:.7f}"},
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = "0. 起点"
    for rank, idx in enumerate(route.order, start=1):
        lon, lat = route.stops[idx]
        w = ET.SubElement(gpx, f"{{{_GPX_NS}}}wpt", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = xml_text(
            _stop_label(route, rank, idx, stop_names)
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}desc").text = f"距道路 {route.snaps[idx].distance_m:.0f} 米"
    if route.end is not None:
        w = ET.SubElement(
            gpx, f"{{{_GPX_NS}}}wpt", {"lat": f"{route.end[1]:.7f}", "lon": f"{route.end[0]:.7f}"}
        )
        ET.SubElement(w, f"{{{_GPX_NS}}}name").text = "终点"
    trk = ET.SubElement(gpx, f"{{{_GPX_NS}}}trk")
    ET.SubElement(trk, f"{{{_GPX_NS}}}name").text = xml_text(name)
    for leg in route.legs:
        seg = ET.SubElement(trk, f"{{{_GPX_NS}}}trkseg")
        for lon, lat in leg.coords:
            ET.SubElement(seg, f"{{{_GPX_NS}}}trkpt", {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
    ET.indent(gpx)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(gpx, encoding="unicode")


def route_to_kml(route: Route, *, name: str, stop_names: Sequence[str] | None = None) -> str:
    """Return the route as KML 2.2: a numbered Placemark per stop and one per leg.

    Parameters
    ----------
    route : Route
    name : str
        Document name.
    stop_names : sequence of str, optional
        One per stop as given to ``plan_route`` (indexed like ``route.stops``).
    """
    ET.register_namespace("", _KML_NS)
    kml = ET.Element(f"{{{_KML_NS}}}kml")
    doc = ET.SubElement(kml, f"{{{_KML_NS}}}Document")
    ET.SubElement(doc, f"{{{_KML_NS}}}name").text = xml_text(name)
    ET.SubElement(doc, f"{{{_KML_NS}}}description").text = (
        f"{len(route.order)} 个巡查点, 全长 {route.length_m / 1000:.2f} 公里, "
        f"约 {route.est_minutes:.0f} 分钟"
    )

    def point(label: str, lon: float, lat: float) -> None:
        pm = ET.SubElement(doc, f"{{{_KML_NS}}}Placemark")
        ET.SubElement(pm, f"{{{_KML_NS}}}name").text = xml_text(label)
        pt = ET.SubElement(pm, f"{{{_KML_NS}}}Point")
        ET.SubElement(pt, f"{{{_KML_NS}}}coordinates").text = f"{lon:.7f},{lat:.7f},0"

    if route.start is not None:
        point("0. 起点", *route.start)
    for rank, idx in enumerate(route.order, start=1):
        point(_stop_label(route, rank, idx, stop_names), *route.stops[idx])
    if route.end is not None:
        point("终点", *route.end)
    for k, leg in enumerate(route.legs, start=1):
        pm = ET.SubElement(doc, f"{{{_KML_NS}}}Placemark")
        ET.SubElement(pm, f"{{{_KML_NS}}}name").text = f"第 {k} 段"
        ls = ET.SubElement(pm, f"{{{_KML_NS}}}LineString")
        ET.SubElement(ls, f"{{{_KML_NS}}}tessellate").text = "1"
        ET.SubElement(ls, f"{{{_KML_NS}}}coordinates").text = " ".join(
            f"{lon:.7f},{lat:.7f},0" for lon, lat in leg.coords
        )
    ET.indent(kml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(kml, encoding="unicode")


__all__ = [
    "SNAP_WARN_M",
    "RoadGraph",
    "Route",
    "Snap",
    "build_road_graph",
    "distance_matrix",
    "plan_route",
    "route_to_gpx",
    "route_to_kml",
    "snap_points",
    "solve_tour",
    "split_route",
]
