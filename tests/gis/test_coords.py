"""GCJ-02 / BD-09 conversions: agreement with prcoords, exact inverse, known pairs."""

from __future__ import annotations

import math

import numpy as np
import prcoords
import pytest

from gis import coords
from gis.errors import BadInput


def _metres(lon1, lat1, lon2, lat2):
    dx = (lon1 - lon2) * 111_320 * np.cos(np.radians(lat1))
    dy = (lat1 - lat2) * 110_540
    return np.hypot(dx, dy)


@pytest.fixture(scope="module")
def pts():
    rng = np.random.default_rng(42)
    return rng.uniform(73.7, 134.9, 5000), rng.uniform(18.2, 53.4, 5000)


def test_forward_matches_prcoords(pts):
    lon, lat = pts
    glon, glat = coords.wgs_to_gcj(lon, lat)
    for i in range(0, 5000, 50):
        ref = prcoords.wgs_gcj(prcoords.Coords(lat[i], lon[i]))
        assert math.isclose(glat[i], ref.lat, abs_tol=1e-12) and math.isclose(glon[i], ref.lon, abs_tol=1e-12)
    blon, blat = coords.wgs_to_bd(lon, lat)
    for i in range(0, 5000, 50):
        ref = prcoords.wgs_bd(prcoords.Coords(lat[i], lon[i]))
        assert math.isclose(blat[i], ref.lat, abs_tol=1e-9) and math.isclose(blon[i], ref.lon, abs_tol=1e-9)


def test_inverse_is_sub_centimetre(pts):
    lon, lat = pts
    back = coords.gcj_to_wgs(*coords.wgs_to_gcj(lon, lat))
    assert _metres(lon, lat, *back).max() < 0.01
    back = coords.bd_to_wgs(*coords.wgs_to_bd(lon, lat))
    assert _metres(lon, lat, *back).max() < 0.01


def test_inverse_agrees_with_prcoords_bored_and_beats_one_step():
    # Siping city centre, GCJ-02 as a phone would send it.
    glon, glat = 124.3565, 43.1719
    wlon, wlat = coords.gcj_to_wgs(glon, glat)
    ref = prcoords.gcj_wgs_bored(prcoords.Coords(glat, glon))
    assert _metres(wlon, wlat, ref.lon, ref.lat) < 0.01
    crude = prcoords.gcj_wgs(prcoords.Coords(glat, glon))  # one-step formula
    assert _metres(wlon, wlat, crude.lon, crude.lat) > 0.1  # the naive inverse is visibly off
    # Known offset size near Siping: ~ 400-700 m between WGS84 and GCJ-02.
    assert 300 < _metres(glon, glat, wlon, wlat) < 800


def test_known_pair_tiananmen():
    # A widely published pair: WGS84 (116.391263, 39.907314) ↔ GCJ-02 (116.397506, 39.908717).
    glon, glat = coords.wgs_to_gcj(116.391263, 39.907314)
    assert _metres(glon, glat, 116.397506, 39.908717) < 3.0


def test_outside_china_unchanged():
    lon, lat = coords.wgs_to_gcj(2.35, 48.85)
    assert (float(lon), float(lat)) == (2.35, 48.85)


def test_crs_names_and_pyproj():
    assert coords.normalize_crs_name("cgcs2000") == "EPSG:4326"
    assert coords.normalize_crs_name("gcj02") == "GCJ-02"
    assert coords.normalize_crs_name("BD09") == "BD-09"
    # CGCS2000 / 3-degree Gauss-Kruger CM 123E (EPSG:4551) round trip
    from pyproj import Transformer

    t = Transformer.from_crs(4326, 4551, always_xy=True)
    x, y = t.transform(124.35, 43.17)
    lon, lat = coords.to_wgs84(x, y, "EPSG:4551")
    assert _metres(lon, lat, 124.35, 43.17) < 0.01
    with pytest.raises(BadInput, match="unknown CRS"):
        coords.normalize_crs_name("EPSG:999999")
