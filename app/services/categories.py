"""The category table (问题类别) loaded from and kept in step with layers/categories.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from app.models import Category, Unit
from app.services.errors import ValidationError


def load_categories(session, path: Path) -> int:
    """Upsert categories from a CSV (code,name,level,parent,deadline_days,points,functional_unit)."""
    units = {u.name: u for u in session.execute(select(Unit)).scalars()}
    existing = {c.code: c for c in session.execute(select(Category)).scalars()}
    count = 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for lineno, row in enumerate(csv.DictReader(handle), start=2):
            code = (row.get("code") or "").strip()
            if not code.isdigit():
                msg = f"{path.name} 第 {lineno} 行: 类别编码 {code!r} 无效"
                raise ValidationError(msg)
            try:
                deadline = int(row.get("deadline_days") or 5)
                points = float(row.get("points") or 1)
            except ValueError:
                msg = f"{path.name} 第 {lineno} 行: 时限或扣分不是数字"
                raise ValidationError(msg) from None
            cat = existing.get(code) or Category(code=code)
            cat.name = row["name"].strip()
            cat.level = int(row.get("level") or (1 if len(code) <= 2 else 2))
            cat.parent_code = (row.get("parent") or "").strip() or None
            cat.deadline_days = deadline
            cat.points = points
            unit_name = (row.get("functional_unit") or "").strip()
            cat.functional_unit = units.get(unit_name) if unit_name else None
            session.add(cat)
            count += 1
    session.flush()
    return count


def find_category(session, text: str | None) -> Category | None:
    """Match a category by code, name or "一级-二级" text as inspectors write it."""
    if not text:
        return None
    text = str(text).strip()
    cats = list(session.execute(select(Category)).scalars())
    by_code = {c.code: c for c in cats}
    if text in by_code:
        return by_code[text]
    parts = [p.strip() for p in text.replace("—", "-").replace("－", "-").split("-") if p.strip()]
    candidates = [c for c in cats if c.level == 2] + [c for c in cats if c.level == 1]
    for part in reversed(parts or [text]):
        for cat in candidates:
            if cat.name == part:
                return cat
    for part in reversed(parts or [text]):
        plain = part.replace('"', "").replace("“", "").replace("”", "")
        for cat in candidates:
            name = cat.name.replace('"', "").replace("“", "").replace("”", "")
            if plain and (plain in name or name in plain):
                return cat
    return None
