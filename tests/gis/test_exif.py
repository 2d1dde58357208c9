"""Tests for gis.exif: a JPEG with GPS EXIF built by hand with Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from gis.exif import GPS_IFD, read_exif_gps


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def _jpeg(gps: dict | None) -> bytes:
    image = Image.new("RGB", (8, 8), "white")
    exif = Image.Exif()
    if gps is not None:
        exif[GPS_IFD] = gps
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def test_reads_north_east_position() -> None:
    data = _jpeg({1: "N", 2: _dms(22.8012345), 3: "E", 4: _dms(103.5054321)})
    lon, lat = read_exif_gps(data)
    assert lon == pytest.approx(103.5054321, abs=1e-6)
    assert lat == pytest.approx(22.8012345, abs=1e-6)


def test_south_and_west_are_negative() -> None:
    lon, lat = read_exif_gps(_jpeg({1: "S", 2: _dms(33.5), 3: "W", 4: _dms(70.25)}))
    assert (lon, lat) == (pytest.approx(-70.25), pytest.approx(-33.5))


@pytest.mark.parametrize(
    "data",
    [
        _jpeg(None),  # no GPS at all
        _jpeg({1: "N", 3: "E"}),  # refs without position
        _jpeg({1: "N", 2: _dms(0.0), 3: "E", 4: _dms(0.0)}),  # a phone with no fix
        b"not an image",
        b"",
    ],
)
def test_no_usable_position_is_none(data: bytes) -> None:
    assert read_exif_gps(data) is None
