"""Write the synthetic demo county seat (layers/demo) from gis.demo_town.

Run ``python -m app.services.ops.demo_files layers/demo`` from the project root to regenerate
the committed files; it also rewrites the workbook truth fixture
``tests/fixtures/demo_workbook_truth.csv``. The generator reads the category table from
``layers/categories.csv`` (it lives only there). The problem workbook's header is the
importer's (``app.services.imports.rows.WORKBOOK_HEADER``). This module does not import Flask.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path

import geopandas as gpd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from shapely.geometry import mapping

from app.services.imports.rows import WORKBOOK_HEADER
from gis.demo_town.data import COUNTY_CODE
from gis.demo_town.town import DemoTown, generate_demo_town

WORKBOOK_NAME = "州级交叉检查反馈问题清单.xlsx"
UNIT_COLUMNS = ("name", "kind", "contact", "phone", "communities", "functional_categories")
TRUTH_COLUMNS = ("seq", "lon", "lat", "category_code", "address_form", "address")
TRUTH_NAME = "demo_workbook_truth.csv"
# A fixed timestamp keeps the workbook's document properties identical between runs.
_FIXED_TIME = dt.datetime(2026, 11, 12, 9, 0, 0)


def _geojson_text(gdf: gpd.GeoDataFrame) -> str:
    """Serialise a GeoDataFrame as GeoJSON, one feature a line (readable diffs)."""
    lines = []
    props = [c for c in gdf.columns if c != gdf.geometry.name]
    for row in gdf.itertuples(index=False):
        record = row._asdict()
        properties = {}
        for key in props:
            value = record[key]
            properties[key] = value.item() if hasattr(value, "item") else value
        feature = {
            "type": "Feature",
            "properties": properties,
            "geometry": mapping(record[gdf.geometry.name]),
        }
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return buf.getvalue()


def _write_workbook(path: Path, town: DemoTown) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "问题清单"
    ncols = len(WORKBOOK_HEADER)
    ws.cell(row=1, column=1, value=town.workbook_title)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
    ws.cell(row=1, column=1).font = Font(bold=True, size=16)
    ws.cell(row=1, column=1).alignment = Alignment(horizontal="center")
    for col, header in enumerate(WORKBOOK_HEADER, start=1):
        ws.cell(row=2, column=col, value=header).font = Font(bold=True)
    for r, row in enumerate(town.workbook_rows, start=3):
        if len(row) != ncols:
            msg = f"演示清单第 {r} 行有 {len(row)} 列, 表头有 {ncols} 列"
            raise ValueError(msg)
        for col, value in enumerate(row, start=1):
            cell = ws.cell(row=r, column=col, value=value if value != "" else None)
            if isinstance(value, dt.datetime):
                cell.number_format = "yyyy-mm-dd"
    for letter, width in zip("ABCDEFGHIJ", (6, 36, 34, 26, 22, 12, 12, 12, 12, 16), strict=True):
        ws.column_dimensions[letter].width = width
    wb.properties.creator = "云岭县创卫办 (演示数据)"
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    wb.save(path)


def write_demo_files(
    out_dir: Path,
    *,
    county_code: str = COUNTY_CODE,
    categories_path: Path | None = None,
    truth_path: Path | None = None,
) -> dict:
    """Generate the demo county seat and write its files into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Folder for the layers, units, history, county and workbook files.
    county_code : str
        Six-digit county code (default fictitious ``532599``).
    categories_path : Path, optional
        The category table the town is built from (read, not written); defaults to
        ``layers/categories.csv``.
    truth_path : Path, optional
        Where to also write the workbook truth CSV.

    Returns
    -------
    dict
        File name → number of records written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    town = generate_demo_town(county_code=county_code, categories_path=categories_path)
    written: dict[str, int] = {}
    layers = {
        "boundary.geojson": town.boundary,
        "river.geojson": town.river,
        "roads.geojson": town.roads,
        "subdistricts.geojson": town.subdistricts,
        "communities.geojson": town.communities,
        "pois.geojson": town.pois,
        "addresses.geojson": town.addresses,
    }
    for name, gdf in layers.items():
        (out_dir / name).write_text(_geojson_text(gdf), encoding="utf-8")
        written[name] = len(gdf)
    (out_dir / "units.csv").write_text(_csv_text(town.units, UNIT_COLUMNS), encoding="utf-8")
    written["units.csv"] = len(town.units)
    (out_dir / "history.json").write_text(
        json.dumps(town.history, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    written["history.json"] = len(town.history)
    (out_dir / "county.json").write_text(
        json.dumps(town.county, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    written["county.json"] = 1
    _write_workbook(out_dir / WORKBOOK_NAME, town)
    written[WORKBOOK_NAME] = len(town.workbook_rows)
    if truth_path is not None:
        Path(truth_path).write_text(_csv_text(town.truth, TRUTH_COLUMNS), encoding="utf-8")
        written[Path(truth_path).name] = len(town.truth)
    return written


def main(argv: list[str] | None = None) -> int:
    """Regenerate layers/demo and the workbook truth fixture from layers/categories.csv.

    The truth goes to ``tests/fixtures/`` of the repository holding ``out_dir``'s parent,
    or into ``out_dir`` itself when there is none (a scratch folder).
    """
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0] if args else "layers/demo")
    fixtures = out_dir.resolve().parent.parent / "tests" / "fixtures"
    written = write_demo_files(
        out_dir,
        county_code=args[1] if len(args) > 1 else COUNTY_CODE,
        truth_path=(fixtures if fixtures.is_dir() else out_dir) / TRUTH_NAME,
    )
    for name, count in written.items():
        print(f"{name}\t{count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
