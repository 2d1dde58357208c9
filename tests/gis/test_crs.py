"""CRS: UTM zone choice and the GCJ-02 / BD-09 conversions phones and Baidu give us."""

import numpy as np
import pytest

from gis.crs import (
    bd09_to_wgs84,
    gcj02_to_wgs84,
    parse_coordinate,
    to_wgs84,
    utm_crs_for,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from gis.errors import CoordinateError, CRSError


def test_utm_zone_for_yunnan_and_jiangxi():
    assert utm_crs_for(103.5, 22.8).to_epsg() == 32648
    assert utm_crs_for(117.2, 28.3).to_epsg() == 32650


def test_gcj02_offset_is_hundreds_of_metres_in_china_and_inverts():
    lon, lat = 103.5, 22.8
    glon, glat = wgs84_to_gcj02(lon, lat)
    shift_m = np.hypot((glon - lon) * 102_000, (glat - lat) * 110_700)
    assert 100 < shift_m < 800
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    assert abs(wlon - lon) < 1e-7 and abs(wlat - lat) < 1e-7


def test_bd09_round_trip_and_named_conversion():
    blon, blat = wgs84_to_bd09(117.2, 28.3)
    wlon, wlat = bd09_to_wgs84(blon, blat)
    assert abs(wlon - 117.2) < 1e-6 and abs(wlat - 28.3) < 1e-6
    nlon, nlat = to_wgs84(blon, blat, source="bd09")
    assert abs(nlon - 117.2) < 1e-6


def test_outside_china_is_not_offset():
    lon, lat = wgs84_to_gcj02(2.35, 48.85)
    assert lon == pytest.approx(2.35) and lat == pytest.approx(48.85)


def test_unknown_source_and_bad_numbers_are_named():
    with pytest.raises(CRSError, match="cgcs"):
        to_wgs84(1, 2, source="cgcs")
    with pytest.raises(CoordinateError, match="经度"):
        parse_coordinate("东经一百度", field="经度", low=73, high=136)
    with pytest.raises(CoordinateError, match="纬度"):
        parse_coordinate(95, field="纬度", low=3, high=54)
    assert parse_coordinate(" 22.8 ", field="纬度", low=3, high=54) == 22.8
