"""系统初始化检查: what a county has loaded, what it still lacks, and how to fix each.

The first day from a county's own data runs ``init-db`` → ``import-osm`` → boundary →
``make-grid`` → ``activate-grid`` → units and accounts → ``import-issues``. Each step
leaves something in the database; :func:`run_setup_check` looks for every one and
answers with one :class:`SetupCheck` per line, shown by the admin page and printed by
``flask --app app check-setup``. No Flask here: the caller passes the session and the
plain settings (``county_code``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import func, select

from app.models import (
    CalendarYear,
    Category,
    CategoryAlias,
    Cell,
    Feature,
    GridLayer,
    Layer,
    Setting,
    Unit,
    User,
    today_local,
)
from gis.demo_town.data import COUNTY_CODE as DEMO_TOWN_CODE

READY, MISSING, WARNING = "ready", "missing", "warning"
STATUS_LABELS = {READY: "就绪", MISSING: "缺少", WARNING: "警告"}
DEMO_COUNTY_CODE = DEMO_TOWN_CODE
DEMO_SEED_KEY = "demo_seeded"
ROLE_LABELS = {"admin": "管理员", "inspector": "督查员", "unit_head": "责任单位", "leader": "领导"}
# Unit kinds that stand behind every unassigned cell of their sub-district (属地兜底).
OFFICE_KINDS = ("subdistrict",)


@dataclass
class SetupCheck:
    """One line of the setup check.

    Attributes
    ----------
    key : str
        Stable identifier (``"roads"``, ``"grid"`` ...).
    label : str
        What is checked, in Chinese.
    status : str
        ``"ready"``, ``"missing"`` or ``"warning"``.
    count : int or None
        How many of it the database holds.
    detail : str
        What was found or what is wrong (Chinese).
    required : bool
        Whether the system cannot work without it (``check-setup --strict`` fails).
    link : str or None
        The page that fixes it (a path of this site).
    command : str or None
        The command that fixes it.
    """

    key: str
    label: str
    status: str
    count: int | None
    detail: str
    required: bool = False
    link: str | None = None
    command: str | None = None

    @property
    def status_label(self) -> str:
        """就绪, 缺少 or 警告."""
        return STATUS_LABELS[self.status]

    @property
    def blocking(self) -> bool:
        """Whether this line makes ``--strict`` fail: required and not ready."""
        return self.required and self.status == MISSING

    def as_dict(self) -> dict:
        """Return the line as plain data (for JSON), with its status label."""
        return {**asdict(self), "status_label": self.status_label}


def run_setup_check(
    session, *, county_code: str | None = None, today: date | None = None
) -> list[SetupCheck]:
    """Check everything a county needs before its first problem list is imported.

    Parameters
    ----------
    session : Session
        The database session (read only).
    county_code : str, optional
        The configured ``COUNTY_CODE``; the stored county setting wins when present.
    today : date, optional
        The county's today (default :func:`app.models.today_local`); decides which
        holiday years are checked.

    Returns
    -------
    list of SetupCheck
        In the order of the first day's steps.
    """
    today = today or today_local()
    counts = _layer_counts(session)
    checks = [_county_code(session, county_code)]
    checks.append(
        _layer_line(counts, "boundary", "建成区边界", required=True,
                    fix="flask --app app import-layer 边界.geojson --kind boundary",
                    hint="没有边界无法生成网格 (import-osm 会由道路和建筑推导一个)")
    )
    checks.append(
        _layer_line(counts, "roads", "道路", required=True,
                    fix="flask --app app import-osm 城区.osm.pbf",
                    hint="没有道路无法按路名和交叉口定位问题")
    )
    checks.append(
        _layer_line(counts, "pois", "兴趣点 (学校、市场、医院 ...)",
                    fix="flask --app app import-layer 兴趣点.geojson --kind pois",
                    hint="“XX中学对面”“XX市场内”这类地址需要兴趣点")
    )
    checks.append(_addresses(session, counts))
    checks.append(
        _layer_line(counts, "buildings", "建筑",
                    fix="flask --app app import-layer 建筑.geojson --kind buildings",
                    hint="有名称的建筑 (XX大厦) 可作地标，带门牌的建筑可作门牌")
    )
    checks.append(
        _layer_line(counts, "subdistricts", "街道/乡镇",
                    fix="flask --app app import-layer 街道.geojson --kind subdistricts",
                    hint="网格编码第 7–9 位取自街道；没有时网格仍可用，编码按整体编排")
    )
    checks.append(
        _layer_line(counts, "communities", "社区",
                    fix="flask --app app import-layer 社区.zip --kind communities",
                    hint="没有社区时由片区 (按主干道和水系划分) 暂代社区编码")
    )
    grid = session.execute(
        select(GridLayer).where(GridLayer.is_active.is_(True)).order_by(GridLayer.id.desc())
    ).scalars().first()
    checks.append(_grid(session, grid))
    checks.append(_assignment(session, grid))
    checks.append(_units(session))
    checks.extend(_accounts(session))
    checks.append(_categories(session))
    checks.append(_category_aliases(session))
    checks.extend(_holidays(session, today))
    return checks


def strict_failures(checks: list[SetupCheck]) -> list[SetupCheck]:
    """Return the required lines that are missing (``check-setup --strict`` exits 1)."""
    return [c for c in checks if c.blocking]


def summary(checks: list[SetupCheck]) -> dict[str, int]:
    """Count the lines per status."""
    out = {READY: 0, MISSING: 0, WARNING: 0}
    for check in checks:
        out[check.status] += 1
    return out


# ------------------------------------------------------------------------------ lines


def _layer_counts(session) -> dict[str, int]:
    rows = session.execute(
        select(Layer.kind, func.count(Feature.id))
        .join(Feature, Feature.layer_id == Layer.id)
        .where(Layer.active.is_(True))
        .group_by(Layer.kind)
    ).all()
    return {kind: int(n) for kind, n in rows}


def _layer_line(
    counts: dict[str, int], kind: str, label: str, *, fix: str, hint: str,
    required: bool = False,
) -> SetupCheck:
    n = counts.get(kind, 0)
    if n:
        return SetupCheck(kind, label, READY, n, f"已导入 {n} 个要素", required,
                          "/grids/layers", None)
    return SetupCheck(kind, label, MISSING if required else WARNING, 0, f"未导入：{hint}",
                      required, "/grids/layers", fix)


def _county_code(session, configured: str | None) -> SetupCheck:
    setting = session.get(Setting, "county")
    stored = setting.value.get("county_code") if setting and isinstance(setting.value, dict) else None
    code = str(stored or configured or "").strip()
    fix = "在环境变量中设置 COUNTY_CODE=本县 6 位行政区划代码 (GB/T 2260)，然后重建网格"
    if not re.fullmatch(r"\d{6}", code):
        return SetupCheck("county_code", "县级行政区划代码", MISSING, None,
                          f"代码 “{code or '(空)'}” 不是 6 位数字", True, None, fix)
    demo = session.get(Setting, DEMO_SEED_KEY) is not None
    if code == DEMO_COUNTY_CODE and not demo:
        return SetupCheck("county_code", "县级行政区划代码", WARNING, None,
                          f"{code} 是演示县城 (云岭县) 的虚构代码，网格编码将不是本县的", False,
                          None, fix)
    return SetupCheck("county_code", "县级行政区划代码", READY, None,
                      f"{code}{' (演示数据)' if demo else ''}", True, None, None)


def _addresses(session, counts: dict[str, int]) -> SetupCheck:
    plates = counts.get("addresses", 0)
    fix = "flask --app app import-layer 门牌.geojson --kind addresses"
    if plates:
        return SetupCheck("addresses", "门牌地址", READY, plates, f"已导入 {plates} 个门牌",
                          False, "/grids/layers", None)
    return SetupCheck("addresses", "门牌地址", WARNING, 0,
                      "未导入门牌：“人民路23号门前”只能定位到道路中点，多数需人工定位",
                      False, "/grids/layers", fix)


def _grid(session, grid: GridLayer | None) -> SetupCheck:
    if grid is None:
        built = session.execute(select(func.count(GridLayer.id))).scalar_one()
        detail = (f"已生成 {built} 个网格版本但均未启用" if built
                  else "没有网格：问题无法落格、无法派给责任单位")
        command = ("flask --app app activate-grid ID" if built
                   else "flask --app app make-grid --method block")
        return SetupCheck("grid", "启用的网格", MISSING, 0, detail, True, "/grids/", command)
    n = session.execute(select(func.count(Cell.id)).where(Cell.grid_id == grid.id)).scalar_one()
    bad = session.execute(
        select(func.count(Cell.id)).where(
            Cell.grid_id == grid.id,
            (Cell.subdistrict_code == "000") | (Cell.community_code == "000"),
        )
    ).scalar_one()
    if not n:
        return SetupCheck("grid", "启用的网格", MISSING, 0, f"网格图层 {grid.id} 没有网格",
                          True, "/grids/", "flask --app app make-grid --method block")
    if bad:
        return SetupCheck("grid", "启用的网格", WARNING, int(n),
                          f"网格图层 {grid.id}「{grid.name}」: {bad} 个网格编码含 000 段",
                          True, f"/grids/{grid.id}/report", None)
    return SetupCheck("grid", "启用的网格", READY, int(n),
                      f"网格图层 {grid.id}「{grid.name}」，{n} 个网格", True,
                      f"/grids/{grid.id}/report", None)


def _assignment(session, grid: GridLayer | None) -> SetupCheck:
    label = "网格分配到责任单位"
    if grid is None:
        return SetupCheck("assignment", label, MISSING, 0, "没有启用的网格", True, "/grids/",
                          None)
    total = session.execute(
        select(func.count(Cell.id)).where(Cell.grid_id == grid.id)
    ).scalar_one()
    assigned = session.execute(
        select(func.count(Cell.id)).where(Cell.grid_id == grid.id, Cell.unit_id.is_not(None))
    ).scalar_one()
    offices = session.execute(
        select(func.count(Cell.id))
        .join(Unit, Cell.unit_id == Unit.id)
        .where(Cell.grid_id == grid.id, Unit.kind.in_(OFFICE_KINDS))
    ).scalar_one()
    link = f"/grids/{grid.id}/assign"
    fix = "flask --app app assign-cells 网格分配.xlsx"
    if not total:
        return SetupCheck("assignment", label, MISSING, 0, "网格为空", True, link, fix)
    share = assigned / total
    detail = (f"{assigned}/{total} 个网格已分配 ({share:.0%})，"
              f"其中 {offices} 个由街道/乡镇兜底 (属地兜底)")
    if assigned == 0:
        return SetupCheck("assignment", label, MISSING, 0, detail + "：问题无法派给单位", True,
                          link, fix)
    status = READY if assigned == total else WARNING
    return SetupCheck("assignment", label, status, int(assigned), detail, True, link,
                      None if status == READY else fix)


def _units(session) -> SetupCheck:
    n = session.execute(select(func.count(Unit.id)).where(Unit.active.is_(True))).scalar_one()
    if n:
        return SetupCheck("units", "责任单位", READY, int(n), f"{n} 个在用单位", True,
                          "/admin/units", None)
    return SetupCheck("units", "责任单位", MISSING, 0, "没有责任单位", True, "/admin/units",
                      "在「账号管理 → 单位」添加，或上传花名册")


def _accounts(session) -> list[SetupCheck]:
    rows = dict(
        session.execute(
            select(User.role, func.count(User.id)).where(User.active.is_(True)).group_by(User.role)
        ).all()
    )
    out = []
    for role, label in ROLE_LABELS.items():
        n = int(rows.get(role, 0))
        required = role == "admin"
        status = READY if n else (MISSING if required else WARNING)
        command = (None if n else
                   f"flask --app app create-user 用户名 --role {role} --password 密码"
                   + (" --unit 单位名称" if role == "unit_head" else ""))
        out.append(SetupCheck(f"accounts_{role}", f"账号: {label}", status, n,
                              f"{n} 个在用账号" if n else f"没有{label}账号", required,
                              "/admin/users", command))
    return out


def _categories(session) -> SetupCheck:
    level1 = session.execute(
        select(func.count(Category.id)).where(Category.level == 1)
    ).scalar_one()
    total = session.execute(select(func.count(Category.id))).scalar_one()
    if total:
        return SetupCheck("categories", "问题类别", READY, int(total),
                          f"{level1} 个一级类别，共 {total} 个类别", True, None, None)
    return SetupCheck("categories", "问题类别", MISSING, 0, "没有问题类别：清单无法归类",
                      True, None, "flask --app app init-db")


def _category_aliases(session) -> SetupCheck:
    n = session.execute(select(func.count(CategoryAlias.id))).scalar_one()
    if n:
        return SetupCheck("category_aliases", "类别同义词", READY, int(n), f"{n} 个同义词",
                          False, None, None)
    return SetupCheck("category_aliases", "类别同义词", WARNING, 0,
                      "没有同义词：清单里的“背街小巷卫生差”等写法只能模糊匹配", False, None,
                      "flask --app app init-db")


def _holidays(session, today: date) -> list[SetupCheck]:
    years = set(session.execute(select(CalendarYear.year)).scalars())
    out = []
    for year, required in ((today.year, True), (today.year + 1, False)):
        link = "/admin/tables/holidays"
        if year in years:
            out.append(SetupCheck(f"holidays_{year}", f"{year} 年节假日表", READY, None,
                                  "已录入", required, link, None))
            continue
        detail = ("未录入：期限按周末计算，不含法定节假日和调休" if required else
                  "未录入：国务院每年 12 月前后公布，公布后请在「基础表」录入")
        out.append(SetupCheck(f"holidays_{year}", f"{year} 年节假日表",
                              MISSING if required else WARNING, None, detail, required, link,
                              "flask --app app init-db" if required else None))
    return out
