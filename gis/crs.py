"""The one CRS module: WGS-84 storage, local UTM for metric work, GCJ-02/BD-09 input.

Coordinates are stored in WGS-84 (EPSG:4326). Chinese phone apps (高德, 腾讯, 微信)
report GCJ-02 and 百度 reports BD-09; pyproj does not know these obfuscated systems, so
their published forward formulas are implemented here and inverted iteratively.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pyproj import CRS, Transformer

from gis.errors import CoordinateError, CRSError

WGS84 = CRS.from_epsg(4326)
InputCRS = Literal["wgs84", "gcj02", "bd09"]

# Krasovsky 1940 ellipsoid parameters used by the GCJ-02 offset formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def utm_crs_for(lon: float, lat: float) -> CRS:
    """Return the UTM zone CRS (WGS-84 datum) that contains a lon/lat point.

    Parameters
    ----------
    lon, lat : float
        A point of the area of interest, in degrees.
    """
    if not (-180 <= lon <= 180 and -80 <= lat <= 84):
        msg = f"坐标超出 UTM 范围: ({lon}, {lat})"
        raise CRSError(msg)
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(epsg)


def utm_crs_for_geom(geom) -> CRS:
    """Return the UTM CRS for the centre of a WGS-84 geometry's bounds."""
    minx, miny, maxx, maxy = geom.bounds
    return utm_crs_for((minx + maxx) / 2, (miny + maxy) / 2)


def transformer(src, dst) -> Transformer:
    """Return an always_xy transformer between two CRSs."""
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def to_metric(gdf):
    """Project a GeoDataFrame to its local UTM zone (returns a copy)."""
    if gdf.crs is None:
        msg = "图层没有坐标参考系 (CRS)"
        raise CRSError(msg)
    wgs = gdf.to_crs(WGS84) if not gdf.crs.equals(WGS84) else gdf
    minx, miny, maxx, maxy = wgs.total_bounds
    return gdf.to_crs(utm_crs_for((minx + maxx) / 2, (miny + maxy) / 2))


def _out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    inside = ~_out_of_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon, lat):
    """Offset WGS-84 coordinates to GCJ-02 (arrays or scalars)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon, lat):
    """Invert the GCJ-02 offset by fixed-point iteration (error well below 1 cm)."""
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(10):
        tlon, tlat = wgs84_to_gcj02(wlon, wlat)
        wlon = wlon - (tlon - glon)
        wlat = wlat - (tlat - glat)
    return wlon, wlat


def gcj02_to_bd09(lon, lat):
    """Convert GCJ-02 to Baidu's BD-09."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon, lat):
    """Convert Baidu's BD-09 to GCJ-02."""
    blon = np.asarray(lon, dtype=float)
    blat = np.asarray(lat, dtype=float)
    x = blon - 0.0065
    y = blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    glon, glat = z * np.cos(theta), z * np.sin(theta)
    # Baidu's closed-form inverse is off by up to 2e-6° (~20 cm); refine it against the
    # forward formula so BD-09 → WGS-84 → BD-09 round trips within 1e-9°.
    for _ in range(3):
        tlon, tlat = gcj02_to_bd09(glon, glat)
        glon = glon - (tlon - blon)
        glat = glat - (tlat - blat)
    return glon, glat


def bd09_to_wgs84(lon, lat):
    """Convert Baidu's BD-09 to WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon, lat):
    """Convert WGS-84 to Baidu's BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def to_wgs84(lon, lat, *, source: InputCRS = "wgs84"):
    """Convert coordinates from a named input system to WGS-84.

    Parameters
    ----------
    lon, lat : float or array-like
        Input coordinates in degrees.
    source : {"wgs84", "gcj02", "bd09"}
        The system the coordinates were recorded in.
    """
    source = (source or "wgs84").lower().replace("-", "")  # type: ignore[assignment]
    if source == "wgs84":
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if source == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if source == "bd09":
        return bd09_to_wgs84(lon, lat)
    msg = f"不支持的坐标系: {source} (可选 wgs84, gcj02, bd09)"
    raise CRSError(msg)


def parse_coordinate(value, *, field: str, low: float, high: float) -> float:
    """Parse one degree value from user input, naming the field when it is wrong."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip().replace("°", "").replace("，", ".").replace("。", ".")
        try:
            number = float(text)
        except ValueError:
            msg = f"{field} 不是数字: {value!r}"
            raise CoordinateError(msg) from None
    if not math.isfinite(number) or not (low <= number <= high):
        msg = f"{field} 超出范围 [{low}, {high}]: {value!r}"
        raise CoordinateError(msg)
    return number
