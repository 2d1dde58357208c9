"""Group cells that no community covers into provisional zones (片区).

Most county seats have no community (社区) polygons in OpenStreetMap, and many offices
have them only on paper. The 15-digit cell code still needs a community slot, and a
community holds at most 999 cells, so the cells no community covers are grouped into
provisional zones that take the community's three digits until real communities are
imported and the grid is rebuilt.

Rule (per sub-district): the part of the sub-district no community covers is cut into
blocks by the major roads (OSM trunk/primary/secondary/tertiary, or the widest classes
present) and by water lines and water outlines; every cell joins the block holding its
representative point; blocks under ``min_cells`` cells are merged into the neighbouring
block they share the longest border with; a block over ``max_cells`` cells is split by
straight cuts across its long axis into near-equal parts, each well under the limit.

Everything here works on metric (UTM) geometries and plain arrays; it never imports
Flask or the database.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

# The coding limit: a community slot numbers at most 999 serials.
MAX_ZONE_CELLS = 999
# A split aims at parts of at most this share of the limit, so that no part is at it.
SPLIT_SHARE = 0.8
DEFAULT_MIN_ZONE_CELLS = 40

# OSM highway classes from the widest down; links count as their road.
ROAD_RANK = (
    ("motorway", "motorway_link"),
    ("trunk", "trunk_link"),
    ("primary", "primary_link"),
    ("secondary", "secondary_link"),
    ("tertiary", "tertiary_link"),
    ("unclassified",),
    ("residential", "living_street"),
)
MAJOR_CLASSES = frozenset(c for rank in ROAD_RANK[:5] for c in rank)


def major_road_lines(
    roads: gpd.GeoDataFrame | None, *, highway_column: str = "highway"
) -> np.ndarray:
    """Return the line parts of the roads that bound zones, in the layer's CRS.

    Parameters
    ----------
    roads : GeoDataFrame or None
        Road centre lines.
    highway_column : str
        The OSM road class column. Motorway to tertiary (with links) are major; when the
        layer has none of them, the two widest classes present are used; without the
        column, every road counts.

    Returns
    -------
    ndarray of LineString
    """
    if roads is None or len(roads) == 0:
        return np.array([], dtype=object)
    gdf = roads[roads.geometry.notna() & ~roads.geometry.is_empty]
    if highway_column in gdf.columns:
        hw = gdf[highway_column].astype("string").fillna("")
        mask = hw.isin(MAJOR_CLASSES).to_numpy()
        if not mask.any():
            present = [rank for rank in ROAD_RANK if hw.isin(rank).any()][:2]
            wanted = {c for rank in present for c in rank}
            mask = hw.isin(wanted).to_numpy()
        gdf = gdf[mask]
    return _lines(gdf.geometry.to_numpy())


def water_lines(water: gpd.GeoDataFrame | None) -> np.ndarray:
    """Return river lines and the outlines of water polygons as line parts."""
    if water is None or len(water) == 0:
        return np.array([], dtype=object)
    return _lines(water.geometry.to_numpy())


def _lines(geoms: np.ndarray) -> np.ndarray:
    out = []
    for g in shapely.get_parts(geoms[shapely.is_valid_input(geoms)]):
        if g is None or g.is_empty:
            continue
        if g.geom_type in ("LineString", "LinearRing"):
            out.append(g)
        elif g.geom_type == "Polygon":
            out.extend(shapely.get_parts(g.boundary))
    return np.array(out, dtype=object)


def cell_adjacency(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return pairs ``(i, j)`` (i < j) of cells sharing a border and its length in metres.

    Parameters
    ----------
    geoms : ndarray of Polygon
        Metric cell polygons of one coverage.
    """
    if len(geoms) < 2:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype=float)
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    shared = shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
    length = shapely.length(shared)
    keep = length > 0.01
    return i[keep], j[keep], length[keep]


def absorb_small_groups(
    labels: np.ndarray,
    adjacency: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    min_cells: int,
    movable: np.ndarray | None = None,
) -> np.ndarray:
    """Merge groups under ``min_cells`` cells into the neighbour with the longest border.

    Parameters
    ----------
    labels : ndarray of int
        A group label per cell; ``-1`` marks cells that belong to no group (they are
        neither merged nor merged into).
    adjacency : tuple
        ``cell_adjacency`` output.
    min_cells : int
        Groups with fewer cells are merged while they have a neighbour.
    movable : ndarray of bool, optional
        Per group label: only these groups may be merged away (default: all). A group
        that is not movable can still receive merged groups.

    Returns
    -------
    ndarray of int
        New labels (a merged group takes its neighbour's label).
    """
    labels = labels.copy()
    i, j, length = adjacency
    while True:
        valid = (labels >= 0)
        ids, counts = np.unique(labels[valid], return_counts=True)
        size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        small = [
            g for g in ids.tolist()
            if size[g] < min_cells and (movable is None or bool(movable[g]))
        ]
        if not small:
            return labels
        la, lb = labels[i], labels[j]
        cross = (la != lb) & (la >= 0) & (lb >= 0)
        border: dict[tuple[int, int], float] = {}
        for a, b, ln in zip(la[cross].tolist(), lb[cross].tolist(), length[cross].tolist(),
                            strict=True):
            border[(a, b)] = border.get((a, b), 0.0) + ln
            border[(b, a)] = border.get((b, a), 0.0) + ln
        merged = False
        # Smallest first, so slivers settle before the groups they would enlarge.
        for g in sorted(small, key=lambda g: (size[g], g)):
            best, best_len = -1, 0.0
            for (a, b), ln in border.items():
                if a == g and (ln > best_len or (ln == best_len and b < best)):
                    best, best_len = b, ln
            if best >= 0:
                labels[labels == g] = best
                merged = True
                break  # borders changed: recount
        if not merged:
            return labels


def split_points(x: np.ndarray, y: np.ndarray, *, max_cells: int) -> np.ndarray:
    """Split points into near-equal parts of at most ``SPLIT_SHARE * max_cells`` each.

    Recursive halving across the long axis of the points' spread (x or y), cutting at
    the count that gives the two sides the ratio ``floor(k/2) : ceil(k/2)`` of parts.

    Returns
    -------
    ndarray of int
        A part number (0, 1, ...) per point.
    """
    n = len(x)
    cap = max(1, int(max_cells * SPLIT_SHARE))
    parts = -(-n // cap)
    out = np.zeros(n, dtype=np.int64)
    if parts <= 1:
        return out
    counter = [0]

    def halve(members: np.ndarray, k: int) -> None:
        if k <= 1:
            out[members] = counter[0]
            counter[0] += 1
            return
        xs, ys = x[members], y[members]
        axis = xs if np.ptp(xs) >= np.ptp(ys) else -ys  # west→east, or north→south
        order = members[np.lexsort((ys, axis))]
        first = k // 2
        cut = int(round(len(members) * first / k))
        halve(order[:cut], first)
        halve(order[cut:], k - first)

    halve(np.arange(n), parts)
    return out


def build_zones(
    cells: np.ndarray,
    *,
    lines: np.ndarray,
    min_cells: int = DEFAULT_MIN_ZONE_CELLS,
    max_cells: int = MAX_ZONE_CELLS,
    adjacency: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Group the cells of one uncovered area into zones cut along roads and water.

    Parameters
    ----------
    cells : ndarray of Polygon
        Metric cell polygons of the area (one sub-district's cells no community covers).
    lines : ndarray of LineString
        Metric major road centre lines and water lines/outlines.
    min_cells : int
        Blocks with fewer cells are merged into a neighbour (when one exists).
    max_cells : int
        The coding limit; a block over ``SPLIT_SHARE * max_cells`` cells is split.
    adjacency : tuple, optional
        ``cell_adjacency(cells)`` when the caller has it already.

    Returns
    -------
    ndarray of int
        A zone number per cell, 0 … k-1, numbered north→south by rows, west→east.
    """
    n = len(cells)
    if n == 0:
        return np.array([], dtype=np.int64)
    reps = shapely.point_on_surface(cells)
    region = shapely.union_all(cells, grid_size=0.001)
    block = np.zeros(n, dtype=np.int64)
    if len(lines):
        shapely.prepare(region)
        cut = lines[shapely.intersects(region, lines)]
        if len(cut):
            net = shapely.union_all(
                np.concatenate([shapely.intersection(cut, region),
                                np.array(list(shapely.get_parts(region.boundary)), dtype=object)]),
                grid_size=0.001,
            )
            faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(net)))
            faces = faces[shapely.area(faces) > 0]
            if len(faces):
                tree = shapely.STRtree(faces)
                pi, fi = tree.query(reps, predicate="within")
                block[:] = -1
                block[pi] = fi
                # A cell whose point sits on a cut line: the face it overlaps most.
                lost = np.flatnonzero(block < 0)
                if len(lost):
                    ci, fj = tree.query(cells[lost], predicate="intersects")
                    area = shapely.area(shapely.intersection(cells[lost][ci], faces[fj]))
                    best: dict[int, tuple[float, int]] = {}
                    for c, f, a in zip(ci.tolist(), fj.tolist(), area.tolist(), strict=True):
                        if a > best.get(c, (-1.0, -1))[0]:
                            best[c] = (a, f)
                    for c, (_, f) in best.items():
                        block[lost[c]] = f
                block[block < 0] = len(faces)  # nothing overlaps: one group of its own
    block = _relabel(block)
    adj = adjacency if adjacency is not None else cell_adjacency(cells)
    block = _relabel(absorb_small_groups(block, adj, min_cells=min_cells))
    block = _relabel(_absorb_isolated(block, cells, min_cells=min_cells))
    x, y = shapely.get_x(reps), shapely.get_y(reps)
    zone = np.zeros(n, dtype=np.int64)
    next_id = 0
    for b in range(int(block.max()) + 1):
        members = np.flatnonzero(block == b)
        parts = split_points(x[members], y[members], max_cells=max_cells)
        zone[members] = parts + next_id
        next_id += int(parts.max()) + 1
    return _order_zones(zone, x, y)


def _absorb_isolated(labels: np.ndarray, cells: np.ndarray, *, min_cells: int) -> np.ndarray:
    """Merge small groups that touch no other group (an island of the area) into the nearest."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) < 2:
            return labels
        small = ids[counts < min_cells]
        if not len(small):
            return labels
        g = int(small[np.argmin(counts[counts < min_cells])])
        shapes = [shapely.union_all(cells[labels == k]) for k in ids.tolist()]
        me = shapes[ids.tolist().index(g)]
        dist = [shapely.distance(me, sh) if k != g else np.inf
                for k, sh in zip(ids.tolist(), shapes, strict=True)]
        labels[labels == g] = int(ids[int(np.argmin(dist))])


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.ravel().astype(np.int64)


def _order_zones(zone: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Renumber zones by their mean point: north→south in 500 m rows, then west→east."""
    ids = np.unique(zone)
    cx = np.array([x[zone == z].mean() for z in ids])
    cy = np.array([y[zone == z].mean() for z in ids])
    row = np.floor((cy.max() - cy) / 500.0)
    order = np.lexsort((cx, row))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    lookup = dict(zip(ids.tolist(), rank.tolist(), strict=True))
    return np.array([lookup[z] for z in zone.tolist()], dtype=np.int64)


def zone_name(subdistrict_name: str, number: int) -> str:
    """The display name of a provisional zone, e.g. "东门街道 第3片区"."""
    return f"{subdistrict_name} 第{number}片区"
