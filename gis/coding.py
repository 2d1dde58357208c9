"""Give every cell its 15-digit code (after Beijing DB11/T 2157).

code = 6-digit county (GB/T 2260) + 3-digit sub-district/town + 3-digit community
+ 3-digit serial within the community.

Serial rule (west→east, north→south): within one (sub-district, community) group,
take each cell's representative point in UTM; cut the group into horizontal rows of
height ``row_height`` (default: the median square root of the group's cell areas, i.e.
one typical cell), counted down from the group's northernmost point; order by row
(north first), then by x (west first), then by y (north first) as a final tie-break.
Serials start at 001.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import shapely

from gis.crs import WGS84, utm_crs_for_geom
from gis.errors import GridBuildError

_DIGITS = re.compile(r"\d+")


def _three(value: object, *, field: str) -> str:
    """Normalise a layer code to 3 digits (a longer official code keeps its last 3)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "000"
    text = str(value).strip()
    if text.endswith(".0"):  # codes read from spreadsheets arrive as floats
        text = text[:-2]
    if not text.isdigit():
        msg = f"{field} 编码必须是数字: {value!r}"
        raise GridBuildError(msg)
    return text[-3:].zfill(3)


def _largest_overlap(cells_m: np.ndarray, layer_m: np.ndarray) -> np.ndarray:
    """Return for each cell the index of the layer polygon it overlaps most (-1: none)."""
    out = np.full(len(cells_m), -1, dtype=np.int64)
    if len(layer_m) == 0 or len(cells_m) == 0:
        return out
    tree = shapely.STRtree(layer_m)
    ci, li = tree.query(cells_m, predicate="intersects")
    if len(ci) == 0:
        return out
    area = shapely.area(shapely.intersection(cells_m[ci], layer_m[li]))
    # Sort by (cell, area desc, layer index) and keep the first row per cell.
    order = np.lexsort((li, -area, ci))
    ci, li, area = ci[order], li[order], area[order]
    first = np.ones(len(ci), dtype=bool)
    first[1:] = ci[1:] != ci[:-1]
    pick = first & (area > 0)
    out[ci[pick]] = li[pick]
    return out


def number_serials(x: np.ndarray, y: np.ndarray, *, row_height: float) -> np.ndarray:
    """Return 1-based serials ordering points north→south by row, then west→east.

    Parameters
    ----------
    x, y : ndarray
        Metric coordinates of the cells' representative points.
    row_height : float
        Height of a row band in metres, counted from the northernmost point.
    """
    if len(x) == 0:
        return np.array([], dtype=np.int64)
    row = np.floor((np.max(y) - y) / max(row_height, 1e-9))
    order = np.lexsort((-y, x, row))
    serial = np.empty(len(x), dtype=np.int64)
    serial[order] = np.arange(1, len(x) + 1)
    return serial


def code_cells(
    cells: gpd.GeoDataFrame,
    *,
    county_code: str,
    subdistricts: gpd.GeoDataFrame | None,
    communities: gpd.GeoDataFrame | None,
    row_height_m: float | None = None,
) -> gpd.GeoDataFrame:
    """Add ``subdistrict_code``, ``community_code``, ``serial``, ``code`` and ``area_m2``.

    Parameters
    ----------
    cells : GeoDataFrame
        The grid, EPSG:4326.
    county_code : str
        6-digit GB/T 2260 county code, e.g. ``"360681"``.
    subdistricts : GeoDataFrame or None
        Sub-district/town polygons with a ``code`` column. A cell takes the one it
        overlaps most. When None, a cell takes its community's ``subdistrict_code``;
        with neither, "000".
    communities : GeoDataFrame or None
        Community polygons with ``code`` and ``subdistrict_code``. A cell takes the one
        it overlaps most; with none, "000".
    row_height_m : float, optional
        Height of the serial rows (see the module docstring for the rule).

    Returns
    -------
    GeoDataFrame
        A copy of ``cells`` with the new columns; rows keep their order.

    Raises
    ------
    GridBuildError
        The county code is not 6 digits, a layer code is not numeric, or one
        community holds more than 999 cells.
    """
    county = str(county_code).strip()
    if not re.fullmatch(r"\d{6}", county):
        msg = f"县级行政区划代码必须是 6 位数字: {county_code!r}"
        raise GridBuildError(msg)
    out = cells.copy()
    if out.crs is None:
        out = out.set_crs(WGS84)
    if len(out) == 0:
        for col in ("subdistrict_code", "community_code", "serial", "code"):
            out[col] = []
        out["area_m2"] = []
        return out
    crs = utm_crs_for_geom(shapely.union_all(out.to_crs(WGS84).geometry.envelope.to_numpy()))
    metric = out.geometry.to_crs(crs).to_numpy()
    n = len(out)

    comm_code = np.full(n, "000", dtype=object)
    comm_sub = np.full(n, "000", dtype=object)
    if communities is not None and len(communities):
        if "code" not in communities.columns:
            msg = "社区图层缺少 code 字段"
            raise GridBuildError(msg)
        cm = communities.to_crs(crs) if communities.crs is not None else communities
        hit = _largest_overlap(metric, cm.geometry.to_numpy())
        codes = [_three(c, field="社区") for c in cm["code"]]
        subs = (
            [_three(c, field="社区所属街道") for c in cm["subdistrict_code"]]
            if "subdistrict_code" in cm.columns
            else ["000"] * len(cm)
        )
        for k in np.flatnonzero(hit >= 0).tolist():
            comm_code[k] = codes[hit[k]]
            comm_sub[k] = subs[hit[k]]

    sub_code = comm_sub.copy()
    if subdistricts is not None and len(subdistricts):
        if "code" not in subdistricts.columns:
            msg = "街道图层缺少 code 字段"
            raise GridBuildError(msg)
        sd = subdistricts.to_crs(crs) if subdistricts.crs is not None else subdistricts
        hit = _largest_overlap(metric, sd.geometry.to_numpy())
        codes = [_three(c, field="街道") for c in sd["code"]]
        sub_code = np.array([codes[h] if h >= 0 else "000" for h in hit.tolist()], dtype=object)

    area = shapely.area(metric)
    reps = shapely.point_on_surface(metric)
    x, y = shapely.get_x(reps), shapely.get_y(reps)
    serial = np.zeros(n, dtype=np.int64)
    keys = np.array([f"{s}{c}" for s, c in zip(sub_code, comm_code, strict=True)])
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        if len(members) > 999:
            msg = (
                f"街道 {key[:3]} 社区 {key[3:]} 有 {len(members)} 个网格, "
                "超过编码上限 999, 请加大网格面积或细分社区"
            )
            raise GridBuildError(msg)
        height = row_height_m or float(np.median(np.sqrt(area[members])))
        serial[members] = number_serials(x[members], y[members], row_height=height)

    out["subdistrict_code"] = sub_code.astype(str)
    out["community_code"] = comm_code.astype(str)
    out["serial"] = [f"{s:03d}" for s in serial.tolist()]
    out["code"] = [
        f"{county}{s}{c}{r}"
        for s, c, r in zip(
            out["subdistrict_code"], out["community_code"], out["serial"], strict=True
        )
    ]
    out["area_m2"] = np.round(area, 1)
    return out
