"""Tests for gis.coding: 15-digit cell codes and the serial order."""

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from gis.coding import code_cells, code_grid, number_serials
from gis.errors import GridBuildError


def grid(nx: int, ny: int, step: float = 0.001) -> gpd.GeoDataFrame:
    cells = [
        box(117.2 + i * step, 28.3 + j * step, 117.2 + (i + 1) * step, 28.3 + (j + 1) * step)
        for j in range(ny)
        for i in range(nx)
    ]
    return gpd.GeoDataFrame(geometry=cells, crs=4326)


def test_codes_and_serial_order():
    cells = grid(3, 2)
    west = box(117.1, 28.2, 117.2017, 28.4)
    east = box(117.2017, 28.2, 117.3, 28.4)
    comms = gpd.GeoDataFrame(
        {"code": ["007", "008"], "subdistrict_code": ["002", "002"]},
        geometry=[west, east],
        crs=4326,
    )
    out = code_cells(cells, county_code="360681", subdistricts=None, communities=comms)
    assert out["code"].str.fullmatch(r"\d{15}").all()
    assert out["code"].is_unique
    # Column 0 and most of column 1 lie in the west community (largest overlap).
    assert out["community_code"].tolist() == ["007", "007", "008", "007", "007", "008"]
    assert (out["subdistrict_code"] == "002").all()
    # West community: north row first (cells 3, 4), then south row (0, 1).
    west_rows = out[out["community_code"] == "007"]
    assert dict(zip(west_rows.index, west_rows["serial"], strict=True)) == {
        3: "001",
        4: "002",
        0: "003",
        1: "004",
    }
    assert out.loc[3, "code"] == "360681002007001"
    assert np.allclose(out["area_m2"], out["area_m2"].iloc[0], rtol=1e-3)


def test_missing_communities_give_a_zone_never_000():
    cells = grid(2, 1)
    subs = gpd.GeoDataFrame({"code": ["12"]}, geometry=[box(117, 28, 118, 29)], crs=4326)
    out = code_cells(cells, county_code="360681", subdistricts=subs, communities=None)
    # No community: the cells form provisional zone 001 of sub-district 012.
    assert out["code"].tolist() == ["360681012001001", "360681012001002"]
    assert out["provisional"].all()
    none = code_cells(cells, county_code="360681", subdistricts=None, communities=None)
    assert none["code"].tolist() == ["360681001001001", "360681001001002"]


def test_a_000_layer_code_is_replaced_by_the_next_free_one():
    cells = grid(2, 1)
    subs = gpd.GeoDataFrame(
        {"code": ["000", "003"], "name": ["甲街道", "乙街道"]},
        geometry=[box(117.2, 28, 117.201, 29), box(117.201, 28, 118, 29)],
        crs=4326,
    )
    out, zones = code_grid(cells, county_code="360681", subdistricts=subs, communities=None)
    assert out["subdistrict_code"].tolist() == ["004", "003"]
    assert dict(zip(zones["subdistrict_code"], zones["subdistrict_name"], strict=True)) == {
        "003": "乙街道",
        "004": "甲街道",
    }


def test_rejects_bad_county_code_and_too_many_cells():
    with pytest.raises(GridBuildError, match="6 位"):
        code_cells(grid(1, 1), county_code="3606", subdistricts=None, communities=None)
    # A real community over 999 cells cannot be coded (a zone would be split instead).
    big = gpd.GeoDataFrame(
        {"code": ["001"], "name": ["大社区"], "subdistrict_code": ["001"]},
        geometry=[box(117, 28, 118, 29)],
        crs=4326,
    )
    with pytest.raises(GridBuildError, match="大社区.*1000 个网格.*999"):
        code_cells(grid(40, 25, 0.0001), county_code="360681", subdistricts=None, communities=big)
    out = code_cells(grid(40, 25, 0.0001), county_code="360681", subdistricts=None,
                     communities=None)
    assert out["code"].is_unique and out["community_code"].nunique() >= 2


def test_number_serials_rule():
    x = np.array([10.0, 0.0, 5.0, 0.0])
    y = np.array([100.0, 100.0, 40.0, 95.0])  # first three rows: 100/95 same band
    s = number_serials(x, y, row_height=20)
    assert s.tolist() == [3, 1, 4, 2]
