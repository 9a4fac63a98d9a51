"""Odd query arguments on the geography endpoints answer 4xx with the JSON error shape, never 500."""

import pytest

from gis.settings import Settings
from grids.store import load_city
from tests.factories import tiny_city
from webmap import create_app

URLS = ["/api/locate?lon=abc&lat=1", "/api/locate?lon=1e400&lat=1", "/api/locate?lon=nan&lat=nan",
        "/api/locate?lon=124.3&lat=43.1&crs=%00", "/api/locate?lon=124.3&lat=43.1&crs=EPSG:99999999999",
        "/api/locate?x=1&y=2&crs=EPSG:4526", "/api/locate?lon=124.3&lat=43.1&generation=99",
        "/api/locate?lon=124.3&lat=43.1&generation=-1",
        "/api/locate?lon=124.3&lat=43.1&generation=99999999999999999999",
        "/api/geocode?q=", "/api/geocode?q=%00", "/api/geocode?q=" + "x" * 5000, "/api/geocode?q=a&limit=abc",
        "/api/geocode?q=a&limit=-5", "/api/geocode?q=a&limit=100000", "/api/reverse?lon=124.3&lat=43.1&max_m=abc",
        "/api/reverse?lon=124.3&lat=43.1&max_m=-1", "/api/reverse?lon=124.3&lat=43.1&max_m=1e308",
        "/api/layers/region?level=county&simplify=nan", "/api/layers/region?level=county&simplify=inf",
        "/api/layers/grid?parent=%00", "/api/layers/region?level=township&parent=" + "9" * 3000]

@pytest.mark.parametrize("url", URLS)
def test_odd_geo_arguments_are_4xx_not_500(db, url):
    load_city(db, tiny_city(), progress=lambda m: None)
    app = create_app(settings=Settings(), db=db, test_config={"TESTING": True})
    r = app.test_client().get(url)
    assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])
    if r.status_code >= 400:
        assert "error" in r.get_json()
