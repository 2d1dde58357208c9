"""The one point→cell locator: which grid cell does each (lon, lat) fall in?

Inspection imports place thousands of problems at once and the map colours cells by
counts, so locating must be fast. Two exact strategies share one idea: map lon/lat by
an affine frame onto a lookup raster whose pixels are either *pure* (certainly inside
one cell, or certainly outside every cell) or *ambiguous*; only points in ambiguous
pixels get an exact point-in-polygon test.

* Regular square grids (as made by ``build_square_grid``) are detected; a map P
  (affine plus one second-order term per axis, fitted to the squares' own vertices)
  takes lon/lat to lattice numbers, so that a table entry is one lattice square: the
  square's cell, OUTSIDE (no cell's image can reach it) or AMBIGUOUS. A point is decided
  by the table only when its image lies more than ``margin`` inside its square, where
  ``margin`` is the largest misfit of P at the vertices (computed exactly, with the
  query arithmetic) plus the largest bend P gives a straight lon/lat edge. Points are
  processed in cache-sized blocks; the rest (~10 % of a county seat's bounding box:
  squares clipped by the boundary, and the thin margin bands) go to the raster.
* Any other grid gets a raster of pixels about 1/64 of a typical cell: every pixel
  touched by a cell edge (with a safety margin) is ambiguous; each run of untouched
  pixels along a raster row lies wholly in one cell (no edge crosses it) and takes the
  answer of an exact test at its first pixel.

Correctness never rests on the fit: pure pixels are proven pure with exact geometry
in lon/lat, the space where the stored cells have straight edges, i.e. the same space
``geopandas.sjoin`` works in.

Points exactly on a lattice line fail the margin test and end in the exact test.

Rule for points on edges: a point on the closed boundary of several cells gets the
cell with the lowest positional index among the cells that *intersect* it (closure
contains it). For points not on an edge this is exactly
``geopandas.sjoin(points, cells, predicate="within")``; -1 means outside every cell.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import ArrayLike

from gis.crs import WGS84, utm_crs_for_geom
from gis.errors import GisError

OUTSIDE = -1
AMBIGUOUS = -2
# Slack for float rounding: evaluating the lattice map at a vertex and at a query point
# can differ by ~1e-10 of a square (values ~1e5 in float64); this keeps that far away.
_EPS = 1e-6
# Beyond this margin (share of a square) the lattice path is not worth it: the raster
# alone is used instead.
_MAX_MARGIN = 0.02
# Points are processed in blocks so that the dozen temporaries stay in the CPU cache;
# one pass over a million-point array per operation is what made numpy slow here.
_CHUNK = 1 << 15


def _fit_lattice_map(lon: np.ndarray, lat: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Fit the lattice map P and return its coefficients for ``_apply_lattice_map``.

    P is ``u = (c1 + c3 lat) lon + c2 lat + c0`` and ``v = (c5 + c7 lon) lon + c6 lat + c4``:
    affine plus one second-order term per axis. The fit is done on centred coordinates
    (well conditioned) and expanded afterwards, so queries need no centring pass.
    """
    lo0, la0 = float(np.mean(lon)), float(np.mean(lat))
    a, b = lon - lo0, lat - la0
    one = np.ones_like(a)
    p, *_ = np.linalg.lstsq(np.column_stack([one, a, b, a * b]), u, rcond=None)
    q, *_ = np.linalg.lstsq(np.column_stack([one, a, b, a * a]), v, rcond=None)
    # u = p0 + p1 a + p2 b + p3 a b   and   v = q0 + q1 a + q2 b + q3 a², expanded in lon/lat.
    return np.array(
        [
            p[0] - p[1] * lo0 - p[2] * la0 + p[3] * lo0 * la0,
            p[1] - p[3] * la0,
            p[2] - p[3] * lo0,
            p[3],
            q[0] - q[1] * lo0 - q[2] * la0 + q[3] * lo0 * lo0,
            q[1] - 2 * q[3] * lo0,
            q[2],
            q[3],
        ]
    )


def _apply_lattice_map(
    lon: np.ndarray,
    lat: np.ndarray,
    coef: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    tmp: np.ndarray,
) -> None:
    """Write P(lon, lat) into ``u`` and ``v`` in place (``tmp``: scratch, same length)."""
    c0, c1, c2, c3, c4, c5, c6, c7 = (float(c) for c in coef)
    np.multiply(lat, c3, out=u)
    u += c1
    u *= lon
    np.multiply(lat, c2, out=tmp)
    u += tmp
    u += c0
    np.multiply(lon, c7, out=v)
    v += c5
    v *= lon
    np.multiply(lat, c6, out=tmp)
    v += tmp
    v += c4


def _map_lattice(
    lon: np.ndarray, lat: np.ndarray, coef: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return P(lon, lat) as new arrays (same arithmetic as the query path)."""
    lon = np.ascontiguousarray(lon, dtype=float)
    lat = np.ascontiguousarray(lat, dtype=float)
    u, v, tmp = np.empty_like(lon), np.empty_like(lon), np.empty_like(lon)
    _apply_lattice_map(lon, lat, coef, u, v, tmp)
    return u, v


def _sagitta(d: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Largest bend (per axis) of each straight lon/lat edge ``d`` under P.

    ``P(p + t d) = (1 - t) P(p) + t P(p + d) - t (1 - t) Q(d)`` with Q the second-order
    part (``c3 da db`` for u, ``c7 da²`` for v), and ``t (1 - t) <= 1/4``.
    """
    du, dv = d[:, 0], d[:, 1]
    return np.maximum(np.abs(coef[3] * du * dv), np.abs(coef[7] * du * du)) / 4


def _ring_coordinates(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return every ring vertex, its cell's index, and which consecutive pairs are edges.

    Goes through the parts first: ``shapely.get_rings`` skips MultiPolygons.
    """
    parts, part_cell = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    return xy, part_cell[ring_part[ring]], ring[1:] == ring[:-1]


def _reachable_squares(
    pu: np.ndarray,
    pv: np.ndarray,
    owner: np.ndarray,
    n: int,
    *,
    shape: tuple[int, int],
    pad: float,
    margin: float,
) -> np.ndarray:
    """Mark the lattice squares whose margin-shrunk interior some cell's image may reach.

    A cell's image under P lies within ``pad`` (the largest bend) of its chord polygon,
    hence inside the chord polygon's bounding box grown by ``pad``. A point passes the
    margin test of square i only if i + margin < u < i + 1 - margin, so square i is
    reachable iff ``u_min - pad < i + 1 - margin`` and ``u_max + pad > i + margin``.
    """
    nv, nu = shape
    lo = np.full((2, n), np.inf)
    hi = np.full((2, n), -np.inf)
    np.minimum.at(lo[0], owner, pu)
    np.minimum.at(lo[1], owner, pv)
    np.maximum.at(hi[0], owner, pu)
    np.maximum.at(hi[1], owner, pv)
    has = np.isfinite(lo[0])
    lo, hi = lo[:, has], hi[:, has]
    first = np.floor(lo - pad - 1 + margin).astype(np.int64) + 1  # smallest i > x
    last = np.ceil(hi + pad - margin).astype(np.int64) - 1  # largest i < x
    first = np.clip(first, 0, [[nu], [nv]])
    last = np.clip(last, -1, [[nu - 1], [nv - 1]])
    keep = np.all(last >= first, axis=0)
    (u0, v0), (u1, v1) = first[:, keep], last[:, keep] + 1
    # 2-D difference array: +1/-1 at the box corners, prefix sums fill each box.
    diff = np.zeros((nv + 1, nu + 1), dtype=np.int64)
    np.add.at(diff, (v0, u0), 1)
    np.add.at(diff, (v0, u1), -1)
    np.add.at(diff, (v1, u0), -1)
    np.add.at(diff, (v1, u1), 1)
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[:nv, :nu] > 0


class CellLocator:
    """Locate points in a grid of cells (EPSG:4326).

    Parameters
    ----------
    cells : GeoDataFrame
        The grid; answers are positional indices into it (``cells.iloc[k]``).
    pixels_per_cell : int
        Raster resolution for irregular grids, in pixels across a typical cell.
    max_pixels : int
        Upper bound for the raster size (memory is 4 bytes per pixel).

    Attributes
    ----------
    strategy : str
        "lattice" for a detected regular square grid, "raster" otherwise.
    """

    def __init__(
        self,
        cells: gpd.GeoDataFrame,
        *,
        pixels_per_cell: int = 64,
        max_pixels: int = 16_000_000,
    ) -> None:
        gdf = cells
        if gdf.crs is not None and not gdf.crs.equals(WGS84):
            gdf = gdf.to_crs(WGS84)
        geoms = np.asarray(gdf.geometry.to_numpy(), dtype=object)
        bad = [k for k, g in enumerate(geoms) if g is None or g.is_empty]
        if bad:
            msg = f"网格第 {bad[0] + 1} 行几何为空, 无法定位"
            raise GisError(msg)
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)
        self.strategy = "raster"
        self._table: np.ndarray | None = None
        self._coef = np.zeros(8)
        self._margin = 0.0
        if len(geoms) == 0:
            self._raster = np.full((1, 1), OUTSIDE, dtype=np.int32)
            self._affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            return
        self._try_lattice()
        # The raster decides every point the lattice table leaves open (or all of them).
        self._build_raster(pixels_per_cell=pixels_per_cell, max_pixels=max_pixels)

    # ----------------------------------------------------------------- frames
    def _try_lattice(self, *, max_squares: int = 4_000_000) -> bool:
        """Detect a regular square lattice in UTM and build its table; False if none."""
        geoms = self._geoms
        crs = utm_crs_for_geom(shapely.box(*shapely.total_bounds(geoms)))
        metric = gpd.GeoSeries(geoms, crs=WGS84).to_crs(crs).to_numpy()
        b = shapely.bounds(metric)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        area = shapely.area(metric)
        nverts = shapely.get_num_coordinates(metric)
        square = (
            (np.abs(w - h) < 1e-6 * np.maximum(w, 1))
            & (np.abs(area - w * h) < 1e-6 * np.maximum(w * h, 1))
            & (nverts == 5)
            & (shapely.get_type_id(metric) == 3)  # a plain Polygon: one ring, 4 corners
        )
        if square.sum() < max(4, 0.5 * len(geoms)):
            return False
        size = float(np.median(w[square]))
        square &= np.abs(w - size) < 1e-6 * size
        x0 = float(np.median(np.mod(b[square, 0], size)))
        y0 = float(np.median(np.mod(b[square, 1], size)))
        iu = np.round((b[:, 0] - x0) / size)
        iv = np.round((b[:, 1] - y0) / size)
        square &= (np.abs((b[:, 0] - x0) / size - iu) < 1e-6) & (
            np.abs((b[:, 1] - y0) / size - iv) < 1e-6
        )
        if square.sum() < max(4, 0.5 * len(geoms)):
            return False
        full = np.flatnonzero(square)

        # Fit the lattice map P on the full squares' own vertices (lon/lat -> lattice
        # corner numbers). UTM is nearly affine over a county seat; the one term each axis
        # needs beyond affine (x bends with lon*lat, y with lon^2: meridian convergence)
        # takes the misfit from ~6e-3 to ~5e-5 of a 100 m square, so almost no point
        # falls in the margin band.
        ll = shapely.get_coordinates(geoms[full]).reshape(len(full), 5, 2)[:, :4]
        mx = shapely.get_coordinates(metric[full]).reshape(len(full), 5, 2)[:, :4]
        corner = np.round((mx - np.array([x0, y0])) / size)
        coef = _fit_lattice_map(
            ll[..., 0].ravel(), ll[..., 1].ravel(), corner[..., 0].ravel(), corner[..., 1].ravel()
        )

        # Cell edges are straight in lon/lat; P bends each one away from its chord by
        # at most |Q(d)| / 4 per axis (Q: P's second-order part, d: the edge vector).
        xy, owner, same = _ring_coordinates(geoms)
        sag_edge = _sagitta(np.diff(xy, axis=0)[same], coef)
        is_full = np.zeros(len(geoms), dtype=bool)
        is_full[full] = True
        sag_full = float(sag_edge[is_full[owner[:-1][same]]].max(initial=0.0))
        sag_all = float(sag_edge.max(initial=0.0))

        # The table spans every cell's image plus a rim of squares no image reaches, so
        # a query clamped onto the rim is outside every cell.
        pu, pv = _map_lattice(xy[:, 0], xy[:, 1], coef)
        pad = sag_all + _EPS
        i0 = int(np.floor(pu.min() - pad)) - 1
        j0 = int(np.floor(pv.min() - pad)) - 1
        nu = int(np.floor(pu.max() + pad)) + 2 - i0
        nv = int(np.floor(pv.max() + pad)) + 2 - j0
        if nu * nv > max_squares:
            return False
        coef[0] -= i0  # now table column = floor(u), table row = floor(v)
        coef[4] -= j0
        pu, pv = _map_lattice(xy[:, 0], xy[:, 1], coef)

        # Exact misfit: where P puts each full square's vertices, computed with the very
        # arithmetic the queries use (no sampling, no projection in the argument).
        qu, qv = _map_lattice(ll[..., 0].ravel(), ll[..., 1].ravel(), coef)
        q = np.stack([qu, qv], axis=-1).reshape(len(full), 4, 2)
        rq = np.round(q)
        dev = np.abs(q - rq).max(axis=(1, 2))
        # The rounded vertices must walk once around one lattice square.
        steps = np.abs(np.diff(rq, axis=1, append=rq[:, :1])).sum(axis=2)
        walk = (
            np.all(steps == 1, axis=1)
            & np.all(np.abs(rq[:, 2] - rq[:, 0]) == 1, axis=1)
            & np.all(np.abs(rq[:, 3] - rq[:, 1]) == 1, axis=1)
            & (dev < 0.25)
        )
        if not walk.any():
            return False
        margin = float(dev[walk].max()) + sag_full + _EPS
        if margin > _MAX_MARGIN:
            return False

        table = np.full((nv, nu), AMBIGUOUS, dtype=np.int64)
        reach = _reachable_squares(
            pu, pv, owner, len(geoms), shape=(nv, nu), pad=pad, margin=margin
        )
        table[~reach] = OUTSIDE
        # A full square answers for its cell only if no other cell overlaps it.
        full, ti, tj = full[walk], rq[walk, :, 0].min(axis=1), rq[walk, :, 1].min(axis=1)
        ti, tj = ti.astype(np.int64), tj.astype(np.int64)
        pi, ci = self._tree.query(geoms[full], predicate="intersects")
        other = full[pi] != ci
        clash = np.zeros(len(full), dtype=bool)
        if other.any():
            touching = shapely.touches(geoms[full[pi[other]]], geoms[ci[other]])
            clash[pi[other][~touching]] = True
        seen = np.zeros((nv, nu), dtype=np.int64)
        np.add.at(seen, (tj, ti), 1)
        good = ~clash & (seen[tj, ti] == 1)
        table[tj[good], ti[good]] = full[good]
        self._coef = coef
        self._margin = margin
        self._table = table
        self.strategy = "lattice"
        return True

    def _to_lonlat(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Invert the raster's affine frame (pixel coordinates back to lon/lat)."""
        a = self._affine[:, :2]
        c = self._affine[:, 2]
        inv = np.linalg.inv(a)
        du, dv = u - c[0], v - c[1]
        return inv[0, 0] * du + inv[0, 1] * dv, inv[1, 0] * du + inv[1, 1] * dv

    def _build_raster(self, *, pixels_per_cell: int, max_pixels: int) -> None:
        geoms = self._geoms
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        lat0 = (miny + maxy) / 2
        mx = 111_320.0 * np.cos(np.radians(lat0))
        my = 110_574.0
        crs = utm_crs_for_geom(shapely.box(minx, miny, maxx, maxy))
        area = gpd.GeoSeries(geoms, crs=WGS84).to_crs(crs).area.to_numpy()
        typical = float(np.sqrt(np.median(area[area > 0]))) if np.any(area > 0) else 1.0
        pixel = max(typical / max(pixels_per_cell, 1), 1e-3)
        span_x, span_y = (maxx - minx) * mx, (maxy - miny) * my
        while (span_x / pixel + 3) * (span_y / pixel + 3) > max_pixels:
            pixel *= 1.25
        sx, sy = mx / pixel, my / pixel
        # One pixel of padding on each side so cell edges never touch the raster's rim.
        c = np.array([-minx * sx + 1.0, -miny * sy + 1.0])
        self._affine = np.array([[sx, 0.0, c[0]], [0.0, sy, c[1]]])
        nu = int(np.ceil((maxx - minx) * sx)) + 3
        nv = int(np.ceil((maxy - miny) * sy)) + 3
        marked = np.zeros((nv, nu), dtype=bool)
        self._mark_edges(marked)
        self._raster = self._label_runs(marked)
        if len(self._geoms) < np.iinfo(np.int16).max:
            self._raster = self._raster.astype(np.int16)  # halves memory and lookups

    def _mark_edges(self, marked: np.ndarray) -> None:
        """Mark every pixel within a safety margin of any cell edge (conservatively)."""
        xy, _, same = _ring_coordinates(self._geoms)
        u, v = self._apply(xy[:, 0], xy[:, 1])
        x0, y0, x1, y1 = u[:-1][same], v[:-1][same], u[1:][same], v[1:][same]
        length = np.hypot(x1 - x0, y1 - y0)
        # Samples every <= 0.5 px: each edge point is within 0.25 px of a sample, so
        # marking each sample's 0.25 px + margin square covers the edge's margin zone.
        step = 0.5
        n = np.ceil(length / step).astype(np.int64) + 1
        seg = np.repeat(np.arange(len(n)), n)
        start = np.cumsum(n) - n
        t = (np.arange(len(seg)) - start[seg]) / np.maximum(n[seg] - 1, 1)
        px = x0[seg] + (x1[seg] - x0[seg]) * t
        py = y0[seg] + (y1[seg] - y0[seg]) * t
        r = step / 2 + 1e-4
        nv, nu = marked.shape
        for dx in (-r, r):
            for dy in (-r, r):
                ix = np.clip(np.floor(px + dx).astype(np.int64), 0, nu - 1)
                iy = np.clip(np.floor(py + dy).astype(np.int64), 0, nv - 1)
                marked[iy, ix] = True

    def _label_runs(self, marked: np.ndarray) -> np.ndarray:
        """Give each run of unmarked pixels in a row the exact answer at its first pixel."""
        nv, nu = marked.shape
        free = ~marked
        start = free.copy()
        start[:, 1:] &= marked[:, :-1]
        flat_start = start.ravel()
        run_id = np.cumsum(flat_start) - 1
        sy, sx = np.nonzero(start)
        lon, lat = self._to_lonlat(sx + 0.5, sy + 0.5)
        answers = self._exact(lon, lat)
        table = np.full(nv * nu, AMBIGUOUS, dtype=np.int32)
        flat_free = free.ravel()
        table[flat_free] = answers[run_id[flat_free]]
        return table.reshape(nv, nu)

    # ----------------------------------------------------------------- queries
    def _apply(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self._affine
        return a[0, 0] * lon + a[0, 1] * lat + a[0, 2], a[1, 0] * lon + a[1, 1] * lat + a[1, 2]

    def _exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Lowest index among the cells whose closure contains each point, -1 if none."""
        out = np.full(len(lon), np.iinfo(np.int64).max, dtype=np.int64)
        if len(lon):
            pts = shapely.points(lon, lat)
            pi, ci = self._tree.query(pts, predicate="intersects")
            np.minimum.at(out, pi, ci)
        out[out == np.iinfo(np.int64).max] = OUTSIDE
        return out

    def locate(self, lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
        """Return the positional cell index of each point (-1 outside every cell).

        Parameters
        ----------
        lon, lat : array-like
            WGS-84 degrees, same shape; NaN gives -1.

        Returns
        -------
        ndarray of int64
            One index per point, flattened.
        """
        lon = np.ascontiguousarray(lon, dtype=float).ravel()
        lat = np.ascontiguousarray(lat, dtype=float).ravel()
        if lon.shape != lat.shape:
            msg = f"经度与纬度个数不同: {lon.size} 与 {lat.size}"
            raise GisError(msg)
        result = np.empty(lon.shape, dtype=np.int64)
        # inf - inf and inf * 0 make NaN on purpose: NaN images are clamped onto the rim.
        with np.errstate(invalid="ignore", over="ignore"):
            if self._table is not None:
                todo = self._lookup_lattice(lon, lat, result)
                if len(todo):
                    sub = np.empty(len(todo), dtype=np.int64)
                    left = self._lookup_raster(lon[todo], lat[todo], sub)
                    result[todo] = sub
                    todo = todo[left]
            else:
                todo = self._lookup_raster(lon, lat, result)
        if len(todo):
            result[todo] = self._exact(lon[todo], lat[todo])
        return result

    def _lookup_lattice(self, lon: np.ndarray, lat: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Answer from the lattice table; return the indices left AMBIGUOUS.

        A point whose image under P lies in square (i, j) at more than ``margin`` from
        its sides is inside the square's cell (or outside every cell for an OUTSIDE
        square): the cell's boundary maps to within the margin of the square's sides.
        Images off the table are clamped onto its rim, whose squares are OUTSIDE; NaN
        clamps there too (``fmax``/``fmin`` drop NaN), giving -1.
        """
        table = self._table.ravel()
        nv, nu = self._table.shape
        # The map is shifted by half a square (w = u - 1/2), so rint(w) is the square
        # and |w - rint(w)| = |frac(u) - 1/2|: margin < frac(u) < 1 - margin on both
        # axes  <=>  max(|w - rint(w)|, |z - rint(z)|) < 1/2 - margin.
        coef = self._coef - np.array([0.5, 0, 0, 0, 0.5, 0, 0, 0])
        limit = 0.5 - self._margin
        n = min(len(lon), _CHUNK)
        u, v, fu, fv = (np.empty(n) for _ in range(4))
        iu, iv = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        bad = np.empty(n, dtype=bool)
        todo = []
        for s in range(0, len(lon), _CHUNK):
            e = min(s + _CHUNK, len(lon))
            k = e - s
            cu, cv, cfu, cfv, ciu, civ, cbad = (x[:k] for x in (u, v, fu, fv, iu, iv, bad))
            res = out[s:e]
            _apply_lattice_map(lon[s:e], lat[s:e], coef, cu, cv, cfu)
            np.fmax(cu, 0.0, out=cu)
            np.fmin(cu, nu - 1.0, out=cu)
            np.fmax(cv, 0.0, out=cv)
            np.fmin(cv, nv - 1.0, out=cv)
            np.rint(cu, out=cfu)
            np.rint(cv, out=cfv)
            ciu[...] = cfu
            civ[...] = cfv
            cu -= cfu
            cv -= cfv
            np.abs(cu, out=cu)
            np.abs(cv, out=cv)
            np.maximum(cu, cv, out=cu)
            np.greater_equal(cu, limit, out=cbad)
            civ *= nu
            civ += ciu
            np.take(table, civ, out=res)
            np.copyto(res, AMBIGUOUS, where=cbad)
            # Collected here while the block is still in cache.
            todo.append(np.flatnonzero(res == AMBIGUOUS) + s)
        return np.concatenate(todo) if todo else np.empty(0, dtype=np.int64)

    def _lookup_raster(self, lon: np.ndarray, lat: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Answer from the raster; return the indices left AMBIGUOUS.

        Points off the raster are clamped onto its rim: one pixel of padding outside every cell's bounding box, so its pixels
        are OUTSIDE (or AMBIGUOUS, then tested exactly); NaN clamps there too.
        """
        raster = self._raster.ravel()
        nv, nu = self._raster.shape
        (sx, _, cx), (_, sy, cy) = self._affine  # built axis-parallel
        n = min(len(lon), _CHUNK)
        u, v = np.empty(n), np.empty(n)
        iu, iv = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        val = np.empty(n, dtype=raster.dtype)
        todo = []
        for s in range(0, len(lon), _CHUNK):
            e = min(s + _CHUNK, len(lon))
            k = e - s
            cu, cv, ciu, civ, cval = (x[:k] for x in (u, v, iu, iv, val))
            np.multiply(lon[s:e], sx, out=cu)
            cu += cx
            np.multiply(lat[s:e], sy, out=cv)
            cv += cy
            np.fmax(cu, 0.0, out=cu)
            np.fmin(cu, nu - 0.5, out=cu)
            np.fmax(cv, 0.0, out=cv)
            np.fmin(cv, nv - 0.5, out=cv)
            ciu[...] = cu  # truncation is floor here: both are >= 0
            civ[...] = cv
            civ *= nu
            civ += ciu
            np.take(raster, civ, out=cval)
            out[s:e] = cval
            todo.append(np.flatnonzero(cval == AMBIGUOUS) + s)
        return np.concatenate(todo) if todo else np.empty(0, dtype=np.int64)

    def locate_one(self, lon: float, lat: float) -> int | None:
        """Return the cell index of one point, or None when it is outside every cell."""
        k = int(self.locate([lon], [lat])[0])
        return None if k < 0 else k

    @property
    def ambiguous_fraction(self) -> float:
        """Share of lookup pixels that need an exact test (a tuning diagnostic)."""
        return float(np.mean(self._raster == AMBIGUOUS))


def locate_cells(
    points_lon: ArrayLike, points_lat: ArrayLike, cells: gpd.GeoDataFrame
) -> np.ndarray:
    """Return the positional cell index for each point (-1 outside every cell).

    Builds a ``CellLocator`` once; keep one yourself when locating repeatedly.
    """
    return CellLocator(cells).locate(points_lon, points_lat)
