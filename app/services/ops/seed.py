"""Load the demo county seat (layers/demo) into an empty database; idempotent."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import geopandas as gpd
from sqlalchemy import select

from app.models import Issue, Setting, Unit, User, now_local
from app.services.core.passwords import hash_password
from app.services.grids.cells import activate_grid, hold_unassigned, store_grid
from app.services.grids.layers import store_layer
from app.services.imports.sheet import import_demo_workbook
from app.services.issues.intake import IssueInput, category_by_code, create_issue, transition
from app.services.tables.standard import load_standard_tables
from app.services.tables.workdays import load_calendar
from gis.coding import code_grid
from gis.grid import build_block_grid

SEED_KEY = "demo_seeded"
DEMO_PASSWORD = "demo1234"
LAYER_FILES = {
    "boundary": "boundary.geojson",
    "roads": "roads.geojson",
    "pois": "pois.geojson",
    "communities": "communities.geojson",
    "subdistricts": "subdistricts.geojson",
    "water": "river.geojson",
    "addresses": "addresses.geojson",
}


def is_seeded(session) -> bool:
    return session.get(Setting, SEED_KEY) is not None


def load_units(session, path: Path) -> dict[str, Unit]:
    """Create the units listed in units.csv (name, kind, contact, phone, ...)."""
    units = {u.name: u for u in session.execute(select(Unit)).scalars()}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["name"].strip()
            unit = units.get(name) or Unit(name=name)
            unit.kind = (row.get("kind") or "department").strip()
            unit.contact = (row.get("contact") or "").strip() or None
            unit.phone = (row.get("phone") or "").strip() or None
            session.add(unit)
            units[name] = unit
    session.flush()
    return units


def _unit_communities(path: Path) -> dict[str, list[str]]:
    """Map "sub-community" codes to the units that answer for them, in file order."""
    mapping: dict[str, list[str]] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            for code in (row.get("communities") or "").split(";"):
                code = code.strip()
                if code:
                    mapping.setdefault(code, []).append(row["name"].strip())
    return mapping


def assign_demo_cells(cells: gpd.GeoDataFrame, units: dict[str, Unit], path: Path) -> list:
    """Split each community's cells among its units in contiguous runs of serials."""
    responsible = _unit_communities(path)
    unit_ids = []
    for sub, com, serial in zip(cells["subdistrict_code"], cells["community_code"],
                                cells["serial"], strict=True):
        names = responsible.get(f"{sub}-{com}") or []
        if not names:
            unit_ids.append(None)
            continue
        total = int((cells["subdistrict_code"].eq(sub) & cells["community_code"].eq(com)).sum())
        share = max(1, -(-total // len(names)))
        unit_ids.append(units[names[min((int(serial) - 1) // share, len(names) - 1)]].id)
    return unit_ids


def build_demo_grid(session, demo_dir: Path, layers: dict, units: dict, county_code: str):
    """Build, code and activate the demo grid; every cell answers to a unit."""
    water = layers.get("water")
    if water is not None and "kind" in water.columns:
        water = water[water["kind"] != "centerline"]
    cells = build_block_grid(
        layers["boundary"].geometry.union_all(),
        roads=layers["roads"], barriers=water, communities=layers["communities"],
        target_area_m2=10_000,
    )
    cells, zones = code_grid(cells, county_code=county_code, subdistricts=layers["subdistricts"],
                             communities=layers["communities"], roads=layers["roads"],
                             water=water, rest_name="云岭镇")
    cells["unit_id"] = assign_demo_cells(cells, units, demo_dir / "units.csv")
    grid = store_grid(session, cells, name="演示县城责任网格 (街区法)", method="block",
                      params={"target_area_m2": 10_000}, zones=zones)
    hold_unassigned(session, grid)
    activate_grid(session, grid.id)
    return grid


def create_demo_users(session, units: dict[str, Unit]) -> list[tuple[str, str, str]]:
    """Create the demo accounts; return (username, role, unit) rows to print."""
    accounts = [("admin", "admin", None, "创卫办管理员"), ("inspector", "inspector", None, "督查员"),
                ("leader", "leader", None, "县领导")]
    for index, unit in enumerate(sorted(units.values(), key=lambda u: u.id), start=1):
        accounts.append((f"unit{index:02d}", "unit_head", unit, unit.name))
    rows = []
    password = hash_password(DEMO_PASSWORD)
    for username, role, unit, display in accounts:
        if session.execute(select(User).where(User.username == username)).scalar():
            continue
        session.add(User(username=username, role=role, unit=unit, display_name=display,
                         password_hash=password))
        rows.append((username, role, unit.name if unit else ""))
    session.flush()
    return rows


def load_history(session, path: Path) -> int:
    """Replay the demo's months of history through the real services."""
    records = json.loads(path.read_text(encoding="utf-8"))
    users = {u.role: u for u in session.execute(select(User)).scalars() if u.role != "unit_head"}
    heads = {u.unit_id: u for u in session.execute(
        select(User).where(User.role == "unit_head")).scalars()}
    calendar = load_calendar(session)
    actors = {"dispatch": "admin", "reject": "admin", "verify_ok": "inspector",
              "verify_fail": "inspector", "mark_duplicate": "admin"}
    count = 0
    for record in records:
        ref = f"demo-history:{record['ref']}"
        if session.execute(select(Issue.id).where(Issue.external_ref == ref)).scalar():
            continue
        category = category_by_code(session, record["category_code"])
        found = datetime.fromisoformat(record["reported_at"])
        issue = create_issue(
            session, users["inspector"],
            IssueInput(description=record["description"],
                       category=category.code if category else None,
                       address=record.get("address"), lon=record.get("lon"),
                       lat=record.get("lat"), source=record.get("source") or "县级督查",
                       found_at=found, external_ref=ref),
            calendar=calendar, trusted_import=True,  # history keeps its own dates
        )
        for event in record.get("events", []):
            action = event["action"]
            at = datetime.fromisoformat(event["at"])
            role = actors.get(action)
            actor = users[role] if role else heads.get(issue.unit_id) or users["admin"]
            transition(session, actor, issue.id, action, note=event.get("note"), at=at)
        count += 1
    session.flush()
    return count


def seed_demo(session, demo_dir: Path, *, county_code: str, log=print) -> dict:
    """Load the demo county seat unless the database already holds it."""
    if is_seeded(session):
        return {"seeded": False}
    demo_dir = Path(demo_dir)
    layers_dir = demo_dir.parent
    county = demo_dir / "county.json"
    if county.exists():
        session.add(Setting(key="county", value=json.loads(county.read_text(encoding="utf-8"))))
    units = load_units(session, demo_dir / "units.csv")
    # After the units, so the categories' functional units resolve (init-db had none).
    load_standard_tables(session, layers_dir)
    layers = {}
    for kind, filename in LAYER_FILES.items():
        path = demo_dir / filename
        if not path.exists():
            continue
        gdf = gpd.read_file(path)
        store_layer(session, gdf, kind=kind, name=f"演示县城 {filename}", source=str(filename))
        layers[kind] = gdf
    log(f"图层已载入: {', '.join(layers)}")
    grid = build_demo_grid(session, demo_dir, layers, units, county_code)
    log(f"责任网格已生成: {grid.cell_count} 个单元网格")
    accounts = create_demo_users(session, units)
    history = demo_dir / "history.json"
    n_history = load_history(session, history) if history.exists() else 0
    log(f"历史问题已载入: {n_history} 条")
    workbook = demo_dir / "州级交叉检查反馈问题清单.xlsx"
    if workbook.exists():
        summary = import_demo_workbook(session, workbook)
        log(f"州级交叉检查反馈问题清单已导入: {summary.summary()}")
    # The demo's evaluation calendar: the prefecture re-check next month, the province's
    # unannounced visit in spring; the national date is not yet announced.
    if session.get(Setting, "evaluation_calendar") is None:
        session.add(Setting(key="evaluation_calendar", value={
            "州级": {"date": "2026-12-18", "note": "州爱卫办复核"},
            "省级": {"date": "2027-04-20", "note": "省级暗访评估"},
            "国家级": {"date": None, "note": "待通知"},
        }))
    session.add(Setting(key=SEED_KEY, value={"at": now_local().isoformat()}))
    session.flush()
    return {"seeded": True, "cells": grid.cell_count, "issues": n_history, "accounts": accounts}
