"""Point → grid on PostGIS: covers semantics, the tie-break, outside coverage and input checks."""

from __future__ import annotations

import math

import pytest

from gis.coords import wgs_to_bd, wgs_to_gcj
from gis.errors import BadInput, NotFound
from gis.privacy import mask_phone
from grids.locate import Coverage, FarOutside, locate, parse_point
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city

G1, G2, G3 = "990101001001001", "990101001001002", "990101002001001"


@pytest.fixture
def tiny(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    return db


def test_inside_has_whole_chain(tiny):
    r = locate(tiny, X0 + 0.005, Y0 + 0.005)
    assert r["status"] == "inside"
    assert r["grid"] == {"code": G1, "name": "向阳社区第1网格", "type": "社区", "generation": 1}
    assert r["village"]["code"] == "990101001001" and r["village"]["name"] == "向阳社区"
    assert r["township"] == {"code": "990101001", "name": "东风街道", "kind": "街道"}
    assert r["county"]["code"] == "990101"
    assert r["city"] == {"code": "990100", "name": "测试市"}
    assert set(r["centers"]) == {"village", "township", "county", "city"}
    assert r["centers"]["township"] == {"code": "ZZ990101001", "name": "东风街道综治中心"}
    assert r["officer"]["label"] == "网格员" and r["officer"]["phone"] == "139****0000"
    assert [c["label"] for c in r["chiefs"]] == ["网格长", "网格警长", "楼栋长"]
    assert r["nearest"] is None
    assert r["input"] == {"x": X0 + 0.005, "y": Y0 + 0.005, "crs": "EPSG:4326"}
    assert r["wgs84"] == {"lon": X0 + 0.005, "lat": Y0 + 0.005}


def test_rural_grid_has_villager_rep(tiny):
    r = locate(tiny, X0 + 0.03, Y0 + 0.005)
    assert r["grid"]["code"] == G3 and r["grid"]["type"] == "乡村"
    assert [c["label"] for c in r["chiefs"]] == ["网格长", "村民代表"]


@pytest.mark.parametrize("lon, lat, code", [
    (X0 + 0.01, Y0 + 0.005, G1),     # shared edge G1|G2 → smaller code
    (X0 + 0.02, Y0 + 0.005, G2),     # shared edge G2|G3 (also a township border)
    (X0 + 0.01, Y0 + 0.01, G1),      # shared vertex on the top border
    (X0, Y0, G1),                    # outer corner: covered, not contained
    (X0 + 0.04, Y0 + 0.01, G3),      # far outer corner
    (X0 + 0.03, Y0, G3),             # bottom border
])
def test_boundary_points_follow_the_tie_break(tiny, lon, lat, code):
    r = locate(tiny, lon, lat)
    assert r["status"] == "inside" and r["grid"]["code"] == code


def test_outside_reports_nearest_grid_in_metres(tiny):
    r = locate(tiny, X0 + 0.03, Y0 - 0.001)       # ~111 m south of G3
    assert r["status"] == "outside" and r["grid"] is None
    assert r["nearest"]["grid_code"] == G3
    assert r["nearest"]["distance_m"] == pytest.approx(111.0, abs=1.5)
    r = locate(tiny, X0 - 0.002, Y0 + 0.005)      # west of G1, ~163 m at 43.1°N
    assert r["nearest"]["grid_code"] == G1
    assert r["nearest"]["distance_m"] == pytest.approx(0.002 * 111_320 * math.cos(math.radians(43.105)), rel=0.01)


def test_nearest_is_geodesic_not_degrees(tiny):
    # Below the G1|G2 corner at equal degree distance to both: tie → smaller code.
    r = locate(tiny, X0 + 0.01, Y0 - 0.001)
    assert r["nearest"]["grid_code"] == G1


def test_far_outside_is_422(tiny):
    with pytest.raises(FarOutside) as e:
        locate(tiny, 126.5, 45.7)                  # Harbin, ~330 km away
    assert e.value.status == 422 and "远离辖区" in e.value.message


def test_far_outside_distance_is_configurable(tiny):
    assert locate(tiny, X0 + 0.03, Y0 - 0.1, max_distance_m=20_000)["status"] == "outside"
    with pytest.raises(FarOutside):
        locate(tiny, X0 + 0.03, Y0 - 0.1, max_distance_m=5_000)


def test_swapped_lon_lat_is_named(tiny):
    with pytest.raises(BadInput) as e:
        locate(tiny, Y0 + 0.005, X0 + 0.005)
    assert "颠倒" in e.value.message and e.value.field == "lat"


@pytest.mark.parametrize("lon, lat, field, words", [
    ("abc", 43.1, "lon", "数字"),
    (124.3, "nan", "lat", "有限"),
    (124.3, float("inf"), "lat", "有限"),
    (None, 43.1, "lon", "数字"),
    (181.0, 43.1, "lon", "±180"),
    (124.3, -91.0, "lat", "±90"),
    (41_523_456.0, 4_776_543.0, "crs", "投影坐标"),
])
def test_bad_numbers(tiny, lon, lat, field, words):
    with pytest.raises(BadInput) as e:
        locate(tiny, lon, lat)
    assert e.value.field == field and words in e.value.message


def test_projected_metres_get_a_zone_hint():
    with pytest.raises(BadInput) as e:
        parse_point(41_523_456.0, 4_776_543.0)
    assert "EPSG:4529" in e.value.message


def test_degrees_passed_to_projected_crs():
    with pytest.raises(BadInput) as e:
        parse_point(124.35, 43.17, "EPSG:4554")
    assert e.value.field == "crs" and "经纬度" in e.value.message


def test_unknown_crs():
    with pytest.raises(BadInput) as e:
        parse_point(124.3, 43.1, "EPSG:999999")
    assert e.value.field == "crs"


def test_projected_cgcs2000_zone_round_trip(tiny):
    from pyproj import Transformer

    lon, lat = X0 + 0.015, Y0 + 0.005
    for epsg in (4554, 4529):   # 3° zone CM 123°E, without and with the zone prefix
        x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
        r = locate(tiny, x, y, crs=f"EPSG:{epsg}")
        assert r["grid"]["code"] == G2
        assert r["wgs84"]["lon"] == pytest.approx(lon, abs=1e-8)
        assert r["input"]["crs"] == f"EPSG:{epsg}"


@pytest.mark.parametrize("crs, fwd", [("GCJ-02", wgs_to_gcj), ("BD-09", wgs_to_bd), ("gaode", wgs_to_gcj)])
def test_phone_coordinates_are_converted_exactly(tiny, crs, fwd):
    lon, lat = X0 + 0.0312, Y0 + 0.0042
    x, y = (float(v) for v in fwd(lon, lat))
    r = locate(tiny, x, y, crs=crs)
    assert r["grid"]["code"] == G3
    assert abs(r["wgs84"]["lon"] - lon) < 1e-8 and abs(r["wgs84"]["lat"] - lat) < 1e-8
    assert r["input"]["x"] == x


def test_cgcs2000_is_wgs84(tiny):
    r = locate(tiny, X0 + 0.005, Y0 + 0.005, crs="CGCS2000")
    assert r["input"]["crs"] == "EPSG:4326" and r["grid"]["code"] == G1


def test_generation_selection(tiny):
    assert locate(tiny, X0 + 0.005, Y0 + 0.005, generation=1)["grid"]["generation"] == 1
    with pytest.raises(NotFound):
        locate(tiny, X0 + 0.005, Y0 + 0.005, generation=7)


def test_no_city_loaded(db):
    with pytest.raises(NotFound):
        locate(db, X0, Y0)


def test_parse_point_with_coverage():
    cov = Coverage(X0, Y0, X0 + 0.04, Y0 + 0.01)
    lon, lat, orig = parse_point("124.31", " 43.105 ", coverage=cov)
    assert (lon, lat) == (124.31, 43.105) and orig["x"] == 124.31
    with pytest.raises(FarOutside):
        parse_point(116.4, 39.9, coverage=cov)
    with pytest.raises(BadInput, match="颠倒"):
        parse_point(43.105, 124.31, coverage=cov)


def test_mask_phone():
    assert mask_phone("13912345678") == "139****5678"
    assert mask_phone("0434-3271234") == "043****1234"
    assert mask_phone("") == "" and mask_phone(None) == "" and mask_phone("12345") == "****"


def test_near_other_grid_in_the_same_statement_equals_a_direct_geodesic_query(tiny):
    """Issue 11: intake's near-boundary check rides on the locate statement (one round trip, not two); its
    distance equals the direct geodesic minimum over the other grids, and is None beyond the limit."""
    import numpy as np

    rng = np.random.default_rng(3)
    checked = near = 0
    for lon, lat in zip(X0 + rng.random(300) * 0.03, Y0 + rng.random(300) * 0.012, strict=True):
        r = locate(tiny, float(lon), float(lat), near_m=150.0)
        if r["status"] != "inside":
            continue
        direct = tiny.fetchone(
            "SELECT min(ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography)) AS d "
            "FROM grid WHERE generation = 1 AND code <> %s", (float(lon), float(lat), r["grid"]["code"]))["d"]
        if direct is not None and direct < 150.0:
            assert r["near_other_grid_m"] == pytest.approx(direct, abs=1e-6)
            near += 1
        else:
            assert r["near_other_grid_m"] is None
        checked += 1
    assert checked > 100 and 0 < near < checked
    assert "near_other_grid_m" not in locate(tiny, X0 + 0.005, Y0 + 0.005)   # not asked: not computed
