"""Coordinate systems: WGS84/CGCS2000, any CRS pyproj knows, and the Chinese GCJ-02 / BD-09.

GCJ-02 (高德/腾讯/微信) and BD-09 (百度) are obfuscations of WGS84 with no closed-form inverse.
The forward functions follow the published formula; the inverses iterate the forward function
(fixed-point on the offset) until the residual is below 1e-10 degrees (~1 cm), so a round trip
is sub-centimetre, where the usual one-step inverse is off by up to a few metres.
All functions are vectorised over numpy arrays and also accept scalars. Order is (lon, lat).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from gis.errors import BadInput

_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_BD_DLON = 0.0065
_BD_DLAT = 0.0060
_XPI = math.pi * 3000.0 / 180.0
_INVERSE_TOL = 1e-10
_INVERSE_MAX_ITER = 30

# China's rough bounding box: GCJ-02 offsets apply only inside it.
CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)

# Names accepted for the CRS of input coordinates (case-insensitive).
WGS84_NAMES = {"wgs84", "epsg:4326", "4326", "cgcs2000", "epsg:4490", "4490", "crs84", "ogc:crs84"}
GCJ02_NAMES = {"gcj02", "gcj-02", "gcj_02", "mars", "amap", "gaode", "tencent", "wechat", "高德", "腾讯"}
BD09_NAMES = {"bd09", "bd-09", "bd_09", "bd09ll", "baidu", "百度"}


def _arr(v):
    return np.asarray(v, dtype="float64")


def _offsets(lon, lat):
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + common
        + (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + common
        + (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * math.pi
    magic = 1.0 - _GCJ_EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrtmagic * np.cos(radlat) * math.pi)
    return dlon, dlat


def in_china(lon, lat):
    """True where (lon, lat) is inside the box where GCJ-02 offsets apply."""
    lon, lat = _arr(lon), _arr(lat)
    return (lon >= CHINA_BBOX[0]) & (lon <= CHINA_BBOX[2]) & (lat >= CHINA_BBOX[1]) & (lat <= CHINA_BBOX[3])


def wgs_to_gcj(lon, lat):
    """WGS84 → GCJ-02 (points outside China are returned unchanged)."""
    lon, lat = _arr(lon), _arr(lat)
    dlon, dlat = _offsets(lon, lat)
    mask = in_china(lon, lat)
    return np.where(mask, lon + dlon, lon), np.where(mask, lat + dlat, lat)


def _iterate_inverse(forward, tx, ty):
    x, y = tx.copy(), ty.copy()
    for _ in range(_INVERSE_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - tx, fy - ty
        x = x - ex
        y = y - ey
        if np.all(np.abs(ex) < _INVERSE_TOL) and np.all(np.abs(ey) < _INVERSE_TOL):
            break
    return x, y


def gcj_to_wgs(lon, lat):
    """GCJ-02 → WGS84, exact iterative inverse (residual < 1e-10°)."""
    lon, lat = _arr(lon), _arr(lat)
    return _iterate_inverse(wgs_to_gcj, lon, lat)


def gcj_to_bd(lon, lat):
    """GCJ-02 → BD-09."""
    lon, lat = _arr(lon), _arr(lat)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _XPI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _XPI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def bd_to_gcj(lon, lat):
    """BD-09 → GCJ-02, exact iterative inverse."""
    lon, lat = _arr(lon), _arr(lat)
    return _iterate_inverse(gcj_to_bd, lon, lat)


def wgs_to_bd(lon, lat):
    """WGS84 → BD-09."""
    return gcj_to_bd(*wgs_to_gcj(lon, lat))


def bd_to_wgs(lon, lat):
    """BD-09 → WGS84, exact iterative inverse of the whole chain."""
    lon, lat = _arr(lon), _arr(lat)
    return _iterate_inverse(wgs_to_bd, lon, lat)


def normalize_crs_name(crs: str | None) -> str:
    """Canonical name for an input CRS: 'EPSG:4326', 'GCJ-02', 'BD-09' or a pyproj-known string.

    Raises BadInput when the CRS is unknown. CGCS2000 (EPSG:4490) is treated as WGS84: the two
    differ by centimetres, far below the precision of any address or phone fix.
    """
    if crs is None or str(crs).strip() == "":
        return "EPSG:4326"
    raw = str(crs).strip()
    key = raw.lower().replace(" ", "")
    if key in WGS84_NAMES:
        return "EPSG:4326"
    if key in GCJ02_NAMES:
        return "GCJ-02"
    if key in BD09_NAMES:
        return "BD-09"
    if key.isdigit():
        raw = f"EPSG:{key}"
    _pyproj_transformer(raw)  # validates
    return raw.upper() if raw.lower().startswith("epsg:") else raw


@lru_cache(maxsize=64)
def _pyproj_transformer(crs: str):
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        src = CRS.from_user_input(crs)
    except CRSError:
        raise BadInput(f"unknown CRS {crs!r}: use EPSG:4326, EPSG:4490, an EPSG code, GCJ-02 or BD-09",
                       field="crs") from None
    return Transformer.from_crs(src, CRS.from_epsg(4326), always_xy=True)


def to_wgs84(x, y, crs: str | None = "EPSG:4326"):
    """Convert coordinates in `crs` to WGS84 (lon, lat) arrays. Order is always (x=lon/easting, y=lat/northing)."""
    name = normalize_crs_name(crs)
    x, y = _arr(x), _arr(y)
    if name == "EPSG:4326":
        return x, y
    if name == "GCJ-02":
        return gcj_to_wgs(x, y)
    if name == "BD-09":
        return bd_to_wgs(x, y)
    return _pyproj_transformer(name).transform(x, y)


def geometry_to_wgs84(geom, crs: str | None):
    """Transform a shapely geometry from `crs` (including GCJ-02/BD-09) to WGS84."""
    import shapely

    name = normalize_crs_name(crs)
    if name == "EPSG:4326":
        return geom

    def fn(coords):
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1], name)
        return np.column_stack([lon, lat])

    return shapely.transform(geom, fn)
