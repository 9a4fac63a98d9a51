"""gzip for the app's own files: libraries and page scripts compressed for clients that accept it, unchanged
otherwise; pages and API answers are never compressed."""

from __future__ import annotations

import gzip

import pytest

from gis.settings import Settings
from grids.store import load_city
from tests.factories import tiny_city
from webmap import ASSETS, create_app

GZ = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    return create_app(settings=Settings(secret_key="test"), db=db)


def test_vendor_files_are_gzipped_once_and_identical_after_decompression(app):
    c = app.test_client()
    raw = (ASSETS / "echarts/dist/echarts.min.js").read_bytes()
    for _ in range(2):  # the second answer comes from the in-memory cache
        r = c.get("/vendor/echarts/dist/echarts.min.js", headers=GZ)
        assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["Vary"]
        assert gzip.decompress(r.data) == raw and len(r.data) < len(raw) / 2
        assert int(r.headers["Content-Length"]) == len(r.data)
    plain = c.get("/vendor/echarts/dist/echarts.min.js")
    assert "Content-Encoding" not in plain.headers and plain.data == raw


def test_page_scripts_are_compressed_and_api_answers_left_alone(app):
    c = app.test_client()
    js = c.get("/static/wall.js", headers=GZ)
    assert js.headers["Content-Encoding"] == "gzip" and b"ggWall" in gzip.decompress(js.data)
    page = c.get("/wall", headers=GZ)
    assert "Content-Encoding" not in page.headers and '<script nonce="' in page.get_data(as_text=True)
    layer = c.get("/api/layers/region?level=township", headers=GZ)
    assert "Content-Encoding" not in layer.headers and layer.json["type"] == "FeatureCollection"
    missing = c.get("/vendor/echarts/dist/nope.js", headers=GZ)
    assert missing.status_code == 404 and "Content-Encoding" not in missing.headers
