"""The demo town's fixed data: its names, vocabularies, name pools and category table.

The name pools (lane words, communities, shops, hotels, estates, villages, departments,
offices, schools, hospitals, parks, markets, stations, companies, how inspectors word
problems, typos, history notes ...) live in ``gis/data/demo_town.json``, loaded once here.
The category table lives only in the repository's ``layers/categories.csv``; the
generator reads it with ``read_categories``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

#: The name pools file beside the gis package.
POOLS_PATH = Path(__file__).resolve().parents[1] / "data" / "demo_town.json"
#: The category table of the national sanitary county standard (国家卫生县城标准).
CATEGORIES_PATH = Path(__file__).resolve().parents[2] / "layers" / "categories.csv"

COUNTY_CODE = "532599"  # fictitious in GB/T 2260 form (53 云南, 25 红河州)
COUNTY_NAME = "云岭县"
SEAT_NAME = "云岭镇"
PROVINCE = "云南省"
PREFECTURE = "红河州"
RIVER_NAME = "南溪河"
POI_TYPES = (
    "农贸市场",
    "学校",
    "医院",
    "诊所",
    "餐饮",
    "宾馆",
    "公厕",
    "垃圾中转站",
    "垃圾收集点",
    "建筑工地",
    "车站",
    "口岸",
    "居民小区",
    "城中村",
    "公共场所",
    "机关单位",
    "公园广场",
)
SOURCES = ("州级交叉检查", "省级暗访", "国家评估", "县级督查", "自查", "群众投诉/12345")


def _load_pools(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


#: Every name pool, keyed as in ``gis/data/demo_town.json`` (read-only by convention).
POOLS: dict[str, Any] = _load_pools(POOLS_PATH)


def read_categories(path: Path | str | None = None) -> list[dict]:
    """Read the category table the demo town is built from.

    Parameters
    ----------
    path : Path or str, optional
        A CSV with the columns ``code, name, level, parent, deadline_days, points,
        functional_unit`` (UTF-8). Defaults to the repository's ``layers/categories.csv``.

    Returns
    -------
    list of dict
        One per row in file order; ``level`` and ``deadline_days`` as int, ``points`` as
        float, the other columns as text (``""`` when empty).

    Raises
    ------
    ValueError
        If a column is missing or a number does not parse (names the row).
    """
    path = Path(path) if path is not None else CATEGORIES_PATH
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        wanted = ("code", "name", "level", "parent", "deadline_days", "points", "functional_unit")
        missing = [c for c in wanted if c not in (reader.fieldnames or ())]
        if missing:
            msg = f"{path} 缺少列: {', '.join(missing)}"
            raise ValueError(msg)
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(
                    {
                        "code": row["code"],
                        "name": row["name"],
                        "level": int(row["level"]),
                        "parent": row["parent"] or "",
                        "deadline_days": int(row["deadline_days"]),
                        "points": float(row["points"]),
                        "functional_unit": row["functional_unit"] or "",
                    }
                )
            except (TypeError, ValueError) as exc:
                msg = f"{path} 第 {line} 行无法读取: {exc}"
                raise ValueError(msg) from None
    return rows
