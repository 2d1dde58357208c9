"""Build a grid: cut the county's boundary into cells, code and check them, store a version.

The geometry lives in ``gis/`` (``gis.grid`` cuts, ``gis.coding`` codes, ``gis.check``
checks); this module reads the stored layers it needs, refuses bad options before any
work, and stores a checked candidate as a new, inactive grid version whose cells already
answer to a unit (carried over from the active grid, else the sub-district office).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import geopandas as gpd
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Feature, GridLayer, Layer, Setting, User
from app.services.core import access
from app.services.core.audit import record
from app.services.core.errors import NotFoundError, ValidationError
from app.services.core.settings import Settings
from app.services.grids.cells import active_grid, carry_units, hold_unassigned, store_grid
from app.services.grids.layers import active_layer, layer_gdf, load_layer_gdf
from gis.check import check_grid
from gis.coding import code_grid
from gis.grid import build_block_grid, build_h3_grid, build_square_grid

METHODS = ("block", "square", "h3")
METHOD_LABELS = {
    "block": "街区法 (道路切分)",
    "square": "方格法",
    "h3": "H3 六边形",
    "import": "导入",
}
FINDING_LABELS = {
    "invalid_geometry": "几何无效",
    "repaired_geometry": "几何已修复",
    "overlap": "重叠",
    "gap": "缝隙",
    "duplicate_code": "编码重复",
    "malformed_code": "编码错误",
    "outside_boundary": "超出边界",
    "crosses_community": "跨社区",
    "empty_geometry": "几何为空",
}
# A cell that straddles two communities can still locate and route problems; it is a
# quality warning here, not a reason to refuse a grid (square and H3 grids ignore
# community lines by design). Everything else error-level breaks "one point, one cell".
SOFT_KINDS = {"crosses_community", "repaired_geometry"}
# Cap what a request builds so one form submission cannot tie up a worker.
MAX_CELLS = 20_000
DEFAULT_TARGET_AREA = 10_000.0
DEFAULT_SIZE = 100.0
DEFAULT_RESOLUTION = 10
DEFAULT_COUNTY_CODE = Settings.county_code


def resolve_county_code(session: Session, configured: str = DEFAULT_COUNTY_CODE) -> str:
    """Return the 6-digit county code: the stored county setting, else the configured one.

    Parameters
    ----------
    session
        The database session.
    configured
        The installation's code (``Settings.county_code``), used when the office has not
        stored its own.

    Returns
    -------
    str
        The code every cell code starts with.
    """
    setting = session.get(Setting, "county")
    if setting and isinstance(setting.value, dict) and setting.value.get("county_code"):
        return str(setting.value["county_code"])
    return str(configured or DEFAULT_COUNTY_CODE)


def rest_subdistrict_name(session: Session) -> str:
    """Name of the sub-district for cells no sub-district covers: the seat's, else "城区".

    A county seat is one town or 城区 whose offices are not mapped; naming it after the
    seat (云岭镇) or the county (贵溪市城区) tells the office who holds those cells.
    """
    setting = session.get(Setting, "county")
    value = setting.value if setting and isinstance(setting.value, dict) else {}
    if value.get("seat_name"):
        return str(value["seat_name"]).strip()[:40]
    if value.get("county_name"):
        return f"{str(value['county_name']).strip()[:36]}城区"
    return "城区"


def boundary_geom(session: Session, name: str | None = None) -> tuple[object, int]:
    """Return the boundary polygon to cover and its layer id.

    Parameters
    ----------
    session
        The database session.
    name
        A boundary, sub-district or community feature's name; None for the whole active
        boundary layer.

    Raises
    ------
    NotFoundError
        If no feature has that name, or no boundary layer is stored.
    """
    if name:
        feature = (
            session.execute(
                select(Feature)
                .join(Layer)
                .where(
                    Feature.name == name,
                    Layer.kind.in_(("boundary", "subdistricts", "communities")),
                )
                .order_by(Layer.active.desc(), Feature.id.desc())
            )
            .scalars()
            .first()
        )
        if feature is None:
            msg = f"找不到名为 {name!r} 的边界 (边界、街道或社区图层中均没有)"
            raise NotFoundError(msg)
        return feature.shape, feature.layer_id
    layer = active_layer(session, "boundary")
    if layer is None:
        msg = "尚未导入建成区边界图层 (boundary)，请先 import-osm 或 import-layer --kind boundary"
        raise NotFoundError(msg)
    gdf = layer_gdf(session, layer.id)
    return shapely.union_all(gdf.geometry.to_numpy()), layer.id


def boundary_choices(session: Session) -> list[str]:
    """Names a grid can be built for: active boundary, sub-district and community features."""
    rows = session.execute(
        select(Layer.kind, Feature.name)
        .join(Feature, Feature.layer_id == Layer.id)
        .where(
            Layer.active.is_(True),
            Feature.name.is_not(None),
            Layer.kind.in_(("boundary", "subdistricts", "communities")),
        )
        .order_by(Layer.kind, Feature.id)
    ).all()
    return list(dict.fromkeys(name for _, name in rows))


# ----------------------------------------------------------------------------- checking


def check_cells(cells: gpd.GeoDataFrame, *, boundary, communities, county: str) -> dict:
    """Run ``gis.check_grid`` and mark which findings block a grid (see ``SOFT_KINDS``).

    Parameters
    ----------
    cells
        Coded cells (column ``code``), EPSG:4326.
    boundary
        The polygon the cells should cover, or None.
    communities
        The communities layer, or None.
    county
        The county code every cell code must start with.

    Returns
    -------
    dict
        The check's report with ``blocking`` (count), ``ok``, ``summary`` and per finding
        ``blocking`` and ``label``.
    """
    report = check_grid(
        cells, boundary=boundary, communities=communities, county_code=county
    ).to_dict()
    for finding in report["findings"]:
        finding["blocking"] = finding["level"] == "error" and finding["kind"] not in SOFT_KINDS
        finding["label"] = FINDING_LABELS.get(finding["kind"], finding["kind"])
    report["blocking"] = sum(f["blocking"] for f in report["findings"])
    report["ok"] = report["blocking"] == 0
    report["summary"] = _summary(report)
    return report


def _summary(report: dict) -> str:
    if not report["findings"]:
        return f"检查通过: {report['cells']} 个网格，无缝隙、无重叠、编码有效"
    parts = [f"{FINDING_LABELS.get(k, k)} {n} 处" for k, n in sorted(report["counts"].items())]
    head = "检查未通过" if report["blocking"] else "检查通过 (有提醒)"
    return f"{head}: {report['cells']} 个网格；{'，'.join(parts)}"


def check_summary(report: dict) -> dict:
    """Return the part of a check report a grid version keeps in its params."""
    return {"ok": report["ok"], "counts": report["counts"], "summary": report["summary"]}


def zone_summary(rows: list[dict]) -> dict:
    """Zones of a grid for the report: rows, and counts of real communities and 片区."""
    rows = [
        {
            "subdistrict_code": str(r["subdistrict_code"]),
            "community_code": str(r["community_code"]),
            "name": str(r["name"]),
            "subdistrict_name": r.get("subdistrict_name") or "",
            "provisional": bool(r["provisional"]),
            "cell_count": int(r["cell_count"]),
        }
        for r in rows
    ]
    rows.sort(key=lambda r: (r["subdistrict_code"], r["community_code"]))
    return {
        "rows": rows,
        "communities": sum(not r["provisional"] for r in rows),
        "provisional": sum(r["provisional"] for r in rows),
        "largest": max((r["cell_count"] for r in rows), default=0),
    }


def zone_label(name: str, provisional: bool) -> str:
    """A zone as people read it: "东门社区", or "城区 第3片区 · 片区(临时)"."""
    return f"{name} · 片区(临时)" if provisional else name


# ----------------------------------------------------------------------------- building


@dataclass
class GridCandidate:
    """A built and coded grid that is not stored yet, with its check report."""

    cells: gpd.GeoDataFrame
    method: str
    params: dict
    report: dict
    boundary: object = None
    warnings: list[str] = field(default_factory=list)
    zones: object = None  # the zone table of gis.coding.code_grid


def _number(value, label: str, *, low: float, high: float, integer: bool = False):
    if value is None or value == "":
        return None
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        msg = f"{label} 必须是{'整数' if integer else '数字'}: {value!r}"
        raise ValidationError(msg) from None
    if not (low <= number <= high) or number != number:
        msg = f"{label} 超出范围 ({low:g}–{high:g}): {value!r}"
        raise ValidationError(msg)
    return number


def build_candidate(
    session: Session,
    method: str,
    *,
    boundary_name: str | None = None,
    target_area: float | str | None = None,
    size: float | str | None = None,
    resolution: int | str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> GridCandidate:
    """Build and code a grid from the stored layers and check it, without storing it.

    Parameters
    ----------
    session
        The database session.
    method
        ``block`` (cut by roads), ``square`` or ``h3``.
    boundary_name
        Build for one named boundary, sub-district or community (default: the boundary).
    target_area, size, resolution
        The method's option, as typed into the form (checked here).
    county_code
        The installation's county code (``Settings.county_code``); a stored county
        setting wins.

    Raises
    ------
    ValidationError
        For an unknown method, an option out of range, or too many cells.
    NotFoundError
        When a layer the method needs is missing.
    """
    if method not in METHODS:
        msg = f"未知的网格生成方法 {method!r} (可选: block, square, h3)"
        raise ValidationError(msg)
    target = _number(target_area, "目标面积 (平方米)", low=500, high=1_000_000)
    size_m = _number(size, "方格边长 (米)", low=20, high=2_000)
    res = _number(resolution, "H3 分辨率", low=7, high=13, integer=True)
    boundary, boundary_layer = boundary_geom(session, boundary_name)
    communities = load_layer_gdf(session, "communities")
    subdistricts = load_layer_gdf(session, "subdistricts")
    params: dict = {"boundary_layer_id": boundary_layer, "boundary_name": boundary_name}
    roads = load_layer_gdf(session, "roads")
    water = load_layer_gdf(session, "water")
    if water is not None and "kind" in water.columns:
        # A river's centre line would split the water polygon's cells in two.
        water = water[water["kind"] != "centerline"]
    if method == "block":
        if roads is None or roads.empty:
            msg = "街区法需要道路图层 (roads)，请先导入道路"
            raise NotFoundError(msg)
        params["target_area_m2"] = target or DEFAULT_TARGET_AREA
        cells = build_block_grid(
            boundary,
            roads=roads,
            barriers=water,
            communities=communities,
            target_area_m2=params["target_area_m2"],
        )
    elif method == "square":
        params["size_m"] = size_m or DEFAULT_SIZE
        cells = build_square_grid(boundary, size_m=params["size_m"])
    else:
        params["resolution"] = res if res is not None else DEFAULT_RESOLUTION
        cells = build_h3_grid(boundary, resolution=params["resolution"])
    if len(cells) > MAX_CELLS:
        msg = f"生成了 {len(cells)} 个网格，超过上限 {MAX_CELLS}，请加大网格尺寸"
        raise ValidationError(msg)
    code = resolve_county_code(session, county_code)
    cells, zones = code_grid(
        cells,
        county_code=code,
        subdistricts=subdistricts,
        communities=communities,
        roads=roads,
        water=water,
        rest_name=rest_subdistrict_name(session),
    )
    report = check_cells(cells, boundary=boundary, communities=communities, county=code)
    report["zones"] = zone_summary(zones.to_dict("records"))
    return GridCandidate(
        cells=cells, method=method, params=params, report=report, boundary=boundary, zones=zones
    )


def candidate_fc(candidate: GridCandidate) -> tuple[dict, tuple]:
    """Return a candidate's cells as GeoJSON (code, area, zone) and their bounds, for a preview."""
    cols = ["code", "area_m2", "geometry"]
    cells = candidate.cells[cols].copy()
    cells["area_m2"] = cells["area_m2"].round(0)
    if "zone_name" in candidate.cells.columns:
        cells["zone"] = [
            zone_label(n, bool(p))
            for n, p in zip(candidate.cells["zone_name"], candidate.cells["provisional"],
                            strict=True)
        ]
        cells["provisional"] = candidate.cells["provisional"].astype(bool).to_numpy()
    return json.loads(cells.to_json(drop_id=True)), tuple(float(v) for v in cells.total_bounds)


def make_grid(
    session: Session,
    method: str,
    boundary_name: str | None = None,
    target_area: float | str | None = None,
    size: float | str | None = None,
    resolution: int | str | None = None,
    *,
    user: User | None = None,
    name: str | None = None,
    county_code: str = DEFAULT_COUNTY_CODE,
) -> GridLayer:
    """Build, code and check a grid and store it as a new, inactive version.

    See :func:`build_candidate` for the options; ``user`` None is the command line.
    """
    if user is not None:
        access.require(user, "manage_grid")
    candidate = build_candidate(
        session,
        method,
        boundary_name=boundary_name,
        target_area=target_area,
        size=size,
        resolution=resolution,
        county_code=county_code,
    )
    return save_candidate(session, candidate, user=user, name=name)


def save_candidate(
    session: Session, candidate: GridCandidate, *, user: User | None = None,
    name: str | None = None,
) -> GridLayer:
    """Store a checked candidate as a new inactive grid version.

    Raises
    ------
    ValidationError
        If the candidate did not pass its check (nothing is stored).
    """
    if user is not None:
        access.require(user, "manage_grid")
    if not candidate.report["ok"]:
        msg = f"网格未通过检查，不能保存: {candidate.report['summary']}"
        raise ValidationError(msg)
    label = METHOD_LABELS.get(candidate.method, candidate.method)
    params = {**candidate.params, "check": check_summary(candidate.report)}
    if candidate.report.get("zones"):
        z = candidate.report["zones"]
        params["zones"] = {k: z[k] for k in ("communities", "provisional", "largest")}
    grid = store_grid(
        session,
        candidate.cells,
        name=name or f"责任网格 ({label})",
        method=candidate.method,
        params=params,
        zones=candidate.zones,
    )
    held = settle_units(session, grid)
    grid.params = {**grid.params, "settled": {"carried": held["carried"], "held": held["held"]}}
    record(
        session,
        user,
        "make_grid",
        f"网格图层 {grid.id}: {candidate.method}, {grid.cell_count} 个网格, "
        f"{held['carried']} 个沿用原单位, {held['held']} 个由属地街道兜底",
    )
    return grid


def settle_units(session: Session, grid: GridLayer) -> dict:
    """Give a new version's cells their units: carried over by overlap, else the office.

    Cells lying mostly inside a cell of the active grid keep that cell's unit (a rebuild
    after importing communities keeps who answers for the place); every other cell falls
    to its sub-district office (属地兜底) until it is assigned.

    Returns
    -------
    dict
        ``carried`` (cells that kept a unit), ``held`` (cells the offices hold) and
        ``offices`` (office name → cells held).
    """
    carried = carry_units(session, grid, active_grid(session))
    held = hold_unassigned(session, grid)
    return {"carried": carried, "held": sum(held.values()), "offices": held}
