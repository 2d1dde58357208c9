"""Helpers shared by the problem-page tests: real images built with Pillow."""

from __future__ import annotations

import io

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

GPS_IFD = 0x8825


def dms(value: float) -> tuple:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def jpeg_bytes(
    *,
    gps: tuple[float, float] | None = None,
    size=(64, 48),
    colour="red",
    model: str = "TestPhone 12",
) -> bytes:
    """A real JPEG; with ``gps`` (lon, lat) its EXIF carries a GPS fix and camera model."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x0110] = model  # Model
    exif[0x010F] = "TestMaker"  # Make
    exif[0x0132] = "2024:05:06 10:11:12"  # DateTime
    if gps is not None:
        lon, lat = gps
        exif[GPS_IFD] = {1: "N", 2: dms(lat), 3: "E", 4: dms(lon)}
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif, quality=90)
    return buf.getvalue()


def png_bytes(size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 200)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A tiny file that decodes to side×side pixels (1-bit, compresses to a few KB)."""
    buf = io.BytesIO()
    Image.new("1", (side, side), 0).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def upload(data: bytes, name: str = "photo.jpg"):
    return (io.BytesIO(data), name)


def photo_files(root) -> list:
    """Every file under the photo directory (temporary files included)."""
    from pathlib import Path

    return sorted(p for p in Path(root).rglob("*") if p.is_file())
