"""Give every cell its 15-digit code (after Beijing DB11/T 2157).

code = 6-digit county (GB/T 2260) + 3-digit sub-district/town + 3-digit community
+ 3-digit serial within the community.

Serial rule (west→east, north→south): within one (sub-district, community) group,
take each cell's representative point in UTM; cut the group into horizontal rows of
height ``row_height`` (default: the median square root of the group's cell areas, i.e.
one typical cell), counted down from the group's northernmost point; order by row
(north first), then by x (west first), then by y (north first) as a final tie-break.
Serials start at 001.

No slot is ever 000 (DESIGN rule 11): cells no sub-district polygon covers go to one
sub-district for the rest (the next free code, named after the town, e.g. "城区"), and
cells no community covers are grouped into provisional zones (片区, ``gis.zones``) that
take the community slot after the real communities' codes. A stray piece of fewer than
``min_zone_cells`` uncovered cells joins the neighbouring sub-district or community it
shares the longest border with instead of becoming a unit of its own.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.crs import WGS84, utm_crs_for_geom
from gis.errors import GridBuildError
from gis.zones import (
    DEFAULT_MIN_ZONE_CELLS,
    MAX_ZONE_CELLS,
    absorb_small_groups,
    build_zones,
    major_road_lines,
    water_lines,
    zone_name,
)

_DIGITS = re.compile(r"\d+")


def _three(value: object, *, field: str) -> str:
    """Normalise a layer code to 3 digits (a longer official code keeps its last 3)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "000"
    text = str(value).strip()
    if text.endswith(".0"):  # codes read from spreadsheets arrive as floats
        text = text[:-2]
    if not text.isdigit():
        msg = f"{field} 编码必须是数字: {value!r}"
        raise GridBuildError(msg)
    return text[-3:].zfill(3)


def _largest_overlap(
    cells_m: np.ndarray, layer_m: np.ndarray, *, min_share: float = 0.0
) -> np.ndarray:
    """Return for each cell the index of the layer polygon it overlaps most (-1: none).

    A cell counts as covered only when the layer covers at least ``min_share`` of its
    area, so a neighbour's digitising sliver does not claim it.
    """
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
    if min_share > 0:
        covered = np.bincount(ci, weights=area, minlength=len(cells_m))
        pick &= covered[ci] >= min_share * shapely.area(cells_m[ci])
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


# A cell belongs to a sub-district or community layer when the layer covers at least
# half of it (then to the polygon it overlaps most); less is a neighbour's sliver.
COVER_SHARE = 0.5
ZONE_COLUMNS = [
    "subdistrict_code",
    "community_code",
    "name",
    "subdistrict_name",
    "provisional",
    "cell_count",
]


def _layer_codes(gdf: gpd.GeoDataFrame, *, field: str, taken: set[str]) -> list[str]:
    """3-digit codes of a layer; a missing or 000 code gets the next free one."""
    raw = gdf["code"].tolist() if "code" in gdf.columns else [None] * len(gdf)
    codes = [_three(c, field=field) for c in raw]
    used = set(taken) | {c for c in codes if c != "000"}
    out = []
    for c in codes:
        if c == "000":
            c = _next_free(used)
            used.add(c)
        out.append(c)
    return out


def _next_free(used: set[str]) -> str:
    numbers = [int(c) for c in used if c.isdigit()]
    nxt = max(numbers, default=0) + 1
    if nxt > 999:
        nxt = next((k for k in range(1, 1000) if f"{k:03d}" not in used), 1000)
    if nxt > 999:
        msg = "编码已用尽: 001–999 都已占用"
        raise GridBuildError(msg)
    return f"{nxt:03d}"


def _names(gdf: gpd.GeoDataFrame, codes: list[str], label: str) -> list[str]:
    raw = gdf["name"].tolist() if "name" in gdf.columns else [None] * len(gdf)
    out = []
    for name, code in zip(raw, codes, strict=True):
        text = "" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
        out.append(text.strip() or f"{label} {code}")
    return out


def _touching(metric: np.ndarray, members: np.ndarray) -> tuple:
    """Border pairs (i, j, length) between ``members`` and any cell (global indices)."""
    if len(members) == 0:
        e = np.array([], dtype=np.int64)
        return e, e, np.array([], dtype=float)
    tree = shapely.STRtree(metric)
    # A few centimetres of tolerance: a sliver's edge need not share vertices with its
    # neighbours', and exact boundary intersection would find no border at all.
    a, b = tree.query(metric[members], predicate="dwithin", distance=0.05)
    a = members[a]
    keep = a != b
    a, b = a[keep], b[keep]
    shared = shapely.intersection(shapely.boundary(metric[a]), shapely.buffer(metric[b], 0.05))
    length = shapely.length(shared)
    keep = length > 0.01
    return a[keep], b[keep], length[keep]


def _components(n: int, members: np.ndarray, pairs: tuple) -> np.ndarray:
    """Connected components of ``members`` over ``pairs``: a label per cell, -1 elsewhere."""
    parent = np.arange(n)

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    inside = np.zeros(n, dtype=bool)
    inside[members] = True
    i, j = pairs[0], pairs[1]
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        if inside[a] and inside[b]:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    out = np.full(n, -1, dtype=np.int64)
    roots = [find(k) for k in members.tolist()]
    _, label = np.unique(roots, return_inverse=True)
    out[members] = label.ravel()
    return out


def _absorb_strays(
    labels: np.ndarray, metric: np.ndarray, *, min_cells: int, same: np.ndarray | None = None
) -> np.ndarray:
    """Give small connected pieces of unlabelled (-1) cells their neighbour's label.

    ``same`` (optional, per cell) restricts borders to cells with equal values (e.g. the
    same sub-district). Pieces with no labelled neighbour, or large ones, stay -1.
    """
    free = np.flatnonzero(labels < 0)
    if len(free) == 0 or not (labels >= 0).any():
        return labels
    # Pieces by exact contact (cheap); only the small ones get the tolerant border search.
    a, b = shapely.STRtree(metric[free]).query(metric[free], predicate="intersects")
    a, b = free[a], free[b]
    if same is not None:
        keep = same[a] == same[b]
        a, b = a[keep], b[keep]
    comp = _components(len(labels), free, (a, b, None))
    sizes = np.bincount(comp[free])
    small = free[sizes[comp[free]] < min_cells]
    if len(small) == 0:
        return labels
    pairs = _touching(metric, small)
    if same is not None and len(pairs[0]):
        keep = same[pairs[0]] == same[pairs[1]]
        pairs = (pairs[0][keep], pairs[1][keep], pairs[2][keep])
    base = int(labels.max()) + 1
    work = labels.copy()
    work[small] = base + comp[small]
    movable = np.zeros(int(work.max()) + 1, dtype=bool)
    movable[base:] = True
    merged = absorb_small_groups(work, pairs, min_cells=min_cells, movable=movable)
    out = labels.copy()
    took = merged[small] < base
    out[small[took]] = merged[small[took]]
    return out


def code_grid(
    cells: gpd.GeoDataFrame,
    *,
    county_code: str,
    subdistricts: gpd.GeoDataFrame | None,
    communities: gpd.GeoDataFrame | None,
    roads: gpd.GeoDataFrame | None = None,
    water: gpd.GeoDataFrame | None = None,
    rest_name: str = "城区",
    highway_column: str = "highway",
    min_zone_cells: int = DEFAULT_MIN_ZONE_CELLS,
    max_zone_cells: int = MAX_ZONE_CELLS,
    row_height_m: float | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Code every cell and return the communities and provisional zones they form.

    Parameters
    ----------
    cells : GeoDataFrame
        The grid, EPSG:4326.
    county_code : str
        6-digit GB/T 2260 county code, e.g. ``"360681"``.
    subdistricts : GeoDataFrame or None
        Sub-district/town polygons with ``code`` (a missing or 000 code gets the next
        free one) and ``name``. A cell takes the one it overlaps most; cells none covers
        form one sub-district for the rest (``rest_name``, the next free code, 001 when
        there is no layer). Without the layer, a cell takes its community's
        ``subdistrict_code``.
    communities : GeoDataFrame or None
        Community polygons with ``code``, ``name`` and ``subdistrict_code``. A cell takes
        the one it overlaps most; cells none covers are grouped into provisional zones.
    roads, water : GeoDataFrame, optional
        Zones are cut along the major roads (see ``gis.zones.major_road_lines``) and water.
    rest_name : str
        Name of the sub-district for cells no sub-district covers.
    min_zone_cells, max_zone_cells : int
        Zones (and stray uncovered pieces) under ``min_zone_cells`` merge into a
        neighbour; zones over ``0.8 * max_zone_cells`` are split.
    row_height_m : float, optional
        Height of the serial rows (see the module docstring for the rule).

    Returns
    -------
    cells : GeoDataFrame
        A copy of ``cells`` with ``subdistrict_code``, ``community_code``, ``serial``,
        ``code``, ``area_m2``, ``zone_name`` and ``provisional``; rows keep their order.
    zones : DataFrame
        One row per (sub-district, community or zone): ``ZONE_COLUMNS``.

    Raises
    ------
    GridBuildError
        The county code is not 6 digits, a layer code is not numeric, or one real
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
        for col in ("subdistrict_code", "community_code", "serial", "code", "zone_name"):
            out[col] = []
        out["provisional"] = []
        out["area_m2"] = []
        return out, pd.DataFrame(columns=ZONE_COLUMNS)
    crs = utm_crs_for_geom(shapely.union_all(out.to_crs(WGS84).geometry.envelope.to_numpy()))
    metric = out.geometry.to_crs(crs).to_numpy()
    n = len(out)

    # ---- communities (their codes, names and sub-districts)
    comm_hit = np.full(n, -1, dtype=np.int64)
    comm_codes: list[str] = []
    comm_names: list[str] = []
    comm_subs: list[str] = []
    if communities is not None and len(communities):
        if "code" not in communities.columns:
            msg = "社区图层缺少 code 字段"
            raise GridBuildError(msg)
        cm = communities.to_crs(crs) if communities.crs is not None else communities
        cm = cm[cm.geometry.notna() & ~cm.geometry.is_empty].reset_index(drop=True)
        comm_hit = _largest_overlap(metric, cm.geometry.to_numpy(), min_share=COVER_SHARE)
        comm_codes = _layer_codes(cm, field="社区", taken=set())
        comm_names = _names(cm, comm_codes, "社区")
        comm_subs = (
            [_three(c, field="社区所属街道") for c in cm["subdistrict_code"]]
            if "subdistrict_code" in cm.columns
            else ["000"] * len(cm)
        )

    # ---- sub-districts
    sub_names: dict[str, str] = {}
    sub_code = np.full(n, "", dtype=object)
    if subdistricts is not None and len(subdistricts):
        if "code" not in subdistricts.columns:
            msg = "街道图层缺少 code 字段"
            raise GridBuildError(msg)
        sd = subdistricts.to_crs(crs) if subdistricts.crs is not None else subdistricts
        sd = sd[sd.geometry.notna() & ~sd.geometry.is_empty].reset_index(drop=True)
        codes = _layer_codes(sd, field="街道", taken=set())
        names = _names(sd, codes, "街道")
        hit = _largest_overlap(metric, sd.geometry.to_numpy(), min_share=COVER_SHARE)
        hit = _absorb_strays(hit, metric, min_cells=min_zone_cells)
        for k in np.flatnonzero(hit >= 0).tolist():
            sub_code[k] = codes[hit[k]]
        for c, name in zip(codes, names, strict=True):
            sub_names.setdefault(c, name)
    else:
        via = _absorb_strays(comm_hit, metric, min_cells=min_zone_cells)
        for k in np.flatnonzero(via >= 0).tolist():
            if comm_subs[via[k]] != "000":
                sub_code[k] = comm_subs[via[k]]
        # Without a sub-district layer, the communities' own 所属街道 names them (or the town).
        named = cm["subdistrict"].tolist() if len(comm_subs) and "subdistrict" in cm.columns \
            else [None] * len(comm_subs)
        for c, name in zip(comm_subs, named, strict=True):
            if c != "000":
                text = "" if name is None or name != name else str(name).strip()
                sub_names.setdefault(c, text or rest_name)
    missing = np.flatnonzero(sub_code == "")
    if len(missing):
        rest = _next_free(set(sub_names) | {c for c in sub_code.tolist() if c})
        sub_code[missing] = rest
        sub_names[rest] = rest_name
    for c in np.unique(sub_code).tolist():
        sub_names.setdefault(c, f"街道 {c}")

    # ---- communities inside each sub-district, then zones for the rest
    comm_code = np.full(n, "", dtype=object)
    label = comm_hit.copy()
    label = _absorb_strays(label, metric, min_cells=min_zone_cells, same=sub_code)
    for k in np.flatnonzero(label >= 0).tolist():
        comm_code[k] = comm_codes[label[k]]
    zone_rows: dict[tuple[str, str], dict] = {}
    for k in np.flatnonzero(label >= 0).tolist():
        key = (sub_code[k], comm_code[k])
        if key not in zone_rows:
            zone_rows[key] = {"name": comm_names[label[k]], "provisional": False}
    cell_zone_name = np.array(
        [zone_rows[(sub_code[k], comm_code[k])]["name"] if label[k] >= 0 else "" for k in range(n)],
        dtype=object,
    )
    provisional = np.zeros(n, dtype=bool)
    uncovered = np.flatnonzero(comm_code == "")
    if len(uncovered):
        lines = np.array([], dtype=object)
        parts = []
        for layer, fn in ((roads, major_road_lines), (water, water_lines)):
            if layer is None or len(layer) == 0 or layer.crs is None:
                continue
            got = (
                fn(layer.to_crs(crs), highway_column=highway_column)
                if fn is major_road_lines
                else fn(layer.to_crs(crs))
            )
            if len(got):
                parts.append(got)
        if parts:
            lines = np.concatenate(parts)
        for sub in sorted(set(sub_code[uncovered].tolist())):
            members = uncovered[sub_code[uncovered] == sub]
            zone = build_zones(
                metric[members], lines=lines, min_cells=min_zone_cells, max_cells=max_zone_cells
            )
            used = {c for (s, c) in zone_rows if s == sub}
            used |= {c for c, s in zip(comm_codes, comm_subs, strict=True) if s == sub}
            for z in range(int(zone.max()) + 1):
                code = _next_free(used)
                used.add(code)
                name = zone_name(sub_names[sub], z + 1)
                idx = members[zone == z]
                comm_code[idx] = code
                cell_zone_name[idx] = name
                provisional[idx] = True
                zone_rows[(sub, code)] = {"name": name, "provisional": True}

    # ---- serials
    area = shapely.area(metric)
    reps = shapely.point_on_surface(metric)
    x, y = shapely.get_x(reps), shapely.get_y(reps)
    serial = np.zeros(n, dtype=np.int64)
    keys = np.array([f"{s}{c}" for s, c in zip(sub_code, comm_code, strict=True)])
    counts: dict[tuple[str, str], int] = {}
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        if len(members) > 999:
            msg = (
                f"{sub_names.get(key[:3], key[:3])} (街道 {key[:3]}) "
                f"{zone_rows.get((key[:3], key[3:]), {}).get('name', '')} (社区 {key[3:]}) "
                f"有 {len(members)} 个网格, 超过编码上限 999, 请加大网格面积或细分社区"
            )
            raise GridBuildError(msg)
        counts[(key[:3], key[3:])] = len(members)
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
    out["zone_name"] = cell_zone_name.astype(str)
    out["provisional"] = provisional
    zones = pd.DataFrame(
        [
            {
                "subdistrict_code": s,
                "community_code": c,
                "name": zone_rows[(s, c)]["name"],
                "subdistrict_name": sub_names[s],
                "provisional": zone_rows[(s, c)]["provisional"],
                "cell_count": counts[(s, c)],
            }
            for (s, c) in sorted(counts)
        ],
        columns=ZONE_COLUMNS,
    )
    return out, zones


def code_cells(
    cells: gpd.GeoDataFrame,
    *,
    county_code: str,
    subdistricts: gpd.GeoDataFrame | None,
    communities: gpd.GeoDataFrame | None,
    row_height_m: float | None = None,
    **options,
) -> gpd.GeoDataFrame:
    """Add ``subdistrict_code``, ``community_code``, ``serial``, ``code`` and ``area_m2``.

    The cells of ``code_grid`` without its zone table; ``options`` are passed on
    (``roads``, ``water``, ``rest_name`` ...).
    """
    out, _ = code_grid(
        cells,
        county_code=county_code,
        subdistricts=subdistricts,
        communities=communities,
        row_height_m=row_height_m,
        **options,
    )
    return out
