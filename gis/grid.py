"""Build responsibility grids (责任网格) over a boundary: squares, H3 hexagons, street blocks.

Every builder takes and returns EPSG:4326 and works in the boundary's local UTM zone.
The result always covers the boundary with no gaps and no overlaps: cells are clipped
to the boundary and tiny clipped slivers are merged into the neighbour they share the
longest border with.

The street-block builder follows the Chinese 万米单元网格 practice (DB11/T 2157):
the road network, river outlines and community boundaries are noded and polygonized,
slivers are merged within a community (never across a primary/secondary/tertiary
road), and oversized blocks are split by straight cuts into parts near the target area.
"""

from __future__ import annotations

import heapq

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from gis.crs import WGS84, utm_crs_for_geom
from gis.errors import GridBuildError

# Snapping grid for noding (metres): fine enough that the coverage error stays far
# below the 1 m² tolerance of check_grid, coarse enough to fuse near-identical vertices.
GRID_SIZE_M = 0.001

# OSM highway classes whose carriageway must never run through a cell's interior.
HARD_HIGHWAYS = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
    }
)
# Paths that do not bound a street block (people walk through blocks on them).
IGNORED_HIGHWAYS = frozenset({"footway", "path", "steps", "cycleway", "bridleway", "corridor"})


# --------------------------------------------------------------------------- helpers
def _prepare_boundary(boundary: BaseGeometry) -> tuple[BaseGeometry, CRS]:
    """Validate a WGS-84 boundary and return it projected to UTM with that CRS."""
    if boundary is None or boundary.is_empty:
        msg = "边界为空, 无法生成网格"
        raise GridBuildError(msg)
    if not isinstance(boundary, BaseGeometry):
        msg = f"边界不是几何对象: {type(boundary).__name__}"
        raise GridBuildError(msg)
    minx, miny, maxx, maxy = boundary.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        msg = f"边界坐标不是经纬度 (EPSG:4326): 范围 {boundary.bounds}"
        raise GridBuildError(msg)
    geom = shapely.make_valid(boundary)
    geom = _polygonal(geom)
    if geom.is_empty or geom.area == 0:
        msg = "边界不含面状几何 (Polygon/MultiPolygon), 无法生成网格"
        raise GridBuildError(msg)
    crs = utm_crs_for_geom(geom)
    utm = gpd.GeoSeries([geom], crs=WGS84).to_crs(crs).iloc[0]
    utm = shapely.set_precision(shapely.make_valid(utm), GRID_SIZE_M)
    return _polygonal(utm), crs


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygonal parts of a geometry (make_valid may add lines/points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def _project_layer(gdf: gpd.GeoDataFrame | None, crs: CRS, name: str) -> gpd.GeoDataFrame | None:
    if gdf is None or len(gdf) == 0:
        return None
    if gdf.crs is None:
        msg = f"图层 {name} 没有坐标参考系 (CRS)"
        raise GridBuildError(msg)
    out = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(crs)
    return out


def _to_cells(
    geoms: list[BaseGeometry] | np.ndarray, crs: CRS, columns: dict | None = None
) -> gpd.GeoDataFrame:
    """Return metric cell polygons as a WGS-84 GeoDataFrame, west→east, north→south."""
    data = dict(columns or {})
    gdf = gpd.GeoDataFrame(data, geometry=list(geoms), crs=crs)
    pts = gdf.geometry.representative_point()
    # A stable, readable order: by 100 m rows from the north, then west→east.
    order = np.lexsort((pts.x.to_numpy(), -np.floor(pts.y.to_numpy() / 100.0)))
    gdf = gdf.iloc[order].reset_index(drop=True)
    gdf = gdf.to_crs(WGS84)
    return gdf


def _merge_small(
    geoms: np.ndarray,
    *,
    min_area: float,
    group: np.ndarray | None = None,
    hard: BaseGeometry | None = None,
    hard_tolerance_m: float = 0.5,
) -> list[list[int]]:
    """Merge polygons under ``min_area`` into the neighbour sharing the longest border.

    Parameters
    ----------
    geoms : ndarray of Polygon
        A metric coverage (edge-matched, no overlaps).
    min_area : float
        Polygons below this area (m²) are merged while an eligible neighbour exists.
    group : ndarray, optional
        Merge only polygons with equal group labels (e.g. the same community).
    hard : geometry, optional
        Lines that must not end up inside a merged polygon (major roads, river banks):
        a border is eligible only if less than ``hard_tolerance_m`` of it lies on them.

    Returns
    -------
    list of list of int
        Index groups; each group becomes one cell.
    """
    n = len(geoms)
    if n == 0:
        return []
    area = shapely.area(geoms).astype(float)
    tree = shapely.STRtree(geoms)
    small = np.flatnonzero(area < min_area)
    if len(small) == 0:
        return [[k] for k in range(n)]
    # Adjacency for every polygon: a small one may merge into a large one, and merged
    # groups inherit their members' borders, so all pairs are needed.
    i, j = tree.query(geoms, predicate="intersects")
    mask = i < j
    i, j = i[mask], j[mask]
    if group is not None:
        mask = group[i] == group[j]
        i, j = i[mask], j[mask]
    shared = shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
    length = shapely.length(shared)
    keep = length > 1e-6
    i, j, shared, length = i[keep], j[keep], shared[keep], length[keep]
    if hard is not None and not hard.is_empty and len(shared):
        hard_zone = hard.buffer(0.01)
        shapely.prepare(hard_zone)
        candidate = shapely.intersects(hard_zone, shared)
        hard_len = np.zeros(len(shared))
        if candidate.any():
            hard_len[candidate] = shapely.length(shapely.intersection(shared[candidate], hard_zone))
    else:
        hard_len = np.zeros(len(shared))

    adj: list[dict[int, list[float]]] = [dict() for _ in range(n)]
    for a, b, ln, hl in zip(
        i.tolist(), j.tolist(), length.tolist(), hard_len.tolist(), strict=True
    ):
        adj[a][b] = [ln, hl]
        adj[b][a] = [ln, hl]

    members: dict[int, list[int]] = {k: [k] for k in range(n)}
    heap = [(area[k], k) for k in small.tolist()]
    heapq.heapify(heap)
    while heap:
        a_k, k = heapq.heappop(heap)
        if k not in members or a_k != area[k] or a_k >= min_area:
            continue
        best, best_len = -1, -1.0
        for nb, (ln, hl) in adj[k].items():
            # Longest free border wins; ties go to the lower index so runs are repeatable.
            if hl < hard_tolerance_m and (ln > best_len or (ln == best_len and nb < best)):
                best, best_len = nb, ln
        if best < 0:
            continue  # every neighbour is across a hard line or another community
        members[best].extend(members.pop(k))
        area[best] += area[k]
        for nb, (ln, hl) in adj[k].items():
            if nb == best:
                continue
            entry = adj[best].get(nb)
            if entry is None:
                adj[best][nb] = [ln, hl]
                adj[nb][best] = adj[best][nb]
            else:
                entry[0] += ln
                entry[1] += hl
                if adj[nb][best] is not entry:
                    adj[nb][best] = entry
            del adj[nb][k]
        adj[best].pop(k, None)
        adj[k] = {}
        if area[best] < min_area:
            heapq.heappush(heap, (area[best], best))
    return [sorted(m) for m in members.values()]


def _union_groups(geoms: np.ndarray, groups: list[list[int]]) -> list[BaseGeometry]:
    out = []
    for g in groups:
        if len(g) == 1:
            out.append(geoms[g[0]])
            continue
        try:
            merged = shapely.coverage_union_all(geoms[g])
        except shapely.errors.GEOSException:
            merged = shapely.union_all(geoms[g])
        if not merged.is_valid:
            merged = shapely.union_all(geoms[g], grid_size=GRID_SIZE_M)
        out.append(_single_polygon(merged))
    return out


def _single_polygon(geom: BaseGeometry) -> BaseGeometry:
    """Prefer a Polygon: drop zero-area debris left by overlay noding."""
    geom = _polygonal(geom)
    if geom.geom_type == "MultiPolygon":
        parts = [p for p in geom.geoms if p.area > 1e-6]
        if len(parts) == 1:
            return parts[0]
        return shapely.MultiPolygon(parts)
    return geom


def _clip_explode(geoms: np.ndarray, boundary: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Clip polygons to the boundary and explode multipart pieces; return pieces, source."""
    shapely.prepare(boundary)
    inside = shapely.contains_properly(boundary, geoms)
    clipped = geoms.copy()
    edge = ~inside
    if edge.any():
        clipped[edge] = shapely.intersection(geoms[edge], boundary, grid_size=GRID_SIZE_M)
    parts, src = shapely.get_parts(clipped, return_index=True)
    polys = np.array([p.geom_type == "Polygon" for p in parts], dtype=bool)
    parts, src = parts[polys], src[polys]
    ok = shapely.area(parts) > 0
    return parts[ok], src[ok]


# --------------------------------------------------------------------------- square
def build_square_grid(
    boundary: BaseGeometry, *, size_m: float = 100.0, min_fraction: float = 0.1
) -> gpd.GeoDataFrame:
    """Build regular squares in the local UTM zone, clipped to the boundary.

    Parameters
    ----------
    boundary : Polygon or MultiPolygon
        The county seat in EPSG:4326.
    size_m : float
        Side of a square in metres. Squares are aligned to multiples of ``size_m`` in
        UTM so the same boundary always gives the same lattice.
    min_fraction : float
        Clipped pieces smaller than this fraction of a full square are merged into the
        neighbouring piece they share the longest border with.

    Returns
    -------
    GeoDataFrame
        EPSG:4326 cells with ``row`` and ``col`` (lattice indices of the square that
        holds the cell's representative point; row 0 is the southernmost lattice row).
    """
    if not np.isfinite(size_m) or size_m <= 0:
        msg = f"网格边长必须为正数 (米): {size_m}"
        raise GridBuildError(msg)
    geom, crs = _prepare_boundary(boundary)
    minx, miny, maxx, maxy = geom.bounds
    x0 = np.floor(minx / size_m) * size_m
    y0 = np.floor(miny / size_m) * size_m
    nx = int(np.ceil((maxx - x0) / size_m))
    ny = int(np.ceil((maxy - y0) / size_m))
    if nx * ny > 2_000_000:
        msg = f"网格过多: {nx}×{ny} 个 {size_m} 米方格, 请加大边长"
        raise GridBuildError(msg)
    cols, rows = np.meshgrid(np.arange(nx), np.arange(ny))
    cols, rows = cols.ravel(), rows.ravel()
    xs = x0 + cols * size_m
    ys = y0 + rows * size_m
    boxes = shapely.box(xs, ys, xs + size_m, ys + size_m)
    pieces, src = _clip_explode(boxes, geom)
    groups = _merge_small(pieces, min_area=min_fraction * size_m * size_m)
    cells = _union_groups(pieces, groups)
    # Label each cell with the lattice square of its largest piece.
    areas = shapely.area(pieces)
    lead = [g[int(np.argmax(areas[g]))] for g in groups]
    return _to_cells(cells, crs, {"row": rows[src[lead]], "col": cols[src[lead]]})


# --------------------------------------------------------------------------- h3
def build_h3_grid(
    boundary: BaseGeometry, *, resolution: int = 10, min_fraction: float = 0.1
) -> gpd.GeoDataFrame:
    """Build H3 hexagons (h3 v4) clipped to the boundary, keeping the ``h3`` index.

    Parameters
    ----------
    boundary : Polygon or MultiPolygon
        The county seat in EPSG:4326.
    resolution : int
        H3 resolution (10 ≈ 15,000 m² per hexagon, 9 ≈ 105,000 m²).
    min_fraction : float
        Clipped pieces smaller than this fraction of a hexagon are merged into a
        neighbour; the merged cell keeps the ``h3`` index of its largest piece.
    """
    import h3

    if not isinstance(resolution, (int, np.integer)) or not 0 <= resolution <= 15:
        msg = f"H3 分辨率必须是 0–15 的整数: {resolution!r}"
        raise GridBuildError(msg)
    geom, crs = _prepare_boundary(boundary)
    wgs = gpd.GeoSeries([geom], crs=crs).to_crs(WGS84).iloc[0]
    ids: set[str] = set()
    for poly in shapely.get_parts(wgs):
        shape = h3.geo_to_h3shape(poly)
        try:
            ids.update(h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap"))
        except (AttributeError, TypeError):  # older h3 4.x: pad by one ring instead
            for c in h3.h3shape_to_cells(shape, resolution):
                ids.update(h3.grid_disk(c, 1))
    if not ids:
        msg = f"边界内没有 H3 分辨率 {resolution} 的六边形"
        raise GridBuildError(msg)
    ids_sorted = sorted(ids)
    hexes = [
        shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in ids_sorted
    ]
    hex_utm = gpd.GeoSeries(hexes, crs=WGS84).to_crs(crs).to_numpy()
    pieces, src = _clip_explode(hex_utm, geom)
    full = float(np.median(shapely.area(hex_utm)))
    groups = _merge_small(pieces, min_area=min_fraction * full)
    cells = _union_groups(pieces, groups)
    areas = shapely.area(pieces)
    lead = [g[int(np.argmax(areas[g]))] for g in groups]
    return _to_cells(cells, crs, {"h3": [ids_sorted[src[k]] for k in lead]})


# --------------------------------------------------------------------------- blocks
def _line_parts(gdf: gpd.GeoDataFrame | None) -> np.ndarray:
    """Return the linework of a layer: lines as they are, polygons as their outlines."""
    if gdf is None or len(gdf) == 0:
        return np.array([], dtype=object)
    geoms = shapely.get_parts(gdf.geometry.to_numpy())
    lines = []
    for g in geoms:
        if g.geom_type in ("LineString", "LinearRing"):
            lines.append(g)
        elif g.geom_type == "Polygon":
            lines.extend(shapely.get_parts(g.boundary))
    return np.array(lines, dtype=object)


def _extend_dangles(
    edges: np.ndarray,
    *,
    hard_zone: BaseGeometry | None,
    snap_m: float,
    reach_m: float,
) -> list[BaseGeometry]:
    """Return short segments that carry dangling road ends onto the next line.

    ``edges`` is the noded network (every line split at every crossing), so a dangle
    is an edge end no other edge shares; duplicated input lines are already fused.
    Real road data rarely meets exactly: an end that stops ``snap_m`` short of a
    crossing road leaves a block open. Ends of major roads (inside ``hard_zone``) are
    carried up to ``reach_m`` so that a dead-end main road still cuts its block
    instead of running through a cell's interior.
    """
    if len(edges) == 0:
        return []
    coords = [shapely.get_coordinates(e) for e in edges]
    ends = np.array([c[0] for c in coords] + [c[-1] for c in coords])
    key = np.round(ends / GRID_SIZE_M).astype(np.int64)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    degree = counts[inverse.ravel()]
    tree = shapely.STRtree(edges)
    n = len(edges)
    extra: list[BaseGeometry] = []
    for k in np.flatnonzero(degree == 1).tolist():
        e, first = (k, True) if k < n else (k - n, False)
        c = coords[e]
        if len(c) < 2:
            continue
        p, q = (c[0], c[1]) if first else (c[-1], c[-2])
        d = p - q
        norm = float(np.hypot(*d))
        if norm == 0:
            continue
        d = d / norm
        is_hard = hard_zone is not None and hard_zone.intersects(
            shapely.LineString([p, p - d * min(norm, 1.0)])
        )
        reach = reach_m if is_hard else snap_m
        ray = shapely.LineString([p + d * 1e-4, p + d * reach])
        hits = tree.query(ray, predicate="intersects")
        hits = hits[hits != e]
        pts_hit = (
            shapely.get_coordinates(shapely.intersection(edges[hits], ray))
            if len(hits)
            else np.empty((0, 2))
        )
        if len(pts_hit):
            dist = np.hypot(pts_hit[:, 0] - p[0], pts_hit[:, 1] - p[1])
            extra.append(shapely.LineString([p, pts_hit[int(np.argmin(dist))]]))
        elif is_hard:
            # Pointing at open ground: join the nearest line the road does not touch,
            # so the main road still ends on a block border.
            tip = shapely.Point(p)
            near = tree.query(tip, predicate="dwithin", distance=reach_m)
            near = near[~shapely.intersects(edges[near], edges[e])]
            if len(near):
                dist = shapely.distance(edges[near], tip)
                target = edges[near[int(np.argmin(dist))]]
                extra.append(shapely.shortest_line(tip, target))
    return extra


def _split_polygon(poly: BaseGeometry, parts: int) -> list[BaseGeometry]:
    """Split a polygon into ``parts`` pieces of near-equal area by straight cuts.

    Recursive halving: cut across the long axis of the minimum rotated rectangle at
    the position (found by bisection) that gives the two sides areas in the ratio
    ``floor(parts/2) : ceil(parts/2)``.
    """
    if parts <= 1 or poly.area == 0:
        return [poly]
    first = parts // 2
    want = poly.area * first / parts
    rect = shapely.oriented_envelope(poly)
    c = shapely.get_coordinates(rect)[:4]
    e1, e2 = c[1] - c[0], c[2] - c[1]
    axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    length = float(np.hypot(*axis))
    if length == 0:
        return [poly]
    axis = axis / length
    perp = np.array([-axis[1], axis[0]])
    coords = shapely.get_coordinates(poly)
    t = coords @ axis
    s = coords @ perp
    t_lo, t_hi = float(t.min()), float(t.max())
    s_lo, s_hi = float(s.min()) - 1.0, float(s.max()) + 1.0

    def half(cut: float) -> BaseGeometry:
        quad = np.array(
            [
                axis * (t_lo - 1.0) + perp * s_lo,
                axis * cut + perp * s_lo,
                axis * cut + perp * s_hi,
                axis * (t_lo - 1.0) + perp * s_hi,
            ]
        )
        return shapely.Polygon(quad)

    lo, hi = t_lo, t_hi
    for _ in range(40):
        mid = (lo + hi) / 2
        if shapely.intersection(poly, half(mid)).area < want:
            lo = mid
        else:
            hi = mid
        if hi - lo < 0.01:
            break
    blade = half((lo + hi) / 2)
    left = shapely.intersection(poly, blade, grid_size=GRID_SIZE_M)
    right = shapely.difference(poly, blade, grid_size=GRID_SIZE_M)
    return _split_polygon(_polygonal(left), first) + _split_polygon(
        _polygonal(right), parts - first
    )


def build_block_grid(
    boundary: BaseGeometry,
    *,
    roads: gpd.GeoDataFrame,
    barriers: gpd.GeoDataFrame | None = None,
    communities: gpd.GeoDataFrame | None = None,
    target_area_m2: float = 10_000,
    min_area_m2: float | None = None,
    max_area_m2: float | None = None,
    highway_column: str = "highway",
    snap_m: float = 5.0,
    reach_m: float = 1000.0,
) -> gpd.GeoDataFrame:
    """Build street-block cells (万米单元网格) from roads, rivers and communities.

    Parameters
    ----------
    boundary : Polygon or MultiPolygon
        The area to cover, EPSG:4326.
    roads : GeoDataFrame
        Road centre lines. The ``highway_column`` (OSM ``highway``) tells major roads
        (primary/secondary/tertiary, also motorway/trunk and links) that no cell may
        straddle; without that column every road is treated as major. Footways and
        paths are ignored.
    barriers : GeoDataFrame, optional
        Rivers, lakes, railways. Polygon outlines and lines become hard cell borders;
        water inside barrier polygons becomes cells of its own (``kind == "water"``).
    communities : GeoDataFrame, optional
        Community (社区) polygons; no cell crosses their boundaries. Their ``code``
        (when present) is copied to the cell as ``community``.
    target_area_m2 : float
        The area a cell should have (万米 = 10,000 m²).
    min_area_m2 : float, optional
        Blocks under this area are merged (default ``target_area_m2 / 4``).
    max_area_m2 : float, optional
        Blocks over this area are split (default ``target_area_m2 * 2.5``).
    highway_column : str
        Column naming the road class.
    snap_m : float
        Dangling road ends are extended this far to meet a road they just miss.
    reach_m : float
        Dangling ends of major roads are extended up to this far, so a dead-end main
        road cuts its block instead of running through a cell.

    Returns
    -------
    GeoDataFrame
        EPSG:4326 cells with ``kind`` ("block" or "water") and ``community``.

    Notes
    -----
    Algorithm: (1) project to UTM; (2) clip roads, barrier and community outlines to the
    boundary, extend dangles, node everything with ``union_all`` on a 1 mm grid and
    polygonize; (3) merge faces under ``min_area_m2`` into the same-community,
    same-kind neighbour with the longest border that does not run along a major road
    or barrier (faces with no such neighbour stay as they are: a traffic island between
    two main roads is its own cell); (4) split faces over ``max_area_m2`` into
    ``round(area / target)`` parts by recursive halving along the long axis, merging
    any small cut pieces back within the same block.
    """
    if target_area_m2 <= 0:
        msg = f"目标面积必须为正数: {target_area_m2}"
        raise GridBuildError(msg)
    min_area = target_area_m2 / 4 if min_area_m2 is None else float(min_area_m2)
    max_area = target_area_m2 * 2.5 if max_area_m2 is None else float(max_area_m2)
    if max_area <= min_area:
        msg = f"最大面积 {max_area} 必须大于最小面积 {min_area}"
        raise GridBuildError(msg)
    if roads is None:
        msg = "生成街区网格需要道路图层 (roads)"
        raise GridBuildError(msg)
    geom, crs = _prepare_boundary(boundary)
    clip_zone = geom.buffer(reach_m + snap_m)

    roads_m = _project_layer(roads, crs, "roads")
    road_lines = np.array([], dtype=object)
    road_hard = np.array([], dtype=bool)
    if roads_m is not None:
        if highway_column in roads_m.columns:
            hw = roads_m[highway_column].astype("string").fillna("")
            roads_m = roads_m[~hw.isin(IGNORED_HIGHWAYS)]
            is_hard = roads_m[highway_column].astype("string").fillna("").isin(HARD_HIGHWAYS)
        else:
            is_hard = np.ones(len(roads_m), dtype=bool)
        parts, idx = shapely.get_parts(roads_m.geometry.to_numpy(), return_index=True)
        keep = np.array([p.geom_type == "LineString" for p in parts], dtype=bool)
        keep &= shapely.intersects(clip_zone, parts)
        road_lines = parts[keep]
        road_hard = np.asarray(is_hard)[idx[keep]]

    barriers_m = _project_layer(barriers, crs, "barriers")
    barrier_lines = _line_parts(barriers_m)
    water = None
    if barriers_m is not None:
        polys = [g for g in shapely.get_parts(barriers_m.geometry.to_numpy()) if g.area > 0]
        if polys:
            water = shapely.intersection(shapely.union_all(polys), geom)
    communities_m = _project_layer(communities, crs, "communities")
    community_lines = _line_parts(communities_m)

    boundary_lines = np.array(list(shapely.get_parts(geom.boundary)), dtype=object)
    network = np.concatenate([road_lines, barrier_lines, community_lines, boundary_lines])
    network = shapely.intersection(network, clip_zone)
    hard_parts = list(road_lines[road_hard]) + list(barrier_lines)
    hard = shapely.intersection(shapely.union_all(hard_parts), clip_zone) if hard_parts else None
    hard_zone = None
    if hard is not None and not hard.is_empty:
        hard_zone = hard.buffer(0.05)
        shapely.prepare(hard_zone)
    noded = shapely.union_all(network, grid_size=GRID_SIZE_M)
    edges = shapely.get_parts(noded)
    edges = edges[shapely.get_type_id(edges) == 1]
    extra = _extend_dangles(edges, hard_zone=hard_zone, snap_m=snap_m, reach_m=reach_m)
    if extra:
        extra_arr = shapely.intersection(np.array(extra, dtype=object), clip_zone)
        noded = shapely.union_all(np.concatenate([edges, extra_arr]), grid_size=GRID_SIZE_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if len(faces) == 0:
        msg = "道路与边界无法围成任何街区"
        raise GridBuildError(msg)
    shapely.prepare(geom)
    reps = shapely.point_on_surface(faces)
    faces = faces[shapely.contains(geom, reps) & (shapely.area(faces) > 0)]
    reps = shapely.point_on_surface(faces)

    # Group faces by community and kind so merges never cross either.
    group = np.full(len(faces), -1, dtype=np.int64)
    community_code = np.full(len(faces), None, dtype=object)
    if communities_m is not None:
        ctree = shapely.STRtree(communities_m.geometry.to_numpy())
        pi, ci = ctree.query(reps, predicate="within")
        group[pi] = ci
        if "code" in communities_m.columns:
            codes = communities_m["code"].astype(str).to_numpy()
            community_code[pi] = codes[ci]
    is_water = np.zeros(len(faces), dtype=bool)
    if water is not None and not water.is_empty:
        shapely.prepare(water)
        is_water = shapely.contains(water, reps)
    group = group * 2 + is_water

    groups = _merge_small(faces, min_area=min_area, group=group, hard=hard)
    blocks = _union_groups(faces, groups)
    block_group = np.array([group[g[0]] for g in groups])
    block_water = np.array([bool(is_water[g[0]]) for g in groups])
    block_comm = [community_code[g[0]] for g in groups]

    cells: list[BaseGeometry] = []
    kinds: list[str] = []
    comms: list[object] = []
    for b, poly in enumerate(blocks):
        area = poly.area
        if area > max_area:
            n_parts = max(2, int(round(area / target_area_m2)))
            pieces = np.array(
                [
                    p
                    for part in _split_polygon(poly, n_parts)
                    for p in shapely.get_parts(part)
                    if p.geom_type == "Polygon" and p.area > 0
                ],
                dtype=object,
            )
            sub = _merge_small(pieces, min_area=min_area)
            new = _union_groups(pieces, sub)
        else:
            new = [poly]
        _ = block_group[b]
        for g in new:
            cells.append(g)
            kinds.append("water" if block_water[b] else "block")
            comms.append(block_comm[b])
    return _to_cells(cells, crs, {"kind": kinds, "community": comms})
