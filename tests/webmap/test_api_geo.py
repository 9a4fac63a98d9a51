"""The geography API on a database with the tiny city: locate, geocode, reverse, and JSON errors."""

from __future__ import annotations

import pytest

from gis.coords import wgs_to_gcj
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

G1, G2, G3 = "990101001001001", "990101001001002", "990101002001001"


@pytest.fixture
def client(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    app = create_app(settings=Settings(), db=db, test_config={"TESTING": True})
    return app.test_client()


def error_of(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"error"}
    return body["error"]


def test_locate_inside(client):
    r = client.get(f"/api/locate?lon={X0 + 0.015}&lat={Y0 + 0.005}")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "inside" and body["grid"]["code"] == G2
    assert body["township"]["name"] == "东风街道" and body["city"]["code"] == "990100"
    assert body["officer"]["phone"] == "139****0000"
    assert "13900000000" not in r.get_data(as_text=True)


def test_locate_shared_edge_tie_break(client):
    body = client.get(f"/api/locate?lon={X0 + 0.01}&lat={Y0 + 0.005}").get_json()
    assert body["grid"]["code"] == G1


def test_locate_outside_is_200_with_nearest(client):
    body = client.get(f"/api/locate?lon={X0 + 0.03}&lat={Y0 - 0.001}").get_json()
    assert body["status"] == "outside" and body["nearest"]["grid_code"] == G3
    assert 100 < body["nearest"]["distance_m"] < 125


def test_locate_gcj02(client):
    x, y = (float(v) for v in wgs_to_gcj(X0 + 0.031, Y0 + 0.004))
    body = client.get(f"/api/locate?lon={x}&lat={y}&crs=GCJ-02").get_json()
    assert body["grid"]["code"] == G3 and body["input"]["crs"] == "GCJ-02"


def test_locate_projected_with_x_y(client):
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:4554", always_xy=True).transform(X0 + 0.005, Y0 + 0.005)
    body = client.get(f"/api/locate?x={x}&y={y}&crs=EPSG:4554").get_json()
    assert body["grid"]["code"] == G1


@pytest.mark.parametrize("query, status, field", [
    ("lon=abc&lat=43.1", 400, "lon"),
    ("lon=124.3&lat=nan", 400, "lat"),
    ("lat=43.1", 400, "lon"),
    ("lon=124.3", 400, "lat"),
    ("lon=124.3&lat=95", 400, "lat"),
    ("lon=190&lat=43", 400, "lon"),
    (f"lon={Y0 + 0.005}&lat={X0 + 0.005}", 400, "lat"),          # swapped
    ("lon=41523456&lat=4776543", 400, "crs"),                     # projected metres as degrees
    ("x=124.3&y=43.1&crs=EPSG:4554", 400, "crs"),                 # degrees as projected
    ("lon=124.3&lat=43.1&crs=EPSG:0", 400, "crs"),
    ("lon=124.3&lat=43.1&x=1&y=2", 400, "x"),
    ("x=500000", 400, "y"),
    ("lon=116.4&lat=39.9", 422, "lon"),                           # Beijing: far outside coverage
    ("lon=124.3&lat=43.1&generation=x", 400, "generation"),
])
def test_locate_errors(client, query, status, field):
    err = error_of(client.get(f"/api/locate?{query}"), status)
    assert err["field"] == field and err["message"]
    if status == 422:
        assert err["code"] == "far_outside_coverage"


def test_locate_unknown_generation_is_404(client):
    err = error_of(client.get(f"/api/locate?lon={X0 + 0.005}&lat={Y0 + 0.005}&generation=9"), 404)
    assert err["code"] == "not_found"


def test_locate_without_city_is_404(db):
    app = create_app(settings=Settings(), db=db, test_config={"TESTING": True})
    error_of(app.test_client().get("/api/locate?lon=124.3&lat=43.1"), 404)


def test_geocode_finds_standard_address(client):
    r = client.get("/api/geocode", query_string={"q": "甲区人民大街3号向阳小区2号楼"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["grid_code"] == G2 and body["status"] == "matched"


def test_geocode_gazetteer_is_cached(client):
    client.get("/api/geocode", query_string={"q": "人民大街1号"})
    gaz = client.application.extensions["gridgov_gazetteer"]
    client.get("/api/geocode", query_string={"q": "柳树村一组5号"})
    assert client.application.extensions["gridgov_gazetteer"] is gaz


@pytest.mark.parametrize("query, field", [("", "q"), ("q=" + "路" * 201, "q"), ("q=人民大街&limit=x", "limit")])
def test_geocode_errors(client, query, field):
    assert error_of(client.get(f"/api/geocode?{query}"), 400)["field"] == field


def test_reverse_nearest_address(client):
    body = client.get(f"/api/reverse?lon={X0 + 0.0151}&lat={Y0 + 0.0051}").get_json()
    assert body["address"]["code"] == "99010100100100002"
    assert 0 < body["distance_m"] < 20
    assert body["wgs84"]["lon"] == pytest.approx(X0 + 0.0151)


def test_reverse_nothing_near_is_404(client):
    err = error_of(client.get(f"/api/reverse?lon={X0 + 0.025}&lat={Y0 + 0.009}&max_m=50"), 404)
    assert err["field"] == "lon"


def test_reverse_bad_input(client):
    assert error_of(client.get("/api/reverse?lon=x&lat=43"), 400)["field"] == "lon"
    assert error_of(client.get("/api/reverse?lon=124.3&lat=43.1&max_m=-1"), 400)["field"] == "max_m"
