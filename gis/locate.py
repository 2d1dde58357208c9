"""The one point→cell locator: which grid cell does each (lon, lat) fall in?

Inspection imports place thousands of problems at once and the map colours cells by
counts, so locating must be fast. Two exact strategies share one idea: map lon/lat by
an affine frame onto a lookup raster whose pixels are either *pure* (certainly inside
one cell, or certainly outside every cell) or *ambiguous*; only points in ambiguous
pixels get an exact point-in-polygon test.

* Regular square grids (as made by ``build_square_grid``) are detected; the frame is
  fitted to the lattice so that a pixel is one lattice square and the lookup is plain
  arithmetic. A point is decided by the table only when it lies at least ``margin``
  (the affine fit's residual plus a safety term) inside its lattice square.
* Any other grid gets a raster of pixels about 1/32 of a typical cell: every pixel
  touched by a cell edge (with a safety margin) is ambiguous; each run of untouched
  pixels along a raster row lies wholly in one cell (no edge crosses it) and takes the
  answer of an exact test at its first pixel.

Correctness never rests on the fit: pure pixels are proven pure with exact geometry
in lon/lat, the space where the stored cells have straight edges, i.e. the same space
``geopandas.sjoin`` works in.

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

from gis.crs import WGS84, transformer, utm_crs_for_geom
from gis.errors import GisError

OUTSIDE = -1
AMBIGUOUS = -2
# Float error of the affine map is ~1e-9 pixel; this margin keeps it far away.
_EPS = 1e-6


def _quadratic_terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Design matrix [1, a, b, a², ab, b²] (the order ``_lookup_lattice`` unrolls)."""
    return np.column_stack([np.ones_like(a), a, b, a * a, a * b, b * b])


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
        self._margin = 0.0
        if len(geoms) == 0:
            self._raster = np.full((1, 1), OUTSIDE, dtype=np.int32)
            self._affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            return
        self._try_lattice()
        # The raster decides every point the lattice table leaves open (or all of them).
        self._build_raster(pixels_per_cell=pixels_per_cell, max_pixels=max_pixels)

    # ----------------------------------------------------------------- frames
    def _try_lattice(self) -> bool:
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
        # A quadratic in lon/lat stands in for the UTM projection: ~0.2 mm off over a
        # county seat and ~20x cheaper than pyproj for a million points.
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        centre = np.array([(minx + maxx) / 2, (miny + maxy) / 2])
        rng = np.random.default_rng(0)
        fit_lon = np.concatenate(
            [np.linspace(minx, maxx, 41).repeat(41), rng.uniform(minx, maxx, 4000)]
        )
        fit_lat = np.concatenate(
            [np.tile(np.linspace(miny, maxy, 41), 41), rng.uniform(miny, maxy, 4000)]
        )
        to_utm = transformer(WGS84, crs)
        fx, fy = to_utm.transform(fit_lon, fit_lat)
        design = _quadratic_terms(fit_lon - centre[0], fit_lat - centre[1])
        target = np.column_stack([(fx - x0) / size, (fy - y0) / size])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        resid = float(np.abs(design @ coef - target).max())
        # Straight lon/lat edges bend under a quadratic map by at most |Q(d)| / 4,
        # where Q holds the second-order terms and d is the edge vector.
        xy = shapely.get_coordinates(geoms[square])
        d = np.diff(xy, axis=0)
        d = d[np.abs(d).max(axis=1) < 10 * size / 100_000]  # drop jumps between rings
        q = np.abs(
            np.outer(d[:, 0] ** 2, coef[3])
            + np.outer(d[:, 0] * d[:, 1], coef[4])
            + np.outer(d[:, 1] ** 2, coef[5])
        )
        sagitta = float(q.max()) / 4 if len(q) else 0.0
        margin = 2 * resid + sagitta + _EPS
        if margin > 0.01:
            return False
        i0, j0 = int(iu.min()) - 1, int(iv.min()) - 1
        nu = int(np.ceil((b[:, 2].max() - x0) / size)) - i0 + 2
        nv = int(np.ceil((b[:, 3].max() - y0) / size)) - j0 + 2
        coef[0] -= np.array([i0, j0])  # table index = floor(u), floor(v)
        table = np.full((nv, nu), AMBIGUOUS, dtype=np.int32)
        full = np.flatnonzero(square)
        # A full square is decided by the table only if no other cell overlaps it.
        pi, ci = self._tree.query(geoms[full], predicate="intersects")
        other = full[pi] != ci
        clash = np.zeros(len(full), dtype=bool)
        if other.any():
            touching = shapely.touches(geoms[full[pi[other]]], geoms[ci[other]])
            clash[pi[other][~touching]] = True
        ti = (iu[full] - i0).astype(np.int64)
        tj = (iv[full] - j0).astype(np.int64)
        seen = np.zeros((nv, nu), dtype=np.int64)
        np.add.at(seen, (tj, ti), 1)
        good = ~clash & (seen[tj, ti] == 1)
        table[tj[good], ti[good]] = full[good]
        self._poly = (coef, centre)
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
        rings = shapely.get_rings(self._geoms)
        xy, ring = shapely.get_coordinates(rings, return_index=True)
        u, v = self._apply(xy[:, 0], xy[:, 1])
        same = ring[1:] == ring[:-1]
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
        """
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        if lon.shape != lat.shape:
            msg = f"经度与纬度个数不同: {lon.size} 与 {lat.size}"
            raise GisError(msg)
        if self._table is not None:
            result = self._lookup_lattice(lon, lat)
            todo = np.flatnonzero(result == AMBIGUOUS)
            if len(todo):
                result[todo] = self._lookup_raster(lon[todo], lat[todo])
        else:
            result = self._lookup_raster(lon, lat)
        todo = np.flatnonzero(result == AMBIGUOUS)
        if len(todo):
            result[todo] = self._exact(lon[todo], lat[todo])
        return result

    def _lookup_lattice(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        coef, centre = self._poly
        a = lon - centre[0]
        b = lat - centre[1]
        u = (
            coef[0, 0]
            + a * (coef[1, 0] + coef[3, 0] * a + coef[4, 0] * b)
            + b * (coef[2, 0] + coef[5, 0] * b)
        )
        v = (
            coef[0, 1]
            + a * (coef[1, 1] + coef[3, 1] * a + coef[4, 1] * b)
            + b * (coef[2, 1] + coef[5, 1] * b)
        )
        iu = np.floor(u)
        iv = np.floor(v)
        m = self._margin
        fu = u - iu
        fv = v - iv
        nv, nu = self._table.shape
        ok = (iu >= 0) & (iu < nu) & (iv >= 0) & (iv < nv)  # False for NaN
        ok &= (fu > m) & (fu < 1 - m) & (fv > m) & (fv < 1 - m)
        result = np.full(lon.shape, AMBIGUOUS, dtype=np.int64)
        k = np.flatnonzero(ok)
        result[k] = self._table[iv[k].astype(np.int64), iu[k].astype(np.int64)]
        return result

    def _lookup_raster(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        u, v = self._apply(lon, lat)
        nv, nu = self._raster.shape
        ok = (u >= 0) & (u < nu) & (v >= 0) & (v < nv)  # False for NaN
        result = np.full(lon.shape, OUTSIDE, dtype=np.int64)
        k = np.flatnonzero(ok)
        result[k] = self._raster[v[k].astype(np.int64), u[k].astype(np.int64)]
        return result

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
