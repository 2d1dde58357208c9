"""Writing the demo county seat's files (app/services/ops/demo_files.py) and its workbook."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from openpyxl import load_workbook

from app.services.imports.rows import WORKBOOK_HEADER
from app.services.ops.demo_files import WORKBOOK_NAME, write_demo_files

ROOT = Path(__file__).parents[3]
LAYERS = ROOT / "layers"
DEMO = LAYERS / "demo"
TRUTH = ROOT / "tests" / "fixtures" / "demo_workbook_truth.csv"
WORKBOOK = DEMO / WORKBOOK_NAME
GEOJSON = ("boundary", "river", "roads", "subdistricts", "communities", "pois", "addresses")


def test_workbook_has_126_rows_under_title_and_headers():
    wb = load_workbook(WORKBOOK)
    ws = wb.active
    assert "交叉检查" in ws.cell(row=1, column=1).value
    assert any(str(r).startswith("A1:") for r in ws.merged_cells.ranges)
    headers = [ws.cell(row=2, column=c).value for c in range(1, len(WORKBOOK_HEADER) + 1)]
    assert headers == list(WORKBOOK_HEADER)
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    assert len(rows) == 126
    assert [r[0] for r in rows] == list(range(1, 127))
    found = [r[5] for r in rows]
    assert sum(isinstance(v, dt.datetime) for v in found) > 80
    assert any(isinstance(v, str) and v.startswith("2026.") for v in found)
    with_coords = [r for r in rows if r[7] is not None]
    assert 0.12 <= len(with_coords) / 126 <= 0.3
    assert any(r[9] == "坐标来源:高德" for r in with_coords)
    assert any(r[4] is None for r in rows)
    assert any("云岭县" in (r[2] or "") for r in rows)


def test_regenerating_gives_identical_files(tmp_path):
    categories = LAYERS / "categories.csv"
    before = categories.read_bytes()
    written = write_demo_files(
        tmp_path, categories_path=categories, truth_path=tmp_path / "truth.csv"
    )
    assert written[WORKBOOK_NAME] == 126
    for name in [f"{n}.geojson" for n in GEOJSON] + ["units.csv", "history.json", "county.json"]:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name
    # The category table is the generator's input and lives only in layers/: never rewritten.
    assert categories.read_bytes() == before and "categories.csv" not in written
    assert (tmp_path / "truth.csv").read_bytes() == TRUTH.read_bytes()
    fresh = list(load_workbook(tmp_path / WORKBOOK_NAME).active.values)
    assert fresh == list(load_workbook(WORKBOOK).active.values)
