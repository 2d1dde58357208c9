"""The road graph: node a road layer in the local UTM zone and keep its connected core.

``build_road_graph`` splits the road lines where they meet or cross, merges noding
stubs, honours ``oneway`` for driving and keeps the largest (strongly) connected part;
the ``RoadGraph`` it returns carries the edges, an STRtree for snapping and plain
adjacency lists for the searches.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import LineString

from gis.crs import WGS84, transformer, utm_crs_for
from gis.errors import RoutingError

Mode = Literal["walk", "drive"]

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
# Road pieces shorter than this are noding artefacts; their two ends become one node.
_MERGE_M = 0.5


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
