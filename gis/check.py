"""Check a grid layer before it is activated: validity, gaps, overlaps, codes.

A grid is only useful if every point of the county seat falls in exactly one cell and
every cell code is unique, so ``check_grid`` measures gaps and overlaps in the local
UTM zone (in m²) and reports each one with its place, in Chinese, for the 创卫办 admin.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis.crs import WGS84, utm_crs_for_geom

KINDS = (
    "invalid_geometry",
    "repaired_geometry",
    "overlap",
    "gap",
    "duplicate_code",
    "malformed_code",
    "outside_boundary",
    "crosses_community",
    "empty_geometry",
)


@dataclass
class Finding:
    """One problem found in a grid."""

    kind: str
    level: str  # "error" | "warning"
    message: str
    codes: list[str] = field(default_factory=list)
    area_m2: float | None = None
    location: tuple[float, float] | None = None  # (lon, lat) WGS-84


@dataclass
class GridReport:
    """What ``check_grid`` found, plus the cells with geometries made valid."""

    findings: list[Finding]
    repaired: gpd.GeoDataFrame

    @property
    def ok(self) -> bool:
        """True when there is no error-level finding."""
        return not any(f.level == "error" for f in self.findings)

    def to_dict(self) -> dict:
        """Return a JSON-ready summary (without the repaired geometries)."""
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return {
            "ok": self.ok,
            "cells": len(self.repaired),
            "counts": counts,
            "findings": [
                {**asdict(f), "location": list(f.location) if f.location else None}
                for f in self.findings
            ],
        }


def _label(codes: list[str], k: int) -> str:
    code = codes[k]
    return f"网格 {code}" if code else f"第 {k + 1} 行网格"


def _where(geom_utm: BaseGeometry, to_wgs) -> tuple[float, float]:
    p = geom_utm.representative_point() if not geom_utm.is_empty else geom_utm
    lon, lat = to_wgs.transform(p.x, p.y)
    return (round(float(lon), 7), round(float(lat), 7))


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def check_grid(
    cells: gpd.GeoDataFrame,
    *,
    boundary: BaseGeometry | None = None,
    communities: gpd.GeoDataFrame | None = None,
    county_code: str | None = None,
    tolerance_m2: float = 1.0,
) -> GridReport:
    """Check a grid for invalid cells, gaps, overlaps, stray cells and bad codes.

    Parameters
    ----------
    cells : GeoDataFrame
        The grid in EPSG:4326 (any CRS is accepted and converted). A ``code`` column,
        when present, is checked for uniqueness and form.
    boundary : Polygon or MultiPolygon, optional
        The area the grid must cover exactly (EPSG:4326). Without it, gaps are the
        holes inside the union of the cells.
    communities : GeoDataFrame, optional
        Community polygons; a cell overlapping two of them by more than the tolerance
        is reported as ``crosses_community``.
    county_code : str, optional
        The 6-digit county code every cell code must start with.
    tolerance_m2 : float
        Overlaps, gaps and out-of-boundary parts at or below this area are ignored.

    Returns
    -------
    GridReport
        ``findings`` (errors and warnings), ``repaired`` (cells with geometries made
        valid by ``shapely.make_valid``) and ``ok``.
    """
    findings: list[Finding] = []
    gdf = cells.copy()
    if gdf.crs is None:
        gdf = gdf.set_crs(WGS84)
    elif not gdf.crs.equals(WGS84):
        gdf = gdf.to_crs(WGS84)
    gdf = gdf.reset_index(drop=True)
    has_code = "code" in gdf.columns
    codes = [
        "" if (c is None or (isinstance(c, float) and np.isnan(c))) else str(c)
        for c in (gdf["code"] if has_code else [None] * len(gdf))
    ]

    # 1. Geometry validity and repair (in WGS-84, where the cells are stored).
    geoms = gdf.geometry.to_numpy().copy()
    usable = np.ones(len(gdf), dtype=bool)
    for k, g in enumerate(geoms):
        if g is None or g.is_empty:
            usable[k] = False
            findings.append(
                Finding("empty_geometry", "error", f"{_label(codes, k)} 几何为空", [codes[k]])
            )
            continue
        if g.is_valid and g.geom_type in ("Polygon", "MultiPolygon"):
            continue
        reason = shapely.is_valid_reason(g)
        fixed = _polygonal(shapely.make_valid(g))
        if fixed.is_empty or fixed.area == 0:
            usable[k] = False
            findings.append(
                Finding(
                    "invalid_geometry",
                    "error",
                    f"{_label(codes, k)} 几何无效且无法修复 ({reason})",
                    [codes[k]],
                )
            )
            continue
        geoms[k] = fixed
        c = fixed.representative_point()
        findings.append(
            Finding(
                "repaired_geometry",
                "warning",
                f"{_label(codes, k)} 几何无效 ({reason}), 已自动修复",
                [codes[k]],
                location=(round(c.x, 7), round(c.y, 7)),
            )
        )
    repaired = gdf.copy()
    repaired.geometry = gpd.GeoSeries(geoms, crs=WGS84)

    idx = np.flatnonzero(usable)
    if len(idx) == 0:
        return GridReport(findings, repaired)
    sample = shapely.union_all(geoms[idx]) if boundary is None else boundary
    crs = utm_crs_for_geom(sample)
    metric = gpd.GeoSeries(geoms[idx], crs=WGS84).to_crs(crs).to_numpy()
    from gis.crs import transformer

    to_wgs = transformer(crs, WGS84)

    # 2. Overlaps between pairs of cells.
    tree = shapely.STRtree(metric)
    a, b = tree.query(metric, predicate="intersects")
    mask = a < b
    a, b = a[mask], b[mask]
    if len(a):
        inter = shapely.intersection(metric[a], metric[b])
        area = shapely.area(inter)
        for p in np.flatnonzero(area > tolerance_m2).tolist():
            ka, kb = int(idx[a[p]]), int(idx[b[p]])
            where = _where(inter[p], to_wgs)
            findings.append(
                Finding(
                    "overlap",
                    "error",
                    f"{_label(codes, ka)} 与 {_label(codes, kb)} 重叠 {area[p]:.1f} 平方米, "
                    f"位置 ({where[0]}, {where[1]})",
                    [codes[ka], codes[kb]],
                    float(area[p]),
                    where,
                )
            )

    # 3. Gaps (against the boundary, or holes inside the grid) and stray cells.
    union = shapely.union_all(metric)
    if boundary is not None:
        bnd = gpd.GeoSeries([_polygonal(shapely.make_valid(boundary))], crs=WGS84)
        bnd_m = bnd.to_crs(crs).iloc[0]
        gaps = shapely.difference(bnd_m, union)
        shapely.prepare(bnd_m)
        outside = shapely.difference(metric, bnd_m)
        out_area = shapely.area(outside)
        for p in np.flatnonzero(out_area > tolerance_m2).tolist():
            k = int(idx[p])
            where = _where(outside[p], to_wgs)
            findings.append(
                Finding(
                    "outside_boundary",
                    "error",
                    f"{_label(codes, k)} 有 {out_area[p]:.1f} 平方米在边界之外, "
                    f"位置 ({where[0]}, {where[1]})",
                    [codes[k]],
                    float(out_area[p]),
                    where,
                )
            )
    else:
        holes = [
            shapely.Polygon(r)
            for poly in shapely.get_parts(union)
            if poly.geom_type == "Polygon"
            for r in poly.interiors
        ]
        gaps = shapely.union_all(holes) if holes else shapely.Polygon()
    for gap in shapely.get_parts(_polygonal(gaps)):
        if gap.area <= tolerance_m2:
            continue
        where = _where(gap, to_wgs)
        near = (
            tree.query(gap, predicate="touches").tolist()
            or tree.query(gap.buffer(0.5), predicate="intersects").tolist()
        )
        near_codes = [codes[int(idx[n])] for n in near if codes[int(idx[n])]]
        around = f", 相邻网格 {'、'.join(near_codes[:6])}" if near_codes else ""
        findings.append(
            Finding(
                "gap",
                "error",
                f"位置 ({where[0]}, {where[1]}) 有 {gap.area:.1f} 平方米未被任何网格覆盖{around}",
                near_codes,
                float(gap.area),
                where,
            )
        )

    # 4. Cells that straddle two communities.
    if communities is not None and len(communities):
        comm = (
            communities.to_crs(crs)
            if communities.crs is not None
            else communities.set_crs(WGS84).to_crs(crs)
        )
        cgeoms = np.array([_polygonal(shapely.make_valid(g)) for g in comm.geometry], dtype=object)
        names = (
            comm["name"].astype(str).tolist()
            if "name" in comm.columns
            else (comm["code"].astype(str).tolist() if "code" in comm.columns else None)
        )
        ctree = shapely.STRtree(cgeoms)
        ci, cj = ctree.query(metric, predicate="intersects")
        if len(ci):
            area = shapely.area(shapely.intersection(metric[ci], cgeoms[cj]))
            big = area > tolerance_m2
            per_cell: dict[int, list[tuple[int, float]]] = {}
            for p in np.flatnonzero(big).tolist():
                per_cell.setdefault(int(ci[p]), []).append((int(cj[p]), float(area[p])))
            for p, hits in per_cell.items():
                if len(hits) < 2:
                    continue
                k = int(idx[p])
                where = _where(metric[p], to_wgs)
                which = "、".join(
                    f"{names[c] if names else f'第 {c + 1} 个社区'} ({a:.0f} 平方米)"
                    for c, a in hits
                )
                findings.append(
                    Finding(
                        "crosses_community",
                        "error",
                        f"{_label(codes, k)} 跨越多个社区: {which}",
                        [codes[k]],
                        float(sum(a for _, a in hits)),
                        where,
                    )
                )

    # 5. Codes.
    if has_code:
        pattern = re.compile(r"^\d{15}$")
        seen: dict[str, list[int]] = {}
        for k, code in enumerate(codes):
            seen.setdefault(code, []).append(k)
            if not pattern.match(code):
                findings.append(
                    Finding(
                        "malformed_code",
                        "error",
                        f"第 {k + 1} 行网格编码 {code!r} 不是 15 位数字",
                        [code],
                    )
                )
            elif code[6:9] == "000" or code[9:12] == "000":
                slot = "街道" if code[6:9] == "000" else "社区"
                findings.append(
                    Finding(
                        "malformed_code",
                        "error",
                        f"第 {k + 1} 行网格编码 {code} 的{slot}段为 000 "
                        "(每个网格都应属于一个街道和社区或片区)",
                        [code],
                    )
                )
            elif county_code and not code.startswith(str(county_code)):
                findings.append(
                    Finding(
                        "malformed_code",
                        "error",
                        f"第 {k + 1} 行网格编码 {code} 不以县级代码 {county_code} 开头",
                        [code],
                    )
                )
        for code, rows in seen.items():
            if code and len(rows) > 1:
                lines = "、".join(str(r + 1) for r in rows)
                findings.append(
                    Finding(
                        "duplicate_code",
                        "error",
                        f"网格编码 {code} 重复出现 {len(rows)} 次 (第 {lines} 行)",
                        [code],
                    )
                )
    return GridReport(findings, repaired)
