"""Read the GPS position a phone camera wrote into a photo's EXIF.

Phone photos in China carry the GPS chip's own WGS-84 fix in EXIF (the GCJ-02 offset
is applied by map apps, not by the camera), so the position is returned raw and the
caller decides whether to convert it with :mod:`gis.crs`.
"""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["read_exif_gps"]

GPS_IFD = 0x8825
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4


def _to_float(value: Any) -> float:
    # Pillow gives IFDRational; some writers give (numerator, denominator) pairs.
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if den else math.nan
    return float(value)


def _to_degrees(dms: Any) -> float:
    parts = [_to_float(v) for v in (dms if isinstance(dms, (tuple, list)) else (dms,))]
    parts += [0.0] * (3 - len(parts))
    degrees, minutes, seconds = parts[:3]
    return degrees + minutes / 60.0 + seconds / 3600.0


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    return str(value or "").strip("\x00 ").upper()


def read_exif_gps(data: bytes) -> tuple[float, float] | None:
    """Return the (lon, lat) a photo's EXIF records, or None when it has none.

    Parameters
    ----------
    data : bytes
        The image file's bytes (JPEG, TIFF, HEIF when Pillow can open it).

    Returns
    -------
    tuple of float or None
        ``(lon, lat)`` in degrees as the camera wrote them (normally WGS-84); None for
        images without GPS, with a zero/invalid position, or that cannot be read.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            gps = image.getexif().get_ifd(GPS_IFD)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if not gps or _LAT not in gps or _LON not in gps:
        return None
    try:
        lat = _to_degrees(gps[_LAT])
        lon = _to_degrees(gps[_LON])
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if _ref(gps.get(_LAT_REF)) == "S":
        lat = -lat
    if _ref(gps.get(_LON_REF)) == "W":
        lon = -lon
    # Phones without a fix often write 0/0; that is not a place in the county.
    if not (math.isfinite(lat) and math.isfinite(lon)) or (lat == 0 and lon == 0):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lon, lat
