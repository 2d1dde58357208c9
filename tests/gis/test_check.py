"""Tests for gis.check: planted overlaps, gaps, bad codes, invalid cells."""

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from gis.check import check_grid

S = 0.001  # ~100 m


def cells_2x2(codes=None) -> gpd.GeoDataFrame:
    geoms = [
        box(117.2 + i * S, 28.3 + j * S, 117.2 + (i + 1) * S, 28.3 + (j + 1) * S)
        for j in range(2)
        for i in range(2)
    ]
    codes = codes or [f"360681001001{k:03d}" for k in range(1, 5)]
    return gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs=4326)


BOUNDARY = box(117.2, 28.3, 117.2 + 2 * S, 28.3 + 2 * S)


def kinds(report):
    return sorted(f.kind for f in report.findings)


def test_clean_grid_is_ok():
    report = check_grid(cells_2x2(), boundary=BOUNDARY, county_code="360681")
    assert report.ok and report.findings == []
    assert report.to_dict()["ok"] is True


def test_overlap_and_gap_are_found_with_area_and_location():
    cells = cells_2x2()
    # Shift cell 1 east by a tenth of a cell: overlap none, gap ~10 m x 100 m, and it
    # sticks out of the boundary.
    cells.loc[1, "geometry"] = box(117.2 + 1.1 * S, 28.3, 117.2 + 2.1 * S, 28.3 + S)
    # Cell 2 grows into cell 3: ~20 m x 100 m overlap.
    cells.loc[2, "geometry"] = box(117.2, 28.3 + S, 117.2 + 1.2 * S, 28.3 + 2 * S)
    report = check_grid(cells, boundary=BOUNDARY)
    assert not report.ok
    got = {f.kind: f for f in report.findings}
    assert set(got) == {"overlap", "gap", "outside_boundary"}
    m_per_deg = 111_320 * 0.88  # cos(28.3°)
    assert got["overlap"].area_m2 == pytest.approx(0.2 * S * m_per_deg * S * 110_700, rel=0.02)
    assert got["gap"].area_m2 == pytest.approx(0.1 * S * m_per_deg * S * 110_700, rel=0.02)
    assert got["overlap"].codes == ["360681001001003", "360681001001004"]
    lon, lat = got["gap"].location
    assert 117.2 + S < lon < 117.2 + 1.1 * S and 28.3 < lat < 28.3 + S
    assert "平方米" in got["gap"].message


def test_codes_checked():
    cells = cells_2x2(["360681001001001", "360681001001001", "12345", "360999001001004"])
    report = check_grid(cells, county_code="360681")
    assert kinds(report) == ["duplicate_code", "malformed_code", "malformed_code"]


def test_invalid_geometry_is_repaired_and_empty_reported():
    cells = cells_2x2()
    x0, y0 = 117.2 + S, 28.3 + S
    bowtie = Polygon([(x0, y0), (x0 + S, y0 + S), (x0 + S, y0), (x0, y0 + S)])
    cells.loc[3, "geometry"] = bowtie
    cells.loc[0, "geometry"] = Polygon()
    report = check_grid(cells)
    assert "repaired_geometry" in kinds(report)
    assert "empty_geometry" in kinds(report)
    assert report.repaired.geometry.iloc[3].is_valid
    assert not report.ok


def test_hole_without_boundary_and_crossing_community():
    cells = cells_2x2()
    ring = box(117.2, 28.3, 117.2 + 3 * S, 28.3 + 3 * S).difference(
        box(117.2, 28.3, 117.2 + 2 * S, 28.3 + 2 * S)
    )
    grid = gpd.GeoDataFrame({"code": ["360681001001009"]}, geometry=[ring], crs=4326)
    holey = gpd.GeoDataFrame(
        {"code": cells["code"].tolist()[:3] + ["360681001001009"]},
        geometry=cells.geometry.tolist()[:3] + [ring],
        crs=4326,
    )
    report = check_grid(holey)
    assert kinds(report) == ["gap"]  # cell 4 missing leaves a hole
    comms = gpd.GeoDataFrame(
        {"name": ["东社区", "西社区"]},
        geometry=[box(117.2 + S / 2, 28, 118, 29), box(117, 28, 117.2 + S / 2, 29)],
        crs=4326,
    )
    report = check_grid(cells, communities=comms)
    crossing = [f for f in report.findings if f.kind == "crosses_community"]
    assert len(crossing) == 2 and "东社区" in crossing[0].message
    assert grid is not None
